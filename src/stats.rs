//! Per-transport counters: bytes in and out, writes, `pause_writing` calls,
//! writes dropped, and (when switched on) the time spent in protocol
//! callbacks, readable from any handle at any time
//! ([`Transport::stats`](crate::Transport::stats),
//! [`DatagramTransport::stats`](crate::DatagramTransport::stats)).
//!
//! Every counter but one has one writer, the transport's task, so counting
//! is a plain load and store: no locked instruction on the hot path. Writes
//! are counted where they are made: inside a callback (the task's thread) on
//! a counter of its own with a plain load and store, from elsewhere on a
//! second counter with an atomic add; a snapshot sums the two.
//! Timing callbacks reads the clock twice per callback, which costs about as
//! much as the rest of a small request, so it is off unless
//! [`set_callback_timing`] switched it on before the transport was made.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether transports made from now on time their callbacks.
static CALLBACK_TIMING: AtomicBool = AtomicBool::new(false);

/// Switch callback timing on or off for transports made after this call
/// (process-wide; transports already running keep their setting). With it
/// on, [`TransportStats::callback_time`] adds up the time each transport's
/// protocol spent in its callbacks; off (the default), it is `None`.
///
/// ```
/// tokio_transports::set_callback_timing(true);
/// assert!(tokio_transports::callback_timing());
/// tokio_transports::set_callback_timing(false);
/// ```
pub fn set_callback_timing(enabled: bool) {
    CALLBACK_TIMING.store(enabled, Ordering::Relaxed);
}

/// Whether transports made now time their callbacks (see
/// [`set_callback_timing`]).
///
/// ```
/// if tokio_transports::callback_timing() {
///     println!("callbacks are timed");
/// }
/// ```
pub fn callback_timing() -> bool {
    CALLBACK_TIMING.load(Ordering::Relaxed)
}

/// A snapshot of one transport's counters, from
/// [`Transport::stats`](crate::Transport::stats) or
/// [`DatagramTransport::stats`](crate::DatagramTransport::stats). Counters
/// only grow; each is exact for what the task has done by the time it is
/// read (a write made from another thread counts once the task took it).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncReadExt;
/// let (a, mut peer) = tokio::io::duplex(64);
/// let t = tokio_transports::connect_io(|| (), a).await?;
/// t.write("hello")?;
/// let mut buf = [0u8; 5];
/// peer.read_exact(&mut buf).await?; // sent: the counters say so
/// let stats = t.stats();
/// assert_eq!((stats.writes, stats.bytes_sent), (1, 5));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TransportStats {
    /// Bytes handed to the protocol (`data_received`, `buffer_updated`,
    /// `datagram_received`).
    pub bytes_received: u64,
    /// Bytes the kernel accepted (for datagrams: payload bytes sent).
    pub bytes_sent: u64,
    /// `write`, `writelines` and `sendto` calls with data that returned
    /// `Ok`, including those dropped because the transport was closing or
    /// lost (`dropped_writes` counts those).
    pub writes: u64,
    /// `pause_writing` calls: how often the write buffer went over the high
    /// watermark.
    pub pauses: u64,
    /// Writes dropped because the transport was closing or lost (asyncio
    /// logs these after the fifth).
    pub dropped_writes: u64,
    /// Time spent in the protocol's callbacks, if
    /// [`set_callback_timing`] was on when the transport was made.
    pub callback_time: Option<Duration>,
}

/// The counters themselves, in a transport's shared state.
#[derive(Default)]
pub(crate) struct Stats {
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    /// Writes made inside the transport's callbacks (its task's thread).
    writes_here: AtomicU64,
    /// Writes made from anywhere else.
    writes: AtomicU64,
    pauses: AtomicU64,
    callback_nanos: AtomicU64,
    timed: AtomicBool,
}

/// Add `n` to a counter that only the transport's task changes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn new() -> Self {
        let stats = Stats::default();
        stats.timed.store(callback_timing(), Ordering::Relaxed);
        stats
    }

    /// Whether this transport times its callbacks (fixed at creation).
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        self.timed.load(Ordering::Relaxed)
    }

    /// The task handed `n` bytes to the protocol.
    #[inline]
    pub(crate) fn received(&self, n: usize) {
        bump(&self.bytes_received, n as u64);
    }

    /// The task sent `n` bytes.
    #[inline]
    pub(crate) fn sent(&self, n: usize) {
        bump(&self.bytes_sent, n as u64);
    }

    /// One write made inside one of the transport's callbacks. Only the
    /// thread running the transport's task may call this.
    #[inline]
    pub(crate) fn wrote_here(&self) {
        bump(&self.writes_here, 1);
    }

    /// One write made from any other place (any thread).
    #[inline]
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// `pause_writing` is being called.
    #[inline]
    pub(crate) fn paused(&self) {
        bump(&self.pauses, 1);
    }

    /// A timed callback that started at `start` returned.
    #[inline(never)]
    pub(crate) fn callback_done(&self, start: Instant) {
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        bump(&self.callback_nanos, nanos);
    }

    pub(crate) fn snapshot(&self, dropped_writes: usize) -> TransportStats {
        TransportStats {
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            writes: self
                .writes_here
                .load(Ordering::Relaxed)
                .wrapping_add(self.writes.load(Ordering::Relaxed)),
            pauses: self.pauses.load(Ordering::Relaxed),
            dropped_writes: dropped_writes as u64,
            callback_time: self
                .timed()
                .then(|| Duration::from_nanos(self.callback_nanos.load(Ordering::Relaxed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_timing_is_fixed_at_creation() {
        let s = Stats::new();
        s.received(10);
        s.received(5);
        s.sent(7);
        s.wrote_here();
        s.wrote();
        s.paused();
        let snap = s.snapshot(3);
        assert_eq!(snap.bytes_received, 15);
        assert_eq!(snap.bytes_sent, 7);
        assert_eq!(snap.writes, 2);
        assert_eq!(snap.pauses, 1);
        assert_eq!(snap.dropped_writes, 3);
        assert_eq!(snap.callback_time, None);
        let timed = Stats::default();
        timed.timed.store(true, Ordering::Relaxed);
        timed.callback_done(Instant::now());
        assert!(timed.snapshot(0).callback_time.is_some());
    }
}
