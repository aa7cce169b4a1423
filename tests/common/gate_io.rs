//! [`GateIo`]: an in-memory I/O whose write side the test opens byte by byte
//! through its [`Gate`], for exact flow-control boundaries: the public test
//! kit's [`ScriptedIo`] with its write window shut at the start, and a
//! [`Feed`] that writes what the transport reads (its drop is the peer's end
//! of file).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio_transports::testing::{Peer, ScriptedIo};

/// The test's side of a [`GateIo`].
#[derive(Clone)]
pub struct Gate(Peer);

impl Gate {
    /// Let `n` more bytes through.
    pub fn allow(&self, n: usize) {
        self.0.allow(n);
    }
    pub fn written(&self) -> Vec<u8> {
        self.0.written().to_vec()
    }
    /// `(buffers, bytes taken)` per accepted write call.
    pub fn calls(&self) -> Vec<(usize, usize)> {
        self.0.write_calls()
    }
    pub fn is_shutdown(&self) -> bool {
        self.0.is_shutdown()
    }
    pub fn is_dropped(&self) -> bool {
        self.0.is_dropped()
    }
}

/// What the transport reads: each write is one chunk; dropping it is the
/// peer's end of file.
pub struct Feed(Peer);

impl AsyncWrite for Feed {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.feed(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.feed_eof();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.feed_eof();
    }
}

/// An I/O whose reads come from a [`Feed`] and whose writes go through a
/// gate the test opens byte by byte: with the gate shut the transport's
/// buffer holds exactly what was written.
pub struct GateIo;

impl GateIo {
    /// The I/O, its gate (shut), and the feed for its reads. (The I/O is
    /// the kit's `ScriptedIo`: this keeps the tests' `GateIo::new()`.)
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (ScriptedIo, Gate, Feed) {
        let (io, peer) = ScriptedIo::new();
        peer.allow(0);
        (io, Gate(peer.clone()), Feed(peer))
    }
}
