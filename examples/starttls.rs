//! STARTTLS: a plaintext greeting, then an upgrade of the same connection to
//! TLS, as SMTP, IMAP and XMPP do, with `start_tls` on both sides (asyncio's
//! `loop.start_tls()`). Server and client run in this one process.
//!
//! ```text
//! cargo run --example starttls                 # on 127.0.0.1, any free port
//! ```
//!
//! It prints (the two sides' lines may interleave differently):
//!
//! ```text
//! [server] listening on 127.0.0.1:PORT (plaintext)
//! [client] got: "220 ready (plaintext)"
//! [server] got: "STARTTLS"
//! [client] got: "220 go ahead"
//! [client] TLS is up: TLSv1_3
//! [server] got: "EHLO client.example"
//! [server] TLS is up: TLSv1_3
//! [client] got: "250 hello, this line was encrypted"
//! [server] connection_lost: None
//! [client] connection_lost: None
//! ```
//!
//! The server's certificate is made at start, as `tls_echo_server` does
//! (see `examples/common/tls.rs`).
//!
//! Both protocols keep the `Transport` they got in `connection_made`: after
//! `start_tls` it is the same handle, now encrypting, and neither protocol
//! sees a second `connection_made`.

use std::io;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_transports::{
    BaseProtocol, Bytes, ClientTls, ConnectOptions, Protocol, ServerOptions, ServerTls, StartTls,
    Transport, create_connection, create_server, start_tls,
};

#[path = "common/tls.rs"]
mod tls_common;

/// Prints the lines it receives, and reports each step to `main`.
struct Peer {
    name: &'static str,
    transport: Option<Transport>,
    upgrade: Option<StartTls>,
    done: mpsc::UnboundedSender<String>,
}

impl Peer {
    fn t(&self) -> &Transport {
        self.transport.as_ref().expect("connection_made ran first")
    }

    /// Call `start_tls` (from this callback: what this protocol writes from
    /// now on goes out encrypted) and report when it is up.
    fn upgrade(&mut self) {
        let Some(tls) = self.upgrade.take() else {
            return;
        };
        let t = self.t().clone();
        let name = self.name;
        let done = self.done.clone();
        let handshake = start_tls(&t, tls);
        tokio::spawn(async move {
            match handshake.await {
                Ok(()) => {
                    let version = t.tls_info().and_then(|i| i.protocol_version);
                    let version = version.map(|v| format!("{v:?}")).unwrap_or_default();
                    println!("[{name}] TLS is up: {version}");
                    let _ = done.send(format!("{name} upgraded"));
                }
                Err(e) => println!("[{name}] TLS failed: {e}"),
            }
        });
    }
}

impl BaseProtocol for Peer {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        if self.name == "server" {
            let _ = transport.write("220 ready (plaintext)\r\n");
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        println!("[{}] connection_lost: {exc:?}", self.name);
        let _ = self.done.send(format!("{} lost", self.name));
    }
}

impl Protocol for Peer {
    fn data_received(&mut self, data: Bytes) {
        for line in String::from_utf8_lossy(&data).lines() {
            println!("[{}] got: {line:?}", self.name);
            match (self.name, line) {
                ("client", "220 ready (plaintext)") => {
                    let _ = self.t().write("STARTTLS\r\n");
                }
                ("server", "STARTTLS") => {
                    // Sent in plaintext: written before the call.
                    let _ = self.t().write("220 go ahead\r\n");
                    self.upgrade();
                }
                ("client", "220 go ahead") => {
                    self.upgrade();
                    // Written after the call: sent encrypted.
                    let _ = self.t().write("EHLO client.example\r\n");
                }
                ("server", "EHLO client.example") => {
                    let _ = self.t().write("250 hello, this line was encrypted\r\n");
                }
                ("client", "250 hello, this line was encrypted") => self.t().close(),
                _ => {}
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let server_config = tls_common::make_server_config()?;
    let client_config = tls_common::client_config()?;
    let (done, mut steps) = mpsc::unbounded_channel();

    let server_done = done.clone();
    let server = create_server(
        move || Peer {
            name: "server",
            transport: None,
            upgrade: Some(ServerTls::new(Arc::clone(&server_config)).into()),
            done: server_done.clone(),
        },
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await?;
    let port = server.sockets()[0].port();
    println!("[server] listening on 127.0.0.1:{port} (plaintext)");

    let client_tls = ClientTls::new(client_config).server_hostname("localhost");
    let _client = create_connection(
        move || Peer {
            name: "client",
            transport: None,
            upgrade: Some(client_tls.into()),
            done,
        },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await?;

    // Both upgrades and both ends (in whatever order they come).
    for _ in 0..4 {
        if steps.recv().await.is_none() {
            break;
        }
    }
    server.close();
    server.wait_closed().await;
    Ok(())
}
