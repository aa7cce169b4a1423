//! What every kind of transport handle shares with its task: the flag word,
//! the write-buffer counter and watermarks, the count of writes dropped after
//! the loss, the addresses captured at creation, and the wake-ups behind
//! `drain()` and `closed()`. Stream and datagram transports embed a
//! [`Common`] in their own shared state.

use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::exception::{ExceptionContext, call_exception_handler};
use crate::extra::Extra;
use crate::stats::{Stats, TransportStats};
use crate::{TransportError, WriteLimits};

/// After this many writes dropped because the transport was lost, every
/// further one is reported (asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`).
pub(crate) const LOG_THRESHOLD_FOR_CONNLOST_WRITES: usize = 5;

/// What is reported for a write dropped after a socket's loss (asyncio's
/// message).
pub(crate) const SOCKET_DROPPED_MSG: &str = "socket.send() raised exception.";

/// Bits of [`Common::flags`].
pub(crate) mod flags {
    /// `close()`/`abort()` was called or the task began closing.
    pub(crate) const CLOSING: u8 = 1;
    /// `pause_reading()` is in force.
    pub(crate) const READ_PAUSED: u8 = 2;
    /// Reading ended for good (EOF, close, loss).
    pub(crate) const READ_DONE: u8 = 4;
    /// The transport is lost: writes are dropped.
    pub(crate) const LOST: u8 = 8;
    /// `connection_lost` has returned and the I/O is released.
    pub(crate) const FINISHED: u8 = 16;
    /// The transport was lost with written data still unsent.
    pub(crate) const DISCARDED: u8 = 32;
    /// A bit each kind of transport may use for itself.
    pub(crate) const KIND_0: u8 = 64;
    /// A second bit each kind of transport may use for itself.
    pub(crate) const KIND_1: u8 = 128;
}

use flags::{DISCARDED, FINISHED, LOST};

/// State shared by every handle of one transport and its task.
pub(crate) struct Common {
    /// Bytes accepted and not yet handed to the kernel (inbox and queue) are
    /// `buffered + buffered_here`. `buffered` is added to by any thread
    /// (writes that travel the channel); `buffered_here` only by the thread
    /// running the transport's task (writes made inside its callbacks), with
    /// a plain load and store: no locked instruction on the hot path. Bytes
    /// that leave the buffer come off `buffered_here` first.
    buffered: AtomicUsize,
    buffered_here: AtomicUsize,
    pub(crate) flags: AtomicU8,
    low: AtomicUsize,
    high: AtomicUsize,
    pub(crate) dropped_writes: AtomicUsize,
    pub(crate) extra: Extra,
    /// The counters [`stats`](Self::stats) reads.
    pub(crate) stats: Stats,
    /// The transport's tracing span (`Span::none()` without a subscriber).
    pub(crate) span: tracing::Span,
    finished: Notify,
    drained: Notify,
    drain_waiters: AtomicUsize,
}

impl Common {
    pub(crate) fn new(extra: Extra, limits: WriteLimits, span: tracing::Span) -> Self {
        Common {
            buffered: AtomicUsize::new(0),
            buffered_here: AtomicUsize::new(0),
            flags: AtomicU8::new(0),
            low: AtomicUsize::new(limits.low),
            high: AtomicUsize::new(limits.high),
            dropped_writes: AtomicUsize::new(0),
            extra,
            stats: Stats::new(),
            span,
            finished: Notify::new(),
            drained: Notify::new(),
            drain_waiters: AtomicUsize::new(0),
        }
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> TransportStats {
        self.stats
            .snapshot(self.dropped_writes.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn has(&self, bits: u8) -> bool {
        self.flags.load(Ordering::Acquire) & bits != 0
    }

    pub(crate) fn set(&self, bits: u8) {
        self.flags.fetch_or(bits, Ordering::AcqRel);
    }

    /// `close()`'s part here, the same for every kind of transport: mark
    /// the transport closing and return whether its task must be told
    /// (`false` once closing or lost: `close()` is then a silent no-op).
    pub(crate) fn mark_closing(&self) -> bool {
        if self.is_closing() {
            return false;
        }
        self.set(flags::CLOSING);
        true
    }

    /// `abort()`'s part here: as [`mark_closing`](Self::mark_closing), but
    /// an abort after `close()` still goes to the task (it drops the buffer);
    /// only a lost transport ignores it. As in asyncio, the transport is lost
    /// the moment `abort()` returns, from any thread: the write buffer size
    /// reads 0 and later writes are dropped and counted; the task discards
    /// the buffer when the command reaches it.
    pub(crate) fn mark_aborting(&self) -> bool {
        let before = self.flags.fetch_or(flags::CLOSING | LOST, Ordering::AcqRel);
        before & LOST == 0
    }

    /// asyncio's `is_closing()`: closing, or already lost.
    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.has(flags::CLOSING | LOST)
    }

    pub(crate) fn clear(&self, bits: u8) {
        self.flags.fetch_and(!bits, Ordering::AcqRel);
    }

    pub(crate) fn low(&self) -> usize {
        self.low.load(Ordering::Acquire)
    }

    /// `(low, high)`, low first as in asyncio.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low(), self.high.load(Ordering::Acquire))
    }

    /// Validate and store new watermarks (asyncio's rules); the caller
    /// tells its task.
    pub(crate) fn set_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<WriteLimits, TransportError> {
        let limits = WriteLimits::new(high, low)?;
        self.low.store(limits.low, Ordering::Release);
        self.high.store(limits.high, Ordering::Release);
        Ok(limits)
    }

    /// Bytes accepted by `write` (or `sendto`) and not yet sent: exact from
    /// any thread once the call that added them has returned. (Two loads: a
    /// reader racing with the task's sends and another thread's writes may
    /// see a total between the values before and after them.) 0 once the
    /// transport is lost: nothing more will be sent (the task releases the
    /// counted bytes as it discards them).
    #[inline]
    pub(crate) fn buffer_size(&self) -> usize {
        if self.has(LOST) {
            return 0;
        }
        self.counted()
    }

    /// The counters' total, lost or not.
    #[inline]
    fn counted(&self) -> usize {
        self.buffered_here.load(Ordering::Acquire) + self.buffered.load(Ordering::Acquire)
    }

    /// Count `n` bytes written from any thread.
    #[inline]
    pub(crate) fn add_buffered(&self, n: usize) {
        self.buffered.fetch_add(n, Ordering::AcqRel);
    }

    /// Count `n` bytes written inside one of the transport's callbacks.
    /// Only the thread running the transport's task may call this (it is the
    /// only writer of `buffered_here`, so a load and a store suffice).
    #[inline]
    pub(crate) fn add_buffered_here(&self, n: usize) {
        let here = self.buffered_here.load(Ordering::Relaxed);
        self.buffered_here.store(here + n, Ordering::Release);
    }

    /// Uncount `n` bytes of a write from any thread that never reached the
    /// task.
    pub(crate) fn unadd_buffered(&self, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
    }

    /// Whether the write buffer is strictly over the high watermark.
    #[inline]
    pub(crate) fn over_high(&self) -> bool {
        self.counted() > self.high.load(Ordering::Relaxed)
    }

    /// Count one write (one `write`, `writelines` or `sendto` call) dropped
    /// because the transport is lost, and report it once the count reaches
    /// the threshold. A later `drain()` reports the loss.
    pub(crate) fn count_dropped_write(&self) {
        self.count_dropped_write_as(SOCKET_DROPPED_MSG);
    }

    /// [`count_dropped_write`](Self::count_dropped_write), reporting with
    /// `message` (a pipe's differs from a socket's).
    pub(crate) fn count_dropped_write_as(&self, message: &'static str) {
        self.count_dropped_write_after(message, 1);
    }

    /// [`count_dropped_write_as`](Self::count_dropped_write_as), where
    /// asyncio's counter starts at `start` (1: the loss counts as one, as
    /// for sockets; 0: it does not), so the report comes at the
    /// `LOG_THRESHOLD_FOR_CONNLOST_WRITES + 1 - start`th dropped write.
    pub(crate) fn count_dropped_write_after(&self, message: &'static str, start: usize) {
        self.set(DISCARDED);
        let n = self.dropped_writes.fetch_add(1, Ordering::Relaxed) + start;
        if n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
            call_exception_handler(
                &ExceptionContext::new(message)
                    .with_peername(self.extra.peer_inet())
                    .with_sockname(self.extra.sockname.as_ref().and_then(|a| a.as_inet())),
            );
        }
    }

    /// `n` counted bytes left the buffer (sent, dropped or discarded).
    /// Only the thread running the transport's task may call this.
    #[inline]
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            let here = self.buffered_here.load(Ordering::Relaxed);
            let from_here = n.min(here);
            // The total only has to go down by `n`: which counter gives the
            // bytes does not matter, and neither can go below zero (`n` is
            // at most the total, which is at least `buffered`'s share).
            self.buffered_here
                .store(here - from_here, Ordering::Release);
            if n > from_here {
                self.buffered.fetch_sub(n - from_here, Ordering::AcqRel);
            }
            self.notify_drained();
        }
    }

    /// Wake `drain()` callers if the buffer is at or below the low
    /// watermark (a lost transport wakes them in [`finish`](Self::finish)).
    #[inline]
    pub(crate) fn notify_drained(&self) {
        if self.drain_waiters.load(Ordering::Acquire) > 0 && self.counted() <= self.low() {
            self.drained.notify_waiters();
        }
    }

    /// The task released the I/O after `connection_lost`: wake everyone.
    pub(crate) fn finish(&self) {
        self.set(FINISHED);
        self.finished.notify_waiters();
        if self.drain_waiters.load(Ordering::Acquire) > 0 {
            self.drained.notify_waiters();
        }
    }

    /// Resolves when the buffer is at or below the low watermark. Once the
    /// transport is lost it waits for the task to finish (by then every
    /// write is either sent or counted as dropped) and resolves to an error
    /// if any write was not delivered. `poke` must wake the
    /// task so that it calls [`notify_drained`](Self::notify_drained) (the
    /// inbox's `poke`): the task lowers `buffered_here` with a plain store,
    /// which the CPU may order after its check for waiters, so a waiter that
    /// registered just then would otherwise sleep through the drain.
    pub(crate) async fn drain(&self, poke: impl Fn()) -> io::Result<()> {
        loop {
            let mut notified = pin!(self.drained.notified());
            notified.as_mut().enable();
            if let Some(done) = self.drained_now() {
                return done;
            }
            self.drain_waiters.fetch_add(1, Ordering::AcqRel);
            // Re-check after registering, so a drain between the check and
            // the increment is not missed.
            let done = self.drained_now();
            if done.is_none() {
                poke();
                notified.await;
            }
            self.drain_waiters.fetch_sub(1, Ordering::AcqRel);
            if let Some(done) = done {
                return done;
            }
        }
    }

    fn drained_now(&self) -> Option<io::Result<()>> {
        let flags = self.flags.load(Ordering::Acquire);
        if flags & FINISHED != 0 {
            return Some(if flags & DISCARDED != 0 {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection lost with data unsent",
                ))
            } else {
                Ok(())
            });
        }
        if flags & LOST != 0 {
            // Writes may still be on their way to the task, to be counted
            // as dropped when it finishes: wait for that.
            return None;
        }
        (self.counted() <= self.low()).then_some(Ok(()))
    }

    /// Resolves once `connection_lost` has run and the I/O is released.
    pub(crate) async fn closed(&self) {
        loop {
            let mut notified = pin!(self.finished.notified());
            notified.as_mut().enable();
            if self.has(FINISHED) {
                return;
            }
            notified.await;
        }
    }
}
