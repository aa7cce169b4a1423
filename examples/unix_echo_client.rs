//! Unix echo client: the asyncio documentation's "TCP Echo Client" example
//! on a Unix socket (`loop.create_unix_connection()`), same output.
//!
//! ```text
//! cargo run --example unix_echo_client                       # $TMPDIR/tokio-transports-echo.sock
//! cargo run --example unix_echo_client -- /tmp/echo.sock
//! ```
//!
//! Against `unix_echo_server` (or a Python `create_unix_server` with the
//! same protocol) it prints:
//!
//! ```text
//! Data sent: 'Hello World!'
//! Data received: 'Hello World!'
//! The server closed the connection
//! ```

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ConnectOptions, Protocol, Transport, create_unix_connection,
};

mod common;
use common::py_repr;

struct EchoClientProtocol {
    message: String,
}

impl BaseProtocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        // `write` only fails after `write_eof()`, which this protocol never calls.
        let _ = transport.write(self.message.clone());
        println!("Data sent: {}", py_repr(&self.message));
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        println!("The server closed the connection");
    }
}

impl Protocol for EchoClientProtocol {
    fn data_received(&mut self, data: Bytes) {
        println!(
            "Data received: {}",
            py_repr(&String::from_utf8_lossy(&data))
        );
    }
}

// One thread, like asyncio's event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let path = common::unix_path()?;
    let message = "Hello World!".to_string();

    let transport = create_unix_connection(
        || EchoClientProtocol { message },
        path,
        ConnectOptions::default(),
    )
    .await?;

    // Wait until the protocol signals that the connection is lost (asyncio's
    // `await on_con_lost`) and close the transport (a no-op by then).
    transport.closed().await;
    transport.close();
    Ok(())
}
