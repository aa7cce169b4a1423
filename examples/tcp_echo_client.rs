//! TCP echo client: the asyncio documentation's "TCP Echo Client" example
//! (`loop.create_connection()`), line for line, with the same output.
//!
//! ```text
//! cargo run --example tcp_echo_client              # to 127.0.0.1:8888
//! cargo run --example tcp_echo_client -- 127.0.0.1 9000
//! ```
//!
//! Against `tcp_echo_server` (or the Python server in
//! `tests/python/tcp_echo_server.py`) it prints:
//!
//! ```text
//! Data sent: 'Hello World!'
//! Data received: 'Hello World!'
//! The server closed the connection
//! ```
//!
//! The Python original:
//!
//! ```python
//! class EchoClientProtocol(asyncio.Protocol):
//!     def __init__(self, message, on_con_lost):
//!         self.message = message
//!         self.on_con_lost = on_con_lost
//!
//!     def connection_made(self, transport):
//!         transport.write(self.message.encode())
//!         print('Data sent: {!r}'.format(self.message))
//!
//!     def data_received(self, data):
//!         print('Data received: {!r}'.format(data.decode()))
//!
//!     def connection_lost(self, exc):
//!         print('The server closed the connection')
//!         self.on_con_lost.set_result(True)
//!
//! async def main():
//!     loop = asyncio.get_running_loop()
//!     on_con_lost = loop.create_future()
//!     message = 'Hello World!'
//!     transport, protocol = await loop.create_connection(
//!         lambda: EchoClientProtocol(message, on_con_lost),
//!         '127.0.0.1', 8888)
//!     try:
//!         await on_con_lost
//!     finally:
//!         transport.close()
//!
//! asyncio.run(main())
//! ```
//!
//! The `on_con_lost` future is not needed: `Transport::closed()` resolves once
//! `connection_lost` has run.

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ConnectOptions, Protocol, Transport, create_connection,
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
    let (host, port) = common::host_port()?;
    let message = "Hello World!".to_string();

    let transport = create_connection(
        || EchoClientProtocol { message },
        &host,
        port,
        ConnectOptions::default(),
    )
    .await?;

    // Wait until the protocol signals that the connection is lost (asyncio's
    // `await on_con_lost`) and close the transport (a no-op by then).
    transport.closed().await;
    transport.close();
    Ok(())
}
