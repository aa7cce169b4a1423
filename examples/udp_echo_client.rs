//! UDP echo client: the asyncio documentation's "UDP Echo Client" example
//! (`loop.create_datagram_endpoint()` with `remote_addr`), line for line,
//! with the same output.
//!
//! ```text
//! cargo run --example udp_echo_client              # 127.0.0.1:9999
//! cargo run --example udp_echo_client -- 127.0.0.1 9000
//! ```
//!
//! Against `udp_echo_server` (or `tests/python/udp_echo_server.py`) it prints:
//!
//! ```text
//! Send: Hello World!
//! Received: Hello World!
//! Close the socket
//! Connection closed
//! ```
//!
//! The Python original:
//!
//! ```python
//! class EchoClientProtocol:
//!     def __init__(self, message, on_con_lost):
//!         self.message = message
//!         self.on_con_lost = on_con_lost
//!         self.transport = None
//!
//!     def connection_made(self, transport):
//!         self.transport = transport
//!         print('Send:', self.message)
//!         self.transport.sendto(self.message.encode())
//!
//!     def datagram_received(self, data, addr):
//!         print("Received:", data.decode())
//!         print("Close the socket")
//!         self.transport.close()
//!
//!     def error_received(self, exc):
//!         print('Error received:', exc)
//!
//!     def connection_lost(self, exc):
//!         print("Connection closed")
//!         self.on_con_lost.set_result(True)
//!
//! async def main():
//!     loop = asyncio.get_running_loop()
//!     on_con_lost = loop.create_future()
//!     message = "Hello World!"
//!     transport, protocol = await loop.create_datagram_endpoint(
//!         lambda: EchoClientProtocol(message, on_con_lost),
//!         remote_addr=('127.0.0.1', 9999))
//!     try:
//!         await on_con_lost
//!     finally:
//!         transport.close()
//!
//! asyncio.run(main())
//! ```

use std::io;

use tokio_transports::{
    Bytes, DatagramOptions, DatagramProtocol, DatagramTransport, SocketAddress,
    create_datagram_endpoint,
};

mod common;

/// The port of the asyncio documentation's UDP examples.
const UDP_PORT: u16 = 9999;

struct EchoClientProtocol {
    message: String,
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        println!("Send: {}", self.message);
        // No address: the endpoint's `remote_addr`.
        let _ = transport.sendto(self.message.clone(), None);
    }

    fn datagram_received(&mut self, data: Bytes, _addr: SocketAddress) {
        println!("Received: {}", String::from_utf8_lossy(&data));

        println!("Close the socket");
        if let Some(t) = &self.transport {
            t.close();
        }
    }

    fn error_received(&mut self, exc: io::Error) {
        println!("Error received: {exc}");
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        println!("Connection closed");
    }
}

/// `[HOST [PORT]]`, defaulting to `127.0.0.1 9999`.
pub fn udp_host_port() -> io::Result<(String, u16)> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args.push(common::DEFAULT_HOST.to_string());
    }
    if args.len() == 1 {
        args.push(UDP_PORT.to_string());
    }
    common::parse_host_port(args)
}

// One thread, like asyncio's event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let (host, port) = udp_host_port()?;
    let message = "Hello World!".to_string();

    let transport = create_datagram_endpoint(
        || EchoClientProtocol {
            message,
            transport: None,
        },
        DatagramOptions::default().remote_addr((host, port)),
    )
    .await?;

    // Wait until the protocol signals that the connection is lost (asyncio's
    // `await on_con_lost`) and close the transport (a no-op by then).
    transport.closed().await;
    transport.close();
    Ok(())
}
