//! The stream driver's write side: flushing the queue (one write for what a
//! callback wrote, a vectored write for more) and `settle`, which runs the
//! state machine's events and finishes closes and half-closes.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::{Driver, Lost};
use crate::drive::Drive;
use crate::stream::state::{Event, Phase, StreamState};
use crate::stream::stream_io::StreamIo;

/// At most this many buffers go into one vectored write.
const MAX_IOV: usize = 64;
/// `resume_writing` calls in one `settle` pass before the task stops sending
/// and yields (see `settle_busy`).
const RESUMES_PER_PASS: usize = 16;
/// A vectored write of at most this many buffers uses a small array (a relay
/// queues a few reads at a time; filling 64 empty slices cost a pipe relay
/// about 8 % of its instructions).
const FEW_IOV: usize = 8;

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// Write as much of the queue as the I/O takes now. Returns `true` if
    /// the I/O cannot take more now (the task will be woken when it can).
    #[inline(always)]
    pub(super) fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        while self.core.sm.queued() > 0 {
            match self.poll_write_queue(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    let sent = self.core.sm.consume(n);
                    self.handle.shared.stats.sent(sent);
                    self.handle.shared.release(sent);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Ok(_)) => {
                    self.fatal(io::ErrorKind::WriteZero.into());
                    return true;
                }
                Poll::Ready(Err(e)) => {
                    if IO::MODE.is_pipe() {
                        // Before the loss is marked: see `count_dropped_write`.
                        self.handle
                            .shared
                            .write_failed
                            .store(true, Ordering::Release);
                    }
                    self.fatal(e);
                    return true;
                }
                Poll::Pending => return true,
            }
        }
        if IO::TLS {
            return self.flush_tls(cx);
        }
        false
    }

    /// TLS: send the records rustls still holds once the queue is empty.
    /// Returns `true` if the I/O cannot take them now.
    fn flush_tls(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(io) = self.io.as_mut() else {
            return false;
        };
        if !io.output_pending() {
            return false;
        }
        match Pin::new(io).poll_flush(cx) {
            Poll::Ready(Ok(())) => false,
            Poll::Ready(Err(e)) => {
                self.fatal(e);
                true
            }
            Poll::Pending => true,
        }
    }

    /// Whether anything waits to be written: queued bytes, or (TLS)
    /// records rustls holds.
    #[inline]
    pub(super) fn has_output(&self) -> bool {
        self.core.sm.queued() > 0
            || (IO::TLS && self.io.as_ref().is_some_and(|io| io.output_pending()))
    }

    /// One write attempt: the only queued chunk as it is (the common case:
    /// one callback wrote one buffer), or several in one vectored write.
    #[inline]
    pub(super) fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Pending;
        };
        match self.core.sm.single_chunk() {
            Some(chunk) => Pin::new(io).poll_write(cx, chunk),
            None => Self::poll_write_vectored(io, &self.core.sm, cx),
        }
    }

    #[inline(never)]
    fn poll_write_vectored(
        io: &mut IO,
        sm: &StreamState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if sm.chunk_count() <= FEW_IOV {
            let mut bufs = [IoSlice::new(&[]); FEW_IOV];
            let n = sm.chunks(&mut bufs);
            return Pin::new(io).poll_write_vectored(cx, &bufs[..n]);
        }
        Self::poll_write_many(io, sm, cx)
    }

    #[inline(never)]
    fn poll_write_many(
        io: &mut IO,
        sm: &StreamState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut bufs = [IoSlice::new(&[]); MAX_IOV];
        let n = sm.chunks(&mut bufs);
        Pin::new(io).poll_write_vectored(cx, &bufs[..n])
    }

    /// Run events, write, finish closes and half-closes, until nothing is
    /// left to do without waiting. Returns [`Lost`] once `connection_lost` is
    /// due (only the general case can find that).
    #[inline(always)]
    pub(super) fn settle(&mut self, cx: &mut Context<'_>) -> Option<Lost> {
        if !self.core.sm.only_writes() {
            return self.settle_busy(cx, false);
        }
        // (TLS: records rustls still holds count as output too.)
        if self.has_output() {
            // What was written since the last pass (in a callback, where
            // nothing is sent, or from outside) may have taken the buffer
            // strictly over the high watermark: `pause_writing` is owed
            // then, before the flush, whatever the flush sends (a producer
            // that stops when `get_write_buffer_size()` goes over the high
            // watermark gets its `resume_writing`).
            self.core.sm.check_pause();
            if !self.core.sm.only_writes() {
                return self.settle_busy(cx, false);
            }
            // The common case: a callback wrote and nothing else happened.
            // Unless blocked, the flush sent everything (or lost the
            // connection, which makes the state busy).
            let blocked = self.flush(cx);
            if blocked && self.core.sm.only_writes() {
                // The I/O is full and nothing else changed: the only thing
                // that can be due is `pause_writing` (the general loop below
                // would find no more, at several times the cost: a bulk
                // writer, or a paused one, gets here on most passes).
                self.core.sm.check_pause();
                if self.core.sm.only_writes() {
                    return None;
                }
            }
            if blocked || !self.core.sm.only_writes() {
                return self.settle_busy(cx, blocked);
            }
        }
        None
    }

    /// The general case of [`settle`](Self::settle). `blocked`: a write
    /// attempt already found the I/O full in this pass, so trying again is
    /// pointless (the task is woken when there is room). Returns [`Lost`]
    /// when `connection_lost` is due.
    /// Whether an event is due now: any, except that flow-control events
    /// wait for the TLS task while a `start_tls` hand-over is pending on an
    /// open connection (one that is being lost takes every event, in
    /// order, and the upgrade is cancelled).
    fn events_due(&self) -> bool {
        self.core.sm.has_events()
            && !(self.upgrade_pending()
                && self.core.sm.phase() == Phase::Open
                && self.core.sm.next_is_flow())
    }

    pub(super) fn settle_busy(&mut self, cx: &mut Context<'_>, mut blocked: bool) -> Option<Lost> {
        let mut resumes = 0;
        loop {
            while self.events_due() {
                let Some(event) = self.core.sm.poll_event() else {
                    break;
                };
                match event {
                    Event::PauseWriting => {
                        self.shared().stats.paused();
                        tracing::debug!(buffered = self.core.sm.queued(), "pause_writing");
                        self.callback("pause_writing", |p, _, _| p.base_mut().pause_writing());
                    }
                    Event::ResumeWriting => {
                        tracing::debug!(buffered = self.core.sm.queued(), "resume_writing");
                        self.callback("resume_writing", |p, _, _| p.base_mut().resume_writing());
                        resumes += 1;
                        if resumes == RESUMES_PER_PASS && !blocked {
                            // A producer refilling from `resume_writing`
                            // over an I/O that takes everything (no tokio
                            // budget under it) would cycle here forever:
                            // no more sending in this pass; the task comes
                            // back soon, after its neighbours ran and the
                            // inbox (a `close()`, an `abort()`) was read.
                            blocked = true;
                            cx.waker().wake_by_ref();
                        }
                    }
                    Event::ShutdownWrite => self.core.sm.start_shutdown(),
                    Event::Lost(exc) => {
                        self.sync_flags();
                        return Some(Lost(exc));
                    }
                }
            }
            if self.has_output() {
                // As in `settle`: owed before the flush.
                self.core.sm.check_pause();
                if self.events_due() {
                    continue;
                }
                if !blocked {
                    blocked = self.flush(cx);
                }
                self.core.sm.check_pause();
                if self.events_due() {
                    continue;
                }
            }
            if self.core.sm.queued() == 0 {
                // Writes made while a close flushes are still sent: before
                // the close completes, take what reached the channel since
                // the last look. (A write that reaches it later is counted
                // as dropped when the task finishes.)
                if self.core.sm.phase() == Phase::Closing && self.apply_inbox() {
                    continue;
                }
                // Only now: `resume_writing` (run above) may have written more.
                self.core.sm.drained();
                if self.events_due() {
                    continue;
                }
            }
            if self.core.sm.is_shutting_down() {
                self.poll_shutdown(cx);
            }
            if IO::TLS {
                self.poll_tls_closing(cx);
            }
            self.sync_flags();
            if !self.events_due() {
                // `Lost` is the last event: once taken, nothing else is due.
                return None;
            }
        }
    }

    pub(super) fn poll_shutdown(&mut self, cx: &mut Context<'_>) {
        let Some(io) = self.io.as_mut() else { return };
        match Pin::new(io).poll_shutdown(cx) {
            Poll::Ready(Ok(())) => self.core.sm.shutdown_done(),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                // The peer is already gone; the read side will tell.
                self.core.sm.shutdown_done();
            }
            Poll::Ready(Err(_)) if IO::TLS && self.core.sm.peer_closed() => {
                // TLS: the peer is gone already; our close_notify has no
                // one to go to, and the close is complete.
                self.core.sm.shutdown_done();
            }
            Poll::Ready(Err(e)) => {
                self.core.sm.shutdown_done();
                self.fatal(e);
            }
            Poll::Pending => {}
        }
    }
}
