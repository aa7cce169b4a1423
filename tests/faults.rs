//! Faults: panicking callbacks and factories, peer resets, writes after the
//! connection is lost, and what the exception handler hears about them.
//!
//! Every test here installs the (process-global) exception handler through
//! [`ExcCapture`], which serializes them.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{AnyProtocol, ConnectOptions, Transport, create_connection, create_server};

const MIB: usize = 1 << 20;

fn panics_in(callback: &'static str) -> Config {
    Config::echo().hook(move |_, ev, _| {
        let name = match ev {
            Ev::Made => "connection_made",
            Ev::Data(_) => "data_received",
            Ev::GetBuffer(_) => "get_buffer",
            Ev::BufferUpdated { .. } => "buffer_updated",
            Ev::Eof => "eof_received",
            Ev::Lost(_) => "connection_lost",
            _ => return,
        };
        if name == callback {
            panic!("panic in {callback}");
        }
    })
}

async fn client(reg: &Registry, port: u16) -> (Transport, Log) {
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    (t, log)
}

/// The second connection a server accepts panics in `callback`; the first
/// (live during the failure) and a third one keep echoing.
async fn only_the_victim_dies(callback: &'static str, buffered: bool, trigger: fn(&Transport)) {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let normal = reg.factory("server", Config::echo());
    let victim = reg.factory("victim", panics_in(callback));
    let n = Counter::default();
    let factory = move || {
        let r = if n.incr() == 2 { victim() } else { normal() };
        if buffered {
            AnyProtocol::buffered(r)
        } else {
            AnyProtocol::stream(r)
        }
    };
    let server = create_server(factory, "127.0.0.1", 0, Default::default())
        .await
        .unwrap();
    let port = server.sockets()[0].port();

    let (a, alog) = client(&reg, port).await;
    a.write("first").unwrap();
    alog.wait_received(5).await;

    let (b, blog) = client(&reg, port).await;
    trigger(&b);
    let vlog = reg.nth("victim", 0).await;
    let err = vlog.wait_lost().await.expect("connection_lost(Some(..))");
    let payload = err
        .panicked
        .clone()
        .unwrap_or_else(|| panic!("the error does not downcast to CallbackPanicked: {err:?}"));
    assert_eq!(payload.callback, callback);
    assert_eq!(payload.message, format!("panic in {callback}"));
    let message = format!("Fatal error: protocol.{callback}() call failed.");
    let report = exc
        .wait_for(&message, |r| {
            r.message == message && r.peername == b.sockname()
        })
        .await;
    assert_eq!(report.panicked, Some(payload));
    // The victim's peer sees the connection end.
    blog.wait_lost().await;

    // The live connection still echoes; the server still accepts.
    a.write("second").unwrap();
    assert_eq!(alog.wait_received(11).await, b"firstsecond");
    let (c, clog) = client(&reg, port).await;
    c.write("third").unwrap();
    assert_eq!(clog.wait_received(5).await, b"third");
    a.close();
    c.close();
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn panic_in_data_received() {
    only_the_victim_dies("data_received", false, |t| t.write("boom").unwrap()).await;
}

#[tokio::test]
async fn panic_in_connection_made() {
    only_the_victim_dies("connection_made", false, |_| {}).await;
}

#[tokio::test]
async fn panic_in_eof_received() {
    only_the_victim_dies("eof_received", false, |t| t.write_eof().unwrap()).await;
}

#[tokio::test]
async fn panic_in_get_buffer() {
    only_the_victim_dies("get_buffer", true, |t| t.write("boom").unwrap()).await;
}

#[tokio::test]
async fn panic_in_buffer_updated() {
    only_the_victim_dies("buffer_updated", true, |t| t.write("boom").unwrap()).await;
}

#[tokio::test]
async fn panic_in_connection_made_of_a_client_still_returns_the_transport() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder("client", panics_in("connection_made"));
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .expect("create_connection still returns");
    let err = log.wait_lost().await.expect("CL(Some)");
    assert_eq!(err.panicked.unwrap().callback, "connection_made");
    exc.wait_for("report", |r| {
        r.message == "Fatal error: protocol.connection_made() call failed."
            && r.peername == t.peername()
    })
    .await;
    reg.finish().await;
}

#[tokio::test]
async fn panic_in_connection_lost_is_reported_and_the_server_still_detaches() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", panics_in("connection_lost")),
        "127.0.0.1",
        0,
        Default::default(),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let (t, log) = client(&reg, port).await;
    t.write("ping").unwrap();
    log.wait_received(4).await;
    server.close();
    t.close();
    let slog = reg.nth("server", 0).await;
    assert_eq!(slog.wait_lost().await, None);
    exc.wait_for("connection_lost report", |r| {
        r.message == "protocol.connection_lost() call failed." && r.peername == t.sockname()
    })
    .await;
    guard("wait_closed", server.wait_closed()).await;
    assert!(server.clients().is_empty());
    assert_eq!(slog.count(Ev::is_lost), 1);
    reg.finish().await;
}

/// A protocol type of the user's own `IntoProtocol`: `None` panics in
/// `into_protocol()`.
struct Bomb(Option<tokio_transports::AnyProtocol>);

impl tokio_transports::IntoProtocol for Bomb {
    fn into_protocol(self) -> tokio_transports::AnyProtocol {
        match self.0 {
            Some(p) => p,
            None => panic!("into_protocol failed"),
        }
    }
}

/// Where the first connection's protocol fails to be made.
#[derive(Clone, Copy, PartialEq)]
enum PanicIn {
    Factory,
    IntoProtocol,
}

/// The first accepted connection's protocol panics while being made: that
/// connection is reported (asyncio's message, its peer) and closed, and the
/// server goes on serving the next one.
async fn a_panic_making_the_protocol_drops_only_that_connection(at: PanicIn) {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let normal = reg.factory("server", Config::echo());
    let n = Counter::default();
    let factory = move || {
        let first = n.incr() == 1;
        if first && at == PanicIn::Factory {
            panic!("factory failed");
        }
        Bomb((!first).then(|| tokio_transports::AnyProtocol::stream(normal())))
    };
    let server = create_server(factory, "127.0.0.1", 0, Default::default())
        .await
        .unwrap();
    let addr = server.sockets()[0];
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = raw.local_addr().unwrap();
    let report = exc
        .wait_for("the creation report", |r| {
            r.message == "Error on transport creation for incoming connection"
        })
        .await;
    assert_eq!(report.peername, Some(local));
    // The accepted socket was closed: EOF or reset, and no data.
    let mut buf = [0u8; 8];
    let r = guard("raw read", raw.read(&mut buf)).await;
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(server.is_serving());
    let (t, log) = client(&reg, addr.port()).await;
    t.write("works").unwrap();
    assert_eq!(log.wait_received(5).await, b"works");
    t.close();
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn panic_in_the_protocol_factory_drops_only_that_connection() {
    a_panic_making_the_protocol_drops_only_that_connection(PanicIn::Factory).await;
}

#[tokio::test]
async fn panic_in_into_protocol_drops_only_that_connection() {
    a_panic_making_the_protocol_drops_only_that_connection(PanicIn::IntoProtocol).await;
}

#[tokio::test]
async fn peer_reset_gives_connection_reset_once_and_no_eof() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let raw_addr = raw.local_addr().unwrap();
    raw.write_all(b"hi").await.unwrap();
    assert_eq!(read_n(&mut raw, 2).await, b"hi");
    set_reset_on_drop(&raw);
    drop(raw);
    let slog = reg.nth("server", 0).await;
    let err = slog.wait_lost().await.expect("CL(Some(reset))");
    assert_eq!(err.kind, std::io::ErrorKind::ConnectionReset, "{err:?}");
    assert!(err.panicked.is_none());
    assert_eq!(slog.count(|e| *e == Ev::Eof), 0, "a reset is not an EOF");
    assert_eq!(slog.count(Ev::is_lost), 1);
    // An I/O error is not reported to the exception handler (asyncio's
    // policy for OSError); it was raised before connection_lost ran.
    assert_eq!(
        exc.count(|r| r.peername == Some(raw_addr)),
        0,
        "{:?}",
        exc.reports()
    );
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn peer_reset_while_we_are_writing() {
    let _exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    for _ in 0..16 {
        t.write(vec![0u8; MIB]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    set_reset_on_drop(&peer);
    drop(peer);
    let err = log.wait_lost().await.expect("CL(Some(..))");
    assert!(
        matches!(
            err.kind,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    assert_eq!(log.count(Ev::is_lost), 1);
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}

#[tokio::test]

async fn drain_fails_when_the_connection_is_lost_with_data_unsent() {
    let _exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    for _ in 0..16 {
        t.write(vec![0u8; MIB]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    let drain = t.drain();
    tokio::pin!(drain);
    assert!(is_pending(drain.as_mut()));
    set_reset_on_drop(&peer);
    drop(peer);
    let result = guard("drain", drain).await;
    log.wait_lost().await;
    assert!(
        result.is_err(),
        "drain() must fail: the connection was lost with data unsent"
    );
    reg.finish().await;
}

#[tokio::test]
async fn writes_after_connection_lost_are_dropped_counted_and_reported() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"");
    log.wait_lost().await;
    t.closed().await;
    let peer_addr = t.peername();
    let sends = |exc: &ExcCapture| {
        exc.count(|r| r.message == "socket.send() raised exception." && r.peername == peer_addr)
    };
    for i in 1..=4 {
        assert_eq!(t.write("lost"), Ok(()));
        assert_eq!(t.dropped_writes(), i);
    }
    assert_eq!(sends(&exc), 0, "quiet below the threshold");
    t.write("fifth").unwrap();
    assert_eq!(sends(&exc), 1);
    t.write("sixth").unwrap();
    t.writelines(["seventh", "", "x"]).unwrap();
    assert_eq!(t.dropped_writes(), 7);
    assert_eq!(
        sends(&exc),
        3,
        "every write from the threshold on is reported"
    );
    // Empty writes are not writes.
    t.write("").unwrap();
    t.writelines([""]).unwrap();
    assert_eq!(t.dropped_writes(), 7);
    assert_eq!(t.get_write_buffer_size(), 0);
    // write_eof after the loss is a no-op, and later writes are still just dropped.
    t.write_eof().unwrap();
    assert_eq!(t.write("z"), Ok(()));
    assert_eq!(t.dropped_writes(), 8);
    // Nothing ever reached the peer.
    let mut buf = [0u8; 1];
    assert_eq!(peer.read(&mut buf).await.unwrap(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn writes_from_connection_lost_are_dropped_not_panics() {
    let _exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if ev.is_lost() {
                for _ in 0..10 {
                    t.write("late").unwrap();
                }
                t.close();
                t.abort();
            }
        }),
    )
    .await;
    drop(peer);
    assert_eq!(log.wait_lost().await, None);
    t.closed().await;
    assert_eq!(t.dropped_writes(), 10);
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn a_panicking_exception_handler_does_not_break_the_transport() {
    let exc = ExcCapture::install().await;
    // Replace the capture with a handler that panics (restored by `exc`).
    tokio_transports::set_exception_handler(Some(std::sync::Arc::new(|_ctx| {
        panic!("handler panicked");
    })));
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, panics_in("data_received")).await;
    let (t, log) = client(&reg, port).await;
    t.write("boom").unwrap();
    log.wait_lost().await;
    let slog = reg.nth("server", 0).await;
    assert_eq!(
        slog.wait_lost()
            .await
            .and_then(|e| e.panicked)
            .map(|p| p.callback),
        Some("data_received")
    );
    shutdown(&server).await;
    drop(exc);
    reg.finish().await;
}

#[tokio::test]
async fn panic_in_pause_writing_is_reported_and_the_connection_goes_on() {
    // asyncio's rule (docs/asyncio-parity.md, "Panics"): a failure in
    // pause_writing/resume_writing is reported ("protocol.pause_writing()
    // failed") and nothing else changes: the paused flag has flipped, the
    // data still goes out and resume_writing still comes.
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder(
        "io",
        Config::default().hook(|_, ev, _| {
            if ev.is_pw() {
                panic!("flow control callback failed");
            }
        }),
    );
    let log = rec.log();
    let t = tokio_transports::connect_io(|| rec, io).await.unwrap();
    t.set_write_buffer_limits(Some(10), None).unwrap();
    t.write(vec![1u8; 20]).unwrap();
    let report = exc
        .wait_for("pause_writing report", |r| {
            r.message == "protocol.pause_writing() failed"
        })
        .await;
    let p = report.panicked.expect("CallbackPanicked");
    assert_eq!(p.callback, "pause_writing");
    assert_eq!(p.message, "flow control callback failed");
    assert!(!t.is_closing(), "not fatal");
    gate.allow(usize::MAX);
    log.wait_event("resume_writing", Ev::is_rw).await;
    t.write(vec![2u8; 4]).unwrap();
    t.close();
    assert_eq!(log.wait_lost().await, None, "a clean close");
    let mut want = vec![1u8; 20];
    want.extend([2u8; 4]);
    assert_eq!(gate.written(), want);
    assert_eq!(log.count(Ev::is_pw), 1);
    assert_eq!(log.count(Ev::is_rw), 1);
    reg.finish().await;
}

#[tokio::test]
async fn panic_in_resume_writing_is_reported_and_the_connection_goes_on() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder(
        "io",
        Config::default().hook(|_, ev, _| {
            if ev.is_rw() {
                panic!("resume failed");
            }
        }),
    );
    let log = rec.log();
    let t = tokio_transports::connect_io(|| rec, io).await.unwrap();
    t.set_write_buffer_limits(Some(10), None).unwrap(); // low = 2
    t.write(vec![1u8; 20]).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    gate.allow(18);
    let report = exc
        .wait_for("resume_writing report", |r| {
            r.message == "protocol.resume_writing() failed"
        })
        .await;
    assert_eq!(report.panicked.unwrap().callback, "resume_writing");
    assert!(!t.is_closing(), "not fatal");
    // The 2 bytes left at the panic still go out; a second cycle pauses
    // and resumes again.
    gate.allow(2);
    t.write(vec![3u8; 20]).unwrap();
    log.wait_until("second pause", |evs| {
        evs.iter().filter(|e| e.is_pw()).count() == 2
    })
    .await;
    gate.allow(usize::MAX);
    log.wait_until("second resume", |evs| {
        evs.iter().filter(|e| e.is_rw()).count() == 2
    })
    .await;
    t.close();
    assert_eq!(log.wait_lost().await, None);
    let mut want = vec![1u8; 20];
    want.extend([3u8; 20]);
    assert_eq!(gate.written(), want);
    assert_eq!(log.count(Ev::is_pw), 2);
    reg.finish().await;
}
