//! The tokio task that owns a datagram endpoint's socket.
//!
//! [`Driver`] is a hand-written future: each poll applies the commands that
//! arrived in its inbox, runs the protocol callbacks the state machine
//! asks for, sends the queue out, and receives in batches, handing the
//! protocol each datagram as a zero-copy slice of the thread's receive
//! buffer. While nothing is queued, a `sendto` made from a callback goes
//! straight to the socket (see [`socket::allow_direct`](super::socket)), as
//! asyncio's does; datagrams are queued only when the socket is full. All
//! decisions live in [`DatagramState`]; this file only moves datagrams and
//! calls callbacks.

use std::any::Any;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use tokio::io::Ready;
use tokio_util::sync::ReusableBoxFuture;

use super::handle::{
    CLOSING, CURRENT, Command, DISCARDED, DatagramTransport, LOST, PROTOCOL_SWAP, READ_DONE,
    READ_PAUSED, Shared,
};
use super::protocol::DatagramProtocol;
use super::socket::{
    DirectGuard, DirectSend, Socket, allow_direct, ensure_room, give_back, take_recv_buffer,
};
use super::state::{Datagram, DatagramState, Event, Phase, Queued, ReadState, cost};
use crate::context;
use crate::error::{CallbackPanicked, TASK_DROPPED_MSG};
use crate::flow::{self, Kind, OnPanic};
use crate::inbox::Registered;

/// Datagrams received per poll before the task yields to its neighbours.
const DATAGRAMS_PER_POLL: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `connection_made` has not run yet.
    New,
    Running,
    Finished,
}

/// How a batch of receives ended.
enum Batch {
    /// The socket has nothing more now.
    WouldBlock,
    /// A callback (or another thread) changed what the endpoint may do.
    Interrupted,
    /// The poll's budget is spent.
    Budget,
}

/// What waiting for the socket to become readable found.
enum Received {
    Error(io::Error),
    Retry,
    Pending,
}

/// Report a panic in callback `name` to the exception handler; returns the
/// error describing it.
fn report_panic(
    shared: &Shared,
    name: &'static str,
    payload: &(dyn Any + Send),
) -> CallbackPanicked {
    let extra = &shared.extra;
    flow::report_panic(
        Kind::Datagram,
        name,
        payload,
        extra.peer_inet(),
        extra.sock_inet(),
    )
}

/// One endpoint's task.
pub(crate) struct Driver<S: Socket> {
    sock: Option<Arc<S>>,
    handle: DatagramTransport,
    sm: DatagramState,
    protocol: Box<dyn DatagramProtocol>,
    /// Commands issued from inside callbacks (reused allocation).
    scratch: Vec<Command>,
    /// Commands taken from the inbox (reused allocation).
    inbox_cmds: Vec<Command>,
    /// Which waker the inbox's senders hold.
    inbox_waker: Registered,
    /// For a connected socket: waits for "readable or error", since an ICMP
    /// error raises only `EPOLLERR`. Unconnected sockets get no such error.
    error_wait: Option<ReusableBoxFuture<'static, io::Result<Ready>>>,
    error_wait_armed: bool,
    /// The socket as [`allow_direct`] takes it, kept between callbacks.
    direct_sock: Option<Arc<dyn DirectSend>>,
    /// The thread's receive buffer, borrowed for the current poll only.
    recv_buf: Option<BytesMut>,
    stage: Stage,
    started: Option<oneshot::Sender<()>>,
    lost: Option<Option<io::Error>>,
}

impl<S: Socket> Driver<S> {
    pub(crate) fn new(
        sock: Arc<S>,
        handle: DatagramTransport,
        sm: DatagramState,
        protocol: Box<dyn DatagramProtocol>,
        started: oneshot::Sender<()>,
    ) -> Self {
        let error_wait = handle
            .shared
            .connected
            .then(|| ReusableBoxFuture::new(std::future::pending()));
        Driver {
            sock: Some(sock),
            handle,
            sm,
            protocol,
            scratch: Vec::new(),
            inbox_cmds: Vec::new(),
            inbox_waker: Registered::default(),
            error_wait,
            error_wait_armed: false,
            direct_sock: None,
            recv_buf: None,
            stage: Stage::New,
            started: Some(started),
            lost: None,
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The protocol, between two polls (the test kit's harness owns the
    /// driver and reads its protocol's state this way).
    #[cfg(feature = "test-util")]
    pub(crate) fn protocol(&self) -> &dyn DatagramProtocol {
        &*self.protocol
    }

    /// [`protocol`](Self::protocol), mutably.
    #[cfg(feature = "test-util")]
    pub(crate) fn protocol_mut(&mut self) -> &mut dyn DatagramProtocol {
        &mut *self.protocol
    }

    // ---- callbacks -----------------------------------------------------

    /// Run one protocol callback inside the endpoint's context (so the
    /// transport calls it makes skip the channel), with panics caught; then
    /// apply what it asked for.
    fn callback<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut dyn DatagramProtocol, &DatagramTransport) -> R,
    ) -> Option<R> {
        let id = self.handle.shared.id;
        let direct = self.allow_direct();
        let timed = self.handle.shared.stats.timed().then(Instant::now);
        let (protocol, handle) = (&mut self.protocol, &self.handle);
        let result = context::scope(&CURRENT, id, &mut self.scratch, || {
            catch_unwind(AssertUnwindSafe(|| f(&mut **protocol, handle)))
        });
        if let Some(start) = timed {
            self.handle.shared.stats.callback_done(start);
        }
        self.end_direct(direct);
        self.apply_scratch();
        match result {
            Ok(r) => Some(r),
            Err(payload) => {
                self.on_panic(name, payload);
                None
            }
        }
    }

    /// Let the callbacks about to run send straight on the socket, if nothing
    /// is queued (so the order of datagrams is kept). Pair with
    /// [`Self::end_direct`].
    fn allow_direct(&mut self) -> Option<DirectGuard> {
        if !self.sm.can_send_now() {
            return None;
        }
        let sock = match self.direct_sock.take() {
            Some(s) => s,
            None => self.sock.clone()?,
        };
        Some(allow_direct(self.handle.shared.id, sock))
    }

    fn end_direct(&mut self, guard: Option<DirectGuard>) {
        if let Some(guard) = guard {
            self.direct_sock = guard.end();
        }
    }

    /// asyncio's policy (see [`flow::on_panic`]): a failing
    /// `connection_made` is fatal here (as for stream transports); failures
    /// in `datagram_received`, `error_received`, `pause_writing`,
    /// `resume_writing` and `connection_lost` are reported and change
    /// nothing else.
    fn on_panic(&mut self, name: &'static str, payload: Box<dyn Any + Send>) {
        let err = report_panic(self.shared(), name, &*payload);
        if flow::on_panic(Kind::Datagram, name) == OnPanic::Fatal {
            self.abort(Some(io::Error::other(err)));
        }
    }

    /// Drop the queue and lose the endpoint (once); a later `drain()`
    /// reports discarded datagrams.
    fn abort(&mut self, exc: Option<io::Error>) {
        let discarded = self.sm.abort(exc);
        self.sync_flags();
        if discarded > 0 {
            self.shared().set(DISCARDED);
        }
        self.shared().release(discarded);
    }

    /// Apply the commands sent from outside the callbacks (one atomic load
    /// when there are none).
    fn apply_inbox(&mut self) {
        if self.handle.shared.inbox.drain_into(&mut self.inbox_cmds) {
            // A `drain()` waiter may have poked us (see `Common::drain`).
            self.shared().notify_drained();
        }
        if self.inbox_cmds.is_empty() {
            return;
        }
        let mut cmds = std::mem::take(&mut self.inbox_cmds);
        for cmd in cmds.drain(..) {
            self.apply(cmd);
        }
        if self.inbox_cmds.is_empty() && cmds.capacity() <= 4 * DATAGRAMS_PER_POLL {
            self.inbox_cmds = cmds;
        }
    }

    fn apply_scratch(&mut self) {
        match self.scratch.len() {
            0 => {}
            // The common case (one `sendto` from `datagram_received`).
            1 => {
                if let Some(cmd) = self.scratch.pop() {
                    self.apply(cmd);
                }
            }
            _ => {
                let mut cmds = std::mem::take(&mut self.scratch);
                for cmd in cmds.drain(..) {
                    self.apply(cmd);
                }
                // Keep the allocation unless a batch queued something unusual.
                if self.scratch.is_empty() && cmds.capacity() <= 4 * DATAGRAMS_PER_POLL {
                    self.scratch = cmds;
                }
            }
        }
    }

    // ---- commands ------------------------------------------------------

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Send(data, to) => self.send_or_queue(data, to),
            Command::SendFailed(e) => self.sm.error(e),
            Command::Close => self.sm.close(),
            Command::Abort => self.abort(None),
            Command::PauseReading => self.sm.pause_reading(),
            Command::ResumeReading => self.sm.resume_reading(),
            Command::SetLimits(limits) => self.sm.set_limits(limits),
            Command::SetProtocol(p) => {
                self.shared().clear(PROTOCOL_SWAP);
                self.protocol = p;
            }
            Command::WithProtocol(f) => {
                self.callback("get_protocol", |p, _| f(p));
            }
        }
    }

    /// asyncio's `sendto`: with nothing queued, try the socket first; queue
    /// only if it is full. A send error goes to `error_received` (deferred
    /// to [`Self::settle`], so a protocol that sends from `error_received`
    /// cannot recurse) and the datagram is dropped.
    fn send_or_queue(&mut self, data: Bytes, to: Option<crate::SocketAddress>) {
        let n = cost(data.len());
        if self.sm.phase() == Phase::Lost {
            self.shared().release(n);
            self.shared().count_dropped_write();
            return;
        }
        if self.sm.can_send_now()
            && let Some(sock) = &self.sock
        {
            let res = match &to {
                None => sock.try_send(&data),
                Some(addr) => sock.try_send_to(&data, addr),
            };
            match res {
                Ok(_) => {
                    self.shared().stats.sent(data.len());
                    self.shared().release(n);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.shared().release(n);
                    self.sm.error(e);
                    return;
                }
            }
        }
        if self.sm.enqueue(Datagram { data, to }) == Queued::Dropped {
            self.shared().release(n);
            self.shared().count_dropped_write();
        }
    }

    /// Mirror the state machine into the flags handles read.
    fn sync_flags(&self) {
        let mut bits = 0;
        match self.sm.phase() {
            Phase::Open => {}
            Phase::Closing => bits |= CLOSING | READ_DONE,
            Phase::Lost => bits |= CLOSING | READ_DONE | LOST,
        }
        if self.sm.read_state() == ReadState::Stopped {
            bits |= READ_DONE;
        }
        if bits != 0 {
            self.shared().set(bits);
        }
    }

    // ---- sending -------------------------------------------------------

    /// Send as much of the queue as the socket takes now.
    fn flush(&mut self, cx: &mut Context<'_>) {
        let Some(sock) = self.sock.clone() else {
            return;
        };
        let mut ready_spins = 0;
        while let Some(dg) = self.sm.front() {
            let res = match &dg.to {
                None => sock.try_send(&dg.data),
                Some(addr) => sock.try_send_to(&dg.data, addr),
            };
            match res {
                Ok(_) => {
                    self.shared().stats.sent(dg.data.len());
                    let n = self.sm.sent();
                    self.shared().release(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match sock.poll_send_ready(cx) {
                        Poll::Pending => return,
                        Poll::Ready(Ok(())) => {
                            // tokio keeps a "write closed" readiness for good
                            // once the socket reported an error, so "ready"
                            // may not mean room: yield rather than spin.
                            ready_spins += 1;
                            if ready_spins > 1 {
                                cx.waker().wake_by_ref();
                                return;
                            }
                        }
                        Poll::Ready(Err(e)) => {
                            let n = self.sm.failed(e);
                            self.shared().release(n);
                        }
                    }
                }
                Err(e) => {
                    let n = self.sm.failed(e);
                    self.shared().release(n);
                }
            }
        }
    }

    /// Run events and send, until nothing is left to do without waiting.
    fn settle(&mut self, cx: &mut Context<'_>) {
        if !self.sm.has_events() && self.sm.queued() == 0 && self.sm.phase() == Phase::Open {
            // Nothing queued, nothing due, nothing to mirror: the common case
            // after each received datagram.
            return;
        }
        loop {
            while let Some(event) = self.sm.poll_event() {
                match event {
                    Event::PauseWriting => {
                        self.shared().stats.paused();
                        tracing::debug!(buffered = self.sm.queued(), "pause_writing");
                        self.callback("pause_writing", |p, _| p.pause_writing());
                    }
                    Event::ResumeWriting => {
                        tracing::debug!(buffered = self.sm.queued(), "resume_writing");
                        self.callback("resume_writing", |p, _| p.resume_writing());
                    }
                    Event::ErrorReceived(e) => {
                        self.callback("error_received", |p, _| p.error_received(e));
                    }
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
            }
            self.sm.drained();
            self.sync_flags();
            if !self.sm.has_events() {
                return;
            }
        }
    }

    // ---- receiving -----------------------------------------------------

    /// Receive and deliver datagrams until the socket has none, `budget`
    /// runs out, or a callback changed what the endpoint may do (paused
    /// reading, closed, switched the protocol, sent over the high
    /// watermark). The whole batch runs in one callback scope, so what the
    /// callbacks ask for is applied, in order, when the batch ends; the
    /// flags the handle sets at once tell the batch to end early, so no
    /// datagram is delivered after a callback paused reading or closed.
    fn receive_batch(&mut self, budget: &mut usize) -> Batch {
        let direct = self.allow_direct();
        let Some(sock) = self.sock.as_ref() else {
            return Batch::WouldBlock;
        };
        let id = self.handle.shared.id;
        let (protocol, handle) = (&mut self.protocol, &self.handle);
        let buf = self.recv_buf.get_or_insert_with(take_recv_buffer);
        let shared = &*handle.shared;
        let end = context::scope(&CURRENT, id, &mut self.scratch, || {
            loop {
                ensure_room(buf, S::RECV_ROOM);
                match sock.try_recv_into(buf) {
                    Ok((n, addr)) => {
                        let data = buf.split_to(n).freeze();
                        shared.stats.received(n);
                        let timed = shared.stats.timed().then(Instant::now);
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            (**protocol).datagram_received(data, addr)
                        }));
                        if let Some(start) = timed {
                            shared.stats.callback_done(start);
                        }
                        if let Err(payload) = r {
                            report_panic(shared, "datagram_received", &*payload);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Batch::WouldBlock,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let r = catch_unwind(AssertUnwindSafe(|| (**protocol).error_received(e)));
                        if let Err(payload) = r {
                            report_panic(shared, "error_received", &*payload);
                        }
                    }
                }
                *budget = budget.saturating_sub(1);
                if shared.has(READ_PAUSED | CLOSING | LOST | PROTOCOL_SWAP) || shared.over_high() {
                    return Batch::Interrupted;
                }
                if *budget == 0 {
                    return Batch::Budget;
                }
            }
        });
        self.end_direct(direct);
        self.apply_scratch();
        end
    }

    fn wait_readable(&mut self, cx: &mut Context<'_>) -> Received {
        let Some(sock) = self.sock.clone() else {
            return Received::Pending;
        };
        let Some(wait) = self.error_wait.as_mut() else {
            return match sock.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => Received::Retry,
                Poll::Ready(Err(e)) => Received::Error(e),
                Poll::Pending => Received::Pending,
            };
        };
        if !self.error_wait_armed {
            wait.set(sock.clone().readable_or_error());
            self.error_wait_armed = true;
        }
        match wait.poll(cx) {
            Poll::Pending => Received::Pending,
            Poll::Ready(res) => {
                self.error_wait_armed = false;
                match res {
                    Ok(ready) if ready.is_error() => {
                        let pending = sock.take_error();
                        sock.clear_error_readiness();
                        match pending {
                            Ok(Some(e)) | Err(e) => Received::Error(e),
                            Ok(None) => Received::Retry,
                        }
                    }
                    Ok(_) => Received::Retry,
                    Err(e) => Received::Error(e),
                }
            }
        }
    }

    // ---- start and finish ----------------------------------------------

    fn start(&mut self) {
        tracing::debug!("connection made");
        self.stage = Stage::Running;
        self.callback("connection_made", |p, t| p.connection_made(t));
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
    }

    fn finish(&mut self) {
        self.stage = Stage::Finished;
        let exc = self.lost.take().flatten();
        match &exc {
            None => tracing::debug!("connection lost"),
            Some(e) => tracing::debug!(error = %e, "connection lost"),
        }
        self.callback("connection_lost", move |p, _| p.connection_lost(exc));
        self.release();
    }

    /// The task is dropped before the endpoint finished (its runtime shut
    /// down or was dropped, or the task was aborted): as for stream
    /// transports, discard the queue, deliver `connection_lost` with
    /// [`TASK_DROPPED_MSG`] if `connection_made` ran (not while the thread
    /// is already panicking), then release everything.
    #[cold]
    fn abandon(&mut self) {
        let was_running = self.stage == Stage::Running;
        self.stage = Stage::Finished;
        self.abort(None);
        if was_running && !std::thread::panicking() {
            let err = io::Error::other(TASK_DROPPED_MSG);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.callback("connection_lost", move |p, _| p.connection_lost(Some(err)))
            }));
        }
        self.release();
    }

    /// The shared side of the end: refuse further commands, count the
    /// datagrams still in the inbox as dropped, release the socket (its fd
    /// first, under the lock `with_socket` takes) and wake every waiter.
    fn release(&mut self) {
        // Whatever is still in the inbox will never be sent.
        for cmd in self.handle.shared.inbox.close() {
            if let Command::Send(data, _) = cmd {
                self.shared().release(cost(data.len()));
                self.shared().count_dropped_write();
            }
        }
        self.scratch.clear();
        let shared = &self.handle.shared;
        shared.extra.clear_fd();
        *shared.socket.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.error_wait = None;
        self.direct_sock = None;
        self.sock = None;
        shared.finish();
    }
}

impl<S: Socket> Drop for Driver<S> {
    fn drop(&mut self) {
        if self.stage != Stage::Finished {
            self.abandon();
        }
    }
}

impl<S: Socket> Future for Driver<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // The endpoint's span, entered only when a subscriber wants it.
        let _span = (!this.handle.shared.span.is_disabled())
            .then(|| this.handle.shared.span.clone().entered());
        let result = this.poll_endpoint(cx);
        if let Some(buf) = this.recv_buf.take() {
            give_back(buf);
        }
        result
    }
}

impl<S: Socket> Driver<S> {
    fn poll_endpoint(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        match this.stage {
            Stage::Finished => return Poll::Ready(()),
            Stage::New => this.start(),
            Stage::Running => {}
        }
        let mut budget = DATAGRAMS_PER_POLL;
        loop {
            this.apply_inbox();
            this.settle(cx);
            if this.lost.is_some() {
                this.finish();
                return Poll::Ready(());
            }
            if budget == 0 {
                // Let the other tasks on this worker run; come back soon.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Every pass counts (batches count each datagram too), so that
            // readiness that leads to no datagram cannot keep a poll spinning.
            budget -= 1;
            if !this.sm.is_reading() {
                if this
                    .handle
                    .shared
                    .inbox
                    .register(&mut this.inbox_waker, cx.waker())
                {
                    continue;
                }
                return Poll::Pending;
            }
            match this.receive_batch(&mut budget) {
                Batch::Interrupted | Batch::Budget => continue,
                Batch::WouldBlock => {}
            }
            // What the batch's callbacks asked for (queued sends, send
            // errors) must not wait for the next datagram.
            this.settle(cx);
            if this.lost.is_some() {
                this.finish();
                return Poll::Ready(());
            }
            if !this.sm.is_reading() {
                continue;
            }
            match this.wait_readable(cx) {
                Received::Retry => {}
                Received::Error(e) => {
                    this.callback("error_received", move |p, _| p.error_received(e));
                }
                Received::Pending => {
                    // Nothing to receive: sleep, unless a command slipped in.
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
    }
}
