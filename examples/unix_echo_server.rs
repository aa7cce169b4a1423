//! Unix echo server: the asyncio documentation's "TCP Echo Server" example
//! on a Unix socket (`loop.create_unix_server()`), same protocol, same
//! output (a Unix client's address is the empty name, printed as nothing,
//! as Python's `str('')`).
//!
//! ```text
//! cargo run --example unix_echo_server                       # $TMPDIR/tokio-transports-echo.sock
//! cargo run --example unix_echo_server -- /tmp/echo.sock
//! ```
//!
//! Then run `cargo run --example unix_echo_client` with the same path. For
//! each connection it prints:
//!
//! ```text
//! Connection from
//! Data received: 'Hello World!'
//! Send: 'Hello World!'
//! Close the client socket
//! ```
//!
//! The Python original is the TCP one with
//! `server = await loop.create_unix_server(EchoServerProtocol, path)`.

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ExtraInfo, Protocol, ServerOptions, Transport, create_unix_server,
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
    let path = common::unix_path()?;

    // A stale socket file at the path is replaced; the file is removed
    // again when the server closes.
    let server =
        create_unix_server(EchoServerProtocol::default, path, ServerOptions::default()).await?;

    // Dropping the server (like leaving `async with server`) closes it.
    server.serve_forever().await
}
