//! TLS echo client: the asyncio documentation's "TCP Echo Client" example
//! with `ssl=`, line for line, with the same output as `tcp_echo_client`.
//!
//! ```text
//! cargo run --example tls_echo_client              # to 127.0.0.1:8443
//! cargo run --example tls_echo_client -- 127.0.0.1 9443
//! ```
//!
//! It trusts the CA in `$TLS_ECHO_DIR/ca.pem` (written by `tls_echo_server`
//! or the test harness) and checks the server's certificate against the host
//! it connects to. Against `tls_echo_server` (or
//! `tests/python/tls_echo_server.py`) it prints:
//!
//! ```text
//! Data sent: 'Hello World!'
//! Data received: 'Hello World!'
//! The server closed the connection
//! ```
//!
//! The Python original is the TCP one with a client context:
//!
//! ```python
//! ssl_ctx = ssl.create_default_context(cafile='ca.pem')
//! transport, protocol = await loop.create_connection(
//!     lambda: EchoClientProtocol(message, on_con_lost), '127.0.0.1', 8443, ssl=ssl_ctx)
//! ```

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ClientTls, ConnectOptions, Protocol, Transport, create_connection,
};

mod common;
#[path = "common/tls.rs"]
mod tls_common;
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
    let (host, port) = common::host_port_or(8443)?;
    // Trust the CA the server wrote; the name checked is the host.
    let tls = ClientTls::new(tls_common::client_config()?);
    let message = "Hello World!".to_string();

    let transport = create_connection(
        || EchoClientProtocol { message },
        &host,
        port,
        ConnectOptions::default().ssl(tls),
    )
    .await?;

    // Wait until the protocol signals that the connection is lost (asyncio's
    // `await on_con_lost`) and close the transport (a no-op by then).
    transport.closed().await;
    transport.close();
    Ok(())
}
