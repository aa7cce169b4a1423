//! Pipe transports (`connect_read_pipe`, `connect_write_pipe`) over real
//! pipes, FIFOs, a pty, sockets and child processes: end of file, reading
//! paused and resumed, a `BufferedProtocol`, what a one-way transport
//! refuses, the reader going away (with and without data buffered), writes
//! after a close, `write_eof`, `drain`, flow control with a slow reader, and
//! the `pipe_cat` example copying a few megabytes.

mod common;
mod peers;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};

use common::*;
use tokio_transports::{ExtraInfo, Transport, TransportError};

const PIPE_MSG: &str = "pipe closed by peer or os.write(pipe, data) raised exception.";

/// A `pipe(2)`: (read end, write end), both blocking.
fn pipe_pair() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `pipe2` writes two fds into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both fds are fresh and ours.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// A unique path in the temporary directory.
fn temp_path(what: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "tokio-transports-pipes-{}-{what}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Read `r` to its end on a thread (never blocking the runtime); await the
/// result with [`Reader::join`].
fn read_to_end_on_thread(mut r: File) -> Reader {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let _ = tx.send(out);
    });
    Reader(rx)
}

struct Reader(tokio::sync::oneshot::Receiver<Vec<u8>>);

impl Reader {
    async fn join(self) -> Vec<u8> {
        guard("the reader thread", self.0).await.unwrap()
    }
}

fn is_unsupported<T: std::fmt::Debug>(r: Result<T, TransportError>) -> bool {
    matches!(r, Err(TransportError::Unsupported(_)))
}

fn lost_kind(info: &Option<LostInfo>) -> Option<io::ErrorKind> {
    info.as_ref().map(|i| i.kind)
}

// ---- read pipes --------------------------------------------------------------

#[tokio::test]
async fn read_pipe_data_then_eof_then_lost_none() {
    let reg = Registry::new();
    let (r, mut w) = pipe_pair();
    let raw = r.as_raw_fd();
    let t = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), r)
        .await
        .unwrap();
    let log = reg.nth("r", 0).await;
    assert_eq!(t.get_extra_info("pipe"), Some(ExtraInfo::Pipe(raw)));
    assert_eq!(t.get_extra_info("socket"), None, "a pipe is not a socket");
    assert!(t.with_socket(|_| ()).is_none());
    assert!(t.is_reading());
    w.write_all(b"hello ").unwrap();
    assert_eq!(log.wait_received(6).await, b"hello ");
    w.write_all(b"pipe").unwrap();
    drop(w);
    assert_eq!(log.wait_lost().await, None);
    let evs = log.events();
    assert_eq!(received_in(&evs), b"hello pipe");
    assert_eq!(
        evs[evs.len() - 2],
        Ev::Eof,
        "eof_received right before the end"
    );
    assert!(t.is_closing());
    assert!(!t.is_reading());
    guard("closed", t.closed()).await;
    assert_eq!(t.get_extra_info("pipe"), None, "the fd is released");
    reg.finish().await;
}

#[tokio::test]
async fn read_pipe_closes_at_eof_even_if_eof_received_returns_true() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_read_pipe(reg.factory("r", Config::default().keep_open()), r)
        .await
        .unwrap();
    let log = reg.nth("r", 0).await;
    drop(w);
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    assert!(t.is_closed() || t.is_closing());
    reg.finish().await;
}

#[tokio::test]
async fn read_pipe_refuses_what_it_cannot_do() {
    let reg = Registry::new();
    let (r, _w) = pipe_pair();
    let t = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), r)
        .await
        .unwrap();
    assert!(is_unsupported(t.write("x")), "write on a read pipe");
    assert!(is_unsupported(t.write("")), "even an empty one");
    assert!(is_unsupported(t.writelines([&b"a"[..], b"b"])));
    assert!(is_unsupported(t.write_eof()));
    assert!(is_unsupported(t.set_write_buffer_limits(Some(10), None)));
    assert!(!t.can_write_eof());
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(t.dropped_writes(), 0, "refused, not dropped");
    #[cfg(feature = "tls")]
    {
        let tls = tokio_transports::rustls::ClientConfig::builder()
            .with_root_certificates(tokio_transports::rustls::RootCertStore::empty())
            .with_no_client_auth();
        let tls = tokio_transports::ClientTls::new(std::sync::Arc::new(tls)).server_hostname("x");
        let err = tokio_transports::start_tls(&t, tls).await.unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::Unsupported,
            "TLS needs both ways"
        );
    }
    assert!(!t.is_closing(), "refusals change nothing");
    t.close();
    let log = reg.nth("r", 0).await;
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(
        log.count(|e| *e == Ev::Eof),
        0,
        "close() is not an end of file"
    );
    reg.finish().await;
}

#[tokio::test]
async fn read_pipe_pause_and_resume_reading() {
    let reg = Registry::new();
    let (r, mut w) = pipe_pair();
    let t = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), r)
        .await
        .unwrap();
    let log = reg.nth("r", 0).await;
    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    barrier(&t).await;
    log.mark("paused");
    // A blocking write of a few bytes: in the pipe when it returns.
    w.write_all(b"held back").unwrap();
    barrier(&t).await;
    barrier(&t).await;
    assert_eq!(log.received(), b"", "nothing delivered while paused");
    t.resume_reading();
    t.resume_reading();
    assert!(t.is_reading());
    assert_eq!(log.wait_received(9).await, b"held back");
    drop(w);
    assert_eq!(log.wait_lost().await, None);
    // Harmless once closed (asyncio's test_pause_reading_on_closed_pipe).
    t.pause_reading();
    t.resume_reading();
    assert!(!t.is_reading());
    reg.finish().await;
}

#[tokio::test]
async fn read_pipe_buffered_protocol_reads_into_its_buffer() {
    let reg = Registry::new();
    let (r, mut w) = pipe_pair();
    let _t = tokio_transports::connect_read_pipe(
        reg.buffered_factory("r", Config::default().buf_cap(10_000)),
        r,
    )
    .await
    .unwrap();
    let log = reg.nth("r", 0).await;
    let data = pattern(300_000, 7);
    let d = data.clone();
    let writer = std::thread::spawn(move || w.write_all(&d).unwrap());
    assert_eq!(log.wait_lost().await, None);
    writer.join().unwrap();
    let evs = log.events();
    assert_eq!(received_in(&evs), data);
    assert_eq!(
        log.count(|e| matches!(e, Ev::Data(_))),
        0,
        "no data_received for a BufferedProtocol"
    );
    assert!(log.count(|e| matches!(e, Ev::BufferUpdated { .. })) >= 30);
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    reg.finish().await;
}

// ---- what is accepted and refused ---------------------------------------------

#[tokio::test]
async fn regular_file_is_refused_with_asyncios_messages() {
    let path = temp_path("file");
    std::fs::write(&path, b"not a pipe").unwrap();
    let err = tokio_transports::connect_read_pipe(|| (), File::open(&path).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "Pipe transport is for pipes/sockets only.");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let err = tokio_transports::connect_write_pipe(|| (), file)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "Pipe transport is only for pipes, sockets and character devices"
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn sockets_are_accepted_both_ways() {
    let reg = Registry::new();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let wt = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), a)
        .await
        .unwrap();
    let rt = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), b)
        .await
        .unwrap();
    let (wlog, rlog) = (reg.nth("w", 0).await, reg.nth("r", 0).await);
    wt.write("over a socket").unwrap();
    assert_eq!(rlog.wait_received(13).await, b"over a socket");
    wt.write_eof().unwrap();
    assert!(wt.is_closing(), "write_eof makes a write pipe closing");
    assert_eq!(wlog.wait_lost().await, None);
    assert_eq!(
        rlog.wait_lost().await,
        None,
        "the socket's end is the reader's EOF"
    );
    assert_eq!(rlog.count(|e| *e == Ev::Eof), 1);
    assert!(rt.is_closing());
    reg.finish().await;
}

#[tokio::test]
async fn fifo_both_ways_and_the_reader_going_away() {
    let path = temp_path("fifo");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Opening the read end non-blocking does not wait for a writer.
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let reg = Registry::new();
    let wt = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let rt = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), r)
        .await
        .unwrap();
    let (wlog, rlog) = (reg.nth("w", 0).await, reg.nth("r", 0).await);
    wt.write("through a FIFO").unwrap();
    assert_eq!(rlog.wait_received(14).await, b"through a FIFO");
    // The reader goes away: the writer learns it without writing.
    rt.close();
    assert_eq!(rlog.wait_lost().await, None);
    assert_eq!(wlog.wait_lost().await, None, "nothing was buffered");
    assert_eq!(wt.dropped_writes(), 0);
    std::fs::remove_file(&path).unwrap();
    reg.finish().await;
}

#[tokio::test]
async fn pty_end_is_an_end_of_file() {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two fds; the name, termios and winsize are optional.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
    // SAFETY: fresh fds, ours.
    let (master, mut slave) = unsafe { (OwnedFd::from_raw_fd(master), File::from_raw_fd(slave)) };
    let reg = Registry::new();
    let master_w = master.try_clone().unwrap();
    let t = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), master)
        .await
        .unwrap();
    let log = reg.nth("r", 0).await;
    slave.write_all(b"from the tty\n").unwrap();
    log.wait_until("the line", |e| {
        String::from_utf8_lossy(&received_in(e)).contains("from the tty")
    })
    .await;
    // A character device is accepted for writing too.
    let wt = tokio_transports::connect_write_pipe(|| (), master_w)
        .await
        .unwrap();
    wt.close();
    guard("write pipe closed", wt.closed()).await;
    // The other side closes: Linux reports EIO on the master, which is the
    // pipe's end, not a failure.
    drop(slave);
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    assert!(t.is_closing());
    reg.finish().await;
}

// ---- write pipes ---------------------------------------------------------------

#[tokio::test]
async fn write_pipe_basics() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let raw = w.as_raw_fd();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    assert!(t.can_write_eof());
    assert!(!t.is_reading(), "a write pipe reads nothing");
    t.pause_reading();
    t.resume_reading();
    assert!(
        !t.is_reading(),
        "pause/resume reading do nothing on a write pipe"
    );
    assert_eq!(t.get_extra_info("pipe"), Some(ExtraInfo::Pipe(raw)));
    assert_eq!(t.get_extra_info("socket"), None);
    let reader = read_to_end_on_thread(r);
    t.write("one ").unwrap();
    t.writelines([&b"two "[..], b"", b"three"]).unwrap();
    t.close();
    let log = reg.nth("w", 0).await;
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(reader.join().await, b"one two three");
    reg.finish().await;
}

#[tokio::test]
async fn write_eof_makes_is_closing_true_flushes_then_closes() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    let data = pattern(200_000, 3); // more than the pipe holds: some is buffered
    t.write(data.clone()).unwrap();
    t.write_eof().unwrap();
    assert!(
        t.is_closing(),
        "unlike a socket's, a write pipe's write_eof closes"
    );
    assert!(t.write("late").is_ok(), "not an error on a pipe ...");
    assert!(t.writelines([&b"later"[..]]).is_ok());
    assert_eq!(t.dropped_writes(), 2, "... but dropped and counted");
    t.write_eof().unwrap();
    let reader = read_to_end_on_thread(r);
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(
        reader.join().await,
        data,
        "flushed, without the late writes"
    );
    reg.finish().await;
}

#[tokio::test]
async fn writes_after_close_and_after_loss_are_dropped_counted_and_reported() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    t.close();
    for _ in 0..4 {
        t.write("x").unwrap();
    }
    assert_eq!(t.dropped_writes(), 4);
    assert_eq!(exc.count(|r| r.message == PIPE_MSG), 0, "not reported yet");
    let log = reg.nth("w", 0).await;
    assert_eq!(log.wait_lost().await, None);
    t.write("y").unwrap();
    assert_eq!(t.dropped_writes(), 5);
    assert_eq!(
        exc.count(|r| r.message == PIPE_MSG),
        0,
        "a pipe's loss by close() does not count: reported from the 6th"
    );
    t.write("z").unwrap();
    assert_eq!(t.dropped_writes(), 6);
    exc.wait_for("the 6th dropped write", |r| r.message == PIPE_MSG)
        .await;
    assert!(
        t.drain().await.is_err(),
        "dropped writes were not delivered"
    );
    drop(r);
    reg.finish().await;
}

#[tokio::test]
async fn reader_gone_with_an_empty_buffer_is_a_clean_end() {
    let reg = Registry::new();
    let (mut r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    t.write("12345").unwrap();
    barrier(&t).await; // written: the blocking read below finds it
    let mut got = [0; 5];
    r.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"12345");
    barrier(&t).await;
    assert!(log.lost().is_none());
    drop(r); // nothing is written after this: the transport must notice
    assert_eq!(log.wait_lost().await, None);
    assert!(t.drain().await.is_ok(), "everything was delivered");
    reg.finish().await;
}

#[tokio::test]
async fn reader_gone_with_data_buffered_is_a_broken_pipe() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    t.write(vec![1u8; 1 << 20]).unwrap();
    barrier(&t).await;
    assert!(
        t.get_write_buffer_size() > 0,
        "the pipe is full, the rest waits"
    );
    drop(r);
    let lost = log.wait_lost().await;
    assert_eq!(
        lost_kind(&lost),
        Some(io::ErrorKind::BrokenPipe),
        "{lost:?}"
    );
    assert!(t.drain().await.is_err());
    reg.finish().await;
}

#[tokio::test]
async fn socket_reader_gone_seen_by_readability() {
    let reg = Registry::new();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), a)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    t.write("hi").unwrap();
    barrier(&t).await;
    let mut got = [0; 2];
    b.read_exact(&mut got).unwrap();
    barrier(&t).await;
    assert!(log.lost().is_none());
    drop(b);
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

#[tokio::test]
async fn abort_drops_the_buffer() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    t.write(vec![2u8; 1 << 20]).unwrap();
    barrier(&t).await;
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(log.wait_lost().await, None);
    let got = read_to_end_on_thread(r).join().await;
    assert!(got.len() < 1 << 20, "the buffered part was dropped");
    assert!(t.drain().await.is_err());
    reg.finish().await;
}

#[tokio::test]
async fn drain_waits_for_a_slow_reader() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let data = pattern(1 << 20, 9);
    t.write(data.clone()).unwrap();
    barrier(&t).await;
    let drain = t.drain();
    tokio::pin!(drain);
    assert!(is_pending(drain.as_mut()), "nobody reads yet");
    let reader = read_to_end_on_thread(r);
    guard("drain", drain).await.unwrap();
    let (low, _high) = t.get_write_buffer_limits();
    assert!(t.get_write_buffer_size() <= low);
    t.close();
    assert_eq!(reader.join().await, data);
    reg.nth("w", 0).await.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn flow_control_pauses_and_resumes_with_a_slow_reader() {
    let reg = Registry::new();
    let (r, w) = pipe_pair();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), w)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    let data = pattern(1 << 20, 5);
    t.write(data.clone()).unwrap();
    // The reader starts only once the writer is paused.
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert!(log.count(Ev::is_rw) == 0);
    let reader = read_to_end_on_thread(r);
    let evs = log.wait_event("resume_writing", Ev::is_rw).await;
    let (low, high) = t.get_write_buffer_limits();
    for e in &evs {
        match e {
            Ev::PauseWriting(n) => assert!(*n > high, "paused at {n}"),
            Ev::ResumeWriting(n) => assert!(*n <= low, "resumed at {n}"),
            _ => {}
        }
    }
    t.close();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(reader.join().await, data);
    reg.finish().await;
}

/// A protocol written for sockets writes from its callbacks: an echo over a
/// pipe pair works unchanged (read pipe → protocol → write pipe).
#[tokio::test]
async fn socket_protocol_runs_unchanged_read_to_write() {
    use tokio_transports::{BaseProtocol, Bytes, Protocol};
    struct Forward(Transport);
    impl BaseProtocol for Forward {}
    impl Protocol for Forward {
        fn data_received(&mut self, data: Bytes) {
            self.0.write(data).unwrap();
        }
        fn eof_received(&mut self) -> bool {
            self.0.close();
            false
        }
    }
    let (r1, mut w1) = pipe_pair();
    let (r2, w2) = pipe_pair();
    let out = tokio_transports::connect_write_pipe(|| (), w2)
        .await
        .unwrap();
    let o = out.clone();
    let _in = tokio_transports::connect_read_pipe(move || Forward(o), r1)
        .await
        .unwrap();
    let data = pattern(500_000, 1);
    let d = data.clone();
    let writer = std::thread::spawn(move || w1.write_all(&d).unwrap());
    let reader = read_to_end_on_thread(r2);
    guard("output closed", out.closed()).await;
    writer.join().unwrap();
    assert_eq!(reader.join().await, data);
}

// ---- child processes -----------------------------------------------------------

#[tokio::test]
async fn cat_child_round_trip() {
    let reg = Registry::new();
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let wt = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), stdin)
        .await
        .unwrap();
    let _rt = tokio_transports::connect_read_pipe(reg.factory("r", Config::default()), stdout)
        .await
        .unwrap();
    let (wlog, rlog) = (reg.nth("w", 0).await, reg.nth("r", 0).await);
    let data = pattern(1 << 20, 11);
    wt.write(data.clone()).unwrap();
    wt.write_eof().unwrap();
    assert_eq!(wlog.wait_lost().await, None);
    assert_eq!(rlog.wait_lost().await, None);
    assert_eq!(rlog.received(), data);
    assert!(child.wait().unwrap().success());
    reg.finish().await;
}

#[tokio::test]
async fn python_child_that_stops_reading() {
    let Some(python) = peers::python() else {
        return;
    };
    let reg = Registry::new();
    let mut child = Command::new(python)
        .args(["-c", "import sys; sys.stdin.buffer.read(5)"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let t = tokio_transports::connect_write_pipe(reg.factory("w", Config::default()), stdin)
        .await
        .unwrap();
    let log = reg.nth("w", 0).await;
    t.write("12345").unwrap();
    // The child read its 5 bytes and exited: its stdin's read end closed.
    assert_eq!(log.wait_lost().await, None);
    assert!(child.wait().unwrap().success());
    reg.finish().await;
}

#[test]
fn pipe_cat_example_copies_megabytes() {
    let exe = peers::example("pipe_cat");
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = pattern(5 << 20, 42);
    let mut stdin = child.stdin.take().unwrap();
    let d = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&d).unwrap());
    let out = peers::read_all(child.stdout.take().unwrap());
    let err = peers::read_all(child.stderr.take().unwrap());
    writer.join().unwrap();
    let out = out.recv_timeout(GUARD).expect("pipe_cat's output");
    let status = child.wait().unwrap();
    let err = err.recv_timeout(GUARD).unwrap();
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(out.len(), data.len());
    assert!(out == data, "the copy differs");
}

/// A socket as a write pipe, written one byte at a time with idle passes in
/// between (each idle pass's reader watch clears tokio's writable readiness,
/// and TCP raises no new writable edge until a send finds its buffer full):
/// every write still goes out. Each write is awaited at the reader, then
/// the task's pass (the write, then the idle watch) is let finish before
/// the next write.
async fn writes_with_idle_gaps_all_arrive(w: OwnedFd, mut r: impl Read + Send + 'static) {
    let t = tokio_transports::connect_write_pipe(|| (), w)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    for i in 0..5u8 {
        t.write(vec![b'a' + i]).unwrap();
        while !got.contains(&(b'a' + i)) {
            match guard("the write at the reader", rx.recv()).await {
                Some(v) => got.extend(v),
                None => panic!("the reader ended early; got {got:?}"),
            }
        }
        barrier(&t).await;
    }
    assert_eq!(got, b"abcde");
    t.close();
}

#[tokio::test]
async fn a_tcp_socket_as_write_pipe_keeps_writing_after_idle_passes() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    writes_with_idle_gaps_all_arrive(a.into(), b).await;
}

#[tokio::test]
async fn a_unix_socket_as_write_pipe_keeps_writing_after_idle_passes() {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    writes_with_idle_gaps_all_arrive(a.into(), b).await;
}
