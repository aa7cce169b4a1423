//! The [`Transport`] handle: what protocols and application code hold.
//!
//! A handle is a cheap `Arc` clone. Every method either reads state the
//! handle shares with the connection's task (buffer size, flags, limits,
//! addresses), or sends the task a [`Command`]: over the connection's command
//! channel ([`Inbox`]) from anywhere, or, from inside one of the connection's own
//! callbacks, straight onto the list the task applies when the callback
//! returns (see [`context`](crate::context)).

use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::channel::oneshot;

use super::state::{StreamState, WriteOutcome};
use super::stream_io::Mode;
use crate::context::{self, Slot};
use crate::extra::{Extra, ExtraInfo, SocketAddress};
use crate::inbox::Inbox;
use crate::shared::Common;
use crate::{AnyProtocol, IntoProtocol, WriteLimits};

mod observe;
mod write;

thread_local! {
    /// The stream transport whose callback runs on this thread, if any.
    pub(crate) static CURRENT: Slot<Core> = const { Slot::new() };
    /// A write pipe whose task is polling a sibling transport on this
    /// thread (a child's stdin while its stdout, stderr or exit watcher
    /// runs on the same task, see `subprocess::task`): a write to it from a
    /// callback of the sibling goes straight into its queue, and the task
    /// flushes it right after. Only `Transport::write`'s outside path looks
    /// here.
    pub(crate) static SIBLING: Slot<Core> = const { Slot::new() };
}

/// A request from a handle to the connection's task.
pub(crate) enum Command {
    Write(Bytes),
    WriteMany(Vec<Bytes>),
    WriteEof,
    Close,
    Abort,
    PauseReading,
    ResumeReading,
    SetLimits(WriteLimits),
    SetProtocol(AnyProtocol),
    #[cfg(feature = "tls")]
    StartTls(Box<crate::tls::start::Upgrade>),
    WithProtocol(Box<dyn FnOnce(&mut AnyProtocol) + Send>),
    /// `sendfile` puts a stand-in protocol in place and, at the end, the
    /// original back: the closure gets the protocol and whether the
    /// protocol in place was last told to pause writing, and returns the
    /// flow-control callback the protocol it leaves in place is owed.
    Swap(SwapFn),
    /// `sendfile`'s native half (see `driver/sendfile.rs`).
    Sendfile(Box<crate::stream::driver::sendfile::Job>),
}

/// The closure of a [`Command::Swap`].
pub(crate) type SwapFn = Box<dyn FnOnce(&mut AnyProtocol, bool) -> Option<FlowOwed> + Send>;

/// A flow-control callback owed to a protocol put back in place (see
/// [`Command::Swap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowOwed {
    Pause,
    Resume,
}

/// What a callback of this connection reaches through [`context`]: the
/// state machine, for writes, and the list of other commands. Writes go
/// straight into the write queue until the callback issues any other command;
/// from then on they queue behind it, so the order is kept.
pub(crate) struct Core {
    pub(crate) sm: StreamState,
    pub(crate) commands: Vec<Command>,
}

impl Core {
    /// A write made inside a callback. It hands back what it does not
    /// queue: it drops nothing, so it runs no user code (a `Bytes` owner's
    /// `Drop`) and may run under [`context::with_frame_own`].
    #[inline(always)]
    pub(crate) fn try_write(&mut self, data: Bytes) -> Result<(), (WriteOutcome, Bytes)> {
        if self.commands.is_empty() {
            self.sm.try_write(data)
        } else {
            self.commands.push(Command::Write(data));
            Ok(())
        }
    }
}

impl context::Frame for Core {
    type Command = Command;
    fn push(&mut self, cmd: Command) {
        self.commands.push(cmd);
    }
}

pub(crate) use crate::shared::flags::{CLOSING, DISCARDED, FINISHED, LOST, READ_DONE, READ_PAUSED};
/// `write_eof()` was called.
pub(crate) const EOF_WRITTEN: u8 = crate::shared::flags::KIND_0;
/// `start_tls()` was called and the task has not handed the connection to
/// its TLS task yet: nothing read meanwhile is delivered as plaintext.
pub(crate) const UPGRADING: u8 = crate::shared::flags::KIND_1;

/// State shared by every handle of one connection and its task: the
/// [`Common`] part (flags, counters, watermarks, addresses, wake-ups, reached
/// through `Deref`) plus the stream's own.
pub(crate) struct Shared {
    pub(crate) id: usize,
    pub(crate) inbox: Inbox<Command>,
    pub(crate) common: Common,
    /// Cleared when the connection is upgraded to TLS.
    pub(crate) can_write_eof: AtomicBool,
    /// Both ways, or a one-way pipe: what the handle refuses, and what
    /// extra info it has.
    pub(crate) mode: Mode,
    /// A write pipe was lost to a failed write (see
    /// [`count_dropped_write`](Self::count_dropped_write)).
    pub(crate) write_failed: AtomicBool,
}

impl std::ops::Deref for Shared {
    type Target = Common;
    fn deref(&self) -> &Common {
        &self.common
    }
}

impl Shared {
    pub(crate) fn new(
        extra: Extra,
        limits: WriteLimits,
        can_write_eof: bool,
        mode: Mode,
        tls: bool,
    ) -> Arc<Shared> {
        let span = crate::trace::transport_span(
            crate::trace::stream_kind(&extra, mode != Mode::Duplex),
            tls,
            &extra,
        );
        let shared = Arc::new(Shared {
            id: context::next_id(),
            inbox: Inbox::new(),
            common: Common::new(extra, limits, span),
            can_write_eof: AtomicBool::new(can_write_eof && mode.writable()),
            mode,
            write_failed: AtomicBool::new(false),
        });
        match mode {
            Mode::Duplex => {}
            // Writes take the handle's unusual path, which refuses them.
            Mode::ReadOnly => shared.set(EOF_WRITTEN),
            // Nothing is read: `is_reading()` is false, pause and resume
            // have nothing to do.
            Mode::WriteOnly => shared.set(READ_DONE),
        }
        shared
    }

    /// Count one write dropped after the loss (or, on a write pipe, after
    /// `close()`/`write_eof()`), reported with asyncio's message for the
    /// kind of transport: a socket's from the 5th (asyncio counts the loss
    /// itself as one), a pipe's from the 6th, or from the 5th when a failed
    /// write lost it (CPython's `_UnixWritePipeTransport` counts only that
    /// loss).
    pub(crate) fn count_dropped_write(&self) {
        if self.mode.is_pipe() {
            let counted_loss = self.write_failed.load(Ordering::Acquire);
            self.common.count_dropped_write_after(
                "pipe closed by peer or os.write(pipe, data) raised exception.",
                usize::from(counted_loss),
            );
        } else {
            self.common.count_dropped_write();
        }
    }
}

/// A handle to a stream transport: asyncio's `Transport` (with its
/// `BaseTransport`, `ReadTransport` and `WriteTransport` methods).
///
/// Clone it freely and use it from any thread. The connection's I/O lives in
/// its own tokio task; methods that change the connection send that task a
/// message and return at once. Called from inside one of the connection's own
/// callbacks, they skip the channel: the task applies them, in order, right
/// after the callback returns, and sends everything that callback wrote in
/// one vectored write.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (a, mut b) = tokio::io::duplex(1024);
/// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
/// t.write("hello").unwrap();
/// t.close();
/// t.closed().await;
/// let mut out = String::new();
/// tokio::io::AsyncReadExt::read_to_string(&mut b, &mut out).await.unwrap();
/// assert_eq!(out, "hello");
/// # }
/// ```
#[derive(Clone)]
pub struct Transport {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.shared.id)
            .field("peername", &self.shared.extra.peername)
            .field("closing", &self.is_closing())
            .field("write_buffer_size", &self.get_write_buffer_size())
            .finish()
    }
}

impl Transport {
    fn send(&self, cmd: Command) {
        if let Some(cmd) = context::try_push(&CURRENT, self.shared.id, cmd) {
            self.send_outside(cmd);
        }
    }

    /// Send `cmd` to the task: onto the frame inside one of this
    /// connection's callbacks, over the channel otherwise.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn send_command(&self, cmd: Command) {
        self.send(cmd);
    }

    /// Send over the channel (not inside one of this connection's callbacks).
    fn send_outside(&self, cmd: Command) {
        {
            // The channel closes when the connection finishes: a write that
            // raced with that is dropped and uncounted like any late write.
            if let Err(cmd) = self.shared.inbox.send(cmd) {
                let unsent = match cmd {
                    Command::Write(d) => d.len(),
                    Command::WriteMany(v) => v.iter().map(Bytes::len).sum(),
                    _ => 0,
                };
                if unsent > 0 {
                    self.shared.unadd_buffered(unsent);
                    self.shared.count_dropped_write();
                }
            }
        }
    }

    /// A unique id for this connection (stable across clones).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert_eq!(t.id(), t.clone().id());
    /// # }
    /// ```
    pub fn id(&self) -> usize {
        self.shared.id
    }

    // ---- ReadTransport ---------------------------------------------------

    /// Whether the transport is receiving: false while paused, after EOF
    /// (for good), once closing, and always on a write pipe.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(t.is_reading());
    /// t.pause_reading();
    /// assert!(!t.is_reading());
    /// # }
    /// ```
    pub fn is_reading(&self) -> bool {
        !self.shared.has(READ_PAUSED | READ_DONE | CLOSING | LOST)
    }

    /// Stop delivering received data until [`resume_reading`](Self::resume_reading).
    /// Idempotent; a no-op on a closing transport. Called from a callback, no
    /// data is delivered after that callback returns. A no-op on a write
    /// pipe, which reads nothing ([`is_reading`](Self::is_reading) is always
    /// false there).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.pause_reading();
    /// t.pause_reading();
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # }
    /// ```
    pub fn pause_reading(&self) {
        if self.shared.has(READ_PAUSED | READ_DONE | CLOSING | LOST) {
            return;
        }
        self.shared.set(READ_PAUSED);
        self.send(Command::PauseReading);
    }

    /// Resume delivering received data. Idempotent; a no-op on a closing
    /// transport or after EOF.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # }
    /// ```
    pub fn resume_reading(&self) {
        if !self.shared.has(READ_PAUSED) || self.shared.has(READ_DONE | CLOSING | LOST) {
            return;
        }
        self.shared.clear(READ_PAUSED);
        self.send(Command::ResumeReading);
    }

    // ---- BaseTransport ---------------------------------------------------

    /// Replace the protocol (asyncio's `set_protocol`). The new protocol gets
    /// every later callback; it does not get `connection_made` (hand it a
    /// clone of this handle yourself). A [`Buffered`](crate::Buffered)
    /// protocol switches reading to its buffer. From a callback, the switch
    /// happens right after that callback returns. The old protocol is dropped.
    ///
    /// No byte is lost in the switch. A read that was already under way when
    /// reading was paused from another thread is kept back until reading
    /// resumes, and then: bytes that went into the old (buffered)
    /// protocol's own buffer are the old protocol's, delivered to it with
    /// `buffer_updated` just before the switch; bytes read into the
    /// transport's pool go to the new protocol, copied into its
    /// `get_buffer` buffers if it is buffered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// use tokio_transports::{BaseProtocol, Protocol};
    /// struct Next;
    /// impl BaseProtocol for Next {}
    /// impl Protocol for Next {}
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.set_protocol(Next);
    /// # }
    /// ```
    pub fn set_protocol(&self, protocol: impl IntoProtocol) {
        self.send(Command::SetProtocol(protocol.into_protocol()));
    }

    /// Run `f` on the current protocol, on the connection's task, between two
    /// callbacks: the Rust counterpart of asyncio's `get_protocol`, since the
    /// task owns the protocol. Resolves to `None` if the connection is already
    /// finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// use tokio_transports::{BaseProtocol, Protocol};
    /// #[derive(Default)]
    /// struct Counter { chunks: usize }
    /// impl BaseProtocol for Counter {}
    /// impl Protocol for Counter {
    ///     fn data_received(&mut self, _: tokio_transports::Bytes) { self.chunks += 1; }
    /// }
    /// let t = tokio_transports::connect_io(Counter::default, a).await.unwrap();
    /// let chunks = t.with_protocol(|p| p.downcast_mut::<Counter>().map(|c| c.chunks)).await;
    /// assert_eq!(chunks, Some(Some(0)));
    /// # }
    /// ```
    pub fn with_protocol<R, F>(&self, f: F) -> impl Future<Output = Option<R>> + Send + 'static
    where
        F: FnOnce(&mut AnyProtocol) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Command::WithProtocol(Box::new(move |p| {
            let _ = tx.send(f(p));
        })));
        async move { rx.await.ok() }
    }

    /// Extra information by asyncio's names: `"peername"`, `"sockname"`,
    /// `"socket"`; on a pipe transport `"pipe"` instead of `"socket"` (its fd,
    /// as an [`ExtraInfo::Pipe`], while the pipe is open). Unknown names
    /// give `None`. Addresses stay available after the connection is closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let opts = tokio_transports::ConnectOptions::default();
    /// let t = tokio_transports::create_connection(|| (), "127.0.0.1", addr.port(), opts).await.unwrap();
    /// use tokio_transports::{ExtraInfo, SocketAddress};
    /// assert_eq!(t.get_extra_info("peername"), Some(ExtraInfo::Address(SocketAddress::Inet(addr))));
    /// assert_eq!(t.get_extra_info("no such key"), None);
    /// # }
    /// ```
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let extra = &self.shared.extra;
        match name {
            "peername" => extra.peername.clone().map(ExtraInfo::Address),
            "sockname" => extra.sockname.clone().map(ExtraInfo::Address),
            // A pipe's fd is `"pipe"` (asyncio's key), a socket's `"socket"`.
            "socket" if !self.shared.mode.is_pipe() => {
                (*extra.fd.lock().unwrap_or_else(|p| p.into_inner())).map(ExtraInfo::Socket)
            }
            "pipe" if self.shared.mode.is_pipe() => {
                (*extra.fd.lock().unwrap_or_else(|p| p.into_inner())).map(ExtraInfo::Pipe)
            }
            #[cfg(feature = "tls")]
            "peercert" => extra
                .tls()
                .filter(|i| !i.peer_certificates.is_empty())
                .map(|i| ExtraInfo::PeerCertificates(i.peer_certificates)),
            #[cfg(feature = "tls")]
            "cipher" => extra
                .tls()
                .and_then(|i| i.cipher_suite)
                .map(|c| ExtraInfo::Cipher(format!("{c:?}"))),
            #[cfg(feature = "tls")]
            "ssl_object" => extra.tls().map(|i| ExtraInfo::Tls(Box::new(i))),
            "peercred" => extra.peercred.map(ExtraInfo::PeerCredentials),
            _ => None,
        }
    }

    /// What the TLS handshake negotiated (peer certificates, cipher suite,
    /// protocol version, ALPN, server name): `None` for a plain transport.
    /// Set before `connection_made` runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(t.tls_info().is_none());
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_info(&self) -> Option<crate::TlsInfo> {
        self.shared.extra.tls()
    }

    /// A Unix stream peer's credentials (`SO_PEERCRED`: pid, uid, gid),
    /// read when the transport was made; `None` for other transports.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let t = tokio_transports::connect_unix_stream(|| (), a).await?;
    /// assert_eq!(t.peer_credentials().map(|c| c.pid), Some(Some(std::process::id() as i32)));
    /// # Ok(()) }
    /// ```
    pub fn peer_credentials(&self) -> Option<crate::PeerCredentials> {
        self.shared.extra.peercred
    }

    /// The peer's IP address and port (TCP), captured when the connection was made.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert_eq!(t.peername(), None); // an in-memory pipe has no address
    /// # }
    /// ```
    pub fn peername(&self) -> Option<std::net::SocketAddr> {
        self.shared.extra.peer_inet()
    }

    /// The local IP address and port (TCP).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert_eq!(t.sockname(), None);
    /// # }
    /// ```
    pub fn sockname(&self) -> Option<std::net::SocketAddr> {
        self.shared
            .extra
            .sockname
            .as_ref()
            .and_then(SocketAddress::as_inet)
    }

    /// The peer address of any family (Unix sockets included).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (a, _b) = tokio::net::UnixStream::pair().unwrap();
    /// let t = tokio_transports::connect_unix_stream(|| (), a).await.unwrap();
    /// assert_eq!(t.peer_address(), Some(&tokio_transports::SocketAddress::Unix(None)));
    /// # }
    /// ```
    pub fn peer_address(&self) -> Option<&SocketAddress> {
        self.shared.extra.peername.as_ref()
    }

    /// The local address of any family.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (a, _b) = tokio::net::UnixStream::pair().unwrap();
    /// let t = tokio_transports::connect_unix_stream(|| (), a).await.unwrap();
    /// assert!(t.local_address().is_some());
    /// # }
    /// ```
    pub fn local_address(&self) -> Option<&SocketAddress> {
        self.shared.extra.sockname.as_ref()
    }

    /// Run `f` with the socket (to get or set options), if the transport
    /// has one and it is still open; `None` otherwise (a pipe transport has
    /// none). The socket cannot be closed while `f` runs, so keep `f` short.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let opts = tokio_transports::ConnectOptions::default();
    /// let t = tokio_transports::create_connection(|| (), "127.0.0.1", port, opts).await.unwrap();
    /// let nodelay = t.with_socket(|s| s.tcp_nodelay().unwrap());
    /// assert_eq!(nodelay, Some(true));
    /// # }
    /// ```
    pub fn with_socket<R>(&self, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> Option<R> {
        if self.shared.mode.is_pipe() {
            return None;
        }
        let guard = self
            .shared
            .extra
            .fd
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let fd = (*guard)?;
        // SAFETY: the driver clears `fd` under this same lock before it
        // closes the I/O, so while we hold the lock and `fd` is `Some`, the
        // descriptor is open and owned by this transport's I/O.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        Some(f(socket2::SockRef::from(&borrowed)))
    }

    // ---- beyond asyncio --------------------------------------------------

    /// How many writes were dropped because the connection was already lost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.abort();
    /// t.closed().await;
    /// t.write("x").unwrap();
    /// assert_eq!(t.dropped_writes(), 1);
    /// # }
    /// ```
    pub fn dropped_writes(&self) -> usize {
        self.shared.dropped_writes.load(Ordering::Relaxed)
    }

    /// Resolves when the write buffer is at or below the low watermark (like
    /// a stream writer's `drain`). Once the connection is lost, it waits
    /// until the connection's task has finished (by then every write is
    /// either sent or counted in [`dropped_writes`](Self::dropped_writes))
    /// and resolves to an error if anything written was not delivered: data
    /// discarded by [`abort`](Self::abort) or an error, or a write dropped
    /// after the loss.
    ///
    /// This is the flow control for a writer outside the protocol's
    /// callbacks (another task): await it between writes. Watching a flag
    /// set by [`pause_writing`](crate::BaseProtocol::pause_writing) instead
    /// lets such a writer overshoot the high watermark by far, since
    /// `pause_writing` runs on the connection's task, later.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, mut b) = tokio::io::duplex(1 << 20);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.write(vec![7u8; 100_000]).unwrap();
    /// t.drain().await.unwrap();
    /// assert!(t.get_write_buffer_size() <= 16384);
    /// # }
    /// ```
    pub async fn drain(&self) -> io::Result<()> {
        self.shared.drain(|| self.shared.inbox.poke()).await
    }

    /// Resolves once `connection_lost` has run and the I/O is released: the
    /// `on_con_lost` future of asyncio's examples, without the plumbing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// drop(b); // the peer goes away: EOF, and the default eof_received closes
    /// t.closed().await;
    /// assert!(t.is_closing());
    /// # }
    /// ```
    pub async fn closed(&self) {
        self.shared.closed().await
    }

    /// Whether `connection_lost` has run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(!t.is_closed());
    /// t.abort();
    /// t.closed().await;
    /// assert!(t.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.has(FINISHED)
    }
}
