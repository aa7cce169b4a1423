//! Child-process streaming benchmark: this crate's `subprocess_exec` against
//! a hand-written `tokio::process::Command` equivalent, same process, same
//! load, round by round.
//!
//! Each round streams `SUBPROCESS_BENCH_MB` MiB (256 by default) through a
//! fresh `cat` and back:
//!
//! * ours: `subprocess_exec(.., "cat", [], SubprocessOptions::default())`
//!   with a [`SubprocessProtocol`] that writes 64 KiB slices of one shared
//!   `Bytes` to stdin (`get_pipe_transport(0)`) while it is not paused
//!   (`pause_writing` / `resume_writing`) and the stdin buffer is at most
//!   its high watermark, refills from `connection_made`, `resume_writing`
//!   and `pipe_data_received`, closes stdin after the last byte and counts
//!   the bytes that come back on stdout; the round ends at `closed()` (the
//!   child exited and every pipe closed) and checks the count and the exit
//!   code.
//! * raw: `tokio::process::Command::new("cat")` with stdin, stdout and
//!   stderr piped (as ours's default); one task writes stdin with
//!   `write_all` of the same 64 KiB buffer and then drops it, one task reads
//!   stderr to its end, and the round's own task reads stdout into a 64 KiB
//!   buffer until end of file, counting, then `wait()`s.
//!
//! The figure that counts is the **user CPU time of the measuring thread
//! per MB**. Each side runs on its own `current_thread` runtime on its own
//! dedicated thread (`sub-ours`, `sub-raw`), where every task of the round
//! runs (the crate's pipe tasks and exit watcher; tokio's child and pipes);
//! `getrusage(RUSAGE_THREAD)` is read *on that thread* before the spawn and
//! after the end of the round. The child (`cat`) is another process and is
//! not counted. Sides alternate round by round; figures are medians over
//! the rounds; the target is ours/raw user CPU per MB at most 1.10.
//!
//! The user/system split of `getrusage` is tick-sampled and the machine is
//! shared, so the user figure is noisy; instruction counts under callgrind
//! are the steady figure (the recipe is printed at the end of every run and
//! in benches/README.md). Every round is bounded
//! (`SUBPROCESS_BENCH_TIMEOUT_SECS`): on a timeout the child is killed and
//! the bench exits with an error.
//!
//! Environment:
//!
//! * `SUBPROCESS_BENCH_MB=n`: MiB per round (default 256).
//! * `SUBPROCESS_BENCH_QUICK=1`: 32 MiB per round (unless `_MB` is set).
//! * `SUBPROCESS_BENCH_ROUNDS=n`: measured rounds per side (default 3).
//! * `SUBPROCESS_BENCH_WARMUP_MB=n`: one warm-up round of `n` MiB per side
//!   before the measured ones (default: 32, or the round size if smaller;
//!   0: none).
//! * `SUBPROCESS_BENCH_CHUNK=n`: bytes per write (default 65536).
//! * `SUBPROCESS_BENCH_ONLY=ours|raw`: run one side only (callgrind: the
//!   measuring thread is then the second thread, `callgrind.out.*-02`).
//! * `SUBPROCESS_BENCH_TIMEOUT_SECS=x`: limit per round (default 60 + 1 s
//!   per MiB).
//! * `SUBPROCESS_BENCH_PIN=1`: pin the measuring threads to CPU 1.
//! * `SUBPROCESS_BENCH_VERBOSE=1`: print every round.

mod common;

use common::{Cpu, ServerThread, median, pin_to_cpu};
use std::process::Stdio as StdStdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{
    SubprocessOptions, SubprocessProtocol, SubprocessTransport, Transport, subprocess_exec,
};

const MIB: u64 = 1024 * 1024;
const TARGET: f64 = 1.10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// One round's job: how much, in what pieces, within what time.
#[derive(Debug, Clone)]
struct Job {
    total: u64,
    chunk: Bytes,
    timeout: Duration,
}

/// What one side reports for one round (on its own thread).
#[derive(Debug, Clone, Copy)]
struct Round {
    user_us: f64,
    sys_us: f64,
    secs: f64,
    mb: f64,
    /// Reads that brought stdout data (ours: `pipe_data_received(1, ..)`
    /// calls; raw: `read` calls that returned bytes).
    reads: u64,
    /// Ours: `pause_writing` calls (raw: 0).
    pauses: u64,
}

// ---------------------------------------------------------------------------
// Ours: subprocess_exec and a SubprocessProtocol.
// ---------------------------------------------------------------------------

/// Writes `total` bytes to the child's stdin with flow control and counts
/// what comes back on stdout.
struct Stream {
    stdin: Option<Transport>,
    chunk: Bytes,
    total: u64,
    sent: u64,
    paused: bool,
    /// The stdin buffer's high watermark: no refill above it.
    high: usize,
    received: Arc<AtomicU64>,
    stderr_bytes: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    pauses: Arc<AtomicU64>,
}

impl Stream {
    /// Write while not paused and the stdin buffer is at most its high
    /// watermark; close stdin after the last byte. Each call writes at most
    /// `total` bytes, so the loop ends.
    fn pump(&mut self) {
        let Some(stdin) = &self.stdin else {
            return;
        };
        while !self.paused && self.sent < self.total && stdin.get_write_buffer_size() <= self.high {
            let n = (self.chunk.len() as u64).min(self.total - self.sent) as usize;
            if stdin.write(self.chunk.slice(..n)).is_err() {
                self.stdin = None;
                return;
            }
            self.sent += n as u64;
        }
        if self.sent >= self.total {
            stdin.close();
            self.stdin = None;
        }
    }
}

impl SubprocessProtocol for Stream {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        self.stdin = transport.get_pipe_transport(0);
        if let Some(t) = &self.stdin {
            self.high = t.get_write_buffer_limits().1;
        }
        self.pump();
    }

    fn pipe_data_received(&mut self, fd: i32, data: Bytes) {
        if fd == 1 {
            self.received
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.pump();
        } else {
            self.stderr_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }

    fn pause_writing(&mut self) {
        self.paused = true;
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    fn resume_writing(&mut self) {
        self.paused = false;
        self.pump();
    }
}

async fn round_ours(job: Job) -> Result<Round, String> {
    let before = Cpu::this_thread();
    let started = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let stderr_bytes = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let pauses = Arc::new(AtomicU64::new(0));
    let (r, e) = (received.clone(), stderr_bytes.clone());
    let (rd, pa) = (reads.clone(), pauses.clone());
    let total = job.total;
    let chunk = job.chunk.clone();
    let t = subprocess_exec(
        move || Stream {
            stdin: None,
            chunk,
            total,
            sent: 0,
            paused: false,
            high: tokio_transports::DEFAULT_HIGH_WATER,
            received: r,
            stderr_bytes: e,
            reads: rd,
            pauses: pa,
        },
        "cat",
        Vec::<&str>::new(),
        SubprocessOptions::default(),
    )
    .await
    .map_err(|e| format!("ours: subprocess_exec(cat): {e}"))?;
    if tokio::time::timeout(job.timeout, t.closed()).await.is_err() {
        t.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), t.closed()).await;
        return Err(format!(
            "ours: no end within {:?} ({} of {} bytes back)",
            job.timeout,
            received.load(Ordering::Relaxed),
            job.total
        ));
    }
    let code = t.wait().await;
    let after = Cpu::this_thread();
    let secs = started.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    if got != job.total || code != 0 {
        return Err(format!(
            "ours: {got} of {} bytes back, exit code {code}, {} bytes on stderr",
            job.total,
            stderr_bytes.load(Ordering::Relaxed)
        ));
    }
    Ok(Round {
        user_us: after.user_us - before.user_us,
        sys_us: after.sys_us - before.sys_us,
        secs,
        mb: job.total as f64 / MIB as f64,
        reads: reads.load(Ordering::Relaxed),
        pauses: pauses.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------
// Raw: tokio::process::Command.
// ---------------------------------------------------------------------------

async fn round_raw(job: Job) -> Result<Round, String> {
    let before = Cpu::this_thread();
    let started = Instant::now();
    let mut child = tokio::process::Command::new("cat")
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .stderr(StdStdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("raw: spawn(cat): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("raw: no stdin")?;
    let mut stdout = child.stdout.take().ok_or("raw: no stdout")?;
    let mut stderr = child.stderr.take().ok_or("raw: no stderr")?;
    let total = job.total;
    let chunk = job.chunk.clone();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while sent < total {
            let n = (chunk.len() as u64).min(total - sent) as usize;
            stdin.write_all(&chunk[..n]).await?;
            sent += n as u64;
        }
        drop(stdin);
        Ok::<u64, std::io::Error>(sent)
    });
    let errs = tokio::spawn(async move {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).await.map(|_| buf.len())
    });
    // The reading runs in a task of its own and the time limit is on its
    // join handle, so that the limit's timer is not polled on every read.
    let work = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        let mut reads = 0u64;
        loop {
            let n = stdout.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
            reads += 1;
        }
        let code = child.wait().await?;
        Ok::<(u64, u64, Option<i32>), std::io::Error>((got, reads, code.code()))
    });
    let abort = work.abort_handle();
    let (got, reads, code) = match tokio::time::timeout(job.timeout, work).await {
        Ok(r) => r
            .map_err(|e| format!("raw: reader: {e}"))?
            .map_err(|e| format!("raw: {e}"))?,
        Err(_) => {
            // Dropping the aborted task drops the child: kill_on_drop.
            abort.abort();
            writer.abort();
            errs.abort();
            return Err(format!("raw: no end within {:?}", job.timeout));
        }
    };
    let sent = writer
        .await
        .map_err(|e| format!("raw: writer: {e}"))?
        .map_err(|e| format!("raw: write: {e}"))?;
    let err_bytes = errs
        .await
        .map_err(|e| format!("raw: stderr: {e}"))?
        .map_err(|e| format!("raw: stderr: {e}"))?;
    let after = Cpu::this_thread();
    let secs = started.elapsed().as_secs_f64();
    if got != total || sent != total || code != Some(0) {
        return Err(format!(
            "raw: {got} of {total} bytes back ({sent} sent), exit {code:?}, {err_bytes} bytes on stderr"
        ));
    }
    Ok(Round {
        user_us: after.user_us - before.user_us,
        sys_us: after.sys_us - before.sys_us,
        secs,
        mb: total as f64 / MIB as f64,
        reads,
        pauses: 0,
    })
}

// ---------------------------------------------------------------------------
// Measurement.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Ours,
    Raw,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Ours => "ours",
            Which::Raw => "raw",
        }
    }
}

struct Side {
    which: Which,
    thread: ServerThread,
}

impl Side {
    fn start(which: Which, pin: bool) -> Side {
        let name = match which {
            Which::Ours => "sub-ours",
            Which::Raw => "sub-raw",
        };
        Side {
            which,
            thread: ServerThread::spawn(name, pin.then_some(1)),
        }
    }

    async fn round(&self, job: Job) -> Result<Round, String> {
        match self.which {
            Which::Ours => self.thread.run(round_ours(job)).await,
            Which::Raw => self.thread.run(round_raw(job)).await,
        }
    }
}

fn print_knobs(mb: u64) {
    println!(
        "\nknobs: SUBPROCESS_BENCH_MB={mb} SUBPROCESS_BENCH_QUICK=1 (32 MiB) \
         SUBPROCESS_BENCH_ROUNDS=n SUBPROCESS_BENCH_WARMUP_MB=n (0: none) \
         SUBPROCESS_BENCH_CHUNK=bytes SUBPROCESS_BENCH_ONLY=ours|raw \
         SUBPROCESS_BENCH_TIMEOUT_SECS=x SUBPROCESS_BENCH_PIN=1 SUBPROCESS_BENCH_VERBOSE=1"
    );
    println!(
        "callgrind (instructions per MB; the measuring thread is callgrind.out.*-02 with _ONLY):\n  \
         for w in ours raw; do for n in 32 160; do SUBPROCESS_BENCH_ONLY=$w SUBPROCESS_BENCH_MB=$n \
         SUBPROCESS_BENCH_ROUNDS=1 SUBPROCESS_BENCH_WARMUP_MB=0 valgrind --tool=callgrind \
         --separate-threads=yes --callgrind-out-file=cg.$w.$n $BIN; done; done\n  \
         grep -h '^summary' cg.*-02   # (Ir(160) - Ir(32)) / 128 per MB; repeat, medians (valgrind 3.19 lacks pidfd_open: see benches/README.md)"
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = env_flag("SUBPROCESS_BENCH_QUICK");
    let mb: u64 = env_or("SUBPROCESS_BENCH_MB", if quick { 32 } else { 256 }).max(1);
    let rounds: usize = env_or("SUBPROCESS_BENCH_ROUNDS", 3usize).max(1);
    let warmup_mb: u64 = env_or("SUBPROCESS_BENCH_WARMUP_MB", mb.min(32));
    let chunk_len: usize = env_or("SUBPROCESS_BENCH_CHUNK", 64 * 1024usize).max(1);
    let timeout_secs: f64 = env_or("SUBPROCESS_BENCH_TIMEOUT_SECS", 60.0 + mb as f64);
    let verbose = env_flag("SUBPROCESS_BENCH_VERBOSE");
    let pin = env_flag("SUBPROCESS_BENCH_PIN");
    let only = match std::env::var("SUBPROCESS_BENCH_ONLY").as_deref() {
        Ok("ours") => Some(Which::Ours),
        Ok("raw") => Some(Which::Raw),
        Ok("") | Err(_) => None,
        Ok(other) => {
            eprintln!("SUBPROCESS_BENCH_ONLY must be ours or raw, not {other:?}");
            std::process::exit(2);
        }
    };
    if pin {
        pin_to_cpu(0);
    }

    let chunk = Bytes::from(vec![0x5au8; chunk_len]);
    let job = |mib: u64| Job {
        total: mib * MIB,
        chunk: chunk.clone(),
        timeout: Duration::from_secs_f64(timeout_secs.max(1.0)),
    };
    let sides: Vec<Side> = [Which::Ours, Which::Raw]
        .into_iter()
        .filter(|w| only.is_none_or(|o| o == *w))
        .map(|w| Side::start(w, pin))
        .collect();

    println!(
        "subprocess: {mb} MiB through cat and back per round, in {chunk_len} B writes; \
         ours (subprocess_exec + SubprocessProtocol) vs raw (tokio::process::Command, \
         write_all + read); {rounds} rounds per side{}, medians; user CPU of the measuring \
         thread (getrusage RUSAGE_THREAD on it) per MB",
        if warmup_mb > 0 {
            format!(" after a {warmup_mb} MiB warm-up")
        } else {
            String::new()
        }
    );

    let fail = |e: String| -> ! {
        eprintln!("error: {e}");
        std::process::exit(1);
    };
    if warmup_mb > 0 {
        for s in &sides {
            if let Err(e) = s.round(job(warmup_mb)).await {
                fail(e);
            }
        }
    }
    let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        // Alternate which side goes first.
        let order: Vec<&Side> = if r % 2 == 0 {
            sides.iter().collect()
        } else {
            sides.iter().rev().collect()
        };
        for s in order {
            let round = s.round(job(mb)).await.unwrap_or_else(|e| fail(e));
            if verbose {
                println!(
                    "  round {r} {:<4}: user {:.0} us, sys {:.0} us, {:.3} s, {:.0} MB/s, \
                     {} reads, {} pauses",
                    s.which.name(),
                    round.user_us,
                    round.sys_us,
                    round.secs,
                    round.mb / round.secs,
                    round.reads,
                    round.pauses
                );
            }
            results[(s.which == Which::Raw) as usize].push(round);
        }
    }

    println!(
        "  {:<5} {:>8} {:>11} {:>10} {:>8} {:>9} {:>9}",
        "side", "MB/s", "user us/MB", "sys us/MB", "user ms", "reads/MB", "pauses/MB"
    );
    let mut med = [f64::NAN; 2];
    for (i, name) in ["ours", "raw"].iter().enumerate() {
        let rs = &results[i];
        if rs.is_empty() {
            continue;
        }
        med[i] = median(rs.iter().map(|r| r.user_us / r.mb).collect());
        println!(
            "  {:<5} {:>8.0} {:>11.2} {:>10.2} {:>8.1} {:>9.2} {:>9.2}",
            name,
            median(rs.iter().map(|r| r.mb / r.secs).collect()),
            med[i],
            median(rs.iter().map(|r| r.sys_us / r.mb).collect()),
            median(rs.iter().map(|r| r.user_us / 1000.0).collect()),
            median(rs.iter().map(|r| r.reads as f64 / r.mb).collect()),
            median(rs.iter().map(|r| r.pauses as f64 / r.mb).collect()),
        );
    }
    if only.is_none() {
        if med[1] > 0.0 {
            let ratio = med[0] / med[1];
            let ok = ratio <= TARGET;
            println!(
                "  ours/raw user CPU per MB: {ratio:.3} (medians); target <= {TARGET:.2}: {}",
                if ok { "met" } else { "MISSED" }
            );
        } else {
            // A zero median means fewer than one scheduler tick of user time
            // per round: no ratio can be read from it.
            println!(
                "  ours/raw user CPU per MB: n/a (raw's median user time is 0: under one \
                 scheduler tick per round; use more MiB or callgrind); target <= {TARGET:.2}: \
                 MISSED (unmeasured)"
            );
        }
    } else {
        println!("  one side only (SUBPROCESS_BENCH_ONLY): no ratio");
    }
    print_knobs(mb);
}
