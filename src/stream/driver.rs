//! The tokio task that owns a stream transport's I/O.
//!
//! [`Driver`] is a hand-written future: each poll applies the commands that
//! arrived over the channel, runs the protocol callbacks the state machine
//! asks for, writes the queue out (one vectored write for what a callback
//! wrote, tried before anything is buffered), and reads, handing the protocol
//! a zero-copy slice of the thread's read buffer or reading straight into the
//! protocol's own buffer. All decisions live in [`StreamState`]; this file
//! only moves bytes and calls callbacks. The poll loop, the callbacks and the
//! commands are here; the write side (`flush`, `settle`) is in `write.rs`,
//! the read side in `read.rs`.

mod read;
pub(crate) mod sendfile;
mod tls;
#[cfg(feature = "tls")]
mod upgrade;
mod write;

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::channel::oneshot;

use self::read::{ReadOutcome, ReadWaker};
use super::handle::{
    CLOSING, CURRENT, Command, Core, DISCARDED, FlowOwed, LOST, READ_DONE, READ_PAUSED, Shared,
    Transport, UPGRADING,
};
use super::read_pool::{Loan, Pool};
use super::state::{Phase, ReadState, StreamState, WriteOutcome};
use super::stream_io::{Mode, StreamIo};
use crate::context;
use crate::drive::Drive;
use crate::error::TASK_DROPPED_MSG;
use crate::flow::{self, Kind, OnPanic};
use crate::inbox::Registered;
use crate::protocol::AnyProtocol;

/// Reads per poll before the task yields to its neighbours.
const READS_PER_POLL: usize = 16;

/// Called once when the connection is finished (after `connection_lost`).
/// Shared by every connection of a server (no allocation per connection).
/// (A thin pointer: the driver future stays small.)
pub(crate) type OnFinish = Arc<FinishHook>;

/// The function behind an [`OnFinish`].
pub(crate) type FinishHook = Box<dyn Fn(&Transport) + Send + Sync>;

/// `connection_lost` is due, with this error (`None`: a clean close).
struct Lost(Option<io::Error>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `connection_made` has not run yet.
    New,
    /// This task took the connection over from its plain task for
    /// `start_tls`: the handshake runs; `connection_made` ran before.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Upgrading,
    Running,
    /// Finished, or handed over to a TLS task.
    Finished,
}

/// One connection's task. `P` is how it holds its protocol (see
/// [`crate::drive`]): inline with its concrete type, or boxed.
pub(crate) struct Driver<IO, P: Drive = AnyProtocol> {
    io: Option<IO>,
    handle: Transport,
    /// The state machine and the commands from callbacks or the inbox
    /// (what callbacks reach through the context).
    core: Core,
    protocol: P,
    /// Created when a buffered protocol first reads.
    read_wake: Option<Box<ReadWaker>>,
    stage: Stage,
    /// Which waker the inbox's senders hold.
    inbox_waker: Registered,
    started: Option<oneshot::Sender<io::Result<()>>>,
    /// A read result that arrived just as reading was paused from another
    /// thread: delivered first when reading resumes.
    stash: Option<Box<ReadOutcome>>,
    on_finish: Option<OnFinish>,
    /// A `start_tls` waiting for the plaintext queue to drain.
    #[cfg(feature = "tls")]
    upgrade: Option<Box<crate::tls::start::Upgrade>>,
    /// A native `sendfile` under way.
    sendfile: Option<Box<sendfile::Job>>,
    /// Callbacks are timed (`set_callback_timing` was on at creation).
    timed: bool,
}

// The driver never pins its protocol or its I/O in place (it calls the
// protocol through `&mut`, and needs `IO: Unpin`), so it may move between
// polls whatever the protocol's type.
impl<IO: Unpin, P: Drive> Unpin for Driver<IO, P> {}

/// The test kit's harness owns a driver with a boxed protocol and reads its
/// state between two polls.
#[cfg(feature = "test-util")]
impl<IO> Driver<IO, AnyProtocol> {
    /// The protocol.
    pub(crate) fn protocol(&self) -> &AnyProtocol {
        &self.protocol
    }

    /// [`protocol`](Self::protocol), mutably.
    pub(crate) fn protocol_mut(&mut self) -> &mut AnyProtocol {
        &mut self.protocol
    }
}

// What needs no I/O (callbacks, commands, start and finish) is in a block
// without bounds, so that `Drop` can use it.
impl<IO, P: Drive> Driver<IO, P> {
    pub(crate) fn new(
        io: IO,
        handle: Transport,
        sm: StreamState,
        protocol: P,
        started: Option<oneshot::Sender<io::Result<()>>>,
        on_finish: Option<OnFinish>,
    ) -> Self {
        let timed = handle.shared.stats.timed();
        Driver {
            timed,
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
            #[cfg(feature = "tls")]
            upgrade: None,
            sendfile: None,
        }
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The transport's id and its frame, for a task that drives several
    /// transports and lends this one's frame to the others' callbacks
    /// ([`SIBLING`](super::handle::SIBLING)).
    #[cfg(all(feature = "process", target_os = "linux"))]
    pub(crate) fn frame(&mut self) -> (usize, &mut Core) {
        (self.handle.shared.id, &mut self.core)
    }

    // ---- callbacks -----------------------------------------------------

    /// Run one protocol callback: inside the connection's context (so the
    /// transport calls it makes skip the channel), with panics caught. Then
    /// apply what it asked for. A panic aborts this connection only.
    #[inline]
    fn callback<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut P, &mut Option<IO>, &Transport) -> R,
    ) -> Option<R> {
        if self.timed {
            return self.callback_timed(name, f);
        }
        self.run_callback::<false, R>(name, f)
    }

    /// [`callback`](Self::callback) with the time it takes added to the
    /// transport's counters (`set_callback_timing`).
    #[cold]
    #[inline(never)]
    fn callback_timed<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut P, &mut Option<IO>, &Transport) -> R,
    ) -> Option<R> {
        self.run_callback::<true, R>(name, f)
    }

    #[inline(always)]
    fn run_callback<const TIMED: bool, R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut P, &mut Option<IO>, &Transport) -> R,
    ) -> Option<R> {
        let id = self.handle.shared.id;
        let start = TIMED.then(Instant::now);
        let (protocol, io, handle) = (&mut self.protocol, &mut self.io, &self.handle);
        let result = context::scope(&CURRENT, id, &mut self.core, || {
            catch_unwind(AssertUnwindSafe(|| f(protocol, io, handle)))
        });
        if let Some(start) = start {
            self.handle.shared.stats.callback_done(start);
        }
        self.apply_scratch();
        match result {
            Ok(r) => Some(r),
            Err(payload) => {
                self.on_panic(name, payload);
                None
            }
        }
    }

    /// asyncio's rule (see [`flow::on_panic`]): reported, and fatal unless
    /// the callback was `pause_writing`, `resume_writing` or
    /// `connection_lost`.
    fn on_panic(&mut self, name: &'static str, payload: Box<dyn Any + Send>) {
        let extra = &self.shared().extra;
        let (peer, sock) = (extra.peer_inet(), extra.sock_inet());
        let err = flow::report_panic(Kind::Stream, name, &*payload, peer, sock);
        if flow::on_panic(Kind::Stream, name) == OnPanic::Fatal {
            self.fatal(io::Error::other(err));
        }
    }

    /// Whether a `start_tls` waits for the plaintext queue to drain (never,
    /// without the `tls` feature).
    #[inline(always)]
    fn upgrade_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.upgrade.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    #[inline]
    fn apply_scratch(&mut self) {
        if !self.core.commands.is_empty() {
            self.apply_commands();
        }
    }

    fn apply_commands(&mut self) {
        let mut cmds = std::mem::take(&mut self.core.commands);
        let mut rest = cmds.drain(..);
        while let Some(cmd) = rest.next() {
            #[cfg(feature = "tls")]
            if let Some(upgrade) = &mut self.upgrade {
                // `start_tls` is pending: this and what follows wait for
                // the TLS task (writes go out encrypted, in order).
                upgrade.held.push(cmd);
                upgrade.held.extend(&mut rest);
                break;
            }
            if let Some(job) = &mut self.sendfile {
                // A native `sendfile` is under way: this and what follows
                // wait for its end (the file's bytes go out in between).
                job.hold(cmd, &mut rest);
                break;
            }
            self.apply(cmd);
        }
        drop(rest);
        // Keep the allocation unless a burst made it large.
        if self.core.commands.is_empty() && cmds.capacity() <= 64 {
            self.core.commands = cmds;
        }
    }

    /// Apply the commands sent from outside the callbacks. Returns whether
    /// the inbox had anything (a command or a poke). One atomic load when
    /// it had nothing (the hot path, twice per request).
    #[inline(always)]
    fn apply_inbox(&mut self) -> bool {
        if self.handle.shared.inbox.is_pending() {
            return self.apply_inbox_now();
        }
        false
    }

    /// Returns whether anything was taken from the inbox.
    #[inline(never)]
    fn apply_inbox_now(&mut self) -> bool {
        if self.upgrade_pending() {
            // Left for the TLS task: what comes after `start_tls` is sent
            // encrypted.
            return false;
        }
        // Callbacks' commands are applied as each callback returns, so the
        // list is empty here unless the inbox had something.
        debug_assert!(self.core.commands.is_empty());
        self.handle.shared.inbox.drain_into(&mut self.core.commands);
        // A `drain()` waiter may have poked us (see `Common::drain`).
        self.shared().notify_drained();
        self.apply_scratch();
        true
    }

    // ---- commands ------------------------------------------------------

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Write(data) => self.enqueue(data),
            Command::WriteMany(chunks) => self.enqueue_many(chunks),
            Command::WriteEof => self.core.sm.write_eof(),
            Command::Close => self.core.sm.close(),
            Command::Abort => self.lose(None),
            Command::PauseReading => {
                tracing::debug!("pause_reading");
                self.core.sm.pause_reading();
            }
            Command::ResumeReading => {
                tracing::debug!("resume_reading");
                self.core.sm.resume_reading();
            }
            Command::SetLimits(limits) => self.core.sm.set_limits(limits),
            Command::SetProtocol(p) => {
                if let Some(ReadOutcome::Filled(n)) = self.stash.as_deref() {
                    // A read kept back (reading was paused from another
                    // thread while it read) went into the old buffered
                    // protocol's own buffer: those bytes are its own, and
                    // its `get_buffer` is owed its `buffer_updated`.
                    let n = *n;
                    self.stash = None;
                    self.shared().stats.received(n);
                    self.callback("buffer_updated", move |p, _, _| p.buffer_updated(n));
                }
                self.protocol.replace(p);
                self.rearm_buffered_read();
            }
            #[cfg(feature = "tls")]
            Command::StartTls(upgrade) => self.begin_upgrade(upgrade),
            Command::WithProtocol(f) => {
                self.callback("get_protocol", |p, _, _| f(p.as_any()));
                // The closure may have put another protocol in place.
                self.rearm_buffered_read();
            }
            Command::Sendfile(job) => self.begin_sendfile(job),
            Command::Swap(f) => {
                let told = self.core.sm.protocol_told_paused();
                let owed = self
                    .callback("set_protocol", |p, _, _| f(p.as_any(), told))
                    .flatten();
                self.rearm_buffered_read();
                // After a loss nothing but `connection_lost` is delivered.
                match owed.filter(|_| self.core.sm.phase() != Phase::Lost) {
                    Some(FlowOwed::Pause) => {
                        self.shared().stats.paused();
                        self.callback("pause_writing", |p, _, _| p.base_mut().pause_writing());
                    }
                    Some(FlowOwed::Resume) => {
                        self.callback("resume_writing", |p, _, _| p.base_mut().resume_writing());
                    }
                    None => {}
                }
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

    /// One `writelines` call: queued whole, or dropped and counted as one
    /// write (the rule the handle follows too).
    fn enqueue_many(&mut self, chunks: Vec<Bytes>) {
        if !self.core.sm.accepts_writes() {
            self.forget_bytes(chunks.iter().map(Bytes::len).sum());
            self.shared().count_dropped_write();
            return;
        }
        for data in chunks {
            self.core.sm.write(data);
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
        self.core.sm.is_reading() && !self.shared().has(READ_PAUSED | CLOSING | LOST | UPGRADING)
    }

    /// [`may_deliver`](Self::may_deliver) again after a read that it
    /// allowed: only another thread can have changed it meanwhile (no
    /// callback ran in between), so only the flags are checked.
    #[inline]
    fn still_deliverable(&self) -> bool {
        debug_assert!(self.core.sm.is_reading());
        !self.shared().has(READ_PAUSED | CLOSING | LOST | UPGRADING)
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

    // ---- start and finish ----------------------------------------------

    fn start(&mut self) {
        if self.started.as_ref().is_some_and(|s| s.is_canceled()) {
            // The caller that created the connection gave up before
            // `connection_made` (its future was dropped): the protocol
            // hears nothing, as after a failed TLS handshake, and the
            // socket closes.
            tracing::debug!("connection abandoned before connection_made: its creator gave up");
            self.abandon();
            return;
        }
        tracing::debug!("connection made");
        self.stage = Stage::Running;
        self.callback("connection_made", |p, _, t| p.base_mut().connection_made(t));
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
    }

    fn finish(&mut self, Lost(exc): Lost) {
        match &exc {
            None => tracing::debug!("connection lost"),
            Some(e) => tracing::debug!(error = %e, "connection lost"),
        }
        self.stage = Stage::Finished;
        // A native `sendfile` under way hears the loss's own error.
        self.sendfile_lost(exc.as_ref());
        self.callback("connection_lost", move |p, _, _| {
            p.base_mut().connection_lost(exc)
        });
        self.release();
    }

    /// The shared side of the end, after `connection_lost`: refuse further
    /// commands, count every write still in the channel as dropped (it
    /// raced with the loss: `write` returned `Ok`, so it must not vanish
    /// silently), release the I/O (its fd first, under the lock that
    /// `with_socket` takes), wake every waiter, and detach from the server.
    /// Commands still in the channel are dropped: a `with_protocol` waiter
    /// gets `None`.
    fn release(&mut self) {
        // A `start_tls` that never handed over: the commands it held (made
        // after the call) never ran; their writes count as dropped.
        #[cfg(not(feature = "tls"))]
        let held: Vec<Command> = Vec::new();
        #[cfg(feature = "tls")]
        let held = self
            .upgrade
            .take()
            .map(|upgrade| upgrade.held)
            .unwrap_or_default();
        let held_by_sendfile = self.drop_sendfile();
        for cmd in held
            .into_iter()
            .chain(held_by_sendfile)
            .chain(self.handle.shared.inbox.close())
        {
            let unsent = match cmd {
                Command::Write(d) => d.len(),
                Command::WriteMany(v) => v.iter().map(Bytes::len).sum(),
                _ => continue,
            };
            self.forget_bytes(unsent);
            self.shared().count_dropped_write();
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

    /// The task is dropped before the connection finished: its runtime shut
    /// down (or was dropped), or the task was aborted. Do what `finish`
    /// does, so that no handle is left waiting or lending a closed fd:
    /// discard the write buffer (a later `drain()` reports it), deliver
    /// `connection_lost` with [`TASK_DROPPED_MSG`] if `connection_made` ran
    /// (not while the thread is already panicking, and a failure in it is
    /// swallowed), then release everything.
    #[cold]
    fn abandon(&mut self) {
        let was_running = matches!(self.stage, Stage::Running | Stage::Upgrading);
        self.stage = Stage::Finished;
        self.lose(None);
        if was_running && !std::thread::panicking() {
            let err = io::Error::other(TASK_DROPPED_MSG);
            // `callback` catches the protocol's panics; this also covers the
            // context's thread-local being gone (a runtime dropped while the
            // thread exits).
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.callback("connection_lost", move |p, _, _| {
                    p.base_mut().connection_lost(Some(err))
                })
            }));
        }
        self.release();
    }
}

impl<IO, P: Drive> Drop for Driver<IO, P> {
    fn drop(&mut self) {
        if self.stage != Stage::Finished {
            self.abandon();
        }
    }
}

impl<IO, P: Drive> Future for Driver<IO, P>
where
    IO: StreamIo,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.handle.shared.span.is_disabled() {
            return this.poll_in_span(cx);
        }
        this.poll_lending(cx)
    }
}

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// A poll with the thread's read buffer lent for its length.
    #[inline(always)]
    fn poll_lending(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut loan = Loan::take();
        let poll = self.poll_running(cx, loan.pool());
        loan.give_back();
        poll
    }

    /// A poll inside the connection's span (a subscriber wants it): events,
    /// ours and the protocol's, belong to the connection.
    #[cold]
    #[inline(never)]
    fn poll_in_span(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let _entered = self.handle.shared.span.clone().entered();
        self.poll_lending(cx)
    }
}

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// One poll with the thread's read buffer lent by the caller: a task
    /// that drives several transports takes it once for all of them.
    #[cfg(all(feature = "process", target_os = "linux"))]
    #[inline]
    pub(crate) fn poll_with(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> Poll<()> {
        if !self.handle.shared.span.is_disabled() {
            return self.poll_with_in_span(cx, pool);
        }
        self.poll_running(cx, pool)
    }

    /// [`poll_with`](Self::poll_with) inside the transport's span.
    #[cfg(all(feature = "process", target_os = "linux"))]
    #[cold]
    #[inline(never)]
    fn poll_with_in_span(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> Poll<()> {
        let _entered = self.handle.shared.span.clone().entered();
        self.poll_running(cx, pool)
    }

    /// A write pipe's read step: whether its reader went away (seen without
    /// writing). Then the connection is lost: with `None` if nothing was
    /// waiting to be sent, a broken pipe otherwise. Returns whether it was.
    #[cold]
    fn watch_reader(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(io) = self.io.as_mut() else {
            return false;
        };
        if io
            .poll_reader_gone(cx, self.core.sm.queued() == 0)
            .is_pending()
        {
            return false;
        }
        let exc = self.core.sm.reader_gone_error();
        self.lose(exc);
        true
    }

    /// One poll of the task; `pool` is the thread's read buffer, lent for
    /// this poll.
    #[inline(always)]
    fn poll_running(&mut self, cx: &mut Context<'_>, pool: &mut Pool) -> Poll<()> {
        let this = self;
        if this.stage != Stage::Running {
            if this.stage == Stage::Finished {
                return Poll::Ready(());
            }
            if IO::TLS {
                let done = this.poll_handshake(cx);
                if let Poll::Ready(Err(_)) = &done {
                    // The failed handshake closed the socket: lend it no more.
                    this.shared().extra.clear_fd();
                }
                match done {
                    Poll::Pending => return Poll::Pending,
                    #[cfg(feature = "tls")]
                    Poll::Ready(Err(e)) if this.stage == Stage::Upgrading => {
                        this.upgrade_failed(e);
                    }
                    Poll::Ready(Err(e)) => {
                        this.fail_start(e);
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(())) => {}
                }
            }
            match this.stage {
                Stage::New => {
                    this.start();
                    if this.stage == Stage::Finished {
                        return Poll::Ready(());
                    }
                }
                #[cfg(feature = "tls")]
                Stage::Upgrading => this.upgraded(),
                _ => {}
            }
        }
        let mut reads = 0;
        loop {
            this.apply_inbox();
            if let Some(lost) = this.settle(cx) {
                this.finish(lost);
                return Poll::Ready(());
            }
            let progress = if !IO::MODE.readable() {
                // A write pipe reads nothing: it watches for its reader
                // going away instead (compiled out of two-way builds).
                this.watch_reader(cx)
            } else if !this.may_deliver() {
                false
            } else if this.stash.is_some() {
                this.deliver_stash();
                true
            } else {
                this.read_once(cx, pool)
            };
            if progress {
                reads += 1;
                // A read pipe whose slices another task holds (a relay to a
                // write pipe) yields as soon as the pool had to allocate, so
                // that the holder sends and drops them and the pool starts
                // over in place (compiled out of two-way builds).
                let yield_now = matches!(IO::MODE, Mode::ReadOnly) && pool.take_fresh();
                if reads < READS_PER_POLL && !yield_now {
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
            #[cfg(feature = "tls")]
            if this.upgrade.is_some() {
                // `start_tls` (reading stopped when it was called).
                match this.poll_handover(cx) {
                    Some(poll) => return poll,
                    None => continue,
                }
            }
            if this.sendfile.is_some() && this.poll_sendfile(cx) {
                continue;
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
