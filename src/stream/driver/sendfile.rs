//! The native half of [`sendfile`](crate::sendfile) in the stream driver:
//! the kernel's `sendfile(2)` from a file into the socket (CPython's
//! `_sendfile_native` and `_sock_sendfile_native_impl`).
//!
//! A [`Job`] arrives as a command. Commands that come after it (writes
//! from other tasks, `close()`) wait in the job's `held` list, so the
//! file's bytes go out after everything written before the call and before
//! everything written after it; the driver first sends what its queue holds
//! (the ordinary flush), then calls `sendfile(2)` while the socket takes
//! bytes. The job ends when the file (or `count`) is done, on an error
//! (the socket's is fatal to the connection, the file's is not), when the
//! transport is lost (`abort()` sets its flag at once, from any thread),
//! or when the caller gave up (its future was dropped); then the held
//! commands are applied in order. A `close()` is held like the rest: the
//! file goes out first. `sendfile(2)` runs on the task's worker thread,
//! as CPython's on its loop: a file that is slow to read (a cold disk, a
//! network file system) holds the worker for the time of a read.
//! I/O that cannot do it (TLS, pipes, `connect_io`, other systems than
//! Linux) answers [`Outcome::NotAvailable`] at once: the caller falls back
//! to reading and writing the file.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::task::{Context, Poll};

use futures::channel::oneshot;

use super::Driver;
use crate::drive::Drive;
use crate::stream::handle::{Command, LOST, SwapFn};
use crate::stream::state::Phase;
use crate::stream::stream_io::StreamIo;

/// `sendfile(2)` calls in one poll before the task lets its neighbours run.
const CALLS_PER_POLL: usize = 16;

/// The most one `sendfile(2)` call is asked for (Linux sends at most about
/// 2 GiB per call anyway).
const MAX_CALL: u64 = 1 << 30;

/// Whether a `sendfile(2)` error is the socket's (the connection is
/// broken) rather than the file's.
fn is_socket_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// How a native send ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Done: the file's end, or `count` bytes.
    Sent(u64),
    /// This transport cannot send a file natively (or the first call
    /// failed, which asyncio also takes for "not available": a file the
    /// kernel cannot send from); nothing was sent.
    NotAvailable,
    /// Ended early: `sent` bytes went out before `error`.
    Failed { sent: u64, error: io::Error },
}

/// One native send (see the module docs).
pub(crate) struct Job {
    /// A duplicate of the caller's file descriptor.
    file: OwnedFd,
    offset: u64,
    count: Option<u64>,
    sent: u64,
    /// Commands that arrived after the job, applied when it ends.
    held: Vec<Command>,
    /// The caller's swap back (its protocol put back, reading resumed),
    /// run as the job ends, before the held commands: a `with_protocol`
    /// held meanwhile sees the caller's protocol, as asyncio's
    /// `get_protocol` does during a native send.
    restore: Option<SwapFn>,
    /// The error the connection was lost with, if it was lost under the
    /// job (see `sendfile_lost`).
    loss: Option<io::Error>,
    reply: oneshot::Sender<Outcome>,
}

impl Job {
    pub(crate) fn new(
        file: OwnedFd,
        offset: u64,
        count: Option<u64>,
        restore: SwapFn,
        reply: oneshot::Sender<Outcome>,
    ) -> Job {
        Job {
            file,
            offset,
            count,
            sent: 0,
            held: Vec::new(),
            restore: Some(restore),
            loss: None,
            reply,
        }
    }

    /// Hold `cmd` and the rest of its batch until the job ends.
    pub(super) fn hold(&mut self, cmd: Command, rest: impl Iterator<Item = Command>) {
        self.held.push(cmd);
        self.held.extend(rest);
    }

    /// The error for a transport that closed under the job (asyncio's).
    fn closed() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "Connection closed by peer")
    }
}

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// Run the job as far as the socket takes it now. Returns `true` when
    /// it ended (its held commands are applied: the poll loop goes on),
    /// `false` when it waits (for the queue to drain, for room in the
    /// socket, or for the next poll).
    #[cold]
    pub(super) fn poll_sendfile(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(job) = self.sendfile.as_ref() else {
            return false;
        };
        let sent = job.sent;
        if !IO::SENDFILE {
            self.end_sendfile(Outcome::NotAvailable);
            return true;
        }
        if job.reply.is_canceled() {
            // The caller's future was dropped: stop here (asyncio stops
            // when its future is cancelled).
            self.end_sendfile(Outcome::Sent(sent));
            return true;
        }
        // `abort()` (its flag is set at once, from any thread) ends the job
        // now; a `close()` is held like any command, so the file is sent
        // first ("close flushes").
        if self.core.sm.phase() != Phase::Open || self.shared().has(LOST) {
            self.end_sendfile(Outcome::Failed {
                sent,
                error: Job::closed(),
            });
            return true;
        }
        if self.has_output() {
            // What was written before the call goes first (`settle` sends
            // it; the task is woken when the socket takes more).
            return false;
        }
        for _ in 0..CALLS_PER_POLL {
            let (Some(job), Some(io)) = (self.sendfile.as_ref(), self.io.as_ref()) else {
                return false;
            };
            let sent = job.sent;
            let want = match job.count {
                Some(count) if count <= sent => {
                    self.end_sendfile(Outcome::Sent(sent));
                    return true;
                }
                Some(count) => (count - sent).min(MAX_CALL),
                None => MAX_CALL,
            } as usize;
            match io.poll_sendfile(cx, job.file.as_fd(), job.offset + sent, want) {
                Poll::Pending => return false,
                Poll::Ready(Ok(0)) => {
                    // The file's end.
                    self.end_sendfile(Outcome::Sent(sent));
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    if let Some(job) = self.sendfile.as_mut() {
                        job.sent += n as u64;
                    }
                    self.handle.shared.stats.sent(n);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(_)) if sent == 0 => {
                    // Nothing went out: the caller falls back (asyncio's
                    // rule; a broken connection fails there too).
                    self.end_sendfile(Outcome::NotAvailable);
                    return true;
                }
                Poll::Ready(Err(e)) if !is_socket_error(&e) => {
                    // The file failed (a read error): the caller hears it,
                    // the connection carries on (as in asyncio).
                    self.end_sendfile(Outcome::Failed { sent, error: e });
                    return true;
                }
                Poll::Ready(Err(e)) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    self.end_sendfile(Outcome::Failed { sent, error: copy });
                    // The socket failed under a write: the connection is
                    // lost, as after any failed write.
                    self.fatal(e);
                    return true;
                }
            }
        }
        // Let the other tasks on this worker run; come back soon.
        cx.waker().wake_by_ref();
        false
    }
}

impl<IO, P: Drive> Driver<IO, P> {
    /// The `Sendfile` command: hold what follows until the job ends (its
    /// first poll answers at once if the I/O cannot send files).
    #[cold]
    pub(super) fn begin_sendfile(&mut self, job: Box<Job>) {
        // (A `close()` made after the call is held, and waits for the file.)
        if self.core.sm.phase() != Phase::Open || self.shared().has(LOST) {
            let _ = job.reply.send(Outcome::Failed {
                sent: 0,
                error: Job::closed(),
            });
            return;
        }
        self.sendfile = Some(job);
    }

    /// End the job: answer the caller, then apply the commands it held.
    fn end_sendfile(&mut self, outcome: Outcome) {
        if let Some(mut job) = self.sendfile.take() {
            // Not after "not available": the caller's fallback still needs
            // its stand-in.
            if let Some(restore) = job.restore.take()
                && !matches!(outcome, Outcome::NotAvailable)
            {
                self.apply(Command::Swap(restore));
            }
            let _ = job.reply.send(outcome);
            self.core.commands.extend(job.held);
            self.apply_scratch();
        }
    }

    /// The connection finished with a job under way: the caller hears how
    /// far it got; the commands it held never run (returned, for their
    /// writes to be counted as dropped).
    pub(super) fn drop_sendfile(&mut self) -> Vec<Command> {
        match self.sendfile.take() {
            Some(job) => {
                let sent = job.sent;
                let error = job.loss.unwrap_or_else(Job::closed);
                let _ = job.reply.send(Outcome::Failed { sent, error });
                job.held
            }
            None => Vec::new(),
        }
    }

    /// The connection is being lost with `exc` (`None`: cleanly): a job
    /// under way will report that error rather than a generic one.
    pub(super) fn sendfile_lost(&mut self, exc: Option<&io::Error>) {
        if let (Some(job), Some(e)) = (self.sendfile.as_mut(), exc) {
            job.loss = Some(io::Error::new(e.kind(), e.to_string()));
        }
    }
}
