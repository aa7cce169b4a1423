//! The stream transport's state machine, free of I/O (the sans-IO core).
//!
//! [`StreamState`] owns the write queue, the watermarks and the paused-writing
//! flag, the read state (reading, paused, EOF) and the close state (open,
//! closing while flushing, lost). The tokio driver feeds it what happened
//! (a write was asked for, `n` bytes went out, EOF was read, an error) and
//! executes the [`Event`]s it emits (call `pause_writing`, shut down the write
//! half, deliver `connection_lost`). Unit tests drive it without a runtime.
//!
//! A [`Mode`] says which ways bytes go. A read pipe (`ReadOnly`) starts with
//! its write half shut and always closes at end of file; a write pipe
//! (`WriteOnly`) starts with reading stopped, its close is its end of file
//! (later writes are dropped, as asyncio's write pipe does), and the reader
//! going away loses it ([`StreamState::reader_gone_error`]).

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};

use super::queues::ChunkQueue;
use super::stream_io::Mode;
use crate::WriteLimits;
use crate::flow::FlowControl;

/// The smallest read [`StreamState::read_limit`] asks for.
pub(crate) const MIN_READ: usize = 4096;

/// Where the connection as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Normal operation.
    Open,
    /// `close()` was called (or EOF closed it): no more reading; the write
    /// queue is being flushed and still accepts writes (asyncio does too).
    Closing,
    /// `connection_lost` is due or done: nothing more happens.
    Lost,
}

/// The read half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    Reading,
    Paused,
    /// EOF was read: reading is off for good.
    Eof,
    /// The transport is closing or lost: reading is off for good.
    Stopped,
}

/// The write half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSide {
    Open,
    /// `write_eof()` was called with data queued: shut down once it drains.
    EofPending,
    /// The write half was shut down (or is being shut down now).
    Shut,
}

/// What the driver must do next, in order.
#[derive(Debug)]
pub(crate) enum Event {
    /// Call `protocol.pause_writing()`.
    PauseWriting,
    /// Call `protocol.resume_writing()`.
    ResumeWriting,
    /// Shut down the write half of the I/O (half-close).
    ShutdownWrite,
    /// Deliver `connection_lost(exc)` and release the I/O. Emitted once, last.
    Lost(Option<io::Error>),
}

/// What became of one `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    Queued,
    /// Empty data: nothing to do.
    Empty,
    /// The connection is lost (or the write half is shut): dropped and counted.
    Dropped,
}

/// The transport's state, driven by its I/O task.
#[derive(Debug)]
pub(crate) struct StreamState {
    queue: ChunkQueue,
    queued: usize,
    /// The watermarks and the paused-writing flag (shared logic).
    flow: FlowControl,
    phase: Phase,
    read: ReadState,
    write_side: WriteSide,
    /// `PauseWriting`, `ResumeWriting` and `ShutdownWrite`, due in this
    /// order. Few at a time and rare (flow control, half-close), so a `Vec`
    /// that takes them from the front, allocated on first use.
    events: Vec<Event>,
    /// `Event::Lost` is due after `events`: it is last and comes once, so it
    /// has its own slot (every connection gets one, and it must not cost an
    /// allocation). Its error waits in `lost_error`.
    lost_due: bool,
    lost_error: Option<io::Error>,
    /// The driver is shutting the write half of the I/O down (after
    /// `Event::ShutdownWrite`, until the I/O says it is done).
    shutting_down: bool,
    /// Whether there is more to act on than queued writes: an event, a
    /// phase other than `Open`, an end of file waiting to be sent, or a
    /// shutdown in progress. Kept in step with those four (see
    /// `update_busy`) so the driver's hot path tests one flag.
    busy: bool,
    /// TLS: a close sends close_notify once the queue is flushed and waits
    /// for the peer's (or its end of file) before the connection is lost.
    graceful_close: bool,
    /// The peer's end of file (TLS: its close_notify, or the socket's end)
    /// was read.
    peer_closed: bool,
    /// Both ways, or a one-way pipe.
    mode: Mode,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new(WriteLimits::default())
    }
}

impl StreamState {
    pub(crate) fn new(limits: WriteLimits) -> Self {
        StreamState {
            queue: ChunkQueue::default(),
            queued: 0,
            flow: FlowControl::new(limits),
            phase: Phase::Open,
            read: ReadState::Reading,
            write_side: WriteSide::Open,
            events: Vec::new(),
            lost_due: false,
            lost_error: None,
            shutting_down: false,
            busy: false,
            graceful_close: false,
            peer_closed: false,
            mode: Mode::Duplex,
        }
    }

    /// The state of a transport whose bytes go `mode`'s way: for a read
    /// pipe the write half is shut from the start (nothing is ever queued),
    /// for a write pipe reading is stopped from the start.
    pub(crate) fn with_mode(limits: WriteLimits, mode: Mode) -> Self {
        let mut sm = Self::new(limits);
        sm.mode = mode;
        match mode {
            Mode::Duplex => {}
            Mode::ReadOnly => sm.write_side = WriteSide::Shut,
            Mode::WriteOnly => sm.read = ReadState::Stopped,
        }
        sm
    }

    /// Which ways bytes go.
    #[cfg(test)]
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// A TLS connection's state: see [`awaiting_peer_close`](Self::awaiting_peer_close).
    pub(crate) fn new_tls(limits: WriteLimits) -> Self {
        let mut sm = Self::new(limits);
        sm.make_graceful();
        sm
    }

    /// The connection is TLS (from the start, or upgraded by `start_tls`):
    /// closes end with close_notify, and `pause_writing` comes when the
    /// buffer reaches the high watermark (CPython's SSL transport).
    pub(crate) fn make_graceful(&mut self) {
        self.graceful_close = true;
        self.flow.use_tls_rule();
    }

    /// TLS: our close_notify is out and the peer's has not come: the
    /// driver reads (and discards) until it does.
    #[inline]
    pub(crate) fn awaiting_peer_close(&self) -> bool {
        self.graceful_close
            && self.phase == Phase::Closing
            && self.write_side == WriteSide::Shut
            && !self.shutting_down
            && !self.peer_closed
    }

    /// Whether the peer's end of file was read.
    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The read that waited for the peer's close_notify found it (or the
    /// socket's end, or an error): the close can complete.
    pub(crate) fn peer_close_seen(&mut self) {
        self.peer_closed = true;
        self.drained();
    }

    // ---- queries -------------------------------------------------------

    #[inline]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    #[inline]
    pub(crate) fn is_reading(&self) -> bool {
        self.read == ReadState::Reading
    }

    pub(crate) fn read_state(&self) -> ReadState {
        self.read
    }

    #[cfg(test)]
    pub(crate) fn write_side(&self) -> WriteSide {
        self.write_side
    }

    #[cfg(test)]
    pub(crate) fn is_write_paused(&self) -> bool {
        self.flow.is_paused()
    }

    #[cfg(test)]
    pub(crate) fn limits(&self) -> WriteLimits {
        self.flow.limits()
    }

    /// Nothing to act on but the queued writes, if any: no event, open,
    /// no end of file waiting to be sent.
    #[inline]
    pub(crate) fn only_writes(&self) -> bool {
        debug_assert_eq!(self.busy, self.compute_busy(), "busy out of step");
        !self.busy
    }

    fn compute_busy(&self) -> bool {
        self.has_events()
            || self.phase != Phase::Open
            || self.write_side == WriteSide::EofPending
            || self.shutting_down
    }

    /// Bring `busy` in step after a change of the events, phase or write side.
    fn update_busy(&mut self) {
        self.busy = self.compute_busy();
    }

    fn push_event(&mut self, event: Event) {
        self.events.push(event);
        self.busy = true;
    }

    /// Whether the write half's shutdown is under way (see
    /// [`start_shutdown`](Self::start_shutdown)).
    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The driver acts on `Event::ShutdownWrite`: it shuts the write half
    /// of the I/O down, which may take more than one poll.
    pub(crate) fn start_shutdown(&mut self) {
        self.shutting_down = true;
        self.busy = true;
    }

    /// The I/O finished the shutdown (or it failed and the connection is
    /// being lost).
    pub(crate) fn shutdown_done(&mut self) {
        self.shutting_down = false;
        self.update_busy();
        if self.graceful_close && self.phase == Phase::Closing {
            // TLS: close_notify is out; done if the peer's came already.
            self.drained();
        }
    }

    /// Whether the protocol was last told to pause writing: the flow state
    /// before the flow-control events still owed, if any.
    pub(crate) fn protocol_told_paused(&self) -> bool {
        match self
            .events
            .iter()
            .find(|e| matches!(e, Event::PauseWriting | Event::ResumeWriting))
        {
            Some(Event::PauseWriting) => false,
            Some(_) => true,
            None => self.flow.is_paused(),
        }
    }

    /// Whether the next event is `PauseWriting`.
    pub(crate) fn next_is_pause(&self) -> bool {
        matches!(self.events.first(), Some(Event::PauseWriting))
    }

    /// Whether the next event is `PauseWriting` or `ResumeWriting` (held
    /// back while a `start_tls` hand-over is pending: the TLS task delivers
    /// them, so that nothing a protocol writes from them goes out in
    /// plaintext).
    pub(crate) fn next_is_flow(&self) -> bool {
        matches!(
            self.events.first(),
            Some(Event::PauseWriting | Event::ResumeWriting)
        )
    }

    #[inline]
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty() || self.lost_due
    }

    /// The next event for the driver to execute.
    #[inline]
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        let event = if !self.events.is_empty() {
            self.events.remove(0)
        } else if self.lost_due {
            self.lost_due = false;
            Event::Lost(self.lost_error.take())
        } else {
            return None;
        };
        if !self.has_events() {
            self.update_busy();
        }
        Some(event)
    }

    // ---- writing -------------------------------------------------------

    /// Queue `data`. Flow control is checked separately ([`Self::check_pause`])
    /// so the driver can try the write first, as asyncio does.
    #[inline]
    pub(crate) fn write(&mut self, data: Bytes) -> WriteOutcome {
        match self.try_write(data) {
            Ok(()) => WriteOutcome::Queued,
            Err((outcome, _)) => outcome,
        }
    }

    /// [`write`](Self::write), handing back what it does not queue (so the
    /// caller chooses where it is dropped).
    #[inline(always)]
    pub(crate) fn try_write(&mut self, data: Bytes) -> Result<(), (WriteOutcome, Bytes)> {
        if data.is_empty() {
            return Err((WriteOutcome::Empty, data));
        }
        if !self.accepts_writes() {
            return Err((WriteOutcome::Dropped, data));
        }
        self.queued += data.len();
        self.queue.push_back(data);
        Ok(())
    }

    /// Whether a write would be queued now (not lost, write half open).
    #[inline]
    pub(crate) fn accepts_writes(&self) -> bool {
        self.phase != Phase::Lost && self.write_side == WriteSide::Open
    }

    /// Emit `PauseWriting` if the queue is strictly over the high watermark
    /// and the protocol is not paused yet.
    #[inline]
    pub(crate) fn check_pause(&mut self) {
        if self.phase != Phase::Lost && self.flow.pause_due(self.queued) {
            self.push_event(Event::PauseWriting);
        }
    }

    /// New watermarks, effective at once: may pause (never resumes by itself,
    /// as in asyncio; the next drain does).
    pub(crate) fn set_limits(&mut self, limits: WriteLimits) {
        self.flow.set_limits(limits);
        self.check_pause();
    }

    /// The only queued chunk, if exactly one is queued.
    #[inline]
    pub(crate) fn single_chunk(&self) -> Option<&[u8]> {
        self.queue.only().map(|b| &b[..])
    }

    /// How many chunks are queued.
    #[inline]
    pub(crate) fn chunk_count(&self) -> usize {
        self.queue.len()
    }

    /// Fill `out` with the queued chunks, oldest first; returns how many.
    pub(crate) fn chunks<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.queue.fill(out)
    }

    /// `n` bytes from the front of the queue were written. Emits
    /// `ResumeWriting` if the queue drained to the low watermark. Returns
    /// the bytes taken off the queue: `n`, or what was queued if a faulty
    /// writer claims more.
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: usize) -> usize {
        let sent = n.min(self.queued);
        self.queued -= sent;
        let mut n = sent;
        if self.queued == 0 {
            // Everything sent (the common case): chunks are never empty, so
            // none is left even partly.
            self.queue.clear();
            n = 0;
        }
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if self.phase != Phase::Lost && self.flow.resume_due(self.queued) {
            self.push_event(Event::ResumeWriting);
        }
        sent
    }

    /// Called by the driver when the queue is empty and every callback has
    /// run: finish a pending close or half-close.
    pub(crate) fn drained(&mut self) {
        if self.queued != 0 {
            return;
        }
        match (self.phase, self.write_side) {
            (Phase::Closing, WriteSide::Open) if self.graceful_close => {
                // TLS: close_notify first.
                self.write_side = WriteSide::Shut;
                self.push_event(Event::ShutdownWrite);
            }
            // TLS: close_notify is out; done once the peer's came.
            (Phase::Closing, _)
                if self.graceful_close && !self.shutting_down && self.peer_closed =>
            {
                self.lose(None)
            }
            // TLS: still sending close_notify, or waiting for the peer's.
            (Phase::Closing, _) if self.graceful_close => {}
            (Phase::Closing, _) => self.lose(None),
            (Phase::Open, WriteSide::EofPending) => {
                self.write_side = WriteSide::Shut;
                self.push_event(Event::ShutdownWrite);
            }
            _ => {}
        }
    }

    /// Half-close: shut the write half once the queue is empty. A no-op when
    /// closing, lost, or already done.
    ///
    /// A write pipe's end of file is its close (asyncio's `write_eof()` on a
    /// write pipe): flush, then `Lost(None)`. A read pipe has no write half:
    /// a no-op (the handle refuses it first).
    pub(crate) fn write_eof(&mut self) {
        if self.phase != Phase::Open || self.write_side != WriteSide::Open {
            return;
        }
        if self.mode == Mode::WriteOnly {
            self.close();
            return;
        }
        self.write_side = WriteSide::EofPending;
        self.update_busy();
        self.drained();
    }

    // ---- reading -------------------------------------------------------

    /// The most the next read should take: no limit while nothing waits to
    /// be sent; otherwise what keeps the write buffer within twice the high
    /// watermark if the protocol writes back all it reads (an echo, a proxy)
    /// before `pause_writing` can stop it, and at least 4 KiB so that a
    /// protocol that writes nothing back still reads in useful amounts.
    #[inline]
    pub(crate) fn read_limit(&self) -> usize {
        if self.queued == 0 {
            return usize::MAX;
        }
        self.read_limit_backlogged()
    }

    #[inline(never)]
    fn read_limit_backlogged(&self) -> usize {
        let high = self.flow.limits().high;
        high.saturating_mul(2)
            .saturating_sub(self.queued)
            .max(MIN_READ)
    }

    pub(crate) fn pause_reading(&mut self) {
        if self.read == ReadState::Reading {
            self.read = ReadState::Paused;
        }
    }

    pub(crate) fn resume_reading(&mut self) {
        if self.read == ReadState::Paused {
            self.read = ReadState::Reading;
        }
    }

    /// `eof_received` returned `keep_open`: close unless the protocol keeps
    /// the transport open for writing. A read pipe has nothing to keep open:
    /// it always closes (asyncio ignores the return value there).
    pub(crate) fn eof_received_returned(&mut self, keep_open: bool) {
        if !keep_open || self.mode == Mode::ReadOnly {
            self.close();
        }
    }

    /// A write pipe's reader went away (the driver saw it without writing):
    /// the error the connection is lost with, `None` if nothing was waiting
    /// to be sent, a broken pipe if something was (asyncio's rule). The
    /// driver aborts with it.
    pub(crate) fn reader_gone_error(&self) -> Option<io::Error> {
        (self.queued > 0).then(|| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    /// EOF was read. Returns whether `eof_received` must be called (once).
    pub(crate) fn read_eof(&mut self) -> bool {
        self.peer_closed = true;
        match self.read {
            ReadState::Reading | ReadState::Paused => {
                self.read = ReadState::Eof;
                self.phase == Phase::Open
            }
            ReadState::Eof | ReadState::Stopped => false,
        }
    }

    // ---- closing -------------------------------------------------------

    /// Graceful close: stop reading, flush, then `Lost(None)`. A write pipe
    /// takes no more writes from then on.
    pub(crate) fn close(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        self.phase = Phase::Closing;
        self.read = ReadState::Stopped;
        if self.mode == Mode::WriteOnly {
            // A write pipe's close is its end of file: what is queued is
            // sent, later writes are dropped (asyncio's write pipe).
            self.write_side = WriteSide::EofPending;
        }
        self.update_busy();
        self.drained();
    }

    /// Drop the queue and lose the connection with `exc`. A no-op once lost.
    /// Returns how many queued bytes were discarded.
    pub(crate) fn abort(&mut self, exc: Option<io::Error>) -> usize {
        if self.phase == Phase::Lost {
            return 0;
        }
        let discarded = self.queued;
        self.queue.clear();
        self.queued = 0;
        // As asyncio's `_force_close`: nothing but `connection_lost` follows
        // (a `pause_writing` or `resume_writing` still owed is dropped; a
        // clean close, which goes through `lose` alone, keeps its
        // `resume_writing` before `connection_lost`, as asyncio's).
        self.events
            .retain(|e| !matches!(e, Event::PauseWriting | Event::ResumeWriting));
        self.lose(exc);
        discarded
    }

    fn lose(&mut self, exc: Option<io::Error>) {
        self.phase = Phase::Lost;
        self.read = ReadState::Stopped;
        self.lost_due = true;
        self.lost_error = exc;
        self.busy = true;
    }
}

#[cfg(test)]
mod tests;
