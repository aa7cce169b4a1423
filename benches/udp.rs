//! UDP echo benchmark: this crate's UDP echo server (the `udp_echo_server`
//! example's protocol, without the prints) against a raw tokio `UdpSocket`
//! echo loop (`recv_from`, then `send_to`), same process, same load, round
//! by round.
//!
//! The figure that counts is the **server's user-space CPU time per
//! datagram**. Each server runs on its own `current_thread` runtime on its
//! own dedicated thread; its CPU time is read with `getrusage(RUSAGE_THREAD)`
//! executed *on that thread* (a task spawned on the server runtime), before
//! and after every measured round, and divided by the datagrams it echoed in
//! the round (counted by the server). The client is a blocking socket on its
//! own thread that keeps a window of datagrams in flight. Servers alternate
//! round by round; every figure is the median over the rounds.
//!
//! Sizes: 64 B and 1 KiB datagrams. Target: ours/raw user CPU ≤ 1.15 (the
//! ratio of the medians). Also printed: the pooled ratio (all rounds'
//! user time over all their datagrams) and the mean of the per-round ratios
//! with its standard error.
//!
//! Mind the noise: Linux splits a thread's CPU time into user and system by
//! sampling the scheduler tick (`CONFIG_HZ`, 250 on our machines), and the
//! user part is under a tenth of an echo server's time (the rest is the
//! `recvfrom`/`sendto` system calls), so one 1.25 s round sees only some 25
//! user ticks: about ±20 % per round, and the machine's own drift (a VM's
//! neighbours) adds to it. Short rounds that alternate keep the drift fair
//! to both servers; the pooled figure (all ticks together, about ±5 % per
//! server with the defaults) is steadier than the medians. Cross-checks:
//! `perf record -e cpu-clock -F 4000` (software sampling, 16 times finer
//! than the tick) and instruction counts under
//! `valgrind --tool=callgrind --separate-threads=yes` (deterministic).
//!
//! Environment:
//!
//! * `UDP_BENCH_QUICK=1`: 2 rounds of 0.3 s (default: 16 rounds of 1.25 s per
//!   server and size, about 85 s in all).
//! * `UDP_BENCH_ROUNDS=n`, `UDP_BENCH_SECS=x`: rounds and seconds per round.
//! * `UDP_BENCH_WINDOW=n`: datagrams in flight (default 32).
//! * `UDP_BENCH_VERBOSE=1`: print every round.
//! * `UDP_BENCH_SIZES=64,1024`: datagram sizes.
//! * `UDP_BENCH_PIN=1`: pin the server threads to CPU 1 and the client to
//!   CPU 0.

mod common;

use common::{Cpu, ServerThread, median, pin_to_cpu};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio_transports::{
    DatagramOptions, DatagramProtocol, DatagramTransport, SocketAddress, create_datagram_endpoint,
};

fn pinning() -> bool {
    std::env::var_os("UDP_BENCH_PIN").is_some_and(|v| v != "0")
}

// ---------------------------------------------------------------------------
// The two echo servers.
// ---------------------------------------------------------------------------

/// Our echo protocol: the reference's `EchoServerProtocol` without prints.
struct Echo {
    transport: Option<DatagramTransport>,
    echoed: Arc<AtomicU64>,
}

impl DatagramProtocol for Echo {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        if let Some(t) = &self.transport {
            let _ = t.sendto(data, Some(addr));
        }
        self.echoed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Start our server on the current (server-thread) runtime.
async fn start_ours(echoed: Arc<AtomicU64>) -> (DatagramTransport, SocketAddr) {
    let t = create_datagram_endpoint(
        move || Echo {
            transport: None,
            echoed,
        },
        DatagramOptions::default().local_addr(("127.0.0.1", 0)),
    )
    .await
    .expect("create_datagram_endpoint");
    let addr = t.sockname().expect("sockname");
    (t, addr)
}

/// The raw tokio echo loop: one task, one 64 KiB buffer, `recv_from` then
/// `send_to`.
async fn start_raw(echoed: Arc<AtomicU64>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("local_addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let _ = sock.send_to(&buf[..n], from).await;
            echoed.fetch_add(1, Ordering::Relaxed);
        }
    });
    addr
}

// ---------------------------------------------------------------------------
// The client.
// ---------------------------------------------------------------------------

/// Keep `window` datagrams of `size` bytes in flight to `server` for `dur`
/// (a blocking socket on its own thread). A datagram not echoed within 20 ms
/// is given up on and replaced. Returns (echoes received, given up).
fn client(server: SocketAddr, size: usize, window: usize, dur: Duration) -> (u64, u64) {
    if pinning() {
        pin_to_cpu(0);
    }
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("client bind");
    sock.connect(server).expect("client connect");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(1 << 20);
    let payload = vec![0x5au8; size];
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..window {
        sock.send(&payload).expect("send");
    }
    let (mut received, mut lost) = (0u64, 0u64);
    let deadline = Instant::now() + dur;
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(_) => received += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                lost += 1
            }
            Err(e) => panic!("client recv: {e}"),
        }
        sock.send(&payload).expect("send");
    }
    (received, lost)
}

// ---------------------------------------------------------------------------
// Measurement.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Ours,
    Raw,
}

struct Server {
    which: Which,
    thread: ServerThread,
    addr: SocketAddr,
    echoed: Arc<AtomicU64>,
    /// Keeps our endpoint open.
    _transport: Option<DatagramTransport>,
}

impl Server {
    async fn start(which: Which) -> Server {
        let name = match which {
            Which::Ours => "udp-ours",
            Which::Raw => "udp-raw",
        };
        let thread = ServerThread::spawn(name, pinning().then_some(1));
        let echoed = Arc::new(AtomicU64::new(0));
        let e = echoed.clone();
        let (transport, addr) = match which {
            Which::Ours => {
                let (t, a) = thread.run(start_ours(e)).await;
                (Some(t), a)
            }
            Which::Raw => (None, thread.run(start_raw(e)).await),
        };
        Server {
            which,
            thread,
            addr,
            echoed,
            _transport: transport,
        }
    }

    /// One measured round.
    async fn round(&self, size: usize, window: usize, dur: Duration) -> Round {
        let before = self.thread.run(async { Cpu::this_thread() }).await;
        let echoed_before = self.echoed.load(Ordering::Relaxed);
        let started = Instant::now();
        let addr = self.addr;
        let (received, lost) = tokio::task::spawn_blocking(move || client(addr, size, window, dur))
            .await
            .expect("client thread");
        let elapsed = started.elapsed();
        let after = self.thread.run(async { Cpu::this_thread() }).await;
        let echoed = (self.echoed.load(Ordering::Relaxed) - echoed_before).max(1) as f64;
        Round {
            per_sec: received as f64 / elapsed.as_secs_f64(),
            user_us: (after.user_us - before.user_us) / echoed,
            sys_us: (after.sys_us - before.sys_us) / echoed,
            user_total_us: after.user_us - before.user_us,
            echoed,
            lost,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Round {
    per_sec: f64,
    /// User CPU µs per echoed datagram.
    user_us: f64,
    sys_us: f64,
    user_total_us: f64,
    echoed: f64,
    lost: u64,
}

/// User CPU µs per datagram over all rounds together.
fn pooled(rs: &[Round]) -> f64 {
    rs.iter().map(|r| r.user_total_us).sum::<f64>() / rs.iter().map(|r| r.echoed).sum::<f64>()
}

/// Mean and standard error.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::var_os("UDP_BENCH_QUICK").is_some_and(|v| v != "0");
    let rounds: usize = env_or("UDP_BENCH_ROUNDS", if quick { 2 } else { 16 });
    let secs: f64 = env_or("UDP_BENCH_SECS", if quick { 0.3 } else { 1.25 });
    let window: usize = env_or("UDP_BENCH_WINDOW", 32);
    let verbose = std::env::var_os("UDP_BENCH_VERBOSE").is_some_and(|v| v != "0");
    let dur = Duration::from_secs_f64(secs);
    let warmup = Duration::from_secs_f64((secs / 2.0).min(0.5));

    let ours = Server::start(Which::Ours).await;
    let raw = Server::start(Which::Raw).await;
    println!(
        "UDP echo: ours (create_datagram_endpoint) vs raw tokio (recv_from + send_to); \
         {rounds} rounds of {secs} s per server, window {window}, medians"
    );
    let mut all_ok = true;
    let sizes: Vec<usize> = std::env::var("UDP_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 1024]);
    for &size in &sizes {
        for s in [&ours, &raw] {
            s.round(size, window, warmup).await;
        }
        let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            // Alternate which server goes first.
            let order = if r % 2 == 0 {
                [&ours, &raw]
            } else {
                [&raw, &ours]
            };
            for s in order {
                let round = s.round(size, window, dur).await;
                if verbose {
                    println!("  round {r} {:?} {size} B: {round:?}", s.which);
                }
                results[(s.which == Which::Raw) as usize].push(round);
            }
        }
        println!("\n{size} B datagrams");
        println!(
            "  {:<6} {:>10} {:>24} {:>13} {:>5}",
            "server", "dgrams/s", "user us/dgram med|pool", "sys us/dgram", "lost"
        );
        let mut med = [0.0; 2];
        let mut pool = [0.0; 2];
        for (i, name) in ["ours", "raw"].iter().enumerate() {
            let rs = &results[i];
            med[i] = median(rs.iter().map(|r| r.user_us).collect());
            pool[i] = pooled(rs);
            println!(
                "  {:<6} {:>10.0} {:>15.3} | {:<6.3} {:>13.3} {:>5}",
                name,
                median(rs.iter().map(|r| r.per_sec).collect()),
                med[i],
                pool[i],
                median(rs.iter().map(|r| r.sys_us).collect()),
                rs.iter().map(|r| r.lost).sum::<u64>(),
            );
        }
        let paired: Vec<f64> = results[0]
            .iter()
            .zip(&results[1])
            .map(|(o, r)| o.user_us / r.user_us)
            .collect();
        let (paired_mean, paired_se) = mean_se(&paired);
        let ratio = med[0] / med[1];
        let ok = ratio <= 1.15;
        all_ok &= ok;
        println!(
            "  ours/raw user CPU per datagram: {ratio:.3} (medians); pooled {:.3}; \
             paired rounds {paired_mean:.3} +/- {paired_se:.3}; target <= 1.15: {}",
            pool[0] / pool[1],
            if ok { "met" } else { "MISSED" }
        );
    }
    println!(
        "\nechoed in all (warm-up included): ours {}, raw {}",
        ours.echoed.load(Ordering::Relaxed),
        raw.echoed.load(Ordering::Relaxed)
    );
    println!(
        "{}",
        if all_ok {
            "all targets met"
        } else {
            "some targets missed"
        }
    );
}
