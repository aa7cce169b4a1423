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
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::handle::{
    CLOSING, CURRENT, Command, DISCARDED, FINISHED, LOST, READ_DONE, READ_PAUSED, Shared, Transport,
};
use super::read_pool;
use super::state::{Event, Phase, ReadState, StreamState, WriteOutcome};
use crate::context;
use crate::error::{CallbackPanicked, EMPTY_BUFFER_MSG};
use crate::exception::{ExceptionContext, call_exception_handler};
use crate::protocol::AnyProtocol;

/// At most this many buffers go into one vectored write.
const MAX_IOV: usize = 64;
/// Reads per poll before the task yields to its neighbours.
const READS_PER_POLL: usize = 16;
/// The `sizehint` given to `get_buffer` (uvloop passes libuv's 64 KiB).
const SIZEHINT: usize = read_pool::CHUNK;

/// Called once when the connection is finished (after `connection_lost`).
pub(crate) type OnFinish = Box<dyn FnOnce(&Transport) + Send>;

/// Wakes the task and records that the read side was woken, so the driver
/// calls `get_buffer` only when a read has a chance to succeed.
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
    rx: mpsc::UnboundedReceiver<Command>,
    sm: StreamState,
    protocol: AnyProtocol,
    /// Commands issued from inside callbacks (reused allocation).
    scratch: Vec<Command>,
    read_wake: Arc<ReadWake>,
    read_waker: Waker,
    stage: Stage,
    started: Option<oneshot::Sender<()>>,
    shutdown_pending: bool,
    lost: Option<Option<io::Error>>,
    /// A read result that arrived just as reading was paused from another
    /// thread: delivered first when reading resumes.
    stash: Option<ReadOutcome>,
    on_finish: Option<OnFinish>,
}

impl<IO> Driver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    pub(crate) fn new(
        io: IO,
        handle: Transport,
        rx: mpsc::UnboundedReceiver<Command>,
        sm: StreamState,
        protocol: AnyProtocol,
        started: oneshot::Sender<()>,
        on_finish: Option<OnFinish>,
    ) -> Self {
        let read_wake = Arc::new(ReadWake {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let read_waker = Waker::from(read_wake.clone());
        Driver {
            io: Some(io),
            handle,
            rx,
            sm,
            protocol,
            scratch: Vec::new(),
            read_wake,
            read_waker,
            stage: Stage::New,
            started: Some(started),
            shutdown_pending: false,
            lost: None,
            stash: None,
            on_finish,
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    // ---- callbacks -----------------------------------------------------

    /// Run one protocol callback: inside the connection's context (so the
    /// transport calls it makes skip the channel), with panics caught. Then
    /// apply what it asked for. A panic aborts this connection only.
    fn callback<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut AnyProtocol, &mut Option<IO>, &Transport) -> R,
    ) -> Option<R> {
        let id = self.handle.shared.id;
        let (protocol, io, handle) = (&mut self.protocol, &mut self.io, &self.handle);
        let result = context::scope(&CURRENT, id, &mut self.scratch, || {
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

    fn apply_scratch(&mut self) {
        if self.scratch.is_empty() {
            return;
        }
        let mut cmds = std::mem::take(&mut self.scratch);
        for cmd in cmds.drain(..) {
            self.apply(cmd);
        }
        // Keep the allocation unless a callback queued something unusual.
        if self.scratch.is_empty() && cmds.capacity() <= 64 {
            self.scratch = cmds;
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
            Command::WriteEof => self.sm.write_eof(),
            Command::Close => self.sm.close(),
            Command::Abort => self.lose(None),
            Command::PauseReading => self.sm.pause_reading(),
            Command::ResumeReading => self.sm.resume_reading(),
            Command::SetLimits(limits) => self.sm.set_limits(limits),
            Command::SetProtocol(p) => self.protocol = p,
            Command::WithProtocol(f) => {
                self.callback("get_protocol", |p, _, _| f(p));
            }
        }
    }

    fn enqueue(&mut self, data: Bytes) {
        let len = data.len();
        if self.sm.write(data) == WriteOutcome::Dropped {
            self.forget_bytes(len);
            self.shared().count_dropped_write();
        }
    }

    /// Bytes counted by the handle that will never be sent.
    fn forget_bytes(&self, n: usize) {
        if n > 0 {
            self.shared().buffered.fetch_sub(n, Ordering::AcqRel);
            self.shared().notify_drained();
        }
    }

    fn fatal(&mut self, err: io::Error) {
        self.lose(Some(err));
    }

    /// Abort: discard the queue and lose the connection (once).
    fn lose(&mut self, exc: Option<io::Error>) {
        let discarded = self.sm.abort(exc);
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
    fn may_deliver(&self) -> bool {
        self.sm.is_reading() && !self.shared().has(READ_PAUSED | CLOSING | LOST)
    }

    /// Mirror the state machine into the flags handles read.
    fn sync_flags(&self) {
        let mut bits = 0;
        match self.sm.phase() {
            Phase::Open => {}
            Phase::Closing => bits |= CLOSING | READ_DONE,
            Phase::Lost => bits |= CLOSING | READ_DONE | LOST,
        }
        if matches!(self.sm.read_state(), ReadState::Eof | ReadState::Stopped) {
            bits |= READ_DONE;
        }
        if bits != 0 {
            self.shared().set(bits);
        }
    }

    // ---- writing -------------------------------------------------------

    /// Write as much of the queue as the I/O takes now.
    fn flush(&mut self, cx: &mut Context<'_>) {
        let Some(io) = self.io.as_mut() else { return };
        while self.sm.queued() > 0 {
            let res = match self.sm.single_chunk() {
                // The common case (one callback wrote one buffer): no iovec.
                Some(chunk) => Pin::new(&mut *io).poll_write(cx, chunk),
                None => {
                    let mut bufs = [IoSlice::new(&[]); MAX_IOV];
                    let n = self.sm.chunks(&mut bufs);
                    Pin::new(&mut *io).poll_write_vectored(cx, &bufs[..n])
                }
            };
            match res {
                Poll::Ready(Ok(0)) => {
                    self.fatal(io::ErrorKind::WriteZero.into());
                    return;
                }
                Poll::Ready(Ok(n)) => {
                    self.sm.consume(n);
                    self.handle.shared.buffered.fetch_sub(n, Ordering::AcqRel);
                    self.handle.shared.notify_drained();
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.fatal(e);
                    return;
                }
                Poll::Pending => return,
            }
        }
    }

    /// Run events, write, finish closes and half-closes, until nothing is
    /// left to do without waiting.
    fn settle(&mut self, cx: &mut Context<'_>) {
        loop {
            while let Some(event) = self.sm.poll_event() {
                match event {
                    Event::PauseWriting => {
                        self.callback("pause_writing", |p, _, _| p.base_mut().pause_writing());
                    }
                    Event::ResumeWriting => {
                        self.callback("resume_writing", |p, _, _| p.base_mut().resume_writing());
                    }
                    Event::ShutdownWrite => self.shutdown_pending = true,
                    Event::Lost(exc) => {
                        self.lost = Some(exc);
                        self.sync_flags();
                        return;
                    }
                }
            }
            if self.sm.queued() > 0 {
                self.flush(cx);
                self.sm.check_pause();
                if self.sm.has_events() {
                    continue;
                }
            }
            if self.sm.queued() == 0 {
                // Only now: `resume_writing` (run above) may have written more.
                self.sm.drained();
                if self.sm.has_events() {
                    continue;
                }
            }
            if self.shutdown_pending {
                self.poll_shutdown(cx);
            }
            self.sync_flags();
            if !self.sm.has_events() {
                return;
            }
        }
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) {
        let Some(io) = self.io.as_mut() else { return };
        match Pin::new(io).poll_shutdown(cx) {
            Poll::Ready(Ok(())) => self.shutdown_pending = false,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                // The peer is already gone; the read side will tell.
                self.shutdown_pending = false;
            }
            Poll::Ready(Err(e)) => {
                self.shutdown_pending = false;
                self.fatal(e);
            }
            Poll::Pending => {}
        }
    }

    // ---- reading -------------------------------------------------------

    /// One read attempt. Returns whether it made progress (data, EOF or an
    /// error); `false` means the I/O has nothing now.
    fn read_once(&mut self) -> bool {
        self.read_wake.woken.store(false, Ordering::Release);
        let waker = self.read_waker.clone();
        let mut rcx = Context::from_waker(&waker);
        let outcome = match &mut self.protocol {
            AnyProtocol::Stream(_) => {
                let Some(io) = self.io.as_mut() else {
                    return false;
                };
                read_pool::with_buffer(|buf| match poll_read_buf(Pin::new(io), &mut rcx, buf) {
                    Poll::Ready(Ok(0)) => ReadOutcome::Eof,
                    Poll::Ready(Ok(n)) => ReadOutcome::Data(buf.split_to(n).freeze()),
                    Poll::Ready(Err(e)) => ReadOutcome::Error(e),
                    Poll::Pending => ReadOutcome::Pending,
                })
            }
            AnyProtocol::Buffered(_) => self
                .callback("get_buffer", |p, io, _| {
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
                    match poll_read_buf(Pin::new(io), &mut rcx, buf) {
                        Poll::Ready(Ok(0)) => ReadOutcome::Eof,
                        Poll::Ready(Ok(n)) => ReadOutcome::Filled(n),
                        Poll::Ready(Err(e)) => ReadOutcome::Error(e),
                        Poll::Pending => ReadOutcome::Pending,
                    }
                })
                .unwrap_or(ReadOutcome::Panicked),
        };
        match outcome {
            ReadOutcome::Pending => false,
            ReadOutcome::Panicked => true,
            outcome if !self.may_deliver() => {
                // Paused or closed from another thread while we read.
                if !self.shared().has(CLOSING | LOST) {
                    self.stash = Some(outcome);
                }
                true
            }
            outcome => {
                self.deliver(outcome);
                true
            }
        }
    }

    /// Hand one read's result to the protocol.
    fn deliver(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Pending | ReadOutcome::Panicked => {}
            ReadOutcome::Data(data) => {
                self.read_wake.woken.store(true, Ordering::Release);
                self.callback("data_received", move |p, _, _| {
                    if let AnyProtocol::Stream(p) = p {
                        p.data_received(data);
                    }
                });
            }
            ReadOutcome::Filled(n) => {
                self.read_wake.woken.store(true, Ordering::Release);
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
                if self.sm.read_eof() {
                    self.sync_flags();
                    let keep_open = self.callback("eof_received", |p, _, _| p.eof_received());
                    if keep_open == Some(false) {
                        self.sm.close();
                    }
                }
            }
            ReadOutcome::Error(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.read_wake.woken.store(true, Ordering::Release);
            }
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

    fn finish(&mut self) {
        self.stage = Stage::Finished;
        let exc = self.lost.take().flatten();
        self.callback("connection_lost", move |p, _, _| {
            p.base_mut().connection_lost(exc)
        });
        // Whatever is still in the channel will never be sent.
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Write(d) => self.forget_bytes(d.len()),
                Command::WriteMany(v) => self.forget_bytes(v.iter().map(Bytes::len).sum()),
                _ => {}
            }
        }
        self.scratch.clear();
        let shared = &self.handle.shared;
        shared.extra.clear_fd();
        self.io = None;
        shared.set(FINISHED);
        shared.finished.notify_waiters();
        shared.drained.notify_waiters();
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
}

impl<IO> Future for Driver<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.stage {
            Stage::Finished => return Poll::Ready(()),
            Stage::New => this.start(),
            Stage::Running => {}
        }
        this.read_wake.task.register(cx.waker());
        let mut reads = 0;
        loop {
            while let Poll::Ready(Some(cmd)) = this.rx.poll_next_unpin(cx) {
                this.apply(cmd);
            }
            this.settle(cx);
            if this.lost.is_some() {
                this.finish();
                return Poll::Ready(());
            }
            if !this.may_deliver() {
                return Poll::Pending;
            }
            if let Some(stashed) = this.stash.take() {
                this.deliver(stashed);
                continue;
            }
            if !this.read_wake.woken.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            if !this.read_once() {
                return Poll::Pending;
            }
            reads += 1;
            if reads >= READS_PER_POLL {
                // Let the other tasks on this worker run; come back soon.
                this.settle(cx);
                if this.lost.is_some() {
                    this.finish();
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}
