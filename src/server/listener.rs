//! A server's listening sockets and how it knows they are closed.
//!
//! Each socket is wrapped with a [`ClosedSignal`]: a field declared after the
//! socket, so it is dropped after the socket's fd is closed, that lowers the
//! server's count of open sockets and wakes `wait_closed`. The fd of a
//! listening socket closes when the last of its two owners lets go (the
//! server's state and the accept task, which a `close()` or a runtime
//! shutdown drops a moment later on its own thread), so counting drops is
//! the only exact way to know when it is closed.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Inner;

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
    pub(super) listener: TcpListener,
    pub(super) _signal: ClosedSignal,
}

pub(super) enum Listener {
    Bound(BoundSocket, SocketAddr),
    /// Listening, with its accept task (`None` for the moment between the
    /// socket's `listen` and the task's spawn).
    Listening {
        listener: Arc<ListeningSocket>,
        addr: SocketAddr,
        task: Option<JoinHandle<()>>,
    },
}

impl Listener {
    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            Listener::Bound(_, a) | Listener::Listening { addr: a, .. } => *a,
        }
    }
}
