//! The one task that drives a child's pipes and watches its exit.
//!
//! [`ChildTask`] owns the drivers of the stdin, stdout and stderr pipe
//! transports (ordinary stream drivers, not spawned on their own) and the
//! exit watcher, and polls each of them only when it was woken (every part
//! has a waker of its own that sets its bit and wakes the task). Since one
//! task runs them all, one callback runs at a time without anyone waiting
//! on the dispatch lock, and a write to stdin from a callback of stdout,
//! stderr or the exit goes straight into stdin's queue: while those parts
//! are polled, stdin's frame is lent through [`SIBLING`], and stdin is
//! polled (flushed) right after them in the same pass.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::unix::AsyncFd;

use super::transport::Shared;
use super::{pipes, process};
use crate::context;
use crate::drive::{Drive, Typed};
use crate::stream::driver::Driver;
use crate::stream::handle::SIBLING;
use crate::stream::pipe::{ReadPipe, WritePipe};
use crate::stream::read_pool::{Loan, Pool};
use crate::stream::stream_io::StreamIo;
use crate::wake::TaskWaker;

const STDIN: u8 = 1;
const STDOUT: u8 = 2;
const STDERR: u8 = 4;
const EXIT: u8 = 8;
const ALL: u8 = STDIN | STDOUT | STDERR | EXIT;

/// Which parts were woken since the task last looked, and the task's
/// waker.
struct Wakes {
    bits: AtomicU8,
    task: TaskWaker,
}

/// One part's waker: sets its bit, wakes the task.
struct PartWake {
    wakes: Arc<Wakes>,
    bit: u8,
}

impl Wake for PartWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the first part woken since the task last looked wakes the
        // task: until the task swaps the bits out (after registering its
        // waker), a bit already set means a wake-up is on its way, and that
        // poll will see this part's bit too.
        if self.wakes.bits.fetch_or(self.bit, Ordering::AcqRel) == 0 {
            self.wakes.task.wake();
        }
    }
}

/// A child's pipes and exit watcher, driven as one task.
pub(super) struct ChildTask {
    pub(super) stdin: Option<Driver<WritePipe, Typed<pipes::WritePipe>>>,
    pub(super) stdout: Option<Driver<ReadPipe, Typed<pipes::ReadPipe>>>,
    pub(super) stderr: Option<Driver<ReadPipe, Typed<pipes::ReadPipe>>>,
    exit: Option<ExitWatch>,
    /// Told when the task ends (see [`Shared::task_ended`]).
    shared: Arc<Shared>,
    /// [`Shared::task_ended`] was called.
    ended: bool,
    wakes: Arc<Wakes>,
    /// The waker `wakes.task` holds.
    registered: Option<Waker>,
    /// The wakers of stdin, stdout, stderr and the exit watcher.
    wakers: [Waker; 4],
}

impl ChildTask {
    /// A task that watches the child's exit through `pidfd` (registered
    /// with the runtime); the caller adds the pipes' drivers.
    pub(super) fn new(shared: Arc<Shared>, pidfd: AsyncFd<OwnedFd>) -> ChildTask {
        let wakes = Arc::new(Wakes {
            bits: AtomicU8::new(ALL),
            task: TaskWaker::default(),
        });
        let waker = |bit| {
            Waker::from(Arc::new(PartWake {
                wakes: wakes.clone(),
                bit,
            }))
        };
        let wakers = [waker(STDIN), waker(STDOUT), waker(STDERR), waker(EXIT)];
        shared.task_started();
        ChildTask {
            stdin: None,
            stdout: None,
            stderr: None,
            exit: Some(ExitWatch {
                shared: shared.clone(),
                pidfd: Some(pidfd),
                reap_on_drop: ReapOnDrop(Some(shared.clone())),
            }),
            shared,
            ended: false,
            wakes,
            registered: None,
            wakers,
        }
    }
}

/// Poll the exit watcher with its own waker; drop it once it is done.
fn poll_exit(part: &mut Option<ExitWatch>, waker: &Waker) {
    if let Some(f) = part
        && Pin::new(f).poll(&mut Context::from_waker(waker)).is_ready()
    {
        *part = None;
    }
}

/// Poll one pipe's driver with its own waker and the read buffer lent for
/// this pass; drop it once it is done.
#[inline]
fn poll_pipe<IO: StreamIo, P: Drive>(
    part: &mut Option<Driver<IO, P>>,
    waker: &Waker,
    pool: &mut Pool,
) {
    if let Some(d) = part
        && d.poll_with(&mut Context::from_waker(waker), pool)
            .is_ready()
    {
        *part = None;
    }
}

impl Future for ChildTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ChildTask {
            stdin,
            stdout,
            stderr,
            exit,
            shared,
            ended,
            wakes,
            registered,
            wakers,
        } = self.get_mut();
        // Registered before the bits are read: a part woken after this
        // wakes the task again.
        wakes.task.register(registered, cx.waker());
        let mut bits = wakes.bits.swap(0, Ordering::AcqRel);
        if bits == 0 {
            return Poll::Pending;
        }
        // The thread's read buffer, lent once for every driver of the pass.
        let mut loan = Loan::take();
        let pool = loan.pool();
        if bits & (STDOUT | STDERR | EXIT) != 0 {
            let mut others = || {
                if bits & EXIT != 0 {
                    poll_exit(exit, &wakers[3]);
                }
                if bits & STDOUT != 0 {
                    poll_pipe(stdout, &wakers[1], pool);
                }
                if bits & STDERR != 0 {
                    poll_pipe(stderr, &wakers[2], pool);
                }
            };
            match stdin {
                Some(d) => {
                    let (id, core) = d.frame();
                    let before = core.sm.queued();
                    // stdin's frame is lent to the other parts' callbacks
                    // (its driver is not polled meanwhile: only this task
                    // polls it, below), so that their writes to stdin go
                    // straight into its queue.
                    context::scope(&SIBLING, id, &mut *core, &mut others);
                    if core.sm.queued() != before {
                        bits |= STDIN;
                    }
                }
                None => others(),
            }
        }
        if bits & STDIN != 0 {
            poll_pipe(stdin, &wakers[0], pool);
        }
        loan.give_back();
        if stdin.is_none() && stdout.is_none() && stderr.is_none() && exit.is_none() {
            // Every part is dropped: their fds are closed.
            *ended = true;
            shared.task_ended();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for ChildTask {
    /// Dropped before it ended (its runtime went away): the pipes first
    /// (their drivers report their end), then the exit watcher (which hands
    /// a running child to the reaper thread), then the transport hears that
    /// the task is gone.
    fn drop(&mut self) {
        if !self.ended {
            self.stdin = None;
            self.stdout = None;
            self.stderr = None;
            self.exit = None;
            self.shared.task_ended();
        }
    }
}

/// Reaps the child when its pidfd says it exited, then reports the exit.
struct ExitWatch {
    shared: Arc<Shared>,
    /// A duplicate of the pidfd, registered with the runtime.
    pidfd: Option<AsyncFd<OwnedFd>>,
    reap_on_drop: ReapOnDrop,
}

impl Future for ExitWatch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ExitWatch {
            shared,
            pidfd,
            reap_on_drop,
        } = self.get_mut();
        if let Some(fd) = pidfd {
            loop {
                let mut ready = match fd.poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => break,
                    Poll::Ready(Ok(ready)) => ready,
                };
                match shared.try_reap() {
                    Ok(Some(_)) => break,
                    Ok(None) => ready.clear_ready(),
                    Err(_) => break,
                }
            }
        }
        // Closed before the exit is reported: once `connection_lost` has
        // run, no fd of the child's is left open.
        *pidfd = None;
        let code = shared.state().returncode;
        if let Some(code) = code {
            reap_on_drop.0 = None;
            shared.exited(code);
        }
        // Otherwise (the pidfd failed) the guard hands the child to a
        // reaper thread when the watcher is dropped.
        Poll::Ready(())
    }
}

/// If the watcher is dropped before the child was reaped (its runtime went
/// away, or the pidfd failed), a thread waits for the child, reaps it and
/// delivers the rest of the grammar: no zombie is left behind.
struct ReapOnDrop(Option<Arc<Shared>>);

impl Drop for ReapOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take()
            && shared.state().returncode.is_none()
        {
            let _ = std::thread::Builder::new()
                .name("tokio-transports-reaper".into())
                .spawn(move || {
                    if let Ok(process::Status::Exited(code)) = shared.process.reap_blocking() {
                        shared.state().returncode = Some(code);
                        // The rest of the grammar, on this thread (the
                        // pipes reported their end as they were dropped):
                        // `process_exited`, `connection_lost`; then the
                        // exit waiters.
                        shared.exited(code);
                    }
                });
        }
    }
}
