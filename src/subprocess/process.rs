//! One child process, held by a pidfd (Linux): signals that can never
//! reach a recycled pid, an exit that wakes the runtime, and reaping that
//! this crate alone does (so the return code is set the moment the child is
//! reaped, under the caller's lock).
//!
//! The three system calls (`pidfd_open`, `pidfd_send_signal`, `waitid` on
//! a pidfd) are the only `unsafe` of the subprocess code; each says why it
//! is sound next to it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// What `waitid` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    /// Exited or killed: the return code (minus the signal number when a
    /// signal ended it), as asyncio's `returncode`.
    Exited(i32),
}

/// A child process by pidfd.
pub(crate) struct Process {
    pid: u32,
    /// `None` once [`close`](Self::close)d (after the child was reaped, so
    /// that no fd of the child's is left when its transport finishes).
    pidfd: Mutex<Option<OwnedFd>>,
}

/// What a call on a closed pidfd reports: the child is gone.
fn gone() -> io::Error {
    io::Error::from_raw_os_error(libc::ECHILD)
}

impl Process {
    /// Take hold of the child `pid` that this process just spawned and has
    /// not reaped (so the pid cannot have been recycled yet).
    pub(crate) fn open(pid: u32) -> io::Result<Process> {
        // SAFETY: `pidfd_open(pid, 0)` takes two integers and returns a new
        // fd or -1; no memory is shared with the kernel.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else
        // owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Process {
            pid,
            pidfd: Mutex::new(Some(pidfd)),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn fd(&self) -> MutexGuard<'_, Option<OwnedFd>> {
        self.pidfd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A duplicate of the pidfd (readable once the child has exited).
    pub(crate) fn dup_pidfd(&self) -> io::Result<OwnedFd> {
        self.fd().as_ref().ok_or_else(gone)?.try_clone()
    }

    /// Close the pidfd (the child has been reaped: nothing needs it).
    /// Later calls report `ECHILD` (signals: `ESRCH`).
    pub(crate) fn close(&self) {
        let fd = self.fd().take();
        drop(fd);
    }

    /// Send `signal` to the child (it cannot reach another process: the
    /// pidfd names this one even after its pid is recycled). `ESRCH` once
    /// the child is reaped.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        let fd = self.fd();
        let Some(fd) = fd.as_ref() else {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        };
        // SAFETY: `pidfd_send_signal(fd, sig, NULL, 0)`: a valid fd we own
        // (held open by the guard), a signal number, a null `siginfo`
        // pointer (allowed: the kernel fills in a default) and no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the child has exited, without reaping it (`WNOWAIT`): a
    /// child that has exited but is not reaped is not signalled.
    pub(crate) fn has_exited(&self) -> io::Result<bool> {
        Ok(self.wait(libc::WNOWAIT)? != Status::Running)
    }

    /// Reap the child if it has exited (`WNOHANG`).
    pub(crate) fn try_reap(&self) -> io::Result<Status> {
        self.wait(0)
    }

    /// Block until the child exits and reap it (the last resort of a
    /// transport whose runtime went away: no zombie, ever).
    pub(crate) fn reap_blocking(&self) -> io::Result<Status> {
        // On a duplicate: the lock is not held while the child runs.
        let fd = self.dup_pidfd()?;
        loop {
            match waitid(fd.as_raw_fd(), libc::WEXITED) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn wait(&self, extra: i32) -> io::Result<Status> {
        self.waitid(libc::WEXITED | libc::WNOHANG | extra)
    }

    /// `waitid` on the pidfd, which the guard keeps open meanwhile.
    fn waitid(&self, options: i32) -> io::Result<Status> {
        let fd = self.fd();
        waitid(fd.as_ref().ok_or_else(gone)?.as_raw_fd(), options)
    }
}

/// `waitid(P_PIDFD, ..)` on an fd the caller keeps open for the call.
fn waitid(pidfd: RawFd, options: i32) -> io::Result<Status> {
    // SAFETY: an all-zero `siginfo_t` is a valid value of the struct
    // (plain integers and unions of them).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `waitid(P_PIDFD, fd, &mut info, options)`: `info` is a
    // valid, writable `siginfo_t` for the duration of the call; the
    // caller keeps the fd open meanwhile.
    let r = unsafe { libc::waitid(libc::P_PIDFD, pidfd as libc::id_t, &mut info, options) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `waitid` filled `info` (or left it zeroed: pid 0 means
    // "still running" with WNOHANG); these accessors read the fields of
    // the SIGCHLD layout the kernel wrote.
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(Status::Running);
    }
    Ok(Status::Exited(match code {
        libc::CLD_EXITED => status,
        // Killed or dumped: minus the signal, as asyncio reports it.
        _ => -status,
    }))
}

#[cfg(test)]
// The children are reaped through their pidfd, which clippy cannot see.
#[allow(clippy::zombie_processes)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let p = Process::open(child.id()).unwrap();
        assert_eq!(p.reap_blocking().unwrap(), Status::Exited(3));
        // Reaped: a signal can no longer be sent.
        let err = p.signal(libc::SIGTERM).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));

        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let p = Process::open(child.id()).unwrap();
        assert_eq!(p.try_reap().unwrap(), Status::Running);
        assert!(!p.has_exited().unwrap());
        p.signal(libc::SIGKILL).unwrap();
        assert_eq!(p.reap_blocking().unwrap(), Status::Exited(-libc::SIGKILL));
    }

    #[test]
    fn a_closed_pidfd_reports_the_child_gone() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let p = Process::open(child.id()).unwrap();
        assert_eq!(p.reap_blocking().unwrap(), Status::Exited(0));
        p.close();
        let esrch = p.signal(libc::SIGTERM).unwrap_err();
        assert_eq!(esrch.raw_os_error(), Some(libc::ESRCH));
        let echild = p.try_reap().unwrap_err();
        assert_eq!(echild.raw_os_error(), Some(libc::ECHILD));
        assert!(p.dup_pidfd().is_err());
        p.close(); // idempotent
    }

    #[test]
    fn an_exited_child_is_seen_without_being_reaped() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let p = Process::open(child.id()).unwrap();
        // Wait until it has exited, without reaping it.
        assert_eq!(
            p.waitid(libc::WEXITED | libc::WNOWAIT).unwrap(),
            Status::Exited(0)
        );
        assert!(p.has_exited().unwrap(), "still there: not reaped");
        assert_eq!(p.try_reap().unwrap(), Status::Exited(0));
    }
}
