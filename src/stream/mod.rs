//! Stream transports over any `AsyncRead + AsyncWrite`: TCP, Unix streams,
//! TLS (see [`crate::tls`]), in-memory pipes, and one-way pipe transports
//! (see [`pipe`]: read-only and write-only modes of the same driver).
//!
//! * [`state`]: the sans-IO state machine (write queue, watermarks, read and
//!   close state).
//! * [`handle`]: the cloneable [`Transport`] and the commands it sends.
//! * [`driver`]: the tokio task that owns the I/O.
//! * [`read_pool`]: the per-thread read buffer.
//! * [`queues`]: the write queue, allocation-free in the common case.
//! * [`stream_io`]: what the driver needs of its I/O (TLS included), and
//!   which ways its bytes go ([`stream_io::Mode`]).
//! * [`pipe`]: the read and write pipe I/O types and `connect_read_pipe` /
//!   `connect_write_pipe`.

pub(crate) mod driver;
pub(crate) mod handle;
pub(crate) mod pipe;
pub(crate) mod queues;
pub(crate) mod read_pool;
pub(crate) mod state;
pub(crate) mod stream_io;

use std::future::Future;
use std::io;
use std::pin::Pin;

use futures::channel::oneshot;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::drive::{Drive, DriveVisitor};
use crate::error::current_runtime;
use crate::extra::Extra;
use crate::{IntoProtocol, WriteLimits};
use driver::{Driver, OnFinish};
use handle::{Shared, Transport};
use state::StreamState;
use stream_io::{AnyIo, StreamIo};

/// How to build one stream transport (crate-internal).
pub(crate) struct StreamConfig {
    pub(crate) extra: Extra,
    pub(crate) limits: WriteLimits,
    pub(crate) can_write_eof: bool,
    pub(crate) on_finish: Option<OnFinish>,
    /// Whether a caller will wait for `connection_made` (the server does not).
    pub(crate) notify_started: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            extra: Extra::default(),
            limits: WriteLimits::default(),
            can_write_eof: true,
            on_finish: None,
            notify_started: true,
        }
    }
}

/// Resolves once `connection_made` has run, or with the error that kept it
/// from running (a failed TLS handshake); `None`: nobody waits.
pub(crate) type Started = Option<StartWait>;

/// The creating caller's wait for `connection_made`, and its cancel
/// safety: dropped before it resolved (the caller's future was dropped: a
/// timeout, a `select!`), it closes the connection it was made for, so no
/// connection the caller never got runs on. If `connection_made` has not
/// run yet, the task sees the wait gone and ends without calling the
/// protocol (the protocol hears nothing, as after a failed TLS handshake);
/// if it ran, the protocol gets `connection_lost` after the close, as
/// asyncio's `transport.close()` when a `create_connection` is cancelled.
pub(crate) struct StartWait {
    rx: oneshot::Receiver<io::Result<()>>,
    /// Taken once the wait resolved: then nothing is closed on drop.
    guard: Option<Transport>,
}

impl Drop for StartWait {
    fn drop(&mut self) {
        if let Some(transport) = self.guard.take() {
            // The receiver first, so that a task that has not run
            // `connection_made` yet sees the caller gone and skips it.
            self.rx.close();
            transport.close();
        }
    }
}

/// Spawn the task for one connection on the current runtime.
pub(crate) fn spawn_stream<IO>(
    io: IO,
    protocol: impl IntoProtocol,
    config: StreamConfig,
) -> (Transport, Started)
where
    IO: StreamIo,
{
    let (transport, started, driver) = prepare_stream(io, protocol, config);
    tokio::spawn(driver);
    (transport, started)
}

/// A stream transport's task, ready to spawn: its driver, boxed, with the
/// protocol's concrete type erased behind the box.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The transport and the task of one connection, not spawned yet: a caller
/// that must record the transport somewhere before the task may run (the
/// server) does so, lets go of its locks, then spawns the task. (Spawning
/// on a runtime that is shutting down drops the task at once, and its
/// `Drop` runs the finish hook.)
///
/// Boxed: the task's future is then one pointer, so tokio's moves of it
/// while spawning and its stage changes copy a pointer instead of the whole
/// driver (about 500 instructions of `memcpy` per connection, see
/// docs/performance.md "Boxed stream task"). A `Protocol` or `Buffered`
/// protocol lives inside that box (see [`crate::drive`]): no allocation of
/// its own, and its callbacks are called statically.
pub(crate) fn prepare_stream<IO>(
    io: IO,
    protocol: impl IntoProtocol,
    config: StreamConfig,
) -> (Transport, Started, Task)
where
    IO: StreamIo,
{
    /// Builds the driver with the protocol's type (see [`DriveVisitor`]).
    struct Prepare<IO> {
        io: IO,
        config: StreamConfig,
    }
    impl<IO: StreamIo> DriveVisitor for Prepare<IO> {
        type Output = (Transport, Started, Task);
        fn visit<D: Drive>(self, protocol: D) -> Self::Output {
            let (transport, started, driver) = prepare_driver(self.io, protocol, self.config);
            (transport, started, Box::pin(driver))
        }
    }
    protocol.__drive(Prepare { io, config })
}

/// [`prepare_stream`] with the protocol boxed and the driver's type known:
/// for the test kit's harness, which owns the driver and reaches its
/// protocol as an [`AnyProtocol`](crate::AnyProtocol).
#[cfg(feature = "test-util")]
pub(crate) fn prepare_stream_any<IO>(
    io: IO,
    protocol: impl IntoProtocol,
    config: StreamConfig,
) -> (Transport, Started, Pin<Box<Driver<IO>>>)
where
    IO: StreamIo,
{
    let (transport, started, driver) = prepare_driver(io, protocol.into_protocol(), config);
    (transport, started, Box::pin(driver))
}

/// The driver of [`prepare_stream`] without the box, for a task that drives
/// several transports itself (a child process's pipes).
#[inline(always)]
pub(crate) fn prepare_driver<IO, P>(
    io: IO,
    protocol: P,
    config: StreamConfig,
) -> (Transport, Started, Driver<IO, P>)
where
    IO: StreamIo,
    P: Drive,
{
    let shared = Shared::new(
        config.extra,
        config.limits,
        config.can_write_eof,
        IO::MODE,
        IO::TLS,
    );
    let transport = Transport { shared };
    let (started_tx, started_rx) = if config.notify_started {
        let (tx, rx) = oneshot::channel();
        let wait = StartWait {
            rx,
            guard: Some(transport.clone()),
        };
        (Some(tx), Some(wait))
    } else {
        (None, None)
    };
    let driver = Driver::new(
        io,
        transport.clone(),
        if IO::TLS {
            StreamState::new_tls(config.limits)
        } else {
            StreamState::with_mode(config.limits, IO::MODE)
        },
        protocol,
        started_tx,
        config.on_finish,
    );
    (transport, started_rx, driver)
}

/// Wait for `connection_made`; an error if the task died first (its runtime
/// shut down) or the TLS handshake failed. Dropped before it resolved, it
/// closes the connection (see [`StartWait`]).
pub(crate) async fn started(wait: Started) -> io::Result<()> {
    let Some(mut wait) = wait else {
        return Ok(());
    };
    let result = (&mut wait.rx).await;
    wait.guard = None;
    result.map_err(|_| io::Error::other("the transport task ended before connection_made"))?
}

/// Wrap any `AsyncRead + AsyncWrite` in a stream transport driven by the
/// protocol that `protocol_factory` makes, on the current tokio runtime.
/// Returns once `connection_made` has run, as asyncio's creation methods do.
///
/// The shape of every creation function: the factory first, then the I/O,
/// and an `io::Result`. Works with `tokio::io::duplex`, TLS streams, and
/// anything else; addresses are unknown (`peername()` is `None`).
///
/// # Errors
///
/// Called outside a tokio runtime (an error, not tokio's panic), or if the
/// runtime shuts down before `connection_made`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let (a, b) = tokio::io::duplex(4096);
/// let t = tokio_transports::connect_io(|| (), a).await?;
/// t.write("over an in-memory pipe")?;
/// # drop(b);
/// # Ok(()) }
/// ```
pub async fn connect_io<F, P, IO>(protocol_factory: F, io: IO) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    current_runtime()?;
    let (transport, rx) = spawn_stream(AnyIo(io), protocol_factory(), StreamConfig::default());
    started(rx).await?;
    Ok(transport)
}

/// A connected Unix stream socket that [`connect_unix_stream`] takes: a
/// tokio or std `UnixStream`.
///
/// ```
/// use tokio_transports::IntoUnixStream;
/// fn takes<S: IntoUnixStream>(_: S) {}
/// # fn f(s: std::os::unix::net::UnixStream) { takes(s) }
/// ```
pub trait IntoUnixStream {
    /// Convert into a tokio `UnixStream` registered with the current runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::IntoUnixStream;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = a.into_tokio_stream()?;
    /// # Ok(()) }
    /// ```
    fn into_tokio_stream(self) -> io::Result<tokio::net::UnixStream>;
}

impl IntoUnixStream for tokio::net::UnixStream {
    fn into_tokio_stream(self) -> io::Result<tokio::net::UnixStream> {
        Ok(self)
    }
}

impl IntoUnixStream for std::os::unix::net::UnixStream {
    fn into_tokio_stream(self) -> io::Result<tokio::net::UnixStream> {
        self.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(self)
    }
}

/// Wrap a connected Unix stream socket, std or tokio, in a transport driven
/// by the protocol that `protocol_factory` makes (e.g. one end of a
/// socketpair: the reference's "connecting existing sockets" example,
/// asyncio's `create_unix_connection(sock=...)`). Addresses are captured as
/// [`SocketAddress::Unix`](crate::SocketAddress::Unix). Returns once `connection_made` has run; an error
/// (not a panic) outside a tokio runtime.
///
/// # Errors
///
/// A socket that is not a Unix stream socket (a datagram socket's fd made
/// into a `UnixStream`): `InvalidInput`, "A UNIX Domain Stream Socket was
/// expected, got ...", before the factory runs; the socket, given by
/// value, is closed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let (rsock, _wsock) = std::os::unix::net::UnixStream::pair()?;
/// let t = tokio_transports::connect_unix_stream(|| (), rsock).await?;
/// assert!(t.can_write_eof());
/// # Ok(()) }
/// ```
pub async fn connect_unix_stream<F, P>(
    protocol_factory: F,
    sock: impl IntoUnixStream,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    current_runtime()?;
    let stream = sock.into_tokio_stream()?;
    // A datagram socket's fd can be made a `UnixStream` in safe code.
    crate::server::unix::check_unix_stream(&socket2::SockRef::from(&stream))?;
    let config = StreamConfig {
        extra: Extra::unix(&stream),
        ..StreamConfig::default()
    };
    let (transport, rx) = spawn_stream(stream, protocol_factory(), config);
    started(rx).await?;
    Ok(transport)
}
