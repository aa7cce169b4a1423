//! `Server::shutdown(grace)` and `Server::serve_until(signal, grace)`: stop
//! accepting, close every connection (flushing), abort what is left after the
//! grace period, and report how many of each. Real sockets on loopback.

mod common;
mod peers;

use std::time::Duration;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use tokio_transports::{ServerOptions, ShutdownReport, UnixEndpoint, create_unix_server};
use tokio_util::sync::CancellationToken;

/// Long enough never to end a test that works; the shutdowns that must
/// finish in time are given this.
const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn shutdown_flushes_every_connection_and_reports_them_closed() {
    let reg = Registry::new();
    const N: usize = 8 << 20;
    let (server, port) = echo_server(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write(vec![7u8; N]).unwrap();
            }
        }),
    )
    .await;
    let mut raw1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut raw2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s1 = reg.nth("server", 0).await;
    let s2 = reg.nth("server", 1).await;
    s1.wait_made().await;
    s2.wait_made().await;
    // The peers read while the shutdown waits: each gets every byte, then EOF.
    let (report, a, b) = guard("shutdown", async {
        tokio::join!(
            server.shutdown(LONG),
            read_to_eof(&mut raw1),
            read_to_eof(&mut raw2)
        )
    })
    .await;
    assert_eq!(
        report,
        ShutdownReport {
            closed: 2,
            aborted: 0
        }
    );
    assert!(report.is_clean());
    assert_eq!((a.len(), b.len()), (N, N));
    assert_eq!(s1.lost(), Some(None));
    assert_eq!(s2.lost(), Some(None));
    assert!(!server.is_serving());
    assert!(server.clients().is_empty());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "no connection is accepted once the shutdown began"
    );
    // Fully closed: `wait_closed` has nothing left to wait for.
    guard("wait_closed", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn shutdown_aborts_a_connection_whose_peer_does_not_read() {
    let reg = Registry::new();
    const N: usize = 16 << 20;
    // Only the first connection has a lot to send.
    let made = Arc::new(AtomicUsize::new(0));
    let (server, port) = echo_server(
        &reg,
        Config::default().hook(move |t, ev, _| {
            if *ev == Ev::Made && made.fetch_add(1, Ordering::Relaxed) == 0 {
                t.write(vec![7u8; N]).unwrap();
            }
        }),
    )
    .await;
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s_stuck = reg.nth("server", 0).await;
    // Its buffer is over the high watermark: the peer does not read.
    s_stuck.wait_event("pause_writing", Ev::is_pw).await;
    let idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s_idle = reg.nth("server", 1).await;
    s_idle.wait_made().await;
    // The idle connection has nothing to flush and closes at once; the stuck
    // one cannot finish its flush, so it is aborted when the grace ends.
    let report = guard("shutdown", server.shutdown(Duration::from_millis(300))).await;
    assert_eq!(
        report,
        ShutdownReport {
            closed: 1,
            aborted: 1
        }
    );
    assert!(!report.is_clean());
    assert_eq!(s_idle.lost(), Some(None));
    assert_eq!(
        s_stuck.lost(),
        Some(None),
        "abort() delivers connection_lost(None)"
    );
    assert!(server.clients().is_empty());
    let got = read_to_eof(&mut stuck).await;
    assert!(
        got.len() < N,
        "the aborted connection's buffer is discarded"
    );
    drop(idle);
    reg.finish().await;
}

#[tokio::test]
async fn shutdown_with_no_connections_and_again_after_close() {
    let reg = Registry::new();
    let (server, _) = echo_server(&reg, Config::echo()).await;
    let report = guard("shutdown", server.shutdown(LONG)).await;
    assert_eq!(report, ShutdownReport::default());
    // Twice, and after close(): nothing left, same answer.
    server.close();
    let again = guard("shutdown again", server.shutdown(LONG)).await;
    assert_eq!(again, ShutdownReport::default());
    reg.finish().await;
}

#[tokio::test]
async fn shutdown_counts_a_connection_closing_on_its_own_as_closed() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s = reg.nth("server", 0).await;
    s.wait_made().await;
    // The peer half-closes; the echo protocol closes on EOF.
    raw.shutdown().await.unwrap();
    let (report, _) = guard("shutdown", async {
        tokio::join!(server.shutdown(LONG), read_to_eof(&mut raw))
    })
    .await;
    assert_eq!(
        report,
        ShutdownReport {
            closed: 1,
            aborted: 0
        }
    );
    assert_eq!(s.lost(), Some(None));
    reg.finish().await;
}

#[tokio::test]
async fn serve_until_a_cancellation_token_then_shuts_down() {
    let reg = Registry::new();
    let opts = ServerOptions::default().start_serving(false);
    let server = tokio_transports::create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        opts,
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let token = CancellationToken::new();
    let serving = server.serve_until(token.clone().cancelled_owned(), LONG);
    tokio::pin!(serving);
    // The first poll starts listening; then it waits for the token.
    assert!(is_pending(serving.as_mut()));
    assert!(server.is_serving());
    // It serves: an echo round trip.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let round_trip = async {
        raw.write_all(b"ping").await.unwrap();
        read_n(&mut raw, 4).await
    };
    tokio::select! {
        got = round_trip => assert_eq!(got, b"ping"),
        _ = serving.as_mut() => panic!("serve_until returned before the token"),
    }
    token.cancel();
    let (report, rest) = guard("serve_until", async {
        tokio::join!(serving, read_to_eof(&mut raw))
    })
    .await;
    let report = report.unwrap();
    assert_eq!(
        report,
        ShutdownReport {
            closed: 1,
            aborted: 0
        }
    );
    assert!(rest.is_empty());
    assert!(!server.is_serving());
    reg.finish().await;
}

#[tokio::test]
async fn serve_until_returns_when_the_server_is_closed_elsewhere() {
    let reg = Registry::new();
    let (server, _) = echo_server(&reg, Config::echo()).await;
    let serving = server.serve_until(std::future::pending::<()>(), LONG);
    tokio::pin!(serving);
    assert!(is_pending(serving.as_mut()));
    server.close();
    let report = guard("serve_until", serving).await.unwrap();
    assert_eq!(report, ShutdownReport::default());
    // On a closed server it is an error, as serve_forever.
    let err = server
        .serve_until(std::future::pending::<()>(), LONG)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    reg.finish().await;
}

#[tokio::test]
async fn shutdown_of_a_unix_server_removes_its_socket_file() {
    let reg = Registry::new();
    let dir = std::env::temp_dir().join(format!("tt-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let server = create_unix_server(
        reg.factory("server", Config::echo()),
        UnixEndpoint::from(path.clone()),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let mut raw = UnixStream::connect(&path).await.unwrap();
    raw.write_all(b"x").await.unwrap();
    assert_eq!(read_n(&mut raw, 1).await, b"x");
    let (report, _) = guard("shutdown", async {
        tokio::join!(server.shutdown(LONG), read_to_eof(&mut raw))
    })
    .await;
    assert_eq!(
        report,
        ShutdownReport {
            closed: 1,
            aborted: 0
        }
    );
    assert!(!path.exists(), "the socket file is removed");
    let _ = std::fs::remove_dir_all(&dir);
    reg.finish().await;
}

#[test]
fn graceful_shutdown_example_reports_one_closed_one_aborted() {
    let out = peers::run_example("graceful_shutdown", GUARD);
    assert_eq!(
        out,
        "serving on 127.0.0.1:PORT\n\
         reader received 16777216 bytes, then EOF\n\
         shutdown: 1 closed, 1 aborted\n"
    );
}
