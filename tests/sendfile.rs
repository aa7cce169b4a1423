//! `sendfile` (asyncio's `loop.sendfile`) on real loopback sockets: CPython's
//! `SendfileMixin` tests translated (each names its original), then what
//! the Rust form adds (the protocol swapped out and back, reading paused,
//! a dropped future, a second call, a buffered protocol, a pipe as the
//! file).
//!
//! Source: CPython 3.13 `Lib/test/test_asyncio/test_sendfile.py`
//! (`SendfileMixin`).

mod common;
#[cfg(feature = "tls")]
mod tls_support;

use std::fs::File;
use std::io::{ErrorKind, Seek, SeekFrom, Write};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_transports::{Transport, sendfile};

/// CPython's `SendfileBase.DATA` is 160 KiB; a few blocks of ours too.
const LEN: usize = 160 * 1024 + 17;

/// A file holding `data`, unlinked, opened for reading and writing, at
/// position 0.
fn file_with(data: &[u8]) -> File {
    let path = std::env::temp_dir().join(format!(
        "tokio-transports-sendfile-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let mut f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.write_all(data).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn pos(f: &mut File) -> u64 {
    f.stream_position().unwrap()
}

/// Wait until `sendfile` (running in another task) has paused reading.
async fn reading_paused(t: &Transport) {
    guard("reading paused", async {
        while t.is_reading() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The error of a send the connection failed under: one of the
/// connection-error kinds (asyncio's `ConnectionError`).
fn assert_connection_error(err: &std::io::Error) {
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
        "{err:?}"
    );
}

/// The peer reads 1,024 bytes of a send under way, then goes away: the
/// call fails with a connection error, the position is between the two
/// ends, the transport is closing and its protocol heard the loss.
async fn peer_leaves_midway(
    t: &Transport,
    log: &Log,
    mut peer: impl tokio::io::AsyncRead + Unpin,
    data: &[u8],
    file: &mut File,
) {
    let (sent, got) = tokio::join!(
        async { guard("sendfile", sendfile(t, &*file, 0, None, true)).await },
        async move {
            let got = read_n(&mut peer, 1024).await;
            drop(peer);
            got
        }
    );
    assert_eq!(got, &data[..1024]);
    assert_connection_error(&sent.unwrap_err());
    let at = pos(file);
    assert!(
        (1024..data.len() as u64).contains(&at),
        "file position {at}"
    );
    assert!(t.is_closing());
    // The user's protocol hears the loss, once.
    assert!(guard("client lost", log.wait_lost()).await.is_some());
}

/// Close the transport and read what the peer got, to its end.
async fn close_and_collect(t: &Transport, peer: &mut TcpStream) -> Vec<u8> {
    t.close();
    read_to_eof(peer).await
}

// test_sendfile.py SendfileMixin.test_sendfile
#[tokio::test]
async fn test_sendfile() {
    let reg = Registry::new();
    let data = pattern(LEN, 1);
    let mut file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    assert_eq!(pos(&mut file), LEN as u64);
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_pre_and_post_data
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sendfile_pre_and_post_data() {
    let reg = Registry::new();
    let data = pattern(LEN, 2);
    let mut file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let prefix = b"PREFIX__".repeat(1024);
    let suffix = b"--SUFFIX".repeat(1024);
    t.write(prefix.clone()).unwrap();
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    t.write(suffix.clone()).unwrap();
    t.close();
    assert_eq!(sent, LEN as u64);
    let got = reader.await.unwrap();
    assert_eq!(got, [prefix, data, suffix].concat());
    assert_eq!(pos(&mut file), LEN as u64);
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_partial
#[tokio::test]
async fn test_sendfile_partial() {
    let reg = Registry::new();
    let data = pattern(LEN, 3);
    let mut file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let sent = guard("sendfile", sendfile(&t, &file, 1000, Some(100), true))
        .await
        .unwrap();
    assert_eq!(sent, 100);
    assert_eq!(close_and_collect(&t, &mut peer).await, &data[1000..1100]);
    assert_eq!(pos(&mut file), 1100);
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_for_closing_transp
#[tokio::test]
async fn test_sendfile_for_closing_transp() {
    let reg = Registry::new();
    let mut file = file_with(&pattern(LEN, 4));
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.close();
    let err = sendfile(&t, &file, 0, None, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert!(err.to_string().contains("is closing"), "{err}");
    assert!(read_to_eof(&mut peer).await.is_empty());
    assert_eq!(pos(&mut file), 0);
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_not_supported (a datagram
// transport there; a datagram transport is another type here, so the
// unsupported kind is a pipe transport, as in asyncio).
#[tokio::test]
async fn test_sendfile_not_supported() {
    let mut file = file_with(&pattern(100, 5));
    let (_r, w) = std::io::pipe().unwrap();
    let t = tokio_transports::connect_write_pipe(|| (), w)
        .await
        .unwrap();
    let err = sendfile(&t, &file, 0, None, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("not supported"), "{err}");
    assert_eq!(pos(&mut file), 0);
    t.close();
    guard("pipe closed", t.closed()).await;
}

// test_sendfile.py SendfileMixin.test_sendfile_force_unsupported_native:
// there the native path is patched out; here a transport without one
// (`connect_io`): without the fallback nothing is sent.
#[tokio::test]
async fn test_sendfile_force_unsupported_native() {
    let reg = Registry::new();
    let mut file = file_with(&pattern(LEN, 6));
    let (t, log, mut peer) = duplex_client(&reg).await;
    let err = sendfile(&t, &file, 0, None, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("fallback is disabled"), "{err}");
    assert_eq!(pos(&mut file), 0);
    barrier(&t).await;
    assert!(t.is_reading());
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    guard("lost", log.wait_lost()).await;
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_close_peer_after_receiving
#[tokio::test]
async fn test_sendfile_close_peer_after_receiving() {
    let reg = Registry::new();
    let data = pattern(LEN, 7);
    let mut file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let reader = tokio::spawn(async move {
        let got = read_n(&mut peer, LEN).await;
        drop(peer);
        got
    });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(reader.await.unwrap(), data);
    assert_eq!(pos(&mut file), LEN as u64);
    // The peer's close reaches the protocol once reading is back on.
    guard("client lost", log.wait_lost()).await;
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_close_peer_in_the_middle_of_receiving
// (and ..._fallback_close_peer_in_the_middle_of_receiving: the same path here)
#[tokio::test]
async fn test_sendfile_close_peer_in_the_middle_of_receiving() {
    let reg = Registry::new();
    // Far more than the socket buffers and the transport's buffer hold.
    let len = 8 << 20;
    let data = pattern(len, 8);
    let mut file = file_with(&data);
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    set_reset_on_drop(&peer);
    peer_leaves_midway(&t, &log, peer, &data, &mut file).await;
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_ssl, test_sendfile_ssl_pre_and_post_data,
// test_sendfile_ssl_partial
#[cfg(feature = "tls")]
#[tokio::test]
async fn test_sendfile_ssl() {
    use tls_support::{Pki, tls_client_to};
    use tokio_transports::{ServerOptions, create_server};

    let pki = Pki::new();
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::default()),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let (t, _log) = tls_client_to(&reg, "localhost", port, pki.client())
        .await
        .unwrap();
    let srv = reg.nth("server", 0).await;
    let data = pattern(LEN, 9);
    let mut file = file_with(&data);

    let prefix = b"zxcvbnm".repeat(1024);
    let suffix = b"0987654321".repeat(1024);
    t.write(prefix.clone()).unwrap();
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(pos(&mut file), LEN as u64);
    let sent = guard("partial", sendfile(&t, &file, 1000, Some(100), true))
        .await
        .unwrap();
    assert_eq!(sent, 100);
    assert_eq!(pos(&mut file), 1100);
    t.write(suffix.clone()).unwrap();
    let want = [prefix, data.clone(), data[1000..1100].to_vec(), suffix].concat();
    assert_eq!(srv.wait_received(want.len()).await, want);
    t.close();
    guard("server lost", srv.wait_lost()).await;
    shutdown(&server).await;
    reg.finish().await;
}

/// A client over `connect_io` (an in-memory pipe): no native send, so
/// `sendfile` takes the fallback path.
async fn duplex_client(reg: &Registry) -> (Transport, Log, tokio::io::DuplexStream) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = tokio_transports::connect_io(move || rec, a).await.unwrap();
    (t, log, b)
}

/// The protocol was told to pause writing before `sendfile`: it hears
/// nothing of the file's own pauses and resumes, and gets the one
/// `resume_writing` it is owed at the end; its grammar holds throughout.
async fn hears_only_what_it_is_owed(
    t: Transport,
    log: Log,
    mut peer: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) {
    let data = pattern(1 << 20, 10);
    let file = file_with(&data);
    // Small watermarks: every block of the fallback goes over the high one.
    t.set_write_buffer_limits(Some(8 * 1024), Some(1024))
        .unwrap();
    // The peer reads nothing yet: this write pauses the protocol.
    let pre = pattern(4 << 20, 11);
    t.write(pre.clone()).unwrap();
    log.wait_until("pause_writing", |e| e.iter().any(|e| e.is_pw()))
        .await;
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    log.wait_until("resume_writing", |e| e.iter().any(|e| e.is_rw()))
        .await;
    barrier(&t).await;
    assert_eq!(log.count(|e| e.is_pw()), 1, "{:?}", log.events());
    assert_eq!(log.count(|e| e.is_rw()), 1, "{:?}", log.events());
    t.close();
    assert_eq!(reader.await.unwrap(), [pre, data].concat());
}

#[tokio::test]
async fn the_protocol_hears_only_the_flow_control_it_is_owed_native() {
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    hears_only_what_it_is_owed(t, log, peer).await;
    reg.finish().await;
}

#[tokio::test]
async fn the_protocol_hears_only_the_flow_control_it_is_owed_fallback() {
    let reg = Registry::new();
    let (t, log, peer) = duplex_client(&reg).await;
    hears_only_what_it_is_owed(t, log, peer).await;
    reg.finish().await;
}

/// A protocol not paused at the start hears nothing at all of the file's
/// flow control (the fallback's blocks pause and resume the transport
/// many times here).
#[tokio::test]
async fn an_unpaused_protocol_hears_no_flow_control() {
    let reg = Registry::new();
    let data = pattern(1 << 20, 12);
    let file = file_with(&data);
    let (t, log, mut peer) = duplex_client(&reg).await;
    t.set_write_buffer_limits(Some(8 * 1024), Some(1024))
        .unwrap();
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    assert!(t.stats().pauses > 0, "the transport did pause meanwhile");
    barrier(&t).await;
    assert_eq!(
        log.count(|e| e.is_pw() || e.is_rw()),
        0,
        "{:?}",
        log.events()
    );
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    reg.finish().await;
}

/// Reading is paused while the file is sent (data from the peer waits in
/// the kernel), and resumes afterwards; the restored protocol gets it.
#[tokio::test]
async fn reading_is_paused_while_sending_and_resumes_after() {
    let reg = Registry::new();
    let data = pattern(4 << 20, 13);
    let file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert!(t.is_reading());
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    // The peer reads nothing yet, so the send cannot finish before this.
    reading_paused(&t).await;
    peer.write_all(b"ping").await.unwrap();
    wait_unread(&t, 4).await;
    assert!(
        !log.events().iter().any(|e| e.is_data()),
        "no data while sending"
    );
    let got = read_n(&mut peer, data.len()).await;
    assert_eq!(got, data);
    assert_eq!(
        guard("sendfile", sending).await.unwrap().unwrap(),
        data.len() as u64
    );
    assert_eq!(log.wait_received(4).await, b"ping");
    assert!(t.is_reading());
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// A transport whose reading was paused before the call stays paused.
#[tokio::test]
async fn reading_paused_before_stays_paused() {
    let reg = Registry::new();
    let file = file_with(&pattern(1000, 14));
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.pause_reading();
    guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    barrier(&t).await;
    assert!(!t.is_reading());
    assert_eq!(close_and_collect(&t, &mut peer).await.len(), 1000);
    reg.finish().await;
}

/// A second `sendfile` made during a native send waits behind it like any
/// command, then runs: its file follows the first one.
#[tokio::test]
async fn a_second_sendfile_during_a_native_send_runs_after_it() {
    let reg = Registry::new();
    let data = pattern(4 << 20, 15);
    let file = file_with(&data);
    let other = file_with(b"other");
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let t2 = t.clone();
    let first = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let t3 = t.clone();
    let second = tokio::spawn(async move { sendfile(&t3, &other, 0, None, true).await });
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    assert_eq!(
        guard("first", first).await.unwrap().unwrap(),
        data.len() as u64
    );
    assert_eq!(guard("second", second).await.unwrap().unwrap(), 5);
    assert!(t.is_reading());
    t.close();
    assert_eq!(reader.await.unwrap(), [&data[..], b"other"].concat());
    reg.finish().await;
}

/// A second `sendfile` during a fallback send fails at once; the first
/// completes.
#[tokio::test]
async fn a_second_sendfile_during_a_fallback_send_is_refused() {
    let reg = Registry::new();
    let data = pattern(1 << 20, 37);
    let file = file_with(&data);
    let other = file_with(b"other");
    let (t, _log, mut peer) = duplex_client(&reg).await;
    let t2 = t.clone();
    let first = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    // The peer reads nothing yet: the fallback waits on its first drain.
    reading_paused(&t).await;
    barrier(&t).await;
    let err = sendfile(&t, &other, 0, None, true).await.unwrap_err();
    assert!(err.to_string().contains("already in progress"), "{err}");
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    assert_eq!(
        guard("first", first).await.unwrap().unwrap(),
        data.len() as u64
    );
    assert!(t.is_reading());
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    reg.finish().await;
}

/// CPython's native send refuses a `write()` meanwhile
/// (test_sendfile.py SendfileMixin.test_sendfile_prevents_bare_write);
/// here a write from another task waits and goes out after the file.
#[tokio::test]
async fn a_write_meanwhile_goes_out_after_the_file() {
    let reg = Registry::new();
    let data = pattern(4 << 20, 21);
    let file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    t.write("after").unwrap();
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    assert_eq!(
        guard("sendfile", sending).await.unwrap().unwrap(),
        data.len() as u64
    );
    t.close();
    assert_eq!(reader.await.unwrap(), [&data[..], b"after"].concat());
    reg.finish().await;
}

/// Without the fallback a plain socket still sends natively
/// (test_sendfile.py's native path).
#[tokio::test]
async fn the_native_send_needs_no_fallback() {
    let reg = Registry::new();
    let data = pattern(LEN, 22);
    let mut file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, false))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(t.stats().bytes_sent, LEN as u64);
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    assert_eq!(pos(&mut file), LEN as u64);
    reg.finish().await;
}

/// Dropping the `sendfile` future half-way puts the protocol back and
/// resumes reading; what was written of the file is still sent, and later
/// writes follow it.
#[tokio::test]
async fn a_dropped_sendfile_puts_everything_back() {
    let reg = Registry::new();
    let data = pattern(4 << 20, 16);
    let mut file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let t2 = t.clone();
    let f2 = file.try_clone().unwrap();
    let sending = tokio::spawn(async move { sendfile(&t2, &f2, 0, None, true).await });
    // Some of the file has gone out: the send is under way.
    let head = read_n(&mut peer, 64 * 1024).await;
    assert_eq!(head, &data[..64 * 1024]);
    sending.abort();
    assert!(guard("aborted", sending).await.unwrap_err().is_cancelled());
    barrier(&t).await;
    assert!(t.is_reading());
    let restored = t
        .with_protocol(|p| {
            p.downcast_mut::<tokio_transports::testing::Recorder>()
                .is_some()
        })
        .await;
    assert_eq!(restored, Some(true));
    t.write("after").unwrap();
    t.close();
    let rest = read_to_eof(&mut peer).await;
    let all = [head, rest].concat();
    assert!(all.ends_with(b"after"));
    let file_part = &all[..all.len() - 5];
    assert_eq!(file_part, &data[..file_part.len()]);
    // A dropped call sets no position (as a dropped file read would not).
    assert_eq!(pos(&mut file), 0);
    assert_eq!(guard("lost", log.wait_lost()).await, None);
    reg.finish().await;
}

/// `abort()` while the file is sent: the call fails, the user's protocol
/// gets `connection_lost` once.
#[tokio::test]
async fn abort_while_sending() {
    let reg = Registry::new();
    let data = pattern(4 << 20, 17);
    let mut file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let t2 = t.clone();
    let f2 = file.try_clone().unwrap();
    let sending = tokio::spawn(async move { sendfile(&t2, &f2, 0, None, true).await });
    let _ = read_n(&mut peer, 1024).await;
    t.abort();
    // The error `drain()` reports for the discarded buffer, or the
    // transport found closing before the next block.
    let err = guard("sendfile", sending).await.unwrap().unwrap_err();
    assert_connection_error(&err);
    assert_eq!(guard("lost", log.wait_lost()).await, None);
    assert!(pos(&mut file) < data.len() as u64);
    reg.finish().await;
}

/// A buffered protocol is swapped out and back the same way, and receives
/// again afterwards.
#[tokio::test]
async fn a_buffered_protocol_is_put_back() {
    let reg = Registry::new();
    let data = pattern(LEN, 18);
    let file = file_with(&data);
    let (t, log, mut peer) = buffered_client_with_raw_peer(&reg, Config::default()).await;
    let reader = tokio::spawn(async move {
        let got = read_n(&mut peer, LEN).await;
        (got, peer)
    });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    let (got, mut peer) = reader.await.unwrap();
    assert_eq!(got, data);
    peer.write_all(b"hello").await.unwrap();
    assert_eq!(log.wait_received(5).await, b"hello");
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// Over a Unix socket.
#[tokio::test]
async fn over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("tt-sendfile-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let t = tokio_transports::create_unix_connection(
        || (),
        path.as_path(),
        tokio_transports::ConnectOptions::default(),
    )
    .await
    .unwrap();
    let (mut peer, _) = listener.accept().await.unwrap();
    let data = pattern(LEN, 19);
    let file = file_with(&data);
    let reader = tokio::spawn(async move {
        let mut v = Vec::new();
        peer.read_to_end(&mut v).await.unwrap();
        v
    });
    assert_eq!(
        guard("sendfile", sendfile(&t, &file, 0, None, true))
            .await
            .unwrap(),
        LEN as u64
    );
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file that cannot seek (a pipe) is sent from where it is, to its end;
/// an offset is refused for it.
#[tokio::test]
async fn a_pipe_as_the_file() {
    let reg = Registry::new();
    let data = pattern(LEN, 20);
    let (r, mut w) = std::io::pipe().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            w.write_all(&data).unwrap();
        })
    };
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let err = sendfile(&t, &r, 5, None, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    let sent = guard("sendfile", sendfile(&t, &r, 0, None, true))
        .await
        .unwrap();
    writer.join().unwrap();
    assert_eq!(sent, LEN as u64);
    t.close();
    assert_eq!(reader.await.unwrap(), data);
    reg.finish().await;
}

/// `count` of 0 is refused (asyncio: "count must be a positive integer").
#[tokio::test]
async fn a_zero_count_is_refused() {
    let reg = Registry::new();
    let mut file = file_with(b"abc");
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    let err = sendfile(&t, &file, 0, Some(0), true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("positive integer"), "{err}");
    assert_eq!(pos(&mut file), 0);
    assert!(close_and_collect(&t, &mut peer).await.is_empty());
    reg.finish().await;
}

/// An empty file, or an offset past its end: nothing is sent, 0 returned,
/// the position untouched.
#[tokio::test]
async fn an_empty_file_sends_nothing() {
    let reg = Registry::new();
    let mut empty = file_with(b"");
    let mut short = file_with(b"abc");
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert_eq!(sendfile(&t, &empty, 0, None, true).await.unwrap(), 0);
    assert_eq!(sendfile(&t, &short, 10, Some(5), true).await.unwrap(), 0);
    assert_eq!(pos(&mut empty), 0);
    assert_eq!(pos(&mut short), 0);
    assert!(t.is_reading());
    assert!(close_and_collect(&t, &mut peer).await.is_empty());
    reg.finish().await;
}

// test_sendfile.py SendfileMixin.test_sendfile_fallback_close_peer_in_the_middle_of_receiving
#[tokio::test]
async fn test_sendfile_fallback_close_peer_in_the_middle_of_receiving() {
    let reg = Registry::new();
    let len = 1 << 20;
    let data = pattern(len, 23);
    let mut file = file_with(&data);
    let (t, log, peer) = duplex_client(&reg).await;
    peer_leaves_midway(&t, &log, peer, &data, &mut file).await;
    reg.finish().await;
}

/// Whether the transport's protocol is the test's recorder (not one of
/// `sendfile`'s).
async fn is_recorder(t: &Transport) -> Option<bool> {
    t.with_protocol(|p| {
        p.downcast_mut::<tokio_transports::testing::Recorder>()
            .is_some()
    })
    .await
}

/// A future dropped right after its first poll (a `select!` branch that
/// lost, a timeout) still puts the protocol back and resumes reading.
#[tokio::test]
async fn a_sendfile_dropped_before_its_swap_puts_everything_back() {
    let reg = Registry::new();
    let file = file_with(&pattern(1000, 24));
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    {
        let mut fut = std::pin::pin!(sendfile(&t, &file, 0, None, true));
        assert!(is_pending(fut.as_mut()));
    }
    barrier(&t).await;
    assert!(t.is_reading());
    assert_eq!(is_recorder(&t).await, Some(true));
    peer.write_all(b"ping").await.unwrap();
    assert_eq!(log.wait_received(4).await, b"ping");
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    assert_eq!(sendfile(&t, &file, 0, None, true).await.unwrap(), 1000);
    t.close();
    assert_eq!(reader.await.unwrap().len(), 1000);
    reg.finish().await;
}

/// `abort()`, then the future dropped before the task ran: the protocol,
/// never paused, hears nothing but `connection_lost`.
#[tokio::test]
async fn abort_then_drop_delivers_only_connection_lost() {
    let reg = Registry::new();
    let file = file_with(&pattern(1 << 20, 25));
    let (t, log, _peer) = duplex_client(&reg).await;
    t.set_write_buffer_limits(Some(8 * 1024), Some(1024))
        .unwrap();
    {
        let mut fut = std::pin::pin!(sendfile(&t, &file, 0, None, true));
        // Until the first block is written and the fallback waits to drain.
        guard("first block", async {
            while is_pending(fut.as_mut()) && t.get_write_buffer_size() <= 32 * 1024 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(is_pending(fut.as_mut()));
        t.abort();
    }
    assert_eq!(guard("lost", log.wait_lost()).await, None);
    let events = log.events();
    assert_eq!(events.len(), 2, "{events:?}");
    reg.finish().await;
}

/// A read a buffered protocol had in its buffer when reading was paused
/// from its `get_buffer` (kept back by the task), delivered after the user
/// resumed reading during the send: nothing is lost.
#[tokio::test]
async fn a_read_kept_back_reaches_the_buffered_protocol() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let reg = Registry::new();
    let once = Arc::new(AtomicBool::new(false));
    let o2 = once.clone();
    let cfg = Config::default().hook(move |t, ev, _| {
        if matches!(ev, tokio_transports::testing::Event::GetBuffer(_))
            && !o2.swap(true, Ordering::SeqCst)
        {
            t.pause_reading();
        }
    });
    let (t, log, mut peer) = buffered_client_with_raw_peer(&reg, cfg).await;
    let data = pattern(4 << 20, 26);
    let file = file_with(&data);
    peer.write_all(b"hello").await.unwrap();
    reading_paused(&t).await;
    barrier(&t).await;
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    // The send is under way once the peer gets its first bytes.
    let head = read_n(&mut peer, 1024).await;
    t.resume_reading();
    let rest = read_n(&mut peer, data.len() - 1024).await;
    assert_eq!([head, rest].concat(), data);
    guard("sendfile", sending).await.unwrap().unwrap();
    peer.write_all(b"world").await.unwrap();
    assert_eq!(log.wait_received(10).await, b"helloworld");
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// A buffered protocol whose reading was resumed during a fallback send
/// (its stand-in reads meanwhile) receives after it is put back.
#[tokio::test]
async fn a_buffered_protocol_receives_after_a_fallback_send() {
    let reg = Registry::new();
    let (a, mut peer) = tokio::io::duplex(64 * 1024);
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = tokio_transports::connect_io(move || tokio_transports::Buffered(rec), a)
        .await
        .unwrap();
    let data = pattern(1 << 20, 27);
    let file = file_with(&data);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    t.resume_reading();
    let got = read_n(&mut peer, data.len()).await;
    assert_eq!(got, data);
    guard("sendfile", sending).await.unwrap().unwrap();
    barrier(&t).await;
    peer.write_all(b"hello").await.unwrap();
    assert_eq!(log.wait_received(5).await, b"hello");
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// Not `sendfile`'s: a buffered protocol replaced by a plain one and then
/// by a buffered one again still receives (the buffered read waited for a
/// wake-up that went to the plain protocol's reads).
#[tokio::test]
async fn set_protocol_buffered_plain_buffered_still_receives() {
    use tokio_transports::testing::Recorder;
    let reg = Registry::new();
    let (t, log, mut peer) = buffered_client_with_raw_peer(&reg, Config::default()).await;
    peer.write_all(b"1").await.unwrap();
    assert_eq!(log.wait_received(1).await, b"1");
    t.set_protocol(Recorder::successor(&log, Config::default(), &t));
    // The plain protocol reads (with the task's waker) ...
    peer.write_all(b"2").await.unwrap();
    assert_eq!(log.wait_received(2).await, b"12");
    // ... then a buffered one again (no `with_protocol` in between: it
    // re-arms the buffered read too).
    t.set_protocol(tokio_transports::Buffered(Recorder::successor(
        &log,
        Config::default(),
        &t,
    )));
    peer.write_all(b"hello").await.unwrap();
    assert_eq!(log.wait_received(7).await, b"12hello");
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// Small socket buffers on both ends: a large file cannot sit in the
/// kernel, so the send is still under way when the test acts.
fn small_buffers(t: &Transport, peer: &TcpStream) {
    t.with_socket(|s| s.set_send_buffer_size(16 * 1024))
        .unwrap()
        .unwrap();
    socket2::SockRef::from(peer)
        .set_recv_buffer_size(16 * 1024)
        .unwrap();
}

/// Two calls back to back from one task: the second runs with reading
/// paused too (the first one's resume comes before the second's pause, on
/// the task), and an echo of data that arrives meanwhile goes out after
/// the file.
#[tokio::test]
async fn back_to_back_calls_keep_reading_paused() {
    let reg = Registry::new();
    let data = pattern(8 << 20, 28);
    let f1 = file_with(b"first");
    let f2 = file_with(&data);
    let (t, log, peer) = client_with_raw_peer(&reg, Config::echo()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move {
        sendfile(&t2, &f1, 0, None, true).await.unwrap();
        sendfile(&t2, &f2, 0, None, true).await
    });
    let (mut rd, mut wr) = peer.into_split();
    // Part of the second file is out: its send is under way.
    let head = read_n(&mut rd, 5 + 256 * 1024).await;
    assert!(!t.is_reading());
    wr.write_all(b"PING").await.unwrap();
    let reader = tokio::spawn(async move {
        let mut rest = Vec::new();
        rd.read_to_end(&mut rest).await.unwrap();
        rest
    });
    let sent = guard("second sendfile", sending).await.unwrap().unwrap();
    assert_eq!(sent, data.len() as u64);
    assert_eq!(log.wait_received(4).await, b"PING");
    barrier(&t).await;
    t.close();
    let all = [head, guard("reader", reader).await.unwrap()].concat();
    assert_eq!(all, [&b"first"[..], &data, b"PING"].concat());
    reg.finish().await;
}

/// `set_protocol` during a native send: the new protocol stays, and
/// reading is back on afterwards (asyncio's restore resumes reading
/// whatever the protocol).
#[tokio::test]
async fn set_protocol_during_a_send_keeps_the_new_protocol_and_reads_again() {
    use tokio_transports::testing::Recorder;
    let reg = Registry::new();
    let data = pattern(4 << 20, 29);
    let file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let head = read_n(&mut peer, 64 * 1024).await;
    // The successor writes into the same log: the grammar is checked
    // across both protocols.
    t.set_protocol(Recorder::successor(&log, Config::default(), &t));
    let rest = read_n(&mut peer, data.len() - head.len()).await;
    assert_eq!([head, rest].concat(), data);
    let sent = guard("sendfile", sending).await.unwrap().unwrap();
    assert_eq!(sent, data.len() as u64);
    assert!(t.is_reading());
    peer.write_all(b"hi").await.unwrap();
    assert_eq!(log.wait_received(2).await, b"hi");
    t.close();
    assert!(read_to_eof(&mut peer).await.is_empty());
    reg.finish().await;
}

/// `close()` half-way through a native send, after a write: the file goes
/// out whole, then the write, then the close (close flushes, and the
/// write was made before it).
#[tokio::test]
async fn close_during_a_native_send_lets_the_file_finish() {
    let reg = Registry::new();
    let data = pattern(8 << 20, 30);
    let file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let head = read_n(&mut peer, 64 * 1024).await;
    t.write("AFTER").unwrap();
    t.close();
    let rest = read_to_eof(&mut peer).await;
    let sent = guard("sendfile", sending).await.unwrap().unwrap();
    assert_eq!(sent, data.len() as u64);
    assert_eq!([head, rest].concat(), [&data[..], b"AFTER"].concat());
    assert_eq!(guard("lost", log.wait_lost()).await, None);
    reg.finish().await;
}

/// The caller gives up while the peer reads nothing (the socket is full):
/// the send stops, the protocol is back and reading is on.
#[tokio::test]
async fn a_dropped_caller_ends_a_stuck_native_send() {
    let reg = Registry::new();
    let data = pattern(8 << 20, 31);
    let file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let _ = read_n(&mut peer, 1024).await;
    sending.abort();
    assert!(guard("aborted", sending).await.unwrap_err().is_cancelled());
    barrier(&t).await;
    assert!(t.is_reading());
    assert_eq!(is_recorder(&t).await, Some(true));
    t.abort();
    reg.finish().await;
}

/// A protocol that counts `connection_lost`.
struct CountLost(std::sync::Arc<std::sync::atomic::AtomicUsize>);
impl tokio_transports::BaseProtocol for CountLost {
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
impl tokio_transports::Protocol for CountLost {}

/// The runtime is dropped with a native send under way and a write held by
/// it: `connection_lost` once, the held write counted as dropped, the
/// socket closed.
#[test]
fn the_runtime_dropped_during_a_native_send() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lost = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let file = file_with(&pattern(8 << 20, 32));
    let l2 = lost.clone();
    let (t, mut peer) = rt.block_on(async move {
        let t = tokio_transports::create_connection(
            move || CountLost(l2),
            "127.0.0.1",
            port,
            tokio_transports::ConnectOptions::default(),
        )
        .await
        .unwrap();
        let (peer, _) = listener.accept().unwrap();
        t.with_socket(|s| s.set_send_buffer_size(16 * 1024))
            .unwrap()
            .unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(16 * 1024)
            .unwrap();
        let t2 = t.clone();
        tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
        // The native send is under way once bytes went out.
        guard("native send", async {
            while t.stats().bytes_sent == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        t.write("held").unwrap();
        (t, peer)
    });
    assert_eq!(t.get_write_buffer_size(), 4);
    drop(rt);
    assert_eq!(lost.load(Ordering::SeqCst), 1);
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.dropped_writes() >= 1);
    assert!(t.is_closed());
    peer.set_read_timeout(Some(GUARD)).unwrap();
    let mut sink = Vec::new();
    let r = std::io::Read::read_to_end(&mut peer, &mut sink);
    assert!(
        r.is_ok() || r.as_ref().unwrap_err().kind() == ErrorKind::ConnectionReset,
        "{r:?}"
    );
}

// test_sendfile.py SendfileMixin.test_sendfile_ssl_close_peer_after_receiving
#[cfg(feature = "tls")]
#[tokio::test]
async fn test_sendfile_ssl_close_peer_after_receiving() {
    use tls_support::{Pki, raw_tls_peer, tls_client_to};
    let pki = Pki::new();
    let reg = Registry::new();
    let data = pattern(LEN, 33);
    let mut file = file_with(&data);
    let (port, peer) = raw_tls_peer(&pki).await;
    let (t, log) = tls_client_to(&reg, "localhost", port, pki.client())
        .await
        .unwrap();
    let mut peer = peer.await.unwrap();
    let reader = tokio::spawn(async move {
        let got = read_n(&mut peer, LEN).await;
        drop(peer);
        got
    });
    let sent = guard("sendfile", sendfile(&t, &file, 0, None, true))
        .await
        .unwrap();
    assert_eq!(sent, LEN as u64);
    assert_eq!(reader.await.unwrap(), data);
    assert_eq!(pos(&mut file), LEN as u64);
    guard("lost", log.wait_lost()).await;
    reg.finish().await;
}

/// `start_tls` during a native send: the file goes out in plaintext (the
/// upgrade waits behind it like any command), what is written after the
/// call goes out encrypted, and the protocol and reading are back.
#[cfg(feature = "tls")]
#[tokio::test]
async fn start_tls_during_a_native_send_waits_for_the_file() {
    use tls_support::Pki;
    let pki = Pki::new();
    let reg = Registry::new();
    let data = pattern(4 << 20, 34);
    let file = file_with(&data);
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let head = read_n(&mut peer, 64 * 1024).await;
    let up = tokio::spawn(tokio_transports::start_tls(
        &t,
        pki.client().server_hostname("localhost"),
    ));
    t.write("after-upgrade").unwrap();
    let rest = read_n(&mut peer, data.len() - head.len()).await;
    assert_eq!([head, rest].concat(), data, "the file in plaintext first");
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let mut tls = guard("accept", acceptor.accept(peer)).await.unwrap();
    let mut buf = vec![0u8; 13];
    guard("read after", tls.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"after-upgrade");
    guard("upgrade", up).await.unwrap().unwrap();
    assert_eq!(
        guard("sendfile", sending).await.unwrap().unwrap(),
        data.len() as u64
    );
    barrier(&t).await;
    assert!(t.is_reading());
    assert_eq!(is_recorder(&t).await, Some(true));
    tls.write_all(b"ping").await.unwrap();
    assert_eq!(log.wait_received(4).await, b"ping");
    t.close();
    let mut rest = Vec::new();
    let _ = guard("eof", tls.read_to_end(&mut rest)).await;
    // Our close waits for the peer's close_notify.
    let _ = tls.shutdown().await;
    reg.finish().await;
}

/// `sendfile` made while a `start_tls` is pending: it waits for the TLS
/// task and goes out encrypted (the fallback).
#[cfg(feature = "tls")]
#[tokio::test]
async fn sendfile_during_a_pending_start_tls_goes_out_encrypted() {
    use tls_support::Pki;
    let pki = Pki::new();
    let reg = Registry::new();
    let data = pattern(300_000, 35);
    let file = file_with(&data);
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    let up = tokio::spawn(tokio_transports::start_tls(
        &t,
        pki.client().server_hostname("localhost"),
    ));
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let mut tls = guard("accept", acceptor.accept(peer)).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 300_000];
        guard("read", tls.read_exact(&mut buf)).await.unwrap();
        (buf, tls)
    });
    guard("upgrade", up).await.unwrap().unwrap();
    assert_eq!(
        guard("sendfile", sending).await.unwrap().unwrap(),
        data.len() as u64
    );
    let (got, mut tls) = reader.await.unwrap();
    assert_eq!(got, data);
    barrier(&t).await;
    assert!(t.is_reading());
    tls.write_all(b"ping").await.unwrap();
    assert_eq!(log.wait_received(4).await, b"ping");
    t.close();
    let mut rest = Vec::new();
    let _ = guard("eof", tls.read_to_end(&mut rest)).await;
    // Our close waits for the peer's close_notify.
    let _ = tls.shutdown().await;
    reg.finish().await;
}

/// A `with_protocol` made during a native send waits for it and then sees
/// the application's protocol (asyncio's `get_protocol` returns it).
#[tokio::test]
async fn with_protocol_during_a_native_send_sees_the_protocol() {
    let reg = Registry::new();
    let data = pattern(8 << 20, 36);
    let file = file_with(&data);
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    let t2 = t.clone();
    let sending = tokio::spawn(async move { sendfile(&t2, &file, 0, None, true).await });
    reading_paused(&t).await;
    let _ = read_n(&mut peer, 64 * 1024).await;
    let t3 = t.clone();
    let asked = tokio::spawn(async move { is_recorder(&t3).await });
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    assert_eq!(guard("with_protocol", asked).await.unwrap(), Some(true));
    guard("sendfile", sending).await.unwrap().unwrap();
    t.close();
    let _ = reader.await.unwrap();
    reg.finish().await;
}

/// After `write_eof()` a `sendfile` is refused with a clear error (with or
/// without the fallback).
#[tokio::test]
async fn sendfile_after_write_eof_is_refused() {
    let reg = Registry::new();
    let mut file = file_with(b"abc");
    let (t, _log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write_eof().unwrap();
    for fallback in [true, false] {
        let err = sendfile(&t, &file, 0, None, fallback).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        assert!(err.to_string().contains("write_eof"), "{err}");
    }
    assert_eq!(pos(&mut file), 0);
    assert!(read_to_eof(&mut peer).await.is_empty());
    t.close();
    reg.finish().await;
}

/// The connection is lost while the bytes written before the call are
/// still going out (the peer resets): the call reports the loss's own
/// error, as `connection_lost` does.
#[tokio::test]
async fn a_loss_before_the_file_reports_its_own_error() {
    let reg = Registry::new();
    let file = file_with(&pattern(1 << 20, 38));
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    small_buffers(&t, &peer);
    // The peer reads nothing: this stays queued.
    t.write(pattern(4 << 20, 39)).unwrap();
    let t2 = t.clone();
    let f2 = file.try_clone().unwrap();
    let sending = tokio::spawn(async move { sendfile(&t2, &f2, 0, None, true).await });
    reading_paused(&t).await;
    // (One thread: these turns let the call send its job and the task take
    // it, before the reset below is seen.)
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    set_reset_on_drop(&peer);
    drop(peer);
    let err = guard("sendfile", sending).await.unwrap().unwrap_err();
    let lost = guard("lost", log.wait_lost())
        .await
        .expect("lost with an error");
    assert!(
        !err.to_string().contains("Connection closed by peer"),
        "{err} (connection_lost: {lost:?})"
    );
    reg.finish().await;
}

/// A fallback call dropped half-way sets the file's position after the
/// blocks it handed over (asyncio's `finally` does the same when
/// cancelled), and those blocks reach the peer.
#[tokio::test]
async fn a_dropped_fallback_call_sets_the_position() {
    let reg = Registry::new();
    let data = pattern(1 << 20, 40);
    let mut file = file_with(&data);
    let (t, _log, mut peer) = duplex_client(&reg).await;
    let t2 = t.clone();
    let f2 = file.try_clone().unwrap();
    let sending = tokio::spawn(async move { sendfile(&t2, &f2, 100, None, true).await });
    // The peer takes the first block; the second waits on `drain()`.
    let head = read_n(&mut peer, 64 * 1024).await;
    sending.abort();
    assert!(guard("aborted", sending).await.unwrap_err().is_cancelled());
    barrier(&t).await;
    t.close();
    let rest = read_to_eof(&mut peer).await;
    let got = [head, rest].concat();
    assert_eq!(got, &data[100..100 + got.len()]);
    // Every block handed over was sent; the position is right after them.
    assert_eq!(pos(&mut file), 100 + got.len() as u64);
    reg.finish().await;
}
