//! The sockets a datagram transport drives (UDP and Unix datagram), behind
//! one crate-private trait, and the per-thread receive buffer.
//!
//! [`Socket`] gives the driver non-blocking, readiness-based operations with
//! addresses already typed as [`SocketAddress`]. [`DatagramSocket`] and
//! [`IntoDatagramSocket`] are the public side: what
//! [`create_datagram_endpoint_from_socket`](crate::create_datagram_endpoint_from_socket)
//! accepts.
//!
//! The receive buffer works like the stream transport's read pool: each
//! thread keeps one [`BytesMut`], which a driver borrows for one poll; a
//! datagram is received into its spare capacity, which is always larger than
//! the largest datagram the socket can carry (so nothing is truncated), and
//! split off as a zero-copy [`Bytes`](bytes::Bytes). An idle endpoint holds
//! no receive buffer.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{Interest, Ready};
use tokio::net::{UdpSocket, UnixDatagram};

use crate::extra::SocketAddress;

/// Room kept free for one UDP datagram: more than the largest UDP payload
/// (65,507 bytes over IPv4, 65,527 over IPv6 without jumbograms).
pub(crate) const UDP_RECV_ROOM: usize = 64 * 1024;
/// Room kept free for one Unix datagram: CPython's `recvfrom(256 KiB)`.
pub(crate) const UNIX_RECV_ROOM: usize = 256 * 1024;

thread_local! {
    static POOL: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// Borrow this thread's receive buffer (empty) for one poll of one driver;
/// hand it back with [`give_back`]. Meanwhile another user on this thread
/// (there is none during a poll) would get a new, empty one.
pub(crate) fn take_recv_buffer() -> BytesMut {
    POOL.with(Cell::take)
}

/// Return the buffer [`take_recv_buffer`] lent.
pub(crate) fn give_back(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    POOL.with(|pool| pool.set(buf));
}

/// Make sure `buf` (empty) has at least `room` bytes of spare capacity.
///
/// When every datagram handed out from the current allocation has been
/// dropped (an echo server's case), the buffer goes back to its start, so
/// the same cache-hot lines receive datagram after datagram (measured: about
/// 5 % less user CPU per 1 KiB datagram than walking the whole buffer).
/// Otherwise,
/// when the spare room runs low, [`BytesMut::reserve`] starts a fresh
/// allocation of twice `room`.
#[inline]
pub(crate) fn ensure_room(buf: &mut BytesMut, room: usize) {
    let spare = buf.capacity() - buf.len();
    // Going back costs a call into `bytes`: do it once a kilobyte is used,
    // which keeps the lines in use few for small and large datagrams alike.
    if spare <= 2 * room - RECLAIM_AFTER && !buf.try_reclaim(2 * room) && spare < room {
        buf.reserve(2 * room);
    }
}

/// How much of the buffer is used before [`ensure_room`] tries to go back
/// to its start.
const RECLAIM_AFTER: usize = 1024;

#[cfg(test)]
fn with_recv_buffer<R>(room: usize, f: impl FnOnce(&mut BytesMut) -> R) -> R {
    let mut buf = take_recv_buffer();
    ensure_room(&mut buf, room);
    let r = f(&mut buf);
    give_back(buf);
    r
}

/// A socket a handle may send on straight away (see [`try_direct`]).
pub(crate) trait DirectSend: Send + Sync {
    /// `send` (connected, `to` is `None`) or `sendto`, without blocking.
    fn try_send_now(&self, data: &[u8], to: Option<&SocketAddress>) -> io::Result<usize>;
}

impl<S: Socket> DirectSend for S {
    #[inline]
    fn try_send_now(&self, data: &[u8], to: Option<&SocketAddress>) -> io::Result<usize> {
        match to {
            None => self.try_send(data),
            Some(addr) => self.try_send_to(data, addr),
        }
    }
}

/// The endpoint whose callbacks run on this thread, with its socket.
struct Direct {
    id: usize,
    sock: Arc<dyn DirectSend>,
    /// Cleared once a send found the socket full: later ones are queued.
    enabled: bool,
}

thread_local! {
    /// Set while `sendto` from a callback may go straight to the socket.
    static DIRECT: RefCell<Option<Direct>> = const { RefCell::new(None) };
}

/// While alive, `sendto` called from a callback of endpoint `id` on this
/// thread tries the socket at once, as asyncio's `sendto` does. [`end`]
/// (or dropping it, when unwinding) restores whatever was allowed before.
///
/// [`end`]: DirectGuard::end
pub(crate) struct DirectGuard {
    prev: Option<Option<Direct>>,
}

/// Allow direct sends for endpoint `id` (the driver does so only while its
/// send queue is empty, so that the order of datagrams is kept). The socket
/// handle moves in and comes back from [`DirectGuard::end`]: no reference
/// count is touched.
pub(crate) fn allow_direct(id: usize, sock: Arc<dyn DirectSend>) -> DirectGuard {
    let direct = Direct {
        id,
        sock,
        enabled: true,
    };
    let prev = DIRECT.with(|d| d.replace(Some(direct)));
    DirectGuard { prev: Some(prev) }
}

impl DirectGuard {
    /// Stop direct sends; returns the socket handle for the next time.
    pub(crate) fn end(mut self) -> Option<Arc<dyn DirectSend>> {
        let prev = self.prev.take().flatten();
        DIRECT.with(|d| d.replace(prev)).map(|direct| direct.sock)
    }
}

impl Drop for DirectGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            DIRECT.with(|d| *d.borrow_mut() = prev);
        }
    }
}

/// From a handle of endpoint `id`: if this thread runs one of its callbacks
/// and direct sends are allowed, try the socket now and return the result;
/// `None` otherwise (the caller queues the datagram). A full socket
/// (`WouldBlock`) ends direct sends until the callback returns, so the
/// datagrams queued from then on keep their order.
pub(crate) fn try_direct(
    id: usize,
    data: &[u8],
    to: Option<&SocketAddress>,
) -> Option<io::Result<usize>> {
    DIRECT.with(|d| {
        let mut d = d.try_borrow_mut().ok()?;
        let direct = d.as_mut()?;
        if direct.id != id || !direct.enabled {
            return None;
        }
        let res = direct.sock.try_send_now(data, to);
        if let Err(e) = &res
            && matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            )
        {
            direct.enabled = false;
        }
        Some(res)
    })
}

/// What the driver needs from a datagram socket.
pub(crate) trait Socket: Send + Sync + Sized + 'static {
    /// The spare room every receive gets.
    const RECV_ROOM: usize;

    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Receive one datagram into `buf`'s spare capacity.
    fn try_recv_into(&self, buf: &mut BytesMut) -> io::Result<(usize, SocketAddress)>;
    /// `send` on a connected socket.
    fn try_send(&self, data: &[u8]) -> io::Result<usize>;
    /// `sendto`.
    fn try_send_to(&self, data: &[u8], to: &SocketAddress) -> io::Result<usize>;
    /// Resolves when the socket is readable or has a pending error (an ICMP
    /// error on a connected socket raises only `EPOLLERR`, not `EPOLLIN`).
    fn readable_or_error(self: Arc<Self>) -> impl Future<Output = io::Result<Ready>> + Send;
    /// `SO_ERROR`: take the pending error, if any.
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// Forget the error readiness tokio recorded (it is sticky otherwise).
    fn clear_error_readiness(&self);
}

fn wrong_family(to: &SocketAddress) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("address {to} does not fit this socket's family"),
    )
}

impl Socket for UdpSocket {
    const RECV_ROOM: usize = UDP_RECV_ROOM;

    #[inline]
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UdpSocket::poll_recv_ready(self, cx)
    }

    #[inline]
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UdpSocket::poll_send_ready(self, cx)
    }

    #[inline]
    fn try_recv_into(&self, buf: &mut BytesMut) -> io::Result<(usize, SocketAddress)> {
        let (n, addr) = self.try_recv_buf_from(buf)?;
        Ok((n, SocketAddress::Inet(addr)))
    }

    #[inline]
    fn try_send(&self, data: &[u8]) -> io::Result<usize> {
        UdpSocket::try_send(self, data)
    }

    #[inline]
    fn try_send_to(&self, data: &[u8], to: &SocketAddress) -> io::Result<usize> {
        match to {
            SocketAddress::Inet(a) => UdpSocket::try_send_to(self, data, *a),
            SocketAddress::Unix(_) => Err(wrong_family(to)),
        }
    }

    async fn readable_or_error(self: Arc<Self>) -> io::Result<Ready> {
        self.ready(Interest::READABLE | Interest::ERROR).await
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        UdpSocket::take_error(self)
    }

    fn clear_error_readiness(&self) {
        let _ = self.try_io(Interest::ERROR, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

impl Socket for UnixDatagram {
    const RECV_ROOM: usize = UNIX_RECV_ROOM;

    #[inline]
    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixDatagram::poll_recv_ready(self, cx)
    }

    #[inline]
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        UnixDatagram::poll_send_ready(self, cx)
    }

    #[inline]
    fn try_recv_into(&self, buf: &mut BytesMut) -> io::Result<(usize, SocketAddress)> {
        let (n, addr) = self.try_recv_buf_from(buf)?;
        Ok((n, SocketAddress::from(addr)))
    }

    #[inline]
    fn try_send(&self, data: &[u8]) -> io::Result<usize> {
        UnixDatagram::try_send(self, data)
    }

    #[inline]
    fn try_send_to(&self, data: &[u8], to: &SocketAddress) -> io::Result<usize> {
        match to {
            SocketAddress::Unix(Some(path)) => UnixDatagram::try_send_to(self, data, path),
            _ => Err(wrong_family(to)),
        }
    }

    async fn readable_or_error(self: Arc<Self>) -> io::Result<Ready> {
        self.ready(Interest::READABLE | Interest::ERROR).await
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        UnixDatagram::take_error(self)
    }

    fn clear_error_readiness(&self) {
        let _ = self.try_io(Interest::ERROR, || {
            Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
        });
    }
}

/// A datagram socket of either family, registered with the current tokio
/// runtime: what [`create_datagram_endpoint_from_socket`](crate::create_datagram_endpoint_from_socket)
/// drives.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{DatagramSocket, IntoDatagramSocket};
/// let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// assert!(matches!(udp.into_datagram_socket()?, DatagramSocket::Udp(_)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum DatagramSocket {
    /// A UDP socket (IPv4 or IPv6).
    Udp(UdpSocket),
    /// A Unix datagram socket (bound to a path, unbound, or one end of a
    /// socketpair).
    Unix(UnixDatagram),
}

/// A datagram socket that
/// [`create_datagram_endpoint_from_socket`](crate::create_datagram_endpoint_from_socket)
/// takes (asyncio's `sock=` argument): a tokio or std `UdpSocket` or
/// `UnixDatagram`, or a [`socket2::Socket`] of type `SOCK_DGRAM`. A std or
/// socket2 socket is switched to non-blocking mode.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::IntoDatagramSocket;
/// let std_sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let sock = std_sock.into_datagram_socket()?;
/// # Ok(()) }
/// ```
pub trait IntoDatagramSocket {
    /// Convert into a [`DatagramSocket`] registered with the current tokio
    /// runtime; an error for a socket that is not a datagram socket.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use socket2::{Domain, Socket, Type};
    /// use tokio_transports::IntoDatagramSocket;
    /// let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    /// let err = tcp.into_datagram_socket().unwrap_err();
    /// assert!(err.to_string().starts_with("A datagram socket was expected"));
    /// # }
    /// ```
    fn into_datagram_socket(self) -> io::Result<DatagramSocket>;
}

impl IntoDatagramSocket for DatagramSocket {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        Ok(self)
    }
}

impl IntoDatagramSocket for UdpSocket {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        Ok(DatagramSocket::Udp(self))
    }
}

impl IntoDatagramSocket for std::net::UdpSocket {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        self.set_nonblocking(true)?;
        Ok(DatagramSocket::Udp(UdpSocket::from_std(self)?))
    }
}

impl IntoDatagramSocket for UnixDatagram {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        Ok(DatagramSocket::Unix(self))
    }
}

impl IntoDatagramSocket for std::os::unix::net::UnixDatagram {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        self.set_nonblocking(true)?;
        Ok(DatagramSocket::Unix(UnixDatagram::from_std(self)?))
    }
}

impl IntoDatagramSocket for socket2::Socket {
    fn into_datagram_socket(self) -> io::Result<DatagramSocket> {
        let ty = self.r#type()?;
        if ty != socket2::Type::DGRAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "A datagram socket was expected, got {ty:?} socket (fd {})",
                    self.as_raw_fd()
                ),
            ));
        }
        let domain = crate::extra::socket_domain(&self)?;
        self.set_nonblocking(true)?;
        let fd = OwnedFd::from(self);
        if domain == socket2::Domain::UNIX {
            std::os::unix::net::UnixDatagram::from(fd).into_datagram_socket()
        } else if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
            std::net::UdpSocket::from(fd).into_datagram_socket()
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported address family {domain:?}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_datagram_reuses_the_memory_of_dropped_ones() {
        let (ptr, first) = with_recv_buffer(UDP_RECV_ROOM, |b| {
            assert!(b.capacity() - b.len() >= UDP_RECV_ROOM);
            b.resize(3000, 1);
            (b.as_ptr(), b.split_to(3000).freeze())
        });
        // Held: the next one goes after it.
        let second = with_recv_buffer(UDP_RECV_ROOM, |b| {
            b.resize(2000, 2);
            b.split_to(2000).freeze()
        });
        assert_eq!(second.as_ptr(), ptr.wrapping_add(3000));
        assert!(first.iter().all(|&x| x == 1) && second.iter().all(|&x| x == 2));
        drop(first);
        drop(second);
        // Both dropped, and more than a kilobyte used: back to the start,
        // with no new allocation.
        assert_eq!(with_recv_buffer(UDP_RECV_ROOM, |b| b.as_ptr()), ptr);
    }

    #[test]
    fn a_held_datagram_forces_a_new_allocation_and_stays_intact() {
        let held = with_recv_buffer(UDP_RECV_ROOM, |b| {
            let used = b.capacity() - UDP_RECV_ROOM + 1;
            b.resize(used, 1);
            b.split_to(used).freeze()
        });
        let room = with_recv_buffer(UDP_RECV_ROOM, |b| {
            assert_ne!(b.as_ptr(), held.as_ptr());
            b.capacity() - b.len()
        });
        assert!(room >= UDP_RECV_ROOM);
        assert!(held.iter().all(|&x| x == 1));
    }

    #[test]
    fn a_larger_room_is_honoured_and_a_lent_buffer_is_not_shared() {
        let mut outer = take_recv_buffer();
        ensure_room(&mut outer, UNIX_RECV_ROOM);
        assert!(outer.capacity() - outer.len() >= UNIX_RECV_ROOM);
        with_recv_buffer(UDP_RECV_ROOM, |inner| {
            assert!(inner.capacity() >= UDP_RECV_ROOM);
            assert_ne!(inner.as_ptr(), outer.as_ptr());
        });
        give_back(outer);
    }
}
