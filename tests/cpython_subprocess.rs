//! CPython's own subprocess tests, translated to this crate's API, with real
//! children (`sh`, `cat`, `python3`):
//!
//! * `Lib/test/test_asyncio/test_subprocess.py` (`SubprocessTransportTests`,
//!   `SubprocessMixin`): return codes, signals, close, broken pipes,
//!   pausing stdout, empty and `/dev/null` input, waits;
//! * `Lib/test/test_asyncio/test_events.py` (`SubprocessTestsMixin`): the
//!   `SubprocessProtocol` driven through `loop.subprocess_exec/shell` with
//!   `echo.py`, `echo3.py` (inlined below) and children without pipes;
//! * uvloop's `tests/test_process.py`: large stdin/stdout, files as stdio,
//!   the pid, a non-fatal signal, close and reaping.
//!
//! Each test carries the name of the test it translates, and a comment with
//! the original's qualified name. What is asyncio's high-level `Process` /
//! `StreamReader` API only (`communicate`'s return shape, `limit=`) is
//! translated to what it does at the transport level. Cases already checked
//! by tests/subprocess.rs, subprocess_many.rs and subprocess_sibling.rs are
//! not repeated here.
#![cfg(all(feature = "process", target_os = "linux"))]

mod common;
mod subprocess_support;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use common::{ExcCapture, barrier, is_pending};
use futures::FutureExt;
use subprocess_support::{
    Ev, Log, Rec, check_grammar, exec, no_pipes, output_of, pipe_lost, python, shell, stdout_only,
};
use tokio_transports::{
    Bytes, Stdio, SubprocessOptions, SubprocessTransport, Transport, TransportError,
    subprocess_exec,
};

/// Only a guard against hanging: every wait below is on an event.
const LIMIT: Duration = Duration::from_secs(20);

async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// CPython's `support.PIPE_MAX_SIZE`: more than any pipe holds.
const PIPE_MAX_SIZE: usize = 4 * 1024 * 1024 + 1;

/// CPython's `PROGRAM_BLOCKED`.
const PROGRAM_BLOCKED: &str = "import time; time.sleep(3600)";

/// CPython's `PROGRAM_CAT`.
const PROGRAM_CAT: &str =
    "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data)";

/// Lib/test/test_asyncio/echo.py.
const ECHO_PY: &str = "import os\n\
while True:\n    buf = os.read(0, 1024)\n    os.write(1, buf)\n";

/// Lib/test/test_asyncio/echo3.py.
const ECHO3_PY: &str = "import os\n\
while True:\n    buf = os.read(0, 1024)\n    try:\n        os.write(1, b'OUT:'+buf)\n    except OSError as ex:\n        os.write(2, b'ERR:' + ex.__class__.__name__.encode('ascii'))\n";

/// The child of several tests: reads stdin to its end, prints its length.
const LEN_OF_STDIN: &str = "import sys; data = sys.stdin.read(); print(len(data))";

fn stdin_of(t: &SubprocessTransport) -> Transport {
    t.get_pipe_transport(0).expect("a stdin pipe")
}

fn is_esrch(r: io::Result<()>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::ESRCH))
}

/// `os.kill(pid, 0)` raises `ProcessLookupError`: no such process, not even
/// a zombie (it was reaped).
fn is_gone(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the pid; no memory involved.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> (TempFile, std::fs::File) {
        let path = std::env::temp_dir().join(format!(
            "tt-cpython-subprocess-{}-{tag}",
            std::process::id()
        ));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        (TempFile(path), file)
    }
    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---- Lib/test/test_asyncio/test_subprocess.py --------------------------------

/// SubprocessTransportTests.test_proc_exited: after the exit and
/// `connection_lost(None)`, the return code stays, `is_closing()` is false
/// (nobody called `close()`), and every signal method raises
/// `ProcessLookupError`; `close()` is then harmless.
#[tokio::test]
async fn test_proc_exited() {
    let (t, log) = shell("exit 6", SubprocessOptions::default()).await;
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(6));
    assert!(evs.contains(&Ev::Exited(Some(6))), "{evs:?}");
    // stdin's reader went away with an empty buffer: no error.
    assert_eq!(pipe_lost(&evs, 0), [None], "{evs:?}");
    check_grammar(&evs, &[0, 1, 2]);
    assert!(!t.is_closing());
    assert!(is_esrch(t.send_signal(libc::SIGTERM)), "send_signal");
    assert!(is_esrch(t.terminate()), "terminate");
    assert!(is_esrch(t.kill()), "kill");
    t.close();
    assert_eq!(log.events(), evs, "nothing after connection_lost");
}

/// SubprocessTransportTests.test_proc_exited, with the check made from
/// another thread: CPython clears `_proc` in `_call_connection_lost` right
/// after `connection_lost` returns, so from then on every signal method
/// raises `ProcessLookupError`. Here the test's task runs on another worker
/// and checks as soon as `connection_lost` has told it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_proc_exited_multi_thread() {
    for i in 0..50 {
        let (t, log) = shell("exit 6", SubprocessOptions::default()).await;
        log.wait_lost().await;
        let r = t.kill();
        let shown = format!("{r:?}");
        assert!(
            is_esrch(r),
            "run {i}: kill() after connection_lost: {shown}"
        );
        assert_eq!(t.get_returncode(), Some(6));
    }
}

/// SubprocessMixin.test_communicate_none_input: stdin closed without a
/// write; the child's stdout ends with no data at all.
#[tokio::test]
async fn test_communicate_none_input() {
    let (t, log) = python(PROGRAM_CAT, SubprocessOptions::default()).await;
    stdin_of(&t).close();
    let evs = log.wait_lost().await;
    assert!(log.output(1).is_empty(), "{evs:?}");
    assert_eq!(pipe_lost(&evs, 0), [None]);
    assert_eq!(pipe_lost(&evs, 1), [None]);
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_send_signal: only stdout is a pipe; once the child
/// has said it sleeps, SIGHUP ends it with -SIGHUP. (bpo-31034: the child
/// restores SIGHUP's default itself, as CPython's test does in the parent.)
#[tokio::test]
async fn test_send_signal() {
    let code = "import signal, time\n\
signal.signal(signal.SIGHUP, signal.SIG_DFL)\n\
print('sleeping', flush=True)\n\
time.sleep(3600)\n";
    let (t, log) = python(code, stdout_only()).await;
    assert!(t.get_pipe_transport(0).is_none());
    assert!(t.get_pipe_transport(2).is_none());
    log.wait_output(1, b"sleeping\n").await;
    t.send_signal(libc::SIGHUP).unwrap();
    assert_eq!(guard("exit", t.wait()).await, -libc::SIGHUP);
    let evs = log.wait_lost().await;
    assert!(evs.contains(&Ev::Exited(Some(-libc::SIGHUP))), "{evs:?}");
    check_grammar(&evs, &[1]);
}

/// SubprocessMixin.test_kill_issue43884: killing a shell whose child (a
/// `sleep`) inherited its stdout pipe: the return code is -SIGKILL, and the
/// transport still ends once the grandchild lets go of stdout.
#[tokio::test]
async fn test_kill_issue43884() {
    let (t, log) = shell("sleep 1; sleep 1", stdout_only()).await;
    t.kill().unwrap();
    assert_eq!(guard("exit", t.wait()).await, -libc::SIGKILL);
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    check_grammar(&evs, &[1]);
}

/// SubprocessMixin.test_stdin_broken_pipe: the child exits without reading
/// while more than a pipe holds waits in stdin's buffer: `drain()` fails
/// with `BrokenPipeError` (or `ConnectionResetError`), and stdin's
/// `pipe_connection_lost` carries the error. (CPython's child waits for a
/// byte on a passed fd; ours waits for SIGUSR1.)
#[tokio::test]
async fn test_stdin_broken_pipe() {
    let code = "import signal\n\
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n\
print('ready', flush=True)\n\
signal.sigwait([signal.SIGUSR1])\n";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    log.wait_output(1, b"ready\n").await;
    let stdin = stdin_of(&t);
    stdin.write(vec![b'x'; PIPE_MAX_SIZE]).unwrap();
    // Only exit the child process once the write buffer is filled.
    t.send_signal(libc::SIGUSR1).unwrap();
    let err = guard("drain", stdin.drain())
        .await
        .expect_err("drain() must fail: the reader is gone");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
    assert_eq!(guard("exit", t.wait()).await, 0);
    let evs = log.wait_lost().await;
    assert_eq!(
        pipe_lost(&evs, 0),
        [Some(io::ErrorKind::BrokenPipe)],
        "{evs:?}"
    );
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_communicate_ignore_broken_pipe: the child ends at
/// once; feeding it more than a pipe holds and closing stdin neither hangs
/// nor reports anything to the exception handler (an `OSError` of a write
/// pipe is not reported there), and the child's code is 0.
#[tokio::test]
async fn test_communicate_ignore_broken_pipe() {
    let exc = ExcCapture::install().await;
    let (t, log) = python("pass", SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write(vec![b'x'; PIPE_MAX_SIZE]).unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(0));
    let lost0 = pipe_lost(&evs, 0);
    assert!(
        matches!(lost0[..], [None] | [Some(io::ErrorKind::BrokenPipe)]),
        "{evs:?}"
    );
    check_grammar(&evs, &[0, 1, 2]);
    assert!(exc.reports().is_empty(), "{:?}", exc.reports());
}

/// SubprocessMixin.test_pause_reading (issue #22685): the stdout pipe
/// transport from `get_pipe_transport(1)` can be paused and resumed. While
/// it is paused nothing of the child's output is delivered (not even after
/// the child exited), and after `resume_reading()` all of it is.
#[tokio::test]
async fn test_pause_reading() {
    let size = 10 * 2 + 1;
    let code = format!(
        "import sys\nsys.stdin.readline()\nsys.stdout.write('x' * {size})\nsys.stdout.flush()\n"
    );
    let (t, log) = python(&code, SubprocessOptions::default()).await;
    let stdout = t.get_pipe_transport(1).unwrap();
    stdout.pause_reading();
    assert!(!stdout.is_reading());
    stdin_of(&t).write("go\n").unwrap();
    assert_eq!(guard("exit", t.wait()).await, 0);
    log.wait_until("process_exited", |e| {
        e.iter().any(|e| matches!(e, Ev::Exited(_)))
    })
    .await;
    // The stdout pipe's task has seen the pause and polled since the child
    // wrote and exited.
    barrier(&stdout).await;
    let evs = log.events();
    assert!(log.output(1).is_empty(), "delivered while paused: {evs:?}");
    assert!(pipe_lost(&evs, 1).is_empty(), "{evs:?}");
    assert!(!evs.iter().any(|e| matches!(e, Ev::Lost(_))), "{evs:?}");
    stdout.resume_reading();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), vec![b'x'; size]);
    check_grammar(&evs, &[0, 1, 2]);
}

/// The descriptors of this process that a child inherits (not
/// close-on-exec): inherited from whoever started the test, not ours.
fn inheritable_fds() -> Vec<i32> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: F_GETFD on any number touches no memory; a closed fd
        // (the directory's own, already gone) gives -1.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            fds.push(fd);
        }
    }
    fds
}

/// SubprocessMixin.test_stdin_not_inheritable (asyncio issue #209): stdin
/// must not be inheritable, or the child holds its own stdin open and never
/// sees its end. Also checked: the child has none of the parent's ends of
/// its pipes (nor the pidfd), only fds the test process itself inherited.
#[tokio::test]
async fn test_stdin_not_inheritable() {
    let code = "import os, sys\n\
data = sys.stdin.read()\n\
fds = []\n\
for fd in range(3, 1024):\n    try:\n        os.fstat(fd)\n    except OSError:\n        continue\n    fds.append(fd)\n\
print(len(data), ' '.join(map(str, fds)))\n";
    let allowed = inheritable_fds();
    let (t, log) = python(code, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write("abc").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    let out = String::from_utf8(log.output(1)).unwrap();
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("3"), "{out:?}");
    for fd in words {
        let fd: i32 = fd.parse().unwrap();
        assert!(
            allowed.contains(&fd),
            "the child inherited fd {fd} (inheritable here: {allowed:?})"
        );
    }
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_empty_input: `communicate(b'')`: an empty write is
/// a no-op, then the close gives the child an empty stdin.
#[tokio::test]
async fn test_empty_input() {
    let (t, log) = python(LEN_OF_STDIN, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write(Bytes::new()).unwrap();
    assert_eq!(stdin.get_write_buffer_size(), 0);
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"0\n");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_devnull_input: stdin from /dev/null: no stdin pipe,
/// and the child reads nothing.
#[tokio::test]
async fn test_devnull_input() {
    let (t, log) = python(
        LEN_OF_STDIN,
        SubprocessOptions::default().stdin(Stdio::Null),
    )
    .await;
    assert!(t.get_pipe_transport(0).is_none());
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"0\n");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[1, 2]);
}

/// SubprocessMixin.test_devnull_output: stdout to /dev/null: no stdout pipe
/// and no stdout event; stdin still works.
#[tokio::test]
async fn test_devnull_output() {
    let (t, log) = python(
        LEN_OF_STDIN,
        SubprocessOptions::default().stdout(Stdio::Null),
    )
    .await;
    assert!(t.get_pipe_transport(1).is_none());
    let stdin = stdin_of(&t);
    stdin.write("abc").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 2]);
}

/// SubprocessMixin.test_devnull_error: stderr to /dev/null.
#[tokio::test]
async fn test_devnull_error() {
    let (t, log) = python(
        LEN_OF_STDIN,
        SubprocessOptions::default().stderr(Stdio::Null),
    )
    .await;
    assert!(t.get_pipe_transport(2).is_none());
    let stdin = stdin_of(&t);
    stdin.write("abc").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"3\n");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1]);
}

/// SubprocessMixin.test_devstdin_input: the child reopens /dev/stdin, which
/// works on a pipe (not on a socket).
#[tokio::test]
async fn test_devstdin_input() {
    let code = "file = open('/dev/stdin'); data = file.read(); print(len(data))";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write("abc").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"3\n", "stderr: {:?}", log.output(2));
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_cancel_process_wait (issue #23140): a cancelled
/// wait (a dropped future, an aborted task) does not spoil the next.
#[tokio::test]
async fn test_cancel_process_wait() {
    let (t, log) = python(PROGRAM_BLOCKED, no_pipes()).await;
    {
        let w = t.wait();
        tokio::pin!(w);
        assert!(is_pending(w.as_mut()));
    }
    let t2 = t.clone();
    let task = tokio::spawn(async move { t2.wait().await });
    tokio::task::yield_now().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    t.kill().unwrap();
    assert_eq!(guard("exit", t.wait()).await, -libc::SIGKILL);
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[]);
}

/// SubprocessMixin.test_cancel_post_init (and uvloop's, with
/// gh-125502's point): `subprocess_exec` given up on after the spawn, while
/// its pipes connect: the child is killed and reaped (no zombie is left),
/// and the protocol hears nothing.
#[tokio::test]
async fn test_cancel_post_init() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    // The child's stderr is our pipe: it says its pid, then is `cat`.
    let (w, r) = tokio::net::unix::pipe::pipe().unwrap();
    let w = w.into_blocking_fd().unwrap();
    let log = Log::default();
    let l2 = log.clone();
    let exec = subprocess_exec(
        move || Rec::new(&l2),
        "sh",
        ["-c", "echo $$ >&2; exec cat"],
        SubprocessOptions::default().stderr(Stdio::Fd(w)),
    );
    let mut exec = Box::pin(exec);
    // Polled once: spawned, its pipes connecting.
    assert!(is_pending(exec.as_mut()));
    let mut r = BufReader::new(r);
    let mut line = String::new();
    guard("the pid", r.read_line(&mut line)).await.unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    // The caller gives up.
    drop(exec);
    let mut rest = Vec::new();
    guard("the child's end", r.read_to_end(&mut rest))
        .await
        .unwrap();
    guard("the child reaped", async {
        while !is_gone(pid) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(log.events().is_empty(), "{:?}", log.events());
}

/// SubprocessMixin.test_close_dont_kill_finished: the child has exited but
/// the transport has not been told yet (not reaped; its task has not run):
/// `close()` must not kill it, and the code reported is its own.
#[tokio::test(flavor = "current_thread")]
async fn test_close_dont_kill_finished() {
    let (t, log) = python(PROGRAM_BLOCKED, SubprocessOptions::default()).await;
    let pid = t.get_pid();
    // Killed behind the transport's back; wait without reaping, without
    // yielding to the runtime (the transport's task cannot run).
    // SAFETY: kill(2) with a pid and a signal number touches no memory.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    // SAFETY: a zeroed siginfo_t is valid; waitid writes into it; WNOWAIT
    // leaves the child a zombie.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `info` is valid and writable for the call.
    let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(r, 0, "{}", io::Error::last_os_error());
    assert_eq!(t.get_returncode(), None, "not notified yet");
    t.close();
    assert!(t.is_closing());
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGTERM));
    for fd in 0..3 {
        assert_eq!(pipe_lost(&evs, fd), [None], "fd {fd}: {evs:?}");
    }
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_read_stdout_after_process_exit: output still in
/// the pipe when the child exits (with code 1) is delivered after
/// `process_exited`, all of it, before stdout's `pipe_connection_lost` and
/// `connection_lost`. (CPython reads slowly; here stdout is paused until the
/// child is gone, its pipe enlarged to hold all 256 KiB.)
#[tokio::test]
async fn test_read_stdout_after_process_exit() {
    let code = "import fcntl, sys\n\
fcntl.fcntl(1, 1031, 1 << 20)\n\
sys.stdin.readline()\n\
for _ in range(64):\n    sys.stdout.write('x' * 4096)\n\
sys.stdout.flush()\n\
sys.exit(1)\n";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    let stdout = t.get_pipe_transport(1).unwrap();
    stdout.pause_reading();
    stdin_of(&t).write("go\n").unwrap();
    assert_eq!(guard("exit", t.wait()).await, 1, "{:?}", log.output(2));
    log.wait_until("process_exited", |e| e.contains(&Ev::Exited(Some(1))))
        .await;
    barrier(&stdout).await;
    let evs = log.events();
    assert!(log.output(1).is_empty(), "{evs:?}");
    assert!(!evs.iter().any(|e| matches!(e, Ev::Lost(_))), "{evs:?}");
    stdout.resume_reading();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1).len(), 64 * 4096);
    let exited = evs.iter().position(|e| matches!(e, Ev::Exited(_))).unwrap();
    let first = evs
        .iter()
        .position(|e| matches!(e, Ev::Data(1, _)))
        .unwrap();
    assert!(exited < first, "{exited} < {first}");
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_subprocess_concurrent_wait: any number of waits,
/// made before or after the exit, all give the return code.
#[tokio::test]
async fn test_subprocess_concurrent_wait() {
    let (t, log) = python(PROGRAM_CAT, SubprocessOptions::default()).await;
    let early: Vec<_> = (0..10)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.wait().await })
        })
        .collect();
    let stdin = stdin_of(&t);
    stdin.write("some data").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"some data");
    assert_eq!(t.get_returncode(), Some(0));
    for h in early {
        assert_eq!(guard("an early wait", h).await.unwrap(), 0);
    }
    let late = futures::future::join_all((0..10).map(|_| t.wait())).await;
    assert_eq!(late, vec![0; 10]);
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessMixin.test_subprocess_protocol_events (gh-108973): with
/// `stdin=None`, every protocol method is called, and per fd the data comes
/// before that pipe's loss (the order across fds and the exit is free).
#[tokio::test]
async fn test_subprocess_protocol_events() {
    let code = "import sys; sys.stdout.write('stdout'); sys.stderr.write('stderr')";
    let (t, log) = python(code, SubprocessOptions::default().stdin(Stdio::Inherit)).await;
    let evs = log.wait_lost().await;
    t.close();
    let mut got: Vec<Ev> = evs
        .iter()
        .filter(|e| !matches!(e, Ev::Made | Ev::Lost(_)))
        .cloned()
        .collect();
    got.sort_by_key(|e| format!("{e:?}"));
    let mut expected = vec![
        Ev::Data(1, b"stdout".to_vec()),
        Ev::Data(2, b"stderr".to_vec()),
        Ev::PipeLost(1, None),
        Ev::PipeLost(2, None),
        Ev::Exited(Some(0)),
    ];
    expected.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(got, expected);
    check_grammar(&evs, &[1, 2]);
}

/// SubprocessMixin.test_subprocess_communicate_stdout (gh-100133): ten
/// children at once, each one's output to its own protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_subprocess_communicate_stdout() {
    let runs = (0..10).map(|i| async move {
        let (t, log) = python(&format!("print('foo{i}')"), stdout_only()).await;
        let evs = log.wait_lost().await;
        check_grammar(&evs, &[1]);
        assert_eq!(t.get_returncode(), Some(0));
        String::from_utf8(log.output(1)).unwrap().trim().to_string()
    });
    let outputs = futures::future::join_all(runs).await;
    let want: Vec<String> = (0..10).map(|i| format!("foo{i}")).collect();
    assert_eq!(outputs, want);
}

/// SubprocessMixin.test_create_subprocess_env_shell: the environment
/// reaches a shell's child; once the output has ended, `wait()` is ready at
/// once.
#[tokio::test]
async fn test_create_subprocess_env_shell() {
    let cmd = "python3 -c \"import os, sys; sys.stdout.write(os.getenv('FOO'))\"";
    let (t, log) = shell(cmd, stdout_only().env("FOO", "bar")).await;
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"bar");
    assert_eq!(t.get_returncode(), Some(0));
    assert_eq!(t.wait().now_or_never(), Some(0));
    check_grammar(&evs, &[1]);
}

/// SubprocessMixin.test_create_subprocess_exec_with_path: the program and
/// the arguments may be paths.
#[tokio::test]
async fn test_create_subprocess_exec_with_path() {
    let (t, log) = exec(
        PathBuf::from("/bin/sh"),
        [PathBuf::from("-c"), PathBuf::from("exit 0")],
        no_pipes(),
    )
    .await;
    assert_eq!(guard("exit", t.wait()).await, 0);
    log.wait_lost().await;
    let (t, log) = exec(
        "python3",
        [
            PathBuf::from("-c"),
            PathBuf::from("pass"),
            PathBuf::from("."),
        ],
        no_pipes(),
    )
    .await;
    assert_eq!(guard("exit", t.wait()).await, 0);
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[]);
}

/// SubprocessMixin.test_stdin_stdout: write, `drain()`, close stdin, read
/// stdout to its end.
#[tokio::test]
async fn test_stdin_stdout() {
    let (t, log) = python(
        PROGRAM_CAT,
        SubprocessOptions::default().stderr(Stdio::Inherit),
    )
    .await;
    let stdin = stdin_of(&t);
    stdin.write("some data").unwrap();
    guard("drain", stdin.drain()).await.unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"some data");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1]);
}

// ---- Lib/test/test_asyncio/test_events.py: SubprocessTestsMixin --------------

/// SubprocessTestsMixin.test_subprocess_exec: `echo.py` echoes stdin;
/// `close()` with the child running kills it (-SIGKILL), and every pipe's
/// `pipe_connection_lost` gets `None` (the pipes were closed here).
#[tokio::test]
async fn test_subprocess_exec() {
    let (t, log) = python(ECHO_PY, SubprocessOptions::default()).await;
    assert_eq!(log.events(), [Ev::Made], "CONNECTED");
    stdin_of(&t).write("Python The Winner").unwrap();
    log.wait_until("got_data[1]", |e| !output_of(e, 1).is_empty())
        .await;
    t.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    assert_eq!(log.output(1), b"Python The Winner");
    for fd in 0..3 {
        assert_eq!(pipe_lost(&evs, fd), [None], "fd {fd}: {evs:?}");
    }
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessTestsMixin.test_subprocess_interactive: two writes, two
/// echoes, then `close()` kills.
#[tokio::test]
async fn test_subprocess_interactive() {
    let (t, log) = python(ECHO_PY, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write("Python ").unwrap();
    log.wait_output(1, b"Python ").await;
    stdin.write("The Winner").unwrap();
    log.wait_output(1, b"Python The Winner").await;
    t.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessTestsMixin.test_subprocess_exitcode: no pipe at all
/// (`stdin=None, stdout=None, stderr=None`): `connection_lost` follows the
/// exit, and the code is 7.
#[tokio::test]
async fn test_subprocess_exitcode() {
    let (t, log) = shell("exit 7", no_pipes()).await;
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(7));
    assert_eq!(evs, [Ev::Made, Ev::Exited(Some(7)), Ev::Lost(None)]);
    t.close();
}

/// SubprocessTestsMixin.test_subprocess_close_after_finish: no pipe
/// transports; `close()` after the end returns and changes nothing.
#[tokio::test]
async fn test_subprocess_close_after_finish() {
    let (t, log) = shell("exit 7", no_pipes()).await;
    for fd in 0..3 {
        assert!(t.get_pipe_transport(fd).is_none(), "fd {fd}");
    }
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(7));
    t.close();
    assert_eq!(t.get_returncode(), Some(7));
    assert_eq!(log.events(), evs);
    check_grammar(&evs, &[]);
}

/// SubprocessTestsMixin.test_subprocess_close_client_stream: `echo3.py`;
/// closing the stdout pipe transport gives `pipe_connection_lost(1, None)`
/// while the child runs; its next write fails with `BrokenPipeError`, which
/// it reports on stderr; `close()` then kills it.
#[tokio::test]
async fn test_subprocess_close_client_stream() {
    let (t, log) = python(ECHO3_PY, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    let stdout = t.get_pipe_transport(1).unwrap();
    stdin.write("test").unwrap();
    log.wait_output(1, b"OUT:test").await;
    stdout.close();
    log.wait_until("disconnects[1]", |e| !pipe_lost(e, 1).is_empty())
        .await;
    assert_eq!(pipe_lost(&log.events(), 1), [None]);
    assert_eq!(t.get_returncode(), None);
    stdin.write("xxx").unwrap();
    log.wait_until("got_data[2]", |e| !output_of(e, 2).is_empty())
        .await;
    log.wait_output(2, b"ERR:BrokenPipeError").await;
    t.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    check_grammar(&evs, &[0, 1, 2]);
}

/// SubprocessTestsMixin.test_subprocess_wait_no_same_group: a child in a
/// new session, without pipes, is still watched and reaped.
#[tokio::test]
async fn test_subprocess_wait_no_same_group() {
    let (t, log) = shell("exit 7", no_pipes().new_session(true)).await;
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(7));
    check_grammar(&evs, &[]);
}

// ---- uvloop tests/test_process.py ---------------------------------------------

/// uvloop _TestProcess.test_process_streams_basic_1: stdin is write-only
/// and stdout read-only; a line protocol on stdin, answers on stdout and
/// stderr, exit code 20. (asyncio raises on `stdin.pause_reading()`; here
/// it is a documented no-op on a write pipe, which never reads.)
#[tokio::test]
async fn test_process_streams_basic_1() {
    let code = "import sys\n\
while True:\n    a = input()\n    if a == 'stop':\n        exit(20)\n    elif a == 'stderr':\n        print('OUCH', file=sys.stderr)\n    else:\n        print('>' + a + '<')\n";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    assert!(t.get_pid() > 0);
    assert_eq!(t.get_returncode(), None);
    let stdin = stdin_of(&t);
    let stdout = t.get_pipe_transport(1).unwrap();
    stdin.pause_reading();
    assert!(!stdin.is_reading());
    assert!(
        matches!(stdout.write("wat"), Err(TransportError::Unsupported(_))),
        "stdout is read-only"
    );
    assert!(!stdout.can_write_eof());
    stdin.write("foobar\n").unwrap();
    log.wait_output(1, b">foobar<\n").await;
    stdin.write("stderr\n").unwrap();
    log.wait_output(2, b"OUCH\n").await;
    stdin.write("stop\n").unwrap();
    assert_eq!(guard("exit", t.wait()).await, 20);
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[0, 1, 2]);
}

/// uvloop _TestProcess.test_process_send_signal_1: a signal the child
/// handles does not end it; it answers, then exits with 11.
#[tokio::test]
async fn test_process_send_signal_1() {
    let code = "import signal\n\
def handler(signum, frame):\n    if signum == signal.SIGUSR1:\n        print('WORLD')\n\
signal.signal(signal.SIGUSR1, handler)\n\
a = input()\nprint(a)\na = input()\nprint(a)\nexit(11)\n";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write("HELLO\n").unwrap();
    log.wait_output(1, b"HELLO\n").await;
    t.send_signal(libc::SIGUSR1).unwrap();
    stdin.write("!\n").unwrap();
    assert_eq!(guard("exit", t.wait()).await, 11);
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"HELLO\nWORLD\n!\n");
    check_grammar(&evs, &[0, 1, 2]);
}

/// The events of uvloop's Test_UV_Process_Delayed tests: `echo 1`, no
/// stdin pipe; `wait()` resolves with `process_exited` already called
/// (CPython's `_process_exited` schedules `process_exited` before it wakes
/// the exit waiters); in the end the whole set, `connection_lost` once.
async fn delayed_stdio_not_paused_no_stdin() {
    let (t, log) = shell("echo 1", SubprocessOptions::default().stdin(Stdio::Inherit)).await;
    assert_eq!(guard("exit", t.wait()).await, 0);
    let evs = log.events();
    assert!(
        evs.contains(&Ev::Exited(Some(0))),
        "wait() returned before process_exited: {evs:?}"
    );
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(0));
    assert_eq!(log.output(1), b"1\n");
    assert_eq!(pipe_lost(&evs, 1), [None]);
    check_grammar(&evs, &[1, 2]);
}

/// uvloop Test_UV_Process_Delayed.test_process_delayed_stdio__not_paused__no_stdin
/// (on one thread, as asyncio runs).
#[tokio::test(flavor = "current_thread")]
#[allow(non_snake_case)]
async fn test_process_delayed_stdio__not_paused__no_stdin() {
    for _ in 0..20 {
        delayed_stdio_not_paused_no_stdin().await;
    }
}

/// uvloop Test_UV_Process_Delayed.test_process_delayed_stdio__not_paused__no_stdin,
/// with the waiting task on another worker thread than the child's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(non_snake_case)]
async fn test_process_delayed_stdio__not_paused__no_stdin_multi_thread() {
    for _ in 0..50 {
        delayed_stdio_not_paused_no_stdin().await;
    }
}

/// uvloop _AsyncioTests.test_close_gets_process_closed: right after
/// `close()` the code is still unknown; when `connection_lost` comes it is
/// set and the child is reaped (`os.kill(pid, 0)` fails).
#[tokio::test]
async fn test_close_gets_process_closed() {
    let (t, log) = python(PROGRAM_BLOCKED, SubprocessOptions::default()).await;
    let pid = t.get_pid();
    t.close();
    assert_eq!(t.get_returncode(), None);
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    assert!(is_gone(pid), "pid {pid} still exists (a zombie?)");
    check_grammar(&evs, &[0, 1, 2]);
}

/// uvloop _AsyncioTests._test_communicate_large_stdout (uvloop#363): a
/// child copying stdin to stdout one byte at a time, fed `size` bytes.
async fn communicate_large_stdout(size: usize) {
    let code = "import sys, shutil; shutil.copyfileobj(sys.stdin, sys.stdout, 1)";
    let (t, log) = python(code, SubprocessOptions::default()).await;
    let stdin = stdin_of(&t);
    stdin.write(vec![b'x'; size]).unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    let out = log.output(1);
    assert_eq!(out.len(), size, "stderr: {:?}", log.output(2));
    assert!(out.iter().all(|&b| b == b'x'));
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

/// uvloop _AsyncioTests.test_communicate_large_stdout_65536.
#[tokio::test]
async fn test_communicate_large_stdout_65536() {
    communicate_large_stdout(65536).await;
}

/// uvloop _AsyncioTests.test_communicate_large_stdout_65537.
#[tokio::test]
async fn test_communicate_large_stdout_65537() {
    communicate_large_stdout(65537).await;
}

/// uvloop _AsyncioTests.test_communicate_large_stdout_1000000.
#[tokio::test]
async fn test_communicate_large_stdout_1000000() {
    communicate_large_stdout(1_000_000).await;
}

/// uvloop _AsyncioTests._test_write_huge_stdin: one write of `buf_size`
/// bytes drains and the child reads all of it (it exits at "END", stdin
/// still open).
async fn write_huge_stdin(buf_size: usize) {
    let code = "import sys\n\
n = 0\n\
while True:\n    line = sys.stdin.readline()\n    if not line:\n        print('unexpected EOF', file=sys.stderr)\n        break\n    if line == 'END\\n':\n        break\n    n+=1\n\
print(n)\n";
    let num_lines = buf_size - b"END\n".len();
    let (t, log) = python(code, SubprocessOptions::default().stderr(Stdio::Inherit)).await;
    let mut data = vec![b'\n'; num_lines];
    data.extend_from_slice(b"END\n");
    assert_eq!(data.len(), buf_size);
    let stdin = stdin_of(&t);
    stdin.write(data).unwrap();
    guard("drain", stdin.drain()).await.unwrap();
    assert_eq!(guard("exit", t.wait()).await, 0);
    let evs = log.wait_lost().await;
    let out = String::from_utf8(log.output(1)).unwrap();
    assert_eq!(out.trim().parse::<usize>().unwrap(), num_lines);
    assert_eq!(pipe_lost(&evs, 0), [None], "drained, then the reader left");
    check_grammar(&evs, &[0, 1]);
}

/// uvloop _AsyncioTests.test_write_huge_stdin_8192.
#[tokio::test]
async fn test_write_huge_stdin_8192() {
    write_huge_stdin(8192).await;
}

/// uvloop _AsyncioTests.test_write_huge_stdin_8193.
#[tokio::test]
async fn test_write_huge_stdin_8193() {
    write_huge_stdin(8193).await;
}

/// uvloop _AsyncioTests.test_write_huge_stdin_219263.
#[tokio::test]
async fn test_write_huge_stdin_219263() {
    write_huge_stdin(219263).await;
}

/// uvloop _AsyncioTests.test_write_huge_stdin_219264.
#[tokio::test]
async fn test_write_huge_stdin_219264() {
    write_huge_stdin(219264).await;
}

/// uvloop _AsyncioTests.test_stdin_stdout_file: stdout into a file of ours.
#[tokio::test]
async fn test_stdin_stdout_file() {
    let (tmp, file) = TempFile::new("stdout");
    let (t, log) = python(
        PROGRAM_CAT,
        SubprocessOptions::default()
            .stdout(Stdio::Fd(file.into()))
            .stderr(Stdio::Inherit),
    )
    .await;
    assert!(t.get_pipe_transport(1).is_none());
    let stdin = stdin_of(&t);
    stdin.write("some data").unwrap();
    guard("drain", stdin.drain()).await.unwrap();
    stdin.close();
    assert_eq!(guard("exit", t.wait()).await, 0);
    let evs = log.wait_lost().await;
    assert_eq!(tmp.read(), b"some data");
    check_grammar(&evs, &[0]);
}

/// uvloop _AsyncioTests.test_stdin_stderr_file: stderr into a file of ours.
#[tokio::test]
async fn test_stdin_stderr_file() {
    let (tmp, file) = TempFile::new("stderr");
    let (t, log) = python(
        "1/0",
        SubprocessOptions::default()
            .stdout(Stdio::Inherit)
            .stderr(Stdio::Fd(file.into())),
    )
    .await;
    assert_eq!(guard("exit", t.wait()).await, 1);
    let evs = log.wait_lost().await;
    let err = String::from_utf8_lossy(&tmp.read()).into_owned();
    assert!(err.contains("ZeroDivisionError"), "{err}");
    check_grammar(&evs, &[0]);
}

/// uvloop _TestProcess.test_process_pid_1: `get_pid()` is the child's pid.
#[tokio::test]
async fn test_process_pid_1() {
    let (t, log) = python(
        "import os\nprint(os.getpid())\n",
        SubprocessOptions::default(),
    )
    .await;
    let pid = t.get_pid();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), format!("{pid}\n").into_bytes());
    check_grammar(&evs, &[0, 1, 2]);
}

/// uvloop _TestProcess.test_process_env_2: an empty environment.
#[tokio::test]
async fn test_process_env_2() {
    let (t, log) = exec(
        "/usr/bin/env",
        Vec::<&str>::new(),
        SubprocessOptions::default().env_clear(),
    )
    .await;
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}
