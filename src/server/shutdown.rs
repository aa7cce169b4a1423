//! Graceful shutdown in one call: [`Server::shutdown`] and
//! [`Server::serve_until`], beyond asyncio's `Server` (which offers the
//! pieces: `close`, `close_clients`, `abort_clients`, `wait_closed`).
//!
//! The order is the one an operator wants: stop accepting, ask every
//! connection to `close()` (each flushes what it was given, then delivers
//! `connection_lost`), wait up to the grace period, then `abort()` what is
//! left and wait for those to deliver `connection_lost` too.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use super::Server;

/// What [`Server::shutdown`] did: how many of the server's connections
/// finished within the grace period and how many were aborted after it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use tokio_transports::{create_server, ServerOptions, ShutdownReport};
/// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
/// let report = server.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report, ShutdownReport { closed: 0, aborted: 0 });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Connections that delivered `connection_lost` within the grace period
    /// (after flushing what they were given, or ended by the peer or an
    /// error meanwhile).
    pub closed: usize,
    /// Connections still open when the grace period ended (typically a peer
    /// that does not read, so the flush cannot finish), then aborted: what
    /// they still had buffered was discarded.
    pub aborted: usize,
}

impl ShutdownReport {
    /// Every connection finished within the grace period.
    ///
    /// ```
    /// # use tokio_transports::ShutdownReport;
    /// assert!(ShutdownReport { closed: 3, aborted: 0 }.is_clean());
    /// assert!(!ShutdownReport { closed: 3, aborted: 1 }.is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.aborted == 0
    }
}

impl Server {
    /// Shut the server down gracefully: stop accepting (as
    /// [`close`](Self::close)), `close()` every accepted connection (each
    /// flushes what was written to it, then delivers `connection_lost`), wait
    /// up to `grace` for them, then `abort()` the ones still open and wait
    /// until they too have delivered `connection_lost`. Returns when the
    /// server is fully closed (as [`wait_closed`](Self::wait_closed)), with
    /// how many connections closed in time and how many were aborted.
    ///
    /// Connections already closing count like the others. Calling it again,
    /// or after `close()`, is fine: it closes what is still open. A protocol
    /// callback that never returns keeps its connection from finishing, and
    /// so this future too (as with `wait_closed`).
    ///
    /// Cancel-safe in the sense that dropping the future leaves the server
    /// closed and every connection closing (or aborted, if the grace period
    /// had already ended); nothing else is undone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// let _client = tokio::net::TcpStream::connect(server.sockets()[0]).await?;
    /// let report = server.shutdown(Duration::from_secs(5)).await;
    /// assert!(!server.is_serving());
    /// assert_eq!(report.aborted, 0);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.close();
        let clients = self.clients();
        let total = clients.len();
        for t in &clients {
            t.close();
        }
        drop(clients);
        let aborted = match tokio::time::timeout(grace, self.wait_closed()).await {
            Ok(()) => 0,
            Err(_) => {
                let left = self.clients();
                for t in &left {
                    t.abort();
                }
                left.len()
            }
        };
        self.wait_closed().await;
        tracing::debug!(
            parent: &self.inner.span,
            closed = total.saturating_sub(aborted),
            aborted,
            "server shut down"
        );
        ShutdownReport {
            // A connection accepted after the snapshot cannot exist (the
            // accept tasks are gone once `close()` returns), so `aborted`
            // never exceeds `total`; saturate all the same.
            closed: total.saturating_sub(aborted),
            aborted,
        }
    }

    /// Serve until `signal` resolves, then [`shutdown`](Self::shutdown) with
    /// `grace` and return its report. `signal` is any future: a
    /// `tokio_util::sync::CancellationToken`'s `cancelled()` (crate `tokio-util`),
    /// `tokio::signal::ctrl_c()`, a oneshot receiver. If the server is closed
    /// some other way first, the shutdown starts then. An error if the server
    /// was already closed or cannot start listening (as
    /// [`start_serving`](Self::start_serving)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use std::time::Duration;
    /// use tokio_transports::{create_server, ServerOptions};
    /// let server = create_server(|| (), "127.0.0.1", 0, ServerOptions::default()).await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn({
    ///     let server = server.clone();
    ///     async move { server.serve_until(stopped, Duration::from_secs(5)).await }
    /// });
    /// stop.send(()).unwrap();
    /// let report = serving.await.unwrap()?;
    /// assert!(report.is_clean());
    /// # Ok(()) }
    /// ```
    pub async fn serve_until<F: Future>(
        &self,
        signal: F,
        grace: Duration,
    ) -> io::Result<ShutdownReport> {
        self.start_serving().await?;
        let mut signal = pin!(signal);
        tokio::select! {
            _ = &mut signal => {}
            () = self.closed() => {}
        }
        Ok(self.shutdown(grace).await)
    }

    /// Resolves once the server is closed (not waiting for connections).
    pub(super) async fn closed(&self) {
        loop {
            let mut changed = pin!(self.inner.changed.notified());
            changed.as_mut().enable();
            if self.inner.lock().closed {
                return;
            }
            changed.await;
        }
    }
}
