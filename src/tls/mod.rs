//! TLS (asyncio's `ssl=` arguments), on rustls through tokio-rustls.
//!
//! * This file: the public configuration ([`ClientTls`], [`ServerTls`]),
//!   what a TLS transport reports about its session ([`TlsInfo`]) and the
//!   error a failed handshake gives ([`TlsError`]).
//! * [`io`]: [`TlsIo`](io::TlsIo), the stream driver's I/O for a TLS
//!   connection: the handshake (with its timeout), then the session, then
//!   the close_notify exchange (with its timeout).
//!
//! A TLS connection is an ordinary stream transport whose I/O is a
//! [`TlsIo`](io::TlsIo): the same driver, handle, write queue and flow
//! control as TCP. The driver learns from the I/O type (a constant, so plain
//! TCP pays nothing) that it must run the handshake before
//! `connection_made`, that the protocol's `eof_received` cannot keep the
//! connection half-open, and that a close ends with close_notify both ways.

pub(crate) mod io;
pub(crate) mod layer;
pub(crate) mod start;

pub use start::{StartTls, start_tls};

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::WriteLimits;

/// The handshake timeout when none is given (asyncio's 60 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// The close_notify timeout when none is given (asyncio's 30 s).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// TLS transports' default watermarks (CPython's SSL transport): 512 KiB
/// high, 128 KiB low.
pub const TLS_WRITE_LIMITS: WriteLimits = WriteLimits::tls_default();

/// TLS for a client connection (asyncio's `ssl=`, `server_hostname=`,
/// `ssl_handshake_timeout=` and `ssl_shutdown_timeout=` of
/// `create_connection`), given to
/// [`ConnectOptions::ssl`](crate::ConnectOptions::ssl).
///
/// The timeouts belong to the TLS settings, so giving one without TLS (an
/// error in asyncio) cannot be written. A zero timeout is an error when the
/// connection is made.
///
/// ```
/// use std::sync::Arc;
/// use tokio_transports::ClientTls;
/// use tokio_transports::rustls::{ClientConfig, RootCertStore};
///
/// let roots = RootCertStore::empty(); // add your CA certificates here
/// let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
/// let tls = ClientTls::new(Arc::new(config))
///     .server_hostname("example.com")
///     .handshake_timeout(std::time::Duration::from_secs(5));
/// assert_eq!(tls.server_name(), Some("example.com"));
/// ```
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_hostname: Option<String>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_hostname", &self.server_hostname)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// TLS with this rustls client configuration, the default timeouts, and
    /// the host name given to `create_connection` as the name to verify.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// let config = ClientConfig::builder()
    ///     .with_root_certificates(RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let tls = tokio_transports::ClientTls::new(Arc::new(config));
    /// assert_eq!(tls.server_name(), None);
    /// ```
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        ClientTls {
            config,
            server_hostname: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// The name to send (SNI) and to check the server's certificate against
    /// (asyncio's `server_hostname`): a DNS name or an IP address. Needed
    /// when there is no host to take it from (a connection made from a
    /// socket).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// # let config = Arc::new(ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth());
    /// let tls = tokio_transports::ClientTls::new(config).server_hostname("localhost");
    /// assert_eq!(tls.server_name(), Some("localhost"));
    /// ```
    pub fn server_hostname(mut self, name: impl Into<String>) -> Self {
        self.server_hostname = Some(name.into());
        self
    }

    /// How long the handshake may take before the connection is aborted
    /// (asyncio's `ssl_handshake_timeout`, default 60 s). Must be positive.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// # let config = Arc::new(ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth());
    /// let tls = tokio_transports::ClientTls::new(config).handshake_timeout(Duration::from_secs(10));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long `close()` waits for the peer's close_notify before it
    /// aborts (asyncio's `ssl_shutdown_timeout`, default 30 s). Must be
    /// positive.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// # let config = Arc::new(ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth());
    /// let tls = tokio_transports::ClientTls::new(config).shutdown_timeout(Duration::from_secs(2));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The name set with [`server_hostname`](Self::server_hostname).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tokio_transports::rustls::{ClientConfig, RootCertStore};
    /// # let config = Arc::new(ClientConfig::builder().with_root_certificates(RootCertStore::empty()).with_no_client_auth());
    /// assert_eq!(tokio_transports::ClientTls::new(config).server_name(), None);
    /// ```
    pub fn server_name(&self) -> Option<&str> {
        self.server_hostname.as_deref()
    }

    /// Check the timeouts and settle the server name (`host` when none was
    /// set), as asyncio does before it connects.
    pub(crate) fn validate(&self, host: Option<&str>) -> std::io::Result<ServerName> {
        validate_timeouts(self.handshake_timeout, self.shutdown_timeout)?;
        // An empty host is no host (asyncio: `if not host`).
        let host = host.filter(|h| !h.is_empty());
        let name = match (self.server_hostname.as_deref(), host) {
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => {
                return Err(invalid_input(
                    "You must set server_hostname when using ssl without a host",
                ));
            }
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| invalid_input(format!("invalid server_hostname {name:?}: {e}")))
    }
}

/// A validated server name.
pub(crate) type ServerName = rustls::pki_types::ServerName<'static>;

/// TLS for the connections a server accepts (asyncio's `ssl=`,
/// `ssl_handshake_timeout=` and `ssl_shutdown_timeout=` of `create_server`
/// and `connect_accepted_socket`), given to
/// [`ServerOptions::ssl`](crate::ServerOptions::ssl).
///
/// ```
/// use std::sync::Arc;
/// use tokio_transports::ServerTls;
/// use tokio_transports::rustls::ServerConfig;
/// use tokio_transports::rustls::pki_types::{CertificateDer, PrivateKeyDer};
///
/// fn tls(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerTls {
///     let config = ServerConfig::builder()
///         .with_no_client_auth()
///         .with_single_cert(chain, key)
///         .expect("a valid certificate and key");
///     ServerTls::new(Arc::new(config))
/// }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// TLS with this rustls server configuration and the default timeouts.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn f(config: tokio_transports::rustls::ServerConfig) {
    /// let tls = tokio_transports::ServerTls::new(Arc::new(config));
    /// # }
    /// ```
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        ServerTls {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How long a client's handshake may take (asyncio's
    /// `ssl_handshake_timeout`, default 60 s). Must be positive.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # fn f(config: Arc<tokio_transports::rustls::ServerConfig>) {
    /// let tls = tokio_transports::ServerTls::new(config).handshake_timeout(Duration::from_secs(5));
    /// # }
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long `close()` waits for the peer's close_notify (asyncio's
    /// `ssl_shutdown_timeout`, default 30 s). Must be positive.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # fn f(config: Arc<tokio_transports::rustls::ServerConfig>) {
    /// let tls = tokio_transports::ServerTls::new(config).shutdown_timeout(Duration::from_secs(5));
    /// # }
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> std::io::Result<()> {
        validate_timeouts(self.handshake_timeout, self.shutdown_timeout)
    }
}

fn validate_timeouts(handshake: Duration, shutdown: Duration) -> std::io::Result<()> {
    if handshake.is_zero() {
        return Err(invalid_input(format!(
            "ssl_handshake_timeout should be a positive number, got {}",
            handshake.as_secs_f64()
        )));
    }
    if shutdown.is_zero() {
        return Err(invalid_input(format!(
            "ssl_shutdown_timeout should be a positive number, got {}",
            shutdown.as_secs_f64()
        )));
    }
    Ok(())
}

fn invalid_input(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.into())
}

/// What a TLS transport knows about its session once the handshake is done
/// (asyncio's `peercert`, `cipher` and friends), from
/// [`Transport::tls_info`](crate::Transport::tls_info).
///
/// ```
/// # fn f(t: &tokio_transports::Transport) {
/// if let Some(info) = t.tls_info() {
///     println!("{:?} {:?} alpn={:?}", info.protocol_version, info.cipher_suite, info.alpn_protocol);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The peer's certificate chain, its own certificate first (empty when
    /// the peer sent none: a client without client authentication).
    pub peer_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The negotiated cipher suite.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// The negotiated protocol version (TLS 1.2 or 1.3).
    pub protocol_version: Option<rustls::ProtocolVersion>,
    /// The negotiated ALPN protocol, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The server name: the one the client asked for (SNI) on a server, the
    /// one it verified on a client.
    pub server_name: Option<String>,
    /// Whether this side is the server.
    pub server_side: bool,
}

/// The error of a failed TLS handshake or session: what went wrong, in
/// asyncio's words where it has them ("certificate verify failed", "SSL
/// handshake is taking longer than 60.0 seconds"), with the rustls error as
/// its [`source`](Error::source). It is the payload of the `io::Error` that
/// `create_connection` returns.
///
/// ```
/// # fn f(err: std::io::Error) {
/// if let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<tokio_transports::TlsError>()) {
///     println!("TLS failed: {tls} ({:?})", tls.rustls_error());
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TlsError {
    message: String,
    source: Option<rustls::Error>,
}

impl TlsError {
    /// The rustls error behind it, if rustls reported one (a timeout or a
    /// lost connection has none).
    ///
    /// ```
    /// # fn f(e: &tokio_transports::TlsError) {
    /// if let Some(tokio_transports::rustls::Error::InvalidCertificate(why)) = e.rustls_error() {
    ///     println!("bad certificate: {why:?}");
    /// }
    /// # }
    /// ```
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_ref()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for TlsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn Error + 'static))
    }
}

/// Turn what the handshake failed with into the error users see: rustls
/// errors named as asyncio names them, a peer that closed during the
/// handshake as a reset (asyncio's `ConnectionResetError`).
pub(crate) fn handshake_error(err: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind;
    if err.kind() == ErrorKind::UnexpectedEof {
        return std::io::Error::new(
            ErrorKind::ConnectionReset,
            TlsError {
                message: "Connection lost during the TLS handshake: the peer closed it".into(),
                source: None,
            },
        );
    }
    let Some(rustls_err) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned()
    else {
        return err;
    };
    let message = match &rustls_err {
        rustls::Error::InvalidCertificate(cert) => {
            format!(
                "certificate verify failed: {}",
                describe_certificate_error(cert)
            )
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the peer refused the handshake: alert {alert:?}")
        }
        rustls::Error::NoApplicationProtocol => "no application protocol (ALPN) in common".into(),
        other => format!("TLS handshake failed: {other}"),
    };
    std::io::Error::new(
        ErrorKind::InvalidData,
        TlsError {
            message,
            source: Some(rustls_err),
        },
    )
}

fn describe_certificate_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match err {
        C::UnknownIssuer => "unable to get local issuer certificate".into(),
        C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("Hostname mismatch, certificate is not valid for the name ({err})")
        }
        C::BadSignature => "certificate signature failure".into(),
        C::Revoked => "certificate revoked".into(),
        other => format!("{other}"),
    }
}

/// The error of a handshake that ran out of time (asyncio's wording).
pub(crate) fn handshake_timeout_error(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        TlsError {
            message: format!(
                "SSL handshake is taking longer than {:?} seconds: aborting the connection",
                limit.as_secs_f64()
            ),
            source: None,
        },
    )
}

/// The error of a close whose close_notify exchange ran out of time.
pub(crate) fn shutdown_timeout_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        TlsError {
            message: "SSL shutdown timed out".into(),
            source: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_config() -> Arc<rustls::ClientConfig> {
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    #[test]
    fn client_names_come_from_the_option_or_the_host() {
        let tls = ClientTls::new(client_config());
        assert!(tls.validate(Some("localhost")).is_ok());
        assert!(tls.validate(Some("[::1]")).is_ok());
        let err = tls.validate(None).unwrap_err();
        assert!(err.to_string().contains("server_hostname"), "{err}");
        let named = tls.clone().server_hostname("127.0.0.1");
        assert!(named.validate(None).is_ok());
        assert!(tls.validate(Some("bad name!")).is_err());
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let tls = ClientTls::new(client_config()).handshake_timeout(Duration::ZERO);
        let err = tls.validate(Some("localhost")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("ssl_handshake_timeout"), "{err}");
        let tls = ClientTls::new(client_config()).shutdown_timeout(Duration::ZERO);
        let err = tls.validate(Some("localhost")).unwrap_err();
        assert!(err.to_string().contains("ssl_shutdown_timeout"), "{err}");
    }

    #[test]
    fn handshake_errors_name_their_cause() {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            handshake_error(eof).kind(),
            std::io::ErrorKind::ConnectionReset
        );
        let bad = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let err = handshake_error(bad);
        assert!(
            err.to_string().starts_with("certificate verify failed"),
            "{err}"
        );
        let tls = err.get_ref().unwrap().downcast_ref::<TlsError>().unwrap();
        assert!(tls.rustls_error().is_some());
        assert!(
            handshake_timeout_error(Duration::from_secs(60))
                .to_string()
                .contains("60.0 seconds")
        );
    }
}
