//! A server's listening sockets and how it knows they are closed.
//!
//! Each socket is wrapped with a [`ClosedSignal`]: a field declared after the
//! socket, so it is dropped after the socket's fd is closed, that lowers the
//! server's count of open sockets and wakes `wait_closed`. The fd of a
//! listening socket closes when the last of its two owners lets go (the
//! server's state and the accept task, which a `close()` or a runtime
//! shutdown drops a moment later on its own thread), so counting drops is
//! the only exact way to know when it is closed.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Weak};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::Inner;
use crate::extra::SocketAddress;

/// Lowers the server's count of open sockets when dropped.
pub(super) struct ClosedSignal(Weak<Inner>);

impl ClosedSignal {
    /// Count one more open socket of `server` (under its lock, which the
    /// caller holds as `open`).
    pub(super) fn new(server: Weak<Inner>, open: &mut usize) -> Self {
        *open += 1;
        ClosedSignal(server)
    }
}

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        // A server already gone has no `wait_closed` to wake.
        if let Some(inner) = self.0.upgrade() {
            inner.lock().open_sockets -= 1;
            inner.changed.notify_waiters();
        }
    }
}

/// A socket bound and not listening yet (`start_serving = false`).
pub(super) struct BoundSocket {
    /// Declared first: closed before `signal` reports it.
    pub(super) sock: socket2::Socket,
    pub(super) signal: ClosedSignal,
}

/// A listening socket, shared by the server's state and its accept task.
pub(super) struct ListeningSocket {
    /// Declared first: closed before `_signal` reports it.
    pub(super) listener: AnyListener,
    pub(super) _signal: ClosedSignal,
}

/// A TCP or a Unix stream listener: one server implementation serves both.
pub(super) enum AnyListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// What an accept gave.
pub(super) enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl AnyListener {
    /// Register a socket that `listen()` was called on.
    pub(super) fn from_socket(sock: socket2::Socket, unix: bool) -> io::Result<Self> {
        Ok(if unix {
            AnyListener::Unix(UnixListener::from_std(sock.into())?)
        } else {
            AnyListener::Tcp(TcpListener::from_std(sock.into())?)
        })
    }

    pub(super) async fn accept(&self) -> io::Result<Accepted> {
        match self {
            AnyListener::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            AnyListener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

impl AsFd for AnyListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            AnyListener::Tcp(l) => l.as_fd(),
            AnyListener::Unix(l) => l.as_fd(),
        }
    }
}

pub(super) enum Listener {
    Bound(BoundSocket, SocketAddress),
    /// Listening, with its accept task (`None` for the moment between the
    /// socket's `listen` and the task's spawn).
    Listening {
        listener: Arc<ListeningSocket>,
        addr: SocketAddress,
        task: Option<JoinHandle<()>>,
    },
}

impl Listener {
    pub(super) fn addr(&self) -> &SocketAddress {
        match self {
            Listener::Bound(_, a) | Listener::Listening { addr: a, .. } => a,
        }
    }
}
