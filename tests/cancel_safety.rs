//! Cancel safety of the creation futures: a `create_connection` (or
//! `create_unix_connection`, `open_connection`) future dropped before it
//! returned leaves no connection behind. Dropped before `connection_made`
//! ran, the protocol hears nothing and the socket closes; dropped after it
//! ran (but before the future returned the transport), the connection is
//! closed and the protocol gets `connection_lost(None)`. The peer sees the
//! end either way. (TLS handshakes: `tests/tls.rs`; child processes:
//! `tests/subprocess.rs`.)
//!
//! The tests run on the current-thread runtime, so that the transport's
//! task cannot run between the poll that spawned it and the drop.

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UnixListener};
use tokio_transports::{ConnectOptions, create_connection, create_unix_connection};

/// Poll `fut` until the protocol factory has been called (the transport's
/// task is spawned then, in the same poll), then drop it.
async fn drop_once_spawned<F: Future>(fut: F, factory_calls: &Counter) {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        if fut.as_mut().poll(cx).is_ready() {
            panic!("the future returned before its task ran");
        }
        if factory_calls.get() > 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Read until the peer's end: EOF, or a reset (either way, closed).
async fn until_closed(mut sock: impl tokio::io::AsyncRead + Unpin) {
    let mut buf = [0u8; 64];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_create_connection_dropped_before_connection_made_closes_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::new("client");
    let calls = Counter::default();
    let (l, c) = (log.clone(), calls.clone());
    let connect = create_connection(
        move || {
            c.incr();
            Recorder::new(l, Config::default())
        },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    );
    drop_once_spawned(connect, &calls).await;
    let (sock, _) = guard("accept", listener.accept()).await.unwrap();
    guard("the peer sees the end", until_closed(sock)).await;
    assert_eq!(calls.get(), 1);
    assert!(
        log.events().is_empty(),
        "no callback: the caller gave up before connection_made: {:?}",
        log.events()
    );
}

#[tokio::test]
async fn a_create_connection_dropped_after_connection_made_closes_the_connection() {
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Counter::default();
    let c = calls.clone();
    let f = reg.factory("client", Config::default());
    let connect = create_connection(
        move || {
            c.incr();
            f()
        },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    );
    // Boxed, so that `drop` drops the future itself (not a pinned reference).
    let mut connect = Box::pin(connect);
    // Run the future until its task is spawned, then let the task run
    // `connection_made` while the future is not polled again.
    poll_fn(|cx| {
        assert!(connect.as_mut().poll(cx).is_pending());
        if calls.get() > 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let log = reg.nth("client", 0).await;
    guard("connection_made", log.wait_made()).await;
    // The transport is ready, but the caller never got it: dropping the
    // future closes it.
    drop(connect);
    assert_eq!(guard("connection_lost", log.wait_lost()).await, None);
    let (sock, _) = guard("accept", listener.accept()).await.unwrap();
    guard("the peer sees the end", until_closed(sock)).await;
    reg.finish().await;
}

#[tokio::test]
async fn a_create_unix_connection_dropped_before_connection_made_closes_the_socket() {
    let dir = std::env::temp_dir().join(format!("tt-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let log = Log::new("client");
    let calls = Counter::default();
    let (l, c) = (log.clone(), calls.clone());
    let connect = create_unix_connection(
        move || {
            c.incr();
            Recorder::new(l, Config::default())
        },
        &path,
        ConnectOptions::default(),
    );
    drop_once_spawned(connect, &calls).await;
    let (sock, _) = guard("accept", listener.accept()).await.unwrap();
    guard("the peer sees the end", until_closed(sock)).await;
    assert!(log.events().is_empty(), "{:?}", log.events());
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "streams")]
#[tokio::test]
async fn an_open_connection_dropped_before_it_returned_closes_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = tokio_transports::streams::open_connection("127.0.0.1", port, Default::default());
    let mut open = Box::pin(open);
    // Poll it until the peer accepted the connection, then drop it (most
    // often its transport exists by then and waits for `connection_made`;
    // a stream it returned meanwhile is dropped too, which closes it).
    let accepted = listener.accept();
    let mut accepted = pin!(accepted);
    let mut done = false;
    let sock = poll_fn(|cx| {
        if !done {
            done = open.as_mut().poll(cx).is_ready();
        }
        accepted.as_mut().poll(cx)
    })
    .await
    .unwrap()
    .0;
    drop(open);
    guard("the peer sees the end", until_closed(sock)).await;
}

/// A datagram protocol that reports its two lifecycle callbacks.
struct Lifecycle(tokio::sync::mpsc::UnboundedSender<&'static str>);

impl tokio_transports::DatagramProtocol for Lifecycle {
    fn connection_made(&mut self, _t: &tokio_transports::DatagramTransport) {
        let _ = self.0.send("made");
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        let _ = self.0.send("lost");
    }
}

#[tokio::test]
async fn a_create_datagram_endpoint_dropped_before_it_returned_closes_the_endpoint() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let calls = Counter::default();
    let c = calls.clone();
    let create = tokio_transports::create_datagram_endpoint(
        move || {
            c.incr();
            Lifecycle(tx)
        },
        tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0)),
    );
    drop_once_spawned(create, &calls).await;
    // The endpoint ran `connection_made` (its task had been spawned), then
    // closed: nobody holds it.
    assert_eq!(guard("made", rx.recv()).await, Some("made"));
    assert_eq!(guard("lost", rx.recv()).await, Some("lost"));
    assert_eq!(guard("protocol dropped", rx.recv()).await, None);
}
