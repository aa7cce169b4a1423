//! [`TransportStream`]: a connection as tokio's `AsyncRead + AsyncWrite`
//! (and `AsyncBufRead`), with the transport's flow control as backpressure.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::ReusableBoxFuture;

use super::protocol::Shared;
use crate::Transport;
use crate::stream::handle::LOST;
use crate::stream::stream_io::Mode;

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
    transport: Transport,
    shared: Arc<Shared>,
    /// The chunk being read (taken from the shared queue).
    current: Bytes,
    /// `Transport::drain`, while a write or a flush waits for it.
    drain: ReusableBoxFuture<'static, io::Result<()>>,
    draining: bool,
    /// `poll_shutdown` was called.
    shut: bool,
}

impl std::fmt::Debug for TransportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportStream")
            .field("transport", &self.transport)
            .field(
                "unread",
                &(self.current.len() + self.shared.lock().buffered),
            )
            .finish()
    }
}

impl TransportStream {
    pub(crate) fn new(transport: Transport, shared: Arc<Shared>) -> TransportStream {
        TransportStream {
            transport,
            shared,
            current: Bytes::new(),
            drain: ReusableBoxFuture::new(async { Ok(()) }),
            draining: false,
            shut: false,
        }
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
        &self.transport
    }

    /// The read limit (asyncio's `limit=`): reading pauses while more than
    /// twice this waits unread, and resumes at or below it. Default
    /// [`DEFAULT_READ_LIMIT`](super::DEFAULT_READ_LIMIT), 64 KiB.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::streams::TransportStream;
    /// let (a, _b) = tokio::io::duplex(64);
    /// let stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
    /// stream.set_read_limit(1024);
    /// assert_eq!(stream.read_limit(), 1024);
    /// # Ok(()) }
    /// ```
    pub fn set_read_limit(&self, limit: usize) {
        let mut st = self.shared.lock();
        st.limit = limit.max(1);
        // A lower limit takes effect at the next received chunk, a higher
        // one may resume reading now.
        st.consumed(0);
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
        self.shared.lock().limit
    }

    /// Make `self.current` non-empty; `Ready(Ok)` with it empty is the end
    /// of file.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.current.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let mut st = self.shared.lock();
        if let Some(chunk) = st.chunks.pop_front() {
            st.consumed(chunk.len());
            self.current = chunk;
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = st.error.take() {
            return Poll::Ready(Err(err));
        }
        if st.eof || st.lost {
            return Poll::Ready(Ok(()));
        }
        st.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Wait until the write buffer is at or below `limit`. Once the
    /// connection is lost, wait for its end instead and report whether
    /// everything written was delivered ([`Transport::drain`]'s rule).
    fn poll_room(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<()>> {
        loop {
            if self.draining {
                let done = ready!(self.drain.poll(cx));
                self.draining = false;
                done?;
                if self.transport.shared.has(LOST) {
                    return Poll::Ready(Ok(()));
                }
            }
            if !self.transport.shared.has(LOST) && self.transport.get_write_buffer_size() <= limit {
                return Poll::Ready(Ok(()));
            }
            let t = self.transport.clone();
            self.drain.set(async move { t.drain().await });
            self.draining = true;
        }
    }

    /// Queue the first `n` bytes of what `data(n)` copies (`len` offered,
    /// non-zero) on the transport, `n` at most [`max_write`]: returns `n`.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        data: impl FnOnce(usize) -> Bytes,
    ) -> Poll<io::Result<usize>> {
        if self.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        let high = self.transport.get_write_buffer_limits().1;
        ready!(self.poll_room(cx, high))?;
        {
            let st = self.shared.lock();
            if st.lost {
                return Poll::Ready(Err(st.lost_error()));
            }
        }
        if self.transport.is_closing() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the transport is closing",
            )));
        }
        let n = len.min(max_write(high));
        self.transport.write(data(n))?;
        Poll::Ready(Ok(n))
    }
}

/// The most one `poll_write` takes: the high watermark, but at least
/// 16 KiB (a watermark of a few bytes must not make every write tiny). So
/// the write buffer never holds more than the high watermark plus this.
fn max_write(high: usize) -> usize {
    high.max(16 * 1024)
}

impl Drop for TransportStream {
    fn drop(&mut self) {
        self.transport.close();
    }
}

impl AsyncRead for TransportStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_chunk(cx))?;
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for TransportStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_chunk(cx))?;
        Poll::Ready(Ok(&this.current[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.current.advance(amt.min(this.current.len()));
    }
}

impl AsyncWrite for TransportStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.get_mut()
            .poll_send(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        // One copy into one buffer: the transport sends it in one piece.
        self.get_mut().poll_send(cx, len, |n| {
            let mut data = BytesMut::with_capacity(n);
            for b in bufs {
                let take = b.len().min(n - data.len());
                data.extend_from_slice(&b[..take]);
                if data.len() == n {
                    break;
                }
            }
            data.freeze()
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let low = this.transport.get_write_buffer_limits().0;
        this.poll_room(cx, low)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.transport.shared.mode == Mode::ReadOnly {
            return Poll::Ready(Ok(()));
        }
        if !this.shut {
            this.shut = true;
            if this.transport.can_write_eof() {
                this.transport.write_eof()?;
            } else {
                this.transport.close();
            }
        }
        let low = this.transport.get_write_buffer_limits().0;
        this.poll_room(cx, low)
    }
}
