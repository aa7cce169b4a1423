//! Errors a transport method returns synchronously (asyncio's `RuntimeError`
//! and `ValueError` cases), and the `io::Error` payloads given to
//! `connection_lost`.

use std::fmt;
use std::io;

use crate::extra::SocketAddress;

/// A usage error from a transport method. The transport is unchanged: nothing
/// was queued, nothing was lost.
///
/// ```
/// use tokio_transports::TransportError;
/// let e = TransportError::WriteAfterEof;
/// assert_eq!(e.to_string(), "Cannot call write() after write_eof()");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// `write` after `write_eof` (asyncio: `RuntimeError`).
    WriteAfterEof,
    /// `writelines` after `write_eof` (asyncio: `RuntimeError`).
    WritelinesAfterEof,
    /// `set_write_buffer_limits` with `low > high` (asyncio: `ValueError`).
    InvalidLimits {
        /// The high watermark that was asked for (or derived).
        high: usize,
        /// The low watermark that was asked for (or derived).
        low: usize,
    },
    /// The operation is not supported by this kind of transport.
    Unsupported(&'static str),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::WriteAfterEof => f.write_str("Cannot call write() after write_eof()"),
            TransportError::WritelinesAfterEof => {
                f.write_str("Cannot call writelines() after write_eof()")
            }
            TransportError::InvalidLimits { high, low } => {
                write!(f, "high ({high}) must be >= low ({low}) must be >= 0")
            }
            TransportError::Unsupported(what) => write!(f, "{what} is not supported"),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<TransportError> for io::Error {
    fn from(e: TransportError) -> io::Error {
        let kind = match e {
            TransportError::WriteAfterEof | TransportError::WritelinesAfterEof => {
                io::ErrorKind::BrokenPipe
            }
            TransportError::InvalidLimits { .. } => io::ErrorKind::InvalidInput,
            TransportError::Unsupported(_) => io::ErrorKind::Unsupported,
        };
        io::Error::new(kind, e)
    }
}

/// The error given to `connection_lost` when a protocol callback panicked.
/// Find it with `err.get_ref()` and `downcast_ref::<CallbackPanicked>()`.
///
/// ```
/// use tokio_transports::CallbackPanicked;
/// let p = CallbackPanicked { callback: "data_received", message: "boom".into() };
/// assert_eq!(p.to_string(), "protocol.data_received() panicked: boom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPanicked {
    /// Which callback panicked, e.g. `"data_received"`.
    pub callback: &'static str,
    /// The panic message, if it was a string.
    pub message: String,
}

impl fmt::Display for CallbackPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol.{}() panicked: {}", self.callback, self.message)
    }
}

impl std::error::Error for CallbackPanicked {}

impl CallbackPanicked {
    /// Build from a caught panic payload (crate-internal).
    pub(crate) fn from_payload(
        callback: &'static str,
        payload: &(dyn std::any::Any + Send),
    ) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_string());
        CallbackPanicked { callback, message }
    }
}

/// The error `connection_lost` gets when the connection's task is dropped
/// before the connection finished (its runtime shut down or was dropped, or
/// the task was aborted).
pub(crate) const TASK_DROPPED_MSG: &str =
    "the transport's task was dropped before the connection finished (runtime shut down)";

/// The message asyncio uses when `get_buffer` returns no room.
pub(crate) const EMPTY_BUFFER_MSG: &str = "get_buffer() returned an empty buffer";

/// Which call an [`AddressError`] comes from.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{AddressAction, AddressError, ServerOptions, create_server};
/// let first = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
/// let port = first.sockets()[0].port();
/// let opts = ServerOptions::default().reuse_address(false);
/// let err = create_server(|| (), "127.0.0.1", port, opts).await.unwrap_err();
/// let detail = err.get_ref().and_then(|e| e.downcast_ref::<AddressError>()).unwrap();
/// assert_eq!(detail.action(), AddressAction::Bind);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressAction {
    /// `bind()` on a local address (`create_server`, `local_addr` options).
    Bind,
    /// `connect()` to a remote address (`create_connection`).
    Connect,
}

/// An OS error from `bind()` or `connect()`, with the address it concerns:
/// asyncio's `OSError(errno, 'error while attempting to bind on address
/// ...')` and `OSError(errno, 'Connect call failed ...')`.
///
/// The creation functions return it inside an [`io::Error`] of the OS
/// error's kind, so `err.kind()` is unchanged and `err.to_string()` names
/// the address. Rust's `io::Error` cannot carry a custom message and an OS
/// error code at once (`raw_os_error()` is only set on a bare OS error), so
/// the OS error itself is kept as the [`source()`](std::error::Error::source)
/// of the returned `io::Error`. Get the code with [`raw_os_error`] (which
/// also works on a bare OS error), or with `err.get_ref()` downcast to
/// `AddressError` for the address too.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{AddressError, ServerOptions, create_server};
/// let first = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
/// let port = first.sockets()[0].port();
/// let opts = ServerOptions::default().reuse_address(false);
/// let err = create_server(|| (), "127.0.0.1", port, opts).await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
/// assert!(err.to_string().starts_with(&format!(
///     "error while attempting to bind on address ('127.0.0.1', {port})"
/// )));
/// let code = tokio_transports::raw_os_error(&err).expect("the OS error's code"); // EADDRINUSE
/// assert_eq!(std::io::Error::from_raw_os_error(code).kind(), std::io::ErrorKind::AddrInUse);
/// let detail = err.get_ref().unwrap().downcast_ref::<AddressError>().unwrap();
/// assert_eq!(detail.address().as_inet(), Some(first.sockets()[0]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AddressError {
    action: AddressAction,
    address: SocketAddress,
    source: io::Error,
}

impl AddressError {
    /// `io::Error::new(source.kind(), AddressError { .. })` for a failed
    /// `bind()` (crate-internal).
    pub(crate) fn bind(address: impl Into<SocketAddress>, source: io::Error) -> io::Error {
        Self::wrap(AddressAction::Bind, address.into(), source)
    }

    /// The same for a failed `connect()` (crate-internal).
    pub(crate) fn connect(address: impl Into<SocketAddress>, source: io::Error) -> io::Error {
        Self::wrap(AddressAction::Connect, address.into(), source)
    }

    fn wrap(action: AddressAction, address: SocketAddress, source: io::Error) -> io::Error {
        io::Error::new(
            source.kind(),
            AddressError {
                action,
                address,
                source,
            },
        )
    }

    /// Whether `bind()` or `connect()` failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{AddressAction, AddressError, ConnectOptions, create_connection};
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // now closed
    /// let err = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default()).await.unwrap_err();
    /// let detail = err.get_ref().unwrap().downcast_ref::<AddressError>().unwrap();
    /// assert_eq!(detail.action(), AddressAction::Connect);
    /// # Ok(()) }
    /// ```
    pub fn action(&self) -> AddressAction {
        self.action
    }

    /// The address that could not be bound or connected to.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{AddressError, ConnectOptions, create_connection};
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // now closed
    /// let err = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default()).await.unwrap_err();
    /// let detail = err.get_ref().unwrap().downcast_ref::<AddressError>().unwrap();
    /// assert_eq!(detail.address().to_string(), format!("('127.0.0.1', {port})"));
    /// # Ok(()) }
    /// ```
    pub fn address(&self) -> &SocketAddress {
        &self.address
    }

    /// The OS error, as the system call returned it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{AddressError, ConnectOptions, create_connection};
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // now closed
    /// let err = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default()).await.unwrap_err();
    /// let detail = err.get_ref().unwrap().downcast_ref::<AddressError>().unwrap();
    /// assert_eq!(detail.os_error().kind(), std::io::ErrorKind::ConnectionRefused);
    /// # Ok(()) }
    /// ```
    pub fn os_error(&self) -> &io::Error {
        &self.source
    }

    /// The OS error code (`errno`), as `io::Error::raw_os_error` gives it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{AddressError, ConnectOptions, create_connection};
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // now closed
    /// let err = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default()).await.unwrap_err();
    /// let detail = err.get_ref().unwrap().downcast_ref::<AddressError>().unwrap();
    /// let code = detail.raw_os_error().expect("an OS error"); // ECONNREFUSED
    /// assert_eq!(std::io::Error::from_raw_os_error(code).kind(), std::io::ErrorKind::ConnectionRefused);
    /// # Ok(()) }
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for AddressError {
    /// asyncio's messages: `error while attempting to bind on address
    /// ('127.0.0.1', 8888): address already in use` (the OS error's text in
    /// lower case, as CPython's `err.strerror.lower()`), and `Connect call
    /// failed ('127.0.0.1', 8888)`, followed here by the OS error's text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = os_reason(&self.source).to_lowercase();
        match self.action {
            AddressAction::Bind => write!(
                f,
                "error while attempting to bind on address {}: {reason}",
                self.address
            ),
            AddressAction::Connect => {
                write!(f, "Connect call failed {}: {reason}", self.address)
            }
        }
    }
}

/// An error's text without Rust's ` (os error N)` suffix: for an OS error,
/// what C's `strerror` says (Python's `OSError.strerror`).
pub(crate) fn os_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_string)
            .unwrap_or(text),
        None => text,
    }
}

impl std::error::Error for AddressError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The OS error code of `err`: `err.raw_os_error()`, or else that of the
/// first `io::Error` in its chain of [`source()`](std::error::Error::source)s.
///
/// Errors that add an address to an OS error ([`AddressError`]) carry the
/// code there, since an `io::Error` with a custom message has no
/// `raw_os_error()` of its own; this finds it either way.
///
/// ```
/// use std::io;
/// let bare = io::Error::from_raw_os_error(111);
/// assert_eq!(tokio_transports::raw_os_error(&bare), Some(111));
/// assert_eq!(tokio_transports::raw_os_error(&io::Error::other("no code")), None);
/// ```
pub fn raw_os_error(err: &io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    // `io::Error::source()` of a custom error is its payload's source.
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        next = e.source();
    }
    None
}

/// The current tokio runtime, or the error every creation function returns
/// when called outside one (instead of tokio's panic).
pub(crate) fn current_runtime() -> io::Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        io::Error::other(format!(
            "tokio-transports needs a tokio runtime (call it from within one): {e}"
        ))
    })
}
