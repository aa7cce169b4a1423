//! The two halves of a stream's work, shared by [`TransportStream`] and
//! its split halves ([`StreamReader`], [`StreamWriter`]): reading from the
//! protocol's queue ([`ReadSide`]), writing with backpressure
//! ([`WriteSide`]), and closing the transport when the last part goes
//! ([`Closer`]).
//!
//! [`TransportStream`]: super::TransportStream
//! [`StreamReader`]: super::StreamReader
//! [`StreamWriter`]: super::StreamWriter

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::ReadBuf;
use tokio_util::sync::ReusableBoxFuture;

use super::protocol::Shared;
use crate::Transport;
use crate::stream::handle::LOST;
use crate::stream::stream_io::Mode;

/// Closes the transport when dropped: held by every part of a stream, so
/// the transport closes when the last one goes.
pub(crate) struct Closer(pub(crate) Transport);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The reading half's state: the queue it shares with the protocol, and
/// the chunk being read.
pub(crate) struct ReadSide {
    pub(crate) shared: Arc<Shared>,
    /// The chunk being read (taken from the shared queue).
    current: Bytes,
    _closer: Arc<Closer>,
}

impl ReadSide {
    pub(crate) fn new(shared: Arc<Shared>, closer: Arc<Closer>) -> ReadSide {
        ReadSide {
            shared,
            current: Bytes::new(),
            _closer: closer,
        }
    }

    /// Bytes received and not read yet.
    pub(crate) fn unread(&self) -> usize {
        self.current.len() + self.shared.lock().buffered
    }

    pub(crate) fn set_limit(&self, limit: usize) -> io::Result<()> {
        if limit == 0 {
            // asyncio's `StreamReader(limit=0)`: ValueError.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Limit cannot be <= 0",
            ));
        }
        let mut st = self.shared.lock();
        st.limit = limit;
        // A lower limit takes effect at the next received chunk, a higher
        // one may resume reading now.
        st.consumed(0);
        Ok(())
    }

    pub(crate) fn limit(&self) -> usize {
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

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_chunk(cx))?;
        let n = self.current.len().min(buf.remaining());
        buf.put_slice(&self.current[..n]);
        self.current.advance(n);
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        ready!(self.poll_chunk(cx))?;
        Poll::Ready(Ok(&self.current[..]))
    }

    pub(crate) fn consume(&mut self, amt: usize) {
        self.current.advance(amt.min(self.current.len()));
    }
}

/// The writing half's state: the transport, and `Transport::drain` while a
/// write, a flush or a shutdown waits for it.
pub(crate) struct WriteSide {
    pub(crate) transport: Transport,
    shared: Arc<Shared>,
    drain: ReusableBoxFuture<'static, io::Result<()>>,
    draining: bool,
    /// `poll_shutdown` was called.
    shut: bool,
    _closer: Arc<Closer>,
}

impl WriteSide {
    pub(crate) fn new(transport: Transport, shared: Arc<Shared>, closer: Arc<Closer>) -> Self {
        WriteSide {
            transport,
            shared,
            drain: ReusableBoxFuture::new(async { Ok(()) }),
            draining: false,
            shut: false,
            _closer: closer,
        }
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

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.poll_send(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
    }

    pub(crate) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        // One copy into one buffer: the transport sends it in one piece.
        self.poll_send(cx, len, |n| {
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

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let low = self.transport.get_write_buffer_limits().0;
        self.poll_room(cx, low)
    }

    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.transport.shared.mode == Mode::ReadOnly {
            return Poll::Ready(Ok(()));
        }
        if !self.shut {
            self.shut = true;
            if self.transport.can_write_eof() {
                self.transport.write_eof()?;
            } else {
                self.transport.close();
            }
        }
        self.poll_flush(cx)
    }
}

/// The most one `poll_write` takes: the high watermark, but at least
/// 16 KiB (a watermark of a few bytes must not make every write tiny). So
/// the write buffer never holds more than the high watermark plus this.
fn max_write(high: usize) -> usize {
    high.max(16 * 1024)
}
