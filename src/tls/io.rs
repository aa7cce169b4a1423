//! [`TlsIo`]: a TLS connection as the stream driver's I/O.
//!
//! It owns the tokio-rustls stream and the two TLS timers. The driver asks
//! it to finish the handshake before `connection_made`
//! ([`StreamIo::poll_handshake`]), reads and writes plaintext through it,
//! flushes the records rustls still holds ([`StreamIo::output_pending`]),
//! and, once `close()` has flushed, shuts it down (close_notify) and waits
//! for the peer's, bounded by [`StreamIo::poll_close_deadline`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_rustls::{Accept, Connect, TlsAcceptor, TlsConnector, TlsStream};

use super::{ClientTls, ServerName, ServerTls, TlsInfo, handshake_error, handshake_timeout_error};
use crate::stream::stream_io::StreamIo;

enum State<IO> {
    Connecting(Connect<IO>),
    Accepting(Accept<IO>),
    Open(TlsStream<IO>),
    /// The handshake failed; nothing more can be done with it.
    Failed,
}

/// One TLS connection over `IO` (a TCP or Unix stream).
pub(crate) struct TlsIo<IO> {
    state: State<IO>,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
    /// The handshake's timer while it runs; the close's once `close()` began.
    timer: Option<Pin<Box<Sleep>>>,
    /// The name a client verified (for [`TlsInfo::server_name`]).
    server_name: Option<String>,
    /// close_notify is queued (see `poll_shutdown`).
    close_notify_sent: bool,
}

impl<IO> TlsIo<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// The client side: the handshake starts on the first poll.
    pub(crate) fn client(io: IO, tls: &ClientTls, name: ServerName) -> Self {
        let shown = match &name {
            rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
            rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => String::new(),
        };
        let connect = TlsConnector::from(tls.config.clone()).connect(name, io);
        TlsIo {
            state: State::Connecting(connect),
            handshake_timeout: tls.handshake_timeout,
            shutdown_timeout: tls.shutdown_timeout,
            timer: None,
            server_name: Some(shown),
            close_notify_sent: false,
        }
    }

    /// The server side: the handshake starts on the first poll.
    pub(crate) fn server(io: IO, tls: &ServerTls) -> Self {
        let accept = TlsAcceptor::from(tls.config.clone()).accept(io);
        TlsIo {
            state: State::Accepting(accept),
            handshake_timeout: tls.handshake_timeout,
            shutdown_timeout: tls.shutdown_timeout,
            timer: None,
            server_name: None,
            close_notify_sent: false,
        }
    }

    fn open(&mut self) -> io::Result<&mut TlsStream<IO>> {
        match &mut self.state {
            State::Open(s) => Ok(s),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake is not done",
            )),
        }
    }

    /// Poll the timer, arming it for `limit` first if it is not running.
    fn poll_timer(&mut self, limit: Duration, cx: &mut Context<'_>) -> Poll<()> {
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
            .as_mut()
            .poll(cx)
    }
}

use std::future::Future;

impl<IO> StreamIo for TlsIo<IO>
where
    IO: StreamIo,
{
    const TLS: bool = true;

    /// Ready when rustls holds decrypted data (or the peer's close_notify),
    /// otherwise when the socket is: a `BufferedProtocol` is asked for a
    /// buffer only when a read may find something.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.state {
            State::Open(s) => {
                let (io, session) = s.get_ref();
                if !session.wants_read() {
                    return Poll::Ready(Ok(()));
                }
                io.poll_read_ready(cx)
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_data_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.state {
            State::Open(s) => {
                let (io, session) = s.get_ref();
                if !session.wants_read() {
                    return Poll::Ready(Ok(()));
                }
                io.poll_data_ready(cx)
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = match &mut self.state {
            State::Connecting(c) => Pin::new(c).poll(cx).map_ok(TlsStream::from),
            State::Accepting(a) => Pin::new(a).poll(cx).map_ok(TlsStream::from),
            State::Open(_) => return Poll::Ready(Ok(())),
            State::Failed => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the TLS handshake failed",
                )));
            }
        };
        match done {
            Poll::Ready(Ok(stream)) => {
                self.state = State::Open(stream);
                self.timer = None;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.state = State::Failed;
                self.timer = None;
                Poll::Ready(Err(handshake_error(e)))
            }
            Poll::Pending => {
                let limit = self.handshake_timeout;
                ready!(self.poll_timer(limit, cx));
                // Dropping the handshake closes the socket.
                self.state = State::Failed;
                self.timer = None;
                Poll::Ready(Err(handshake_timeout_error(limit)))
            }
        }
    }

    fn poll_close_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = self.shutdown_timeout;
        self.poll_timer(limit, cx)
    }

    fn output_pending(&self) -> bool {
        match &self.state {
            State::Open(s) => s.get_ref().1.wants_write(),
            _ => false,
        }
    }

    fn tls_info(&self) -> Option<TlsInfo> {
        let State::Open(stream) = &self.state else {
            return None;
        };
        let (server_side, sni) = match stream {
            TlsStream::Client(_) => (false, self.server_name.clone()),
            TlsStream::Server(s) => (true, s.get_ref().1.server_name().map(str::to_owned)),
        };
        let common = stream.get_ref().1;
        Some(TlsInfo {
            peer_certificates: common
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            cipher_suite: common.negotiated_cipher_suite().map(|s| s.suite()),
            protocol_version: common.protocol_version(),
            alpn_protocol: common.alpn_protocol().map(<[u8]>::to_vec),
            server_name: sni,
            server_side,
        })
    }
}

impl<IO> AsyncRead for TlsIo<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = self.get_mut().open()?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl<IO> TlsIo<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Send what rustls still holds before taking more plaintext, so that
    /// what waits to be sent stays in the transport's queue (and in
    /// `get_write_buffer_size()`), not in the session.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = self.open()?;
        if stream.get_ref().1.wants_write() {
            ready!(Pin::new(stream).poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO> AsyncWrite for TlsIo<IO>
where
    IO: StreamIo,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_output(cx))?;
        Pin::new(this.open()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_output(cx))?;
        Pin::new(this.open()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().open()?).poll_flush(cx)
    }

    /// Send close_notify (once) and flush it. The socket stays open both
    /// ways, as in asyncio's SSL shutdown: the peer answers with its own
    /// close_notify (or closes the socket), and only a shutdown timeout
    /// ends the wait otherwise. (tokio-rustls's `poll_shutdown` would also
    /// shut the socket's write half, and a peer that waits for its socket
    /// to become readable would take that end of file as the answer.)
    ///
    /// TLS inside TLS: once this session's close_notify is out, the session
    /// under it sends its own (and it too keeps the socket open).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let sent = this.close_notify_sent;
        let stream = this.open()?;
        if !sent {
            stream.get_mut().1.send_close_notify();
        }
        this.close_notify_sent = true;
        ready!(Pin::new(this.open()?).poll_flush(cx))?;
        let inner = this.open()?.get_mut().0;
        if inner.is_tls_session() {
            return Pin::new(inner).poll_shutdown(cx);
        }
        Poll::Ready(Ok(()))
    }
}
