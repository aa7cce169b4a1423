//! BufferedProtocol specifics, and switching protocols with set_protocol.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{
    BaseProtocol, Buffered, BufferedProtocol, ConnectOptions, Transport, connect_io,
    create_connection, create_server,
};

#[tokio::test]
async fn data_lands_in_the_protocols_own_buffer() {
    let reg = Registry::new();
    let (t, log, mut peer) = buffered_client_with_raw_peer(&reg, Config::default()).await;
    let data = pattern(200_000, 11);
    peer.write_all(&data).await.unwrap();
    // The recorder checks inside buffer_updated that its own buffer grew by
    // exactly n (else it logs a violation, which fails the grammar check).
    assert!(log.wait_received(data.len()).await == data);
    let evs = log.events();
    assert!(!evs.iter().any(|e| matches!(e, Ev::Data(_))));
    for e in &evs {
        if let Ev::GetBuffer(hint) = e {
            assert!(*hint > 0, "sizehint must be positive");
        }
    }
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn a_small_buffer_gives_many_cycles() {
    // test_buffered_proto: 9216 bytes through a 100-byte buffer.
    let reg = Registry::new();
    let (_t, log, mut peer) =
        buffered_client_with_raw_peer(&reg, Config::default().buf_cap(100)).await;
    let data = pattern(9216, 5);
    peer.write_all(&data).await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.received(), data);
    let evs = log.events();
    let updates: Vec<usize> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::BufferUpdated { n, .. } => Some(*n),
            _ => None,
        })
        .collect();
    assert!(updates.iter().all(|&n| n <= 100), "{updates:?}");
    assert!(updates.len() >= 9216 / 100, "only {} cycles", updates.len());
    assert_eq!(updates.iter().sum::<usize>(), 9216);
    assert!(evs.contains(&Ev::Eof));
    reg.finish().await;
}

#[tokio::test]
async fn an_empty_buffer_kills_only_that_connection() {
    let reg = Registry::new();
    let normal = reg.buffered_factory("server", Config::echo());
    let broken = reg.buffered_factory("server", Config::echo().buf_cap(0));
    let n = Counter::default();
    // The second accepted connection gets the zero-size buffer.
    let factory = move || if n.incr() == 2 { broken() } else { normal() };
    let server = create_server(factory, "127.0.0.1", 0, Default::default())
        .await
        .unwrap();
    let port = server.sockets()[0].port();

    let live = reg.recorder("client", Config::default());
    let live_log = live.log();
    let a = create_connection(move || live, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    a.write("first").unwrap();
    live_log.wait_received(5).await;

    let victim = reg.recorder("client", Config::default());
    let victim_log = victim.log();
    let b = create_connection(move || victim, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    b.write("doomed").unwrap();
    let slog = reg.nth("server", 1).await;
    let err = slog.wait_lost().await.expect("CL(Some(..))");
    assert!(
        err.message
            .contains("get_buffer() returned an empty buffer"),
        "{err:?}"
    );
    assert!(
        !slog
            .events()
            .iter()
            .any(|e| matches!(e, Ev::BufferUpdated { .. }))
    );
    // The victim's client side sees the connection go away.
    victim_log.wait_lost().await;
    assert!(victim_log.received().is_empty());

    // The live connection and the server are fine.
    a.write("second").unwrap();
    assert_eq!(live_log.wait_received(11).await, b"firstsecond");
    let third = reg.recorder("client", Config::default());
    let third_log = third.log();
    let c = create_connection(move || third, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    c.write("third").unwrap();
    assert_eq!(third_log.wait_received(5).await, b"third");
    a.close();
    c.close();
    drop(b);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn switch_to_buffered_and_back_from_inside_callbacks() {
    let reg = Registry::new();
    let log = reg.log("switching");
    // Phase 1: streaming. On the first chunk ending in '|', switch to a
    // buffered recorder that, on a chunk ending in '|', switches back.
    fn streaming() -> Config {
        Config::echo().hook(|t, ev, log| {
            if let Ev::Data(d) = ev
                && d.ends_with(b"|")
            {
                log.mark("to buffered");
                t.set_protocol(Buffered(Recorder::successor(log, buffered(), t)));
            }
        })
    }
    fn buffered() -> Config {
        Config::echo().buf_cap(7).hook(|t, ev, log| {
            if let Ev::BufferUpdated { data, .. } = ev
                && data.ends_with(b"|")
            {
                log.mark("to stream");
                t.set_protocol(Recorder::successor(log, Config::echo(), t));
            }
        })
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = Recorder::new(log.clone(), streaming());
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    let (mut peer, _) = guard("accept", listener.accept()).await.unwrap();
    assert_eq!(t.with_protocol(|p| p.is_buffered()).await, Some(false));
    // Each phase waits for its echo, so chunks do not straddle a switch.
    let phases: [&[u8]; 3] = [
        b"stream one|",
        b"buffered two, longer than seven|",
        b"stream three",
    ];
    let mut sent = Vec::new();
    for (i, p) in phases.iter().enumerate() {
        peer.write_all(p).await.unwrap();
        sent.extend_from_slice(p);
        assert_eq!(read_n(&mut peer, p.len()).await, *p, "echo of phase {i}");
        assert!(log.received() == sent);
        if i == 0 {
            assert_eq!(t.with_protocol(|p| p.is_buffered()).await, Some(true));
        }
    }
    assert_eq!(t.with_protocol(|p| p.is_buffered()).await, Some(false));
    // Who got what: streaming, then buffered (in 7-byte pieces), then streaming.
    let evs = log.events();
    let to_b = index_of(&evs, |e| *e == Ev::Mark("to buffered"));
    let to_s = index_of(&evs, |e| *e == Ev::Mark("to stream"));
    assert!(
        evs[..to_b]
            .iter()
            .all(|e| !matches!(e, Ev::BufferUpdated { .. }))
    );
    assert!(evs[to_b..to_s].iter().all(|e| !matches!(e, Ev::Data(_))));
    assert!(
        evs[to_b..to_s]
            .iter()
            .filter(|e| matches!(e, Ev::BufferUpdated { .. }))
            .count()
            >= phases[1].len() / 7
    );
    assert!(
        evs[to_s..]
            .iter()
            .all(|e| !matches!(e, Ev::BufferUpdated { .. }))
    );
    assert!(evs[to_s..].iter().any(|e| matches!(e, Ev::Data(_))));
    t.close();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(
        log.count(|e| *e == Ev::Made),
        1,
        "successors get no connection_made"
    );
    reg.finish().await;
}

#[tokio::test]
async fn set_protocol_from_outside_and_with_protocol() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    peer.write_all(b"to the first").await.unwrap();
    log.wait_received(12).await;
    // The successor logs into the same connection log.
    t.set_protocol(Buffered(Recorder::successor(&log, Config::default(), &t)));
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s2 = seen.clone();
    assert_eq!(
        t.with_protocol(move |p| {
            *s2.lock().unwrap() = Some(p.is_buffered());
            7
        })
        .await,
        Some(7),
        "with_protocol runs on the current protocol"
    );
    assert_eq!(*seen.lock().unwrap(), Some(true));
    log.mark("switched");
    peer.write_all(b"to the second").await.unwrap();
    assert_eq!(log.wait_received(25).await, b"to the firstto the second");
    let evs = log.events();
    let m = index_of(&evs, |e| *e == Ev::Mark("switched"));
    assert!(
        evs[..m]
            .iter()
            .all(|e| !matches!(e, Ev::BufferUpdated { .. }))
    );
    assert!(evs[m..].iter().all(|e| !matches!(e, Ev::Data(_))));
    t.close();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(t.with_protocol(|_| ()).await, None, "finished");
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_on_every_chunk_keeps_every_byte_in_order() {
    fn alternate(buffered: bool) -> Config {
        Config::default().buf_cap(1000).hook(move |t, ev, log| {
            if ev.is_data() {
                if buffered {
                    t.set_protocol(Recorder::successor(log, alternate(false), t));
                } else {
                    t.set_protocol(Buffered(Recorder::successor(log, alternate(true), t)));
                }
            }
        })
    }
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, alternate(false)).await;
    let data = pattern(1 << 20, 9);
    peer.write_all(&data).await.unwrap();
    assert!(log.wait_received(data.len()).await == data);
    let evs = log.events();
    assert!(evs.iter().any(|e| matches!(e, Ev::Data(_))));
    assert!(evs.iter().any(|e| matches!(e, Ev::BufferUpdated { .. })));
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn the_transport_appends_after_the_buffers_contents() {
    let reg = Registry::new();
    let (t, log, mut peer) =
        buffered_client_with_raw_peer(&reg, Config::default().buf_cap(64).keep_buffer()).await;
    let data = pattern(10_000, 3);
    for chunk in data.chunks(1000) {
        peer.write_all(chunk).await.unwrap();
    }
    // The recorder checks, in every buffer_updated, that its whole buffer
    // equals everything received so far (a violation fails the grammar).
    assert!(log.wait_received(data.len()).await == data);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

/// A `BufferedProtocol` whose first `get_buffer` writes or closes.
struct ActsInGetBuffer {
    t: Option<Transport>,
    buf: BytesMut,
    calls: usize,
    close: bool,
}

impl BaseProtocol for ActsInGetBuffer {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
}

impl BufferedProtocol for ActsInGetBuffer {
    fn get_buffer(&mut self, _: usize) -> &mut BytesMut {
        self.calls += 1;
        if self.calls == 1 {
            let t = self.t.as_ref().expect("connection_made ran");
            if self.close {
                t.close();
            } else {
                t.write(&b"hello"[..]).unwrap();
            }
        }
        self.buf.reserve(1024);
        &mut self.buf
    }

    fn buffer_updated(&mut self, _: usize) {}
}

fn acts_in_get_buffer(close: bool) -> Buffered<ActsInGetBuffer> {
    Buffered(ActsInGetBuffer {
        t: None,
        buf: BytesMut::new(),
        calls: 0,
        close,
    })
}

// `get_buffer` runs on the task's first poll, before anything arrived: what
// it asks for must happen even though the read that follows finds nothing
// and nothing else wakes the task.
#[tokio::test]
async fn a_write_in_get_buffer_goes_out_though_the_read_finds_nothing() {
    let (a, mut b) = tokio::io::duplex(1024);
    let _t = connect_io(|| acts_in_get_buffer(false), a).await.unwrap();
    let mut got = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), b.read_exact(&mut got))
        .await
        .expect("the write made in get_buffer was never sent")
        .unwrap();
    assert_eq!(&got, b"hello");
}

#[tokio::test]
async fn a_close_in_get_buffer_completes_though_the_read_finds_nothing() {
    let (a, _b) = tokio::io::duplex(1024);
    let t = connect_io(|| acts_in_get_buffer(true), a).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), t.closed())
        .await
        .expect("close() from get_buffer never reached connection_lost");
}

/// An idle buffered connection is never asked for a buffer: `get_buffer`
/// runs only once a read may find something (before, every new connection
/// got a 64 KiB buffer request on its first poll). Both ends: tokio reports
/// a freshly accepted socket readable once with nothing to read.
#[tokio::test]
async fn get_buffer_waits_until_there_is_something_to_read() {
    let reg = Registry::new();
    let (t, log, peer) = buffered_client_with_raw_peer(&reg, Config::default()).await;
    idle_then_data(t, log, peer).await;
    let (server, port) = buffered_server(&reg, Config::default()).await;
    let peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let log = reg.nth("server", 0).await;
    let t = log.wait_made().await;
    idle_then_data(t, log, peer).await;
    shutdown(&server).await;
    reg.finish().await;
}

async fn idle_then_data(t: Transport, log: Log, mut peer: tokio::net::TcpStream) {
    // Two trips through the task: it has polled its read side by now.
    barrier(&t).await;
    barrier(&t).await;
    assert_eq!(
        log.count(|e| matches!(e, Ev::GetBuffer(_))),
        0,
        "{:?}",
        log.events()
    );
    peer.write_all(b"now").await.unwrap();
    assert_eq!(log.wait_received(3).await, b"now");
    assert!(log.count(|e| matches!(e, Ev::GetBuffer(_))) >= 1);
    // Idle again: at most the one extra request made before the read side
    // found nothing more.
    let before = log.count(|e| matches!(e, Ev::GetBuffer(_)));
    barrier(&t).await;
    barrier(&t).await;
    assert!(log.count(|e| matches!(e, Ev::GetBuffer(_))) <= before + 1);
    t.close();
    log.wait_lost().await;
}

// ---- a read kept back, then set_protocol --------------------------------------
//
// Reading paused from another thread while a read is in flight keeps that
// read's result back until reading resumes. If the protocol is replaced
// meanwhile, no byte may be lost: bytes read into the old buffered
// protocol's own buffer are its own (it gets their `buffer_updated` before
// the switch), and bytes read into the pool go to the new protocol, copied
// into its buffers if it is buffered.

/// A duplex end whose next successful read, once armed, pauses reading on
/// the transport, as a `pause_reading()` from another thread racing the
/// read would: the driver then keeps the read's result back.
struct PauseOnRead {
    inner: tokio::io::DuplexStream,
    transport: Arc<std::sync::Mutex<Option<Transport>>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncRead for PauseOnRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Some(t) = self.transport.lock().unwrap().as_ref()
        {
            t.pause_reading();
        }
        r
    }
}

impl tokio::io::AsyncWrite for PauseOnRead {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Collects what it is given, plain or buffered (through a small buffer,
/// so one kept-back read takes several rounds).
#[derive(Clone, Default)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

struct PlainSink(Sink);
impl BaseProtocol for PlainSink {}
impl tokio_transports::Protocol for PlainSink {
    fn data_received(&mut self, data: bytes::Bytes) {
        self.0.0.lock().unwrap().extend_from_slice(&data);
    }
}

struct BufSink(Sink, BytesMut);
impl BaseProtocol for BufSink {}
impl BufferedProtocol for BufSink {
    fn get_buffer(&mut self, _: usize) -> &mut BytesMut {
        self.1.clear();
        self.1.reserve(3);
        &mut self.1
    }
    fn buffer_updated(&mut self, n: usize) {
        let start = self.1.len() - n;
        self.0.0.lock().unwrap().extend_from_slice(&self.1[start..]);
    }
}

fn buf_sink(s: &Sink) -> Buffered<BufSink> {
    Buffered(BufSink(s.clone(), BytesMut::new()))
}

/// Sends `b"kept"` while armed (so its read is kept back), switches the
/// protocol, resumes, sends `b"-next"`; returns what each protocol got.
async fn keep_back_then_switch(old_buffered: bool, new_buffered: bool) -> (Vec<u8>, Vec<u8>) {
    let (ours, mut peer) = tokio::io::duplex(1024);
    let slot = Arc::new(std::sync::Mutex::new(None));
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let io = PauseOnRead {
        inner: ours,
        transport: slot.clone(),
        armed: armed.clone(),
    };
    let (old, new) = (Sink::default(), Sink::default());
    let t = if old_buffered {
        let s = old.clone();
        connect_io(move || buf_sink(&s), io).await.unwrap()
    } else {
        let s = old.clone();
        connect_io(move || PlainSink(s), io).await.unwrap()
    };
    *slot.lock().unwrap() = Some(t.clone());
    peer.write_all(b"kept").await.unwrap();
    // Two round trips through the task: the read happened, and was kept
    // back (reading is paused, so the old protocol got nothing yet).
    barrier(&t).await;
    assert!(
        !armed.load(std::sync::atomic::Ordering::SeqCst),
        "the read ran"
    );
    assert!(!t.is_reading());
    if new_buffered {
        t.set_protocol(buf_sink(&new));
    } else {
        t.set_protocol(PlainSink(new.clone()));
    }
    t.resume_reading();
    peer.write_all(b"-next").await.unwrap();
    barrier(&t).await;
    let got = |s: &Sink| s.0.lock().unwrap().clone();
    guard("the rest arrives", async {
        while got(&old).len() + got(&new).len() < b"kept-next".len() {
            barrier(&t).await;
        }
    })
    .await;
    t.close();
    (got(&old), got(&new))
}

#[tokio::test]
async fn a_kept_back_read_into_the_pool_goes_to_the_new_buffered_protocol() {
    let (old, new) = keep_back_then_switch(false, true).await;
    assert_eq!(old, b"");
    assert_eq!(new, b"kept-next");
}

#[tokio::test]
async fn a_kept_back_read_into_the_pool_goes_to_the_new_plain_protocol() {
    let (old, new) = keep_back_then_switch(false, false).await;
    assert_eq!(old, b"");
    assert_eq!(new, b"kept-next");
}

#[tokio::test]
async fn a_kept_back_read_into_the_old_protocols_buffer_is_the_old_ones() {
    for new_buffered in [false, true] {
        let (old, new) = keep_back_then_switch(true, new_buffered).await;
        // What the kept-back read put in the old protocol's buffer (all of
        // "kept", or the part that fit) is the old one's; the rest is new.
        assert!(!old.is_empty() && b"kept".starts_with(&old), "{old:?}");
        assert_eq!(
            [old, new].concat(),
            b"kept-next",
            "new buffered: {new_buffered}"
        );
    }
}
