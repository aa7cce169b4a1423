//! A server on a listening socket you made: asyncio's
//! `loop.create_server(factory, sock=sock)`.
//!
//! The socket is checked (a stream socket, TCP or Unix), made non-blocking
//! and handed to the same [`Server`] as [`create_server`](super::create_server)
//! makes: `listen(backlog)` when serving starts (a socket that already
//! listens only gets its backlog updated), one accept task, the client
//! registry, `wait_closed`.

use std::io;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};

use super::accept::FactoryFn;
use super::{Factory, Server, ServerOptions, new_server, ready_to_serve, unix};
use crate::IntoProtocol;
use crate::extra::{SocketAddress, socket_domain};

/// A socket that [`create_server_from_socket`] takes: a std or tokio
/// `TcpListener`, a std `UnixListener`, or a [`socket2::Socket`] (bound,
/// listening or not).
///
/// ```
/// use tokio_transports::IntoListenerSocket;
/// fn takes<S: IntoListenerSocket>(_: S) {}
/// # fn f(l: std::net::TcpListener) { takes(l) }
/// ```
pub trait IntoListenerSocket {
    /// The socket, as a `socket2::Socket` (deregistered from tokio first,
    /// for a tokio listener).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use tokio_transports::IntoListenerSocket;
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = l.local_addr()?;
    /// let sock = l.into_listener_socket()?;
    /// assert_eq!(sock.local_addr()?.as_socket(), Some(addr));
    /// # Ok(()) }
    /// ```
    fn into_listener_socket(self) -> io::Result<Socket>;
}

impl IntoListenerSocket for Socket {
    fn into_listener_socket(self) -> io::Result<Socket> {
        Ok(self)
    }
}

impl IntoListenerSocket for std::net::TcpListener {
    fn into_listener_socket(self) -> io::Result<Socket> {
        Ok(Socket::from(self))
    }
}

impl IntoListenerSocket for tokio::net::TcpListener {
    fn into_listener_socket(self) -> io::Result<Socket> {
        Ok(Socket::from(self.into_std()?))
    }
}

impl IntoListenerSocket for std::os::unix::net::UnixListener {
    fn into_listener_socket(self) -> io::Result<Socket> {
        Ok(Socket::from(std::os::fd::OwnedFd::from(self)))
    }
}

/// The socket's address as the server reports it, after checking that the
/// server can accept on it: a stream socket of the IPv4, IPv6 or Unix
/// family.
fn check_stream(sock: &Socket) -> io::Result<SocketAddress> {
    let domain = socket_domain(sock)?;
    let ty = sock.r#type()?;
    if ty != Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("A Stream Socket was expected, got {domain:?} {ty:?}"),
        ));
    }
    let local = sock.local_addr()?;
    if domain == Domain::UNIX {
        return Ok(unix::unix_name(&local));
    }
    match local.as_socket() {
        Some(addr) if domain == Domain::IPV4 || domain == Domain::IPV6 => {
            Ok(SocketAddress::Inet(addr))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("A TCP or Unix stream socket was expected, got {domain:?} {ty:?}"),
        )),
    }
}

/// Create a server on a socket you made (asyncio's
/// `loop.create_server(factory, sock=sock)`): a TCP listener (or a Unix
/// one), bound, and listening or not. Everything else is
/// [`create_server`](super::create_server)'s: the factory is called once
/// per accepted connection, the [`Server`] is the same.
///
/// From [`ServerOptions`]: `backlog` (the server calls `listen(backlog)`
/// when it starts serving, which only updates the backlog of a socket that
/// already listens), `start_serving`, `keep_alive` and `nodelay` (TCP
/// only), `write_limits` and `ssl` apply; `reuse_address` and `reuse_port` do not
/// (the socket is bound already: set them on it before `bind`). A Unix
/// socket's file is not removed at close (as in asyncio, where only
/// `create_unix_server` does that). Where asyncio refuses a host or port
/// given together with `sock`, this is a function of its own: the two
/// cannot be written together.
///
/// # Errors
///
/// A socket that is not a stream socket ("A Stream Socket was expected,
/// ..."), or one of another family than IPv4, IPv6 or Unix (`InvalidInput`,
/// before anything is started); a failed `listen()`; zero TLS timeouts;
/// outside a tokio runtime. On an error the socket is closed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{ServerOptions, create_server_from_socket};
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = create_server_from_socket(|| (), listener, ServerOptions::default()).await?;
/// assert_eq!(server.sockets(), [addr]);
/// # Ok(()) }
/// ```
pub async fn create_server_from_socket<F, P>(
    protocol_factory: F,
    sock: impl IntoListenerSocket,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: IntoProtocol,
{
    ready_to_serve(&options)?;
    let sock = sock.into_listener_socket()?;
    let addr = check_stream(&sock)?;
    sock.set_nonblocking(true)?;
    let factory: Factory = Arc::new(FactoryFn(protocol_factory));
    new_server(factory, options, vec![(sock, addr)], Vec::new()).await
}
