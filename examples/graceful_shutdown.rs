//! A server shut down in one call: `Server::serve_until` serves until a
//! `CancellationToken` (or Ctrl-C) fires, then `Server::shutdown` stops
//! accepting, closes every connection (each flushes first), aborts what has
//! not finished when the grace period ends, and reports both counts.
//!
//! Run without arguments it demonstrates itself and exits: two clients
//! connect, one reads everything the server sends, the other reads nothing
//! while the server has 16 MiB for it; then the token is cancelled.
//!
//! ```text
//! serving on 127.0.0.1:PORT
//! reader received 16777216 bytes, then EOF
//! shutdown: 1 closed, 1 aborted
//! ```
//!
//! With `--serve [PORT]` it serves (every connection gets a greeting and an
//! echo) until Ctrl-C, then shuts down with a 5 s grace period.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_transports::{BaseProtocol, Bytes, Protocol, ServerOptions, Transport, create_server};
use tokio_util::sync::CancellationToken;

/// Sends `greeting` when connected (and says so on `made`), then echoes.
struct Greeter {
    greeting: Bytes,
    made: Option<mpsc::UnboundedSender<()>>,
    transport: Option<Transport>,
}

impl BaseProtocol for Greeter {
    fn connection_made(&mut self, transport: &Transport) {
        // Ignored result: the connection can only be lost here, and
        // `connection_lost` reports it.
        let _ = transport.write(self.greeting.clone());
        if let Some(made) = &self.made {
            let _ = made.send(());
        }
        self.transport = Some(transport.clone());
    }
}

impl Protocol for Greeter {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            let _ = t.write(data);
        }
    }
}

const GREETING: usize = 16 << 20;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8888);
        return serve(port).await;
    }
    demo().await
}

/// Serve until Ctrl-C.
async fn serve(port: u16) -> std::io::Result<()> {
    let factory = || Greeter {
        greeting: Bytes::from_static(b"hello\n"),
        made: None,
        transport: None,
    };
    let server = create_server(factory, "127.0.0.1", port, ServerOptions::default()).await?;
    println!("serving on {}; Ctrl-C to stop", server.sockets()[0]);
    let report = server
        .serve_until(tokio::signal::ctrl_c(), Duration::from_secs(5))
        .await?;
    println!(
        "shutdown: {} closed, {} aborted",
        report.closed, report.aborted
    );
    Ok(())
}

/// Two clients, one that reads and one that does not, then the token.
async fn demo() -> std::io::Result<()> {
    let big = Bytes::from(vec![b'x'; GREETING]);
    let (made_tx, mut made) = mpsc::unbounded_channel();
    let factory = move || Greeter {
        greeting: big.clone(),
        made: Some(made_tx.clone()),
        transport: None,
    };
    let server = create_server(factory, "127.0.0.1", 0, ServerOptions::default()).await?;
    let addr = server.sockets()[0];
    println!("serving on 127.0.0.1:PORT");

    let token = CancellationToken::new();
    let serving = tokio::spawn({
        let (server, token) = (server.clone(), token.clone());
        async move {
            server
                .serve_until(token.cancelled_owned(), Duration::from_secs(2))
                .await
        }
    });

    // The client that reads: everything the server sent, then EOF.
    let mut reader = TcpStream::connect(addr).await?;
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.map(|_| got.len())
    });
    // The client that does not read.
    let _stuck = TcpStream::connect(addr).await?;
    // Both connections are made on the server's side.
    for _ in 0..2 {
        made.recv().await;
    }

    token.cancel();
    let report = serving.await.map_err(std::io::Error::other)??;
    let received = reading.await.map_err(std::io::Error::other)??;
    println!("reader received {received} bytes, then EOF");
    println!(
        "shutdown: {} closed, {} aborted",
        report.closed, report.aborted
    );
    Ok(())
}
