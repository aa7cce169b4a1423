//! Echo benchmark: this crate's echo server against a hand-written raw tokio
//! echo server, same process, same load, one after the other.
//!
//! The figure that counts is the **server's user-space CPU time per
//! operation**. Each server runs on its own `current_thread` runtime on its
//! own dedicated `std::thread`; its CPU time is read with
//! `getrusage(RUSAGE_THREAD)` executed *on that thread* (a task spawned on
//! the server runtime), before and after every measured round. Clients run
//! on the main thread's own runtime. Servers alternate round by round and
//! every figure is the median over the rounds.
//!
//! Scenarios (`cargo bench --bench echo`):
//!
//! * `rr-64-x1`, `rr-1k-x1`, `rr-64-x64`, `rr-1k-x64`: request/response. Each
//!   connection sends a message, waits for its whole echo, repeats.
//! * `bulk-64k`: one connection; the client writes 64 KiB chunks back to back
//!   and reads the echo concurrently.
//! * `churn`: connect, one 64 B echo, close (4 clients in parallel).
//! * `mem`: heap bytes the server thread holds per idle connection that has
//!   already echoed 1 KiB (500 connections).
//!
//! Environment:
//!
//! * `ECHO_BENCH_QUICK=1`: a short run (3 rounds of 0.25 s; the default is
//!   6 rounds of 1.2 s, about two minutes in all).
//! * `ECHO_BENCH_ROUNDS=n`, `ECHO_BENCH_SECS=x`: rounds and seconds per round.
//! * `ECHO_BENCH_WARMUP_SECS=x`: warm-up per scenario and server (0: none).
//! * `ECHO_BENCH_OPS=n`: at most `n` operations per connection per round
//!   (fixed-count runs, e.g. under callgrind; bulk: `n` chunks).
//! * `ECHO_BENCH_ONLY=ours|raw`: run one server only (profiling).
//! * `ECHO_BENCH_FILTER=a,b`: only scenarios whose id contains one of these
//!   (a first command-line argument that does not start with `-` works too).
//! * `ECHO_BENCH_PIN=1`: pin the server threads to CPU 1 and the client to
//!   CPU 0 (off by default: on a VM the cross-CPU wake-ups it forces cost
//!   more than they steady).
//! * `ECHO_BENCH_VERBOSE=1`: print every round.
//! * `ECHO_BENCH_MEM_CONNS=n`: connections in the memory scenario (500).
//!
//! `docs/performance.md` has the results, the method in full, and how to
//! count instructions per operation with callgrind (the user/system split of
//! `getrusage` is tick-sampled, so per-round user figures are noisy).

mod common;

use common::{ServerThread, median, pin_to_cpu};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_transports::{BaseProtocol, Protocol, Server, ServerOptions, Transport};

// ---------------------------------------------------------------------------
// Counting allocator: per-thread allocation count and net live bytes.
// ---------------------------------------------------------------------------

/// Wraps the system allocator; counts, per thread, how many allocations the
/// thread made and how many bytes it allocated minus freed. Every server's
/// work happens on its own thread, so that thread's counters are the
/// server's.
struct Counting;

thread_local! {
    static T_ALLOCS: Cell<u64> = const { Cell::new(0) };
    static T_NET: Cell<i64> = const { Cell::new(0) };
}

#[inline]
fn note(delta: i64, allocs: u64) {
    let _ = T_NET.try_with(|c| c.set(c.get() + delta));
    if allocs != 0 {
        let _ = T_ALLOCS.try_with(|c| c.set(c.get() + allocs));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64, 1);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one thread has consumed so far.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    user_us: f64,
    sys_us: f64,
    allocs: u64,
    net_bytes: i64,
}

impl Sample {
    /// Read the calling thread's counters.
    fn this_thread() -> Sample {
        // SAFETY: getrusage only writes the struct we hand it.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            ru
        };
        let us = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
        Sample {
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            allocs: T_ALLOCS.with(Cell::get),
            net_bytes: T_NET.with(Cell::get),
        }
    }

    fn since(self, before: Sample) -> Sample {
        Sample {
            user_us: self.user_us - before.user_us,
            sys_us: self.sys_us - before.sys_us,
            allocs: self.allocs - before.allocs,
            net_bytes: self.net_bytes - before.net_bytes,
        }
    }
}

/// The server thread's counters, read on the server thread.
async fn sample(thread: &ServerThread) -> Sample {
    thread.run(async { Sample::this_thread() }).await
}

// ---------------------------------------------------------------------------
// The two echo servers.
// ---------------------------------------------------------------------------

/// Our echo protocol: writes every received chunk back (zero copy), and
/// stops reading while the peer is not taking the echo (asyncio's flow
/// control: pause_writing → pause_reading), so bulk memory stays bounded.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl BaseProtocol for Echo {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            let _ = t.write(data);
        }
    }
}

/// Start our server on the current (server-thread) runtime.
async fn start_ours() -> (Server, u16) {
    let options = ServerOptions::default()
        // tokio's TcpListener::bind uses 1024 too.
        .backlog(1024);
    let server = tokio_transports::create_server(Echo::default, "127.0.0.1", 0, options)
        .await
        .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// The raw tokio echo server: a task per connection, a heap buffer of
/// `buf_size` bytes allocated per connection, `read_buf` into it (no
/// zeroing), `write_all` back. `TCP_NODELAY` is set, as ours does.
async fn start_raw(buf_size: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::with_capacity(buf_size);
                loop {
                    buf.clear();
                    match sock.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if sock.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

// ---------------------------------------------------------------------------
// Configuration.
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

struct Config {
    quick: bool,
    rounds: usize,
    dur: Duration,
    warmup: Duration,
    max_ops: u64,
    only: Option<Which>,
    filter: Vec<String>,
    pin: bool,
    mem_conns: usize,
    mem_rounds: usize,
    verbose: bool,
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("ECHO_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let rounds = env_f64("ECHO_BENCH_ROUNDS")
            .map_or(if quick { 3 } else { 6 }, |v| (v as usize).clamp(1, 50));
        let secs = env_f64("ECHO_BENCH_SECS")
            .unwrap_or(if quick { 0.25 } else { 1.2 })
            .clamp(0.01, 120.0);
        let warmup = env_f64("ECHO_BENCH_WARMUP_SECS")
            .unwrap_or(if quick { 0.05 } else { 0.2 })
            .clamp(0.0, 10.0);
        let max_ops = env_f64("ECHO_BENCH_OPS").map_or(50_000_000, |v| (v as u64).max(1));
        let only = match std::env::var("ECHO_BENCH_ONLY").as_deref() {
            Ok("ours") => Some(Which::Ours),
            Ok("raw") => Some(Which::Raw),
            _ => None,
        };
        let mut filter: Vec<String> = std::env::var("ECHO_BENCH_FILTER")
            .map(|f| {
                f.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(arg) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
            filter.push(arg);
        }
        let pin = std::env::var("ECHO_BENCH_PIN").is_ok_and(|v| v == "1")
            && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        let mem_conns =
            env_f64("ECHO_BENCH_MEM_CONNS").map_or(500, |v| (v as usize).clamp(1, 5000));
        Config {
            quick,
            rounds,
            dur: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64(warmup),
            max_ops,
            only,
            filter,
            pin,
            mem_conns,
            mem_rounds: if quick { 1 } else { 3 },
            verbose: std::env::var("ECHO_BENCH_VERBOSE").is_ok_and(|v| v != "0"),
        }
    }

    fn wants(&self, id: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| id.contains(f.as_str()))
    }

    fn runs(&self, which: Which) -> bool {
        self.only.is_none_or(|o| o == which)
    }
}

// ---------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Request/response: `conns` connections, messages of `size` bytes.
    Rr { size: usize, conns: usize },
    /// Streaming `chunk`-byte writes over one connection.
    Bulk { chunk: usize },
    /// Connect, one echo of `size` bytes, close; `par` clients in parallel.
    Churn { size: usize, par: usize },
}

struct Scenario {
    id: &'static str,
    title: &'static str,
    kind: Kind,
    /// Target for the user-CPU ratio ours/raw.
    target: f64,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "rr-64-x1",
        title: "req/resp 64 B, 1 conn",
        kind: Kind::Rr { size: 64, conns: 1 },
        target: 1.15,
    },
    Scenario {
        id: "rr-1k-x1",
        title: "req/resp 1 KiB, 1 conn",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
        },
        target: 1.15,
    },
    Scenario {
        id: "rr-64-x64",
        title: "req/resp 64 B, 64 conns",
        kind: Kind::Rr {
            size: 64,
            conns: 64,
        },
        target: 1.15,
    },
    Scenario {
        id: "rr-1k-x64",
        title: "req/resp 1 KiB, 64 conns",
        kind: Kind::Rr {
            size: 1024,
            conns: 64,
        },
        target: 1.15,
    },
    Scenario {
        id: "bulk-64k",
        title: "bulk 64 KiB writes, 1 conn",
        kind: Kind::Bulk { chunk: 64 * 1024 },
        target: 1.2,
    },
    Scenario {
        id: "churn",
        title: "churn: connect+echo 64 B+close, 4 clients",
        kind: Kind::Churn { size: 64, par: 4 },
        target: 1.3,
    },
];

/// What one measured round produced.
#[derive(Debug, Default)]
struct Round {
    /// Requests, connections, or (bulk) bytes echoed.
    ops: u64,
    elapsed: Duration,
    cpu: Sample,
    /// Per-operation latencies in ns (request/response and churn).
    lat_ns: Vec<u64>,
}

/// Figures in the scenario's units (per round, or the medians).
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// ops/s, or MB/s for bulk.
    rate: f64,
    p99_us: f64,
    /// Server user CPU per op, or per MB for bulk.
    user_us: f64,
    /// Server user + system CPU per op (or MB).
    total_us: f64,
    allocs: f64,
}

impl Round {
    /// Operations in the scenario's unit (MB for bulk).
    fn units(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Bulk { .. } => self.ops as f64 / 1e6,
            _ => self.ops as f64,
        }
        .max(1e-9)
    }

    fn figures(&self, kind: Kind) -> Figures {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let units = self.units(kind);
        let p99_us = if self.lat_ns.is_empty() {
            f64::NAN
        } else {
            let mut v = self.lat_ns.clone();
            v.sort_unstable();
            let i = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1e3
        };
        Figures {
            rate: units / secs,
            p99_us,
            user_us: self.cpu.user_us / units,
            total_us: (self.cpu.user_us + self.cpu.sys_us) / units,
            allocs: self.cpu.allocs as f64 / units,
        }
    }
}

/// One server's result for one scenario.
#[derive(Debug, Clone, Copy)]
struct Summary {
    /// Medians over the rounds.
    med: Figures,
    /// User CPU per unit over all rounds together (total user time / total
    /// units): the user/system split is tick-sampled, so pooling the rounds
    /// gives the steadiest estimate.
    pooled_user_us: f64,
}

fn summarize(rounds: &[Round], kind: Kind) -> Summary {
    let figs: Vec<Figures> = rounds.iter().map(|r| r.figures(kind)).collect();
    let med = Figures {
        rate: median(figs.iter().map(|f| f.rate).collect()),
        p99_us: median(figs.iter().map(|f| f.p99_us).collect()),
        user_us: median(figs.iter().map(|f| f.user_us).collect()),
        total_us: median(figs.iter().map(|f| f.total_us).collect()),
        allocs: median(figs.iter().map(|f| f.allocs).collect()),
    };
    let user: f64 = rounds.iter().map(|r| r.cpu.user_us).sum();
    let units: f64 = rounds.iter().map(|r| r.units(kind)).sum();
    Summary {
        med,
        pooled_user_us: if rounds.is_empty() {
            f64::NAN
        } else {
            user / units
        },
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

async fn io<T>(what: &str, f: impl Future<Output = std::io::Result<T>>) -> T {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: timed out after {IO_TIMEOUT:?}"),
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = io("connect", TcpStream::connect(addr)).await;
    s.set_nodelay(true).expect("nodelay");
    s
}

async fn echo_once(s: &mut TcpStream, msg: &[u8], buf: &mut [u8]) {
    io("write", s.write_all(msg)).await;
    io("read", s.read_exact(buf)).await;
}

/// Request/response on every stream until `deadline` or `max_ops` each.
/// Returns the streams (closed by the caller after the CPU sample).
async fn rr_run(
    streams: Vec<TcpStream>,
    size: usize,
    deadline: Instant,
    max_ops: u64,
) -> (Vec<TcpStream>, u64, Vec<u64>) {
    let mut tasks = Vec::with_capacity(streams.len());
    for mut s in streams {
        tasks.push(tokio::spawn(async move {
            let msg = vec![0x5au8; size];
            let mut buf = vec![0u8; size];
            let mut lat = Vec::with_capacity(1 << 14);
            let mut ops = 0u64;
            while ops < max_ops && Instant::now() < deadline {
                let t0 = Instant::now();
                echo_once(&mut s, &msg, &mut buf).await;
                lat.push(t0.elapsed().as_nanos() as u64);
                ops += 1;
            }
            (s, ops, lat)
        }));
    }
    let mut streams = Vec::with_capacity(tasks.len());
    let mut ops = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (s, n, l) = t.await.expect("client task");
        streams.push(s);
        ops += n;
        lat.extend(l);
    }
    (streams, ops, lat)
}

/// Stream `chunk`-byte writes until `deadline` (or `max_chunks`), reading
/// the echo concurrently; returns the bytes echoed back.
async fn bulk_run(s: TcpStream, chunk: usize, deadline: Instant, max_chunks: u64) -> u64 {
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let data = vec![0xa5u8; chunk];
        let mut n = 0u64;
        while n < max_chunks && Instant::now() < deadline {
            io("bulk write", wr.write_all(&data)).await;
            n += 1;
        }
        io("bulk shutdown", wr.shutdown()).await;
        n * chunk as u64
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = io("bulk read", rd.read(&mut buf)).await;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let sent = writer.await.expect("writer");
    assert_eq!(sent, got, "bulk: echoed bytes differ from sent bytes");
    got
}

/// `par` clients each: connect, one echo, close; until `deadline` or
/// `max_ops` each.
async fn churn_run(
    addr: SocketAddr,
    size: usize,
    par: usize,
    deadline: Instant,
    max_ops: u64,
) -> (u64, Vec<u64>) {
    let mut tasks = Vec::with_capacity(par);
    for _ in 0..par {
        tasks.push(tokio::spawn(async move {
            let msg = vec![0x33u8; size];
            let mut buf = vec![0u8; size];
            let mut lat = Vec::with_capacity(1 << 12);
            let mut ops = 0u64;
            while ops < max_ops && Instant::now() < deadline {
                let t0 = Instant::now();
                let mut s = connect(addr).await;
                echo_once(&mut s, &msg, &mut buf).await;
                drop(s);
                lat.push(t0.elapsed().as_nanos() as u64);
                ops += 1;
            }
            (ops, lat)
        }));
    }
    let mut ops = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.expect("churn task");
        ops += n;
        lat.extend(l);
    }
    (ops, lat)
}

/// Let the server finish whatever the last client action started.
async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

struct Bench {
    cfg: Config,
    ours: Option<(ServerThread, Server, u16)>,
    /// The raw thread, and the ports of its 64 KiB and 4 KiB variants.
    raw: Option<(ServerThread, u16, u16)>,
}

impl Bench {
    fn target(&self, which: Which) -> (&ServerThread, SocketAddr) {
        let (thread, port) = match which {
            Which::Ours => {
                let (t, _, p) = self.ours.as_ref().expect("ours running");
                (t, *p)
            }
            Which::Raw => {
                let (t, p, _) = self.raw.as_ref().expect("raw running");
                (t, *p)
            }
        };
        (thread, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    async fn round(&self, which: Which, kind: Kind, dur: Duration) -> Round {
        let (thread, addr) = self.target(which);
        let max_ops = self.cfg.max_ops;
        match kind {
            Kind::Rr { size, conns } => {
                // Set up outside the measurement: connect, one echo each.
                let msg = vec![0x5au8; size];
                let mut buf = vec![0u8; size];
                let mut streams = Vec::with_capacity(conns);
                for _ in 0..conns {
                    let mut s = connect(addr).await;
                    echo_once(&mut s, &msg, &mut buf).await;
                    streams.push(s);
                }
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let (streams, ops, lat_ns) = rr_run(streams, size, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                let cpu = sample(thread).await.since(before);
                drop(streams);
                settle(30).await;
                Round {
                    ops,
                    elapsed,
                    cpu,
                    lat_ns,
                }
            }
            Kind::Bulk { chunk } => {
                let mut s = connect(addr).await;
                echo_once(&mut s, b"x", &mut [0u8; 1]).await;
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let bytes = bulk_run(s, chunk, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                // The server closes after the EOF; include that.
                settle(10).await;
                let cpu = sample(thread).await.since(before);
                settle(20).await;
                Round {
                    ops: bytes,
                    elapsed,
                    cpu,
                    lat_ns: Vec::new(),
                }
            }
            Kind::Churn { size, par } => {
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let (ops, lat_ns) = churn_run(addr, size, par, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                // The server handles the last closes after the client is done.
                settle(30).await;
                let cpu = sample(thread).await.since(before);
                Round {
                    ops,
                    elapsed,
                    cpu,
                    lat_ns,
                }
            }
        }
    }

    async fn scenario(&self, sc: &Scenario) -> (Summary, Summary) {
        let servers: Vec<Which> = [Which::Ours, Which::Raw]
            .into_iter()
            .filter(|w| self.cfg.runs(*w))
            .collect();
        if !self.cfg.warmup.is_zero() {
            for &w in &servers {
                self.round(w, sc.kind, self.cfg.warmup).await;
            }
        }
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        for r in 0..self.cfg.rounds {
            let mut order = servers.clone();
            if r % 2 == 1 {
                order.reverse();
            }
            for w in order {
                let round = self.round(w, sc.kind, self.cfg.dur).await;
                if self.cfg.verbose {
                    eprintln!(
                        "  {} round {r} {}: ops {} in {:.3} s, user {:.0} µs sys {:.0} µs allocs {}",
                        sc.id,
                        w.name(),
                        round.ops,
                        round.elapsed.as_secs_f64(),
                        round.cpu.user_us,
                        round.cpu.sys_us,
                        round.cpu.allocs,
                    );
                }
                match w {
                    Which::Ours => ours.push(round),
                    Which::Raw => raw.push(round),
                }
            }
        }
        let (o, r) = (summarize(&ours, sc.kind), summarize(&raw, sc.kind));
        print_scenario(sc, &o, &r);
        (o, r)
    }

    /// Heap bytes the server thread holds per idle connection that has
    /// echoed `msg_len` bytes: open `n` connections, echo once on each,
    /// wait, measure; close them all, wait, measure the residue.
    async fn mem_round(&self, thread: &ServerThread, port: u16, n: usize) -> (f64, f64) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let msg = vec![0x77u8; 1024];
        let mut buf = vec![0u8; 1024];
        settle(50).await;
        let before = sample(thread).await;
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = connect(addr).await;
            echo_once(&mut s, &msg, &mut buf).await;
            streams.push(s);
        }
        settle(100).await;
        let after = sample(thread).await;
        drop(streams);
        settle(200).await;
        let end = sample(thread).await;
        let per_conn = (after.net_bytes - before.net_bytes) as f64 / n as f64;
        let residue = (end.net_bytes - before.net_bytes) as f64;
        (per_conn, residue)
    }

    async fn memory(&self) -> Option<MemResult> {
        let n = self.cfg.mem_conns;
        let mut res = MemResult::default();
        // Warm each server (our per-thread read buffer, tokio's slabs)
        // with one round first.
        let mut ours = Vec::new();
        let mut raw64 = Vec::new();
        let mut raw4 = Vec::new();
        let mut residues = Vec::new();
        for r in 0..=self.cfg.mem_rounds {
            if let Some((t, _, p)) = &self.ours {
                let (b, res) = self.mem_round(t, *p, n).await;
                if r > 0 {
                    ours.push(b);
                    residues.push(("ours", res));
                }
            }
            if let Some((t, p64, p4)) = &self.raw {
                let (b, res64) = self.mem_round(t, *p64, n).await;
                let (b4, res4) = self.mem_round(t, *p4, n).await;
                if r > 0 {
                    raw64.push(b);
                    raw4.push(b4);
                    residues.push(("raw-64k", res64));
                    residues.push(("raw-4k", res4));
                }
            }
        }
        res.n = n;
        res.ours = median(ours);
        res.raw64 = median(raw64);
        res.raw4 = median(raw4);
        res.residues = residues;
        Some(res)
    }
}

#[derive(Default)]
struct MemResult {
    n: usize,
    ours: f64,
    raw64: f64,
    raw4: f64,
    residues: Vec<(&'static str, f64)>,
}

fn fmt(x: f64) -> String {
    if x.is_nan() {
        "-".to_string()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".to_string()
    } else {
        format!("{:.2}x", a / b)
    }
}

fn print_scenario(sc: &Scenario, o: &Summary, r: &Summary) {
    let (rate, unit) = match sc.kind {
        Kind::Bulk { .. } => ("MB/s", "MB"),
        Kind::Churn { .. } => ("conn/s", "conn"),
        Kind::Rr { .. } => ("req/s", "req"),
    };
    println!();
    println!("{} [{}]", sc.title, sc.id);
    println!(
        "  {:<6} {:>9} {:>9} {:>13} {:>13} {:>13} {:>12}",
        "",
        rate,
        "p99 µs",
        format!("user µs/{unit}"),
        "(pooled)",
        format!("u+s µs/{unit}"),
        format!("allocs/{unit}")
    );
    for (name, f) in [("ours", o), ("raw", r)] {
        println!(
            "  {:<6} {:>9} {:>9} {:>13} {:>13} {:>13} {:>12}",
            name,
            fmt(f.med.rate),
            fmt(f.med.p99_us),
            fmt(f.med.user_us),
            fmt(f.pooled_user_us),
            fmt(f.med.total_us),
            fmt(f.med.allocs)
        );
    }
    println!(
        "  {:<6} {:>9} {:>9} {:>13} {:>13} {:>13} {:>12}",
        "ratio",
        ratio(o.med.rate, r.med.rate),
        ratio(o.med.p99_us, r.med.p99_us),
        ratio(o.med.user_us, r.med.user_us),
        ratio(o.pooled_user_us, r.pooled_user_us),
        ratio(o.med.total_us, r.med.total_us),
        ratio(o.med.allocs, r.med.allocs)
    );
}

fn main() {
    let cfg = Config::from_env();
    let started = Instant::now();
    println!(
        "echo bench: {} rounds x {:.2} s per server and scenario (warm-up {:.2} s){}{}",
        cfg.rounds,
        cfg.dur.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        if cfg.quick { ", quick" } else { "" },
        if cfg.pin {
            ", server pinned to CPU 1, client to CPU 0"
        } else {
            ""
        }
    );
    println!(
        "figures are medians over rounds; CPU is the server thread's own (getrusage RUSAGE_THREAD on that thread); \
         raw = tokio task per connection, 64 KiB buffer"
    );
    if cfg.pin {
        pin_to_cpu(0);
    }
    let server_cpu = cfg.pin.then_some(1);

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    client_rt.block_on(async {
        let ours = if cfg.runs(Which::Ours) {
            let t = ServerThread::spawn("srv-ours", server_cpu);
            let (server, port) = t.run(start_ours()).await;
            Some((t, server, port))
        } else {
            None
        };
        let raw = if cfg.runs(Which::Raw) {
            let t = ServerThread::spawn("srv-raw", server_cpu);
            let p64 = t.run(start_raw(64 * 1024)).await;
            let p4 = t.run(start_raw(4 * 1024)).await;
            Some((t, p64, p4))
        } else {
            None
        };
        let bench = Bench { cfg, ours, raw };

        let mut summary = Vec::new();
        for sc in SCENARIOS {
            if !bench.cfg.wants(sc.id) {
                continue;
            }
            let (o, r) = bench.scenario(sc).await;
            summary.push((sc, o, r));
        }
        let mem = if bench.cfg.wants("mem") {
            bench.memory().await
        } else {
            None
        };

        if let Some(m) = &mem {
            println!();
            println!(
                "memory: heap held by the server thread per idle connection that echoed 1 KiB ({} connections)",
                m.n
            );
            println!("  ours            {:>8.0} B", m.ours);
            println!("  raw, 4 KiB buf  {:>8.0} B", m.raw4);
            println!("  raw, 64 KiB buf {:>8.0} B", m.raw64);
            println!(
                "  ours - raw(4 KiB) = {:+.0} B (target <= +2048), ours - raw(64 KiB) = {:+.0} B",
                m.ours - m.raw4,
                m.ours - m.raw64
            );
            let res: Vec<String> = m
                .residues
                .iter()
                .map(|(n, r)| format!("{n} {r:+.0} B"))
                .collect();
            println!("  held after all closed (whole server thread): {}", res.join(", "));
        }

        let both = bench.ours.is_some() && bench.raw.is_some();
        if both {
            println!();
            println!(
                "summary: server user CPU per unit, ours / raw: median of rounds, pooled rounds (target, judged on pooled)"
            );
            for (sc, o, r) in &summary {
                let pooled = o.pooled_user_us / r.pooled_user_us;
                println!(
                    "  {:<44} {:>7} {:>7}  (<= {:.2}x) {}",
                    sc.title,
                    ratio(o.med.user_us, r.med.user_us),
                    ratio(o.pooled_user_us, r.pooled_user_us),
                    sc.target,
                    if pooled <= sc.target { "met" } else { "MISSED" }
                );
            }
            if let Some(m) = &mem {
                let d = m.ours - m.raw4;
                println!(
                    "  {:<44} {:>+6.0} B (<= +2048 B) {}",
                    "memory per idle conn vs raw 4 KiB",
                    d,
                    if d <= 2048.0 { "met" } else { "MISSED" }
                );
            }
        }
        println!();
        println!("total {:.1} s", started.elapsed().as_secs_f64());
        drop(bench);
    });
}
