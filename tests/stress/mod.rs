//! Shared pieces of the stress and fault suite (`tests/stress_*.rs`): the
//! [`Settings`] (CI default or `TOKIO_TRANSPORTS_STRESS=long`), a small
//! deterministic PRNG ([`Rng`]), the open-fd count, a short timeout that
//! returns instead of panicking ([`within`]), the [`Failures`] collector, and
//! the lock that serializes the tests of one binary that count fds.
//!
//! See `docs/testing.md`.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// The environment variable that selects the long setting.
pub const ENV: &str = "TOKIO_TRANSPORTS_STRESS";
/// The environment variable that overrides the base seed.
pub const SEED_ENV: &str = "TOKIO_TRANSPORTS_STRESS_SEED";

/// Whether `TOKIO_TRANSPORTS_STRESS=long`.
pub fn long() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "long")
}

/// `ci` by default, `long` with `TOKIO_TRANSPORTS_STRESS=long`.
pub fn pick<T>(ci: T, long_value: T) -> T {
    if long() { long_value } else { ci }
}

/// The base seed: `TOKIO_TRANSPORTS_STRESS_SEED` (decimal or 0x hex), or a
/// fixed default so that CI runs are reproducible.
pub fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => {
            let s = s.trim();
            let parsed = if let Some(hex) = s.strip_prefix("0x") {
                u64::from_str_radix(hex, 16)
            } else {
                s.parse()
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={s}: not a number"))
        }
        Err(_) => 0x5eed_7a11_0c10_5e00,
    }
}

/// SplitMix64: small, fast, deterministic; good enough to choose sizes and
/// operations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for the `i`-th item of a test: independent streams.
    pub fn fork(seed: u64, i: u64) -> Self {
        let mut r = Rng(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        assert!(hi > lo, "empty range {lo}..{hi}");
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }
}

/// The byte at offset `i` of stream `stream`: a deterministic pattern that
/// differs from stream to stream and does not repeat with a short period,
/// so that a lost, duplicated or reordered chunk shows.
#[inline]
pub fn stream_byte(stream: u64, i: u64) -> u8 {
    let x = i
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(stream.wrapping_mul(0x85eb_ca6b))
        ^ (i >> 11);
    (x ^ (x >> 16) ^ (x >> 29)) as u8
}

/// `len` bytes of stream `stream` from offset `start`.
pub fn stream_bytes(stream: u64, start: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|k| stream_byte(stream, start + k))
        .collect()
}

/// The first offset where `got` differs from stream `stream` (from offset 0).
pub fn first_mismatch(stream: u64, got: &[u8]) -> Option<usize> {
    got.iter()
        .enumerate()
        .find(|(i, b)| **b != stream_byte(stream, *i as u64))
        .map(|(i, _)| i)
}

/// How many descriptors this process has open (entries of `/proc/self/fd`,
/// less the one `read_dir` itself holds).
pub fn open_fds() -> usize {
    let n = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count();
    n - 1
}

/// The open descriptors, `"fd->target"`, without the one reading them;
/// IP sockets with their protocol, local address and state. Its length is
/// the open-fd count at one instant, and two snapshots can be diffed.
pub fn fd_snapshot() -> Vec<String> {
    fd_listing()
        .into_iter()
        .filter(|e| !(e.contains("->/proc/") && e.ends_with("/fd")))
        .collect()
}

/// What `after` has that `before` has not.
pub fn fd_diff(before: &[String], after: &[String]) -> Vec<String> {
    after
        .iter()
        .filter(|e| !before.contains(e))
        .cloned()
        .collect()
}

/// Sockets of this network namespace by inode: `"tcp 0100007F:9C41 LISTEN"`.
fn socket_states() -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for proto in ["tcp", "udp", "tcp6", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{proto}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 {
                let state = match (proto.starts_with("tcp"), f[3]) {
                    (true, "0A") => "LISTEN",
                    (true, "01") => "ESTABLISHED",
                    (true, "06") => "TIME_WAIT",
                    (true, "07") => "CLOSE",
                    (true, "08") => "CLOSE_WAIT",
                    (_, s) => s,
                };
                out.insert(
                    format!("socket:[{}]", f[9]),
                    format!("{proto} {} {state}", f[1]),
                );
            }
        }
    }
    out
}

/// The open descriptors with what they point to (and, for an IP socket,
/// its protocol, local address and state), for a failure message.
pub fn fd_listing() -> Vec<String> {
    let sockets = socket_states();
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            match sockets.get(&target) {
                Some(state) => format!("{}->{target} ({state})", e.file_name().to_string_lossy()),
                None => format!("{}->{target}", e.file_name().to_string_lossy()),
            }
        })
        .collect();
    out.sort();
    out
}

/// Await `f` for at most `d`: `None` if it did not finish (for checks that
/// collect failures instead of stopping at the first).
pub async fn within<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    tokio::time::timeout(d, f).await.ok()
}

/// Collects failed checks, so that one run reports every broken property,
/// then panics with all of them.
#[derive(Default)]
pub struct Failures {
    what: String,
    list: Vec<String>,
}

impl Failures {
    pub fn new(what: impl Into<String>) -> Self {
        Failures {
            what: what.into(),
            list: Vec::new(),
        }
    }

    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.list.push(msg());
        }
    }

    pub fn fail(&mut self, msg: impl Into<String>) {
        self.list.push(msg.into());
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn extend(&mut self, other: Failures) {
        for m in other.list {
            self.list.push(format!("{}: {m}", other.what));
        }
    }

    /// Panic with every failure, if any.
    pub fn assert_none(self) {
        if !self.list.is_empty() {
            panic!(
                "{}: {} check(s) failed:\n  - {}",
                self.what,
                self.list.len(),
                self.list.join("\n  - ")
            );
        }
    }
}

/// Serializes the tests of one binary (they count the process's fds, or
/// need the machine's two cores to themselves to stay within their time).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The same, for tests that are plain `#[test]` functions.
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// Run `f` on a fresh multi-thread runtime (two workers, as the machine
/// CI runs on), holding [`SERIAL`] from before the runtime is built until
/// after it is dropped: no other test of the binary opens or closes fds
/// (its runtime's included) meanwhile.
pub fn serial_run<F: Future>(f: F) -> F::Output {
    let _serial = serial_blocking();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(f);
    drop(rt);
    out
}
