//! What a stream transport's handle tells about it beyond asyncio's API: its
//! counters and its tracing span (see `src/stats.rs` and `src/trace.rs`).

use super::Transport;
use crate::TransportStats;

impl Transport {
    /// The transport's counters now: bytes received and sent, writes,
    /// `pause_writing` calls, dropped writes, and the time spent in
    /// callbacks if [`set_callback_timing`](crate::set_callback_timing) was
    /// on when it was made. Cheap (a few loads), from any thread, during and
    /// after the connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// let (a, mut peer) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await?;
    /// t.write("abc")?;
    /// let mut buf = [0u8; 3];
    /// peer.read_exact(&mut buf).await?;
    /// assert_eq!(t.stats().bytes_sent, 3);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> TransportStats {
        self.shared.stats()
    }

    /// The connection's tracing span (`transport`, at DEBUG level, with
    /// `kind`, `tls`, `peer` and `local`): its task runs in it, so events
    /// from the protocol's callbacks carry it; instrument the connection's
    /// other tasks with it too. `Span::none()` when no subscriber wanted it
    /// at creation.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tracing::Instrument;
    /// let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await?;
    /// tokio::spawn(async { tracing::info!("belongs to the connection") }.instrument(t.span()));
    /// # Ok(()) }
    /// ```
    pub fn span(&self) -> tracing::Span {
        self.shared.span.clone()
    }
}
