//! [`TransportStream`]: a connection as tokio's `AsyncRead + AsyncWrite`
//! (and `AsyncBufRead`), with the transport's flow control as backpressure.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::protocol::Shared;
use super::sides::{Closer, ReadSide, WriteSide};
use super::split::{StreamReader, StreamWriter};
use crate::Transport;

/// A connection of this crate as a tokio byte stream: [`AsyncRead`],
/// [`AsyncBufRead`] and [`AsyncWrite`], `Send + Sync + Unpin`, so code
/// written for tokio streams (hyper, tokio-util's `Framed`,
/// `tokio::io::copy`) runs over any transport: TCP, TLS, Unix sockets,
/// pipes, any [`connect_io`](crate::connect_io) I/O. asyncio's
/// `StreamReader` and `StreamWriter` in one value.
///
/// # Backpressure
///
/// * **Input.** Received data waits in the stream until read. Once more than
///   twice the [read limit](Self::set_read_limit) (64 KiB by default, so
///   128 KiB) waits unread, the transport's reading is paused
///   ([`Transport::is_reading`] is false) and the peer is held back by the
///   kernel's buffers; reading resumes once the reader has brought it down
///   to the limit. asyncio's `StreamReader` rule.
/// * **Output.** `poll_write` queues a copy of the data on the transport
///   when its write buffer is at or below the high watermark, and is
///   `Pending` above it until the buffer drains to the low watermark
///   ([`Transport::drain`]). One write takes at most the high watermark
///   (16 KiB if that is less), so the buffer never holds more than twice
///   the high watermark (or the high watermark plus 16 KiB). `poll_flush` waits for the low watermark
///   (asyncio's `drain()`); what stays queued is sent by the transport
///   without further calls.
///
/// # Ends
///
/// * The peer's end of file is a read of 0 bytes; the stream stays open for
///   writing (TCP and Unix half-close). A TLS transport, or a read pipe,
///   closes at its end of file: writes fail after it.
/// * A connection lost with an error (a reset) gives that error to the next
///   read once the data received before it has been read, then reads give
///   end of file; writes fail with the error's kind from the loss on.
/// * `poll_shutdown` is [`Transport::write_eof`] where the transport can
///   half-close ([`Transport::can_write_eof`]), [`Transport::close`]
///   elsewhere (TLS: close_notify, after which nothing more is read); it
///   resolves once the write buffer is at or below the low watermark. On a
///   read pipe it does nothing.
/// * Dropping the stream [`close`](Transport::close)s the transport: what
///   was written is still sent, then the connection ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_transports::streams::TransportStream;
/// let (a, mut b) = tokio::io::duplex(1024);
/// let mut stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
/// stream.write_all(b"ping").await?;
/// let mut buf = [0u8; 4];
/// b.read_exact(&mut buf).await?;
/// b.write_all(b"pong").await?;
/// stream.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"pong");
/// # Ok(()) }
/// ```
pub struct TransportStream {
    reader: ReadSide,
    writer: WriteSide,
}

impl std::fmt::Debug for TransportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportStream")
            .field("transport", &self.writer.transport)
            .field("unread", &self.reader.unread())
            .finish()
    }
}

impl TransportStream {
    pub(crate) fn new(transport: Transport, shared: Arc<Shared>) -> TransportStream {
        let closer = Arc::new(Closer(transport.clone()));
        TransportStream {
            reader: ReadSide::new(shared.clone(), closer.clone()),
            writer: WriteSide::new(transport, shared, closer),
        }
    }

    /// Split into a [`StreamReader`] and a [`StreamWriter`] (asyncio's
    /// pair), owned halves for two tasks, without the lock
    /// `tokio::io::split` puts around every call. The transport closes
    /// when both are dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio_transports::streams::TransportStream;
    /// let (a, mut b) = tokio::io::duplex(1024);
    /// let stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
    /// let (mut reader, mut writer) = stream.into_split();
    /// tokio::spawn(async move { writer.write_all(b"from the writer's task").await });
    /// let mut buf = [0u8; 22];
    /// b.read_exact(&mut buf).await?;
    /// b.write_all(b"back").await?;
    /// let mut back = [0u8; 4];
    /// reader.read_exact(&mut back).await?;
    /// assert_eq!(&back, b"back");
    /// # Ok(()) }
    /// ```
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (
            StreamReader::new(self.reader),
            StreamWriter::new(self.writer),
        )
    }

    /// The transport under the stream, for its addresses, TLS information,
    /// socket options, watermarks, `abort()`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::TransportStream;
    /// let (a, _b) = tokio::net::UnixStream::pair()?;
    /// let stream = TransportStream::open(|p| tokio_transports::connect_unix_stream(move || p, a)).await?;
    /// stream.transport().set_write_buffer_limits(Some(4096), None).unwrap();
    /// assert_eq!(stream.transport().get_write_buffer_limits(), (1024, 4096));
    /// # Ok(()) }
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.writer.transport
    }

    /// The read limit (asyncio's `limit=`): reading pauses while more than
    /// twice this waits unread, and resumes at or below it. Default
    /// [`DEFAULT_READ_LIMIT`](super::DEFAULT_READ_LIMIT), 64 KiB.
    ///
    /// # Errors
    ///
    /// `InvalidInput` ("Limit cannot be <= 0", asyncio's `ValueError`) for
    /// 0; the limit stays as it was.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::TransportStream;
    /// let (a, _b) = tokio::io::duplex(64);
    /// let stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
    /// stream.set_read_limit(1024)?;
    /// assert_eq!(stream.read_limit(), 1024);
    /// assert_eq!(stream.set_read_limit(0).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// assert_eq!(stream.read_limit(), 1024);
    /// # Ok(()) }
    /// ```
    pub fn set_read_limit(&self, limit: usize) -> io::Result<()> {
        self.reader.set_limit(limit)
    }

    /// The read limit; see [`set_read_limit`](Self::set_read_limit).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::{TransportStream, DEFAULT_READ_LIMIT};
    /// let (a, _b) = tokio::io::duplex(64);
    /// let stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
    /// assert_eq!(stream.read_limit(), DEFAULT_READ_LIMIT);
    /// # Ok(()) }
    /// ```
    pub fn read_limit(&self) -> usize {
        self.reader.limit()
    }
}

impl AsyncRead for TransportStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().reader.poll_read(cx, buf)
    }
}

impl AsyncBufRead for TransportStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().reader.poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().reader.consume(amt);
    }
}

impl AsyncWrite for TransportStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().writer.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().writer.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer.poll_shutdown(cx)
    }
}
