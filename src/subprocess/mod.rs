//! Child processes: asyncio's `loop.subprocess_exec` / `subprocess_shell`,
//! `SubprocessTransport` and `SubprocessProtocol`.
//!
//! * This file: the options and the two creation functions (spawn, connect
//!   the pipes, start the exit watcher, then `connection_made`).
//! * [`protocol`]: the [`SubprocessProtocol`] trait and its call order.
//! * [`transport`]: [`SubprocessTransport`] and the shared state that
//!   serialises the protocol's callbacks.
//! * [`pipes`]: the protocols the pipe transports run, which forward to
//!   the subprocess protocol.
//! * [`process`]: the child by pidfd (signals, reaping).
//! * [`task`]: the one task that drives the pipes and watches the exit.
//!
//! Each of stdin, stdout and stderr that is a pipe is an ordinary pipe
//! transport (the stream driver in its write-only or read-only mode); their
//! drivers and the exit watcher run in one task. See docs/architecture.md
//! for how their events reach one protocol.

mod pipes;
mod process;
mod protocol;
mod task;
mod transport;

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio as StdStdio;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub use protocol::SubprocessProtocol;
pub use transport::SubprocessTransport;

use crate::WriteLimits;
use crate::error::current_runtime;
use process::Process;
use task::ChildTask;
use transport::Shared;

/// Where one of the child's standard streams goes (asyncio's `PIPE`,
/// `DEVNULL`, `STDOUT`, a file descriptor, or `None` for the parent's own).
///
/// ```
/// use tokio_transports::{Stdio, SubprocessOptions};
/// let opts = SubprocessOptions::default().stdin(Stdio::Null).stderr(Stdio::Stdout);
/// # let _ = opts;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio {
    /// A pipe with a transport of its own (the default).
    Pipe,
    /// The parent's own stream (asyncio's `None`).
    Inherit,
    /// `/dev/null` (asyncio's `DEVNULL`).
    Null,
    /// This file descriptor (a file, a socket, a pipe of yours).
    Fd(OwnedFd),
    /// stderr only: into the same pipe or file as stdout (asyncio's
    /// `STDOUT`).
    Stdout,
}

/// The options of [`subprocess_exec`] and [`subprocess_shell`]: asyncio's
/// `stdin`, `stdout`, `stderr` and the `subprocess.Popen` keywords this
/// crate supports. What asyncio refuses (text mode, buffering, `shell` in
/// the wrong function, `universal_newlines`, encodings) has no setter: it
/// cannot be asked for.
///
/// ```
/// use tokio_transports::{Stdio, SubprocessOptions};
/// let opts = SubprocessOptions::default()
///     .stderr(Stdio::Stdout)
///     .cwd("/tmp")
///     .env("LANG", "C")
///     .new_session(true);
/// # let _ = opts;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct SubprocessOptions {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    cwd: Option<PathBuf>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
    process_group: Option<i32>,
    new_session: bool,
    stdin_limits: WriteLimits,
}

impl Default for SubprocessOptions {
    fn default() -> Self {
        SubprocessOptions {
            stdin: Stdio::Pipe,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            process_group: None,
            new_session: false,
            stdin_limits: WriteLimits::default(),
        }
    }
}

impl SubprocessOptions {
    /// Where stdin comes from (default: a pipe). `Stdio::Stdout` is an error
    /// when spawning.
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().stdin(tokio_transports::Stdio::Null);
    /// # let _ = o;
    /// ```
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdin = s;
        self
    }

    /// Where stdout goes (default: a pipe). `Stdio::Stdout` is an error
    /// when spawning.
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().stdout(tokio_transports::Stdio::Inherit);
    /// # let _ = o;
    /// ```
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdout = s;
        self
    }

    /// Where stderr goes (default: a pipe; `Stdio::Stdout`: with stdout).
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().stderr(tokio_transports::Stdio::Stdout);
    /// # let _ = o;
    /// ```
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stderr = s;
        self
    }

    /// The child's working directory.
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().cwd("/");
    /// # let _ = o;
    /// ```
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Set an environment variable for the child.
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().env("LANG", "C");
    /// # let _ = o;
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Remove an environment variable from the child's environment.
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().env_remove("HOME");
    /// # let _ = o;
    /// ```
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Start from an empty environment (asyncio's `env={}`), then apply
    /// [`env`](Self::env).
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().env_clear().env("PATH", "/bin");
    /// # let _ = o;
    /// ```
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Put the child in process group `pgid` (0: a new group of its own;
    /// `Popen(process_group=)`).
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().process_group(0);
    /// # let _ = o;
    /// ```
    pub fn process_group(mut self, pgid: i32) -> Self {
        self.process_group = Some(pgid);
        self
    }

    /// Start the child in a new session (`setsid`; `Popen(start_new_session=True)`).
    ///
    /// ```
    /// let o = tokio_transports::SubprocessOptions::default().new_session(true);
    /// # let _ = o;
    /// ```
    pub fn new_session(mut self, on: bool) -> Self {
        self.new_session = on;
        self
    }

    /// The stdin pipe's watermarks.
    ///
    /// ```
    /// use tokio_transports::{SubprocessOptions, WriteLimits};
    /// let o = SubprocessOptions::default().stdin_write_limits(WriteLimits::new(Some(4096), None)?);
    /// # let _ = o; Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn stdin_write_limits(mut self, limits: WriteLimits) -> Self {
        self.stdin_limits = limits;
        self
    }
}

/// Run `program` with `args` as a child process whose events the protocol
/// from `protocol_factory` receives (asyncio's `loop.subprocess_exec`).
/// Returns once the pipes are connected and `connection_made` has run.
///
/// The factory is called first, then the child is spawned (a spawn error is
/// returned, and the protocol hears nothing), its pipes are connected and
/// its exit is watched; events that happen before `connection_made` are
/// delivered after it, in order.
///
/// # Errors
///
/// The spawn's error (a program that does not exist: `NotFound`); a
/// `Stdio::Stdout` for stdin or stdout (`InvalidInput`); outside a tokio
/// runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{SubprocessOptions, subprocess_exec};
/// let t = subprocess_exec(|| (), "true", Vec::<&str>::new(), SubprocessOptions::default()).await?;
/// assert_eq!(t.wait().await, 0);
/// t.closed().await;
/// # Ok(()) }
/// ```
pub async fn subprocess_exec<F, P, A>(
    protocol_factory: F,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = A>,
    options: SubprocessOptions,
) -> io::Result<SubprocessTransport>
where
    F: FnOnce() -> P,
    P: SubprocessProtocol,
    A: AsRef<OsStr>,
{
    current_runtime()?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    start(Box::new(protocol_factory()), cmd, options).await
}

/// Run `command` through the shell (`/bin/sh -c command`; asyncio's
/// `loop.subprocess_shell`). Otherwise as [`subprocess_exec`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{SubprocessOptions, subprocess_shell};
/// let t = subprocess_shell(|| (), "exit 7", SubprocessOptions::default()).await?;
/// assert_eq!(t.wait().await, 7);
/// # Ok(()) }
/// ```
pub async fn subprocess_shell<F, P>(
    protocol_factory: F,
    command: impl AsRef<OsStr>,
    options: SubprocessOptions,
) -> io::Result<SubprocessTransport>
where
    F: FnOnce() -> P,
    P: SubprocessProtocol,
{
    current_runtime()?;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(command);
    start(Box::new(protocol_factory()), cmd, options).await
}

/// The parent's ends of the child's pipes.
#[derive(Default)]
struct ParentEnds {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// Set the child's standard streams on `cmd`; returns the parent's ends.
fn set_stdio(
    cmd: &mut std::process::Command,
    options: &mut SubprocessOptions,
) -> io::Result<ParentEnds> {
    let mut ends = ParentEnds::default();
    let refuse = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Stdio::Stdout is only for stderr, not {what}"),
        )
    };
    match std::mem::replace(&mut options.stdin, Stdio::Inherit) {
        Stdio::Pipe => {
            let (r, w) = pipe()?;
            cmd.stdin(r);
            ends.stdin = Some(w);
        }
        Stdio::Inherit => {
            cmd.stdin(StdStdio::inherit());
        }
        Stdio::Null => {
            cmd.stdin(StdStdio::null());
        }
        Stdio::Fd(fd) => {
            cmd.stdin(fd);
        }
        Stdio::Stdout => return Err(refuse("stdin")),
    }
    // stdout's target, kept to give stderr a copy for `Stdio::Stdout`.
    let mut stdout_target: Option<OwnedFd> = None;
    match std::mem::replace(&mut options.stdout, Stdio::Inherit) {
        Stdio::Pipe => {
            let (r, w) = pipe()?;
            stdout_target = Some(w.try_clone()?);
            cmd.stdout(w);
            ends.stdout = Some(r);
        }
        Stdio::Inherit => {
            // A copy only when stderr is to go there too: a parent whose
            // stdout is closed can still run children.
            if matches!(options.stderr, Stdio::Stdout) {
                stdout_target = Some(std::io::stdout().as_fd_owned()?);
            }
            cmd.stdout(StdStdio::inherit());
        }
        Stdio::Null => {
            cmd.stdout(StdStdio::null());
        }
        Stdio::Fd(fd) => {
            stdout_target = Some(fd.try_clone()?);
            cmd.stdout(fd);
        }
        Stdio::Stdout => return Err(refuse("stdout")),
    }
    match std::mem::replace(&mut options.stderr, Stdio::Inherit) {
        Stdio::Pipe => {
            let (r, w) = pipe()?;
            cmd.stderr(w);
            ends.stderr = Some(r);
        }
        Stdio::Inherit => {
            cmd.stderr(StdStdio::inherit());
        }
        Stdio::Null => {
            cmd.stderr(StdStdio::null());
        }
        Stdio::Fd(fd) => {
            cmd.stderr(fd);
        }
        Stdio::Stdout => match stdout_target {
            Some(fd) => {
                cmd.stderr(fd);
            }
            None => {
                cmd.stderr(StdStdio::null());
            }
        },
    }
    Ok(ends)
}

/// A pipe, `(read end, write end)`, both close-on-exec and blocking (the
/// child's end stays blocking; the pipe transport makes the parent's end
/// non-blocking).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `pipe2` writes two fds into the two-element array we pass
    // and touches nothing else.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these two fds to us; nothing else
    // owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A duplicate of a std stream's fd.
trait AsFdOwned {
    fn as_fd_owned(&self) -> io::Result<OwnedFd>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }
}

async fn start(
    protocol: Box<dyn SubprocessProtocol>,
    mut cmd: std::process::Command,
    mut options: SubprocessOptions,
) -> io::Result<SubprocessTransport> {
    let ends = set_stdio(&mut cmd, &mut options)?;
    if let Some(dir) = &options.cwd {
        cmd.current_dir(dir);
    }
    if options.env_clear {
        cmd.env_clear();
    }
    for (key, value) in &options.env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    if let Some(pgid) = options.process_group {
        cmd.process_group(pgid);
    }
    if options.new_session {
        // SAFETY: the closure runs in the child between fork and exec, and
        // calls only `setsid`, which is async-signal-safe and touches no
        // memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn()?;
    // The child's ends of the pipes close here, in the parent: each pipe
    // then ends when the child (and its children) close theirs.
    drop(cmd);
    let process = match Process::open(child.id()) {
        Ok(p) => p,
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    // From here the child is ours to reap (through its pidfd), not std's.
    drop(child);
    let pipes_open = [&ends.stdin, &ends.stdout, &ends.stderr]
        .iter()
        .filter(|e| e.is_some())
        .count();
    let shared = Shared::new(process, protocol, pipes_open);
    let watcher = shared.process.dup_pidfd().and_then(|fd| {
        // SAFETY: the `AsyncFd` owns `fd` (a duplicate of the pidfd), so it
        // stays open and names the same file description for the
        // registration's whole life.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into())
    });
    let watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            let _ = shared.process.signal(libc::SIGKILL);
            let _ = shared.process.reap_blocking();
            return Err(e);
        }
    };
    let mut task = ChildTask::new(shared.clone(), watcher);
    let transport = SubprocessTransport {
        shared: shared.clone(),
    };
    // Until `connection_made`, a failure or a dropped future (a caller
    // that gave up) closes the pipes connected so far and kills the child
    // (the watcher still reaps it), as asyncio closes the transport.
    struct CloseOnDrop(Option<SubprocessTransport>);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            if let Some(t) = self.0.take() {
                t.close();
            }
        }
    }
    let mut guard = CloseOnDrop(Some(transport.clone()));
    // The child's span (`subprocess`, DEBUG, `pid`): its pipes' spans are
    // its children, and its task runs in it.
    let span = tracing::debug_span!("subprocess", pid = shared.process.pid());
    let prepared = span.in_scope(|| pipes::prepare(&shared, ends, options.stdin_limits, &mut task));
    // Spawned whatever happened: it reaps the child in any case.
    tokio::spawn(tracing::Instrument::instrument(task, span));
    for rx in prepared? {
        crate::stream::started(rx).await?;
    }
    guard.0 = None;
    shared.made();
    Ok(transport)
}
