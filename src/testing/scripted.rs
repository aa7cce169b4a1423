//! [`ScriptedIo`] and [`Peer`]: an in-memory stream I/O whose other end the
//! test scripts. The transport reads what the peer feeds (bytes, an end of
//! file, a reset, any error) and writes into a record the peer reads back,
//! through a write window the test opens and closes (a peer that stops
//! reading), so the write buffer fills and flow control runs for real.
//!
//! `ScriptedIo` is what a [`StreamHarness`](super::StreamHarness) drives;
//! it also works on its own with [`connect_io`](crate::connect_io) on a
//! runtime.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::stream_io::StreamIo;

/// What the transport reads once the fed bytes are used up.
enum End {
    Eof,
    Error(io::Error),
}

#[derive(Default)]
struct PeerState {
    /// Fed chunks not read yet; one read takes from one chunk only.
    inbound: VecDeque<Bytes>,
    end: Option<End>,
    read_waker: Option<Waker>,
    /// Everything the transport wrote, in order.
    written: BytesMut,
    /// How much of `written` [`Peer::take_written`] already handed out.
    taken: usize,
    /// Bytes the peer still accepts; `None`: any amount (it reads at once).
    window: Option<usize>,
    /// `(buffers, bytes taken)` per accepted write call.
    calls: Vec<(usize, usize)>,
    write_waker: Option<Waker>,
    /// An error every later write gets (the peer went away).
    write_error: Option<io::ErrorKind>,
    shutdown: bool,
    dropped: bool,
}

/// The test's end of a [`ScriptedIo`]: feed what the transport reads, read
/// back what it wrote, open or close its write window. Cheap to clone.
///
/// ```
/// use tokio_transports::testing::ScriptedIo;
/// let (_io, peer) = ScriptedIo::new();
/// peer.feed("hello");
/// assert!(peer.written().is_empty());
/// ```
#[derive(Clone)]
pub struct Peer(Arc<Mutex<PeerState>>);

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Peer")
            .field("unread", &st.inbound.iter().map(Bytes::len).sum::<usize>())
            .field("written", &st.written.len())
            .field("window", &st.window)
            .finish()
    }
}

impl Peer {
    fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_reader(st: &mut PeerState) {
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
    }

    /// Queue `data` for the transport to read (one read per call, unless it
    /// is larger than one read takes). Empty data is ignored; data fed
    /// after an end is never read.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.feed(b"abc".as_slice());
    /// peer.feed(String::from("def"));
    /// ```
    pub fn feed(&self, data: impl Into<Bytes>) {
        let data = data.into();
        if data.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.end.is_some() {
            // After the end of file (or the error): nothing more to read.
            return;
        }
        st.inbound.push_back(data);
        Self::wake_reader(&mut st);
    }

    fn end(&self, end: End) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        Self::wake_reader(&mut st);
    }

    /// After the fed bytes, the transport reads an end of file (the peer
    /// half-closed).
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.feed_eof();
    /// ```
    pub fn feed_eof(&self) {
        self.end(End::Eof);
    }

    /// After the fed bytes, the transport's read fails with `ECONNRESET`
    /// (the peer reset the connection), as a socket's would.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.feed_reset();
    /// ```
    pub fn feed_reset(&self) {
        self.feed_error(io::Error::from_raw_os_error(libc::ECONNRESET));
    }

    /// After the fed bytes, the transport's read fails with `err`.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.feed_error(std::io::Error::other("cable cut"));
    /// ```
    pub fn feed_error(&self, err: io::Error) {
        self.end(End::Error(err));
    }

    /// Every byte the transport wrote so far, in order and whole.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// assert_eq!(peer.written(), "");
    /// ```
    pub fn written(&self) -> Bytes {
        Bytes::copy_from_slice(&self.lock().written)
    }

    /// What the transport wrote since the last call (all of it, the first
    /// time). [`written`](Self::written) still returns everything.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// assert!(peer.take_written().is_empty());
    /// ```
    pub fn take_written(&self) -> Bytes {
        let mut st = self.lock();
        let out = Bytes::copy_from_slice(&st.written[st.taken..]);
        st.taken = st.written.len();
        out
    }

    /// `(buffers, bytes taken)` for each write call the peer accepted: one
    /// vectored write per entry.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// assert!(peer.write_calls().is_empty());
    /// ```
    pub fn write_calls(&self) -> Vec<(usize, usize)> {
        self.lock().calls.clone()
    }

    /// `true`: the peer takes every write at once (the default). `false`:
    /// it takes nothing more (its window is shut), so what the transport
    /// writes stays in its write buffer, as with a peer that stopped
    /// reading; past the high watermark the protocol gets `pause_writing`.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.set_peer_reading(false);
    /// assert_eq!(peer.window(), Some(0));
    /// peer.set_peer_reading(true);
    /// assert_eq!(peer.window(), None);
    /// ```
    pub fn set_peer_reading(&self, reading: bool) {
        let mut st = self.lock();
        st.window = if reading { None } else { Some(0) };
        if let (true, Some(w)) = (reading, st.write_waker.take()) {
            w.wake();
        }
    }

    /// Let `n` more bytes through a limited window (shutting it first if it
    /// was unlimited): exact flow-control boundaries.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.allow(10);
    /// peer.allow(5);
    /// assert_eq!(peer.window(), Some(15));
    /// ```
    pub fn allow(&self, n: usize) {
        let mut st = self.lock();
        st.window = Some(st.window.unwrap_or(0).saturating_add(n));
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }

    /// How many bytes the peer still accepts; `None`: any amount.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// assert_eq!(ScriptedIo::new().1.window(), None);
    /// ```
    pub fn window(&self) -> Option<usize> {
        self.lock().window
    }

    /// Every later write fails with `kind` (e.g. `BrokenPipe`: the peer is
    /// gone), including one the transport is waiting to make.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (_io, peer) = ScriptedIo::new();
    /// peer.fail_writes(std::io::ErrorKind::BrokenPipe);
    /// ```
    pub fn fail_writes(&self, kind: io::ErrorKind) {
        let mut st = self.lock();
        st.write_error = Some(kind);
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }

    /// Whether the transport shut its write half down (`write_eof`, or the
    /// end of a close that flushed).
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// assert!(!ScriptedIo::new().1.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }

    /// Whether the transport dropped its I/O (the connection is released).
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (io, peer) = ScriptedIo::new();
    /// drop(io);
    /// assert!(peer.is_dropped());
    /// ```
    pub fn is_dropped(&self) -> bool {
        self.lock().dropped
    }
}

/// An in-memory stream I/O scripted by its [`Peer`]: the transport's side.
/// Give it to [`connect_io`](crate::connect_io), or let a
/// [`StreamHarness`](super::StreamHarness) drive it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::testing::ScriptedIo;
/// let (io, peer) = ScriptedIo::new();
/// let t = tokio_transports::connect_io(|| (), io).await?;
/// t.write("hi")?;
/// t.close();
/// t.closed().await;
/// assert_eq!(peer.written(), "hi");
/// # Ok(()) }
/// ```
pub struct ScriptedIo(Peer);

impl fmt::Debug for ScriptedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScriptedIo").field(&self.0).finish()
    }
}

impl ScriptedIo {
    /// The I/O and its peer: the peer reads everything at once, nothing is
    /// fed yet.
    ///
    /// ```
    /// # use tokio_transports::testing::ScriptedIo;
    /// let (io, peer) = ScriptedIo::new();
    /// ```
    pub fn new() -> (ScriptedIo, Peer) {
        let peer = Peer(Arc::new(Mutex::new(PeerState::default())));
        (ScriptedIo(peer.clone()), peer)
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.0.lock();
        if st.inbound.is_empty() && st.end.is_none() {
            st.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ScriptedIo {
    fn drop(&mut self) {
        self.0.lock().dropped = true;
    }
}

/// Readiness as a socket's: ready only when a read will find something, so
/// a `BufferedProtocol` is asked for a buffer only then, as on TCP.
impl StreamIo for ScriptedIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_readable(cx)
    }
}

impl AsyncRead for ScriptedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.0.lock();
        if let Some(front) = st.inbound.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front.split_to(n));
            if front.is_empty() {
                st.inbound.pop_front();
            }
            return Poll::Ready(Ok(()));
        }
        match &st.end {
            // A socket keeps reading 0 bytes after its end of file.
            Some(End::Eof) => Poll::Ready(Ok(())),
            Some(End::Error(e)) => {
                let err = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                Poll::Ready(Err(err))
            }
            None => {
                st.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for ScriptedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.0.lock();
        if let Some(kind) = st.write_error {
            return Poll::Ready(Err(kind.into()));
        }
        if st.shutdown {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut allowance = st.window.unwrap_or(usize::MAX);
        if allowance == 0 {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(allowance);
            st.written.extend_from_slice(&b[..n]);
            allowance -= n;
            taken += n;
            if allowance == 0 {
                break;
            }
        }
        if let Some(w) = st.window.as_mut() {
            *w -= taken;
        }
        st.calls.push((bufs.len(), taken));
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.lock().shutdown = true;
        Poll::Ready(Ok(()))
    }
}
