//! A recording `SubprocessProtocol` shared by the subprocess tests
//! (tests/subprocess.rs, tests/cpython_subprocess.rs): the [`Ev`] events it
//! records into a [`Log`], spawn helpers ([`exec`], [`python`], [`shell`])
//! and the event grammar every test checks ([`check_grammar`]).
//!
//! Each user declares `mod subprocess_support;` and has a `guard` at its root
//! (the timeout for a single wait, its own choice: `common::guard` in
//! subprocess.rs, a longer one in cpython_subprocess.rs); [`Log::wait_until`]
//! uses it.
#![cfg(all(feature = "process", target_os = "linux"))]
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_transports::{
    Bytes, Stdio, SubprocessOptions, SubprocessProtocol, SubprocessTransport, subprocess_exec,
    subprocess_shell,
};

use crate::guard;

/// One recorded subprocess callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<io::ErrorKind>),
    /// With `get_returncode()` as `process_exited` saw it.
    Exited(Option<i32>),
    Pause,
    Resume,
    Lost(Option<io::ErrorKind>),
}

#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<Vec<Ev>>, Notify)>);

impl Log {
    pub fn push(&self, ev: Ev) {
        self.0.0.lock().unwrap().push(ev);
        self.0.1.notify_waiters();
    }

    pub fn events(&self) -> Vec<Ev> {
        self.0.0.lock().unwrap().clone()
    }

    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Ev]) -> bool) -> Vec<Ev> {
        guard(what, async {
            loop {
                let notified = self.0.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let evs = self.events();
                if pred(&evs) {
                    return evs;
                }
                notified.await;
            }
        })
        .await
    }

    /// asyncio's `proto.completed`: `connection_lost` has run.
    pub async fn wait_lost(&self) -> Vec<Ev> {
        self.wait_until("connection_lost", |e| {
            e.iter().any(|e| matches!(e, Ev::Lost(_)))
        })
        .await
    }

    pub async fn wait_output(&self, fd: i32, want: &[u8]) {
        let what = format!("fd {fd}: {:?}", String::from_utf8_lossy(want));
        self.wait_until(&what, |e| output_of(e, fd) == want).await;
    }

    pub fn output(&self, fd: i32) -> Vec<u8> {
        output_of(&self.events(), fd)
    }
}

/// What the child wrote on `fd`, in order.
pub fn output_of(evs: &[Ev], fd: i32) -> Vec<u8> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Data(f, d) if *f == fd => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The `pipe_connection_lost` calls for `fd`, by error kind.
pub fn pipe_lost(evs: &[Ev], fd: i32) -> Vec<Option<io::ErrorKind>> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::PipeLost(f, k) if *f == fd => Some(*k),
            _ => None,
        })
        .collect()
}

/// Records every callback (asyncio's `MySubprocessProtocol` of
/// test_events.py, which also asserts its state in each callback).
pub struct Rec {
    log: Log,
    t: Option<SubprocessTransport>,
}

impl Rec {
    pub fn new(log: &Log) -> Rec {
        Rec {
            log: log.clone(),
            t: None,
        }
    }
}

impl SubprocessProtocol for Rec {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        self.t = Some(t.clone());
        self.log.push(Ev::Made);
    }
    fn pipe_data_received(&mut self, fd: i32, data: Bytes) {
        self.log.push(Ev::Data(fd, data.to_vec()));
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        self.log.push(Ev::PipeLost(fd, exc.map(|e| e.kind())));
    }
    fn process_exited(&mut self) {
        let code = self.t.as_ref().and_then(|t| t.get_returncode());
        self.log.push(Ev::Exited(code));
    }
    fn pause_writing(&mut self) {
        self.log.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.log.push(Ev::Resume);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.log.push(Ev::Lost(exc.map(|e| e.kind())));
    }
}

/// Run `program` with a recording protocol.
pub async fn exec<A: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = A>,
    options: SubprocessOptions,
) -> (SubprocessTransport, Log) {
    let log = Log::default();
    let l2 = log.clone();
    let t = subprocess_exec(move || Rec::new(&l2), program, args, options)
        .await
        .expect("subprocess_exec");
    (t, log)
}

/// `python3 -c script`.
pub async fn python(script: &str, options: SubprocessOptions) -> (SubprocessTransport, Log) {
    exec("python3", ["-c", script], options).await
}

/// Run `command` through the shell with a recording protocol.
pub async fn shell(command: &str, options: SubprocessOptions) -> (SubprocessTransport, Log) {
    let log = Log::default();
    let l2 = log.clone();
    let t = subprocess_shell(move || Rec::new(&l2), command, options)
        .await
        .expect("subprocess_shell");
    (t, log)
}

/// No pipe at all (asyncio's `stdin=None, stdout=None, stderr=None`).
pub fn no_pipes() -> SubprocessOptions {
    SubprocessOptions::default()
        .stdin(Stdio::Inherit)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit)
}

/// Only stdout is a pipe (asyncio's default `stdin`/`stderr` of `None`
/// with `stdout=PIPE`).
pub fn stdout_only() -> SubprocessOptions {
    SubprocessOptions::default()
        .stdin(Stdio::Inherit)
        .stderr(Stdio::Inherit)
}

/// The contract every test checks at the end: `connection_made` first and
/// once, `connection_lost(None)` last and once, `process_exited` once with
/// the return code set, and for each pipe in `pipes` its data before its one
/// `pipe_connection_lost`; no event for a stream that is not a pipe.
pub fn check_grammar(evs: &[Ev], pipes: &[i32]) {
    assert_eq!(evs.first(), Some(&Ev::Made), "{evs:?}");
    assert_eq!(evs.iter().filter(|e| **e == Ev::Made).count(), 1, "{evs:?}");
    assert_eq!(evs.last(), Some(&Ev::Lost(None)), "{evs:?}");
    assert_eq!(
        evs.iter().filter(|e| matches!(e, Ev::Lost(_))).count(),
        1,
        "{evs:?}"
    );
    let exited: Vec<_> = evs.iter().filter(|e| matches!(e, Ev::Exited(_))).collect();
    assert_eq!(exited.len(), 1, "{evs:?}");
    assert!(
        !matches!(exited[0], Ev::Exited(None)),
        "returncode unset in process_exited: {evs:?}"
    );
    for fd in 0..3 {
        let lost: Vec<usize> = evs
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Ev::PipeLost(f, _) if *f == fd))
            .map(|(i, _)| i)
            .collect();
        let data_at = evs
            .iter()
            .rposition(|e| matches!(e, Ev::Data(f, _) if *f == fd));
        if pipes.contains(&fd) {
            assert_eq!(lost.len(), 1, "fd {fd}: {evs:?}");
            if let Some(i) = data_at {
                assert!(i < lost[0], "fd {fd}: data after its loss: {evs:?}");
            }
        } else {
            assert!(lost.is_empty(), "fd {fd} is not a pipe: {evs:?}");
            assert!(data_at.is_none(), "fd {fd} is not a pipe: {evs:?}");
        }
    }
}
