//! write / writelines / write_eof, close and abort.

mod common;

use bytes::Bytes;
use common::*;
use tokio::io::AsyncWriteExt;
use tokio_transports::{TransportError, connect_io};

const MIB: usize = 1 << 20;

#[tokio::test]
async fn writes_arrive_in_order_and_empty_writes_do_nothing() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write(&b"one "[..]).unwrap();
    t.write(b"".as_slice()).unwrap();
    assert_eq!(t.get_write_buffer_size(), 4, "an empty write adds nothing");
    t.write(vec![b't', b'w', b'o', b' ']).unwrap();
    t.write(Bytes::from_static(b"three")).unwrap();
    t.write("!").unwrap();
    assert_eq!(read_n(&mut peer, 14).await, b"one two three!");
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"");
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

#[tokio::test]
async fn writelines_is_one_vectored_write_and_skips_empty_chunks() {
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder("io", Config::default());
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    t.writelines([
        &b"GET / HTTP/1.1\r\n"[..],
        b"",
        b"Host: x\r\n",
        b"",
        b"\r\n",
    ])
    .unwrap();
    assert_eq!(
        t.get_write_buffer_size(),
        27,
        "exact right after writelines returns"
    );
    gate.allow(usize::MAX);
    barrier(&t).await;
    assert_eq!(gate.written(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        gate.calls(),
        [(3, 27)],
        "one vectored write of the three non-empty chunks"
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    // Only empty chunks: nothing at all.
    t.writelines([&b""[..], b""]).unwrap();
    barrier(&t).await;
    assert_eq!(gate.calls().len(), 1);
    t.close();
    assert_eq!(log.wait_lost().await, None);
    assert!(gate.is_dropped());
    reg.finish().await;
}

#[tokio::test]
async fn writes_made_in_one_callback_go_out_in_one_vectored_write() {
    let reg = Registry::new();
    let (io, gate, mut feed) = GateIo::new();
    gate.allow(usize::MAX);
    let rec = reg.recorder(
        "io",
        Config::default().hook(|t, ev, _| {
            if let Ev::Data(_) = ev {
                t.write("a").unwrap();
                t.write("bb").unwrap();
                t.writelines(["ccc", "", "dddd"]).unwrap();
            }
        }),
    );
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    feed.write_all(b"go").await.unwrap();
    log.wait_received(2).await;
    barrier(&t).await;
    assert_eq!(gate.written(), b"abbcccdddd");
    assert_eq!(gate.calls(), [(4, 10)]);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn writelines_with_a_trailing_empty_chunk_still_closes() {
    // gh-155888: an empty chunk must not keep the buffer from draining.
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.writelines([&b"a"[..], b""]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 1);
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"a");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn write_eof_half_closes() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert!(t.can_write_eof());
    t.write("before eof").unwrap();
    t.write_eof().unwrap();
    t.write_eof().unwrap(); // idempotent
    assert!(!t.is_closing());
    assert_eq!(
        t.write("after"),
        Err(TransportError::WriteAfterEof),
        "write after write_eof"
    );
    let err = t.writelines(["x", "y"]).unwrap_err();
    assert_eq!(err, TransportError::WritelinesAfterEof);
    assert_eq!(
        err.to_string(),
        "Cannot call writelines() after write_eof()"
    );
    assert_eq!(t.write(""), Err(TransportError::WriteAfterEof));
    assert_eq!(
        t.get_write_buffer_size(),
        10,
        "nothing queued by the failed writes"
    );
    // The peer reads the data, then EOF.
    assert_eq!(read_to_eof(&mut peer).await, b"before eof");
    // We still receive after our EOF.
    peer.write_all(b"still reading").await.unwrap();
    assert_eq!(log.wait_received(13).await, b"still reading");
    assert!(t.is_reading());
    // The peer closes: we read EOF, the default eof_received closes us.
    drop(peer);
    assert_eq!(log.wait_lost().await, None);
    let evs = log.events();
    assert_eq!(evs.iter().filter(|e| **e == Ev::Eof).count(), 1);
    assert_eq!(t.dropped_writes(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn write_eof_waits_for_the_buffer_to_drain() {
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder("io", Config::default());
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    t.write("0123456789").unwrap();
    t.write_eof().unwrap();
    barrier(&t).await;
    assert!(!gate.is_shutdown(), "shut down before the buffer drained");
    gate.allow(9);
    barrier(&t).await;
    assert!(!gate.is_shutdown(), "shut down with one byte left");
    gate.allow(1);
    barrier(&t).await;
    assert!(gate.is_shutdown());
    assert_eq!(gate.written(), b"0123456789");
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn write_eof_after_close_is_a_noop() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write("data").unwrap();
    t.close();
    t.write_eof().unwrap();
    // write_eof did nothing, so this write is not a WriteAfterEof error
    // (it is accepted while the close flushes).
    assert_eq!(t.write("more"), Ok(()));
    assert_eq!(read_to_eof(&mut peer).await, b"datamore");
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

#[tokio::test]
async fn close_flushes_8_mib_then_eof() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let data = pattern(8 * MIB, 7);
    t.write(data.clone()).unwrap();
    t.close();
    assert!(t.is_closing(), "is_closing right after close()");
    assert!(!t.is_reading());
    let got = read_to_eof(&mut peer).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_closed());
    reg.finish().await;
}

#[tokio::test]
async fn writes_after_close_while_flushing_are_sent_before_connection_lost() {
    // gh-115514: a transport that is closing but still flushing accepts writes.
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let data = pattern(8 * MIB, 3);
    t.write(data.clone()).unwrap();
    t.close();
    t.write("tail").unwrap();
    let got = read_to_eof(&mut peer).await;
    assert_eq!(got.len(), data.len() + 4);
    assert!(got[..data.len()] == data[..]);
    assert_eq!(&got[data.len()..], b"tail");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(t.dropped_writes(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn close_is_idempotent_and_noop_after_connection_lost() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write("x").unwrap();
    t.close();
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"x");
    assert_eq!(log.wait_lost().await, None);
    t.closed().await;
    t.close();
    t.abort();
    t.close();
    t.write_eof().unwrap();
    assert!(t.is_closing());
    assert_eq!(t.with_protocol(|_| ()).await, None, "the task is gone");
    assert_eq!(log.count(Ev::is_lost), 1);
    reg.finish().await;
}

#[tokio::test]
async fn abort_drops_the_buffer() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    // The peer does not read: fill the kernel, then our buffer.
    let total = 16 * MIB;
    for _ in 0..16 {
        t.write(vec![1u8; MIB]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    let pending = t.get_write_buffer_size();
    assert!(pending > 64 * 1024, "buffer should be over high: {pending}");
    t.abort();
    assert!(t.is_closing());
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(t.get_write_buffer_size(), 0, "the buffer was dropped");
    let got = read_to_eof(&mut peer).await;
    assert!(
        got.len() <= total - pending,
        "peer got {} bytes, but {pending} of {total} were still buffered at abort",
        got.len()
    );
    // No resume_writing: the buffer was dropped, not drained.
    assert_eq!(log.count(Ev::is_rw), 0);
    reg.finish().await;
}

#[tokio::test]
async fn abort_after_close_while_flushing_delivers_one_connection_lost() {
    // anyio#1250: abort() after close() must be safe, and CL comes once.
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    for _ in 0..16 {
        t.write(vec![2u8; MIB]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    t.close();
    barrier(&t).await;
    assert!(log.lost().is_none(), "still flushing");
    t.abort();
    assert_eq!(log.wait_lost().await, None);
    t.abort();
    t.close();
    let got = read_to_eof(&mut peer).await;
    assert!(got.len() < 16 * MIB);
    assert_eq!(log.count(Ev::is_lost), 1);
    reg.finish().await;
}

#[tokio::test]
async fn abort_with_empty_buffer_and_from_a_callback() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if matches!(ev, Ev::Data(_)) {
                t.write("never sent").unwrap();
                t.abort();
                assert!(t.is_closing());
            }
        }),
    )
    .await;
    peer.write_all(b"trigger").await.unwrap();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(
        read_to_eof(&mut peer).await,
        b"",
        "the aborted write was dropped"
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn close_from_connection_made_gives_connection_lost_none() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write("hello").unwrap();
                t.close();
            }
        }),
    )
    .await;
    assert!(t.is_closing());
    assert_eq!(read_to_eof(&mut peer).await, b"hello");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(
        log.events()
            .iter()
            .filter(|e| !matches!(e, Ev::Mark(_)))
            .count(),
        2
    );
    reg.finish().await;
}

#[tokio::test]
async fn write_after_close_with_an_empty_buffer_is_dropped() {
    // close() found nothing to flush: the loss is already decided, so a
    // later write is dropped and counted (asyncio), never sent, never an error.
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.close();
    assert!(
        log.lost().is_none(),
        "connection_lost is never called from inside close()"
    );
    assert_eq!(t.write("too late"), Ok(()));
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(read_to_eof(&mut peer).await, b"");
    assert_eq!(t.dropped_writes(), 1);
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}

#[tokio::test]
async fn many_chunks_go_out_in_order_in_several_vectored_writes() {
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder("io", Config::default());
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    let chunks: Vec<Vec<u8>> = (0..200u32)
        .map(|i| vec![i as u8; 1 + i as usize % 3])
        .collect();
    let expected = chunks.concat();
    t.writelines(chunks).unwrap();
    gate.allow(usize::MAX);
    barrier(&t).await;
    assert_eq!(gate.written(), expected);
    let calls = gate.calls();
    assert!(calls.len() > 1, "{calls:?}");
    assert!(calls.iter().all(|(bufs, _)| *bufs <= 1024), "{calls:?}");
    assert_eq!(calls.iter().map(|c| c.1).sum::<usize>(), expected.len());
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn peer_eof_during_a_pending_write_eof_flushes_then_closes() {
    let reg = Registry::new();
    let (io, gate, feed) = GateIo::new();
    let rec = reg.recorder("io", Config::default());
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    t.write("0123456789").unwrap();
    t.write_eof().unwrap();
    drop(feed); // the peer's EOF: eof_received returns false, close() begins
    log.wait_event("eof", |e| *e == Ev::Eof).await;
    barrier(&t).await;
    assert!(t.is_closing());
    assert!(log.lost().is_none(), "still flushing");
    gate.allow(usize::MAX);
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(gate.written(), b"0123456789");
    reg.finish().await;
}

#[tokio::test]
async fn resume_writing_may_write_after_close_and_it_is_flushed() {
    // gh-115514: close() while paused; resume_writing() (as a TLS layer does)
    // writes the tail; it is sent before connection_lost.
    let reg = Registry::new();
    let (io, gate, _feed) = GateIo::new();
    let rec = reg.recorder(
        "io",
        Config::default().hook(|t, ev, _| {
            if ev.is_rw() {
                t.write("tail").unwrap();
            }
        }),
    );
    let log = rec.log();
    let t = connect_io(|| rec, io).await.unwrap();
    t.set_write_buffer_limits(Some(10), Some(0)).unwrap();
    t.write(vec![1u8; 20]).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    t.close();
    gate.allow(usize::MAX);
    assert_eq!(log.wait_lost().await, None);
    let mut expected = vec![1u8; 20];
    expected.extend_from_slice(b"tail");
    assert_eq!(gate.written(), expected);
    assert_eq!(t.dropped_writes(), 0);
    let evs = log.events();
    assert!(index_of(&evs, Ev::is_rw) < index_of(&evs, Ev::is_lost));
    reg.finish().await;
}
