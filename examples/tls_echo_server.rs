//! TLS echo server: the asyncio documentation's "TCP Echo Server" example
//! with `ssl=`, line for line, with the same output as `tcp_echo_server`.
//!
//! ```text
//! cargo run --example tls_echo_server              # 127.0.0.1:8443
//! cargo run --example tls_echo_server -- 127.0.0.1 9443
//! ```
//!
//! At start it makes a test CA and a certificate for `localhost` and
//! `127.0.0.1`, and writes `ca.pem`, `cert.pem` and `key.pem` into
//! `$TLS_ECHO_DIR` (default: `tokio-transports-tls-echo` in the temporary
//! directory), where `tls_echo_client` (or `tests/python/tls_echo_client.py`)
//! finds the CA to trust. For each connection it prints:
//!
//! ```text
//! Connection from ('127.0.0.1', 54321)
//! Data received: 'Hello World!'
//! Send: 'Hello World!'
//! Close the client socket
//! ```
//!
//! The Python original is the TCP one with a server context:
//!
//! ```python
//! ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
//! ssl_ctx.load_cert_chain('cert.pem', 'key.pem')
//! server = await loop.create_server(EchoServerProtocol, '127.0.0.1', 8443, ssl=ssl_ctx)
//! ```
//!
//! `close()` on a TLS transport flushes, sends close_notify and waits for
//! the client's before the socket closes.

use std::io;

use tokio_transports::{
    BaseProtocol, Bytes, ExtraInfo, Protocol, ServerOptions, ServerTls, Transport, create_server,
};

mod common;
#[path = "common/tls.rs"]
mod tls_common;
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
    let (host, port) = common::host_port_or(8443)?;
    // A fresh certificate for localhost and 127.0.0.1; the CA that signed it
    // goes to `ca.pem` for the client (see examples/common/tls.rs).
    let tls = ServerTls::new(tls_common::make_server_config()?);

    let server = create_server(
        EchoServerProtocol::default,
        host.as_str(),
        port,
        ServerOptions::default().ssl(tls),
    )
    .await?;

    // Dropping the server (like leaving `async with server`) closes it.
    server.serve_forever().await
}
