//! The [`DatagramTransport`] handle: what datagram protocols and application
//! code hold, and [`DatagramError`], what `sendto` rejects.
//!
//! A handle is a cheap `Arc` clone. Every method either reads state the
//! handle shares with the endpoint's task (buffer size, flags, limits,
//! addresses), or sends the task a [`Command`]: through the endpoint's [`Inbox`]
//! from anywhere, or, from inside one of the endpoint's own callbacks,
//! straight onto the list the task applies when the callback returns (see
//! [`context`](crate::context)). `sendto` from a callback first tries the
//! socket itself, while the task allows it (nothing queued).

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::oneshot;

use super::protocol::DatagramProtocol;
use super::state::cost;
use crate::WriteLimits;
use crate::context::{self, Slot};
use crate::extra::{Extra, ExtraInfo, SocketAddress};
use crate::inbox::Inbox;
use crate::shared::Common;

mod send;

thread_local! {
    /// The datagram endpoint whose callback runs on this thread, if any.
    pub(crate) static CURRENT: Slot<Vec<Command>> = const { Slot::new() };
}

/// A request from a handle to the endpoint's task.
pub(crate) enum Command {
    /// Send `data`; `None`: with `send` on the connected socket.
    Send(Bytes, Option<SocketAddress>),
    /// A send tried from a callback failed: report it with `error_received`.
    SendFailed(io::Error),
    Close,
    Abort,
    PauseReading,
    ResumeReading,
    SetLimits(WriteLimits),
    SetProtocol(Box<dyn DatagramProtocol>),
    WithProtocol(ProtocolFn),
}

/// A closure run on the protocol by [`DatagramTransport::with_protocol`].
pub(crate) type ProtocolFn = Box<dyn FnOnce(&mut dyn DatagramProtocol) + Send>;

pub(crate) use crate::shared::flags::{CLOSING, DISCARDED, FINISHED, LOST, READ_DONE, READ_PAUSED};
/// `set_protocol()` was called and the task has not switched yet.
pub(crate) const PROTOCOL_SWAP: u8 = crate::shared::flags::KIND_0;

/// Which kind of socket an endpoint drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Inet,
    Unix,
}

/// The socket, shared with handles for [`DatagramTransport::with_socket`];
/// the driver empties it (under the lock) before it releases the socket.
pub(crate) type SharedSocket = Mutex<Option<Arc<dyn AsFd + Send + Sync>>>;

/// State shared by every handle of one endpoint and its task: the
/// [`Common`] part (flags, the write-buffer counter counting each datagram's
/// length plus 8, watermarks, addresses, wake-ups; reached through `Deref`)
/// plus the endpoint's own.
pub(crate) struct Shared {
    pub(crate) id: usize,
    /// Commands from outside the endpoint's callbacks.
    pub(crate) inbox: Inbox<Command>,
    pub(crate) common: Common,
    pub(crate) family: Family,
    /// The default target (`remote_addr`), connected or not.
    pub(crate) remote: Option<SocketAddress>,
    /// Whether the socket is connected to `remote` (then `send` is used).
    pub(crate) connected: bool,
    pub(crate) socket: SharedSocket,
}

impl std::ops::Deref for Shared {
    type Target = Common;
    fn deref(&self) -> &Common {
        &self.common
    }
}

/// What a new endpoint's [`Shared`] is made of (crate-internal).
pub(crate) struct SharedConfig {
    pub(crate) extra: Extra,
    pub(crate) limits: WriteLimits,
    pub(crate) family: Family,
    pub(crate) remote: Option<SocketAddress>,
    pub(crate) connected: bool,
    /// `None`: no fd to lend (the test kit's scripted socket).
    pub(crate) socket: Option<Arc<dyn AsFd + Send + Sync>>,
}

impl Shared {
    pub(crate) fn new(config: SharedConfig) -> Arc<Shared> {
        let kind = match config.family {
            Family::Unix => "unix-datagram",
            Family::Inet => "udp",
        };
        let span = crate::trace::transport_span(kind, false, &config.extra);
        Arc::new(Shared {
            id: context::next_id(),
            inbox: Inbox::new(),
            common: Common::new(config.extra, config.limits, span),
            family: config.family,
            remote: config.remote,
            connected: config.connected,
            socket: Mutex::new(config.socket),
        })
    }
}

/// A datagram the transport refused: the endpoint is unchanged (nothing was
/// queued) and stays open. asyncio raises `ValueError` in the first case and
/// fails fatally in the second (uvloop #338); this crate reports both here.
///
/// ```
/// use tokio_transports::{DatagramError, SocketAddress};
/// let e = DatagramError::AddressMismatch {
///     remote: SocketAddress::Inet("127.0.0.1:9999".parse().unwrap()),
///     given: SocketAddress::Inet("127.0.0.1:1".parse().unwrap()),
/// };
/// assert_eq!(e.to_string(), "Invalid address: must be None or ('127.0.0.1', 9999)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// An address other than the `remote_addr` the endpoint was created with.
    AddressMismatch {
        /// The endpoint's remote address.
        remote: SocketAddress,
        /// The address given to `sendto`.
        given: SocketAddress,
    },
    /// No address, and the endpoint has no `remote_addr` to default to.
    NoAddress,
    /// An address this endpoint cannot send to: a Unix path on a UDP
    /// endpoint, an IP address on a Unix one, or an unnamed Unix address.
    UnsupportedAddress(SocketAddress),
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::AddressMismatch { remote, .. } => {
                write!(f, "Invalid address: must be None or {remote}")
            }
            DatagramError::NoAddress => f.write_str(
                "sendto() needs an address: the endpoint was created without remote_addr",
            ),
            DatagramError::UnsupportedAddress(a) => {
                write!(f, "cannot send to {a} from this endpoint")
            }
        }
    }
}

impl std::error::Error for DatagramError {}

impl From<DatagramError> for io::Error {
    fn from(e: DatagramError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// A handle to a datagram endpoint: asyncio's `DatagramTransport` (with its
/// `BaseTransport` methods, and `pause_reading`/`resume_reading`/
/// `is_reading`, which uvloop lacks).
///
/// Clone it freely and use it from any thread. The endpoint's socket lives in
/// its own tokio task; methods that change the endpoint send that task a
/// message and return at once. Called from inside one of the endpoint's own
/// callbacks they skip the channel: the task applies them when the callback
/// returns, and [`sendto`](Self::sendto) sends at once if nothing is queued,
/// as asyncio's does.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{create_datagram_endpoint, DatagramOptions};
/// let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// let opts = DatagramOptions::default().remote_addr(peer.local_addr()?);
/// let t = create_datagram_endpoint(|| (), opts).await?;
/// t.sendto("hello", None)?;
/// let mut buf = [0u8; 16];
/// let n = peer.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hello");
/// t.close();
/// t.closed().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("id", &self.shared.id)
            .field("sockname", &self.shared.extra.sockname)
            .field("remote", &self.shared.remote)
            .field("closing", &self.is_closing())
            .field("write_buffer_size", &self.get_write_buffer_size())
            .finish()
    }
}

impl DatagramTransport {
    fn send(&self, cmd: Command) {
        let Some(cmd) = context::try_push(&CURRENT, self.shared.id, cmd) else {
            return;
        };
        // If the task is finished, a datagram counted by `sendto` is dropped.
        if let Err(Command::Send(data, _)) = self.shared.inbox.send(cmd) {
            // Any thread: only the shared counter may be touched here.
            self.shared.unadd_buffered(cost(data.len()));
            self.shared.notify_drained();
            self.shared.count_dropped_write();
        }
    }

    /// A unique id for this endpoint (stable across clones).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert_eq!(t.id(), t.clone().id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> usize {
        self.shared.id
    }

    // ---- receiving -------------------------------------------------------

    /// Whether the endpoint is receiving: false while paused and once
    /// closing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert!(t.is_reading());
    /// t.pause_reading();
    /// assert!(!t.is_reading());
    /// # Ok(()) }
    /// ```
    pub fn is_reading(&self) -> bool {
        !self.shared.has(READ_PAUSED | READ_DONE | CLOSING | LOST)
    }

    /// Stop delivering datagrams until [`resume_reading`](Self::resume_reading);
    /// they wait in the socket's receive buffer (where the kernel drops what
    /// does not fit). Idempotent; a no-op on a closing endpoint. Called from
    /// a callback, no datagram is delivered after that callback returns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.pause_reading();
    /// t.pause_reading();
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # Ok(()) }
    /// ```
    pub fn pause_reading(&self) {
        if self.shared.has(READ_PAUSED | READ_DONE | CLOSING | LOST) {
            return;
        }
        self.shared.set(READ_PAUSED);
        self.send(Command::PauseReading);
    }

    /// Resume delivering datagrams. Idempotent; a no-op on a closing
    /// endpoint.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.pause_reading();
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # Ok(()) }
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
    /// every later callback, but not `connection_made` (hand it a clone of
    /// this handle yourself). From a callback, the switch happens right after
    /// that callback returns. The old protocol is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// struct Next;
    /// impl tokio_transports::DatagramProtocol for Next {}
    /// t.set_protocol(Next);
    /// # Ok(()) }
    /// ```
    pub fn set_protocol(&self, protocol: impl DatagramProtocol) {
        self.shared.set(PROTOCOL_SWAP);
        self.send(Command::SetProtocol(Box::new(protocol)));
    }

    /// Run `f` on the current protocol, on the endpoint's task, between two
    /// callbacks: the Rust counterpart of asyncio's `get_protocol`, since the
    /// task owns the protocol. Resolves to `None` if the endpoint is already
    /// finished (or `f` panicked, which is reported and not fatal).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert_eq!(t.with_protocol(|_p| 42).await, Some(42));
    /// t.abort();
    /// t.closed().await;
    /// assert_eq!(t.with_protocol(|_p| 42).await, None);
    /// # Ok(()) }
    /// ```
    pub fn with_protocol<R, F>(&self, f: F) -> impl Future<Output = Option<R>> + Send + 'static
    where
        F: FnOnce(&mut dyn DatagramProtocol) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Command::WithProtocol(Box::new(move |p| {
            let _ = tx.send(f(p));
        })));
        async move { rx.await.ok() }
    }

    /// Extra information by asyncio's names: `"sockname"` (the local
    /// address), `"peername"` (the remote address if the socket is
    /// connected, else `None`), `"socket"` (the raw fd while open). Unknown
    /// names give `None`. Addresses stay available after the endpoint closes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{create_datagram_endpoint, DatagramOptions, ExtraInfo, SocketAddress};
    /// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// assert!(matches!(t.get_extra_info("sockname"), Some(ExtraInfo::Address(SocketAddress::Inet(_)))));
    /// assert_eq!(t.get_extra_info("peername"), None); // not connected
    /// assert_eq!(t.get_extra_info("no such key"), None);
    /// # Ok(()) }
    /// ```
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let extra = &self.shared.extra;
        match name {
            "peername" => extra.peername.clone().map(ExtraInfo::Address),
            "sockname" => extra.sockname.clone().map(ExtraInfo::Address),
            "socket" => {
                (*extra.fd.lock().unwrap_or_else(|p| p.into_inner())).map(ExtraInfo::Socket)
            }
            _ => None,
        }
    }

    /// The connected peer's IP address and port (UDP), if connected.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// assert_eq!(t.peername(), Some("127.0.0.1:9".parse().unwrap()));
    /// # Ok(()) }
    /// ```
    pub fn peername(&self) -> Option<std::net::SocketAddr> {
        self.shared.extra.peer_inet()
    }

    /// The local IP address and port (UDP).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// assert_ne!(t.sockname().unwrap().port(), 0);
    /// # Ok(()) }
    /// ```
    pub fn sockname(&self) -> Option<std::net::SocketAddr> {
        self.shared
            .extra
            .sockname
            .as_ref()
            .and_then(SocketAddress::as_inet)
    }

    /// The connected peer's address of any family (Unix sockets included).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let (a, _b) = tokio::net::UnixDatagram::pair()?;
    /// let t = tokio_transports::create_datagram_endpoint_from_socket(|| (), a).await?;
    /// assert_eq!(t.peer_address(), Some(&tokio_transports::SocketAddress::Unix(None)));
    /// # Ok(()) }
    /// ```
    pub fn peer_address(&self) -> Option<&SocketAddress> {
        self.shared.extra.peername.as_ref()
    }

    /// The local address of any family.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let (a, _b) = tokio::net::UnixDatagram::pair()?;
    /// let t = tokio_transports::create_datagram_endpoint_from_socket(|| (), a).await?;
    /// assert_eq!(t.local_address(), Some(&tokio_transports::SocketAddress::Unix(None)));
    /// # Ok(()) }
    /// ```
    pub fn local_address(&self) -> Option<&SocketAddress> {
        self.shared.extra.sockname.as_ref()
    }

    /// The default target of [`sendto`](Self::sendto) (`remote_addr`):
    /// the connected peer, or with `allow_broadcast` the remote address the
    /// socket was not connected to.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions, SocketAddress};
    /// let opts = DatagramOptions::default()
    ///     .remote_addr(("127.0.0.1", 9))
    ///     .allow_broadcast(true);
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// assert_eq!(t.peername(), None); // not connected
    /// assert_eq!(t.remote_address(), Some(&SocketAddress::Inet("127.0.0.1:9".parse().unwrap())));
    /// # Ok(()) }
    /// ```
    pub fn remote_address(&self) -> Option<&SocketAddress> {
        self.shared.remote.as_ref()
    }

    /// Run `f` with the socket (to get or set options), if the endpoint is
    /// still open; `None` otherwise. The socket cannot be released while `f`
    /// runs, so keep `f` short.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// t.with_socket(|s| s.set_recv_buffer_size(1 << 20)).unwrap()?;
    /// assert_eq!(t.with_socket(|s| s.broadcast().unwrap()), Some(false));
    /// # Ok(()) }
    /// ```
    pub fn with_socket<R>(&self, f: impl FnOnce(socket2::SockRef<'_>) -> R) -> Option<R> {
        let guard = self.shared.socket.lock().unwrap_or_else(|p| p.into_inner());
        let sock = guard.as_ref()?;
        Some(f(socket2::SockRef::from(&sock.as_fd())))
    }

    // ---- beyond asyncio --------------------------------------------------

    /// The endpoint's counters now (see [`TransportStats`](crate::TransportStats)):
    /// payload bytes received and sent, `sendto` calls, `pause_writing`
    /// calls, dropped datagrams, and the time spent in callbacks if
    /// [`set_callback_timing`](crate::set_callback_timing) was on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// # let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// t.sendto("ping", None)?;
    /// assert_eq!(t.stats().writes, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> crate::TransportStats {
        self.shared.stats()
    }

    /// The endpoint's tracing span (`transport`, DEBUG, `kind` `udp` or
    /// `unix-datagram`): its task runs in it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// let _span = t.span(); // Span::none() without a subscriber
    /// # Ok(()) }
    /// ```
    pub fn span(&self) -> tracing::Span {
        self.shared.span.clone()
    }

    /// How many datagrams were dropped because the endpoint was already lost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// # let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// t.abort();
    /// t.closed().await;
    /// t.sendto("late", None)?;
    /// assert_eq!(t.dropped_writes(), 1);
    /// # Ok(()) }
    /// ```
    pub fn dropped_writes(&self) -> usize {
        self.shared.dropped_writes.load(Ordering::Relaxed)
    }

    /// Resolves when the write buffer is at or below the low watermark, or
    /// the endpoint is finished: a sender outside the callbacks can pace
    /// itself with it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// # let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// for _ in 0..100 {
    ///     t.sendto(vec![0u8; 1000], None)?;
    /// }
    /// t.drain().await;
    /// assert!(t.get_write_buffer_size() <= 16384);
    /// # Ok(()) }
    /// ```
    pub async fn drain(&self) {
        // A datagram endpoint never reports discarded data as an error:
        // datagrams are best effort.
        let _ = self.shared.drain(|| self.shared.inbox.poke()).await;
    }

    /// Resolves once `connection_lost` has run and the socket is released:
    /// the `on_con_lost` future of asyncio's examples, without the plumbing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.close();
    /// t.closed().await;
    /// assert!(t.is_closed());
    /// # Ok(()) }
    /// ```
    pub async fn closed(&self) {
        self.shared.closed().await
    }

    /// Whether `connection_lost` has run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert!(!t.is_closed());
    /// t.abort();
    /// t.closed().await;
    /// assert!(t.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.has(FINISHED)
    }
}
