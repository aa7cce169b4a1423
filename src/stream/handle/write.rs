//! [`Transport`]'s write side (asyncio's `WriteTransport`): `write` and its
//! lean in-callback path, `writelines`, `write_eof`, the buffer size and the
//! watermarks.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{CLOSING, CURRENT, Command, Core, EOF_WRITTEN, LOST, SIBLING, Transport};
use crate::TransportError;
use crate::context;
use crate::stream::state::WriteOutcome;
use crate::stream::stream_io::Mode;

/// [`TransportError::Unsupported`]'s message for a write on a read pipe.
const READ_PIPE_WRITE: &str = "write() on a read-only pipe transport";
/// ... for `writelines`.
const READ_PIPE_WRITELINES: &str = "writelines() on a read-only pipe transport";

impl Transport {
    /// Queue `data` for sending (asyncio's `write`). Never blocks. Empty data
    /// is ignored. After the connection is lost the data is dropped and
    /// counted ([`Transport::dropped_writes`]), never an error. After
    /// [`write_eof`](Self::write_eof) it is an error and nothing is queued.
    ///
    /// Pipes: on a read pipe every `write` is an error
    /// ([`TransportError::Unsupported`]); on a write pipe a `write` after
    /// [`close`](Self::close) or `write_eof` is dropped and counted, like one
    /// after the loss (asyncio's rule for pipes).
    ///
    /// Pass a received `Bytes` to echo it without a copy.
    ///
    /// # When the data goes out, and flow control
    ///
    /// `write` never touches the socket itself (asyncio's tries to send at
    /// once when its buffer is empty). Data written inside one of this
    /// transport's callbacks is sent right after the callback returns, in
    /// one vectored write; data written from anywhere else is sent by the
    /// connection's task as soon as it runs. Until then the bytes count in
    /// [`get_write_buffer_size`](Self::get_write_buffer_size): inside a
    /// callback, after `write(100_000)` the size reads at least 100,000 where
    /// CPython would often read 0. If a callback's writes take that size
    /// strictly over the high watermark, `pause_writing` runs right after
    /// the callback, before the send, and `resume_writing` once the send
    /// leaves at most the low watermark (at once if the kernel took it all).
    ///
    /// So inside callbacks a producer writes until the size goes over the
    /// high watermark (or [`is_closing`](Self::is_closing)) and goes on in
    /// [`resume_writing`](crate::BaseProtocol::resume_writing) (asyncio's
    /// `while not paused: write()` loop would never stop inside one
    /// callback: [`pause_writing`](crate::BaseProtocol::pause_writing)
    /// cannot interrupt it). Outside callbacks, await [`drain`](Self::drain):
    /// a task that only watches a flag set by `pause_writing` keeps writing
    /// until the connection's task has run the callback, and can buffer many
    /// times the high watermark meanwhile (70 to 117 times in one test run).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.write(&b"ping"[..]).unwrap();
    /// t.write(vec![1u8, 2, 3]).unwrap();
    /// t.write_eof().unwrap();
    /// assert!(t.write("late").is_err());
    /// # }
    /// ```
    pub fn write(&self, data: impl Into<Bytes>) -> Result<(), TransportError> {
        self.write_bytes(data.into())
    }

    /// [`write`](Self::write) after the conversion. The common case is kept
    /// lean: a non-empty write inside one of this transport's callbacks,
    /// with nothing unusual going on, goes straight into the write queue.
    #[inline(always)]
    fn write_bytes(&self, data: Bytes) -> Result<(), TransportError> {
        let shared = &*self.shared;
        if shared.flags.load(Ordering::Acquire) & (EOF_WRITTEN | LOST) != 0 || data.is_empty() {
            return self.write_unusual(data);
        }
        let len = data.len();
        // `try_write` hands back what it refuses, so that nothing is dropped
        // (no user code runs) while the frame is borrowed.
        match context::with_frame_own(&CURRENT, shared.id, data, |core, data| core.try_write(data))
        {
            // Inside a callback, on the task's thread: counted before
            // `write` returns, and before the task can send any of it.
            Ok(Ok(())) => {
                shared.add_buffered_here(len);
                shared.stats.wrote_here();
            }
            Ok(Err((WriteOutcome::Dropped, _))) => {
                shared.stats.wrote_here();
                shared.count_dropped_write();
            }
            Ok(Err(_)) => shared.stats.wrote_here(),
            Err(data) => self.write_outside(data),
        }
        Ok(())
    }

    /// A write from outside the callbacks: counted, then sent to the task;
    /// or, from a callback of a sibling on the same task (see
    /// [`SIBLING`]), straight into the queue.
    #[inline(never)]
    fn write_outside(&self, data: Bytes) {
        let data = match self.write_sibling(data) {
            Ok(()) => return,
            Err(data) => data,
        };
        self.shared.stats.wrote();
        self.shared.add_buffered(data.len());
        self.send_outside(Command::Write(data));
    }

    /// A write made while this transport's task polls a sibling transport
    /// on this thread (a child's stdin, written from its stdout's
    /// callback): queued at once, as the transport's own callbacks do, and
    /// sent when the task flushes it after the sibling's poll. Handed back
    /// when there is no such sibling, or when commands from elsewhere wait
    /// in the channel (they go first: the order is kept), or when a command
    /// is waiting on the frame.
    #[inline]
    fn write_sibling(&self, data: Bytes) -> Result<(), Bytes> {
        let shared = &*self.shared;
        if shared.inbox.is_pending() {
            return Err(data);
        }
        let len = data.len();
        // As in `write_bytes`: nothing is dropped while the frame is
        // borrowed, so no user code runs there.
        let outcome = context::with_frame_own(&SIBLING, shared.id, data, |core, data| {
            if core.commands.is_empty() {
                Ok(core.sm.try_write(data))
            } else {
                Err(data)
            }
        });
        match outcome {
            Ok(Ok(Ok(()))) => shared.add_buffered_here(len),
            Ok(Ok(Err((WriteOutcome::Dropped, _)))) => shared.count_dropped_write(),
            Ok(Ok(Err(_))) => {}
            Ok(Err(data)) | Err(data) => return Err(data),
        }
        // (The sibling runs on this transport's task: its thread.)
        shared.stats.wrote_here();
        Ok(())
    }

    /// An empty write, or one after `write_eof()` or the connection's loss,
    /// or any write on a read pipe (its `EOF_WRITTEN` is set from the start).
    #[cold]
    fn write_unusual(&self, data: Bytes) -> Result<(), TransportError> {
        let flags = self.shared.flags.load(Ordering::Acquire);
        if flags & EOF_WRITTEN != 0 {
            return self.refuse_after_eof(!data.is_empty(), false);
        }
        if !data.is_empty() && flags & LOST != 0 {
            self.shared.stats.wrote();
            self.shared.count_dropped_write();
        }
        Ok(())
    }

    /// Queue several buffers at once (asyncio's `writelines`): they go out in
    /// one vectored write, and flow control applies as for
    /// [`write`](Self::write). Empty chunks are skipped. The errors and the
    /// pipe rules are [`write`](Self::write)'s.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.writelines([&b"GET / HTTP/1.1\r\n"[..], b"", b"\r\n"]).unwrap();
    /// assert_eq!(t.get_write_buffer_size() <= 18, true);
    /// # }
    /// ```
    pub fn writelines<I>(&self, chunks: I) -> Result<(), TransportError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let flags = self.shared.flags.load(Ordering::Acquire);
        if flags & EOF_WRITTEN != 0 {
            if self.shared.mode == Mode::WriteOnly {
                let mut chunks = chunks.into_iter().map(Into::into);
                let has_data = chunks.any(|c: Bytes| !c.is_empty());
                return self.refuse_after_eof(has_data, true);
            }
            return self.refuse_after_eof(false, true);
        }
        // Inside a callback that has issued no other command yet (the common
        // case), the chunks go straight into the write queue.
        let here = flags & LOST == 0
            && context::with_frame_own(&CURRENT, self.shared.id, (), |core, ()| {
                core.commands.is_empty()
            }) == Ok(true);
        if here {
            self.writelines_here(chunks);
            return Ok(());
        }
        let chunks: Vec<Bytes> = chunks
            .into_iter()
            .map(Into::into)
            .filter(|c: &Bytes| !c.is_empty())
            .collect();
        if chunks.is_empty() {
            return Ok(());
        }
        if flags & LOST != 0 {
            self.shared.stats.wrote();
            self.shared.count_dropped_write();
            return Ok(());
        }
        let total: usize = chunks.iter().map(Bytes::len).sum();
        self.shared.stats.wrote();
        self.shared.add_buffered(total);
        self.send(Command::WriteMany(chunks));
        Ok(())
    }

    /// `writelines` inside one of this transport's callbacks: each chunk
    /// goes straight into the write queue, as [`write`](Self::write) does
    /// (no list, no command). Nothing can come between them: the queue is
    /// sent after the callback returns, in one vectored write. One call
    /// dropped counts as one dropped write.
    fn writelines_here<I>(&self, chunks: I)
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let shared = &*self.shared;
        let mut queued = 0;
        let mut dropped = false;
        for chunk in chunks {
            let data: Bytes = chunk.into();
            if data.is_empty() {
                continue;
            }
            let len = data.len();
            match context::with_frame_own(&CURRENT, shared.id, data, Core::try_write) {
                Ok(Ok(())) => queued += len,
                Ok(Err((WriteOutcome::Dropped, _))) => dropped = true,
                Ok(Err(_)) => {}
                // The conversion ran code that cannot leave the callback's
                // scope; kept for safety: the channel keeps the order.
                Err(data) => self.write_outside(data),
            }
        }
        // Counted before `writelines` returns, and before the task can send
        // any of it (it runs after the callback).
        shared.add_buffered_here(queued);
        if queued > 0 || dropped {
            shared.stats.wrote_here();
        }
        if dropped {
            shared.count_dropped_write();
        }
    }

    /// A write or `writelines` after `EOF_WRITTEN`: an error on a two-way
    /// transport (`write_eof()` was called) and on a read pipe (it never
    /// writes); dropped and counted on a closing write pipe (asyncio's rule
    /// for pipes: `write_eof()` and `close()` are the same there).
    #[cold]
    fn refuse_after_eof(&self, has_data: bool, lines: bool) -> Result<(), TransportError> {
        match self.shared.mode {
            Mode::ReadOnly if lines => Err(TransportError::Unsupported(READ_PIPE_WRITELINES)),
            Mode::ReadOnly => Err(TransportError::Unsupported(READ_PIPE_WRITE)),
            Mode::WriteOnly => {
                if has_data {
                    self.shared.count_dropped_write();
                }
                Ok(())
            }
            Mode::Duplex if lines => Err(TransportError::WritelinesAfterEof),
            Mode::Duplex => Err(TransportError::WriteAfterEof),
        }
    }

    /// Half-close: shut down the write half once the buffer is flushed
    /// (asyncio's `write_eof`). Data is still received afterwards. Later
    /// writes are errors. A no-op when closing or already done.
    ///
    /// On a write pipe (asyncio's rule) it is [`close`](Self::close):
    /// [`is_closing`](Self::is_closing) is true at once, the buffer is
    /// flushed, then `connection_lost(None)`; later writes are dropped and
    /// counted, not errors.
    ///
    /// # Errors
    ///
    /// [`TransportError::Unsupported`] on a transport that cannot
    /// half-close ([`can_write_eof`](Self::can_write_eof) is false: TLS,
    /// whose only end is close_notify; asyncio raises
    /// `NotImplementedError`), and on a read pipe, which has no write half.
    /// Nothing changes then.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(t.can_write_eof());
    /// t.write_eof().unwrap();
    /// t.write_eof().unwrap(); // idempotent
    /// # }
    /// ```
    pub fn write_eof(&self) -> Result<(), TransportError> {
        if !self.shared.can_write_eof.load(Ordering::Acquire) {
            return Err(TransportError::Unsupported(match self.shared.mode {
                Mode::ReadOnly => "write_eof() on a read-only pipe transport",
                _ => "write_eof() on a transport that cannot half-close (TLS)",
            }));
        }
        if self.shared.mode == Mode::WriteOnly {
            // A write pipe's end of file is its close (asyncio's rule):
            // `is_closing()` is true at once, the buffer is flushed, then
            // `connection_lost(None)`.
            self.close();
            return Ok(());
        }
        if self.shared.has(CLOSING | EOF_WRITTEN | LOST) {
            return Ok(());
        }
        self.shared.set(EOF_WRITTEN);
        self.send(Command::WriteEof);
        Ok(())
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: `true` for TCP,
    /// Unix streams, write pipes and any I/O whose shutdown half-closes;
    /// `false` for TLS and read pipes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(t.can_write_eof());
    /// # }
    /// ```
    pub fn can_write_eof(&self) -> bool {
        self.shared.can_write_eof.load(Ordering::Acquire)
    }

    /// Bytes written and not yet handed to the kernel, exact the moment
    /// [`write`](Self::write) returns, from any thread.
    ///
    /// Inside a callback it counts everything the callback has written so
    /// far, which is sent only after the callback returns (in CPython, whose
    /// `write()` tries the socket first, the same size would often be 0).
    /// When a callback's writes take it strictly over the high watermark,
    /// `pause_writing` follows right after the callback and `resume_writing`
    /// once the buffer is at or below the low watermark again, so a producer
    /// may stop writing when this size goes over the high watermark and go
    /// on in `resume_writing`. Outside callbacks, wait with
    /// [`drain`](Self::drain).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.write(vec![0u8; 1000]).unwrap();
    /// assert_eq!(t.get_write_buffer_size(), 1000);
    /// # }
    /// ```
    pub fn get_write_buffer_size(&self) -> usize {
        self.shared.buffer_size()
    }

    /// The watermarks as `(low, high)`, low first as in asyncio.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    /// # }
    /// ```
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.shared.limits()
    }

    /// Set the watermarks (asyncio's `set_write_buffer_limits(high, low)`):
    /// neither → 64 KiB / 16 KiB; only `high` → `low = high / 4`; only `low`
    /// → `high = 4 * low`; `low > high` → an error and nothing changes.
    /// Effective at once: going strictly over the new high pauses the protocol.
    /// On a read pipe, which never writes, it is
    /// [`TransportError::Unsupported`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.set_write_buffer_limits(Some(1000), None).unwrap();
    /// assert_eq!(t.get_write_buffer_limits(), (250, 1000));
    /// assert!(t.set_write_buffer_limits(Some(10), Some(20)).is_err());
    /// # }
    /// ```
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        if self.shared.mode == Mode::ReadOnly {
            return Err(TransportError::Unsupported(
                "set_write_buffer_limits() on a read-only pipe transport",
            ));
        }
        let limits = self.shared.set_limits(high, low)?;
        self.send(Command::SetLimits(limits));
        Ok(())
    }

    /// Close gracefully (asyncio's `close`): stop reading, flush the write
    /// buffer, then deliver `connection_lost(None)`. Idempotent; a no-op
    /// after the connection is lost. On a write pipe, writes made after it
    /// are dropped and counted (asyncio's rule for pipes; a socket still
    /// sends them).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.close();
    /// assert!(t.is_closing());
    /// t.closed().await;
    /// t.close(); // silent no-op
    /// # }
    /// ```
    pub fn close(&self) {
        if self.shared.mode == Mode::WriteOnly {
            // A write pipe drops writes once closing (asyncio's rule).
            self.shared.set(EOF_WRITTEN);
        }
        if self.shared.mark_closing() {
            self.send(Command::Close);
        }
    }

    /// Close at once (asyncio's `abort`): drop the write buffer and deliver
    /// `connection_lost(None)`. A no-op after the connection is lost. As in
    /// asyncio, the transport is lost when this returns, from any thread:
    /// [`get_write_buffer_size`](Self::get_write_buffer_size) is 0 and later
    /// writes are dropped and counted; the connection's task discards the
    /// buffer when the command reaches it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// t.write(vec![0u8; 1000]).unwrap();
    /// t.abort();
    /// assert_eq!(t.get_write_buffer_size(), 0);
    /// t.closed().await;
    /// assert!(t.drain().await.is_err(), "the 1000 bytes were discarded");
    /// # }
    /// ```
    pub fn abort(&self) {
        if self.shared.mark_aborting() {
            self.send(Command::Abort);
        }
    }

    /// Whether the transport is closing or closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(64);
    /// let t = tokio_transports::connect_io(|| (), a).await.unwrap();
    /// assert!(!t.is_closing());
    /// # }
    /// ```
    pub fn is_closing(&self) -> bool {
        self.shared.is_closing()
    }
}
