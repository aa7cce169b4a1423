//! Write flow control: buffer size, watermarks, pause_writing/resume_writing,
//! set_write_buffer_limits, drain.
//!
//! Exact boundaries use [`GateIo`] (the buffer holds exactly what was
//! written while the gate is shut); the rest uses real sockets whose peer
//! does not read.

mod common;

use common::*;
use tokio::io::AsyncReadExt;
use tokio_transports::{
    ConnectOptions, ServerOptions, Transport, TransportError, WriteLimits, connect_io,
    create_connection, create_server,
};

const MIB: usize = 1 << 20;

fn pauses(log: &Log) -> usize {
    log.count(Ev::is_pw)
}

fn resumes(log: &Log) -> usize {
    log.count(Ev::is_rw)
}

async fn gated(reg: &Registry, cfg: Config) -> (Transport, Log, Gate, Feed) {
    let (io, gate, feed) = GateIo::new();
    let rec = reg.recorder("io", cfg);
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    (t, log, gate, feed)
}

async fn close_gated(t: &Transport, log: &Log, gate: &Gate) {
    gate.allow(usize::MAX);
    t.close();
    log.wait_lost().await;
}

#[tokio::test]
async fn write_buffer_size_is_exact_when_write_returns() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    t.write(vec![0u8; 1000]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 1000);
    t.write(vec![0u8; 234]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 1234);
    t.writelines([vec![1u8; 6], vec![], vec![2u8; 60]]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 1300);
    // Let it go out: the peer reads it all and the buffer empties.
    let mut got = vec![0u8; 1300];
    guard("read", peer.read_exact(&mut got)).await.unwrap();
    guard("drain", t.drain()).await.unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn default_limits_and_derivations() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536), "(low, high)");
    t.set_write_buffer_limits(Some(1000), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (250, 1000));
    t.set_write_buffer_limits(None, Some(16385)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16385, 65540));
    t.set_write_buffer_limits(Some(100), Some(100)).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (100, 100));
    t.set_write_buffer_limits(Some(0), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (0, 0));
    t.set_write_buffer_limits(None, None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    assert_eq!(
        t.set_write_buffer_limits(Some(10), Some(20)),
        Err(TransportError::InvalidLimits { high: 10, low: 20 })
    );
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536), "unchanged");
    // high derived from low can still be below an explicit low? No: only
    // low > high is an error.
    assert!(t.set_write_buffer_limits(Some(3), None).is_ok());
    assert_eq!(t.get_write_buffer_limits(), (0, 3));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn initial_limits_come_from_the_options() {
    let reg = Registry::new();
    let limits = WriteLimits::new(Some(20), Some(10)).unwrap();
    let server = create_server(
        reg.factory("server", Config::default()),
        "127.0.0.1",
        0,
        ServerOptions::default().write_limits(limits),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default().write_limits(WriteLimits::new(Some(2), Some(1)).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(t.get_write_buffer_limits(), (1, 2));
    let st = reg.nth("server", 0).await.wait_made().await;
    assert_eq!(st.get_write_buffer_limits(), (10, 20));
    t.close();
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_strictly_over_high_resume_at_or_below_low() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    t.set_write_buffer_limits(Some(100), None).unwrap(); // low = 25
    t.write(vec![0u8; 100]).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 0, "equal to high does not pause");
    t.write(vec![0u8; 1]).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert!(log.events().contains(&Ev::PauseWriting(101)));
    // Edge triggered: more writes, no more pauses.
    for _ in 0..10 {
        t.write(vec![0u8; 50]).unwrap();
    }
    t.writelines([vec![0u8; 5], vec![0u8; 5]]).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 1);
    assert_eq!(t.get_write_buffer_size(), 611);
    // Drain to 26: still paused.
    gate.allow(585);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 26);
    assert_eq!(resumes(&log), 0, "26 > low");
    // One more byte: at low, resume.
    gate.allow(1);
    log.wait_event("resume_writing", Ev::is_rw).await;
    assert!(log.events().contains(&Ev::ResumeWriting(25)));
    // And it can pause again.
    t.write(vec![0u8; 76]).unwrap();
    log.wait_until("second pause", |e| {
        e.iter().filter(|e| e.is_pw()).count() == 2
    })
    .await;
    close_gated(&t, &log, &gate).await;
    assert_eq!(pauses(&log), 2);
    reg.finish().await;
}

#[tokio::test]
async fn tightening_limits_pauses_at_once_loosening_waits_for_a_drain() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    t.write(vec![0u8; 1000]).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 0);
    t.set_write_buffer_limits(Some(500), None).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    // Loosening does not resume by itself.
    t.set_write_buffer_limits(Some(100_000), Some(50_000))
        .unwrap();
    barrier(&t).await;
    assert_eq!(resumes(&log), 0);
    // The next drain does.
    gate.allow(1);
    log.wait_event("resume_writing", Ev::is_rw).await;
    assert!(log.events().contains(&Ev::ResumeWriting(999)));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn high_zero_pauses_on_any_buffered_byte() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    t.set_write_buffer_limits(Some(0), None).unwrap();
    t.write("x").unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert!(log.events().contains(&Ev::PauseWriting(1)));
    gate.allow(1);
    log.wait_event("resume_writing", Ev::is_rw).await;
    assert!(log.events().contains(&Ev::ResumeWriting(0)));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn low_zero_resumes_only_when_empty() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    t.set_write_buffer_limits(Some(10), Some(0)).unwrap();
    t.write(vec![0u8; 20]).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    gate.allow(19);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 1);
    assert_eq!(resumes(&log), 0);
    gate.allow(1);
    log.wait_event("resume_writing", Ev::is_rw).await;
    assert!(log.events().contains(&Ev::ResumeWriting(0)));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn writelines_pauses_too() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    t.set_write_buffer_limits(Some(100), None).unwrap();
    t.writelines([vec![0u8; 60], vec![0u8; 41]]).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert!(log.events().contains(&Ev::PauseWriting(101)));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_caused_in_a_callback_comes_right_after_it() {
    let reg = Registry::new();
    let (t, log, gate, mut feed) = gated(
        &reg,
        Config::default().hook(|t, ev, log| {
            if let Ev::Data(_) = ev {
                let before = t.get_write_buffer_size();
                t.write(vec![0u8; 200]).unwrap();
                if t.get_write_buffer_size() != before + 200 {
                    log.push(Ev::Violation("size not exact inside a callback".into()));
                }
                log.mark("wrote");
            }
        }),
    )
    .await;
    t.set_write_buffer_limits(Some(100), None).unwrap();
    barrier(&t).await;
    tokio::io::AsyncWriteExt::write_all(&mut feed, b"go")
        .await
        .unwrap();
    let evs = log.wait_event("pause_writing", Ev::is_pw).await;
    let data = index_of(&evs, |e| matches!(e, Ev::Data(_)));
    assert_eq!(evs[data + 1], Ev::Mark("wrote"), "not from inside write()");
    assert_eq!(
        evs[data + 2],
        Ev::PauseWriting(200),
        "right after the callback"
    );
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_and_resume_with_a_real_socket() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    // The peer does not read: the kernel fills, then our buffer.
    let total = 16 * MIB;
    for i in 0..64 {
        t.write(pattern(total / 64, i)).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    let (low, high) = t.get_write_buffer_limits();
    for e in log.events() {
        if let Ev::PauseWriting(size) = e {
            assert!(size > high, "paused at {size} <= high");
        }
    }
    // More writes while paused: accepted, no second pause.
    t.write(vec![9u8; 1000]).unwrap();
    // Now the peer reads everything.
    let mut got = vec![0u8; total + 1000];
    guard("peer read", peer.read_exact(&mut got)).await.unwrap();
    let evs = log.wait_event("resume_writing", Ev::is_rw).await;
    for e in &evs {
        if let Ev::ResumeWriting(size) = e {
            assert!(*size <= low, "resumed at {size} > low");
        }
    }
    assert_eq!(evs.iter().filter(|e| e.is_pw()).count(), 1);
    let expected: Vec<u8> = (0..64).flat_map(|i| pattern(total / 64, i)).collect();
    assert!(got[..total] == expected[..]);
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

#[tokio::test]
async fn pause_from_a_large_write_in_a_callback_on_a_real_socket() {
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if matches!(ev, Ev::Data(_)) {
                t.write(vec![0u8; 32 * MIB]).unwrap();
            }
        }),
    )
    .await;
    peer.try_write(b"go").unwrap();
    let evs = log.wait_event("pause_writing", Ev::is_pw).await;
    let data = index_of(&evs, |e| matches!(e, Ev::Data(_)));
    assert!(evs[data + 1].is_pw(), "{evs:?}");
    t.abort();
    log.wait_lost().await;
    drop(peer);
    reg.finish().await;
}

#[tokio::test]
async fn drain_resolves_at_or_below_low() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    // Nothing buffered: at once.
    guard("drain", t.drain()).await.unwrap();
    t.set_write_buffer_limits(Some(100), None).unwrap();
    t.write(vec![0u8; 200]).unwrap();
    let drain = t.drain();
    tokio::pin!(drain);
    assert!(is_pending(drain.as_mut()));
    gate.allow(174);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 26);
    assert!(is_pending(drain.as_mut()), "26 > low");
    gate.allow(1);
    guard("drain", drain).await.unwrap();
    assert_eq!(t.get_write_buffer_size(), 25);
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test]
async fn drain_with_a_real_socket() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write(vec![5u8; 8 * MIB]).unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 8 * MIB];
        peer.read_exact(&mut buf).await.unwrap();
        (peer, buf)
    });
    guard("drain", t.drain()).await.unwrap();
    assert!(t.get_write_buffer_size() <= 16384);
    let (_peer, buf) = guard("reader", reader).await.unwrap();
    assert!(buf.iter().all(|&b| b == 5));
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_sizes_from_another_thread() {
    let reg = Registry::new();
    let (t, log, gate, _feed) = gated(&reg, Config::default()).await;
    let t2 = t.clone();
    tokio::task::spawn_blocking(move || {
        t2.set_write_buffer_limits(Some(50), None).unwrap();
        for _ in 0..10 {
            t2.write(vec![0u8; 10]).unwrap();
        }
        assert_eq!(t2.get_write_buffer_size(), 100);
    })
    .await
    .unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    gate.allow(88);
    log.wait_event("resume_writing", Ev::is_rw).await;
    assert!(log.events().contains(&Ev::ResumeWriting(12)));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_backpressure_from_pause_writing() {
    // The classic pattern: pause reading while writing is paused.
    let reg = Registry::new();
    let (server, port) = echo_server(
        &reg,
        Config::echo().hook(|t, ev, _| {
            if ev.is_pw() {
                t.pause_reading();
            } else if ev.is_rw() {
                t.resume_reading();
            }
        }),
    )
    .await;
    let raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut rd, mut wr) = raw.into_split();
    const N: usize = 16 * MIB;
    let data = pattern(N, 8);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        tokio::io::AsyncWriteExt::write_all(&mut wr, &data)
            .await
            .unwrap();
        wr
    });
    let slog = reg.nth("server", 0).await;
    // We do not read until the server had to pause.
    slog.wait_event("pause_writing", Ev::is_pw).await;
    let mut got = vec![0u8; N];
    guard("echo", rd.read_exact(&mut got)).await.unwrap();
    assert!(got == expected);
    let wr = guard("writer", writer).await.unwrap();
    let evs = slog.events();
    // While writing was paused, reading was too: no data in between.
    let mut paused = false;
    for e in &evs {
        match e {
            Ev::PauseWriting(_) => paused = true,
            Ev::ResumeWriting(_) => paused = false,
            e if e.is_data() => assert!(!paused, "data_received while writing was paused"),
            _ => {}
        }
    }
    assert!(evs.iter().any(Ev::is_rw));
    drop(rd);
    drop(wr);
    slog.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

/// Writes from inside callbacks and from outside are counted apart (the
/// former on a counter only the task's thread changes); the size is their
/// sum at every step, and sends take bytes off it whichever way they came.
#[tokio::test]
async fn sizes_add_up_across_callback_and_outside_writes() {
    let reg = Registry::new();
    let (t, log, gate, mut feed) = gated(
        &reg,
        Config::default().hook(|t, ev, log| {
            if let Ev::Data(_) = ev {
                t.write(vec![1u8; 200]).unwrap();
                log.mark("wrote");
            }
        }),
    )
    .await;
    t.write(vec![0u8; 300]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 300);
    barrier(&t).await;
    tokio::io::AsyncWriteExt::write_all(&mut feed, b"go")
        .await
        .unwrap();
    log.wait_event("the callback's write", |e| *e == Ev::Mark("wrote"))
        .await;
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 500);
    // Part of the outside write goes: the total drops by exactly that.
    gate.allow(250);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 250);
    t.write(vec![2u8; 50]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 300);
    gate.allow(299);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 1);
    gate.allow(1);
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    let written = gate.written();
    assert_eq!(written.len(), 550);
    assert!(written[..300].iter().all(|&b| b == 0));
    assert!(written[300..500].iter().all(|&b| b == 1));
    assert!(written[500..].iter().all(|&b| b == 2));
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

/// A slow reader of an echo that pauses reading on `pause_writing` (the
/// documented pattern): the write buffer never holds more than twice the
/// high watermark. Reads are limited while written data waits, so the read
/// that lands just before the pause cannot add more than that (before, one
/// 128 KiB read after a resume took it to ~2.25-3x).
#[tokio::test]
async fn an_echo_that_pauses_reading_stays_within_twice_the_high_watermark() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reg = Registry::new();
    let peak = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = peak.clone();
    let cfg = Config::echo().hook(move |t, ev, _| match ev {
        // The echo's write happened just before this hook runs.
        Ev::Data(_) => {
            seen.fetch_max(t.get_write_buffer_size(), Ordering::SeqCst);
        }
        Ev::PauseWriting(_) => t.pause_reading(),
        Ev::ResumeWriting(_) => t.resume_reading(),
        _ => {}
    });
    let (t, log, gate, mut feed) = gated(&reg, cfg).await;
    let high = t.get_write_buffer_limits().1;
    let data = pattern(MIB, 3);
    tokio::io::AsyncWriteExt::write_all(&mut feed, &data)
        .await
        .unwrap();
    // The peer reads a slice at a time, each once the transport settled.
    for _ in 0..400 {
        if gate.written().len() == MIB {
            break;
        }
        gate.allow(24 * 1024);
        barrier(&t).await;
    }
    assert_eq!(gate.written(), data, "the echo, byte-exact");
    assert!(pauses(&log) >= 4, "the echo paused: {} times", pauses(&log));
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 2 * high,
        "write buffer peaked at {peak} bytes, over twice the high watermark ({high})"
    );
    close_gated(&t, &log, &gate).await;
    reg.finish().await;
}

/// A producer inside the callbacks: it writes until `get_write_buffer_size()`
/// goes over the high watermark, then waits for `resume_writing`. The
/// callback's writes took the buffer over the watermark, so `pause_writing`
/// is owed right after the callback even when the flush then sends all of
/// it (a peer that reads at once), and `resume_writing` follows: the
/// producer never stalls.
#[tokio::test]
async fn a_producer_that_stops_over_the_high_watermark_is_always_resumed() {
    use tokio_transports::{BaseProtocol, Bytes, Protocol};

    const TOTAL: usize = 4 * MIB;
    const CHUNK: usize = 16 * 1024;

    struct Producer {
        t: Option<Transport>,
        sent: usize,
        pauses: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Producer {
        fn produce(&mut self) {
            let Some(t) = &self.t else { return };
            let high = t.get_write_buffer_limits().1;
            while self.sent < TOTAL && t.get_write_buffer_size() <= high {
                t.write(pattern(CHUNK, (self.sent / CHUNK) as u8)).unwrap();
                self.sent += CHUNK;
            }
            if self.sent == TOTAL {
                t.close();
                self.t = None;
            }
        }
    }

    impl BaseProtocol for Producer {
        fn connection_made(&mut self, t: &Transport) {
            self.t = Some(t.clone());
            self.produce();
        }
        fn pause_writing(&mut self) {
            self.pauses
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        fn resume_writing(&mut self) {
            self.produce();
        }
    }

    impl Protocol for Producer {
        fn data_received(&mut self, _: Bytes) {}
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    });
    let pauses = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p = pauses.clone();
    let t = create_connection(
        move || Producer {
            t: None,
            sent: 0,
            pauses: p,
        },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    let got = guard("the producer's 4 MiB", reader).await.unwrap();
    assert_eq!(got.len(), TOTAL, "the producer stalled");
    let expected: Vec<u8> = (0..TOTAL / CHUNK)
        .flat_map(|i| pattern(CHUNK, i as u8))
        .collect();
    assert!(got == expected, "bytes out of order");
    // Every batch went over the high watermark: each was paused (and
    // resumed, or the next batch would never have come).
    assert!(
        pauses.load(std::sync::atomic::Ordering::SeqCst) >= TOTAL / (128 * 1024),
        "{} pauses",
        pauses.load(std::sync::atomic::Ordering::SeqCst)
    );
    guard("closed", t.closed()).await;
}

/// The same producer over an I/O that takes every write at once (no tokio
/// budget under it, as a `connect_io` sink or the test kit's peer): each
/// `resume_writing` refills, each refill pauses and is sent at once. The
/// task must still yield (its neighbours run) and read its inbox (`abort()`
/// ends it), never cycle inside one poll.
#[test]
fn a_producer_over_an_io_that_takes_everything_still_yields() {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_transports::{BaseProtocol, Bytes, Protocol};

    struct Sink;
    impl AsyncRead for Sink {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }
    impl AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Endless {
        t: Option<Transport>,
        resumes: Arc<AtomicUsize>,
    }
    impl Endless {
        fn produce(&mut self) {
            let Some(t) = &self.t else { return };
            let high = t.get_write_buffer_limits().1;
            while !t.is_closing() && t.get_write_buffer_size() <= high {
                t.write(vec![7u8; 16 * 1024]).unwrap();
            }
        }
    }
    impl BaseProtocol for Endless {
        fn connection_made(&mut self, t: &Transport) {
            self.t = Some(t.clone());
            self.produce();
        }
        fn resume_writing(&mut self) {
            self.resumes.fetch_add(1, Ordering::SeqCst);
            self.produce();
        }
    }
    impl Protocol for Endless {
        fn data_received(&mut self, _: Bytes) {}
    }

    // Its own thread and runtime: if the task never yielded, the runtime
    // would be starved and no tokio timer could end the test.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let resumes = Arc::new(AtomicUsize::new(0));
            let r = resumes.clone();
            let t = connect_io(
                move || Endless {
                    t: None,
                    resumes: r,
                },
                Sink,
            )
            .await
            .unwrap();
            // This task gets turns while the producer cycles.
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
            let cycled = resumes.load(Ordering::SeqCst);
            t.abort();
            t.closed().await;
            let _ = done_tx.send(cycled);
        });
    });
    let cycled = done_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the producer's task never yielded (or abort() never reached it)");
    assert!(cycled >= 16, "the producer ran meanwhile: {cycled} resumes");
}
