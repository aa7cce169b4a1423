//! The accept loop of one listening socket: accept, pause a moment after
//! EMFILE and the like (as CPython does), and hand each connection its
//! protocol and transport, attached to the server before `connection_made`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::listener::Accepted;
use super::listener::ListeningSocket;
use super::{ACCEPT_RETRY_DELAY, Inner};
use crate::IntoProtocol;
use crate::exception::{ExceptionContext, call_exception_handler};
use crate::extra::SocketAddress;
use crate::stream::driver::FinishHook;
use crate::stream::handle::Transport;
use crate::stream::stream_io::StreamIo;
use crate::stream::{StreamConfig, prepare_stream};
use crate::tcp::tcp_config;
#[cfg(feature = "tls")]
use crate::tcp::tls_config;
#[cfg(feature = "tls")]
use crate::tls::io::TlsIo;
use crate::unix::unix_config;

fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM)
    )
}

/// errno values (Linux) without a libc dependency.
mod libc_errno {
    pub const ENOMEM: i32 = 12;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOBUFS: i32 = 105;
}

/// Closes the server if its accept task is dropped before the server
/// closed it: the runtime shut down (or was dropped), so nothing can accept
/// any more. The server then reads as closed, its sockets close, and
/// `wait_closed` can resolve once the connections (dropped with the same
/// runtime) have detached.
/// Passed to [`accept_loop`] as an argument, so that a task dropped before
/// its first poll (a runtime dropped right after `start_serving`) drops it
/// too.
pub(super) struct CloseOnDrop(pub(super) Weak<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.close();
        }
    }
}

pub(super) async fn accept_loop(
    close: CloseOnDrop,
    listener: Arc<ListeningSocket>,
    addr: SocketAddress,
) {
    let server = close.0.clone();
    let _close = close;
    loop {
        let accepted = listener.listener.accept().await;
        let Some(inner) = server.upgrade() else {
            return;
        };
        match accepted {
            Ok(accepted) => inner.factory.accept(&inner, accepted),
            Err(_) if inner.lock().closed => return,
            Err(e) if is_resource_error(&e) => {
                call_exception_handler(
                    &ExceptionContext::new("socket.accept() out of system resource")
                        .with_error(&e)
                        .with_sockname(addr.as_inet()),
                );
                drop(inner);
                // One retry after the delay, however many errors the batch had.
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                call_exception_handler(
                    &ExceptionContext::new("socket.accept() failed")
                        .with_error(&e)
                        .with_sockname(addr.as_inet()),
                );
                drop(inner);
                // Do not spin on a persistent error.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// What a server does with each accepted connection: make its protocol
/// with the server's factory and start its transport. Behind a trait object
/// so that [`Inner`] has one type whatever the factory, while the
/// protocol's concrete type reaches the connection's task (see
/// [`crate::drive`]).
pub(super) trait AcceptWith: Send + Sync {
    /// Handle one accepted connection.
    fn accept(&self, inner: &Arc<Inner>, accepted: Accepted);
}

/// A `protocol_factory` as a server's [`AcceptWith`].
pub(super) struct FactoryFn<F>(pub(super) F);

impl<F, P> AcceptWith for FactoryFn<F>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: IntoProtocol,
{
    fn accept(&self, inner: &Arc<Inner>, accepted: Accepted) {
        accept_one(inner, accepted, &self.0);
    }
}

fn accept_one<P: IntoProtocol>(inner: &Arc<Inner>, accepted: Accepted, factory: &impl Fn() -> P) {
    let opts = &inner.options;
    let peer = match &accepted {
        Accepted::Tcp(stream, peer) => {
            if opts.keep_alive {
                let _ = socket2::SockRef::from(stream).set_keepalive(true);
            }
            Some(*peer)
        }
        Accepted::Unix(_) => None,
    };
    let protocol = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory)) {
        Ok(p) => p,
        Err(_) => return creation_failed("protocol_factory() panicked", peer),
    };
    let on_finish = inner
        .detach
        .get_or_init(|| {
            let weak = Arc::downgrade(inner);
            let hook: FinishHook = Box::new(move |t: &Transport| {
                if let Some(inner) = weak.upgrade() {
                    let mut st = inner.lock();
                    st.clients.remove(&t.id());
                    // Only `wait_closed` cares, and only once the server is closed.
                    if st.closed && st.clients.is_empty() {
                        drop(st);
                        inner.changed.notify_waiters();
                    }
                }
            });
            Arc::new(hook)
        })
        .clone();
    // Attach before `connection_made` runs: the task is spawned only once
    // the transport is attached, and after the lock is let go (on a runtime
    // that is shutting down, spawning drops the task at once, and its `Drop`
    // detaches it, which takes the lock).
    // A TLS connection is attached from the start too: `close_clients` and
    // `abort_clients` end a handshake in progress, and `wait_closed` waits
    // for it.
    match accepted {
        Accepted::Tcp(stream, addr) => {
            let config = tcp_config(
                &stream,
                opts.nodelay,
                opts.write_limits,
                Some(addr),
                Some(on_finish),
                false,
            );
            attach_and_spawn(inner, stream, protocol, config, peer);
        }
        Accepted::Unix(stream) => {
            let config = unix_config(&stream, opts.write_limits, Some(on_finish), false);
            attach_and_spawn(inner, stream, protocol, config, peer);
        }
    }
}

/// A connection that could not be given its protocol: reported, and
/// closed (its socket was dropped with what the panic unwound); the server
/// goes on accepting.
#[cold]
fn creation_failed(what: &str, peer: Option<SocketAddr>) {
    let err = io::Error::other(what.to_owned());
    call_exception_handler(
        &ExceptionContext::new("Error on transport creation for incoming connection")
            .with_error(&err)
            .with_peername(peer),
    );
}

/// Make the connection's transport (plain or TLS, as the server's options
/// say), attach it, then spawn its task (after the lock is let go). A
/// protocol whose `into_protocol()` panics (user code: `IntoProtocol` can be
/// implemented outside the crate) drops this connection only.
fn attach_and_spawn<IO: StreamIo>(
    inner: &Arc<Inner>,
    io: IO,
    protocol: impl IntoProtocol,
    config: StreamConfig,
    peer: Option<SocketAddr>,
) {
    let prepare = || {
        #[cfg(feature = "tls")]
        if let Some(tls) = &inner.options.ssl {
            let io = TlsIo::server(io, tls);
            return prepare_stream(io, protocol, tls_config(config));
        }
        prepare_stream(io, protocol, config)
    };
    let Ok((transport, _started, driver)) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare))
    else {
        return creation_failed("the protocol's into_protocol() panicked", peer);
    };
    inner.lock().clients.insert(transport.id(), transport);
    tokio::spawn(driver);
}
