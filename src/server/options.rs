//! What [`create_server`](super::create_server) is asked for: its options
//! (asyncio's keyword arguments) and the forms a host argument may take.

#[cfg(doc)]
use super::{Server, create_server};
#[cfg(feature = "tls")]
use crate::ServerTls;
use crate::WriteLimits;

/// Options for [`create_server`] (asyncio's keyword arguments).
///
/// Start from [`ServerOptions::default()`] (asyncio's defaults) and chain
/// the setters, each named after its field; the fields stay public to read
/// or assign. The struct is `#[non_exhaustive]`, so options added later do
/// not break your code, and a struct literal cannot be written outside the
/// crate. Watermarks are a [`WriteLimits`], which is valid by construction.
///
/// ```
/// use tokio_transports::{ServerOptions, WriteLimits};
/// let opts = ServerOptions::default()
///     .backlog(1024)
///     .reuse_port(true)
///     .write_limits(WriteLimits::new(Some(1000), None)?);
/// assert!(opts.start_serving);
/// assert_eq!(opts.backlog, 1024);
/// # Ok::<(), tokio_transports::TransportError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// `listen()` backlog (asyncio: 100).
    pub backlog: u32,
    /// `SO_REUSEADDR` (asyncio: on, on POSIX).
    pub reuse_address: bool,
    /// `SO_REUSEPORT` (asyncio: off).
    pub reuse_port: bool,
    /// `SO_KEEPALIVE` on accepted sockets (asyncio 3.13's `keep_alive`).
    pub keep_alive: bool,
    /// Listen at once (asyncio: true). If false, the sockets are only bound
    /// until [`Server::start_serving`] or [`Server::serve_forever`].
    pub start_serving: bool,
    /// `TCP_NODELAY` on accepted sockets (asyncio: on).
    pub nodelay: bool,
    /// Initial write-buffer watermarks of accepted connections. With TLS,
    /// left at the default, the TLS defaults apply instead
    /// ([`WriteLimits::tls_default`]).
    pub write_limits: WriteLimits,
    /// TLS for every accepted connection (asyncio's `ssl=`, with the TLS
    /// timeouts): each runs its handshake before `connection_made`; one that
    /// fails is logged at debug level and its protocol hears nothing.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub ssl: Option<ServerTls>,
    /// Unix servers: remove the socket file at close if it is still the
    /// one the server bound (asyncio 3.13's `cleanup_socket`, default on).
    pub cleanup_socket: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            backlog: 100,
            reuse_address: true,
            reuse_port: false,
            keep_alive: false,
            start_serving: true,
            nodelay: true,
            write_limits: WriteLimits::default(),
            #[cfg(feature = "tls")]
            ssl: None,
            cleanup_socket: true,
        }
    }
}

impl ServerOptions {
    /// Set [`backlog`](ServerOptions#structfield.backlog), the `listen()`
    /// backlog.
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().backlog(1024);
    /// assert_eq!(opts.backlog, 1024);
    /// ```
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Set [`reuse_address`](ServerOptions#structfield.reuse_address)
    /// (`SO_REUSEADDR`).
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().reuse_address(false);
    /// assert!(!opts.reuse_address);
    /// ```
    pub fn reuse_address(mut self, reuse_address: bool) -> Self {
        self.reuse_address = reuse_address;
        self
    }

    /// Set [`reuse_port`](ServerOptions#structfield.reuse_port)
    /// (`SO_REUSEPORT`).
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().reuse_port(true);
    /// assert!(opts.reuse_port);
    /// ```
    pub fn reuse_port(mut self, reuse_port: bool) -> Self {
        self.reuse_port = reuse_port;
        self
    }

    /// Set [`keep_alive`](ServerOptions#structfield.keep_alive)
    /// (`SO_KEEPALIVE` on accepted sockets).
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().keep_alive(true);
    /// assert!(opts.keep_alive);
    /// ```
    pub fn keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Set [`start_serving`](ServerOptions#structfield.start_serving):
    /// `false` only binds, until [`Server::start_serving`].
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().start_serving(false);
    /// assert!(!opts.start_serving);
    /// ```
    pub fn start_serving(mut self, start_serving: bool) -> Self {
        self.start_serving = start_serving;
        self
    }

    /// Set [`nodelay`](ServerOptions#structfield.nodelay) (`TCP_NODELAY` on
    /// accepted sockets).
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().nodelay(false);
    /// assert!(!opts.nodelay);
    /// ```
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Set [`write_limits`](ServerOptions#structfield.write_limits), the
    /// initial watermarks of accepted connections.
    ///
    /// ```
    /// use tokio_transports::{ServerOptions, WriteLimits};
    /// let opts = ServerOptions::default().write_limits(WriteLimits::new(Some(1000), None)?);
    /// assert_eq!(opts.write_limits.high(), 1000);
    /// # Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn write_limits(mut self, write_limits: WriteLimits) -> Self {
        self.write_limits = write_limits;
        self
    }

    /// Set [`ssl`](ServerOptions#structfield.ssl): serve TLS.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn f(config: Arc<tokio_transports::rustls::ServerConfig>) {
    /// use tokio_transports::{ServerOptions, ServerTls};
    /// let opts = ServerOptions::default().ssl(ServerTls::new(config));
    /// assert!(opts.ssl.is_some());
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn ssl(mut self, tls: ServerTls) -> Self {
        self.ssl = Some(tls);
        self
    }

    /// Set [`cleanup_socket`](ServerOptions#structfield.cleanup_socket).
    ///
    /// ```
    /// let opts = tokio_transports::ServerOptions::default().cleanup_socket(false);
    /// assert!(!opts.cleanup_socket);
    /// ```
    pub fn cleanup_socket(mut self, cleanup_socket: bool) -> Self {
        self.cleanup_socket = cleanup_socket;
        self
    }
}

/// The host or hosts [`create_server`] binds: a `&str`/`String` (`""` for
/// every interface), several of them, or `None` for every interface.
///
/// ```
/// use tokio_transports::ServerHosts;
/// assert_eq!("127.0.0.1".into_hosts(), vec!["127.0.0.1".to_string()]);
/// assert_eq!(["127.0.0.1", "::1"].into_hosts().len(), 2);
/// assert_eq!(None::<&str>.into_hosts(), Vec::<String>::new());
/// ```
pub trait ServerHosts {
    /// The host names; empty means every interface.
    ///
    /// ```
    /// use tokio_transports::ServerHosts;
    /// assert!("".into_hosts().is_empty());
    /// ```
    fn into_hosts(self) -> Vec<String>;
}

impl ServerHosts for &str {
    fn into_hosts(self) -> Vec<String> {
        if self.is_empty() {
            Vec::new()
        } else {
            vec![self.to_string()]
        }
    }
}

impl ServerHosts for String {
    fn into_hosts(self) -> Vec<String> {
        self.as_str().into_hosts()
    }
}

impl ServerHosts for Option<&str> {
    fn into_hosts(self) -> Vec<String> {
        self.map(|h| h.into_hosts()).unwrap_or_default()
    }
}

impl ServerHosts for &[&str] {
    fn into_hosts(self) -> Vec<String> {
        self.iter().flat_map(|h| h.into_hosts()).collect()
    }
}

impl<const N: usize> ServerHosts for [&str; N] {
    fn into_hosts(self) -> Vec<String> {
        self.as_slice().into_hosts()
    }
}

impl ServerHosts for Vec<String> {
    fn into_hosts(self) -> Vec<String> {
        self.into_iter().filter(|h| !h.is_empty()).collect()
    }
}
