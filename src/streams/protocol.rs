//! [`StreamProtocol`]: the protocol under a [`TransportStream`], and the
//! state it shares with the stream (received chunks, end of file, the loss,
//! the reader's waker, the input limit).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;

use super::TransportStream;
use crate::{BaseProtocol, Protocol, Transport};

/// The default read limit of a [`TransportStream`], asyncio's
/// `_DEFAULT_LIMIT` (64 KiB): reading pauses while more than twice this
/// waits unread.
///
/// ```
/// assert_eq!(tokio_transports::streams::DEFAULT_READ_LIMIT, 65536);
/// ```
pub const DEFAULT_READ_LIMIT: usize = 64 * 1024;

/// What runs when a server's connection is made: spawns the application's
/// callback with the new stream.
pub(crate) type OnConnect = Arc<dyn Fn(TransportStream) + Send + Sync>;

/// The state the protocol (on the connection's task) and the stream (on
/// the application's task) share, under one lock. Neither holds the lock
/// while running code it does not own.
pub(crate) struct Shared {
    state: Mutex<State>,
}

pub(crate) struct State {
    /// Received and not yet taken by the reader.
    pub(crate) chunks: VecDeque<Bytes>,
    /// Their total length.
    pub(crate) buffered: usize,
    /// Reading pauses above `2 * limit`, resumes at or below `limit`.
    pub(crate) limit: usize,
    /// This adapter paused the transport's reading (and must resume it).
    pub(crate) paused: bool,
    /// The peer's end of file was received (or the transport never reads).
    pub(crate) eof: bool,
    /// `connection_lost` has run.
    pub(crate) lost: bool,
    /// The loss's error, for the reader (taken once).
    pub(crate) error: Option<io::Error>,
    /// The loss's error as the writer reports it (kept).
    pub(crate) lost_reason: Option<(io::ErrorKind, String)>,
    /// The task waiting in `poll_read`.
    pub(crate) reader: Option<Waker>,
    /// Set by `connection_made`.
    pub(crate) transport: Option<Transport>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                buffered: 0,
                limit: DEFAULT_READ_LIMIT,
                paused: false,
                eof: false,
                lost: false,
                error: None,
                lost_reason: None,
                reader: None,
                transport: None,
            }),
        })
    }

    /// The state; a panic elsewhere while it was held leaves it usable
    /// (every update is a few plain assignments).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Wake the reader, if one waits.
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    /// After the reader took `n` bytes: resume the transport's reading if
    /// this adapter paused it and the buffer is down to the limit.
    pub(crate) fn consumed(&mut self, n: usize) {
        self.buffered -= n;
        if self.paused && self.buffered <= self.limit {
            self.paused = false;
            if let Some(t) = &self.transport {
                t.resume_reading();
            }
        }
    }

    /// The error a write (or a flush) reports once the connection is lost.
    pub(crate) fn lost_error(&self) -> io::Error {
        match &self.lost_reason {
            Some((kind, msg)) => io::Error::new(*kind, format!("connection lost: {msg}")),
            None => io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed"),
        }
    }
}

/// The protocol under a [`TransportStream`]: it queues what it receives for
/// the stream's reader, pausing the transport's reading while more than
/// twice the read limit waits unread, and records the end of file and the
/// loss. Made by [`TransportStream::open`] and the creation functions of
/// [`streams`](crate::streams); you only pass it on, to the creation
/// function of the transport you want (see [`TransportStream::open`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::streams::TransportStream;
/// let (a, _b) = tokio::io::duplex(1024);
/// // `p` is the StreamProtocol: the factory hands it to the transport.
/// let stream = TransportStream::open(|p| tokio_transports::connect_io(move || p, a)).await?;
/// assert!(stream.transport().is_reading());
/// # Ok(()) }
/// ```
pub struct StreamProtocol {
    pub(crate) shared: Arc<Shared>,
    /// A server's: spawns the application's callback at `connection_made`.
    on_connect: Option<OnConnect>,
}

impl std::fmt::Debug for StreamProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamProtocol").finish_non_exhaustive()
    }
}

impl StreamProtocol {
    /// A protocol for one stream, not yet connected.
    pub(crate) fn new(on_connect: Option<OnConnect>) -> StreamProtocol {
        StreamProtocol {
            shared: Shared::new(),
            on_connect,
        }
    }
}

impl BaseProtocol for StreamProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        {
            let mut st = self.shared.lock();
            st.transport = Some(transport.clone());
            // A write pipe reads nothing: its reader sees the end at once.
            st.eof = !transport.shared.mode.readable();
        }
        if let Some(spawn) = self.on_connect.take() {
            spawn(TransportStream::new(transport.clone(), self.shared.clone()));
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let mut st = self.shared.lock();
        st.lost = true;
        st.lost_reason = exc.as_ref().map(|e| (e.kind(), e.to_string()));
        st.error = exc;
        // Nothing more is read: the transport is gone, and so is the handle
        // (a stream dropped later does not need it).
        st.paused = false;
        st.transport = None;
        st.wake_reader();
    }
}

impl Protocol for StreamProtocol {
    fn data_received(&mut self, data: Bytes) {
        let mut st = self.shared.lock();
        st.buffered += data.len();
        st.chunks.push_back(data);
        if !st.paused && st.buffered > st.limit.saturating_mul(2) {
            st.paused = true;
            if let Some(t) = &st.transport {
                // From this callback: nothing more is delivered after it.
                t.pause_reading();
            }
        }
        st.wake_reader();
    }

    /// Keeps the transport open for writing (asyncio's stream protocol
    /// does the same): the reader sees the end of file, the writer may go
    /// on. TLS and read pipes close at the end of file whatever this says.
    fn eof_received(&mut self) -> bool {
        let mut st = self.shared.lock();
        st.eof = true;
        st.wake_reader();
        true
    }
}
