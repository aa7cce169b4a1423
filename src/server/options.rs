//! What [`create_server`](super::create_server) is asked for: its options
//! (asyncio's keyword arguments) and the forms a host argument may take.

#[cfg(doc)]
use super::{Server, create_server};
use crate::WriteLimits;

/// Options for [`create_server`] (asyncio's keyword arguments).
///
/// ```
/// use tokio_transports::ServerOptions;
/// let opts = ServerOptions { backlog: 1024, reuse_port: true, ..ServerOptions::default() };
/// assert!(opts.start_serving);
/// ```
#[derive(Debug, Clone)]
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
    /// Initial write-buffer watermarks of accepted connections.
    pub write_limits: WriteLimits,
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
        }
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
