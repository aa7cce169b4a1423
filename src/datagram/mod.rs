//! Datagram transports (UDP and Unix datagram sockets): asyncio's
//! `create_datagram_endpoint`, `DatagramTransport` and `DatagramProtocol`.
//!
//! * this file: the creation functions ([`create_datagram_endpoint`],
//!   [`create_datagram_endpoint_from_socket`]) and their options, with
//!   CPython's checks and resolution rules.
//! * [`protocol`]: the [`DatagramProtocol`] callbacks and their contract.
//! * [`state`]: the sans-IO state machine (send queue with its `len + 8`
//!   accounting, watermarks, receive and close state).
//! * [`handle`]: the cloneable [`DatagramTransport`] and the commands it
//!   sends; [`DatagramError`].
//! * [`driver`]: the tokio task that owns the socket.
//! * [`socket`]: the UDP and Unix sockets behind one trait, the public
//!   [`DatagramSocket`] / [`IntoDatagramSocket`], and the per-thread
//!   receive buffer.
//!
//! The design is the stream transport's: a handle that talks to a task
//! through an [`Inbox`](crate::inbox::Inbox), or, from inside the endpoint's
//! own callbacks, through the thread-local command list (no channel hop);
//! the write buffer size is an atomic, exact from any thread. Two things are
//! datagram-specific: received datagrams are delivered in batches that run
//! in one callback scope (the flags the handle sets end a batch early, so
//! `pause_reading`/`close` from a callback stop delivery at once), and
//! `sendto` from a callback tries the socket itself while nothing is queued,
//! as asyncio's does, so an echo costs no command at all.

pub(crate) mod driver;
pub(crate) mod handle;
pub(crate) mod protocol;
pub(crate) mod socket;
pub(crate) mod state;

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::channel::oneshot;
use socket2::{Domain, Protocol, SockAddr, Type};
use tokio::net::{UdpSocket, UnixDatagram};

pub use handle::{DatagramError, DatagramTransport};
pub use protocol::DatagramProtocol;
pub use socket::{DatagramSocket, IntoDatagramSocket};

use crate::WriteLimits;
use crate::error::{AddressError, current_runtime};
use crate::extra::{Extra, SocketAddress};
use driver::Driver;
use handle::{Family, Shared, SharedConfig};
use state::DatagramState;

/// An address for [`DatagramOptions::local_addr`] or
/// [`DatagramOptions::remote_addr`]: asyncio's `(host, port)` tuple, an IP
/// socket address, or a Unix socket path.
///
/// ```
/// use std::path::Path;
/// use tokio_transports::DatagramAddr;
/// let a: DatagramAddr = ("localhost", 9999).into();
/// let b: DatagramAddr = "127.0.0.1:9999".parse::<std::net::SocketAddr>().unwrap().into();
/// let c: DatagramAddr = Path::new("/tmp/echo.sock").into();
/// assert_eq!(a.to_string(), "('localhost', 9999)");
/// assert_eq!(b.to_string(), "('127.0.0.1', 9999)");
/// assert_eq!(c.to_string(), "'/tmp/echo.sock'");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramAddr {
    /// A host name or IP literal and a port, resolved as asyncio does
    /// (`getaddrinfo`, filtered by [`DatagramOptions::family`]).
    Host(String, u16),
    /// An IP address and port, used as is.
    Inet(SocketAddr),
    /// A Unix datagram socket path.
    Unix(PathBuf),
}

impl fmt::Display for DatagramAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramAddr::Host(host, port) => write!(f, "('{host}', {port})"),
            DatagramAddr::Inet(a) => fmt::Display::fmt(&SocketAddress::Inet(*a), f),
            DatagramAddr::Unix(p) => write!(f, "'{}'", p.display()),
        }
    }
}

impl From<SocketAddr> for DatagramAddr {
    fn from(a: SocketAddr) -> Self {
        DatagramAddr::Inet(a)
    }
}

impl From<(IpAddr, u16)> for DatagramAddr {
    fn from((ip, port): (IpAddr, u16)) -> Self {
        DatagramAddr::Inet(SocketAddr::new(ip, port))
    }
}

impl From<(&str, u16)> for DatagramAddr {
    fn from((host, port): (&str, u16)) -> Self {
        DatagramAddr::Host(host.to_string(), port)
    }
}

impl From<(String, u16)> for DatagramAddr {
    fn from((host, port): (String, u16)) -> Self {
        DatagramAddr::Host(host, port)
    }
}

impl From<&Path> for DatagramAddr {
    fn from(p: &Path) -> Self {
        DatagramAddr::Unix(p.to_path_buf())
    }
}

impl From<PathBuf> for DatagramAddr {
    fn from(p: PathBuf) -> Self {
        DatagramAddr::Unix(p)
    }
}

/// The address family of [`DatagramOptions::family`] (asyncio's `family=`).
///
/// ```
/// use tokio_transports::AddressFamily;
/// assert_eq!(AddressFamily::default(), AddressFamily::Unspec);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// Any (asyncio's `0`): taken from the addresses.
    #[default]
    Unspec,
    /// IPv4 only (`AF_INET`).
    Inet,
    /// IPv6 only (`AF_INET6`).
    Inet6,
    /// Unix datagram sockets (`AF_UNIX`): addresses are paths.
    Unix,
}

/// Options for [`create_datagram_endpoint`] (asyncio's keyword arguments;
/// `sock=` is [`create_datagram_endpoint_from_socket`], so a socket plus
/// addresses cannot be asked for).
///
/// Start from [`DatagramOptions::default()`] and chain the setters, each
/// named after its field; the fields stay public to read or assign (assign
/// `None` to clear an address). The struct is `#[non_exhaustive]`, so
/// options added later do not break your code, and a struct literal cannot
/// be written outside the crate.
///
/// ```
/// use tokio_transports::{AddressFamily, DatagramOptions};
/// let opts = DatagramOptions::default()
///     .local_addr(("0.0.0.0", 9999))
///     .family(AddressFamily::Inet)
///     .reuse_port(true);
/// assert!(opts.remote_addr.is_none());
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DatagramOptions {
    /// Bind the socket to this address (port 0: an ephemeral port). A stale
    /// Unix socket file at the path is removed first, as asyncio does.
    pub local_addr: Option<DatagramAddr>,
    /// Connect the socket to this address: it becomes the default target of
    /// `sendto`, the only one allowed, and the only sender datagrams are
    /// received from. With `allow_broadcast` the socket is not connected, but
    /// the address is still the default (and only) target.
    pub remote_addr: Option<DatagramAddr>,
    /// Restrict resolution to one family; required when neither address is
    /// given (asyncio: `ValueError('unexpected address family')`).
    pub family: AddressFamily,
    /// Set `SO_REUSEPORT` before binding, so several endpoints can share the
    /// local address.
    pub reuse_port: bool,
    /// Set `SO_BROADCAST`, and do not connect to `remote_addr`.
    pub allow_broadcast: bool,
    /// Initial write-buffer watermarks.
    pub write_limits: WriteLimits,
}

impl DatagramOptions {
    /// Set [`local_addr`](DatagramOptions#structfield.local_addr): a
    /// `(host, port)` pair, a `SocketAddr`, or a Unix socket path.
    ///
    /// ```
    /// use tokio_transports::{DatagramAddr, DatagramOptions};
    /// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// assert_eq!(opts.local_addr, Some(DatagramAddr::Host("127.0.0.1".into(), 0)));
    /// ```
    pub fn local_addr(mut self, addr: impl Into<DatagramAddr>) -> Self {
        self.local_addr = Some(addr.into());
        self
    }

    /// Set [`remote_addr`](DatagramOptions#structfield.remote_addr): the
    /// socket is connected to it (unless `allow_broadcast`).
    ///
    /// ```
    /// use std::path::Path;
    /// use tokio_transports::{DatagramAddr, DatagramOptions};
    /// let opts = DatagramOptions::default().remote_addr(Path::new("/tmp/echo.sock"));
    /// assert_eq!(opts.remote_addr, Some(DatagramAddr::Unix("/tmp/echo.sock".into())));
    /// ```
    pub fn remote_addr(mut self, addr: impl Into<DatagramAddr>) -> Self {
        self.remote_addr = Some(addr.into());
        self
    }

    /// Set [`family`](DatagramOptions#structfield.family).
    ///
    /// ```
    /// use tokio_transports::{AddressFamily, DatagramOptions};
    /// let opts = DatagramOptions::default().family(AddressFamily::Inet6);
    /// assert_eq!(opts.family, AddressFamily::Inet6);
    /// ```
    pub fn family(mut self, family: AddressFamily) -> Self {
        self.family = family;
        self
    }

    /// Set [`reuse_port`](DatagramOptions#structfield.reuse_port)
    /// (`SO_REUSEPORT`).
    ///
    /// ```
    /// let opts = tokio_transports::DatagramOptions::default().reuse_port(true);
    /// assert!(opts.reuse_port);
    /// ```
    pub fn reuse_port(mut self, reuse_port: bool) -> Self {
        self.reuse_port = reuse_port;
        self
    }

    /// Set [`allow_broadcast`](DatagramOptions#structfield.allow_broadcast)
    /// (`SO_BROADCAST`, and `remote_addr` is not connected).
    ///
    /// ```
    /// let opts = tokio_transports::DatagramOptions::default().allow_broadcast(true);
    /// assert!(opts.allow_broadcast);
    /// ```
    pub fn allow_broadcast(mut self, allow_broadcast: bool) -> Self {
        self.allow_broadcast = allow_broadcast;
        self
    }

    /// Set [`write_limits`](DatagramOptions#structfield.write_limits), the
    /// initial watermarks.
    ///
    /// ```
    /// use tokio_transports::{DatagramOptions, WriteLimits};
    /// let opts = DatagramOptions::default().write_limits(WriteLimits::new(Some(4096), None)?);
    /// assert_eq!(opts.write_limits.low(), 1024);
    /// # Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn write_limits(mut self, write_limits: WriteLimits) -> Self {
        self.write_limits = write_limits;
        self
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Create a datagram endpoint driven by the protocol that
/// `protocol_factory` makes (asyncio's `loop.create_datagram_endpoint`),
/// on the current tokio runtime. Returns once `connection_made` has run.
///
/// One protocol instance serves every peer, as in the reference's UDP echo
/// server. Host names are resolved and tried family by family as CPython
/// does (each family needs an address for every address given); the first
/// error is returned if none works. The checks are CPython's: no address
/// and no `family` → `unexpected address family`; a Unix path with an IP
/// family, or addresses of two families → an `InvalidInput` error; no family
/// in common → `can not get address information`. A failed `bind()` keeps
/// the OS error's kind and names the address; the OS error is its
/// `source()` and [`raw_os_error`](crate::raw_os_error) gives the code (see
/// [`AddressError`](crate::AddressError)). Called outside a tokio runtime: an
/// error, not a panic.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::Bytes;
/// use tokio_transports::*;
///
/// #[derive(Default)]
/// struct Echo(Option<DatagramTransport>);
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, t: &DatagramTransport) { self.0 = Some(t.clone()); }
///     fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
///         let _ = self.0.as_ref().unwrap().sendto(data, Some(addr));
///     }
/// }
///
/// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
/// let server = create_datagram_endpoint(Echo::default, opts).await?;
/// let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
/// client.send_to(b"Hello World!", server.sockname().unwrap()).await?;
/// let mut buf = [0u8; 64];
/// let n = client.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"Hello World!");
///
/// let err = create_datagram_endpoint(|| (), DatagramOptions::default()).await.unwrap_err();
/// assert_eq!(err.to_string(), "unexpected address family");
/// # Ok(()) }
/// ```
pub async fn create_datagram_endpoint<F, P>(
    protocol_factory: F,
    options: DatagramOptions,
) -> io::Result<DatagramTransport>
where
    F: FnOnce() -> P,
    P: DatagramProtocol,
{
    current_runtime()?;
    let (sock, remote) = open(&options).await?;
    start(
        sock,
        remote,
        options.write_limits,
        Box::new(protocol_factory()),
    )
    .await
}

/// Drive an existing datagram socket (asyncio's `create_datagram_endpoint(sock=...)`):
/// a std or tokio `UdpSocket` or `UnixDatagram` (bound, connected, or one
/// end of `UnixDatagram::pair()`), or a `socket2::Socket` of type
/// `SOCK_DGRAM` (anything else: `A datagram socket was expected`). A
/// connected socket's peer becomes the default target of `sendto`. Returns
/// once `connection_made` has run; an error (not a panic) outside a tokio
/// runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{create_datagram_endpoint_from_socket, SocketAddress};
/// let (a, b) = tokio::net::UnixDatagram::pair()?;
/// let t = create_datagram_endpoint_from_socket(|| (), a).await?;
/// t.sendto("over a socketpair", None)?;
/// let mut buf = [0u8; 64];
/// let n = b.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"over a socketpair");
/// assert_eq!(t.peer_address(), Some(&SocketAddress::Unix(None)));
/// # Ok(()) }
/// ```
pub async fn create_datagram_endpoint_from_socket<F, P>(
    protocol_factory: F,
    sock: impl IntoDatagramSocket,
) -> io::Result<DatagramTransport>
where
    F: FnOnce() -> P,
    P: DatagramProtocol,
{
    current_runtime()?;
    let sock = sock.into_datagram_socket()?;
    let remote = match &sock {
        DatagramSocket::Udp(s) => s.peer_addr().ok().map(SocketAddress::Inet),
        DatagramSocket::Unix(s) => s.peer_addr().ok().map(SocketAddress::from),
    };
    let remote = remote.map(|r| (r, true));
    start(
        sock,
        remote,
        WriteLimits::default(),
        Box::new(protocol_factory()),
    )
    .await
}

/// The remote address and whether the socket is connected to it.
type Remote = Option<(SocketAddress, bool)>;

/// Check the options, resolve, and make the socket (CPython's
/// `create_datagram_endpoint` without `sock=`).
async fn open(o: &DatagramOptions) -> io::Result<(DatagramSocket, Remote)> {
    let addrs = [&o.local_addr, &o.remote_addr];
    let has_unix = addrs
        .iter()
        .any(|a| matches!(a, Some(DatagramAddr::Unix(_))));
    let has_inet = addrs
        .iter()
        .any(|a| matches!(a, Some(DatagramAddr::Host(..) | DatagramAddr::Inet(_))));
    if has_unix && has_inet {
        return Err(invalid(
            "local_addr and remote_addr must be of the same family (a Unix path and an IP address were given)",
        ));
    }
    match o.family {
        AddressFamily::Unix if has_inet => {
            return Err(invalid(
                "family Unix takes Unix socket paths, not IP addresses",
            ));
        }
        AddressFamily::Inet | AddressFamily::Inet6 if has_unix => {
            return Err(invalid(format!(
                "a Unix socket path needs family Unix, not {:?}",
                o.family
            )));
        }
        AddressFamily::Unspec if !has_unix && !has_inet => {
            return Err(invalid("unexpected address family"));
        }
        _ => {}
    }
    if has_unix || o.family == AddressFamily::Unix {
        let path = |a: &Option<DatagramAddr>| match a {
            Some(DatagramAddr::Unix(p)) => Some(p.clone()),
            _ => None,
        };
        return open_unix(path(&o.local_addr), path(&o.remote_addr), o);
    }
    let local = resolve(o.local_addr.as_ref(), o.family).await?;
    let remote = resolve(o.remote_addr.as_ref(), o.family).await?;
    let pairs = pair_by_family(
        o.local_addr.is_some().then_some(&local[..]),
        o.remote_addr.is_some().then_some(&remote[..]),
        o.family,
    );
    if pairs.is_empty() {
        return Err(invalid("can not get address information"));
    }
    let mut first_error = None;
    for (domain, local, remote) in pairs {
        match open_udp(domain, local, remote, o) {
            Ok(found) => return Ok(found),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| invalid("can not get address information")))
}

async fn resolve(
    addr: Option<&DatagramAddr>,
    family: AddressFamily,
) -> io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = match addr {
        None | Some(DatagramAddr::Unix(_)) => return Ok(Vec::new()),
        Some(DatagramAddr::Inet(a)) => vec![*a],
        Some(DatagramAddr::Host(host, port)) => tokio::net::lookup_host((host.as_str(), *port))
            .await?
            .collect(),
    };
    let found: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match family {
            AddressFamily::Inet => a.is_ipv4(),
            AddressFamily::Inet6 => a.is_ipv6(),
            _ => true,
        })
        .collect();
    if found.is_empty()
        && let Some(addr) = addr
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("getaddrinfo() returned empty list for {addr} (family {family:?})"),
        ));
    }
    Ok(found)
}

/// CPython's pairing: one candidate per family, in the order the families
/// first appear, each with the first local and the first remote address of
/// that family; a family lacking an address that was asked for is skipped.
/// With no address at all, the one family given.
fn pair_by_family(
    local: Option<&[SocketAddr]>,
    remote: Option<&[SocketAddr]>,
    family: AddressFamily,
) -> Vec<(Domain, Option<SocketAddr>, Option<SocketAddr>)> {
    if local.is_none() && remote.is_none() {
        return match family {
            AddressFamily::Inet => vec![(Domain::IPV4, None, None)],
            AddressFamily::Inet6 => vec![(Domain::IPV6, None, None)],
            _ => Vec::new(),
        };
    }
    let mut order: Vec<bool> = Vec::new();
    for a in local.into_iter().chain(remote).flatten() {
        if !order.contains(&a.is_ipv4()) {
            order.push(a.is_ipv4());
        }
    }
    order
        .into_iter()
        .filter_map(|v4| {
            let pick = |list: Option<&[SocketAddr]>| match list {
                None => Some(None),
                Some(list) => list.iter().find(|a| a.is_ipv4() == v4).map(|a| Some(*a)),
            };
            let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
            Some((domain, pick(local)?, pick(remote)?))
        })
        .collect()
}

fn new_socket(
    domain: Domain,
    protocol: Option<Protocol>,
    o: &DatagramOptions,
) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::new(domain, Type::DGRAM, protocol)?;
    if o.reuse_port {
        s.set_reuse_port(true)?;
    }
    if o.allow_broadcast {
        s.set_broadcast(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn open_udp(
    domain: Domain,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    o: &DatagramOptions,
) -> io::Result<(DatagramSocket, Remote)> {
    let s = new_socket(domain, Some(Protocol::UDP), o)?;
    if let Some(local) = local {
        s.bind(&local.into())
            .map_err(|e| AddressError::bind(local, e))?;
    }
    let connect = !o.allow_broadcast;
    if let (Some(remote), true) = (remote, connect) {
        s.connect(&remote.into())?;
    }
    let sock = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
    Ok((
        DatagramSocket::Udp(sock),
        remote.map(|r| (SocketAddress::Inet(r), connect)),
    ))
}

fn open_unix(
    local: Option<PathBuf>,
    remote: Option<PathBuf>,
    o: &DatagramOptions,
) -> io::Result<(DatagramSocket, Remote)> {
    let s = new_socket(Domain::UNIX, None, o)?;
    if let Some(local) = &local {
        remove_stale_socket(local);
        s.bind(&SockAddr::unix(local)?)
            .map_err(|e| AddressError::bind(SocketAddress::Unix(Some(local.clone())), e))?;
    }
    let connect = !o.allow_broadcast;
    if let (Some(remote), true) = (&remote, connect) {
        s.connect(&SockAddr::unix(remote)?)?;
    }
    let sock = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(
        std::os::fd::OwnedFd::from(s),
    ))?;
    Ok((
        DatagramSocket::Unix(sock),
        remote.map(|r| (SocketAddress::Unix(Some(r)), connect)),
    ))
}

/// asyncio removes a socket file left at the path before binding (not an
/// abstract name, not a file of another kind).
fn remove_stale_socket(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    if path.as_os_str().as_bytes().first() == Some(&0) {
        return;
    }
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::error!("Unable to remove stale UNIX socket path {path:?}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!("Unable to check stale UNIX socket path {path:?}: {e}"),
    }
}

/// Spawn the endpoint's task and wait for `connection_made`.
async fn start(
    sock: DatagramSocket,
    remote: Remote,
    limits: WriteLimits,
    protocol: Box<dyn DatagramProtocol>,
) -> io::Result<DatagramTransport> {
    let (transport, started) = match sock {
        DatagramSocket::Udp(s) => {
            let local = s.local_addr().ok().map(SocketAddress::Inet);
            spawn(s, Family::Inet, local, remote, limits, protocol)
        }
        DatagramSocket::Unix(s) => {
            let local = s.local_addr().ok().map(SocketAddress::from);
            spawn(s, Family::Unix, local, remote, limits, protocol)
        }
    };
    // Cancel safety: a caller that gives up (drops this future) before it
    // returned leaves no endpoint running that it never got; the endpoint
    // closes (its protocol gets `connection_lost` after `connection_made`,
    // as asyncio's `transport.close()` on a cancelled creation).
    struct CloseOnDrop(Option<DatagramTransport>);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            if let Some(t) = self.0.take() {
                t.close();
            }
        }
    }
    let mut guard = CloseOnDrop(Some(transport.clone()));
    let result = started.await;
    guard.0 = None;
    result.map_err(|_| io::Error::other("the endpoint's task ended before connection_made"))?;
    Ok(transport)
}

fn spawn<S: socket::Socket + AsFd>(
    sock: S,
    family: Family,
    local: Option<SocketAddress>,
    remote: Remote,
    limits: WriteLimits,
    protocol: Box<dyn DatagramProtocol>,
) -> (DatagramTransport, oneshot::Receiver<()>) {
    let sock = Arc::new(sock);
    let (remote, connected) = match remote {
        Some((r, connected)) => (Some(r), connected),
        None => (None, false),
    };
    let peer = if connected { remote.clone() } else { None };
    let fd = sock.as_fd().as_raw_fd();
    let shared = Shared::new(SharedConfig {
        extra: Extra::new(peer, local, Some(fd)),
        limits,
        family,
        remote,
        connected,
        socket: Some(sock.clone()),
    });
    let transport = DatagramTransport { shared };
    let (started_tx, started_rx) = oneshot::channel();
    tokio::spawn(Driver::new(
        sock,
        transport.clone(),
        DatagramState::new(limits),
        protocol,
        started_tx,
    ));
    (transport, started_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pairs_follow_the_order_families_first_appear() {
        let local = [a("[::1]:1"), a("127.0.0.1:1")];
        let remote = [a("127.0.0.1:2"), a("[::1]:2"), a("[::2]:2")];
        let pairs = pair_by_family(Some(&local), Some(&remote), AddressFamily::Unspec);
        assert_eq!(
            pairs,
            vec![
                (Domain::IPV6, Some(a("[::1]:1")), Some(a("[::1]:2"))),
                (Domain::IPV4, Some(a("127.0.0.1:1")), Some(a("127.0.0.1:2"))),
            ]
        );
    }

    #[test]
    fn a_family_missing_one_address_is_skipped() {
        let local = [a("127.0.0.1:1")];
        let remote = [a("[::1]:2")];
        assert!(pair_by_family(Some(&local), Some(&remote), AddressFamily::Unspec).is_empty());
        let only_remote = pair_by_family(None, Some(&remote), AddressFamily::Unspec);
        assert_eq!(only_remote, vec![(Domain::IPV6, None, Some(a("[::1]:2")))]);
    }

    #[test]
    fn no_address_needs_a_family() {
        assert!(pair_by_family(None, None, AddressFamily::Unspec).is_empty());
        assert_eq!(
            pair_by_family(None, None, AddressFamily::Inet6),
            vec![(Domain::IPV6, None, None)]
        );
    }
}
