//! Tracing and counters: an echo server and a client in one process, with a
//! `tracing` subscriber printing the crate's DEBUG events inside each
//! connection's span, and each side's `stats()` printed at the end. Exits by
//! itself.
//!
//! ```text
//! cargo run --example observe
//! ... DEBUG server{listen=127.0.0.1:PORT}:transport{kind="tcp" tls=false peer=... local=...}: ... connection made
//! ...
//! client: 3 writes, 15 bytes sent, 15 bytes received, 0 pauses, callbacks took ...
//! server: ...
//! ```

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_transports::{
    BaseProtocol, Bytes, ConnectOptions, Protocol, ServerOptions, Transport, TransportStats,
    create_connection, create_server, set_callback_timing,
};

/// Echoes, and logs each chunk (inside the connection's span).
#[derive(Default)]
struct Echo(Option<Transport>);

impl BaseProtocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.0 = Some(t.clone());
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        tracing::info!(len = data.len(), "echoing");
        if let Some(t) = &self.0 {
            let _ = t.write(data);
        }
    }
}

/// Counts what comes back and says when all of it did.
struct Client {
    want: usize,
    got: usize,
    done: mpsc::UnboundedSender<()>,
}

impl BaseProtocol for Client {}

impl Protocol for Client {
    fn data_received(&mut self, data: Bytes) {
        self.got += data.len();
        if self.got == self.want {
            let _ = self.done.send(());
        }
    }
}

fn show(who: &str, s: TransportStats) {
    println!(
        "{who}: {} writes, {} bytes sent, {} bytes received, {} pauses, callbacks took {:?}",
        s.writes,
        s.bytes_sent,
        s.bytes_received,
        s.pauses,
        s.callback_time.unwrap_or(Duration::ZERO)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .init();
    // Time the callbacks of the transports made from here on.
    set_callback_timing(true);

    let server = create_server(Echo::default, "127.0.0.1", 0, ServerOptions::default()).await?;
    let addr = server.sockets()[0];
    let (done, mut all_back) = mpsc::unbounded_channel();
    let lines = ["hello", " tracing", " !"];
    let want = lines.iter().map(|l| l.len()).sum();
    let client = create_connection(
        move || Client { want, got: 0, done },
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default(),
    )
    .await?;
    for line in lines {
        client.write(line).map_err(std::io::Error::other)?;
    }
    all_back.recv().await;
    let accepted = server.clients();
    show("client", client.stats());
    if let Some(s) = accepted.first() {
        show("server", s.stats());
    }
    client.close();
    client.closed().await;
    let report = server.shutdown(Duration::from_secs(1)).await;
    println!(
        "shutdown: {} closed, {} aborted",
        report.closed, report.aborted
    );
    Ok(())
}
