//! Many short-lived children in a row: no zombie and no file descriptor
//! left over (its own test binary, so nothing else spawns or opens fds
//! meanwhile).
#![cfg(all(feature = "process", target_os = "linux"))]

use tokio_transports::{SubprocessOptions, subprocess_exec};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Whether this process has any child left, zombie or not.
fn has_children() -> bool {
    // SAFETY: a zeroed `siginfo_t` is a valid value; `waitid` writes into
    // it and, with WNOWAIT, reaps nothing.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `info` is valid and writable for the call.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // -1 with ECHILD: no children at all.
    !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_lived_children_leave_nothing_behind() {
    // Warm up (the runtime's own fds, the signal driver).
    let t = subprocess_exec(
        || (),
        "true",
        Vec::<&str>::new(),
        SubprocessOptions::default(),
    )
    .await
    .unwrap();
    t.closed().await;
    let baseline = open_fds();
    let count = if std::env::var_os("TOKIO_TRANSPORTS_STRESS").is_some() {
        1000
    } else {
        300
    };
    for i in 0..count {
        let t = subprocess_exec(
            || (),
            "true",
            Vec::<&str>::new(),
            SubprocessOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(t.wait().await, 0, "child {i}");
        tokio::time::timeout(std::time::Duration::from_secs(10), t.closed())
            .await
            .unwrap_or_else(|_| panic!("child {i}: connection_lost never came"));
        // Once `closed()` resolves, every fd of the child's (its pipes, its
        // pidfd and the watcher's duplicate) is closed, even while the
        // transport is still held.
        let now = open_fds();
        assert!(
            now <= baseline,
            "child {i}: fds left open: {now} > {baseline}"
        );
    }
    assert!(!has_children(), "a child is left (a zombie?)");
    // At most the baseline: a leak would show one or more per child.
    let now = open_fds();
    assert!(
        now <= baseline,
        "file descriptors left over: {now} > {baseline}"
    );
}
