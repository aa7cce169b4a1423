//! The exception-handler hook: the stand-in for asyncio's
//! `loop.set_exception_handler` / `loop.call_exception_handler`.
//!
//! What asyncio reports there (a callback that failed, an accept error such as
//! EMFILE, writes dropped after the connection was lost, a failure while
//! setting up an accepted connection) is reported here. The handler is
//! process-wide; by default it emits a `tracing` event at `error` level
//! (`warn` for dropped writes).

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// What went wrong, handed to the exception handler.
///
/// ```
/// use tokio_transports::ExceptionContext;
/// let ctx = ExceptionContext::new("socket.accept() out of system resource");
/// assert_eq!(ctx.message, "socket.accept() out of system resource");
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct ExceptionContext<'a> {
    /// asyncio's message, e.g. `"Fatal error: protocol.data_received() call failed."`.
    pub message: &'a str,
    /// The error, if there is one.
    pub error: Option<&'a (dyn Error + Send + Sync + 'static)>,
    /// The peer of the connection concerned, if known.
    pub peername: Option<SocketAddr>,
    /// The local address of the socket concerned (a listener for accept errors).
    pub sockname: Option<SocketAddr>,
}

impl<'a> ExceptionContext<'a> {
    /// A context with just a message.
    ///
    /// ```
    /// # use tokio_transports::ExceptionContext;
    /// let ctx = ExceptionContext::new("something failed");
    /// assert!(ctx.error.is_none());
    /// ```
    pub fn new(message: &'a str) -> Self {
        ExceptionContext {
            message,
            error: None,
            peername: None,
            sockname: None,
        }
    }

    /// The same context with an error attached.
    ///
    /// ```
    /// # use tokio_transports::ExceptionContext;
    /// let e = std::io::Error::other("boom");
    /// let ctx = ExceptionContext::new("failed").with_error(&e);
    /// assert_eq!(ctx.error.unwrap().to_string(), "boom");
    /// ```
    pub fn with_error(mut self, error: &'a (dyn Error + Send + Sync + 'static)) -> Self {
        self.error = Some(error);
        self
    }

    /// The same context with the peer address attached.
    ///
    /// ```
    /// # use tokio_transports::ExceptionContext;
    /// let ctx = ExceptionContext::new("x").with_peername(Some("127.0.0.1:1".parse().unwrap()));
    /// assert!(ctx.peername.is_some());
    /// ```
    pub fn with_peername(mut self, peer: Option<SocketAddr>) -> Self {
        self.peername = peer;
        self
    }

    /// The same context with the local address attached.
    ///
    /// ```
    /// # use tokio_transports::ExceptionContext;
    /// let ctx = ExceptionContext::new("x").with_sockname(Some("127.0.0.1:1".parse().unwrap()));
    /// assert!(ctx.sockname.is_some());
    /// ```
    pub fn with_sockname(mut self, sock: Option<SocketAddr>) -> Self {
        self.sockname = sock;
        self
    }
}

impl fmt::Debug for ExceptionContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExceptionContext")
            .field("message", &self.message)
            .field("error", &self.error.map(|e| e.to_string()))
            .field("peername", &self.peername)
            .field("sockname", &self.sockname)
            .finish()
    }
}

/// The type of an exception handler.
///
/// ```
/// use std::sync::Arc;
/// use tokio_transports::{ExceptionContext, ExceptionHandler};
/// let h: ExceptionHandler = Arc::new(|ctx: &ExceptionContext<'_>| eprintln!("{}", ctx.message));
/// h(&ExceptionContext::new("hello"));
/// ```
pub type ExceptionHandler = Arc<dyn Fn(&ExceptionContext<'_>) + Send + Sync + 'static>;

static HANDLER: RwLock<Option<ExceptionHandler>> = RwLock::new(None);

/// Set the process-wide exception handler (asyncio's
/// `loop.set_exception_handler`); `None` restores the default, which logs
/// through `tracing`. Returns the previous handler.
///
/// ```
/// use std::sync::Arc;
/// use tokio_transports::{set_exception_handler, ExceptionContext};
/// let old = set_exception_handler(Some(Arc::new(|ctx: &ExceptionContext<'_>| {
///     eprintln!("transport trouble: {}", ctx.message);
/// })));
/// set_exception_handler(old);
/// ```
pub fn set_exception_handler(handler: Option<ExceptionHandler>) -> Option<ExceptionHandler> {
    let mut slot = HANDLER.write().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *slot, handler)
}

/// Report to the current exception handler (asyncio's
/// `loop.call_exception_handler`). A panicking handler is caught and logged.
///
/// ```
/// use tokio_transports::{call_exception_handler, ExceptionContext};
/// call_exception_handler(&ExceptionContext::new("custom report"));
/// ```
pub fn call_exception_handler(ctx: &ExceptionContext<'_>) {
    let handler = HANDLER.read().unwrap_or_else(|p| p.into_inner()).clone();
    match handler {
        Some(h) => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(ctx)));
            if r.is_err() {
                tracing::error!("the exception handler panicked while handling: {ctx:?}");
                default_exception_handler(ctx);
            }
        }
        None => default_exception_handler(ctx),
    }
}

/// The default handler: one `tracing` event, at `error` level.
///
/// ```
/// use tokio_transports::{default_exception_handler, ExceptionContext};
/// default_exception_handler(&ExceptionContext::new("logged"));
/// ```
pub fn default_exception_handler(ctx: &ExceptionContext<'_>) {
    match ctx.error {
        Some(e) => tracing::error!(
            peername = ?ctx.peername,
            sockname = ?ctx.sockname,
            error = %e,
            "{}",
            ctx.message
        ),
        None => {
            tracing::error!(peername = ?ctx.peername, sockname = ?ctx.sockname, "{}", ctx.message)
        }
    }
}
