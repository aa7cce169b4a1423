//! Counters (`Transport::stats`, `DatagramTransport::stats`) and tracing
//! (a span per transport and per server, debug events for made, lost,
//! pauses and TLS handshakes), on real sockets.
#![cfg(feature = "tls")]

mod common;
mod peers;
#[cfg(feature = "tls")]
mod tls_support;

use std::error::Error;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_transports::{
    BaseProtocol, Bytes, ConnectOptions, DatagramOptions, Protocol, ServerOptions, Transport,
    create_connection, create_datagram_endpoint, create_server,
};
use tracing_subscriber::fmt::MakeWriter;

type Res = Result<(), Box<dyn Error>>;

#[tokio::test]
async fn stream_counters_count_bytes_writes_and_drops() -> Res {
    // Every test of this binary installs a subscriber before it makes a
    // transport (see `capture`).
    let (_out, _guard) = capture();
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await?;
    let log = reg.nth("client", 0).await;
    t.write("hello")?;
    t.writelines(["one", "", "two"])?;
    // From another thread: the channel's path.
    let t2 = t.clone();
    std::thread::spawn(move || t2.write(" and more"))
        .join()
        .map_err(|_| "writer thread panicked")??;
    t.drain().await?;
    log.wait_until("the echo", |ev| received_in(ev).len() == 20)
        .await;
    let stats = t.stats();
    assert_eq!(stats.writes, 3);
    assert_eq!(stats.bytes_sent, 20);
    assert_eq!(stats.bytes_received, 20);
    assert_eq!((stats.pauses, stats.dropped_writes), (0, 0));
    // The server's side: the echo wrote what it received, in callbacks.
    let s = reg.nth("server", 0).await.transport();
    barrier(&s).await;
    let ss = s.stats();
    assert_eq!((ss.bytes_received, ss.bytes_sent), (20, 20));
    assert!((1..=3).contains(&ss.writes), "{ss:?}");
    // After the loss: a dropped write counts in both.
    t.abort();
    t.closed().await;
    t.write("late")?;
    let after = t.stats();
    assert_eq!((after.writes, after.dropped_writes), (4, 1));
    shutdown(&server).await;
    reg.finish().await;
    Ok(())
}

#[tokio::test]
async fn pauses_are_counted_once_per_crossing_and_logged() -> Res {
    let (out, _guard) = capture();
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    // The peer does not read: the buffer goes over the high watermark.
    t.write(vec![1u8; 8 << 20])?;
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert_eq!(t.stats().pauses, 1);
    // The peer reads it all: resume, and every byte counted as sent.
    let got = read_n(&mut peer, 8 << 20).await;
    assert_eq!(got.len(), 8 << 20);
    t.drain().await?;
    log.wait_event("resume_writing", Ev::is_rw).await;
    let stats = t.stats();
    assert_eq!(
        (stats.pauses, stats.bytes_sent, stats.writes),
        (1, 8 << 20, 1)
    );
    t.close();
    log.wait_lost().await;
    reg.finish().await;
    let text = out.text();
    assert!(
        text.contains("pause_writing") && text.contains("resume_writing"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn datagram_counters() -> Res {
    // Every test of this binary installs a subscriber before it makes a
    // transport (see `capture`).
    let (_out, _guard) = capture();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = create_datagram_endpoint(
        move || Counting { tx: tx.clone() },
        DatagramOptions::default().local_addr(("127.0.0.1", 0)),
    )
    .await?;
    let to = server.sockname().ok_or("no sockname")?;
    let client =
        create_datagram_endpoint(|| (), DatagramOptions::default().remote_addr(to)).await?;
    client.sendto("abc", None)?;
    client.sendto("defgh", None)?;
    let first = guard("first datagram", rx.recv()).await;
    let second = guard("second datagram", rx.recv()).await;
    assert_eq!((first, second), (Some(3), Some(5)));
    let c = client.stats();
    assert_eq!((c.writes, c.bytes_sent), (2, 8));
    assert_eq!(server.stats().bytes_received, 8);
    client.close();
    server.close();
    Ok(())
}

struct Counting {
    tx: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl tokio_transports::DatagramProtocol for Counting {
    fn datagram_received(&mut self, data: Bytes, _addr: tokio_transports::SocketAddress) {
        let _ = self.tx.send(data.len());
    }
}

/// Sleeps in `data_received` (so the time spent in callbacks is known to be
/// at least that), then says so.
struct Slow {
    done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl BaseProtocol for Slow {}

impl Protocol for Slow {
    fn data_received(&mut self, _data: Bytes) {
        std::thread::sleep(Duration::from_millis(30));
        let _ = self.done.send(());
    }
}

#[tokio::test]
async fn callback_time_is_measured_when_switched_on() -> Res {
    // Every test of this binary installs a subscriber before it makes a
    // transport (see `capture`).
    let (_out, _guard) = capture();
    let (done, mut slept) = tokio::sync::mpsc::unbounded_channel();
    // Switched on for transports made from now on (process-wide; the other
    // tests of this binary do not look at it).
    tokio_transports::set_callback_timing(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let t = create_connection(
        move || Slow { done },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await?;
    tokio_transports::set_callback_timing(false);
    let (mut peer, _) = listener.accept().await?;
    tokio::io::AsyncWriteExt::write_all(&mut peer, b"x").await?;
    guard("data_received", slept.recv()).await;
    // The callback has returned once the task answers.
    barrier(&t).await;
    let spent = t.stats().callback_time.ok_or("timing was on")?;
    assert!(spent >= Duration::from_millis(30), "{spent:?}");
    Ok(())
}

/// Everything a `fmt` subscriber writes, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A DEBUG subscriber for this thread (the test runtime is current-thread,
/// so every task of the test runs under it). Every test of this binary that
/// makes transports calls this first: tracing caches each call site's
/// interest when it is first hit, and a site first hit on a thread with no
/// subscriber while another test is installing its own could be cached as
/// "never", losing that test's spans.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(out.clone())
        .finish();
    (out, tracing::subscriber::set_default(subscriber))
}

/// Writes a greeting from `connection_made`, then closes.
struct Greeter;

impl BaseProtocol for Greeter {
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport.write("hi");
        transport.close();
    }
}

impl Protocol for Greeter {}

#[tokio::test]
async fn spans_and_events_for_a_server_and_its_connections() -> Res {
    let (out, _guard) = capture();
    let server = create_server(|| Greeter, "127.0.0.1", 0, ServerOptions::default()).await?;
    let addr = server.sockets()[0];
    let mut peer = TcpStream::connect(addr).await?;
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await?;
    assert_eq!(got, b"hi");
    server.close();
    server.wait_closed().await;
    let text = out.text();
    let local = addr.to_string();
    for want in [
        "connection made",
        "connection lost",
        "server closed",
        "kind=\"tcp\"",
        "tls=false",
        &format!("listen={local}"),
        &format!("local={local}"),
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // The connection's span is a child of the server's.
    assert!(
        text.lines().any(|l| l.contains("server{")
            && l.contains("transport{")
            && l.contains("connection made")),
        "{text}"
    );
    Ok(())
}

/// Logs from `data_received`, then closes.
#[derive(Default)]
struct LogThenClose(Option<Transport>);

impl BaseProtocol for LogThenClose {
    fn connection_made(&mut self, transport: &Transport) {
        self.0 = Some(transport.clone());
    }
}

impl Protocol for LogThenClose {
    fn data_received(&mut self, _data: Bytes) {
        tracing::info!("from the protocol");
        if let Some(t) = &self.0 {
            t.close();
        }
    }
}

#[tokio::test]
async fn protocol_events_carry_the_connection_span() -> Res {
    let (out, _guard) = capture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let t = create_connection(
        LogThenClose::default,
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await?;
    let (mut peer, _) = listener.accept().await?;
    tokio::io::AsyncWriteExt::write_all(&mut peer, b"x").await?;
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await?;
    t.closed().await;
    let text = out.text();
    let line = text
        .lines()
        .find(|l| l.contains("from the protocol"))
        .ok_or_else(|| format!("no protocol event in:\n{text}"))?;
    assert!(
        line.contains("transport{") && line.contains(&format!("peer=127.0.0.1:{port}")),
        "{line}"
    );
    Ok(())
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_handshakes_are_logged() -> Res {
    let (out, _guard) = capture();
    let pki = tls_support::Pki::new();
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await?;
    let port = server.sockets()[0].port();
    let (t, log) = tls_support::tls_client_to(&reg, "localhost", port, pki.client()).await?;
    t.write("ping")?;
    log.wait_until("echo", |ev| received_in(ev).len() == 4)
        .await;
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
    let text = out.text();
    assert!(text.contains("TLS handshake done"), "{text}");
    assert!(text.contains("tls=true"), "{text}");
    Ok(())
}

#[cfg(all(feature = "process", target_os = "linux"))]
#[tokio::test]
async fn a_child_process_has_a_span_with_its_pipes_inside() -> Res {
    let (out, _guard) = capture();
    let t = tokio_transports::subprocess_exec(
        || (),
        "sh",
        ["-c", "echo hi"],
        tokio_transports::SubprocessOptions::default(),
    )
    .await?;
    let pid = t.get_pid();
    t.closed().await;
    let text = out.text();
    assert!(text.contains(&format!("subprocess{{pid={pid}}}")), "{text}");
    assert!(text.contains("process exited"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("subprocess{") && l.contains("kind=\"pipe\"")),
        "the pipes' spans are the child's: {text}"
    );
    Ok(())
}

#[test]
fn the_observe_example_logs_in_spans_and_prints_the_counters() {
    let out = peers::run_example("observe", GUARD);
    for want in [
        "server{listen=127.0.0.1:",
        "connection made",
        "echoing len=15",
        "client: 3 writes, 15 bytes sent, 15 bytes received, 0 pauses, callbacks took",
        "server: 1 writes, 15 bytes sent, 15 bytes received",
        "shutdown: 1 closed, 0 aborted",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

#[test]
fn the_protocol_test_example_runs_the_test_kit() {
    let out = peers::run_example("protocol_test", GUARD);
    assert_eq!(
        out,
        "fed \"hel\", wrote \"\"\n\
         fed \"lo\\nwor\", wrote \"HELLO\\n\"\n\
         fed \"ld\\n\", wrote \"WORLD\\n\"\n\
         peer stopped reading: 1 MiB queued, writing paused: true\n\
         peer reads again: writing paused: false\n\
         fed EOF: closed: true, every callback in order\n"
    );
}
