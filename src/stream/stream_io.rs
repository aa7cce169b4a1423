//! What the stream driver needs of its I/O: bytes both ways, and, for a
//! [`BufferedProtocol`](crate::BufferedProtocol), whether a read may find
//! anything before the protocol is asked for a buffer.
//!
//! [`StreamIo`] is implemented by the sockets this crate makes transports of
//! (TCP and Unix streams), which can say when they are readable without
//! reading, and by [`AnyIo`], the wrapper for any other
//! `AsyncRead + AsyncWrite` (`connect_io`), which cannot and so is always
//! "maybe readable".

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream transport's I/O.
pub(crate) trait StreamIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Ready once a read may find data, EOF or an error; otherwise pending,
    /// with `cx`'s waker woken when that changes. Ready may be a false
    /// alarm (the read then finds nothing). The default is always ready.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl StreamIo for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

impl StreamIo for tokio::net::UnixStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::UnixStream::poll_read_ready(self, cx)
    }
}

/// Any `AsyncRead + AsyncWrite`, as a [`StreamIo`] with no readiness to ask.
pub(crate) struct AnyIo<IO>(pub(crate) IO);

impl<IO> StreamIo for AnyIo<IO> where IO: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<IO: AsyncRead + Unpin> AsyncRead for AnyIo<IO> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AnyIo<IO> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
