//! The stream driver's read side: one read per call, into the thread's read
//! pool for a plain [`Protocol`](crate::Protocol) (handed over as a zero-copy
//! slice) or into the buffer a [`BufferedProtocol`](crate::BufferedProtocol)
//! lends, and the delivery of what it found (data, EOF, an error).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures::task::AtomicWaker;

use super::Driver;
use crate::drive::Drive;
use crate::error::EMPTY_BUFFER_MSG;
use crate::exception::{ExceptionContext, call_exception_handler};
use crate::stream::handle::{CLOSING, LOST, READ_PAUSED, UPGRADING};
use crate::stream::read_pool::{self, Pool};
use crate::stream::stream_io::{Mode, StreamIo};

/// The `sizehint` given to `get_buffer` (uvloop passes libuv's 64 KiB).
const SIZEHINT: usize = 64 * 1024;

/// For [`BufferedProtocol`](crate::BufferedProtocol)s: wakes the task and
/// records that the read side was woken, so the driver calls `get_buffer`
/// only when a read has a chance to succeed. Plain protocols read with the
/// task's own waker (a read that is not ready costs no system call).
struct ReadWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A [`ReadWake`] and the waker made from it, kept for the connection's
/// life once a buffered protocol first reads (boxed: most connections never
/// need it, and the driver future stays small).
pub(super) struct ReadWaker {
    wake: Arc<ReadWake>,
    waker: Waker,
    /// A read has filled the protocol's buffer: from then on readiness
    /// alone decides when to ask for a buffer (no peek per wake-up).
    had_data: bool,
}

pub(super) enum ReadOutcome {
    Data(Bytes),
    Filled(usize),
    Eof,
    Error(io::Error),
    EmptyBuffer,
    Panicked,
    Pending,
    /// `get_buffer` ran, and the read that followed found nothing.
    Ran,
}

impl<IO, P: Drive> Driver<IO, P> {
    /// The protocol may have changed (`set_protocol`, `with_protocol`, a
    /// swap): a buffered one's next read must not wait for a wake-up that
    /// went to the task's own waker while a plain protocol read.
    #[cold]
    pub(super) fn rearm_buffered_read(&self) {
        if let Some(rw) = &self.read_wake {
            rw.wake.woken.store(true, Ordering::Release);
        }
    }
}

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// One read attempt. Returns whether it made progress (data, EOF or an
    /// error); `false` means the I/O has nothing now.
    #[inline(always)]
    pub(super) fn read_once(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> bool {
        let outcome = match self.protocol.is_buffered() {
            false => {
                let Some(io) = self.io.as_mut() else {
                    return false;
                };
                match pool.poll_read(io, cx, self.core.sm.read_limit()) {
                    Poll::Ready(Ok(data)) if data.is_empty() => ReadOutcome::Eof,
                    Poll::Ready(Ok(data)) => {
                        if self.still_deliverable() {
                            // The hot path, kept out of `deliver`.
                            self.data_received(data);
                            return true;
                        }
                        ReadOutcome::Data(data)
                    }
                    Poll::Ready(Err(e)) => ReadOutcome::Error(e),
                    Poll::Pending => return false,
                }
            }
            true => self.read_buffered(cx),
        };
        self.read_done(outcome)
    }

    /// One read of a [`BufferedProtocol`](crate::BufferedProtocol): into
    /// the buffer `get_buffer` returns, and only once the read side was
    /// woken (see [`ReadWake`]).
    #[inline(never)]
    fn read_buffered(&mut self, cx: &mut Context<'_>) -> ReadOutcome {
        let ReadWaker {
            wake,
            waker,
            had_data,
        } = &**self.read_wake.get_or_insert_with(|| {
            let wake = Arc::new(ReadWake {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            });
            let waker = Waker::from(wake.clone());
            Box::new(ReadWaker {
                wake,
                waker,
                had_data: false,
            })
        });
        let had_data = *had_data;
        wake.task.register(cx.waker());
        if !wake.woken.swap(false, Ordering::AcqRel) {
            return ReadOutcome::Pending;
        }
        let waker = waker.clone();
        let mut rcx = Context::from_waker(&waker);
        // Ask the protocol for a buffer only when a read may find something:
        // a connection that never sent anything is never asked (a peek
        // tells, until the first data), an idle one only on a wake-up. I/O
        // that cannot tell (`connect_io`) is always "maybe".
        if let Some(io) = self.io.as_ref() {
            let ready = if had_data {
                io.poll_read_ready(&mut rcx)
            } else {
                io.poll_data_ready(&mut rcx)
            };
            if ready.is_pending() {
                return ReadOutcome::Pending;
            }
        }
        let outcome = self.callback("get_buffer", |p, io, _| {
            let Some(io) = io.as_mut() else {
                return ReadOutcome::Pending;
            };
            let Some(buf) = p.get_buffer(SIZEHINT) else {
                return ReadOutcome::Pending;
            };
            if buf.capacity() == buf.len() {
                return ReadOutcome::EmptyBuffer;
            }
            match read_pool::poll_read_buf(io, &mut rcx, buf) {
                Poll::Ready(Ok(0)) => ReadOutcome::Eof,
                Poll::Ready(Ok(n)) => ReadOutcome::Filled(n),
                Poll::Ready(Err(e)) => ReadOutcome::Error(e),
                Poll::Pending => ReadOutcome::Pending,
            }
        });
        if !matches!(outcome, Some(ReadOutcome::Pending)) {
            // Not known to be drained: the next pass reads again.
            if let Some(read_waker) = &mut self.read_wake {
                read_waker.wake.woken.store(true, Ordering::Release);
                read_waker.had_data |= matches!(outcome, Some(ReadOutcome::Filled(_)));
            }
        }
        match outcome {
            // `get_buffer` ran and may have asked for something (a write, a
            // close): one more pass settles it. `woken` stays clear, so that
            // pass does not call `get_buffer` again.
            Some(ReadOutcome::Pending) => ReadOutcome::Ran,
            Some(outcome @ (ReadOutcome::Filled(_) | ReadOutcome::Eof | ReadOutcome::Error(_))) => {
                self.pause_owed_by_get_buffer(outcome)
            }
            other => other.unwrap_or(ReadOutcome::Panicked),
        }
    }

    /// `get_buffer` may have written past the high watermark: its
    /// `pause_writing` comes before the read's own callback
    /// (`buffer_updated`, `eof_received`), as in asyncio, where it runs
    /// inside `write()`, inside `get_buffer`. Meanwhile the read's result is
    /// kept back as a read kept back while reading was paused is (`stash`):
    /// if `pause_writing` replaces the protocol, the old one still gets its
    /// own bytes' `buffer_updated` first (see `Command::SetProtocol`); if it
    /// pauses reading, the result waits for the resume. Not while another
    /// thread's `abort()`, `close()`, `pause_reading()` or `start_tls()` is
    /// on its way: the pause then waits for the next pass, as before.
    fn pause_owed_by_get_buffer(&mut self, outcome: ReadOutcome) -> ReadOutcome {
        if self.core.sm.queued() == 0
            || self.stash.is_some()
            || self.upgrade_pending()
            || self.shared().has(READ_PAUSED | CLOSING | LOST | UPGRADING)
        {
            return outcome;
        }
        self.core.sm.check_pause();
        if !self.core.sm.next_is_pause() {
            return outcome;
        }
        let _ = self.core.sm.poll_event();
        self.stash = Some(Box::new(outcome));
        self.shared().stats.paused();
        tracing::debug!(buffered = self.core.sm.queued(), "pause_writing");
        self.callback("pause_writing", |p, _, _| p.base_mut().pause_writing());
        match self.stash.take() {
            Some(outcome) => *outcome,
            // Delivered to the protocol it belonged to, before a
            // `set_protocol` made in `pause_writing` took effect.
            None => ReadOutcome::Ran,
        }
    }

    /// Act on a read's result other than data delivered on the hot path:
    /// deliver it, or stash it if reading was paused from another thread
    /// meanwhile. Returns whether the read made progress.
    #[inline(never)]
    pub(super) fn read_done(&mut self, outcome: ReadOutcome) -> bool {
        match outcome {
            ReadOutcome::Pending => false,
            ReadOutcome::Panicked | ReadOutcome::Ran => true,
            outcome if !self.may_deliver() => {
                // Paused or closed from another thread while we read.
                if !self.shared().is_closing() {
                    self.stash = Some(Box::new(outcome));
                }
                true
            }
            outcome => {
                self.deliver(outcome);
                true
            }
        }
    }

    #[inline(always)]
    fn data_received(&mut self, data: Bytes) {
        self.shared().stats.received(data.len());
        self.callback("data_received", move |p, _, _| p.data_received(data));
    }

    /// Deliver the read result kept back while reading was paused.
    #[cold]
    pub(super) fn deliver_stash(&mut self) {
        if let Some(stashed) = self.stash.take() {
            self.deliver(*stashed);
        }
    }

    /// Bytes read into the pool, for a protocol that is buffered now (it
    /// replaced a plain one while they were kept back): copied into the
    /// buffers its `get_buffer` returns, as many rounds as it takes. If a
    /// callback pauses or closes meanwhile, the rest is kept back again (or
    /// dropped with the connection); if it switches back to a plain
    /// protocol, that one gets the rest.
    #[cold]
    fn feed_buffered(&mut self, mut data: Bytes) {
        while !data.is_empty() {
            if !self.protocol.is_buffered() {
                self.data_received(data);
                return;
            }
            let want = data.len();
            let src = &data;
            let copied = self.callback("get_buffer", move |p, _, _| {
                let buf = p.get_buffer(SIZEHINT.max(want))?;
                let k = (buf.capacity() - buf.len()).min(src.len());
                buf.extend_from_slice(&src[..k]);
                Some(k)
            });
            let k = match copied {
                Some(Some(0)) => return self.deliver(ReadOutcome::EmptyBuffer),
                Some(Some(k)) => k,
                // Not buffered after all (cannot happen between the check
                // and the call): the plain path takes the rest.
                Some(None) => return self.data_received(data),
                None => return,
            };
            let rest = data.split_off(k);
            self.shared().stats.received(k);
            self.callback("buffer_updated", move |p, _, _| p.buffer_updated(k));
            data = rest;
            if !data.is_empty() && !self.may_deliver() {
                if !self.shared().is_closing() {
                    self.stash = Some(Box::new(ReadOutcome::Data(data)));
                }
                return;
            }
        }
    }

    /// Hand one read's result to the protocol.
    pub(super) fn deliver(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Pending | ReadOutcome::Panicked | ReadOutcome::Ran => {}
            ReadOutcome::Data(data) if self.protocol.is_buffered() => self.feed_buffered(data),
            ReadOutcome::Data(data) => self.data_received(data),
            ReadOutcome::Filled(n) => {
                self.shared().stats.received(n);
                self.callback("buffer_updated", move |p, _, _| p.buffer_updated(n));
            }
            ReadOutcome::EmptyBuffer => {
                let err = io::Error::other(EMPTY_BUFFER_MSG);
                call_exception_handler(
                    &ExceptionContext::new("Fatal error: protocol.get_buffer() call failed.")
                        .with_error(&err)
                        .with_peername(self.shared().extra.peer_inet()),
                );
                self.fatal(err);
            }
            ReadOutcome::Eof => {
                if self.core.sm.read_eof() {
                    tracing::debug!("eof received");
                    self.sync_flags();
                    let keep_open = self.callback("eof_received", |p, _, _| p.eof_received());
                    if IO::TLS {
                        // TLS cannot half-close: the peer's close_notify
                        // ends the connection whatever the protocol says.
                        if keep_open == Some(true) {
                            tracing::debug!(
                                "returning true from eof_received() has no effect when using ssl"
                            );
                        }
                        self.core.sm.close();
                        self.sync_flags();
                    } else if let Some(keep_open) = keep_open {
                        // (A read pipe closes whatever it returned.)
                        self.core.sm.eof_received_returned(keep_open);
                        // `is_closing()` is true at once if it closed (a
                        // `resume_writing` that follows in this pass sees it).
                        self.sync_flags();
                    }
                }
            }
            ReadOutcome::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
            ReadOutcome::Error(e) if IO::MODE.is_pipe() && e.raw_os_error() == Some(libc::EIO) => {
                // A pty's end: the other side closed (Linux reports EIO, not
                // a 0-byte read). An end of file, not a failure (asyncio
                // logs it at debug level only).
                tracing::debug!("pipe read ended with EIO (pty closed): {e}");
                self.deliver(ReadOutcome::Eof);
            }
            ReadOutcome::Error(e) if IO::TLS && e.kind() == io::ErrorKind::UnexpectedEof => {
                // A ragged end: the socket closed without close_notify. Not
                // a graceful end of file, so no `eof_received` (uvloop's
                // choice); what is queued is flushed and the connection
                // closes with `connection_lost(None)`.
                self.core.sm.read_eof();
                self.core.sm.close();
                self.sync_flags();
            }
            ReadOutcome::Error(e) if matches!(IO::MODE, Mode::ReadOnly) => {
                // asyncio's read pipe reports every read error but EIO to
                // the exception handler (a socket's transport reports no
                // `OSError`), then closes with it.
                call_exception_handler(
                    &ExceptionContext::new("Fatal read error on pipe transport").with_error(&e),
                );
                self.fatal(e);
            }
            ReadOutcome::Error(e) => self.fatal(e),
        }
    }
}
