//! Servers: asyncio's `loop.create_server` (TCP; on a socket of yours in
//! `from_socket.rs`), `loop.create_unix_server` (`unix.rs`) and the `Server`
//! object they all return.
//!
//! A [`Server`] owns its listening sockets and one accept task per socket.
//! Each accepted connection gets a fresh protocol from the factory and its
//! own transport task on the caller's runtime; the server tracks the live
//! transports (attached before `connection_made`, detached after
//! `connection_lost`) for `close_clients`, `abort_clients` and `wait_closed`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::Instrument;

use crate::IntoProtocol;
use crate::error::{AddressError, current_runtime};
use crate::extra::SocketAddress;
use crate::stream::driver::OnFinish;
use crate::stream::handle::Transport;

mod accept;
mod from_socket;
mod listener;
mod options;
mod shutdown;
pub(crate) mod unix;

use accept::{CloseOnDrop, FactoryFn, accept_loop};
pub use from_socket::{IntoListenerSocket, create_server_from_socket};
use listener::{AnyListener, BoundSocket, ClosedSignal, Listener, ListeningSocket};
pub use options::{ServerHosts, ServerOptions};
pub use shutdown::ShutdownReport;
pub use unix::{UnixEndpoint, create_unix_server};
pub(crate) use unix::{check_unix_stream, py_escape, py_repr};

/// How long accepting pauses after EMFILE and the like (asyncio's
/// `ACCEPT_RETRY_DELAY`).
///
/// ```
/// assert_eq!(tokio_transports::ACCEPT_RETRY_DELAY, std::time::Duration::from_secs(1));
/// ```
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Hashes transport ids (distinct integers from a counter) by one
/// multiplication instead of SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The server's protocol factory (see [`accept::AcceptWith`]).
type Factory = Arc<dyn accept::AcceptWith>;

struct State {
    listeners: Vec<Listener>,
    /// Listening and bound sockets whose fd is still open (see
    /// [`listener`]).
    open_sockets: usize,
    closed: bool,
    serving_forever: bool,
    clients: HashMap<usize, Transport, BuildHasherDefault<IdHasher>>,
}

struct Inner {
    factory: Factory,
    options: ServerOptions,
    /// Unix socket files to remove when the server closes.
    cleanup: Vec<unix::Cleanup>,
    state: Mutex<State>,
    /// Woken on close and when the last client detaches after it.
    changed: Notify,
    /// The hook every connection calls after `connection_lost` (made once).
    detach: OnceLock<OnFinish>,
    /// The server's tracing span: its accept tasks run in it, so each
    /// connection's span is a child of it.
    span: tracing::Span,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        let listeners = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            std::mem::take(&mut st.listeners)
        };
        tracing::debug!(parent: &self.span, "server closed");
        for l in listeners {
            if let Listener::Listening { listener, task, .. } = l {
                // The accept task first: once the socket is shut down, a
                // Unix listener reads as ready with nothing to accept.
                if let Some(task) = task {
                    task.abort();
                }
                // Stop listening now: new connects are refused from here on,
                // even before the accept task is gone.
                let _ = socket2::SockRef::from(&listener.listener).shutdown(Shutdown::Read);
            }
        }
        for file in &self.cleanup {
            file.remove_if_ours();
        }
        self.changed.notify_waiters();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// A listening server: asyncio's `Server`. Cheap to clone; dropping the last
/// clone closes it (as leaving `async with server` does). Accepted
/// connections are independent of it and stay open when it closes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{create_server, ServerOptions};
/// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
/// let port = server.sockets()[0].port();
/// assert!(port != 0 && server.is_serving());
/// server.close();
/// server.wait_closed().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets())
            .field("serving", &self.is_serving())
            .finish()
    }
}

/// Create a TCP server on `host(s)` and `port` (0: an ephemeral port, shown
/// by [`Server::sockets`]), whose connections are driven by protocols from
/// `protocol_factory` (asyncio's `loop.create_server`). The accept task calls
/// the factory once per accepted connection; a panicking factory drops that
/// connection only and is reported to the exception handler.
///
/// # Errors
///
/// A failed `bind()` closes every socket already bound and keeps the OS
/// error's kind, with a message naming the address (`error while attempting
/// to bind on address ('127.0.0.1', 8888): address already in use`, the OS
/// error's text in lower case as in asyncio). The OS error is the returned error's `source()` and an
/// [`AddressError`] its payload; [`raw_os_error`](crate::raw_os_error) gives
/// the code (`err.raw_os_error()` itself is `None`: an `io::Error` cannot
/// hold both a message and a code). Called outside a tokio runtime: an
/// error, not a panic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{create_server, ServerOptions};
/// let server = create_server(|| (), ["127.0.0.1", "::1"], 0, ServerOptions::default()).await?;
/// assert_eq!(server.sockets().len(), 2);
/// # Ok(()) }
/// ```
pub async fn create_server<F, P>(
    protocol_factory: F,
    hosts: impl ServerHosts,
    port: u16,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: IntoProtocol,
{
    ready_to_serve(&options)?;
    let mut hosts = hosts.into_hosts();
    if hosts.is_empty() {
        hosts = vec!["0.0.0.0".to_string(), "::".to_string()];
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for host in &hosts {
        for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    let mut bound = Vec::with_capacity(addrs.len());
    let several = addrs.len() > 1;
    let mut unavailable = None;
    for addr in addrs {
        // On error, `bound` is dropped and every socket in it closed.
        let sock = match bind(addr, &options) {
            Ok(sock) => sock,
            // As CPython 3.13+: with several addresses, one that does not
            // exist here is skipped; it is an error only if none binds.
            Err(e) if several && e.kind() == io::ErrorKind::AddrNotAvailable => {
                unavailable = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let local = sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        bound.push((sock, local));
    }
    if bound.is_empty()
        && let Some(e) = unavailable
    {
        return Err(e);
    }
    let factory: Factory = Arc::new(FactoryFn(protocol_factory));
    let bound = bound
        .into_iter()
        .map(|(sock, addr)| (sock, SocketAddress::Inet(addr)))
        .collect();
    new_server(factory, options, bound, Vec::new()).await
}

/// What every server creation checks before it binds anything: a tokio
/// runtime to run on (an error, not a panic, outside one), and TLS
/// settings that can work.
fn ready_to_serve(options: &ServerOptions) -> io::Result<()> {
    current_runtime()?;
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.ssl {
        tls.validate()?;
    }
    #[cfg(not(feature = "tls"))]
    let _ = options;
    Ok(())
}

/// The server over sockets already bound (TCP or Unix): listening at once
/// unless `start_serving` is off. `cleanup`: Unix socket files to remove at
/// close if they are still the ones bound.
async fn new_server(
    factory: Factory,
    options: ServerOptions,
    bound: Vec<(socket2::Socket, SocketAddress)>,
    cleanup: Vec<unix::Cleanup>,
) -> io::Result<Server> {
    let start_serving = options.start_serving;
    let addrs: Vec<SocketAddress> = bound.iter().map(|(_, a)| a.clone()).collect();
    let server = Server {
        inner: Arc::new(Inner {
            span: crate::trace::server_span(&addrs),
            factory,
            options,
            cleanup,
            state: Mutex::new(State {
                listeners: Vec::with_capacity(bound.len()),
                open_sockets: 0,
                closed: false,
                serving_forever: false,
                clients: HashMap::default(),
            }),
            changed: Notify::new(),
            detach: OnceLock::new(),
        }),
    };
    {
        let weak = Arc::downgrade(&server.inner);
        let mut st = server.inner.lock();
        for (sock, addr) in bound {
            let signal = ClosedSignal::new(weak.clone(), &mut st.open_sockets);
            st.listeners
                .push(Listener::Bound(BoundSocket { sock, signal }, addr));
        }
    }
    if start_serving {
        server.start_serving().await?;
    }
    Ok(server)
}

fn bind(addr: SocketAddr, options: &ServerOptions) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if options.reuse_address {
        sock.set_reuse_address(true)?;
    }
    if options.reuse_port {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .map_err(|e| AddressError::bind(addr, e))?;
    Ok(sock)
}

impl Server {
    /// The addresses the server listens on (empty once closed): the
    /// counterpart of asyncio's `Server.sockets`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// assert_eq!(server.sockets()[0].ip().to_string(), "127.0.0.1");
    /// server.close();
    /// assert!(server.sockets().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn sockets(&self) -> Vec<SocketAddr> {
        self.inner
            .lock()
            .listeners
            .iter()
            .filter_map(|l| l.addr().as_inet())
            .collect()
    }

    /// Every address the server listens on, of any family (empty once
    /// closed): a Unix server's path, or `SocketAddress::Unix(None)` for a
    /// socket whose name cannot be shown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions, SocketAddress};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// assert!(matches!(server.socket_addresses()[0], SocketAddress::Inet(_)));
    /// # Ok(()) }
    /// ```
    pub fn socket_addresses(&self) -> Vec<SocketAddress> {
        self.inner
            .lock()
            .listeners
            .iter()
            .map(|l| l.addr().clone())
            .collect()
    }

    /// Whether the server is accepting connections.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let opts = ServerOptions::default().start_serving(false);
    /// let server = create_server(|| (), "127.0.0.1", 0, opts).await?;
    /// assert!(!server.is_serving());
    /// server.start_serving().await?;
    /// assert!(server.is_serving());
    /// # Ok(()) }
    /// ```
    pub fn is_serving(&self) -> bool {
        let st = self.inner.lock();
        !st.closed
            && st
                .listeners
                .iter()
                .any(|l| matches!(l, Listener::Listening { .. }))
    }

    /// Start listening and accepting (idempotent). An error if the server is
    /// closed or `listen()` fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// server.start_serving().await?; // already serving: nothing happens
    /// # Ok(()) }
    /// ```
    pub async fn start_serving(&self) -> io::Result<()> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(io::Error::other("server is closed"));
        }
        let backlog = i32::try_from(self.inner.options.backlog).unwrap_or(i32::MAX);
        let listeners = std::mem::take(&mut st.listeners);
        let mut result = Ok(());
        // A socket that failed is reported closed after the lock is let go
        // (its signal takes the lock).
        let mut failed = Vec::new();
        // Accept tasks are spawned after the lock is let go too: on a
        // runtime that is shutting down, spawning drops the task at once,
        // and its guard closes the server, which takes the lock.
        let mut to_spawn = Vec::new();
        for l in listeners {
            let next = match l {
                Listener::Bound(BoundSocket { sock, signal }, addr) if result.is_ok() => {
                    let listening = sock.listen(backlog).and_then(|_| {
                        // A socket of yours that was never bound got an
                        // ephemeral port from `listen`: show that one.
                        let addr = match addr {
                            SocketAddress::Inet(a) if a.port() == 0 => sock
                                .local_addr()?
                                .as_socket()
                                .map_or(SocketAddress::Inet(a), SocketAddress::Inet),
                            addr => addr,
                        };
                        let unix = matches!(addr, SocketAddress::Unix(_));
                        Ok((AnyListener::from_socket(sock, unix)?, addr))
                    });
                    match listening {
                        Ok((listener, addr)) => {
                            let listener = Arc::new(ListeningSocket {
                                listener,
                                _signal: signal,
                            });
                            to_spawn.push((listener.clone(), addr.clone()));
                            Listener::Listening {
                                listener,
                                addr,
                                task: None,
                            }
                        }
                        Err(e) => {
                            result = Err(e);
                            failed.push(signal);
                            continue;
                        }
                    }
                }
                other => other,
            };
            st.listeners.push(next);
        }
        drop(st);
        drop(failed);
        for (listener, addr) in to_spawn {
            let task = tokio::spawn(
                accept_loop(
                    CloseOnDrop(Arc::downgrade(&self.inner)),
                    listener.clone(),
                    addr,
                )
                .instrument(self.inner.span.clone()),
            );
            let mut st = self.inner.lock();
            let slot = st.listeners.iter_mut().find_map(|l| match l {
                Listener::Listening {
                    listener: l, task, ..
                } if Arc::ptr_eq(l, &listener) => Some(task),
                _ => None,
            });
            match slot {
                Some(slot) => *slot = Some(task),
                // Closed meanwhile: `close()` shut the socket down; the task
                // ends on its own, and is aborted all the same.
                None => {
                    drop(st);
                    task.abort();
                }
            }
        }
        result
    }

    /// Serve until the server is closed (asyncio's `serve_forever`), then wait
    /// for its connections to end ([`wait_closed`](Self::wait_closed)), as
    /// asyncio's does when `close()` cancels it. An error if the server is
    /// already closed or already being served forever. If this future is
    /// dropped (cancelled), the server is closed. For clients that may
    /// never hang up, close them too ([`close_clients`](Self::close_clients),
    /// [`abort_clients`](Self::abort_clients)) or use `serve_until` with a
    /// grace period.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// let s2 = server.clone();
    /// tokio::spawn(async move { s2.close() });
    /// server.serve_forever().await?; // returns once closed (and no connection is left)
    /// # Ok(()) }
    /// ```
    pub async fn serve_forever(&self) -> io::Result<()> {
        {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(io::Error::other("server is closed"));
            }
            if st.serving_forever {
                return Err(io::Error::other(
                    "server is already being awaited on serve_forever()",
                ));
            }
            st.serving_forever = true;
        }
        struct CloseOnDrop<'a>(&'a Inner);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.lock().serving_forever = false;
                self.0.close();
            }
        }
        let _guard = CloseOnDrop(&self.inner);
        self.start_serving().await?;
        self.closed().await;
        self.wait_closed().await;
        Ok(())
    }

    /// Stop listening (connects are refused from now on). Accepted
    /// connections stay open. Idempotent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// server.close();
    /// server.close();
    /// assert!(!server.is_serving());
    /// # Ok(()) }
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// Resolves once the server is closed **and** every connection it
    /// accepted has delivered `connection_lost` (CPython 3.12.1+ semantics:
    /// it waits while the server is open, even with no connections).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// server.close();
    /// server.wait_closed().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_closed(&self) {
        loop {
            let mut changed = pin!(self.inner.changed.notified());
            changed.as_mut().enable();
            {
                let st = self.inner.lock();
                if st.closed && st.clients.is_empty() && st.open_sockets == 0 {
                    return;
                }
            }
            changed.await;
        }
    }

    /// `close()` every connection the server accepted (graceful: each
    /// flushes first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// server.close();
    /// server.close_clients();
    /// server.wait_closed().await;
    /// # Ok(()) }
    /// ```
    pub fn close_clients(&self) {
        for t in self.clients() {
            t.close();
        }
    }

    /// `abort()` every connection the server accepted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// server.close();
    /// server.abort_clients();
    /// server.wait_closed().await;
    /// # Ok(()) }
    /// ```
    pub fn abort_clients(&self) {
        for t in self.clients() {
            t.abort();
        }
    }

    /// The transports of the live connections the server accepted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// assert!(server.clients().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn clients(&self) -> Vec<Transport> {
        self.inner.lock().clients.values().cloned().collect()
    }
}
