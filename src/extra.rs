//! Extra information about a transport (asyncio's `get_extra_info`): the
//! addresses captured when the transport was made, and the socket itself.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Mutex;

#[cfg(feature = "tls")]
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
    /// Formats like Python's `str()` of the address: the tuple
    /// `('127.0.0.1', 8888)`, `('::1', 8888, 0, 0)`, or the Unix path as it
    /// is (empty when unnamed, as Python prints `''`).
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
            SocketAddress::Unix(Some(p)) => write!(f, "{}", p.display()),
            SocketAddress::Unix(None) => Ok(()),
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
        let std: std::os::unix::net::SocketAddr = a.into();
        std.into()
    }
}

impl From<std::os::unix::net::SocketAddr> for SocketAddress {
    /// A path, a Linux abstract name (as a path whose first byte is NUL, as
    /// Python shows it), or `None` for an unnamed socket.
    fn from(a: std::os::unix::net::SocketAddr) -> Self {
        if let Some(path) = a.as_pathname() {
            return SocketAddress::Unix(Some(PathBuf::from(path)));
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            use std::os::unix::ffi::OsStrExt;
            if let Some(name) = a.as_abstract_name() {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name);
                return SocketAddress::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
                    &bytes,
                ))));
            }
        }
        SocketAddress::Unix(None)
    }
}

/// The credentials of a Unix socket's peer when it connected
/// (`SO_PEERCRED`), from [`Transport::peer_credentials`](crate::Transport::peer_credentials).
///
/// ```
/// let c = tokio_transports::PeerCredentials { pid: Some(1), uid: 0, gid: 0 };
/// assert_eq!(c.uid, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id (`None` where the platform does not say).
    pub pid: Option<i32>,
    /// The peer's user id.
    pub uid: u32,
    /// The peer's group id.
    pub gid: u32,
}

impl From<tokio::net::unix::UCred> for PeerCredentials {
    fn from(c: tokio::net::unix::UCred) -> Self {
        PeerCredentials {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        }
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
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    PeerCertificates(Vec<rustls::pki_types::CertificateDer<'static>>),
    /// `"cipher"`: the TLS cipher suite's name, as rustls spells it.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    Cipher(String),
    /// `"ssl_object"`: everything the TLS handshake negotiated.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    Tls(Box<TlsInfo>),
    /// `"peercred"`: a Unix socket peer's credentials (`SO_PEERCRED`).
    PeerCredentials(PeerCredentials),
    /// `"pipe"`: a pipe transport's file descriptor, valid while the
    /// transport is not closed.
    Pipe(RawFd),
}

impl std::fmt::Display for ExtraInfo {
    /// Formats like Python prints the value: an address as its tuple, a
    /// socket as `<socket fd=N>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtraInfo::Address(a) => a.fmt(f),
            ExtraInfo::Socket(fd) => write!(f, "<socket fd={fd}>"),
            #[cfg(feature = "tls")]
            ExtraInfo::PeerCertificates(chain) => write!(f, "<{} certificate(s)>", chain.len()),
            #[cfg(feature = "tls")]
            ExtraInfo::Cipher(name) => f.write_str(name),
            #[cfg(feature = "tls")]
            ExtraInfo::Tls(info) => write!(f, "{info:?}"),
            ExtraInfo::Pipe(fd) => write!(f, "<pipe fd={fd}>"),
            ExtraInfo::PeerCredentials(c) => {
                write!(f, "(pid={:?}, uid={}, gid={})", c.pid, c.uid, c.gid)
            }
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
    #[cfg(feature = "tls")]
    pub(crate) tls: Mutex<Option<TlsInfo>>,
    /// A Unix stream's peer credentials.
    pub(crate) peercred: Option<PeerCredentials>,
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
            #[cfg(feature = "tls")]
            tls: Mutex::new(None),
            peercred: None,
        }
    }

    /// [`Extra::new`] for a Unix stream: its names and its peer's
    /// credentials.
    pub(crate) fn unix(stream: &tokio::net::UnixStream) -> Self {
        use std::os::fd::AsRawFd;
        let mut extra = Extra::new(
            stream.peer_addr().ok().map(SocketAddress::from),
            stream.local_addr().ok().map(SocketAddress::from),
            Some(stream.as_raw_fd()),
        );
        extra.peercred = stream.peer_cred().ok().map(PeerCredentials::from);
        extra
    }

    /// The outermost TLS session's (TLS inside TLS replaces the inner's).
    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&self, info: TlsInfo) {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    #[cfg(feature = "tls")]
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

/// A socket's address family: `SO_DOMAIN` where socket2 has it (Linux,
/// Android, Fuchsia), the family of its name elsewhere (macOS, the BSDs:
/// `getsockname` fills in the family even for an unbound socket).
pub(crate) fn socket_domain(sock: &socket2::Socket) -> std::io::Result<socket2::Domain> {
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    return sock.domain();
    #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
    Ok(sock.local_addr()?.domain())
}
