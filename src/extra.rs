//! Extra information about a transport (asyncio's `get_extra_info`): the
//! addresses captured when the transport was made, and the socket itself.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::TlsInfo;

/// A socket address of any family the crate speaks.
///
/// ```
/// use tokio_transports::SocketAddress;
/// let a = SocketAddress::Inet("127.0.0.1:8888".parse().unwrap());
/// assert_eq!(a.as_inet().unwrap().port(), 8888);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// An IPv4 or IPv6 address.
    Inet(SocketAddr),
    /// A Unix-domain address: a path, or `None` for an unnamed socket
    /// (one end of a socketpair, or an unbound client).
    Unix(Option<PathBuf>),
}

impl SocketAddress {
    /// The IP address and port, if this is an Internet address.
    ///
    /// ```
    /// use tokio_transports::SocketAddress;
    /// assert!(SocketAddress::Unix(None).as_inet().is_none());
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SocketAddress::Inet(a) => Some(*a),
            SocketAddress::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for SocketAddress {
    /// Formats like Python prints the address tuple: `('127.0.0.1', 8888)`,
    /// `('::1', 8888, 0, 0)`, or the Unix path (`''` when unnamed).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddress::Inet(SocketAddr::V4(a)) => write!(f, "('{}', {})", a.ip(), a.port()),
            SocketAddress::Inet(SocketAddr::V6(a)) => write!(
                f,
                "('{}', {}, {}, {})",
                a.ip(),
                a.port(),
                a.flowinfo(),
                a.scope_id()
            ),
            SocketAddress::Unix(Some(p)) => write!(f, "'{}'", p.display()),
            SocketAddress::Unix(None) => f.write_str("''"),
        }
    }
}

impl From<SocketAddr> for SocketAddress {
    fn from(a: SocketAddr) -> Self {
        SocketAddress::Inet(a)
    }
}

impl From<tokio::net::unix::SocketAddr> for SocketAddress {
    fn from(a: tokio::net::unix::SocketAddr) -> Self {
        SocketAddress::Unix(a.as_pathname().map(PathBuf::from))
    }
}

impl From<std::os::unix::net::SocketAddr> for SocketAddress {
    fn from(a: std::os::unix::net::SocketAddr) -> Self {
        SocketAddress::Unix(a.as_pathname().map(PathBuf::from))
    }
}

/// One value of [`Transport::get_extra_info`](crate::Transport::get_extra_info).
///
/// ```
/// use tokio_transports::{ExtraInfo, SocketAddress};
/// let v = ExtraInfo::Address(SocketAddress::Unix(None));
/// assert!(matches!(v, ExtraInfo::Address(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtraInfo {
    /// `"peername"` or `"sockname"`.
    Address(SocketAddress),
    /// `"socket"`: the raw file descriptor, valid while the transport is not
    /// closed. Prefer [`Transport::with_socket`](crate::Transport::with_socket),
    /// which cannot race with the close.
    Socket(RawFd),
    /// `"peercert"`: the TLS peer's certificate chain (DER), its own first.
    PeerCertificates(Vec<rustls::pki_types::CertificateDer<'static>>),
    /// `"cipher"`: the TLS cipher suite's name, as rustls spells it.
    Cipher(String),
    /// `"ssl_object"`: everything the TLS handshake negotiated.
    Tls(Box<TlsInfo>),
}

impl std::fmt::Display for ExtraInfo {
    /// Formats like Python prints the value: an address as its tuple, a
    /// socket as `<socket fd=N>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtraInfo::Address(a) => a.fmt(f),
            ExtraInfo::Socket(fd) => write!(f, "<socket fd={fd}>"),
            ExtraInfo::PeerCertificates(chain) => write!(f, "<{} certificate(s)>", chain.len()),
            ExtraInfo::Cipher(name) => f.write_str(name),
            ExtraInfo::Tls(info) => write!(f, "{info:?}"),
        }
    }
}

/// What a transport knows about its I/O, captured at construction.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    pub(crate) peername: Option<SocketAddress>,
    pub(crate) sockname: Option<SocketAddress>,
    /// The socket's fd while the I/O is open; the driver sets it to `None`
    /// (under the lock) before it closes the I/O.
    pub(crate) fd: Mutex<Option<RawFd>>,
    /// TLS: what the handshake negotiated, once it is done.
    pub(crate) tls: Mutex<Option<TlsInfo>>,
}

impl Extra {
    pub(crate) fn new(
        peername: Option<SocketAddress>,
        sockname: Option<SocketAddress>,
        fd: Option<RawFd>,
    ) -> Self {
        Extra {
            peername,
            sockname,
            fd: Mutex::new(fd),
            tls: Mutex::new(None),
        }
    }

    /// The outermost TLS session's (TLS inside TLS replaces the inner's).
    pub(crate) fn set_tls(&self, info: TlsInfo) {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    pub(crate) fn tls(&self) -> Option<TlsInfo> {
        self.tls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn peer_inet(&self) -> Option<SocketAddr> {
        self.peername.as_ref().and_then(SocketAddress::as_inet)
    }

    pub(crate) fn sock_inet(&self) -> Option<SocketAddr> {
        self.sockname.as_ref().and_then(SocketAddress::as_inet)
    }

    pub(crate) fn clear_fd(&self) {
        *self.fd.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
