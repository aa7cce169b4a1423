//! Pipe throughput benchmark: a relay from one pipe to another, this crate's
//! (`connect_read_pipe` → a protocol that writes every chunk it receives →
//! `connect_write_pipe`, with flow control: `pause_writing` pauses reading,
//! `resume_writing` resumes it; the `pipe_cat` example's protocols) against
//! a raw tokio relay over `tokio::net::unix::pipe` (`read` into a 128 KiB
//! buffer, then `write_all`), same process, same load, round by round.
//!
//! A feeder thread writes the round's megabytes into the first pipe
//! (blocking writes of 64 KiB); a drain thread reads the second pipe to its
//! end. The relay runs on its own `current_thread` runtime on a dedicated
//! thread (spawned first: `callgrind.out.*-02` with `PIPE_BENCH_ONLY`); its
//! CPU time is read with `getrusage(RUSAGE_THREAD)` on that thread before and
//! after each round. Figures: the relay thread's **user CPU per MB** (and
//! system CPU per MB, and wall-clock MB/s), the median over the rounds; the
//! ratio ours/raw of the user CPU medians (target ≤ 1.10).
//!
//! Mind the noise: a relay's time is almost all `read`/`write` system calls
//! (about 0.7 ms of system time per MB against tens of µs of user time), and
//! Linux splits a thread's time into user and system by sampling the
//! scheduler tick, so the user figures swing by a factor of two and more
//! from run to run for both relays. The user+sys ratio is steadier; the
//! instruction counts below are the figure to compare. Those are not exact
//! either: how the feeder, the relay and the drain interleave decides the
//! size of each read, so a count per MB varies between runs (take the
//! median of several).
//!
//! Instructions per MB with callgrind (deterministic, unlike the tick-sampled
//! user time):
//!
//! ```sh
//! B=$(ls -t target/bench-release/deps/pipe-* | grep -v '\.d$' | head -1)
//! for w in ours raw; do for n in 8 24; do
//!   PIPE_BENCH_ONLY=$w PIPE_BENCH_MB=$n PIPE_BENCH_ROUNDS=1 \
//!     valgrind --tool=callgrind --separate-threads=yes \
//!       --callgrind-out-file=cg.pipe.$w.$n $B > /dev/null 2>&1
//! done; done
//! grep -h '^summary' cg.pipe.*-02     # (Ir(24) - Ir(8)) / 16 per MB
//! ```
//!
//! Environment:
//!
//! * `PIPE_BENCH_QUICK=1`: 3 rounds of 32 MB (default: 12 rounds of 128 MB
//!   per relay).
//! * `PIPE_BENCH_ROUNDS=n`, `PIPE_BENCH_MB=n`: rounds, megabytes per round.
//! * `PIPE_BENCH_ONLY=ours|raw`: run one relay only (for callgrind).
//! * `PIPE_BENCH_VERBOSE=1`: print every round.
//! * `PIPE_BENCH_PIPE_SIZE=n`: ask for pipes of `n` bytes (`F_SETPIPE_SZ`;
//!   default: the system's, 64 KiB). With 1 MiB pipes this crate's relay
//!   pays for fresh read buffers (see docs/performance.md, Pipes).

mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use common::{Cpu, ServerThread, median};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{BaseProtocol, Bytes, Protocol, Transport};

const MB: usize = 1 << 20;

/// A `pipe(2)`: (read end, write end), blocking.
fn pipe_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `pipe2` writes two fds into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    let size = env_usize("PIPE_BENCH_PIPE_SIZE", 0);
    if size > 0 {
        for fd in fds {
            // SAFETY: F_SETPIPE_SZ on our own fd; a failure leaves the default.
            unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int) };
        }
    }
    // SAFETY: both fds are fresh and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

// ---- this crate's relay ------------------------------------------------------

struct Out {
    reader: Arc<OnceLock<Transport>>,
}

impl BaseProtocol for Out {
    fn pause_writing(&mut self) {
        if let Some(r) = self.reader.get() {
            r.pause_reading();
        }
    }
    fn resume_writing(&mut self) {
        if let Some(r) = self.reader.get() {
            r.resume_reading();
        }
    }
}

impl Protocol for Out {}

struct In {
    out: Transport,
}

impl BaseProtocol for In {
    fn connection_made(&mut self, t: &Transport) {
        t.pause_reading(); // until `Out` knows this transport
    }
}

impl Protocol for In {
    fn data_received(&mut self, data: Bytes) {
        let _ = self.out.write(data);
    }
    fn eof_received(&mut self) -> bool {
        self.out.close();
        false
    }
}

async fn relay_ours(rfd: OwnedFd, wfd: OwnedFd) {
    let reader = Arc::new(OnceLock::new());
    let r = reader.clone();
    let out = tokio_transports::connect_write_pipe(move || Out { reader: r }, wfd)
        .await
        .expect("write pipe");
    let o = out.clone();
    let input = tokio_transports::connect_read_pipe(move || In { out: o }, rfd)
        .await
        .expect("read pipe");
    let _ = reader.set(input.clone());
    input.resume_reading();
    out.closed().await;
    input.closed().await;
}

// ---- the raw tokio relay -----------------------------------------------------

async fn relay_raw(rfd: OwnedFd, wfd: OwnedFd) {
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rfd).expect("receiver");
    let mut tx = tokio::net::unix::pipe::Sender::from_owned_fd(wfd).expect("sender");
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = rx.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        tx.write_all(&buf[..n]).await.expect("write");
    }
}

// ---- rounds --------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Ours,
    Raw,
}

struct Round {
    user_us_per_mb: f64,
    sys_us_per_mb: f64,
    mb_per_s: f64,
}

fn round(server: &ServerThread, rt: &tokio::runtime::Runtime, which: Which, mb: usize) -> Round {
    let (r1, w1) = pipe_pair();
    let (r2, w2) = pipe_pair();
    let total = mb * MB;
    let feeder = std::thread::spawn(move || {
        let mut w = std::fs::File::from(w1);
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            w.write_all(&chunk[..n]).expect("feed");
            left -= n;
        }
    });
    let drain = std::thread::spawn(move || {
        let mut r = std::fs::File::from(r2);
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        loop {
            let n = r.read(&mut buf).expect("drain");
            if n == 0 {
                return got;
            }
            got += n;
        }
    });
    let start = Instant::now();
    let (before, after) = rt.block_on(server.run(async move {
        let before = Cpu::this_thread();
        match which {
            Which::Ours => relay_ours(r1, w2).await,
            Which::Raw => relay_raw(r1, w2).await,
        }
        (before, Cpu::this_thread())
    }));
    feeder.join().expect("feeder");
    let got = drain.join().expect("drain");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, total, "{which:?}: bytes relayed");
    Round {
        user_us_per_mb: (after.user_us - before.user_us) / mb as f64,
        sys_us_per_mb: (after.sys_us - before.sys_us) / mb as f64,
        mb_per_s: mb as f64 / secs,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let quick = std::env::var_os("PIPE_BENCH_QUICK").is_some();
    let rounds = env_usize("PIPE_BENCH_ROUNDS", if quick { 3 } else { 12 });
    let mb = env_usize("PIPE_BENCH_MB", if quick { 32 } else { 128 });
    let verbose = std::env::var_os("PIPE_BENCH_VERBOSE").is_some();
    let only = std::env::var("PIPE_BENCH_ONLY").ok();
    let which: Vec<Which> = match only.as_deref() {
        Some("ours") => vec![Which::Ours],
        Some("raw") => vec![Which::Raw],
        _ => vec![Which::Ours, Which::Raw],
    };
    // The relay thread first (callgrind's `-02`), then the client runtime.
    let server = ServerThread::spawn("relay", None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let mut results: Vec<(Which, Vec<Round>)> = which.iter().map(|w| (*w, Vec::new())).collect();
    for i in 0..rounds {
        for (w, list) in results.iter_mut() {
            let r = round(&server, &rt, *w, mb);
            if verbose {
                println!(
                    "round {i} {w:?}: user {:.1} us/MB, sys {:.1} us/MB, {:.0} MB/s",
                    r.user_us_per_mb, r.sys_us_per_mb, r.mb_per_s
                );
            }
            list.push(r);
        }
    }
    println!("pipe relay, {rounds} rounds of {mb} MB (medians):");
    let (mut user, mut total) = (Vec::new(), Vec::new());
    for (w, list) in &results {
        let u = median(list.iter().map(|r| r.user_us_per_mb).collect());
        let s = median(list.iter().map(|r| r.sys_us_per_mb).collect());
        let c = median(
            list.iter()
                .map(|r| r.user_us_per_mb + r.sys_us_per_mb)
                .collect(),
        );
        let t = median(list.iter().map(|r| r.mb_per_s).collect());
        println!(
            "  {w:?}: user {u:.1} us/MB, sys {s:.1} us/MB, user+sys {c:.1} us/MB, {t:.0} MB/s"
        );
        user.push(u);
        total.push(c);
    }
    if user.len() == 2 {
        println!(
            "  ours/raw: user CPU {:.2}x (target <= 1.10; tick-sampled, see the module docs), user+sys {:.2}x",
            user[0] / user[1],
            total[0] / total[1]
        );
    }
}
