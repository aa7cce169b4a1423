//! [`SubprocessTransport`] and the state it shares with the child's pipes
//! and its exit watcher: who may call the protocol, when, and in what order.
//!
//! Three pipe transports and the exit watcher (driven by the child's one
//! task) produce the child's events. They all hand them to
//! [`Shared::deliver`], which calls the protocol under one lock: one
//! callback at a time, whichever part (or, before `connection_made` and
//! after the task is gone, which task or thread) produced the event. Before
//! `connection_made` has run, events wait in a queue and are replayed after
//! it, in order. The state lock is never held while the protocol runs: it
//! may call any method of the transport from its callbacks. After `connection_lost` the
//! transport finishes once the child's task has ended (see
//! [`Shared::task_ended`]).

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::SubprocessProtocol;
use super::process::{Process, Status};
use crate::exception::{ExceptionContext, call_exception_handler};
use crate::stream::handle::Transport;

/// One event for the protocol.
pub(crate) enum Event {
    Data(i32, Bytes),
    PipeLost(i32, Option<io::Error>),
    Exited,
    PauseWriting,
    ResumeWriting,
}

/// The transport's own state (short critical sections; never held while
/// the protocol runs).
pub(crate) struct State {
    pub(crate) returncode: Option<i32>,
    pub(crate) closing: bool,
    /// `connection_lost` is running or has run: from then on the signal
    /// methods fail ("No such process"), as after CPython's
    /// `_call_connection_lost`, even while the child's task still closes
    /// what it held.
    pub(crate) lost: bool,
    /// `connection_lost` has run and every fd of the child's is closed.
    pub(crate) finished: bool,
    pub(crate) pipes: [Option<Transport>; 3],
}

/// The protocol and what decides its next call.
struct Dispatch {
    /// Tells this transport's callbacks apart from others' (see
    /// [`IN_CALLBACK`]).
    id: usize,
    protocol: Box<dyn SubprocessProtocol>,
    made: bool,
    pending: VecDeque<Event>,
    /// Pipes whose `pipe_connection_lost` has not come yet.
    pipes_open: usize,
    exited: bool,
    lost: bool,
    /// The child's task (its pipes' drivers, the exit watcher) still runs:
    /// it finishes the transport when it ends (see [`Shared::task_ended`]).
    task_alive: bool,
}

pub(crate) struct Shared {
    pub(crate) process: Process,
    /// The id of [`Dispatch`] (see [`IN_CALLBACK`]), readable without its
    /// lock.
    dispatch_id: usize,
    pub(crate) state: Mutex<State>,
    dispatch: Mutex<Dispatch>,
    /// The return code once the child is reaped (exit waiters).
    pub(crate) exit: watch::Sender<Option<i32>>,
    /// Woken when `connection_lost` has run.
    pub(crate) done: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(
        process: Process,
        protocol: Box<dyn SubprocessProtocol>,
        pipes_open: usize,
    ) -> Arc<Shared> {
        let dispatch_id = crate::context::next_id();
        Arc::new(Shared {
            process,
            dispatch_id,
            state: Mutex::new(State {
                returncode: None,
                closing: false,
                lost: false,
                finished: false,
                pipes: [None, None, None],
            }),
            dispatch: Mutex::new(Dispatch {
                id: dispatch_id,
                protocol,
                made: false,
                pending: VecDeque::new(),
                pipes_open,
                exited: false,
                lost: false,
                task_alive: false,
            }),
            exit: watch::channel(None).0,
            done: Notify::new(),
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Reap the child if it has exited, recording its return code under
    /// the state lock (so a signal never races with the reaping). The exit
    /// waiters are not woken here: [`exited`](Self::exited) does that,
    /// after `process_exited`.
    pub(crate) fn try_reap(&self) -> io::Result<Option<i32>> {
        let mut st = self.state();
        if let Some(code) = st.returncode {
            return Ok(Some(code));
        }
        match self.process.try_reap()? {
            Status::Running => Ok(None),
            Status::Exited(code) => {
                st.returncode = Some(code);
                Ok(Some(code))
            }
        }
    }

    /// The child was reaped with `code`: `process_exited` (queued if
    /// `connection_made` has not run yet), then the exit waiters, in
    /// CPython's order, so that `wait()` never returns before
    /// `process_exited` has run.
    pub(crate) fn exited(self: &Arc<Self>, code: i32) {
        self.deliver(Event::Exited);
        self.exit.send_replace(Some(code));
    }

    /// `connection_made`, then the events that came before it.
    pub(crate) fn made(self: &Arc<Self>) {
        let transport = SubprocessTransport {
            shared: self.clone(),
        };
        let mut d = lock(&self.dispatch);
        call(&mut d, "connection_made", |p| p.connection_made(&transport));
        d.made = true;
        while let Some(ev) = d.pending.pop_front() {
            self.handle(&mut d, ev);
        }
        self.maybe_lost(&mut d);
    }

    /// Hand one event to the protocol (or queue it until `connection_made`).
    pub(crate) fn deliver(self: &Arc<Self>, ev: Event) {
        let mut d = lock(&self.dispatch);
        if !d.made {
            d.pending.push_back(ev);
            return;
        }
        // Only a pipe's loss or the exit can complete the end.
        let may_end = matches!(ev, Event::PipeLost(..) | Event::Exited);
        self.handle(&mut d, ev);
        if may_end {
            self.maybe_lost(&mut d);
        }
    }

    /// [`deliver`](Self::deliver) for a pipe's data, the hot path: no event
    /// is built unless it has to wait for `connection_made`, and data never
    /// completes the end.
    #[inline]
    pub(crate) fn deliver_data(&self, fd: i32, data: Bytes) {
        let mut d = lock(&self.dispatch);
        if !d.made {
            d.pending.push_back(Event::Data(fd, data));
            return;
        }
        call(&mut d, "pipe_data_received", |p| {
            p.pipe_data_received(fd, data)
        });
    }

    fn handle(&self, d: &mut Dispatch, ev: Event) {
        match ev {
            Event::Data(fd, data) => {
                call(d, "pipe_data_received", |p| p.pipe_data_received(fd, data))
            }
            Event::PipeLost(fd, exc) => {
                d.pipes_open = d.pipes_open.saturating_sub(1);
                call(d, "pipe_connection_lost", |p| {
                    p.pipe_connection_lost(fd, exc)
                });
            }
            Event::Exited => {
                d.exited = true;
                tracing::debug!("process exited");
                call(d, "process_exited", |p| p.process_exited());
            }
            Event::PauseWriting => call(d, "pause_writing", |p| p.pause_writing()),
            Event::ResumeWriting => call(d, "resume_writing", |p| p.resume_writing()),
        }
    }

    /// `connection_lost(None)` once the child exited and every pipe closed;
    /// then the transport finishes, at once or, while the child's task
    /// runs, when it ends.
    fn maybe_lost(&self, d: &mut Dispatch) {
        if d.lost || !d.exited || d.pipes_open > 0 || !d.made {
            return;
        }
        d.lost = true;
        // Set before the call, so that whoever hears of `connection_lost`
        // (a waiter the protocol wakes from inside it, on another thread)
        // finds the signal methods failing already.
        self.state().lost = true;
        call(d, "connection_lost", |p| p.connection_lost(None));
        if !d.task_alive {
            self.finish();
        }
    }

    /// The child's task started (before anything can be delivered).
    pub(crate) fn task_started(&self) {
        lock(&self.dispatch).task_alive = true;
    }

    /// The child's task ended and closed what it held (the pipes, the
    /// pidfd's duplicate): finish the transport if `connection_lost` has
    /// run; otherwise whoever delivers the last event will.
    pub(crate) fn task_ended(&self) {
        let mut d = lock(&self.dispatch);
        d.task_alive = false;
        if d.lost {
            self.finish();
        }
    }

    /// After `connection_lost`, once no fd of the child's is open but the
    /// pidfd: close it, then wake the `closed()` waiters. Once.
    fn finish(&self) {
        // Reaped (`process_exited` came first): nothing needs it.
        self.process.close();
        let mut st = self.state();
        st.finished = true;
        st.pipes = [None, None, None];
        drop(st);
        self.done.notify_waiters();
    }
}

/// Call the protocol; a panic is reported to the exception handler and the
/// child's events go on (the transport's own bookkeeping never depends on
/// the protocol returning).
#[inline]
fn call(d: &mut Dispatch, name: &'static str, f: impl FnOnce(&mut dyn SubprocessProtocol)) {
    let protocol = &mut *d.protocol;
    let _restore = RestoreOnDrop(IN_CALLBACK.replace(d.id));
    if catch_unwind(AssertUnwindSafe(|| f(protocol))).is_err() {
        // Still under the lock and the guard: a handler that reaches for
        // this child's protocol gets `None`, not a deadlock.
        report_panic(name);
    }
}

/// Puts the outer [`IN_CALLBACK`] back, also when the code in between
/// unwinds.
struct RestoreOnDrop(usize);

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        IN_CALLBACK.set(self.0);
    }
}

thread_local! {
    /// The transport (its dispatch id) whose callback runs on this thread:
    /// `with_protocol` from inside it would wait on the lock its own caller
    /// holds.
    static IN_CALLBACK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cold]
fn report_panic(name: &'static str) {
    let msg = format!("Exception in callback protocol.{name}()");
    call_exception_handler(&ExceptionContext::new(&msg));
}

/// A running (or finished) child process: asyncio's `SubprocessTransport`.
/// Cheap to clone; usable from any thread, and from the protocol's
/// callbacks.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{SubprocessOptions, subprocess_exec};
/// let t = subprocess_exec(|| (), "sleep", ["30"], SubprocessOptions::default()).await?;
/// println!("pid {}", t.get_pid());
/// t.terminate()?;
/// assert_eq!(t.wait().await, -15);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SubprocessTransport {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.get_pid())
            .field("returncode", &self.get_returncode())
            .finish()
    }
}

impl SubprocessTransport {
    /// The child's process id.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { println!("{}", t.get_pid()); }
    /// ```
    pub fn get_pid(&self) -> u32 {
        self.shared.process.pid()
    }

    /// `None` while the child runs; then its exit code, or minus the number
    /// of the signal that ended it (asyncio's `returncode`).
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { assert_eq!(t.get_returncode(), None); }
    /// ```
    pub fn get_returncode(&self) -> Option<i32> {
        self.shared.state().returncode
    }

    /// The transport of pipe `fd` (0: stdin, write-only; 1: stdout, 2:
    /// stderr, read-only) if that stream is a pipe; `None` otherwise, and
    /// once the transport has finished.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) -> std::io::Result<()> {
    /// if let Some(stdin) = t.get_pipe_transport(0) {
    ///     stdin.write("input\n")?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let i = usize::try_from(fd).ok()?;
        self.shared.state().pipes.get(i)?.clone()
    }

    /// Send `signal` to the child. A child that has exited (reaped or not)
    /// is not signalled and this returns `Ok`; from the moment
    /// `connection_lost` is called it is an error (asyncio's
    /// `ProcessLookupError`, "No such process"), from any thread. The signal can never reach
    /// another process that reused the pid (it goes through a pidfd).
    ///
    /// # Errors
    ///
    /// Once `connection_lost` has been called: the OS error `ESRCH`. std
    /// gives that error no [`ErrorKind`](io::ErrorKind) of its own, so test
    /// `err.raw_os_error() == Some(libc::ESRCH)` (3 on Linux), as for
    /// asyncio's `ProcessLookupError`. While the child runs, what
    /// `pidfd_send_signal` (or `kill`) returns, for example `EINVAL` for an
    /// unknown signal; between the exit and `connection_lost`, `Ok` for any
    /// signal (nothing is sent).
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) -> std::io::Result<()> {
    /// t.send_signal(10)?; // SIGUSR1 on Linux
    /// t.closed().await; // the exit and the pipes' ends delivered, `connection_lost` ran
    /// let err = t.send_signal(10).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(3)); // ESRCH, "No such process"
    /// # Ok(()) }
    /// ```
    pub fn send_signal(&self, signal: i32) -> io::Result<()> {
        let st = self.shared.state();
        if st.lost {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if st.returncode.is_some() {
            return Ok(());
        }
        match self.shared.process.has_exited() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // Reaped a moment ago by the reaper thread of a dropped
            // runtime, which sets the return code next: exited.
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.shared.process.signal(signal)
    }

    /// `send_signal(SIGTERM)`.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) -> std::io::Result<()> { t.terminate() }
    /// ```
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// `send_signal(SIGKILL)`.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) -> std::io::Result<()> { t.kill() }
    /// ```
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Close the pipes and kill the child (SIGKILL) if it is still running,
    /// without waiting. The remaining events (`pipe_connection_lost`,
    /// `process_exited`, `connection_lost`) still arrive. Idempotent.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { t.close(); assert!(t.is_closing()); }
    /// ```
    pub fn close(&self) {
        let pipes = {
            let mut st = self.shared.state();
            if st.closing {
                return;
            }
            st.closing = true;
            st.pipes.clone()
        };
        for pipe in pipes.iter().flatten() {
            pipe.close();
        }
        let _ = self.send_signal(libc::SIGKILL);
    }

    /// Run `f` on the protocol if it is a `P`: the counterpart of asyncio's
    /// `get_protocol()` (the transport owns the protocol here), to read what
    /// it collected, for instance, during the child's life or after it.
    /// Waits while a callback runs on another thread. `None` if the
    /// protocol is not a `P`, if called from inside one of this
    /// transport's own callbacks (the protocol is `self` there), or if
    /// called from another child's callback while this child's protocol is
    /// busy (in a callback, or in another `with_protocol`: waiting there
    /// could deadlock).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// use tokio_transports::{Bytes, SubprocessOptions, SubprocessProtocol, subprocess_exec};
    /// #[derive(Default)]
    /// struct Collect { out: Vec<u8> }
    /// impl SubprocessProtocol for Collect {
    ///     fn pipe_data_received(&mut self, _fd: i32, data: Bytes) { self.out.extend_from_slice(&data); }
    /// }
    /// let t = subprocess_exec(Collect::default, "echo", ["hi"], SubprocessOptions::default()).await?;
    /// t.closed().await;
    /// let out = t.with_protocol(|p: &mut Collect| std::mem::take(&mut p.out));
    /// assert_eq!(out.as_deref(), Some(&b"hi\n"[..]));
    /// # Ok(()) }
    /// ```
    pub fn with_protocol<P: SubprocessProtocol, R>(
        &self,
        f: impl FnOnce(&mut P) -> R,
    ) -> Option<R> {
        let id = self.shared.dispatch_id;
        let mut d = match IN_CALLBACK.get() {
            0 => lock(&self.shared.dispatch),
            inside if inside == id => return None,
            // Inside another child's callback: never wait (two callbacks on
            // two threads reaching for each other's protocol would
            // deadlock).
            _ => match self.shared.dispatch.try_lock() {
                Ok(d) => d,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            },
        };
        let protocol: &mut dyn Any = &mut *d.protocol;
        let p = protocol.downcast_mut::<P>()?;
        // `f` runs under the lock, as a callback would: the same rule holds
        // for a nested call.
        let outer = IN_CALLBACK.replace(id);
        let guard = RestoreOnDrop(outer);
        let r = f(p);
        drop(guard);
        Some(r)
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { assert!(!t.is_closing()); }
    /// ```
    pub fn is_closing(&self) -> bool {
        self.shared.state().closing
    }

    /// Resolves with the return code when the child has exited, even if a
    /// grandchild still holds its stdout open (CPython gh-119710), and
    /// only after `process_exited` has run (CPython's order: the protocol
    /// hears of the exit before the waiters do).
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { let code = t.wait().await; }
    /// ```
    pub async fn wait(&self) -> i32 {
        let mut rx = self.shared.exit.subscribe();
        loop {
            if let Some(code) = *rx.borrow_and_update() {
                return code;
            }
            // The sender lives in `Shared`, which `self` holds: it cannot
            // close while we wait.
            let _ = rx.changed().await;
        }
    }

    /// Resolves once `connection_lost` has run (the child exited and every
    /// pipe closed) and every fd of the child's is closed (its pipes, its
    /// pidfd).
    ///
    /// ```no_run
    /// # async fn f(t: tokio_transports::SubprocessTransport) { t.closed().await; }
    /// ```
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.state().finished {
                return;
            }
            notified.await;
        }
    }
}
