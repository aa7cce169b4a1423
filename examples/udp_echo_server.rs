//! UDP echo server: the asyncio documentation's "UDP Echo Server" example
//! (`loop.create_datagram_endpoint()`), line for line, with the same output.
//!
//! ```text
//! cargo run --example udp_echo_server              # 127.0.0.1:9999
//! cargo run --example udp_echo_server -- 127.0.0.1 9000
//! ```
//!
//! Then run `cargo run --example udp_echo_client` (or the Python client in
//! `tests/python/udp_echo_client.py`). It prints `Starting UDP server` once
//! the socket is bound (so the line also says "ready"), then for each
//! datagram:
//!
//! ```text
//! Received 'Hello World!' from ('127.0.0.1', 54321)
//! Send 'Hello World!' to ('127.0.0.1', 54321)
//! ```
//!
//! The Python original:
//!
//! ```python
//! class EchoServerProtocol:
//!     def connection_made(self, transport):
//!         self.transport = transport
//!
//!     def datagram_received(self, data, addr):
//!         message = data.decode()
//!         print('Received %r from %s' % (message, addr))
//!         print('Send %r to %s' % (message, addr))
//!         self.transport.sendto(data, addr)
//!
//! async def main():
//!     print("Starting UDP server")
//!     loop = asyncio.get_running_loop()
//!     # One protocol instance will be created to serve all
//!     # client requests.
//!     transport, protocol = await loop.create_datagram_endpoint(
//!         EchoServerProtocol,
//!         local_addr=('127.0.0.1', 9999))
//!     try:
//!         await asyncio.sleep(3600)  # Serve for 1 hour.
//!     finally:
//!         transport.close()
//!
//! asyncio.run(main())
//! ```

use std::io;
use std::time::Duration;

use tokio_transports::{
    Bytes, DatagramOptions, DatagramProtocol, DatagramTransport, SocketAddress,
    create_datagram_endpoint,
};

mod common;
use common::py_repr;

/// The port of the asyncio documentation's UDP examples.
const UDP_PORT: u16 = 9999;

#[derive(Default)]
struct EchoServerProtocol {
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        let message = String::from_utf8_lossy(&data);
        // SocketAddress prints like Python's address tuple.
        println!("Received {} from {addr}", py_repr(&message));
        println!("Send {} to {addr}", py_repr(&message));
        let transport = self.transport.as_ref().expect("connection_made ran first");
        // `sendto` only refuses an address on a connected endpoint; this one
        // is not connected.
        let _ = transport.sendto(data, Some(addr));
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

    // One protocol instance will be created to serve all client requests.
    let transport = create_datagram_endpoint(
        EchoServerProtocol::default,
        DatagramOptions::default().local_addr((host, port)),
    )
    .await?;
    println!("Starting UDP server");

    // Serve for 1 hour (or until Ctrl-C), then close.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    transport.close();
    transport.closed().await;
    Ok(())
}
