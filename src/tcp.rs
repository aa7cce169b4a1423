//! TCP client side: asyncio's `create_connection` (host and port, or an
//! existing socket) and `connect_accepted_socket`.
//!
//! Resolution tries every address in turn, or with happy eyeballs (RFC 8305)
//! when a delay is given; `TCP_NODELAY` is on by default; the protocol is
//! made only once the socket is connected, and the functions return once
//! `connection_made` has run.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::net::{TcpSocket, TcpStream};

use crate::error::{AddressError, current_runtime};
use crate::extra::{Extra, SocketAddress};
use crate::stream::driver::OnFinish;
use crate::stream::handle::Transport;
use crate::stream::{StreamConfig, prepare_stream, started};
#[cfg(feature = "tls")]
use crate::tls::io::TlsIo;
#[cfg(feature = "tls")]
use crate::tls::{ClientTls, ServerTls, TLS_WRITE_LIMITS};
use crate::{IntoProtocol, WriteLimits};

/// The TLS side of a client connection, checked before connecting.
#[cfg(feature = "tls")]
pub(crate) type ClientTlsStart<'a> = Option<(&'a ClientTls, crate::tls::ServerName)>;
/// Without the `tls` feature there is never a TLS side.
#[cfg(not(feature = "tls"))]
pub(crate) type ClientTlsStart<'a> = Option<(&'a std::convert::Infallible, ())>;

impl ConnectOptions {
    /// Check [`ssl`](ConnectOptions#structfield.ssl) (asyncio checks the
    /// TLS arguments before it connects); `host` names the server when
    /// `server_hostname` is not set.
    pub(crate) fn tls_start(&self, _host: Option<&str>) -> io::Result<ClientTlsStart<'_>> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.ssl {
            return Ok(Some((tls, tls.validate(_host)?)));
        }
        Ok(None)
    }
}

/// Spawn the transport of a connected client stream, plain or TLS (the
/// handshake runs in the transport's task), and wait for `connection_made`
/// (see [`started`] for a caller that gives up).
pub(crate) async fn start_client<IO: crate::stream::stream_io::StreamIo>(
    io: IO,
    protocol: impl IntoProtocol,
    config: StreamConfig,
    tls: ClientTlsStart<'_>,
) -> io::Result<Transport> {
    let (transport, rx) = match tls {
        None => {
            let (transport, rx, driver) = prepare_stream(io, protocol, config);
            tokio::spawn(driver);
            (transport, rx)
        }
        #[cfg(feature = "tls")]
        Some((tls, name)) => {
            let io = TlsIo::client(io, tls, name);
            let (transport, rx, driver) = prepare_stream(io, protocol, tls_config(config));
            tokio::spawn(driver);
            (transport, rx)
        }
        #[cfg(not(feature = "tls"))]
        Some((never, ())) => match *never {},
    };
    // A failed handshake ends the task, and `started` reports its error.
    started(rx).await?;
    Ok(transport)
}

/// Options for [`create_connection`] (asyncio's keyword arguments).
///
/// Start from [`ConnectOptions::default()`] (asyncio's defaults) and chain
/// the setters, each named after its field; the fields stay public to read
/// or assign (assign `None` to clear an optional one). The struct is
/// `#[non_exhaustive]`, so options added later do not break your code, and a
/// struct literal cannot be written outside the crate.
///
/// ```
/// use std::time::Duration;
/// use tokio_transports::{ConnectOptions, WriteLimits};
/// let opts = ConnectOptions::default()
///     .happy_eyeballs_delay(Duration::from_millis(250))
///     .connect_timeout(Duration::from_secs(5))
///     .write_limits(WriteLimits::new(Some(1000), None)?);
/// assert!(opts.nodelay);
/// assert_eq!(opts.connect_timeout, Some(Duration::from_secs(5)));
/// # Ok::<(), tokio_transports::TransportError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Bind the socket to this local address before connecting.
    pub local_addr: Option<SocketAddr>,
    /// Happy eyeballs: start the next address's attempt after this delay
    /// instead of waiting for the previous one to fail (Python 3.8+).
    pub happy_eyeballs_delay: Option<Duration>,
    /// Reorder addresses by family, alternating after the first `interleave`
    /// of the first family (defaults to 1 when `happy_eyeballs_delay` is set;
    /// 0 keeps the resolver's order, as in asyncio).
    pub interleave: Option<usize>,
    /// Give up after this long, for all attempts together.
    pub connect_timeout: Option<Duration>,
    /// Set `TCP_NODELAY` (on by default, as in asyncio).
    pub nodelay: bool,
    /// Initial write-buffer watermarks. With TLS, left at the default, the
    /// TLS defaults apply instead ([`WriteLimits::tls_default`]: 512 KiB /
    /// 128 KiB, as CPython's SSL transport).
    pub write_limits: WriteLimits,
    /// TLS (asyncio's `ssl=`, with `server_hostname` and the TLS timeouts):
    /// the connection is made, the handshake run, and only then
    /// `connection_made` called.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub ssl: Option<ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            local_addr: None,
            happy_eyeballs_delay: None,
            interleave: None,
            connect_timeout: None,
            nodelay: true,
            write_limits: WriteLimits::default(),
            #[cfg(feature = "tls")]
            ssl: None,
        }
    }
}

impl ConnectOptions {
    /// Set [`local_addr`](ConnectOptions#structfield.local_addr): bind to
    /// this address before connecting.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    /// let opts = tokio_transports::ConnectOptions::default().local_addr(local);
    /// assert_eq!(opts.local_addr, Some(local));
    /// ```
    pub fn local_addr(mut self, local_addr: SocketAddr) -> Self {
        self.local_addr = Some(local_addr);
        self
    }

    /// Set [`happy_eyeballs_delay`](ConnectOptions#structfield.happy_eyeballs_delay)
    /// (RFC 8305).
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tokio_transports::ConnectOptions::default().happy_eyeballs_delay(Duration::from_millis(250));
    /// assert_eq!(opts.happy_eyeballs_delay, Some(Duration::from_millis(250)));
    /// ```
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Set [`interleave`](ConnectOptions#structfield.interleave): how many
    /// addresses of the first family come before the families alternate.
    ///
    /// ```
    /// let opts = tokio_transports::ConnectOptions::default().interleave(2);
    /// assert_eq!(opts.interleave, Some(2));
    /// ```
    pub fn interleave(mut self, interleave: usize) -> Self {
        self.interleave = Some(interleave);
        self
    }

    /// Set [`connect_timeout`](ConnectOptions#structfield.connect_timeout),
    /// for all attempts together.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = tokio_transports::ConnectOptions::default().connect_timeout(Duration::from_secs(5));
    /// assert_eq!(opts.connect_timeout, Some(Duration::from_secs(5)));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Set [`nodelay`](ConnectOptions#structfield.nodelay) (`TCP_NODELAY`).
    ///
    /// ```
    /// let opts = tokio_transports::ConnectOptions::default().nodelay(false);
    /// assert!(!opts.nodelay);
    /// ```
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Set [`write_limits`](ConnectOptions#structfield.write_limits), the
    /// initial watermarks.
    ///
    /// ```
    /// use tokio_transports::{ConnectOptions, WriteLimits};
    /// let opts = ConnectOptions::default().write_limits(WriteLimits::new(None, Some(100))?);
    /// assert_eq!((opts.write_limits.low(), opts.write_limits.high()), (100, 400));
    /// # Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn write_limits(mut self, write_limits: WriteLimits) -> Self {
        self.write_limits = write_limits;
        self
    }

    /// Set [`ssl`](ConnectOptions#structfield.ssl): make a TLS connection.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// use tokio_transports::{ClientTls, ConnectOptions};
    /// let config = ClientConfig::builder()
    ///     .with_root_certificates(RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let opts = ConnectOptions::default().ssl(ClientTls::new(Arc::new(config)));
    /// assert!(opts.ssl.is_some());
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ssl(mut self, tls: ClientTls) -> Self {
        self.ssl = Some(tls);
        self
    }
}

/// A connected TCP socket that [`create_connection_from_socket`] and
/// [`connect_accepted_socket`] take: a tokio or std `TcpStream`.
///
/// ```
/// use tokio_transports::IntoTcpStream;
/// fn takes<S: IntoTcpStream>(_: S) {}
/// # fn f(s: std::net::TcpStream) { takes(s) }
/// ```
pub trait IntoTcpStream {
    /// Convert into a tokio `TcpStream` registered with the current runtime.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() {
    /// use tokio_transports::IntoTcpStream;
    /// let std = std::net::TcpStream::connect("127.0.0.1:8888").unwrap();
    /// let tokio_stream = std.into_tokio_stream().unwrap();
    /// # }
    /// ```
    fn into_tokio_stream(self) -> io::Result<TcpStream>;
}

impl IntoTcpStream for TcpStream {
    fn into_tokio_stream(self) -> io::Result<TcpStream> {
        Ok(self)
    }
}

impl IntoTcpStream for std::net::TcpStream {
    fn into_tokio_stream(self) -> io::Result<TcpStream> {
        self.set_nonblocking(true)?;
        TcpStream::from_std(self)
    }
}

/// `sock` as a tokio stream, once it is known to be a stream socket (a
/// `TcpStream` can be made from any fd: asyncio checks `sock.type` here).
fn stream_socket(sock: impl IntoTcpStream) -> io::Result<TcpStream> {
    let stream = sock.into_tokio_stream()?;
    let sock = socket2::SockRef::from(&stream);
    let ty = sock.r#type()?;
    if ty != socket2::Type::STREAM {
        let domain = crate::extra::socket_domain(&sock)?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("A Stream Socket was expected, got {domain:?} {ty:?}"),
        ));
    }
    Ok(stream)
}

/// Open a TCP connection to `host:port` and drive it with the protocol that
/// `protocol_factory` makes (asyncio's `loop.create_connection`).
///
/// Every resolved address is tried in turn (or staggered, with
/// `happy_eyeballs_delay`); the factory is called only once a connection
/// succeeded; the function returns once `connection_made` has run.
///
/// # Errors
///
/// When every attempt fails, the single error, or one error listing all of
/// them (`Multiple exceptions: ...`, which has no OS error code, as in
/// asyncio). A failed `connect()` or `bind()` (of `local_addr`) keeps its
/// kind and names the address (`Connect call failed ('127.0.0.1', 8888):
/// connection refused`); the OS error is its `source()`, an
/// [`AddressError`] its payload, and [`raw_os_error`](crate::raw_os_error)
/// gives the code (`err.raw_os_error()` itself is `None`: an `io::Error`
/// cannot hold both a message and a code). Called outside a tokio runtime:
/// an error, not a panic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let t = tokio_transports::create_connection(|| (), "127.0.0.1", port, Default::default()).await?;
/// t.write("hello")?;
/// t.close();
/// # Ok(()) }
/// ```
pub async fn create_connection<F, P>(
    protocol_factory: F,
    host: &str,
    port: u16,
    options: ConnectOptions,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    current_runtime()?;
    // asyncio checks the TLS arguments before it connects.
    let tls = options.tls_start(Some(host))?;
    let connect = connect_any(host, port, &options);
    let stream = match options.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, connect).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {host}:{port} timed out after {limit:?}"),
            )
        })??,
        None => connect.await?,
    };
    let config = tcp_config(
        &stream,
        options.nodelay,
        options.write_limits,
        None,
        None,
        true,
    );
    start_client(stream, protocol_factory(), config, tls).await
}

/// Wrap an already connected TCP socket, std or tokio (asyncio's
/// `create_connection(sock=...)`, the reference's "connecting existing
/// sockets" example). Returns once `connection_made` has run; an error
/// outside a tokio runtime.
///
/// # Errors
///
/// A socket that is not a stream socket (a UDP socket's fd made into a
/// `TcpStream`): `InvalidInput`, "A Stream Socket was expected, got ..."
/// (asyncio's `ValueError`), before the factory is called; the socket,
/// given by value, is closed. Outside a runtime, and TLS settings that
/// cannot be used, likewise before the factory.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let sock = std::net::TcpStream::connect(listener.local_addr()?)?;
/// let t = tokio_transports::create_connection_from_socket(|| (), sock, Default::default()).await?;
/// assert_eq!(t.peername(), Some(listener.local_addr()?));
/// # Ok(()) }
/// ```
pub async fn create_connection_from_socket<F, P>(
    protocol_factory: F,
    sock: impl IntoTcpStream,
    options: ConnectOptions,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    current_runtime()?;
    let tls = options.tls_start(None)?;
    let stream = stream_socket(sock)?;
    let config = tcp_config(
        &stream,
        options.nodelay,
        options.write_limits,
        None,
        None,
        true,
    );
    start_client(stream, protocol_factory(), config, tls).await
}

/// Wrap a socket accepted outside this crate (asyncio's
/// `loop.connect_accepted_socket`). The same as
/// [`create_connection_from_socket`] for plain TCP; with `ssl`, it takes
/// the TLS server side. Without the `tls` feature, `ssl` is an
/// `Option<Infallible>`: only `None` can be passed, so code that passes
/// `None` builds with the feature on or off.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
/// let (accepted, _) = listener.accept().await?;
/// let t = tokio_transports::connect_accepted_socket(|| (), accepted, None).await?;
/// assert_eq!(t.peername(), Some(client.local_addr()?));
/// # Ok(()) }
/// ```
pub async fn connect_accepted_socket<F, P>(
    protocol_factory: F,
    sock: impl IntoTcpStream,
    #[cfg(feature = "tls")] ssl: Option<ServerTls>,
    #[cfg(not(feature = "tls"))] ssl: Option<std::convert::Infallible>,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    current_runtime()?;
    let Some(tls) = ssl else {
        return create_connection_from_socket(protocol_factory, sock, ConnectOptions::default())
            .await;
    };
    #[cfg(not(feature = "tls"))]
    match tls {}
    #[cfg(feature = "tls")]
    {
        tls.validate()?;
        let stream = stream_socket(sock)?;
        let config = tcp_config(&stream, true, WriteLimits::default(), None, None, true);
        let io = TlsIo::server(stream, &tls);
        let (transport, rx, driver) = prepare_stream(io, protocol_factory(), tls_config(config));
        tokio::spawn(driver);
        started(rx).await?;
        Ok(transport)
    }
}

/// A plain connection's settings turned into a TLS connection's: no
/// half-close, and the TLS watermarks unless others were asked for.
#[cfg(feature = "tls")]
pub(crate) fn tls_config(mut config: StreamConfig) -> StreamConfig {
    config.can_write_eof = false;
    if config.limits == WriteLimits::default() {
        config.limits = TLS_WRITE_LIMITS;
    }
    config
}

/// The settings of a transport over a connected TCP stream (the peer
/// address may be known already, as from `accept`).
pub(crate) fn tcp_config(
    stream: &TcpStream,
    nodelay: bool,
    limits: WriteLimits,
    peer: Option<SocketAddr>,
    on_finish: Option<OnFinish>,
    notify_started: bool,
) -> StreamConfig {
    if nodelay {
        // Best effort, as in asyncio: a socket that refuses it still works.
        let _ = stream.set_nodelay(true);
    }
    let peer = peer.or_else(|| stream.peer_addr().ok());
    let extra = Extra::new(
        peer.map(SocketAddress::Inet),
        stream.local_addr().ok().map(SocketAddress::Inet),
        Some(stream.as_raw_fd()),
    );
    StreamConfig {
        extra,
        limits,
        can_write_eof: true,
        on_finish,
        notify_started,
    }
}

async fn connect_any(host: &str, port: u16, options: &ConnectOptions) -> io::Result<TcpStream> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("getaddrinfo() returned empty list for {host}:{port}"),
        ));
    }
    if let Some(local) = options.local_addr {
        // Only addresses of the local address's family can work.
        addrs.retain(|a| a.is_ipv4() == local.is_ipv4());
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no address of {host} matches the family of local_addr {local}"),
            ));
        }
    }
    addrs = order_addresses(addrs, options);
    let result = match options.happy_eyeballs_delay {
        Some(delay) => staggered(addrs, delay, options.local_addr).await,
        None => {
            let mut errors = Vec::new();
            let mut found = None;
            for addr in addrs {
                match connect_one(addr, options.local_addr).await {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => errors.push(e),
                }
            }
            found.ok_or(errors)
        }
    };
    result.map_err(combine_errors)
}

/// RFC 8305 §4: `first_count` addresses of the first family, then alternate.
/// The order the addresses are tried in: the resolver's, or interleaved by
/// family when `interleave` is set (1 by default with happy eyeballs, as
/// asyncio; 0 keeps the resolver's order).
fn order_addresses(addrs: Vec<SocketAddr>, options: &ConnectOptions) -> Vec<SocketAddr> {
    let interleave = options
        .interleave
        .or(options.happy_eyeballs_delay.map(|_| 1));
    match interleave {
        Some(first_count) if first_count > 0 => interleave_families(addrs, first_count),
        _ => addrs,
    }
}

fn interleave_families(addrs: Vec<SocketAddr>, first_count: usize) -> Vec<SocketAddr> {
    let first_v4 = addrs[0].is_ipv4();
    let (mut first, mut second): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv4() == first_v4);
    let mut out = Vec::with_capacity(first.len() + second.len());
    let rest_first = first.split_off(first_count.min(first.len()));
    out.extend(first);
    let mut a = rest_first.into_iter();
    let mut b = std::mem::take(&mut second).into_iter();
    loop {
        match (b.next(), a.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

async fn staggered(
    addrs: Vec<SocketAddr>,
    delay: Duration,
    local: Option<SocketAddr>,
) -> Result<TcpStream, Vec<io::Error>> {
    let mut next = addrs.into_iter();
    let mut running = FuturesUnordered::new();
    let mut errors = Vec::new();
    loop {
        if running.is_empty() {
            match next.next() {
                Some(addr) => running.push(connect_one(addr, local)),
                None => return Err(errors),
            }
        }
        let timer = tokio::time::sleep(delay);
        tokio::select! {
            done = running.next() => match done {
                Some(Ok(stream)) => return Ok(stream),
                Some(Err(e)) => {
                    errors.push(e);
                    // A failure starts the next attempt at once.
                    if let Some(addr) = next.next() {
                        running.push(connect_one(addr, local));
                    }
                }
                None => {}
            },
            _ = timer => {
                if let Some(addr) = next.next() {
                    running.push(connect_one(addr, local));
                }
            }
        }
    }
}

async fn connect_one(addr: SocketAddr, local: Option<SocketAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = local {
        socket
            .bind(local)
            .map_err(|e| AddressError::bind(local, e))?;
    }
    socket
        .connect(addr)
        .await
        .map_err(|e| AddressError::connect(addr, e))
}

fn combine_errors(mut errors: Vec<io::Error>) -> io::Error {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    let first = errors[0].to_string();
    if errors.iter().all(|e| e.to_string() == first) {
        return errors.remove(0);
    }
    let kind = errors[0].kind();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    io::Error::new(kind, format!("Multiple exceptions: {}", text.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleave_alternates_families_after_the_first_count() {
        let addrs = vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("127.0.0.1:1"),
            a("127.0.0.2:1"),
        ];
        let out = interleave_families(addrs, 1);
        assert_eq!(
            out,
            vec![
                a("[::1]:1"),
                a("127.0.0.1:1"),
                a("[::2]:1"),
                a("127.0.0.2:1")
            ]
        );
    }

    #[test]
    fn interleave_zero_keeps_the_resolvers_order_and_happy_eyeballs_defaults_to_one() {
        let addrs = || {
            vec![
                a("[::1]:1"),
                a("[::2]:1"),
                a("127.0.0.1:1"),
                a("127.0.0.2:1"),
            ]
        };
        let delay = ConnectOptions::default().happy_eyeballs_delay(Duration::from_millis(250));
        assert_eq!(
            order_addresses(addrs(), &delay.clone().interleave(0)),
            addrs()
        );
        assert_eq!(
            order_addresses(addrs(), &ConnectOptions::default()),
            addrs()
        );
        assert_eq!(
            order_addresses(addrs(), &delay),
            interleave_families(addrs(), 1)
        );
        assert_eq!(
            order_addresses(addrs(), &ConnectOptions::default().interleave(2)),
            interleave_families(addrs(), 2)
        );
    }

    #[test]
    fn errors_with_the_same_text_collapse() {
        let e = combine_errors(vec![io::Error::other("x"), io::Error::other("x")]);
        assert_eq!(e.to_string(), "x");
        let e = combine_errors(vec![io::Error::other("x"), io::Error::other("y")]);
        assert_eq!(e.to_string(), "Multiple exceptions: x, y");
    }
}
