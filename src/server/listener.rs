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
            // `poll_accept` takes its readiness through tokio's cooperative
            // budget: a Unix listener that was shut down reads as ready
            // forever while `accept` finds nothing, and the task must
            // still yield (so that the abort that follows the shutdown
            // lands) rather than spin inside one poll.
            AnyListener::Unix(l) => std::future::poll_fn(|cx| l.poll_accept(cx))
                .await
                .map(|(s, _)| Accepted::Unix(s)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A Unix listener shut down under its accept task reads as ready
    /// forever while `accept` finds nothing: the accept must still yield to
    /// the runtime (so a timeout, or the server's abort, can take effect)
    /// instead of spinning inside one poll.
    #[test]
    fn accept_on_a_shut_down_unix_listener_yields() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // A thread of its own: on a regression it spins forever, and the
        // test fails on the channel's timeout instead of hanging.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let yielded = rt.block_on(async {
                let path =
                    std::env::temp_dir().join(format!("tt-listener-{}.sock", std::process::id()));
                let _ = std::fs::remove_file(&path);
                let std = std::os::unix::net::UnixListener::bind(&path).unwrap();
                std.set_nonblocking(true).unwrap();
                let listener = AnyListener::Unix(UnixListener::from_std(std).unwrap());
                socket2::SockRef::from(&listener)
                    .shutdown(std::net::Shutdown::Read)
                    .unwrap();
                let accepted =
                    tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept())
                        .await;
                let _ = std::fs::remove_file(&path);
                // The timeout fired (the accept yielded), or the accept
                // reported an error; it never accepts anything.
                match accepted {
                    Err(_elapsed) => "yielded",
                    Ok(Err(_)) => "error",
                    Ok(Ok(_)) => "accepted",
                }
            });
            let _ = done_tx.send(yielded);
        });
        let outcome = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("accept spun without yielding");
        assert_ne!(outcome, "accepted");
    }
}
