//! What the stream driver needs of its I/O: bytes both ways, and, for a
//! [`BufferedProtocol`](crate::BufferedProtocol), whether a read may find
//! anything before the protocol is asked for a buffer.
//!
//! [`StreamIo`] is implemented by the sockets this crate makes transports of
//! (TCP and Unix streams), which can say when they are readable without
//! reading (and, with a one-byte `MSG_PEEK`, whether data really came: tokio
//! reports a freshly accepted socket readable once with nothing to read),
//! and by [`AnyIo`], the wrapper for any other `AsyncRead + AsyncWrite`
//! (`connect_io`), which cannot and so is always "maybe readable". The
//! sockets also send files with `sendfile(2)` on Linux ([`sendfile`]).
//!
//! [`sendfile`]: crate::sendfile

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Which ways bytes go through a stream transport's I/O. A constant of the
/// I/O type ([`StreamIo::MODE`]), so the driver's branches for the other
/// modes vanish from each build (a socket's build has no pipe code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Both ways: sockets, TLS, any `AsyncRead + AsyncWrite`.
    Duplex,
    /// Read only: a read pipe (`connect_read_pipe`). Writes are refused by
    /// the handle, end of file always closes the transport.
    ReadOnly,
    /// Write only: a write pipe (`connect_write_pipe`). Nothing is read; the
    /// read step of the driver watches for the reader going away instead.
    WriteOnly,
}

impl Mode {
    /// Whether the driver reads (and delivers data and end of file).
    #[inline(always)]
    pub(crate) const fn readable(self) -> bool {
        !matches!(self, Mode::WriteOnly)
    }

    /// Whether the transport accepts writes.
    #[inline(always)]
    pub(crate) const fn writable(self) -> bool {
        !matches!(self, Mode::ReadOnly)
    }

    /// A pipe transport (read-only or write-only).
    #[inline(always)]
    pub(crate) const fn is_pipe(self) -> bool {
        !matches!(self, Mode::Duplex)
    }
}

/// A stream transport's I/O.
pub(crate) trait StreamIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Which ways bytes go: both, or one (pipes). A constant, so the
    /// driver's one-way branches compile out of the socket builds.
    const MODE: Mode = Mode::Duplex;

    /// Write-only I/O: ready once the reader at the other end went away
    /// (seen without writing); pending otherwise, with `cx`'s waker woken
    /// when that changes. `idle`: nothing waits to be written (otherwise a
    /// write is pending on the I/O's write readiness, which an I/O whose
    /// reader's end shows there, a pipe's, need not watch twice). Never
    /// called for other modes.
    fn poll_reader_gone(&mut self, _cx: &mut Context<'_>, _idle: bool) -> Poll<()> {
        Poll::Pending
    }

    /// Ready once a read may find data, EOF or an error; otherwise pending,
    /// with `cx`'s waker woken when that changes. Ready may be a false
    /// alarm (the read then finds nothing). The default is always ready.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// As [`poll_read_ready`](Self::poll_read_ready), without false alarms
    /// where the I/O can tell (one system call more): ready once data, EOF
    /// or an error is really there.
    fn poll_data_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    /// Whether this I/O is a TLS session: a handshake before
    /// `connection_made`, no half-close, and close_notify both ways on
    /// close. A constant, so the driver's TLS code vanishes from the plain
    /// transports' build.
    const TLS: bool = false;

    /// Whether this I/O is a TLS session, also behind a box or a wrapper
    /// (for TLS inside TLS: the outer session's close also closes the
    /// inner one with its close_notify).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    fn is_tls_session(&self) -> bool {
        Self::TLS
    }

    /// TLS: run the handshake (bounded by its timeout). Plain I/O is ready
    /// at once.
    fn poll_handshake(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// TLS: ready once a close has waited as long as it may for the peer's
    /// close_notify (the timer starts on the first call). Plain I/O never
    /// times out.
    fn poll_close_deadline(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    /// TLS: whether encrypted output is waiting to be flushed.
    fn output_pending(&self) -> bool {
        false
    }

    /// TLS: what the handshake negotiated.
    #[cfg(feature = "tls")]
    fn tls_info(&self) -> Option<crate::TlsInfo> {
        None
    }

    /// Whether [`poll_sendfile`](Self::poll_sendfile) works: a plain socket
    /// on Linux. A constant, so the other builds keep no sendfile code.
    const SENDFILE: bool = false;

    /// One `sendfile(2)` of at most `len` bytes of `file` from `offset`
    /// into this socket, once it is writable. Only called when
    /// [`SENDFILE`](Self::SENDFILE) is true.
    fn poll_sendfile(
        &self,
        _cx: &mut Context<'_>,
        _file: BorrowedFd<'_>,
        _offset: u64,
        _len: usize,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// `sendfile(2)` into a socket once it is writable; on `WouldBlock` the
/// readiness is cleared and `cx` registered again.
#[cfg(any(target_os = "linux", target_os = "android"))]
macro_rules! poll_sendfile {
    ($sock:expr, $cx:expr, $file:expr, $offset:expr, $len:expr) => {
        loop {
            ready!($sock.poll_write_ready($cx))?;
            let Ok(offset) = usize::try_from($offset) else {
                return Poll::Ready(Err(io::ErrorKind::InvalidInput.into()));
            };
            match $sock.try_io(Interest::WRITABLE, || {
                socket2::SockRef::from($sock).sendfile(
                    &$file,
                    offset,
                    std::num::NonZeroUsize::new($len),
                )
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    };
}

/// Peek one byte: ready once data (or EOF, or an error) is there; on
/// `WouldBlock` the readiness is cleared and `cx` registered again.
macro_rules! poll_peek_one {
    ($sock:expr, $cx:expr) => {
        loop {
            ready!($sock.poll_read_ready($cx))?;
            let mut probe = [MaybeUninit::<u8>::uninit(); 1];
            match $sock.try_io(Interest::READABLE, || {
                socket2::SockRef::from($sock).peek(&mut probe)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // Data, EOF, or an error the read will report.
                _ => return Poll::Ready(Ok(())),
            }
        }
    };
}

/// The sockets' `StreamIo`: readiness without reading, a peek for data,
/// and `sendfile(2)` on Linux. One body for TCP and Unix streams.
macro_rules! socket_stream_io {
    ($sock:ty) => {
        impl StreamIo for $sock {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$sock>::poll_read_ready(self, cx)
            }

            fn poll_data_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                poll_peek_one!(self, cx)
            }

            #[cfg(any(target_os = "linux", target_os = "android"))]
            const SENDFILE: bool = true;

            #[cfg(any(target_os = "linux", target_os = "android"))]
            fn poll_sendfile(
                &self,
                cx: &mut Context<'_>,
                file: BorrowedFd<'_>,
                offset: u64,
                len: usize,
            ) -> Poll<io::Result<usize>> {
                poll_sendfile!(self, cx, file, offset, len)
            }
        }
    };
}

socket_stream_io!(tokio::net::TcpStream);
socket_stream_io!(tokio::net::UnixStream);

/// Any `AsyncRead + AsyncWrite`, as a [`StreamIo`] with no readiness to ask.
pub(crate) struct AnyIo<IO>(pub(crate) IO);

impl<IO> StreamIo for AnyIo<IO> where IO: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<IO: AsyncRead + Unpin> AsyncRead for AnyIo<IO> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AnyIo<IO> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
