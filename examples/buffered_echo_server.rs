//! The TCP echo server of `tcp_echo_server`, written as a
//! `BufferedProtocol`: the transport reads straight into a buffer the
//! protocol owns (asyncio's `get_buffer()`/`buffer_updated()`), with no copy
//! in between. Same command line and same output:
//!
//! ```text
//! Connection from ('127.0.0.1', 54321)
//! Data received: 'Hello World!'
//! Send: 'Hello World!'
//! Close the client socket
//! ```
//!
//! In Python this would be:
//!
//! ```python
//! class EchoServerProtocol(asyncio.BufferedProtocol):
//!     def __init__(self):
//!         self.buffer = bytearray(65536)
//!
//!     def connection_made(self, transport):
//!         peername = transport.get_extra_info('peername')
//!         print('Connection from {}'.format(peername))
//!         self.transport = transport
//!
//!     def get_buffer(self, sizehint):
//!         return self.buffer
//!
//!     def buffer_updated(self, nbytes):
//!         data = bytes(self.buffer[:nbytes])
//!         message = data.decode()
//!         print('Data received: {!r}'.format(message))
//!         print('Send: {!r}'.format(message))
//!         self.transport.write(data)
//!         print('Close the client socket')
//!         self.transport.close()
//! ```
//!
//! A Rust `BufferedProtocol` is passed wrapped in `Buffered(...)`, which tells
//! the transport to call `get_buffer`/`buffer_updated` instead of
//! `data_received`.

use std::io;

use tokio_transports::{
    BaseProtocol, Buffered, BufferedProtocol, BytesMut, ExtraInfo, ServerOptions, Transport,
    create_server,
};

mod common;
use common::py_repr;

#[derive(Default)]
struct EchoServerProtocol {
    transport: Option<Transport>,
    buffer: BytesMut,
}

impl BaseProtocol for EchoServerProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let peername = match transport.get_extra_info("peername") {
            Some(ExtraInfo::Address(addr)) => addr.to_string(),
            _ => "None".to_string(),
        };
        println!("Connection from {peername}");
        self.transport = Some(transport.clone());
    }
}

impl BufferedProtocol for EchoServerProtocol {
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
        // The transport appends after `len()`, into the spare capacity.
        self.buffer.reserve(sizehint.max(64 * 1024));
        &mut self.buffer
    }

    fn buffer_updated(&mut self, _nbytes: usize) {
        // Take what was received out of the buffer (no copy: `split` hands
        // over the filled part; the next `get_buffer` reserves anew).
        let data = self.buffer.split().freeze();
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
        || Buffered(EchoServerProtocol::default()),
        host.as_str(),
        port,
        ServerOptions::default(),
    )
    .await?;

    server.serve_forever().await
}
