//! Writes to a child's stdin made from its stdout callbacks. The child's
//! pipes run on one task, and such a write goes straight into stdin's queue
//! unless commands from elsewhere wait in stdin's channel: whichever way it
//! goes, the order of the writes is kept, a paused or busy stdin still
//! queues it, and one made after `close()` is dropped and counted.
#![cfg(all(feature = "process", target_os = "linux"))]

mod common;

use std::sync::{Arc, Mutex};

use common::guard;
use tokio::sync::Notify;
use tokio_transports::{
    Bytes, SubprocessOptions, SubprocessProtocol, SubprocessTransport, Transport, WriteLimits,
    subprocess_exec,
};

/// What the protocol saw, and a wake-up for the test on every change.
#[derive(Default)]
struct Seen {
    out: Vec<u8>,
    /// `pause_writing` had come when stdout said "again".
    paused_at_again: bool,
    /// stdin's buffer size just before and just after the write made there.
    sizes_at_again: (usize, usize),
    /// stdin's dropped-write count after a write made after `close()`.
    dropped_after_close: usize,
    lost: bool,
}

#[derive(Clone, Default)]
struct Shared(Arc<(Mutex<Seen>, Notify)>);

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.0.0.lock().unwrap());
        self.0.1.notify_waiters();
    }

    async fn until_lost(&self) {
        guard("connection_lost", async {
            loop {
                let notified = self.0.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.0.0.lock().unwrap().lost {
                    return;
                }
                notified.await;
            }
        })
        .await
    }
}

/// Drives stdin from stdout's callbacks, step by step (see each test).
struct Steps {
    seen: Shared,
    t: Option<SubprocessTransport>,
    stdin: Option<Transport>,
    step: usize,
    paused: bool,
    big: Bytes,
}

impl Steps {
    fn new(seen: &Shared, big: Bytes) -> Steps {
        Steps {
            seen: seen.clone(),
            t: None,
            stdin: None,
            step: 0,
            paused: false,
            big,
        }
    }
}

impl SubprocessProtocol for Steps {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        self.t = Some(t.clone());
        self.stdin = t.get_pipe_transport(0);
    }

    fn pipe_data_received(&mut self, fd: i32, data: Bytes) {
        assert_eq!(fd, 1);
        let mut out = Vec::new();
        self.seen.update(|s| {
            s.out.extend_from_slice(&data);
            out = s.out.clone();
        });
        let stdin = self.stdin.as_ref().unwrap();
        match self.step {
            // The order test (`cat`).
            0 if out == b"go\n" => {
                // `writelines` from outside stdin's callbacks takes its
                // channel; the write after it must follow it there.
                stdin.writelines([&b"a"[..]]).unwrap();
                stdin.write(&b"b"[..]).unwrap();
                self.step = 1;
            }
            // Both back (in whatever order: the test checks it).
            1 if out.len() == 5 => {
                // Nothing waits in the channel: straight into the queue;
                // then the channel again, and a write that must follow it.
                stdin.write(&b"c"[..]).unwrap();
                stdin.writelines([&b"d"[..]]).unwrap();
                stdin.write(&b"e"[..]).unwrap();
                stdin.close();
                self.step = 2;
            }
            // The paused test (python).
            10 if out == b"ready\n" => {
                // More than the pipe holds: stdin pauses.
                stdin.write(self.big.clone()).unwrap();
                self.step = 11;
            }
            11 if out == b"ready\nagain\n" => {
                let before = stdin.get_write_buffer_size();
                stdin.write(&b"more"[..]).unwrap();
                let after = stdin.get_write_buffer_size();
                stdin.close();
                stdin.write(&b"late"[..]).unwrap();
                let dropped = stdin.dropped_writes();
                let paused = self.paused;
                self.seen.update(|s| {
                    s.paused_at_again = paused;
                    s.sizes_at_again = (before, after);
                    s.dropped_after_close = dropped;
                });
                self.step = 12;
            }
            _ => {}
        }
    }

    fn pause_writing(&mut self) {
        self.paused = true;
        if self.step == 11 {
            // stdin is full and paused: let the child go on.
            let _ = self.t.as_ref().unwrap().send_signal(libc::SIGUSR1);
        }
    }

    fn resume_writing(&mut self) {
        self.paused = false;
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        self.seen.update(|s| s.lost = true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_writes_from_stdout_callbacks_keep_their_order_with_the_channel() {
    let seen = Shared::default();
    let s2 = seen.clone();
    let t = subprocess_exec(
        move || Steps::new(&s2, Bytes::new()),
        "cat",
        Vec::<&str>::new(),
        SubprocessOptions::default(),
    )
    .await
    .unwrap();
    // From the test's task: through stdin's channel.
    t.get_pipe_transport(0).unwrap().write("go\n").unwrap();
    seen.until_lost().await;
    assert_eq!(seen.0.0.lock().unwrap().out, b"go\nabcde");
    assert_eq!(t.get_returncode(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdin_write_from_stdout_while_stdin_is_paused_and_full_queues_behind_it() {
    // The child says "ready", then reads nothing until SIGUSR1 (sent from
    // `pause_writing`), then says "again" and echoes stdin to its end.
    let script = "import signal, sys\n\
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n\
print('ready', flush=True)\n\
signal.sigwait([signal.SIGUSR1])\n\
print('again', flush=True)\n\
sys.stdout.buffer.write(sys.stdin.buffer.read())\n\
sys.stdout.flush()\n";
    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    let seen = Shared::default();
    let (s2, b2) = (seen.clone(), big.clone());
    let t = subprocess_exec(
        move || {
            let mut p = Steps::new(&s2, b2);
            p.step = 10;
            p
        },
        "python3",
        ["-c", script],
        SubprocessOptions::default()
            .stdin_write_limits(WriteLimits::new(Some(16 * 1024), None).unwrap()),
    )
    .await
    .unwrap();
    seen.until_lost().await;
    let s = seen.0.0.lock().unwrap();
    assert!(s.paused_at_again, "stdin was paused when stdout said again");
    let (before, after) = s.sizes_at_again;
    assert!(before > 16 * 1024, "stdin still had data queued: {before}");
    assert_eq!(after, before + 4, "the write is counted at once");
    assert_eq!(
        s.dropped_after_close, 1,
        "the write after close() is dropped"
    );
    let mut want = b"ready\nagain\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"more");
    assert!(
        s.out == want,
        "{} bytes back, {} expected",
        s.out.len(),
        want.len()
    );
    assert_eq!(t.get_returncode(), Some(0));
}
