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
