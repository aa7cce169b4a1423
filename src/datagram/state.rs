//! The datagram transport's state machine, free of I/O (the sans-IO core).
//!
//! [`DatagramState`] owns the send queue of `(datagram, target)` pairs with
//! asyncio's accounting (each queued datagram counts its length plus
//! [`HEADER_SIZE`] bytes, gh-135444), the watermarks and the paused-writing
//! flag, the read state (reading, paused, stopped) and the close state (open,
//! closing while flushing, lost). The tokio driver feeds it what happened (a
//! datagram was queued, the front one went out or failed, `close()`,
//! `abort()`) and executes the [`Event`]s it emits. Unit tests drive it
//! without sockets.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;

use crate::WriteLimits;
use crate::extra::SocketAddress;
use crate::flow::FlowControl;

/// What every queued datagram adds to the write buffer size on top of its
/// length, as in CPython (`_header_size = 8`), so that a flood of empty
/// datagrams still pauses the protocol.
pub(crate) const HEADER_SIZE: usize = 8;

/// How much one datagram of `len` bytes counts toward the write buffer size.
pub(crate) fn cost(len: usize) -> usize {
    len + HEADER_SIZE
}

/// One datagram waiting to be sent. `to` is `None` on a connected socket
/// (sent with `send`), the destination otherwise (sent with `sendto`).
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) data: Bytes,
    pub(crate) to: Option<SocketAddress>,
}

/// Where the endpoint as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Normal operation.
    Open,
    /// `close()` was called: no more receiving; the queue is being flushed
    /// and still accepts datagrams (as the stream transport does).
    Closing,
    /// `connection_lost` is due or done: nothing more happens.
    Lost,
}

/// The receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    Reading,
    Paused,
    /// The endpoint is closing or lost: receiving is off for good.
    Stopped,
}

/// What the driver must do next, in order.
#[derive(Debug)]
pub(crate) enum Event {
    /// Call `protocol.pause_writing()`.
    PauseWriting,
    /// Call `protocol.resume_writing()`.
    ResumeWriting,
    /// Call `protocol.error_received(err)` (a send failed; the datagram was
    /// dropped and the endpoint stays open).
    ErrorReceived(io::Error),
    /// Deliver `connection_lost(exc)` and release the socket. Emitted once, last.
    Lost(Option<io::Error>),
}

/// What became of one datagram handed to [`DatagramState::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Yes,
    /// The endpoint is lost: dropped (the caller counts it).
    Dropped,
}

/// The endpoint's state, driven by its I/O task.
#[derive(Debug)]
pub(crate) struct DatagramState {
    queue: VecDeque<Datagram>,
    /// Sum of [`cost`] over the queue.
    queued: usize,
    /// The watermarks and the paused-writing flag (shared logic).
    flow: FlowControl,
    phase: Phase,
    read: ReadState,
    events: VecDeque<Event>,
}

impl DatagramState {
    pub(crate) fn new(limits: WriteLimits) -> Self {
        DatagramState {
            queue: VecDeque::new(),
            queued: 0,
            flow: FlowControl::new(limits),
            phase: Phase::Open,
            read: ReadState::Reading,
            events: VecDeque::new(),
        }
    }

    // ---- queries -------------------------------------------------------

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The queued size: lengths plus [`HEADER_SIZE`] per datagram.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Whether a new datagram may be sent at once, skipping the queue (the
    /// queue is empty, so the order is kept, and the endpoint is not lost).
    pub(crate) fn can_send_now(&self) -> bool {
        self.queue.is_empty() && self.phase != Phase::Lost
    }

    pub(crate) fn is_reading(&self) -> bool {
        self.read == ReadState::Reading
    }

    pub(crate) fn read_state(&self) -> ReadState {
        self.read
    }

    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    #[cfg(test)]
    fn is_write_paused(&self) -> bool {
        self.flow.is_paused()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    // ---- sending -------------------------------------------------------

    /// Queue a datagram behind the others. Flow control is checked
    /// separately ([`Self::check_pause`]) so the driver can try to send
    /// first, as asyncio does.
    pub(crate) fn enqueue(&mut self, dg: Datagram) -> Queued {
        if self.phase == Phase::Lost {
            return Queued::Dropped;
        }
        self.queued += cost(dg.data.len());
        self.queue.push_back(dg);
        Queued::Yes
    }

    /// The oldest queued datagram: the next to send.
    pub(crate) fn front(&self) -> Option<&Datagram> {
        self.queue.front()
    }

    /// The front datagram went out. Returns its [`cost`].
    pub(crate) fn sent(&mut self) -> usize {
        self.pop_front()
    }

    /// Sending the front datagram failed with `err`: it is dropped and
    /// `error_received(err)` is due; the endpoint stays open. Returns its
    /// [`cost`].
    pub(crate) fn failed(&mut self, err: io::Error) -> usize {
        let n = self.pop_front();
        self.error(err);
        n
    }

    fn pop_front(&mut self) -> usize {
        let Some(dg) = self.queue.pop_front() else {
            return 0;
        };
        let n = cost(dg.data.len());
        self.queued -= n;
        self.maybe_resume();
        n
    }

    /// A send or receive error to report with `error_received`.
    pub(crate) fn error(&mut self, err: io::Error) {
        if self.phase != Phase::Lost {
            self.events.push_back(Event::ErrorReceived(err));
        }
    }

    /// Emit `PauseWriting` if the queue is strictly over the high watermark
    /// and the protocol is not paused yet.
    pub(crate) fn check_pause(&mut self) {
        if self.phase != Phase::Lost && self.flow.pause_due(self.queued) {
            self.events.push_back(Event::PauseWriting);
        }
    }

    fn maybe_resume(&mut self) {
        if self.phase != Phase::Lost && self.flow.resume_due(self.queued) {
            self.events.push_back(Event::ResumeWriting);
        }
    }

    /// New watermarks, effective at once: may pause (never resumes by
    /// itself, as in asyncio; the next send does).
    pub(crate) fn set_limits(&mut self, limits: WriteLimits) {
        self.flow.set_limits(limits);
        self.check_pause();
    }

    /// Called by the driver when it has nothing more to send for now:
    /// finishes a pending close once the queue is empty.
    pub(crate) fn drained(&mut self) {
        if self.queue.is_empty() && self.phase == Phase::Closing {
            self.lose(None);
        }
    }

    // ---- receiving -----------------------------------------------------

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

    // ---- closing -------------------------------------------------------

    /// Graceful close: stop receiving, send what is queued, then `Lost(None)`.
    pub(crate) fn close(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        self.phase = Phase::Closing;
        self.read = ReadState::Stopped;
        self.drained();
    }

    /// Drop the queue and lose the endpoint with `exc`. A no-op once lost.
    /// Returns the [`cost`] of what was discarded.
    pub(crate) fn abort(&mut self, exc: Option<io::Error>) -> usize {
        if self.phase == Phase::Lost {
            return 0;
        }
        let discarded = self.queued;
        self.queue.clear();
        self.queued = 0;
        // An abort drops the buffer without a drain: a flow-control call
        // not delivered yet is moot (asyncio's would have run inside the
        // `sendto` that caused it).
        self.events
            .retain(|e| !matches!(e, Event::PauseWriting | Event::ResumeWriting));
        self.lose(exc);
        discarded
    }

    /// `connection_lost` is due after the events already due: a
    /// `resume_writing` earned by the flush of a closing endpoint is still
    /// delivered first, as in asyncio (and as for stream transports).
    fn lose(&mut self, exc: Option<io::Error>) {
        self.phase = Phase::Lost;
        self.read = ReadState::Stopped;
        self.events.push_back(Event::Lost(exc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(len: usize) -> Datagram {
        Datagram {
            data: Bytes::from(vec![7u8; len]),
            to: None,
        }
    }

    fn events(sm: &mut DatagramState) -> Vec<String> {
        std::iter::from_fn(|| sm.poll_event())
            .map(|e| match e {
                Event::PauseWriting => "pause".to_string(),
                Event::ResumeWriting => "resume".to_string(),
                Event::ErrorReceived(e) => format!("error:{e}"),
                Event::Lost(None) => "lost".to_string(),
                Event::Lost(Some(e)) => format!("lost:{e}"),
            })
            .collect()
    }

    fn limits(high: usize, low: usize) -> WriteLimits {
        WriteLimits { low, high }
    }

    #[test]
    fn each_datagram_counts_its_length_plus_eight() {
        let mut sm = DatagramState::new(WriteLimits::default());
        assert!(sm.can_send_now());
        assert_eq!(sm.enqueue(dg(10)), Queued::Yes);
        assert_eq!(sm.enqueue(dg(0)), Queued::Yes);
        assert_eq!(sm.queued(), 18 + 8);
        assert!(!sm.can_send_now(), "the queue keeps the order");
        assert_eq!(sm.front().map(|d| d.data.len()), Some(10));
        assert_eq!(sm.sent(), 18);
        assert_eq!(sm.sent(), 8);
        assert_eq!(sm.queued(), 0);
        assert_eq!(sm.sent(), 0, "nothing left");
    }

    #[test]
    fn a_flood_of_empty_datagrams_pauses_strictly_over_high() {
        let mut sm = DatagramState::new(limits(80, 16));
        for _ in 0..10 {
            sm.enqueue(dg(0));
            sm.check_pause();
        }
        assert_eq!(sm.queued(), 80);
        assert!(events(&mut sm).is_empty(), "equal to high does not pause");
        sm.enqueue(dg(0));
        sm.check_pause();
        sm.enqueue(dg(0));
        sm.check_pause();
        assert_eq!(events(&mut sm), ["pause"], "once, however many follow");
        assert!(sm.is_write_paused());
        for _ in 0..9 {
            sm.sent();
        }
        assert_eq!(sm.queued(), 24);
        assert!(events(&mut sm).is_empty(), "24 > low");
        sm.sent();
        assert_eq!(sm.queued(), 16);
        assert_eq!(events(&mut sm), ["resume"], "at low");
        assert!(!sm.is_write_paused());
    }

    #[test]
    fn a_failed_send_drops_the_datagram_and_reports_it() {
        let mut sm = DatagramState::new(limits(20, 0));
        sm.enqueue(dg(30));
        sm.enqueue(dg(1));
        sm.check_pause();
        let n = sm.failed(io::Error::other("refused"));
        assert_eq!(n, 38);
        assert_eq!(events(&mut sm), ["pause", "error:refused"]);
        assert_eq!(sm.len(), 1);
        assert_eq!(sm.phase(), Phase::Open, "errors are not fatal");
        sm.sent();
        assert_eq!(events(&mut sm), ["resume"]);
    }

    #[test]
    fn lowering_the_limits_pauses_at_once_and_never_resumes_by_itself() {
        let mut sm = DatagramState::new(WriteLimits::default());
        sm.enqueue(dg(100));
        sm.check_pause();
        assert!(events(&mut sm).is_empty());
        sm.set_limits(limits(50, 10));
        assert_eq!(events(&mut sm), ["pause"]);
        sm.set_limits(WriteLimits::default());
        assert!(events(&mut sm).is_empty(), "resume waits for a send");
        sm.sent();
        assert_eq!(events(&mut sm), ["resume"]);
    }

    #[test]
    fn close_flushes_then_loses_and_still_accepts_datagrams() {
        let mut sm = DatagramState::new(WriteLimits::default());
        sm.enqueue(dg(5));
        sm.close();
        assert_eq!(sm.phase(), Phase::Closing);
        assert_eq!(sm.read_state(), ReadState::Stopped);
        assert!(!sm.is_reading());
        assert_eq!(sm.enqueue(dg(6)), Queued::Yes, "closing but flushing");
        sm.drained();
        assert!(events(&mut sm).is_empty(), "not drained yet");
        sm.sent();
        sm.sent();
        sm.drained();
        assert_eq!(events(&mut sm), ["lost"]);
        assert_eq!(sm.phase(), Phase::Lost);
        assert_eq!(sm.enqueue(dg(1)), Queued::Dropped);
        assert!(!sm.can_send_now());
        sm.close();
        assert!(events(&mut sm).is_empty(), "close twice is a no-op");
    }

    #[test]
    fn a_paused_endpoint_closed_gets_resume_writing_before_lost() {
        let mut sm = DatagramState::new(limits(10, 0));
        sm.enqueue(dg(20));
        sm.check_pause();
        assert_eq!(events(&mut sm), ["pause"]);
        sm.close();
        assert!(events(&mut sm).is_empty(), "still flushing");
        assert_eq!(sm.sent(), 28);
        sm.drained();
        assert_eq!(events(&mut sm), ["resume", "lost"]);
    }

    #[test]
    fn close_with_an_empty_queue_loses_at_once() {
        let mut sm = DatagramState::new(WriteLimits::default());
        sm.close();
        assert_eq!(events(&mut sm), ["lost"]);
    }

    #[test]
    fn abort_discards_the_queue_and_nothing_follows_lost() {
        let mut sm = DatagramState::new(limits(10, 0));
        sm.enqueue(dg(20));
        sm.enqueue(dg(2));
        sm.check_pause();
        assert_eq!(sm.abort(Some(io::Error::other("boom"))), 38);
        assert_eq!(events(&mut sm), ["lost:boom"], "no pause after lost");
        assert_eq!(sm.queued(), 0);
        assert_eq!(sm.abort(None), 0, "a no-op once lost");
        sm.error(io::Error::other("late"));
        assert!(events(&mut sm).is_empty(), "no error_received after lost");
    }

    #[test]
    fn abort_while_closing_loses_once() {
        let mut sm = DatagramState::new(WriteLimits::default());
        sm.enqueue(dg(1));
        sm.close();
        assert_eq!(sm.abort(None), 9);
        sm.drained();
        assert_eq!(events(&mut sm), ["lost"]);
    }

    #[test]
    fn pause_and_resume_reading_are_idempotent_and_off_once_closing() {
        let mut sm = DatagramState::new(WriteLimits::default());
        sm.pause_reading();
        sm.pause_reading();
        assert_eq!(sm.read_state(), ReadState::Paused);
        sm.resume_reading();
        sm.resume_reading();
        assert!(sm.is_reading());
        sm.close();
        sm.resume_reading();
        assert_eq!(sm.read_state(), ReadState::Stopped);
        sm.pause_reading();
        assert_eq!(sm.read_state(), ReadState::Stopped);
    }
}
