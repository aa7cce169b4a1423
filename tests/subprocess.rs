//! Child processes (`subprocess_exec`, `subprocess_shell`) with real
//! children (`sh`, `cat`, `python3`): the events, their order, the return
//! codes and signals, `close()`, a grandchild holding stdout, stdin flow
//! control.
#![cfg(all(feature = "process", target_os = "linux"))]

mod common;
mod subprocess_support;

use std::io;
use std::sync::{Arc, Mutex};

use common::guard;
use subprocess_support::{Ev, Log, Rec, check_grammar, exec, shell};
use tokio_transports::{
    Bytes, Stdio, SubprocessOptions, SubprocessProtocol, SubprocessTransport, WriteLimits,
    subprocess_exec,
};

#[tokio::test]
async fn an_interactive_child_echoes_through_its_pipes() {
    let (t, log) = exec("cat", Vec::<&str>::new(), SubprocessOptions::default()).await;
    assert_eq!(log.events(), [Ev::Made], "connection_made has run");
    assert!(t.get_returncode().is_none());
    let stdin = t.get_pipe_transport(0).expect("stdin pipe");
    assert!(t.get_pipe_transport(3).is_none());
    stdin.write("line one\n").unwrap();
    log.wait_until("first echo", |_| log.output(1).len() == 9)
        .await;
    stdin.write("line two\n").unwrap();
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"line one\nline two\n");
    assert!(evs.contains(&Ev::Exited(Some(0))), "{evs:?}");
    check_grammar(&evs, &[0, 1, 2]);
    assert_eq!(t.wait().await, 0);
    // Finished: signals are refused as asyncio's ProcessLookupError.
    let err = t.kill().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    assert!(t.get_pipe_transport(0).is_none());
}

#[tokio::test]
async fn shell_stdout_and_stderr_apart_and_merged() {
    let (t, log) = shell(
        "echo out; echo err >&2; exit 3",
        SubprocessOptions::default(),
    )
    .await;
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"out\n");
    assert_eq!(log.output(2), b"err\n");
    assert_eq!(t.get_returncode(), Some(3));
    check_grammar(&evs, &[0, 1, 2]);

    let (t, log) = shell(
        "echo out; echo err >&2",
        SubprocessOptions::default().stderr(Stdio::Stdout),
    )
    .await;
    assert!(t.get_pipe_transport(2).is_none(), "no stderr pipe");
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"out\nerr\n");
    assert!(log.output(2).is_empty());
    check_grammar(&evs, &[0, 1]);
}

#[tokio::test]
async fn a_child_that_exits_at_once_still_gets_connection_made_first() {
    for _ in 0..10 {
        let (_t, log) = exec(
            "echo",
            ["quick"],
            SubprocessOptions::default().stdin(Stdio::Null),
        )
        .await;
        let evs = log.wait_lost().await;
        assert_eq!(log.output(1), b"quick\n");
        check_grammar(&evs, &[1, 2]);
    }
}

#[tokio::test]
async fn signals_and_return_codes() {
    for (signal, code) in [
        (None, -libc::SIGKILL),
        (Some(libc::SIGTERM), -libc::SIGTERM),
        (Some(libc::SIGUSR1), -libc::SIGUSR1),
    ] {
        let (t, log) = exec("sleep", ["30"], SubprocessOptions::default()).await;
        match signal {
            None => t.kill().unwrap(),
            Some(libc::SIGTERM) => t.terminate().unwrap(),
            Some(s) => t.send_signal(s).unwrap(),
        }
        assert_eq!(guard("exit", t.wait()).await, code);
        let evs = log.wait_lost().await;
        assert!(evs.contains(&Ev::Exited(Some(code))), "{evs:?}");
        check_grammar(&evs, &[0, 1, 2]);
    }
}

#[tokio::test]
async fn close_kills_a_running_child_and_spares_a_finished_one() {
    let (t, log) = exec("sleep", ["30"], SubprocessOptions::default()).await;
    t.close();
    assert!(t.is_closing());
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
    check_grammar(&evs, &[0, 1, 2]);

    // A child that has exited: close() sends nothing; its code stays 0.
    let (t, log) = exec("true", Vec::<&str>::new(), SubprocessOptions::default()).await;
    assert_eq!(t.wait().await, 0);
    t.close();
    let evs = log.wait_lost().await;
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn exit_waiters_resolve_while_a_grandchild_holds_stdout() {
    // The shell starts a grandchild that inherits stdout, prints its pid
    // and exits.
    let (t, log) = shell("sleep 30 & echo $!", SubprocessOptions::default()).await;
    assert_eq!(guard("the shell's exit", t.wait()).await, 0);
    let evs = log
        .wait_until("pid and exit", |e| {
            e.iter().any(|e| matches!(e, Ev::Exited(_))) && log.output(1).ends_with(b"\n")
        })
        .await;
    assert!(
        !evs.iter().any(|e| matches!(e, Ev::Lost(_))),
        "stdout is still open: {evs:?}"
    );
    // End the grandchild: stdout closes, and the transport finishes.
    let pid: i32 = String::from_utf8(log.output(1))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) with a pid and a signal number touches no memory.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn closing_stdout_gives_the_child_a_broken_pipe() {
    let (t, log) = exec("yes", Vec::<&str>::new(), SubprocessOptions::default()).await;
    log.wait_until("some output", |_| !log.output(1).is_empty())
        .await;
    t.get_pipe_transport(1).unwrap().close();
    assert_eq!(guard("exit", t.wait()).await, -libc::SIGPIPE);
    if let Some(stdin) = t.get_pipe_transport(0) {
        stdin.close();
    }
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn stdin_flow_control_pauses_and_resumes_the_protocol() {
    // The child reads nothing until it gets SIGUSR1, so the pipe fills and
    // the stdin transport must pause; then it reads everything.
    let script = "import signal, sys\n\
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n\
print('ready', flush=True)\n\
signal.sigwait([signal.SIGUSR1])\n\
print(len(sys.stdin.buffer.read()), flush=True)\n";
    let (t, log) = exec(
        "python3",
        ["-c", script],
        SubprocessOptions::default()
            .stdin_write_limits(WriteLimits::new(Some(16 * 1024), None).unwrap()),
    )
    .await;
    log.wait_until("ready", |_| log.output(1) == b"ready\n")
        .await;
    let stdin = t.get_pipe_transport(0).unwrap();
    stdin.write(vec![b'x'; 4 * 1024 * 1024]).unwrap();
    log.wait_until("pause", |e| e.contains(&Ev::Pause)).await;
    t.send_signal(libc::SIGUSR1).unwrap();
    log.wait_until("resume", |e| e.contains(&Ev::Resume)).await;
    stdin.close();
    let evs = log.wait_lost().await;
    assert_eq!(log.output(1), b"ready\n4194304\n");
    assert_eq!(t.get_returncode(), Some(0));
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn a_program_that_does_not_exist_is_an_error_and_the_protocol_hears_nothing() {
    let log = Log::default();
    let l2 = log.clone();
    let err = subprocess_exec(
        move || Rec::new(&l2),
        "/nonexistent/program",
        Vec::<&str>::new(),
        SubprocessOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    assert!(log.events().is_empty());
    let err = subprocess_exec(
        || (),
        "true",
        Vec::<&str>::new(),
        SubprocessOptions::default().stdin(Stdio::Stdout),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn a_python_child_with_environment_and_directory() {
    let log = Log::default();
    let l2 = log.clone();
    let _t = subprocess_exec(
        move || Rec::new(&l2),
        "python3",
        ["-c", "import os,sys; print(os.environ['TT_VALUE'], os.getcwd(), os.getsid(0) == os.getpid())"],
        SubprocessOptions::default()
            .env("TT_VALUE", "forty-two")
            .cwd("/")
            .new_session(true),
    )
    .await
    .unwrap();
    let evs = log.wait_lost().await;
    assert_eq!(
        String::from_utf8(log.output(1)).unwrap(),
        "forty-two / True\n"
    );
    check_grammar(&evs, &[0, 1, 2]);
}

#[test]
fn a_runtime_dropped_under_a_running_child_leaves_no_zombie() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cat` ends when its stdin closes: the pipe transports go with the
    // runtime, so it exits on its own, and someone must still reap it.
    let log = Log::default();
    let l2 = log.clone();
    let t = rt
        .block_on(subprocess_exec(
            move || Rec::new(&l2),
            "cat",
            Vec::<&str>::new(),
            SubprocessOptions::default(),
        ))
        .unwrap();
    assert!(t.get_returncode().is_none());
    drop(rt);
    // The exit watcher went with the runtime; its reaper thread takes over.
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = other.block_on(async { guard("reaped", t.wait()).await });
    assert_eq!(code, 0);
    assert_eq!(t.get_returncode(), Some(0));
    // The protocol still hears the end: each pipe's loss (with the
    // task-dropped error), the exit, then connection_lost.
    let evs = other.block_on(log.wait_lost());
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn a_child_killed_from_outside_is_reaped_and_reported() {
    let (t, log) = exec("sleep", ["30"], SubprocessOptions::default()).await;
    // SAFETY: kill(2) with a pid and a signal number touches no memory.
    assert_eq!(unsafe { libc::kill(t.get_pid() as i32, libc::SIGTERM) }, 0);
    assert_eq!(guard("exit", t.wait()).await, -libc::SIGTERM);
    let evs = log.wait_lost().await;
    check_grammar(&evs, &[0, 1, 2]);
}

#[tokio::test]
async fn a_dropped_subprocess_exec_kills_the_child() {
    use futures::FutureExt;
    use tokio::io::AsyncReadExt;
    // The child's stderr is the write end of our own pipe: when the child
    // is gone, our read end sees the end of file.
    let (w, mut r) = tokio::net::unix::pipe::pipe().unwrap();
    let w = w.into_blocking_fd().unwrap();
    let exec = subprocess_exec(
        || (),
        "cat",
        Vec::<&str>::new(),
        SubprocessOptions::default().stderr(Stdio::Fd(w)),
    );
    // Polled once (the child is spawned, the pipes are connecting), then
    // dropped: the caller gave up.
    assert!(exec.now_or_never().is_none());
    let mut rest = Vec::new();
    guard("the child is gone", r.read_to_end(&mut rest))
        .await
        .unwrap();
}

/// `with_protocol`, asyncio's `get_protocol()`: reads what the protocol
/// collected, while the child runs and after the end; `None` for another
/// type, and from inside the transport's own callbacks (where the protocol
/// is `self`, and the lock is held).
#[tokio::test]
async fn with_protocol_reaches_the_protocol_from_outside_only() {
    struct Collect {
        out: Vec<u8>,
        transport: Option<SubprocessTransport>,
        inside: Arc<Mutex<Option<bool>>>,
        got_data: tokio::sync::mpsc::UnboundedSender<()>,
    }
    impl SubprocessProtocol for Collect {
        fn connection_made(&mut self, t: &SubprocessTransport) {
            self.transport = Some(t.clone());
        }
        fn pipe_data_received(&mut self, _fd: i32, data: Bytes) {
            self.out.extend_from_slice(&data);
            let _ = self.got_data.send(());
        }
        fn process_exited(&mut self) {
            let t = self.transport.take().unwrap();
            let got = t.with_protocol(|p: &mut Collect| p.out.len());
            *self.inside.lock().unwrap() = Some(got.is_some());
        }
    }
    let inside = Arc::new(Mutex::new(None));
    let i2 = inside.clone();
    let (tx, mut got_data) = tokio::sync::mpsc::unbounded_channel();
    let t = subprocess_exec(
        move || Collect {
            out: Vec::new(),
            transport: None,
            inside: i2,
            got_data: tx,
        },
        "sh",
        ["-c", "echo hi; read x; echo bye"],
        SubprocessOptions::default(),
    )
    .await
    .unwrap();
    // While the child runs (it waits for a line): from this task, with the
    // child's task running the callbacks.
    while t.with_protocol(|p: &mut Collect| p.out.len()) != Some(3) {
        guard("the child's first line", got_data.recv()).await;
    }
    assert_eq!(t.with_protocol(|_: &mut Rec| ()), None, "another type");
    t.get_pipe_transport(0).unwrap().write("\n").unwrap();
    guard("closed", t.closed()).await;
    assert_eq!(
        *inside.lock().unwrap(),
        Some(false),
        "from inside its own callback: None, not a deadlock"
    );
    let out = t.with_protocol(|p: &mut Collect| std::mem::take(&mut p.out));
    assert_eq!(out.as_deref(), Some(&b"hi\nbye\n"[..]));
}
