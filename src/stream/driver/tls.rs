//! The stream driver's TLS steps, compiled only for I/O whose
//! [`StreamIo::TLS`] is true: the handshake before `connection_made` (and
//! its failure, which no protocol callback sees), and the end of a close:
//! reading, and discarding, until the peer's close_notify (then
//! `eof_received`, as asyncio), bounded by the shutdown timeout.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::{Driver, Stage};
use crate::drive::Drive;
use crate::stream::state::Phase;
use crate::stream::stream_io::StreamIo;

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// Run the handshake. A `close()` or `abort()` that arrives meanwhile
    /// (a server's `close_clients`) ends it: asyncio aborts the socket.
    pub(super) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // After `start_tls`: the commands made after the call, in order.
        self.apply_scratch();
        loop {
            self.apply_inbox();
            if self.core.sm.phase() != Phase::Open {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the transport was closed during the TLS handshake",
                )));
            }
            // The caller gave up (a dropped `create_connection` or
            // `start_tls` future): the socket closes, no timer stays behind.
            if let Some(started) = &mut self.started
                && started.poll_canceled(cx).is_ready()
            {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the TLS handshake was cancelled",
                )));
            }
            let Some(io) = self.io.as_mut() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if let Poll::Ready(done) = io.poll_handshake(cx) {
                #[cfg(feature = "tls")]
                if done.is_ok()
                    && let Some(info) = io.tls_info()
                {
                    tracing::debug!(
                        version = ?info.protocol_version,
                        cipher = ?info.cipher_suite,
                        server_name = info.server_name.as_deref(),
                        "TLS handshake done"
                    );
                    self.handle.shared.extra.set_tls(info);
                }
                return Poll::Ready(done);
            }
            if !self
                .handle
                .shared
                .inbox
                .register(&mut self.inbox_waker, cx.waker())
            {
                return Poll::Pending;
            }
        }
    }

    /// The handshake failed: the protocol saw nothing, so it hears nothing
    /// (asyncio: neither `connection_made` nor `connection_lost`). The
    /// caller waiting for `connection_made` gets the error; a server's
    /// connection logs it at debug level and detaches.
    #[cold]
    pub(super) fn fail_start(&mut self, err: io::Error) {
        tracing::debug!(
            peer = ?self.shared().extra.peer_inet(),
            error = %err,
            "TLS handshake failed"
        );
        self.stage = Stage::Finished;
        self.lose(None);
        if let Some(started) = self.started.take() {
            let _ = started.send(Err(err));
        }
        self.release();
    }

    /// While a TLS close waits for the peer's close_notify: read and
    /// discard (data after a local `close()` is not delivered) until the
    /// peer's end, and give up with a timeout error once the shutdown
    /// timeout has passed since the close began.
    pub(super) fn poll_tls_closing(&mut self, cx: &mut Context<'_>) {
        if self.core.sm.phase() != Phase::Closing {
            return;
        }
        let Some(io) = self.io.as_mut() else { return };
        if io.poll_close_deadline(cx).is_ready() {
            #[cfg(feature = "tls")]
            self.fatal(crate::tls::shutdown_timeout_error());
            #[cfg(not(feature = "tls"))]
            self.fatal(io::ErrorKind::TimedOut.into());
            return;
        }
        while self.core.sm.awaiting_peer_close() {
            let Some(io) = self.io.as_mut() else { return };
            let mut scratch = [MaybeUninit::<u8>::uninit(); 4096];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(io).poll_read(cx, &mut buf) {
                Poll::Pending => return,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                Poll::Ready(Ok(())) => {
                    // The peer's close_notify (a socket's end without it
                    // is an error here): as asyncio's SSL shutdown, the
                    // protocol hears `eof_received` (its first: reading
                    // had not ended, or the peer would not be awaited)
                    // before `connection_lost(None)`. Its answer changes
                    // nothing: the close is under way.
                    // The close completes after the callback: a panic in
                    // it is fatal and gives `connection_lost(Some(err))`.
                    let keep_open = self.callback("eof_received", |p, _, _| p.eof_received());
                    if keep_open == Some(true) {
                        tracing::debug!(
                            "returning true from eof_received() has no effect when using ssl"
                        );
                    }
                    if self.core.sm.phase() == Phase::Closing {
                        self.core.sm.peer_close_seen();
                    }
                }
                // The socket's end or an error: the peer will send nothing
                // more either way.
                Poll::Ready(Err(_)) => self.core.sm.peer_close_seen(),
            }
        }
    }
}
