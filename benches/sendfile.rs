//! `sendfile` benchmark: this crate's `sendfile` over a TCP transport (its
//! native path: `sendfile(2)` on the connection's task) against a
//! hand-written tokio equivalent (a `TcpStream` and a loop of `sendfile(2)`
//! calls on its write readiness, the same system calls), same process,
//! same load, round by round; and, for scale, `tokio::io::copy` from a
//! `tokio::fs::File` (what a tokio program writes without `sendfile(2)`).
//!
//! Each round sends one `SENDFILE_BENCH_MB` MiB file (in the page cache)
//! over a fresh loopback connection to a drain thread that reads it to its
//! end. The sender runs on its own `current_thread` runtime on a dedicated
//! thread; its CPU time is read with `getrusage(RUSAGE_THREAD)` on that
//! thread before and after each round. Figures: user CPU per MB of the
//! sending thread, median over the rounds, and the ratio ours/raw. (`copy`
//! reads the file on tokio's blocking pool, whose threads are not counted:
//! its user figure is only the sending thread's part.)
//!
//! Instructions with callgrind (the sending thread is the second thread with
//! `SENDFILE_BENCH_ONLY`):
//!
//! ```sh
//! B=$(ls -t target/bench-release/deps/sendfile-* | grep -v '\.d$' | head -1)
//! for w in ours raw; do for n in 64 320; do
//!   SENDFILE_BENCH_ONLY=$w SENDFILE_BENCH_MB=$n SENDFILE_BENCH_ROUNDS=1 \
//!     valgrind --tool=callgrind --separate-threads=yes \
//!       --callgrind-out-file=cg.sf.$w.$n $B > /dev/null 2>&1
//! done; done
//! grep -h '^summary' cg.sf.*-02     # (Ir(320) - Ir(64)) / 256 per MB
//! ```
//!
//! Environment: `SENDFILE_BENCH_MB=n` (default 256), `SENDFILE_BENCH_ROUNDS=n`
//! (default 5), `SENDFILE_BENCH_ONLY=ours|raw|copy`, `SENDFILE_BENCH_QUICK=1`
//! (3 rounds of 64 MiB).

mod common;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use common::{Cpu, ServerThread, median};
use tokio::io::{AsyncSeekExt, Interest};
use tokio_transports::{ConnectOptions, create_connection, sendfile};

const MB: u64 = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A file of `mb` MiB, unlinked, read once so it is in the page cache.
fn make_file(mb: u64) -> File {
    let path = std::env::temp_dir().join(format!("tt-sendfile-bench-{}", std::process::id()));
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("bench file");
    std::fs::remove_file(&path).expect("unlink bench file");
    let block = vec![0x5au8; MB as usize];
    for _ in 0..mb {
        f.write_all(&block).expect("write bench file");
    }
    f.seek(SeekFrom::Start(0)).expect("seek");
    let mut sink = vec![0u8; MB as usize];
    while f.read(&mut sink).expect("warm the page cache") > 0 {}
    f
}

/// A listener whose connections are read to their end by a thread each;
/// each connection's byte count comes back on the channel.
fn drain() -> (u16, std::sync::mpsc::Receiver<u64>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                while let Ok(k) = s.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = tx.send(n);
            });
        }
    });
    (port, rx)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Raw,
    Copy,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Raw => "raw",
            Side::Copy => "copy",
        }
    }
}

/// One round on the sending thread: connect, send the whole file, close.
async fn round(side: Side, port: u16, file: Arc<File>) -> (Cpu, f64) {
    let before = Cpu::this_thread();
    let started = Instant::now();
    match side {
        Side::Ours => {
            let t = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default())
                .await
                .expect("connect");
            sendfile(&t, &*file, 0, None, false)
                .await
                .expect("sendfile");
            t.close();
            t.closed().await;
        }
        Side::Raw => {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            // As the crate's connections (`ConnectOptions::nodelay`).
            s.set_nodelay(true).expect("nodelay");
            let len = file.metadata().expect("metadata").len();
            let mut off = 0u64;
            while off < len {
                s.writable().await.expect("writable");
                match s.try_io(Interest::WRITABLE, || {
                    socket2::SockRef::from(&s).sendfile(&file.as_raw_fd(), off as usize, None)
                }) {
                    Ok(0) => break,
                    Ok(n) => off += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("sendfile: {e}"),
                }
            }
            drop(s);
        }
        Side::Copy => {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut f = tokio::fs::File::from_std(file.try_clone().expect("dup"));
            f.seek(SeekFrom::Start(0)).await.expect("seek");
            tokio::io::copy(&mut f, &mut s).await.expect("copy");
            drop(s);
        }
    }
    let after = Cpu::this_thread();
    (
        Cpu {
            user_us: after.user_us - before.user_us,
            sys_us: after.sys_us - before.sys_us,
        },
        started.elapsed().as_secs_f64(),
    )
}

fn main() {
    let quick = std::env::var_os("SENDFILE_BENCH_QUICK").is_some();
    let mb = env_u64("SENDFILE_BENCH_MB", if quick { 64 } else { 256 });
    let rounds = env_u64("SENDFILE_BENCH_ROUNDS", if quick { 3 } else { 5 });
    let only = std::env::var("SENDFILE_BENCH_ONLY").ok();
    let sides: Vec<Side> = [Side::Ours, Side::Raw, Side::Copy]
        .into_iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name()))
        .collect();
    // The sending thread first (callgrind's thread 2 with _ONLY).
    let sender = ServerThread::spawn("sender", None);
    let file = Arc::new(make_file(mb));
    let (port, done) = drain();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Per side: user and system µs per MB, and seconds, of each round.
    type Rounds = (Side, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut results: Vec<Rounds> = sides.iter().map(|s| (*s, vec![], vec![], vec![])).collect();
    for _ in 0..rounds {
        for (side, user, sys, secs) in results.iter_mut() {
            let f = file.clone();
            let s = *side;
            let (cpu, t) = rt.block_on(sender.run(round(s, port, f)));
            let got = done.recv().expect("drain count");
            assert_eq!(got, mb * MB, "{}: the drain got {got} bytes", s.name());
            user.push(cpu.user_us / mb as f64);
            sys.push(cpu.sys_us / mb as f64);
            secs.push(t);
        }
    }
    println!(
        "sendfile: {mb} MiB file over loopback TCP per round, {rounds} rounds; user/sys CPU of \
         the sending thread per MB (median), wall MB/s"
    );
    println!("  side   user us/MB  sys us/MB     MB/s");
    let mut ours = (f64::NAN, f64::NAN);
    let mut raw = (f64::NAN, f64::NAN);
    for (side, user, sys, secs) in results {
        let cpu: Vec<f64> = user.iter().zip(&sys).map(|(u, s)| u + s).collect();
        let (u, s, t, c) = (median(user), median(sys), median(secs), median(cpu));
        println!(
            "  {:<5} {:>10.2} {:>10.2} {:>8.0}",
            side.name(),
            u,
            s,
            mb as f64 / t
        );
        match side {
            Side::Ours => ours = (c, t),
            Side::Raw => raw = (c, t),
            Side::Copy => {}
        }
    }
    if ours.0.is_finite() && raw.0.is_finite() {
        // The kernel does the copying: user time is a few ticks at most on
        // either side (see the callgrind recipe above for instructions), so
        // the ratios are of user + system time and of the round's time.
        println!(
            "  ratio ours/raw: user+sys CPU per MB {:.2}, time per round {:.2}",
            ours.0 / raw.0,
            ours.1 / raw.1
        );
    }
}
