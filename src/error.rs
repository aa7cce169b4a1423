//! Errors a transport method returns synchronously (asyncio's `RuntimeError`
//! and `ValueError` cases), and the `io::Error` payloads given to
//! `connection_lost`.

use std::fmt;
use std::io;

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
