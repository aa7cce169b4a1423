//! [`GateIo`]: an in-memory I/O whose write side the test opens byte by byte
//! through its [`Gate`], for exact flow-control boundaries.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

#[derive(Default)]
struct GateState {
    allowance: usize,
    written: Vec<u8>,
    /// (number of buffers, bytes taken) per accepted write call.
    calls: Vec<(usize, usize)>,
    waker: Option<Waker>,
    shutdown: bool,
    dropped: bool,
}

/// The test's side of a [`GateIo`].
#[derive(Clone)]
pub struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    /// Let `n` more bytes through.
    pub fn allow(&self, n: usize) {
        let mut st = self.0.lock().unwrap();
        st.allowance = st.allowance.saturating_add(n);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
    pub fn written(&self) -> Vec<u8> {
        self.0.lock().unwrap().written.clone()
    }
    pub fn calls(&self) -> Vec<(usize, usize)> {
        self.0.lock().unwrap().calls.clone()
    }
    pub fn is_shutdown(&self) -> bool {
        self.0.lock().unwrap().shutdown
    }
    pub fn is_dropped(&self) -> bool {
        self.0.lock().unwrap().dropped
    }
}

/// An I/O whose reads come from a duplex pipe (the test holds the other end)
/// and whose writes go through a gate the test opens byte by byte: with the
/// gate shut the transport's buffer holds exactly what was written.
pub struct GateIo {
    state: Arc<Mutex<GateState>>,
    read: DuplexStream,
}

impl GateIo {
    /// The I/O, its gate (shut), and the pipe end that feeds its reads.
    pub fn new() -> (GateIo, Gate, DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let state = Arc::new(Mutex::new(GateState::default()));
        (
            GateIo {
                state: state.clone(),
                read: a,
            },
            Gate(state),
            b,
        )
    }
}

impl Drop for GateIo {
    fn drop(&mut self) {
        self.state.lock().unwrap().dropped = true;
    }
}

impl AsyncRead for GateIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for GateIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.state.lock().unwrap();
        if st.shutdown {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if st.allowance == 0 {
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(st.allowance);
            st.written.extend_from_slice(&b[..n]);
            st.allowance -= n;
            taken += n;
            if st.allowance == 0 {
                break;
            }
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
        self.state.lock().unwrap().shutdown = true;
        Poll::Ready(Ok(()))
    }
}
