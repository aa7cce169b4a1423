//! [`StreamReader`] and [`StreamWriter`]: a [`TransportStream`](super::TransportStream)'s owned
//! halves (asyncio's pair), from [`TransportStream::into_split`](super::TransportStream::into_split).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::sides::{ReadSide, WriteSide};
use crate::Transport;

/// The reading half of a [`TransportStream`](super::TransportStream) ([`AsyncRead`] +
/// [`AsyncBufRead`]), asyncio's `StreamReader`: the same input backpressure
/// and ends as the whole stream. The transport closes once both halves are
/// dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
/// use tokio_transports::streams::TransportStream;
/// let (a, mut b) = tokio::io::duplex(1024);
/// let (mut reader, _writer) = TransportStream::open(|p| tokio_transports::connect_io(move || p, a))
///     .await?
///     .into_split();
/// b.write_all(b"one line\n").await?;
/// let mut line = String::new();
/// reader.read_line(&mut line).await?;
/// assert_eq!(line, "one line\n");
/// # Ok(()) }
/// ```
pub struct StreamReader {
    side: ReadSide,
}

impl StreamReader {
    pub(crate) fn new(side: ReadSide) -> Self {
        StreamReader { side }
    }

    /// [`TransportStream::set_read_limit`](super::TransportStream::set_read_limit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::TransportStream;
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let (reader, _writer) = TransportStream::open(|p| tokio_transports::connect_io(move || p, a))
    ///     .await?
    ///     .into_split();
    /// reader.set_read_limit(4096)?;
    /// assert_eq!(reader.read_limit(), 4096);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` for 0, as [`TransportStream::set_read_limit`](super::TransportStream::set_read_limit).
    pub fn set_read_limit(&self, limit: usize) -> std::io::Result<()> {
        self.side.set_limit(limit)
    }

    /// [`TransportStream::read_limit`](super::TransportStream::read_limit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::{TransportStream, DEFAULT_READ_LIMIT};
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let (reader, _writer) = TransportStream::open(|p| tokio_transports::connect_io(move || p, a))
    ///     .await?
    ///     .into_split();
    /// assert_eq!(reader.read_limit(), DEFAULT_READ_LIMIT);
    /// # Ok(()) }
    /// ```
    pub fn read_limit(&self) -> usize {
        self.side.limit()
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("unread", &self.side.unread())
            .finish()
    }
}

/// The writing half of a [`TransportStream`](super::TransportStream) ([`AsyncWrite`]), asyncio's
/// `StreamWriter`: the same output backpressure, flush and shutdown as the
/// whole stream. The transport closes once both halves are dropped; to
/// half-close, `shutdown()` it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_transports::streams::TransportStream;
/// let (a, mut b) = tokio::io::duplex(1024);
/// let (_reader, mut writer) = TransportStream::open(|p| tokio_transports::connect_io(move || p, a))
///     .await?
///     .into_split();
/// writer.write_all(b"bye").await?;
/// writer.shutdown().await?; // write_eof()
/// let mut text = String::new();
/// b.read_to_string(&mut text).await?;
/// assert_eq!(text, "bye");
/// # Ok(()) }
/// ```
pub struct StreamWriter {
    side: WriteSide,
}

impl StreamWriter {
    pub(crate) fn new(side: WriteSide) -> Self {
        StreamWriter { side }
    }

    /// The transport (asyncio's `writer.transport`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::TransportStream;
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let (_reader, writer) = TransportStream::open(|p| tokio_transports::connect_io(move || p, a))
    ///     .await?
    ///     .into_split();
    /// assert!(writer.transport().can_write_eof());
    /// # Ok(()) }
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.side.transport
    }
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StreamWriter")
            .field(&self.side.transport)
            .finish()
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().side.poll_read(cx, buf)
    }
}

impl AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().side.poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().side.consume(amt);
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().side.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().side.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().side.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().side.poll_shutdown(cx)
    }
}
