//! The tokio task that owns a stream transport's I/O.
//!
//! [`Driver`] is a hand-written future: each poll applies the commands that
//! arrived over the channel, runs the protocol callbacks the state machine
//! asks for, writes the queue out (one vectored write for what a callback
//! wrote, tried before anything is buffered), and reads, handing the protocol
//! a zero-copy slice of the thread's read buffer or reading straight into the
//! protocol's own buffer. All decisions live in [`StreamState`]; this file
//! only moves bytes and calls callbacks.

use std::any::Any;
use std::future::Future;
use std::io::{self, IoSlice};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};

use super::handle::{
    CLOSING, CURRENT, Command, Core, DISCARDED, LOST, READ_DONE, READ_PAUSED, Shared, Transport,
};
use super::read_pool::{self, Loan, Pool};
use super::state::{Event, Phase, ReadState, StreamState, WriteOutcome};
use crate::context;
use crate::error::{CallbackPanicked, EMPTY_BUFFER_MSG};
use crate::exception::{ExceptionContext, call_exception_handler};
use crate::inbox::Registered;
use crate::protocol::AnyProtocol;

/// At most this many buffers go into one vectored write.
const MAX_IOV: usize = 64;
/// Reads per poll before the task yields to its neighbours.
const READS_PER_POLL: usize = 16;
/// The `sizehint` given to `get_buffer` (uvloop passes libuv's 64 KiB).
const SIZEHINT: usize = 64 * 1024;

/// Called once when the connection is finished (after `connection_lost`).
/// Shared by every connection of a server (no allocation per connection).
/// (A thin pointer: the driver future stays small.)
pub(crate) type OnFinish = Arc<FinishHook>;

/// The function behind an [`OnFinish`].
pub(crate) type FinishHook = Box<dyn Fn(&Transport) + Send + Sync>;

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
struct ReadWaker {
    wake: Arc<ReadWake>,
    waker: Waker,
}

/// `connection_lost` is due, with this error (`None`: a clean close).
struct Lost(Option<io::Error>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `connection_made` has not run yet.
    New,
    Running,
    Finished,
}

/// One connection's task.
pub(crate) struct Driver<IO> {
    io: Option<IO>,
    handle: Transport,
    /// The state machine and the commands from callbacks or the inbox
    /// (what callbacks reach through the context).
    core: Core,
    protocol: AnyProtocol,
    /// Created when a buffered protocol first reads.
    read_wake: Option<Box<ReadWaker>>,
    stage: Stage,
    /// Which waker the inbox's senders hold.
    inbox_waker: Registered,
    started: Option<oneshot::Sender<()>>,
    /// A read result that arrived just as reading was paused from another
    /// thread: delivered first when reading resumes.
    stash: Option<Box<ReadOutcome>>,
    on_finish: Option<OnFinish>,
}

impl<IO> Driver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub(crate) fn new(
        io: IO,
        handle: Transport,
        sm: StreamState,
        protocol: AnyProtocol,
        started: Option<oneshot::Sender<()>>,
        on_finish: Option<OnFinish>,
    ) -> Self {
        Driver {
            io: Some(io),
            handle,
            core: Core {
                sm,
                commands: Vec::new(),
            },
            protocol,
            read_wake: None,
            stage: Stage::New,
            inbox_waker: Registered::default(),
            started,
            stash: None,
            on_finish,
        }
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    // ---- callbacks -----------------------------------------------------

    /// Run one protocol callback: inside the connection's context (so the
    /// transport calls it makes skip the channel), with panics caught. Then
    /// apply what it asked for. A panic aborts this connection only.
    #[inline]
    fn callback<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut AnyProtocol, &mut Option<IO>, &Transport) -> R,
    ) -> Option<R> {
        let id = self.handle.shared.id;
        let (protocol, io, handle) = (&mut self.protocol, &mut self.io, &self.handle);
        let result = context::scope(&CURRENT, id, &mut self.core, || {
            catch_unwind(AssertUnwindSafe(|| f(protocol, io, handle)))
        });
        self.apply_scratch();
        match result {
            Ok(r) => Some(r),
            Err(payload) => {
                self.on_panic(name, payload);
                None
            }
        }
    }

    fn on_panic(&mut self, name: &'static str, payload: Box<dyn Any + Send>) {
        let err = CallbackPanicked::from_payload(name, &*payload);
        let text = format!("Fatal error: protocol.{name}() call failed.");
        call_exception_handler(
            &ExceptionContext::new(&text)
                .with_error(&err)
                .with_peername(self.shared().extra.peer_inet()),
        );
        if name == "connection_lost" {
            return;
        }
        self.fatal(io::Error::other(err));
    }

    #[inline]
    fn apply_scratch(&mut self) {
        if !self.core.commands.is_empty() {
            self.apply_commands();
        }
    }

    fn apply_commands(&mut self) {
        let mut cmds = std::mem::take(&mut self.core.commands);
        for cmd in cmds.drain(..) {
            self.apply(cmd);
        }
        // Keep the allocation unless a burst made it large.
        if self.core.commands.is_empty() && cmds.capacity() <= 64 {
            self.core.commands = cmds;
        }
    }

    /// Apply the commands sent from outside the callbacks.
    #[inline]
    fn apply_inbox(&mut self) {
        // Callbacks' commands are applied as each callback returns, so the
        // list is empty here unless the inbox had something.
        debug_assert!(self.core.commands.is_empty());
        if self.handle.shared.inbox.drain_into(&mut self.core.commands) {
            // A `drain()` waiter may have poked us (see `Common::drain`).
            self.shared().notify_drained();
            self.apply_scratch();
        }
    }

    // ---- commands ------------------------------------------------------

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Write(data) => self.enqueue(data),
            Command::WriteMany(chunks) => {
                for data in chunks {
                    self.enqueue(data);
                }
            }
            Command::WriteEof => self.core.sm.write_eof(),
            Command::Close => self.core.sm.close(),
            Command::Abort => self.lose(None),
            Command::PauseReading => self.core.sm.pause_reading(),
            Command::ResumeReading => self.core.sm.resume_reading(),
            Command::SetLimits(limits) => self.core.sm.set_limits(limits),
            Command::SetProtocol(p) => self.protocol = p,
            Command::WithProtocol(f) => {
                self.callback("get_protocol", |p, _, _| f(p));
            }
        }
    }

    fn enqueue(&mut self, data: Bytes) {
        let len = data.len();
        if self.core.sm.write(data) == WriteOutcome::Dropped {
            self.forget_bytes(len);
            self.shared().count_dropped_write();
        }
    }

    /// Bytes counted by the handle that will never be sent.
    fn forget_bytes(&self, n: usize) {
        self.shared().release(n);
    }

    fn fatal(&mut self, err: io::Error) {
        self.lose(Some(err));
    }

    /// Abort: discard the queue and lose the connection (once).
    fn lose(&mut self, exc: Option<io::Error>) {
        let discarded = self.core.sm.abort(exc);
        // Mark the loss before the byte count drops, so `drain()` cannot
        // mistake discarded data for sent data.
        self.sync_flags();
        if discarded > 0 {
            self.shared().set(DISCARDED);
        }
        self.forget_bytes(discarded);
    }

    /// Whether a read's result may be delivered now. `pause_reading()`,
    /// `close()` and `abort()` set their flag before they return, from any
    /// thread; the command that updates the state machine may still be in
    /// flight, so the flags are checked too.
    #[inline]
    fn may_deliver(&self) -> bool {
        self.core.sm.is_reading() && !self.shared().has(READ_PAUSED | CLOSING | LOST)
    }

    /// [`may_deliver`](Self::may_deliver) again after a read that it
    /// allowed: only another thread can have changed it meanwhile (no
    /// callback ran in between), so only the flags are checked.
    #[inline]
    fn still_deliverable(&self) -> bool {
        debug_assert!(self.core.sm.is_reading());
        !self.shared().has(READ_PAUSED | CLOSING | LOST)
    }

    /// Mirror the state machine into the flags handles read.
    #[inline]
    fn sync_flags(&self) {
        let mut bits = 0;
        match self.core.sm.phase() {
            Phase::Open => {}
            Phase::Closing => bits |= CLOSING | READ_DONE,
            Phase::Lost => bits |= CLOSING | READ_DONE | LOST,
        }
        if matches!(
            self.core.sm.read_state(),
            ReadState::Eof | ReadState::Stopped
        ) {
            bits |= READ_DONE;
        }
        if bits != 0 {
            self.shared().set(bits);
        }
    }

    // ---- writing -------------------------------------------------------

    /// Write as much of the queue as the I/O takes now. Returns `true` if
    /// the I/O cannot take more now (the task will be woken when it can).
    #[inline(always)]
    fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        while self.core.sm.queued() > 0 {
            match self.poll_write_queue(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    let sent = self.core.sm.consume(n);
                    self.handle.shared.release(sent);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Ok(_)) => {
                    self.fatal(io::ErrorKind::WriteZero.into());
                    return true;
                }
                Poll::Ready(Err(e)) => {
                    self.fatal(e);
                    return true;
                }
                Poll::Pending => return true,
            }
        }
        false
    }

    /// One write attempt: the only queued chunk as it is (the common case:
    /// one callback wrote one buffer), or several in one vectored write.
    #[inline]
    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Pending;
        };
        match self.core.sm.single_chunk() {
            Some(chunk) => Pin::new(io).poll_write(cx, chunk),
            None => Self::poll_write_vectored(io, &self.core.sm, cx),
        }
    }

    #[inline(never)]
    fn poll_write_vectored(
        io: &mut IO,
        sm: &StreamState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut bufs = [IoSlice::new(&[]); MAX_IOV];
        let n = sm.chunks(&mut bufs);
        Pin::new(io).poll_write_vectored(cx, &bufs[..n])
    }

    /// Run events, write, finish closes and half-closes, until nothing is
    /// left to do without waiting. Returns [`Lost`] once `connection_lost` is
    /// due (only the general case can find that).
    #[inline(always)]
    fn settle(&mut self, cx: &mut Context<'_>) -> Option<Lost> {
        if !self.core.sm.only_writes() {
            return self.settle_busy(cx, false);
        }
        if self.core.sm.queued() > 0 {
            // The common case: a callback wrote and nothing else happened.
            // Unless blocked, the flush sent everything (or lost the
            // connection, which makes the state busy).
            let blocked = self.flush(cx);
            if blocked || !self.core.sm.only_writes() {
                return self.settle_busy(cx, blocked);
            }
        }
        None
    }

    /// The general case of [`settle`](Self::settle). `blocked`: a write
    /// attempt already found the I/O full in this pass, so trying again is
    /// pointless (the task is woken when there is room). Returns [`Lost`]
    /// when `connection_lost` is due.
    fn settle_busy(&mut self, cx: &mut Context<'_>, mut blocked: bool) -> Option<Lost> {
        loop {
            while let Some(event) = self.core.sm.poll_event() {
                match event {
                    Event::PauseWriting => {
                        self.callback("pause_writing", |p, _, _| p.base_mut().pause_writing());
                    }
                    Event::ResumeWriting => {
                        self.callback("resume_writing", |p, _, _| p.base_mut().resume_writing());
                    }
                    Event::ShutdownWrite => self.core.sm.start_shutdown(),
                    Event::Lost(exc) => {
                        self.sync_flags();
                        return Some(Lost(exc));
                    }
                }
            }
            if self.core.sm.queued() > 0 {
                if !blocked {
                    blocked = self.flush(cx);
                }
                self.core.sm.check_pause();
                if self.core.sm.has_events() {
                    continue;
                }
            }
            if self.core.sm.queued() == 0 {
                // Only now: `resume_writing` (run above) may have written more.
                self.core.sm.drained();
                if self.core.sm.has_events() {
                    continue;
                }
            }
            if self.core.sm.is_shutting_down() {
                self.poll_shutdown(cx);
            }
            self.sync_flags();
            if !self.core.sm.has_events() {
                // `Lost` is the last event: once taken, nothing else is due.
                return None;
            }
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) {
        let Some(io) = self.io.as_mut() else { return };
        match Pin::new(io).poll_shutdown(cx) {
            Poll::Ready(Ok(())) => self.core.sm.shutdown_done(),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                // The peer is already gone; the read side will tell.
                self.core.sm.shutdown_done();
            }
            Poll::Ready(Err(e)) => {
                self.core.sm.shutdown_done();
                self.fatal(e);
            }
            Poll::Pending => {}
        }
    }

    // ---- reading -------------------------------------------------------

    /// One read attempt. Returns whether it made progress (data, EOF or an
    /// error); `false` means the I/O has nothing now.
    #[inline(always)]
    fn read_once(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> bool {
        let outcome = match &mut self.protocol {
            AnyProtocol::Stream(_) => {
                let Some(io) = self.io.as_mut() else {
                    return false;
                };
                match pool.poll_read(io, cx) {
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
            AnyProtocol::Buffered(_) => self.read_buffered(cx),
        };
        self.read_done(outcome)
    }

    /// One read of a [`BufferedProtocol`](crate::BufferedProtocol): into
    /// the buffer `get_buffer` returns, and only once the read side was
    /// woken (see [`ReadWake`]).
    #[inline(never)]
    fn read_buffered(&mut self, cx: &mut Context<'_>) -> ReadOutcome {
        let ReadWaker { wake, waker } = &**self.read_wake.get_or_insert_with(|| {
            let wake = Arc::new(ReadWake {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            });
            let waker = Waker::from(wake.clone());
            Box::new(ReadWaker { wake, waker })
        });
        wake.task.register(cx.waker());
        if !wake.woken.swap(false, Ordering::AcqRel) {
            return ReadOutcome::Pending;
        }
        let waker = waker.clone();
        let mut rcx = Context::from_waker(&waker);
        let outcome = self.callback("get_buffer", |p, io, _| {
            let AnyProtocol::Buffered(p) = p else {
                return ReadOutcome::Pending;
            };
            let Some(io) = io.as_mut() else {
                return ReadOutcome::Pending;
            };
            let buf = p.get_buffer(SIZEHINT);
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
            if let Some(read_waker) = &self.read_wake {
                read_waker.wake.woken.store(true, Ordering::Release);
            }
        }
        match outcome {
            // `get_buffer` ran and may have asked for something (a write, a
            // close): one more pass settles it. `woken` stays clear, so that
            // pass does not call `get_buffer` again.
            Some(ReadOutcome::Pending) => ReadOutcome::Ran,
            other => other.unwrap_or(ReadOutcome::Panicked),
        }
    }

    /// Act on a read's result other than data delivered on the hot path:
    /// deliver it, or stash it if reading was paused from another thread
    /// meanwhile. Returns whether the read made progress.
    #[inline(never)]
    fn read_done(&mut self, outcome: ReadOutcome) -> bool {
        match outcome {
            ReadOutcome::Pending => false,
            ReadOutcome::Panicked | ReadOutcome::Ran => true,
            outcome if !self.may_deliver() => {
                // Paused or closed from another thread while we read.
                if !self.shared().has(CLOSING | LOST) {
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

    #[inline]
    fn data_received(&mut self, data: Bytes) {
        self.callback("data_received", move |p, _, _| {
            if let AnyProtocol::Stream(p) = p {
                p.data_received(data);
            }
        });
    }

    /// Deliver the read result kept back while reading was paused.
    #[cold]
    fn deliver_stash(&mut self) {
        if let Some(stashed) = self.stash.take() {
            self.deliver(*stashed);
        }
    }

    /// Hand one read's result to the protocol.
    fn deliver(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Pending | ReadOutcome::Panicked | ReadOutcome::Ran => {}
            ReadOutcome::Data(data) => self.data_received(data),
            ReadOutcome::Filled(n) => {
                self.callback("buffer_updated", move |p, _, _| {
                    if let AnyProtocol::Buffered(p) = p {
                        p.buffer_updated(n);
                    }
                });
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
                    self.sync_flags();
                    let keep_open = self.callback("eof_received", |p, _, _| p.eof_received());
                    if keep_open == Some(false) {
                        self.core.sm.close();
                    }
                }
            }
            ReadOutcome::Error(e) if e.kind() == io::ErrorKind::Interrupted => {}
            ReadOutcome::Error(e) => self.fatal(e),
        }
    }

    // ---- start and finish ----------------------------------------------

    fn start(&mut self) {
        self.stage = Stage::Running;
        self.callback("connection_made", |p, _, t| p.base_mut().connection_made(t));
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
    }

    fn finish(&mut self, Lost(exc): Lost) {
        self.stage = Stage::Finished;
        self.callback("connection_lost", move |p, _, _| {
            p.base_mut().connection_lost(exc)
        });
        // Whatever is still in the channel will never be sent.
        for cmd in self.handle.shared.inbox.close() {
            match cmd {
                Command::Write(d) => self.forget_bytes(d.len()),
                Command::WriteMany(v) => self.forget_bytes(v.iter().map(Bytes::len).sum()),
                _ => {}
            }
        }
        self.core.commands.clear();
        let shared = &self.handle.shared;
        shared.extra.clear_fd();
        self.io = None;
        shared.finish();
        if let Some(on_finish) = self.on_finish.take() {
            on_finish(&self.handle);
        }
    }
}

enum ReadOutcome {
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

impl<IO> Future for Driver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut loan = Loan::take();
        let poll = this.poll_running(cx, loan.pool());
        loan.give_back();
        poll
    }
}

impl<IO> Driver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// One poll of the task; `pool` is the thread's read buffer, lent for
    /// this poll.
    #[inline(always)]
    fn poll_running(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> Poll<()> {
        let this = self;
        if this.stage != Stage::Running {
            if this.stage == Stage::Finished {
                return Poll::Ready(());
            }
            this.start();
        }
        let mut reads = 0;
        loop {
            this.apply_inbox();
            if let Some(lost) = this.settle(cx) {
                this.finish(lost);
                return Poll::Ready(());
            }
            let progress = if !this.may_deliver() {
                false
            } else if this.stash.is_some() {
                this.deliver_stash();
                true
            } else {
                this.read_once(cx, pool)
            };
            if progress {
                reads += 1;
                if reads < READS_PER_POLL {
                    continue;
                }
                // Let the other tasks on this worker run; come back soon.
                this.apply_inbox();
                if let Some(lost) = this.settle(cx) {
                    this.finish(lost);
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Nothing to read: sleep, unless a command slipped in.
            if !this
                .handle
                .shared
                .inbox
                .register(&mut this.inbox_waker, cx.waker())
            {
                return Poll::Pending;
            }
        }
    }
}
