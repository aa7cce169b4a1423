//! Pipe transports (asyncio's `connect_read_pipe` / `connect_write_pipe`):
//! the two one-way I/O types and the functions that make transports of them.
//!
//! A pipe transport is the ordinary stream transport (same [`Transport`]
//! handle, same protocol traits, same driver) over an I/O whose
//! [`StreamIo::MODE`] is [`Mode::ReadOnly`] or [`Mode::WriteOnly`]:
//!
//! * [`ReadPipe`] reads a pipe, FIFO, socket or character device (a pty)
//!   through tokio's `pipe::Receiver`; it cannot write (the handle refuses
//!   writes before they reach it).
//! * [`WritePipe`] writes one through an `AsyncFd`, and tells the driver when
//!   the reader went away without writing: for a pipe or FIFO the write end
//!   reports an error (`EPOLLERR`; a write-only end waits for it as tokio's
//!   error readiness, see `ErrorWatch`); for a socket (and a FIFO open for
//!   reading too, as CPython does) readability means the same.
//!
//! Both are crate-internal, so the subprocess transports can run drivers
//! over them with protocols of their own ([`read_pipe_io`], [`write_pipe_io`]).

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};
use tokio::net::unix::pipe;

use super::handle::Transport;
use super::stream_io::{Mode, StreamIo};
use super::{StreamConfig, spawn_stream, started};
use crate::IntoProtocol;
use crate::error::current_runtime;
use crate::extra::Extra;
use crate::wake::TaskWaker;

/// asyncio's `ValueError` message for a read pipe over anything else.
pub(crate) const READ_PIPE_KINDS_MSG: &str = "Pipe transport is for pipes/sockets only.";
/// asyncio's `ValueError` message for a write pipe over anything else.
pub(crate) const WRITE_PIPE_KINDS_MSG: &str =
    "Pipe transport is only for pipes, sockets and character devices";

/// What kind of file a pipe transport's fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PipeKind {
    /// An anonymous pipe or a FIFO.
    Fifo,
    Socket,
    /// A character device: a pty, a terminal.
    CharDevice,
}

/// The kind of `fd`, or `InvalidInput` with `refused` (asyncio's
/// `ValueError`) for a regular file, a directory, a block device.
fn pipe_kind(fd: &OwnedFd, refused: &'static str) -> io::Result<PipeKind> {
    let file_type = File::from(fd.try_clone()?).metadata()?.file_type();
    if file_type.is_fifo() {
        Ok(PipeKind::Fifo)
    } else if file_type.is_socket() {
        Ok(PipeKind::Socket)
    } else if file_type.is_char_device() {
        Ok(PipeKind::CharDevice)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, refused))
    }
}

/// Set `O_NONBLOCK` (asyncio does too: it changes the open file
/// description, which a process sharing it sees). Returns the file status
/// flags (with the access mode).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<i32> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: `fcntl` with F_GETFL/F_SETFL on an fd we own (borrowed for the
    // call); no memory is passed.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(flags)
}

// ---- the read side -----------------------------------------------------------

/// The read end of a pipe (or a FIFO, socket, pty) as a read-only
/// [`StreamIo`].
pub(crate) struct ReadPipe {
    rx: pipe::Receiver,
}

/// Check `fd` (a pipe, FIFO, socket or character device, else asyncio's
/// error), make it non-blocking and register it with the current runtime.
pub(crate) fn read_pipe_io(fd: OwnedFd) -> io::Result<ReadPipe> {
    pipe_kind(&fd, READ_PIPE_KINDS_MSG)?;
    set_nonblocking(&fd)?;
    // Checked above: a pipe, FIFO, socket or tty, non-blocking; `read(2)`
    // is all the receiver does with it.
    let rx = pipe::Receiver::from_owned_fd_unchecked(fd)?;
    Ok(ReadPipe { rx })
}

impl StreamIo for ReadPipe {
    const MODE: Mode = Mode::ReadOnly;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.rx.poll_read_ready(cx)
    }
}

impl AsyncRead for ReadPipe {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().rx).poll_read(cx, buf)
    }
}

/// Never used: the handle refuses writes on a read pipe, and its state
/// machine starts with the write half shut.
impl AsyncWrite for ReadPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a read pipe cannot write",
        )))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---- the write side ----------------------------------------------------------

/// The write end of a pipe (or a FIFO, socket, character device) as a
/// write-only [`StreamIo`] that can tell when its reader went away.
pub(crate) struct WritePipe {
    fd: Arc<AsyncFd<File>>,
    /// Write-only FIFO ends (a child's stdin): the reader's end awaited as
    /// tokio's error readiness, which writable edges do not wake (see
    /// [`ErrorWatch`]). `None`: the general watch below.
    error_watch: Option<Box<ErrorWatch>>,
    /// Sockets and FIFOs open for reading too: readability means the
    /// reader went away (CPython's trick). A pipe's closed reader shows on
    /// Linux as `EPOLLERR`, tokio's "write closed", which is watched for
    /// every kind; so a write-only FIFO end needs no read watch. Never for
    /// a pty, which would be readable with its own echo.
    watch_readable: bool,
    /// The idle reader watch cleared a writable readiness (see
    /// [`StreamIo::poll_reader_gone`]), or the pipe is new: tokio's view may
    /// say "full" while the pipe has room, so writes are tried before
    /// readiness is asked, until one finds the pipe full. Otherwise readiness comes first, as in tokio's own pipes: a
    /// pipe known to be full costs no failed `write` (a child's stdin that
    /// its reader drains slowly met that on every pass).
    cleared_writable: bool,
}

/// Check `fd` (a pipe, FIFO, socket or character device, else asyncio's
/// error), make it non-blocking and register it with the current runtime.
pub(crate) fn write_pipe_io(fd: OwnedFd) -> io::Result<WritePipe> {
    let kind = pipe_kind(&fd, WRITE_PIPE_KINDS_MSG)?;
    let flags = set_nonblocking(&fd)?;
    // A FIFO's write-only end is never readable: its reader's end shows as
    // `EPOLLERR` alone, which the write side watches (the read watch would
    // only cost a readiness poll per idle pass, a child's stdin included).
    // A socket, or a FIFO opened for reading too, is watched as CPython does.
    let watch_readable = match kind {
        PipeKind::CharDevice => false,
        PipeKind::Fifo => flags & libc::O_ACCMODE != libc::O_WRONLY,
        PipeKind::Socket => true,
    };
    let interest = if watch_readable {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::WRITABLE
    };
    // SAFETY: the `File` owns the fd: it stays open, and `as_raw_fd` gives
    // the same fd, until the `AsyncFd` (which owns the `File`) is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(File::from(fd), interest) }
        .map_err(|e| e.into_parts().1)?;
    let fd = Arc::new(fd);
    let error_watch = (kind == PipeKind::Fifo && !watch_readable).then(|| ErrorWatch::new(&fd));
    Ok(WritePipe {
        fd,
        error_watch,
        watch_readable,
        // Tokio learns a new registration's readiness on its next turn:
        // the first write is tried at once.
        cleared_writable: true,
    })
}

/// Waits for a write-only FIFO end's error readiness: `EPOLLERR`, which
/// Linux reports (always, whatever the interest) once the last reader is
/// gone. Unlike write readiness it is not raised each time the reader makes
/// room, so an idle pipe whose reader keeps reading is not woken for
/// nothing, and the watch is polled only after it was woken (a flag, as the
/// buffered read side does), not re-armed on every pass.
struct ErrorWatch {
    gone: Pin<Box<dyn Future<Output = ()> + Send>>,
    wake: Arc<FlagWake>,
    /// The waker `wake.task` holds.
    registered: Option<Waker>,
    /// `wake` as a waker, for polling `gone`.
    waker: Waker,
}

/// Records that the error watch was woken, then wakes the task.
struct FlagWake {
    woken: AtomicBool,
    task: TaskWaker,
}

impl Wake for FlagWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ErrorWatch {
    fn new(fd: &Arc<AsyncFd<File>>) -> Box<ErrorWatch> {
        let fd = fd.clone();
        let wake = Arc::new(FlagWake {
            woken: AtomicBool::new(true),
            task: TaskWaker::default(),
        });
        Box::new(ErrorWatch {
            // Ends at the error readiness, or when the runtime's I/O driver
            // is gone (the pipe cannot be watched any more: reported as
            // gone, as the general watch does).
            gone: Box::pin(async move {
                let _ = fd.ready(Interest::ERROR).await;
            }),
            waker: Waker::from(wake.clone()),
            wake,
            registered: None,
        })
    }

    /// Whether the reader went away; registers `cx`'s waker otherwise.
    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.wake.task.register(&mut self.registered, cx.waker());
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.gone
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }
}

impl WritePipe {
    /// One write: each time tokio reports the pipe writable (tried at once
    /// first while [`cleared_writable`](Self::cleared_writable) is set).
    #[inline]
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&File) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.cleared_writable {
            match op(self.fd.get_ref()) {
                // Only a full pipe ends the direct tries: tokio is then asked,
                // and the kernel raises a writable edge once there is room. A
                // write that went through says nothing of tokio's view (still
                // cleared), and a socket raises no edge until a send finds
                // its buffer full.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.cleared_writable = false,
                done => return Poll::Ready(done),
            }
        }
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| op(fd.get_ref())) {
                Ok(done) => return Poll::Ready(done),
                Err(_would_block) => continue,
            }
        }
    }
}

impl StreamIo for WritePipe {
    const MODE: Mode = Mode::WriteOnly;

    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }

    fn poll_reader_gone(&mut self, cx: &mut Context<'_>, idle: bool) -> Poll<()> {
        if let Some(watch) = &mut self.error_watch {
            // With data queued a write fails too, with the broken pipe the
            // loss reports either way.
            return watch.poll(cx);
        }
        if self.watch_readable && self.fd.poll_read_ready(cx).is_ready() {
            // A socket's peer closed (or sent something, which a write pipe
            // has no use for: CPython closes then too).
            return Poll::Ready(());
        }
        if !idle {
            // A write waits for write readiness: the reader's end (EPOLLERR)
            // wakes it, and the write fails with a broken pipe, which is
            // what the watch would report with data buffered.
            return Poll::Pending;
        }
        loop {
            match self.fd.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(mut guard)) => {
                    let ready = guard.ready();
                    if ready.is_write_closed() || ready.is_error() {
                        // A pipe or FIFO whose read end closed: EPOLLERR.
                        return Poll::Ready(());
                    }
                    // Only "writable": forget it, so that the next change
                    // (the reader closing) wakes the task. The next write
                    // is tried before readiness is asked (`poll_io`).
                    guard.clear_ready_matching(Ready::WRITABLE);
                    self.cleared_writable = true;
                }
            }
        }
    }
}

/// Never used: the driver of a write pipe does not read.
impl AsyncRead for WritePipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a write pipe cannot read",
        )))
    }
}

impl AsyncWrite for WritePipe {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, |mut f| f.write(buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, |mut f| f.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A write pipe's end is its close: the driver drops the fd.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---- the creation functions --------------------------------------------------

/// The configuration of a pipe transport: its fd as extra info `"pipe"`.
pub(crate) fn pipe_config(raw_fd: std::os::fd::RawFd) -> StreamConfig {
    StreamConfig {
        extra: Extra::new(None, None, Some(raw_fd)),
        ..StreamConfig::default()
    }
}

/// A read-only transport over the read end of a pipe, a FIFO, a socket or a
/// character device such as a pty (asyncio's `loop.connect_read_pipe`),
/// driven by the protocol that `protocol_factory` makes. Returns once
/// `connection_made` has run.
///
/// `pipe` is anything that gives up its fd: a std `File` (a FIFO opened
/// for reading), `ChildStdout`, `UnixStream`, `OwnedFd` (for a tokio
/// `ChildStdout`, pass `child_stdout.into_owned_fd()?`). The fd is made
/// non-blocking (as asyncio does; a process sharing the open file sees it).
///
/// The transport is the usual [`Transport`], so a protocol written for a
/// socket runs unchanged: `data_received` (or a `BufferedProtocol`'s
/// `get_buffer`/`buffer_updated`, reading straight into its buffer), then at
/// the end `eof_received` and `connection_lost(None)`. Unlike a socket, a
/// read pipe always closes at end of file: what `eof_received` returns is
/// ignored (asyncio's rule). A pty's `EIO` at the end (Linux reports its
/// other side closing so) is an end of file too. `pause_reading` /
/// `resume_reading` / `close` / `abort` work as for sockets. What a
/// read pipe cannot do is an error: `write`, `writelines`, `write_eof` and
/// `set_write_buffer_limits` return [`TransportError::Unsupported`](crate::TransportError::Unsupported);
/// [`can_write_eof`](Transport::can_write_eof) is false. Extra info
/// `"pipe"` is the fd (`"socket"` is `None`).
///
/// # Errors
///
/// `InvalidInput` with asyncio's message "Pipe transport is for
/// pipes/sockets only." for a regular file (or a directory, a block
/// device); an error outside a tokio runtime, or if the fd cannot be
/// polled (`/dev/null` and other devices `epoll` refuses).
///
/// ```
/// use tokio_transports::{BaseProtocol, Bytes, Protocol};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// struct Print;
/// impl BaseProtocol for Print {}
/// impl Protocol for Print {
///     fn data_received(&mut self, data: Bytes) { print!("{}", String::from_utf8_lossy(&data)); }
/// }
/// use tokio::io::AsyncWriteExt;
/// let (mut writer, reader) = tokio::net::unix::pipe::pipe()?;
/// let t = tokio_transports::connect_read_pipe(|| Print, reader.into_blocking_fd()?).await?;
/// writer.write_all(b"hello through a pipe\n").await?;
/// drop(writer); // end of file: eof_received, then connection_lost(None)
/// t.closed().await;
/// assert!(t.write("no").is_err(), "a read pipe does not write");
/// # Ok(()) }
/// ```
pub async fn connect_read_pipe<F, P>(
    protocol_factory: F,
    pipe: impl Into<OwnedFd>,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    connect_pipe(protocol_factory, pipe.into(), read_pipe_io).await
}

/// A write-only transport over the write end of a pipe, a FIFO, a socket or
/// a character device (asyncio's `loop.connect_write_pipe`), driven by the
/// protocol that `protocol_factory` makes. Returns once `connection_made`
/// has run. Only its [`BaseProtocol`](crate::BaseProtocol) callbacks are
/// ever called (an empty `impl Protocol for P {}` does for the rest; `()`
/// will do too).
///
/// `pipe` is anything that gives up its fd (a std `File` for a FIFO,
/// `ChildStdin`, `UnixStream`, `OwnedFd`); it is made non-blocking.
///
/// Writing is as on a socket: `write`/`writelines` (tried at once after the
/// callback that wrote, one vectored write), flow control with the same
/// watermarks, `pause_writing`/`resume_writing` and [`drain`](Transport::drain).
/// What differs is asyncio's pipe rules:
///
/// * [`write_eof`](Transport::write_eof) is the same as
///   [`close`](Transport::close): [`is_closing`](Transport::is_closing) is
///   true at once, the buffer is flushed, then `connection_lost(None)`.
///   [`can_write_eof`](Transport::can_write_eof) is true.
/// * Once closing (and once lost), writes are dropped and counted in
///   [`dropped_writes`](Transport::dropped_writes), reported from the 6th
///   (from the 5th when a failed write lost the pipe, as in asyncio); never
///   an error.
/// * When the reader goes away the transport learns it without writing:
///   `connection_lost(None)` if nothing was waiting to be sent,
///   `connection_lost(Some(err))` with a `BrokenPipe` error if something was.
///   A write that fails (`EPIPE` and the like) loses it with that error.
/// * Nothing is read: [`is_reading`](Transport::is_reading) is false, and
///   `pause_reading`/`resume_reading` do nothing (asyncio's write pipe has
///   no such methods). Extra info `"pipe"` is the fd.
///
/// # Errors
///
/// `InvalidInput` with asyncio's message "Pipe transport is only for pipes,
/// sockets and character devices" for a regular file; an error outside a
/// tokio runtime or if the fd cannot be polled (`epoll` refuses
/// `/dev/null`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncReadExt;
/// let (writer, mut reader) = tokio::net::unix::pipe::pipe()?;
/// let t = tokio_transports::connect_write_pipe(|| (), writer.into_blocking_fd()?).await?;
/// t.write("hello through a pipe")?;
/// t.write_eof()?; // = close(): flush, then connection_lost(None)
/// assert!(t.is_closing());
/// t.closed().await;
/// let mut out = String::new();
/// reader.read_to_string(&mut out).await?;
/// assert_eq!(out, "hello through a pipe");
/// # Ok(()) }
/// ```
pub async fn connect_write_pipe<F, P>(
    protocol_factory: F,
    pipe: impl Into<OwnedFd>,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    connect_pipe(protocol_factory, pipe.into(), write_pipe_io).await
}

/// Both creation functions: check and wrap the fd (`make_io`), spawn the
/// transport, wait for `connection_made`.
async fn connect_pipe<F, P, IO>(
    protocol_factory: F,
    fd: OwnedFd,
    make_io: impl FnOnce(OwnedFd) -> io::Result<IO>,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
    IO: StreamIo,
{
    current_runtime()?;
    let raw_fd = fd.as_raw_fd();
    let io = make_io(fd)?;
    let (transport, rx) = spawn_stream(io, protocol_factory(), pipe_config(raw_fd));
    started(rx).await?;
    Ok(transport)
}
