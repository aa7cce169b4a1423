//! Randomized (deterministic) fault injection against the datagram
//! endpoint's callback contract, over the test kit's `DatagramHarness`
//! (the crate's real datagram driver and state machine, scripted socket).
//!
//! Each seed drives one endpoint (connected or not) through a random script
//! built from a self-written xorshift PRNG: the peer feeds datagrams (empty
//! ones too) from unique addresses, receive errors (`error_received`), and
//! makes the socket's send buffer full or free again; the test, from outside
//! the callbacks, and the protocol, from inside every callback, randomly
//! `sendto` (0 to a few times the high watermark, with and without
//! addresses, sometimes invalid ones), `close`, `abort`,
//! `pause_reading`/`resume_reading`, `set_write_buffer_limits` (valid), and
//! sometimes panic.
//!
//! Checked: `connection_made` first and once (the harness's `Checked` too);
//! `connection_lost` last and exactly once; `pause_writing` only with the
//! buffer (length + 8 per datagram) strictly over high, `resume_writing`
//! only after a pause and at or below low; no missing pause once idle;
//! nothing but `connection_lost` after `abort`; every datagram accepted with
//! `Ok` reaches the peer whole and in order, unless counted in
//! `dropped_writes()` inside the call or discarded by `abort`; every
//! datagram and receive error fed is delivered whole and in order, never
//! after `close`/`abort`, nor while reading is paused.
//!
//! Defaults: 1,000 seeds x at most 150 steps. `FUZZ_SEED=<n>` runs one seed
//! and prints its trace; `FUZZ_SEEDS=<n>` changes the number of seeds.
#![cfg(feature = "test-util")]

mod fuzz_rng;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Instant;

use tokio_transports::testing::DatagramHarness;
use tokio_transports::{Bytes, DatagramError, DatagramProtocol, DatagramTransport, SocketAddress};

// ---- deterministic randomness -----------------------------------------------

use fuzz_rng::Rng;

/// Content of datagram `id` (`n` bytes): a 4-byte id header when it fits,
/// so a lost, repeated or reordered datagram shows.
fn payload(id: u32, n: usize) -> Bytes {
    let mut v: Vec<u8> = (0..n as u64)
        .map(|k| {
            let x = (u64::from(id) * 7919 + k).wrapping_mul(0x9E37_79B1);
            (x ^ (x >> 11) ^ (x >> 23)) as u8
        })
        .collect();
    if n >= 4 {
        v[..4].copy_from_slice(&id.to_be_bytes());
    }
    Bytes::from(v)
}

/// A unique address per id: `net.x.y.z:port`.
fn addr(net: u8, id: u32) -> SocketAddress {
    let b = id.to_be_bytes();
    SocketAddress::Inet(SocketAddr::new(
        Ipv4Addr::new(net, b[1], b[2], b[3]).into(),
        1000 + (id % 50_000) as u16,
    ))
}

const REMOTE: ([u8; 4], u16) = ([10, 9, 9, 9], 53);

fn remote() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(REMOTE.0).into(), REMOTE.1)
}

// ---- deliberate panics --------------------------------------------------------

const DELIBERATE: &str = "dgram fuzz: deliberate panic";

fn quiet_deliberate_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str));
            if !msg.is_some_and(|m| m.starts_with(DELIBERATE)) {
                previous(info);
            }
        }));
    });
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into())
}

// ---- the model -----------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Knobs {
    connected: bool,
    high0: usize,
    low0: usize,
    max_send: usize,
    max_feed: usize,
    act_pct: u64,
    panic_pm: u64,
    /// Weight of close/abort steps.
    ends: u32,
}

impl Knobs {
    fn for_seed(seed: u64) -> Knobs {
        let mut r = Rng::new(seed ^ 0xD47A_64A3_F00D_5EED);
        let high0 = [0, 1, 8, 9, 32, 100, 256, 1000][r.below(8)];
        let low0 = match r.below(3) {
            0 => high0 / 4,
            1 => r.upto(high0),
            _ => 0,
        };
        Knobs {
            connected: seed % 2 == 1,
            high0,
            low0,
            max_send: 3 * high0 + 24,
            max_feed: [0, 16, 3000][r.below(3)],
            act_pct: [20, 45, 75][r.below(3)],
            panic_pm: [0, 10, 40][r.below(3)],
            ends: if seed % 4 < 2 { 4 } else { 1 },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum In {
    D(Bytes, SocketAddress),
    E(io::ErrorKind),
}

#[derive(Debug)]
struct Out {
    data: Bytes,
    to: SocketAddress,
    /// Counted in `dropped_writes()` before `sendto` returned.
    dropped: bool,
}

struct Model {
    rng: Rng,
    k: Knobs,
    t: Option<DatagramTransport>,
    trace: Vec<String>,
    violations: Vec<String>,
    next_id: u32,

    made: usize,
    lost: usize,
    lost_err: Option<String>,
    cm_panicked: bool,
    close_called: bool,
    /// `abort()` was called before the loss; with the number of datagrams
    /// accepted then.
    abort_at: Option<usize>,
    paused_w: bool,
    reading_paused: bool,
    blocked: bool,

    out: Vec<Out>,
    in_queue: VecDeque<In>,
    delivered: usize,
}

impl Model {
    fn v(&mut self, s: String) {
        self.trace.push(format!("!! {s}"));
        self.violations.push(s);
    }

    fn ended(&self) -> bool {
        self.lost > 0
    }

    fn t(&self) -> DatagramTransport {
        self.t.clone().expect("transport")
    }

    /// One `sendto` with a random size and address; `ctx` names the caller.
    fn sendto(&mut self, ctx: &str) {
        let t = self.t();
        let n = match self.rng.below(5) {
            0 => 0,
            1 => self.rng.upto(8),
            _ => self.rng.upto(self.k.max_send),
        };
        let id = self.next_id;
        self.next_id += 1;
        let data = payload(id, n);
        let (arg, to, expect_err) = if self.k.connected {
            match self.rng.below(10) {
                0..=5 => (None, SocketAddress::Inet(remote()), false),
                6..=8 => (
                    Some(SocketAddress::Inet(remote())),
                    SocketAddress::Inet(remote()),
                    false,
                ),
                _ => (Some(addr(10, id)), addr(10, id), true),
            }
        } else if self.rng.percent(8) {
            (None, addr(10, id), true)
        } else {
            (Some(addr(10, id)), addr(10, id), false)
        };
        let before = t.dropped_writes();
        let size_before = t.get_write_buffer_size();
        let res = t.sendto(data.clone(), arg.clone());
        let dropped = t.dropped_writes() > before;
        self.trace.push(format!(
            "{ctx}: sendto#{id}({n}, {arg:?}) -> {res:?}{} size {size_before}->{}",
            if dropped { " [dropped]" } else { "" },
            t.get_write_buffer_size()
        ));
        match (&res, expect_err) {
            (Ok(()), false) => self.out.push(Out { data, to, dropped }),
            (Err(DatagramError::NoAddress), true) if !self.k.connected => {}
            (Err(DatagramError::AddressMismatch { .. }), true) if self.k.connected => {}
            _ => self.v(format!("sendto#{id}: unexpected result {res:?}")),
        }
    }

    /// A random action on the transport (inside a callback, or from the test).
    fn act(&mut self, ctx: &str) {
        let t = self.t();
        let e = self.k.ends;
        match self.rng.weighted(&[60, e, e, 6, 6, 4]) {
            0 => {
                for _ in 0..1 + self.rng.below(3) {
                    self.sendto(ctx);
                }
            }
            1 => {
                self.trace.push(format!("{ctx}: close"));
                if !self.ended() {
                    self.close_called = true;
                }
                t.close();
            }
            2 => {
                self.trace.push(format!("{ctx}: abort"));
                if !self.ended() && self.abort_at.is_none() {
                    self.abort_at = Some(self.out.len());
                }
                t.abort();
            }
            3 => {
                self.trace.push(format!("{ctx}: pause_reading"));
                t.pause_reading();
                if !self.ended() && !self.close_called && self.abort_at.is_none() {
                    self.reading_paused = true;
                }
            }
            4 => {
                self.trace.push(format!("{ctx}: resume_reading"));
                t.resume_reading();
                self.reading_paused = false;
            }
            _ => {
                let h = [0, 1, 8, 9, 40, 100, 300][self.rng.below(7)];
                let (hi, lo) = match self.rng.below(4) {
                    0 => (Some(h), None),
                    1 => (Some(h), Some(self.rng.upto(h))),
                    2 => (None, Some(h / 4)),
                    _ => (None, None),
                };
                let r = t.set_write_buffer_limits(hi, lo);
                self.trace.push(format!(
                    "{ctx}: set_write_buffer_limits({hi:?}, {lo:?}) -> {r:?} = {:?}",
                    t.get_write_buffer_limits()
                ));
                if r.is_err() {
                    self.v("valid limits refused".into());
                }
            }
        }
    }

    /// The common start of a callback: grammar checks shared by all.
    fn cb_start(&mut self, name: &str) {
        self.trace.push(format!("cb {name}"));
        if self.made == 0 {
            self.v(format!("{name} before connection_made"));
        }
        if self.ended() {
            self.v(format!("{name} after connection_lost"));
        }
        if self.abort_at.is_some() {
            self.v(format!("{name} after abort"));
        }
    }

    /// Maybe act, then decide whether to panic.
    fn cb_end(&mut self, name: &str) -> bool {
        if self.rng.percent(self.k.act_pct) {
            for _ in 0..1 + self.rng.below(2) {
                self.act(name);
            }
        }
        let p = self.rng.permille(self.k.panic_pm);
        if p {
            self.trace.push(format!("{name}: panic"));
        }
        p
    }

    fn read_cb(&mut self, name: &str, got: In) {
        self.cb_start(name);
        if self.close_called {
            self.v(format!("{name} after close"));
        }
        if self.reading_paused {
            self.v(format!("{name} while reading is paused"));
        }
        match self.in_queue.pop_front() {
            Some(want) if want == got => self.delivered += 1,
            want => self.v(format!(
                "{name}: got {got:?}, expected {want:?} (after {} delivered)",
                self.delivered
            )),
        }
    }
}

fn lock(m: &Mutex<Model>) -> MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Proto(Arc<Mutex<Model>>);

impl DatagramProtocol for Proto {
    fn connection_made(&mut self, t: &DatagramTransport) {
        let p = {
            let mut m = lock(&self.0);
            m.trace.push("cb connection_made".into());
            if m.made > 0 || m.ended() {
                m.v("connection_made twice or after the loss".into());
            }
            m.made += 1;
            m.t = Some(t.clone());
            let (h, l) = (m.k.high0, m.k.low0);
            if t.set_write_buffer_limits(Some(h), Some(l)).is_err() {
                m.v("initial limits refused".into());
            }
            let p = m.cb_end("connection_made");
            // A panic here is fatal: rarer than elsewhere.
            let p = p && m.rng.percent(20);
            m.cm_panicked = p;
            p
        };
        if p {
            panic!("{DELIBERATE} in connection_made");
        }
    }

    fn datagram_received(&mut self, data: Bytes, from: SocketAddress) {
        let p = {
            let mut m = lock(&self.0);
            m.read_cb("datagram_received", In::D(data, from));
            m.cb_end("datagram_received")
        };
        if p {
            panic!("{DELIBERATE} in datagram_received");
        }
    }

    fn error_received(&mut self, exc: io::Error) {
        let p = {
            let mut m = lock(&self.0);
            m.read_cb("error_received", In::E(exc.kind()));
            m.cb_end("error_received")
        };
        if p {
            panic!("{DELIBERATE} in error_received");
        }
    }

    fn pause_writing(&mut self) {
        let p = {
            let mut m = lock(&self.0);
            m.cb_start("pause_writing");
            let t = m.t();
            let size = t.get_write_buffer_size();
            let (_, high) = t.get_write_buffer_limits();
            m.trace.push(format!("  size {size}, high {high}"));
            if m.paused_w {
                m.v("pause_writing twice".into());
            }
            if size <= high {
                m.v(format!("pause_writing at size {size} <= high {high}"));
            }
            m.paused_w = true;
            m.cb_end("pause_writing")
        };
        if p {
            panic!("{DELIBERATE} in pause_writing");
        }
    }

    fn resume_writing(&mut self) {
        let p = {
            let mut m = lock(&self.0);
            m.cb_start("resume_writing");
            let t = m.t();
            let size = t.get_write_buffer_size();
            let (low, _) = t.get_write_buffer_limits();
            m.trace.push(format!("  size {size}, low {low}"));
            if !m.paused_w {
                m.v("resume_writing without pause_writing".into());
            }
            if size > low {
                m.v(format!("resume_writing at size {size} > low {low}"));
            }
            m.paused_w = false;
            m.cb_end("resume_writing")
        };
        if p {
            panic!("{DELIBERATE} in resume_writing");
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let p = {
            let mut m = lock(&self.0);
            m.trace.push(format!("cb connection_lost({exc:?})"));
            if m.made == 0 {
                m.v("connection_lost before connection_made".into());
            }
            if m.lost > 0 {
                m.v("connection_lost twice".into());
            }
            m.lost += 1;
            if exc.is_some() && !m.cm_panicked {
                m.v(format!("connection_lost({exc:?}) without a fatal cause"));
            }
            m.lost_err = exc.map(|e| e.to_string());
            let (act, pm) = (m.k.act_pct, m.k.panic_pm);
            if m.rng.percent(act) {
                m.sendto("connection_lost");
            }
            m.rng.permille(pm)
        };
        if p {
            panic!("{DELIBERATE} in connection_lost");
        }
    }
}

// ---- one seed --------------------------------------------------------------------

struct Verdict {
    violations: Vec<String>,
    trace: Vec<String>,
    steps: usize,
}

/// Run a harness call; a panic (the harness's grammar check) is a violation.
fn guarded(m: &Mutex<Model>, what: &str, f: impl FnOnce()) -> bool {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(p) => {
            lock(m).v(format!("harness panicked in {what}: {}", payload_text(&*p)));
            false
        }
    }
}

fn idle_checks(m: &mut Model, h: &DatagramHarness<Proto>) {
    if h.is_closed() != m.ended() {
        m.v(format!(
            "harness closed {} but connection_lost seen {}",
            h.is_closed(),
            m.lost
        ));
    }
    if m.ended() {
        return;
    }
    let t = m.t();
    let size = t.get_write_buffer_size();
    let (low, high) = t.get_write_buffer_limits();
    if m.abort_at.is_some() {
        m.v("abort() did not end the endpoint once idle".into());
        return;
    }
    if !m.blocked && size != 0 {
        m.v(format!(
            "socket free but {size} bytes still queued when idle"
        ));
    }
    if m.close_called && (!m.blocked || size == 0) {
        m.v("close() with nothing left to send did not end the endpoint".into());
    }
    if size > high && !m.paused_w {
        m.v(format!(
            "idle with size {size} > high {high} and no pause_writing"
        ));
    }
    if m.paused_w && size == 0 {
        m.v(format!("idle, queue empty (low {low}), still paused"));
    }
    if h.is_reading_paused() != m.reading_paused && !m.close_called {
        m.v(format!(
            "is_reading_paused {} but model {}",
            h.is_reading_paused(),
            m.reading_paused
        ));
    }
    if !m.reading_paused && !m.close_called && !m.in_queue.is_empty() {
        m.v(format!(
            "{} inbound items not delivered while reading",
            m.in_queue.len()
        ));
    }
}

fn run_seed(seed: u64, max_steps: usize) -> Verdict {
    let k = Knobs::for_seed(seed);
    let model = Arc::new(Mutex::new(Model {
        rng: Rng::new(seed),
        k,
        t: None,
        trace: vec![format!("seed {seed}: {k:?}")],
        violations: Vec::new(),
        next_id: 1,
        made: 0,
        lost: 0,
        lost_err: None,
        cm_panicked: false,
        close_called: false,
        abort_at: None,
        paused_w: false,
        reading_paused: false,
        blocked: false,
        out: Vec::new(),
        in_queue: VecDeque::new(),
        delivered: 0,
    }));
    let proto = Proto(model.clone());
    let mut h = match panic::catch_unwind(AssertUnwindSafe(|| {
        if k.connected {
            DatagramHarness::connected(proto, remote())
        } else {
            DatagramHarness::new(proto)
        }
    })) {
        Ok(h) => h,
        Err(p) => {
            let mut m = lock(&model);
            m.v(format!("harness start panicked: {}", payload_text(&*p)));
            return Verdict {
                violations: m.violations.clone(),
                trace: m.trace.clone(),
                steps: 0,
            };
        }
    };
    let mut ok = true;
    let mut steps = 0;
    {
        let mut m = lock(&model);
        idle_checks(&mut m, &h);
    }
    while ok && steps < max_steps {
        steps += 1;
        let mut m = lock(&model);
        if m.ended() && m.rng.percent(15) {
            break;
        }
        let e = m.k.ends;
        let step = m.rng.weighted(&[30, 5, 8, 25, 6, 2 * e, 2 * e]);
        let id = m.next_id;
        match step {
            0 => {
                m.next_id += 1;
                let max_feed = m.k.max_feed;
                let n = m.rng.upto(max_feed);
                let (data, from) = (payload(id, n), addr(172, id));
                m.trace.push(format!("peer: datagram#{id}({n})"));
                if !m.ended() && !m.close_called && m.abort_at.is_none() {
                    m.in_queue.push_back(In::D(data.clone(), from.clone()));
                }
                drop(m);
                ok = guarded(&model, "feed_datagram", || h.feed_datagram(data, from));
            }
            1 => {
                let kind = [
                    io::ErrorKind::ConnectionRefused,
                    io::ErrorKind::HostUnreachable,
                    io::ErrorKind::PermissionDenied,
                ][m.rng.below(3)];
                m.trace.push(format!("peer: error {kind:?}"));
                if !m.ended() && !m.close_called && m.abort_at.is_none() {
                    m.in_queue.push_back(In::E(kind));
                }
                drop(m);
                ok = guarded(&model, "feed_error", || h.feed_error(kind.into()));
            }
            2 => {
                let b = !m.blocked;
                m.blocked = b;
                m.trace.push(format!("peer: send blocked = {b}"));
                drop(m);
                ok = guarded(&model, "set_send_blocked", || h.set_send_blocked(b));
            }
            _ => {
                // The test acts from outside the callbacks.
                if step == 5 {
                    m.trace.push("test: close".into());
                    if !m.ended() {
                        m.close_called = true;
                    }
                    m.t().close();
                } else if step == 6 {
                    m.trace.push("test: abort".into());
                    if !m.ended() && m.abort_at.is_none() {
                        m.abort_at = Some(m.out.len());
                    }
                    m.t().abort();
                } else {
                    m.act("test");
                }
                drop(m);
                ok = guarded(&model, "run_pending", || h.run_pending());
            }
        }
        if ok {
            let mut m = lock(&model);
            idle_checks(&mut m, &h);
        }
    }
    // The end: free the socket, close, everything must be settled.
    if ok {
        {
            let mut m = lock(&model);
            m.blocked = false;
            m.trace.push("end: unblock, close".into());
        }
        ok = guarded(&model, "set_send_blocked", || h.set_send_blocked(false));
        if ok {
            let t = lock(&model).t();
            {
                let mut m = lock(&model);
                if !m.ended() {
                    m.close_called = true;
                }
            }
            t.close();
            ok = guarded(&model, "run_pending", || h.run_pending());
        }
    }
    let sent = if ok { h.sent() } else { Vec::new() };
    let mut m = lock(&model);
    if ok {
        if m.lost != 1 {
            let lost = m.lost;
            m.v(format!("connection_lost ran {lost} times"));
        }
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| h.check().assert_complete())) {
            m.v(format!("grammar: {}", payload_text(&*e)));
        }
        // Outbound accounting: `sent` must be the accepted, not dropped
        // datagrams in order, minus what an abort discarded.
        let abort_at = m.abort_at.unwrap_or(0);
        let mut i = 0;
        let mut problems = Vec::new();
        for (j, (data, to)) in sent.iter().enumerate() {
            let start = i;
            while i < m.out.len()
                && (m.out[i].dropped || m.out[i].data != *data || m.out[i].to != *to)
            {
                i += 1;
            }
            if i == m.out.len() {
                problems.push(format!(
                    "sent #{j} ({} bytes to {to:?}) matches no later accepted datagram",
                    data.len()
                ));
                i = start;
                continue;
            }
            for s in start..i {
                if !m.out[s].dropped && s >= abort_at {
                    problems.push(format!("accepted datagram #{s} skipped (not sent)"));
                }
            }
            i += 1;
        }
        for s in i..m.out.len() {
            if !m.out[s].dropped && s >= abort_at {
                problems.push(format!(
                    "accepted datagram #{s} ({} bytes) never sent",
                    m.out[s].data.len()
                ));
            }
        }
        let counted = m.out.iter().filter(|o| o.dropped).count();
        let dw = m.t().dropped_writes();
        if dw < counted {
            problems.push(format!(
                "dropped_writes() {dw} < {counted} counted in calls"
            ));
        }
        for p in problems {
            m.v(p);
        }
    }
    Verdict {
        violations: m.violations.clone(),
        trace: m.trace.clone(),
        steps,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn datagram_fault_fuzz() {
    quiet_deliberate_panics();
    let start = Instant::now();
    if let Some(seed) = env_u64("FUZZ_SEED") {
        let v = run_seed(seed, 150);
        for l in &v.trace {
            println!("{l}");
        }
        assert!(v.violations.is_empty(), "seed {seed}: {:?}", v.violations);
        return;
    }
    let seeds = env_u64("FUZZ_SEEDS").unwrap_or(1000);
    let mut failing = Vec::new();
    let mut total_steps = 0;
    for seed in 0..seeds {
        let v = run_seed(seed, 150);
        total_steps += v.steps;
        if !v.violations.is_empty() {
            failing.push((seed, v.violations[0].clone(), v.trace.len()));
        }
    }
    println!(
        "{seeds} seeds, {total_steps} steps, {} failing, {:?}",
        failing.len(),
        start.elapsed()
    );
    for (s, v, n) in failing.iter().take(20) {
        println!("seed {s} ({n} trace lines): {v}");
    }
    assert!(failing.is_empty(), "{} failing seeds", failing.len());
}
