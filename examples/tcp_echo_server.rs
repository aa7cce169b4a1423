//! TCP echo server: the asyncio documentation's "TCP Echo Server" example
//! (`loop.create_server()`), line for line, with the same output.
//!
//! ```text
//! cargo run --example tcp_echo_server              # 127.0.0.1:8888
//! cargo run --example tcp_echo_server -- 127.0.0.1 9000
//! ```
//!
//! Then run `cargo run --example tcp_echo_client` (or the Python client in
//! `tests/python/tcp_echo_client.py`). For each connection it prints:
//!
//! ```text
//! Connection from ('127.0.0.1', 54321)
//! Data received: 'Hello World!'
//! Send: 'Hello World!'
//! Close the client socket
//! ```
//!
//! The Python original:
//!
//! ```python
//! class EchoServerProtocol(asyncio.Protocol):
//!     def connection_made(self, transport):
//!         peername = transport.get_extra_info('peername')
//!         print('Connection from {}'.format(peername))
//!         self.transport = transport
//!
//!     def data_received(self, data):
//!         message = data.decode()
//!         print('Data received: {!r}'.format(message))
//!
//!         print('Send: {!r}'.format(message))
//!         self.transport.write(data)
//!
//!         print('Close the client socket')
//!         self.transport.close()
//!
//! async def main():
//!     loop = asyncio.get_running_loop()
//!     server = await loop.create_server(EchoServerProtocol, '127.0.0.1', 8888)
//!     async with server:
//!         await server.serve_forever()
//!
//! asyncio.run(main())
//! ```

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ExtraInfo, Protocol, ServerOptions, Transport, create_server,
};

mod common;
use common::py_repr;

#[derive(Default)]
struct EchoServerProtocol {
    transport: Option<Transport>,
}

impl BaseProtocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let peername = match transport.get_extra_info("peername") {
            // SocketAddress prints like Python's address tuple.
            Some(ExtraInfo::Address(addr)) => addr.to_string(),
            _ => "None".to_string(),
        };
        println!("Connection from {peername}");
        self.transport = Some(transport.clone());
    }
}

impl Protocol for EchoServerProtocol {
    fn data_received(&mut self, data: Bytes) {
        let message = String::from_utf8_lossy(&data);
        println!("Data received: {}", py_repr(&message));

        println!("Send: {}", py_repr(&message));
        let transport = self.transport.as_ref().expect("connection_made ran first");
        // `write` only fails after `write_eof()`, which this protocol never calls.
        let _ = transport.write(data);

        println!("Close the client socket");
        transport.close();
    }
}

// One thread, like asyncio's event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let (host, port) = common::host_port()?;

    let server = create_server(
        EchoServerProtocol::default,
        host.as_str(),
        port,
        ServerOptions::default(),
    )
    .await?;

    // Dropping the server (like leaving `async with server`) closes it.
    server.serve_forever().await
}
