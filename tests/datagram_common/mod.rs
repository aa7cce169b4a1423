//! Shared helpers for the datagram integration tests.
//!
//! * [`recorder`]: a [`DatagramProtocol`] that logs every callback as an
//!   [`Ev`] (into a log the test can read at any time, and a channel it can
//!   wait on), optionally echoes, and runs a hook inside each callback.
//! * [`check_grammar`]: the datagram callback contract on a complete log.
//! * Waiting helpers: [`guard`], [`barrier`].
//! * Addresses: [`free_udp_port`], [`TempDir`] for Unix socket paths,
//!   [`unix_pair_small_sndbuf`] for a socketpair whose sender blocks soon.
//! * Payloads: [`Datagram`] frames (sequence number, length, checksum).

#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_transports::{DatagramProtocol, DatagramTransport, SocketAddress};

/// Upper bound for any single wait: only a guard against hanging.
pub const GUARD: Duration = Duration::from_secs(10);

/// Await `f`, failing the test if it takes longer than [`GUARD`].
pub async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Two round trips through the endpoint's task: when this returns, the task
/// has processed every command sent before the call, and finished the poll
/// in which it did so.
pub async fn barrier(t: &DatagramTransport) {
    for _ in 0..2 {
        guard("barrier", t.with_protocol(|_| ())).await;
    }
}

// ---- events -----------------------------------------------------------------

/// One recorded callback.
#[derive(Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Dgram(Bytes, SocketAddress),
    /// `error_received`: the error's kind, raw OS error and text.
    Error(io::ErrorKind, Option<i32>, String),
    /// `pause_writing`, with the write-buffer size seen inside the callback.
    PauseWriting(usize),
    /// `resume_writing`, with the write-buffer size seen inside the callback.
    ResumeWriting(usize),
    /// `connection_lost`: `None`, or the error's kind and text.
    Lost(Option<(io::ErrorKind, String)>),
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Made => f.write_str("Made"),
            Ev::Dgram(d, a) => write!(f, "Dgram({} bytes from {a})", d.len()),
            Ev::Error(k, code, m) => write!(f, "Error({k:?}, {code:?}, {m})"),
            Ev::PauseWriting(s) => write!(f, "PauseWriting(size={s})"),
            Ev::ResumeWriting(s) => write!(f, "ResumeWriting(size={s})"),
            Ev::Lost(e) => write!(f, "Lost({e:?})"),
        }
    }
}

impl Ev {
    pub fn is_dgram(&self) -> bool {
        matches!(self, Ev::Dgram(..))
    }
}

/// Assert the datagram callback contract on one endpoint's complete log:
/// `connection_made (datagram_received | error_received)* connection_lost`,
/// with `pause_writing`/`resume_writing` strictly alternating (pause first)
/// anywhere between the first and the last.
pub fn check_grammar(evs: &[Ev]) {
    let fail = |msg: &str| -> ! { panic!("callback contract broken: {msg}\nevents: {evs:?}") };
    if evs.first() != Some(&Ev::Made) {
        fail("connection_made is not first");
    }
    if evs.iter().filter(|e| **e == Ev::Made).count() != 1 {
        fail("connection_made more than once");
    }
    match evs.last() {
        Some(Ev::Lost(_)) => {}
        _ => fail("connection_lost is not last"),
    }
    if evs.iter().filter(|e| matches!(e, Ev::Lost(_))).count() != 1 {
        fail("connection_lost more than once");
    }
    let mut paused = false;
    for e in evs {
        match e {
            Ev::PauseWriting(_) if paused => fail("pause_writing twice"),
            Ev::PauseWriting(_) => paused = true,
            Ev::ResumeWriting(_) if !paused => fail("resume_writing without pause_writing"),
            Ev::ResumeWriting(_) => paused = false,
            _ => {}
        }
    }
}

// ---- the recording protocol ---------------------------------------------------

/// Runs inside each callback, after the event is logged.
pub type Hook = Box<dyn FnMut(&DatagramTransport, &Ev) + Send>;

/// The protocol: logs, then runs the hook.
pub struct Rec {
    log: Arc<Mutex<Vec<Ev>>>,
    tx: mpsc::UnboundedSender<Ev>,
    transport: Option<DatagramTransport>,
    hook: Option<Hook>,
}

impl Rec {
    fn record(&mut self, ev: Ev) {
        self.log.lock().unwrap().push(ev.clone());
        let _ = self.tx.send(ev.clone());
        if let (Some(hook), Some(t)) = (self.hook.as_mut(), self.transport.as_ref()) {
            hook(t, &ev);
        }
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
        self.record(Ev::Made);
    }
    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        self.record(Ev::Dgram(data, addr));
    }
    fn error_received(&mut self, exc: io::Error) {
        self.record(Ev::Error(exc.kind(), exc.raw_os_error(), exc.to_string()));
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.record(Ev::Lost(exc.map(|e| (e.kind(), e.to_string()))));
    }
    fn pause_writing(&mut self) {
        let size = self
            .transport
            .as_ref()
            .map_or(0, |t| t.get_write_buffer_size());
        self.record(Ev::PauseWriting(size));
    }
    fn resume_writing(&mut self) {
        let size = self
            .transport
            .as_ref()
            .map_or(0, |t| t.get_write_buffer_size());
        self.record(Ev::ResumeWriting(size));
    }
}

/// The test's side of a [`Rec`].
pub struct Probe {
    log: Arc<Mutex<Vec<Ev>>>,
    rx: mpsc::UnboundedReceiver<Ev>,
}

impl Probe {
    /// The next event, in order.
    pub async fn next(&mut self) -> Ev {
        guard("the next callback", self.rx.recv())
            .await
            .expect("the protocol was dropped")
    }

    /// The next event, which must be a datagram.
    pub async fn dgram(&mut self) -> (Bytes, SocketAddress) {
        match self.next().await {
            Ev::Dgram(d, a) => (d, a),
            other => panic!("expected a datagram, got {other:?}"),
        }
    }

    /// Skip events until one matches.
    pub async fn until(&mut self, what: &str, f: impl Fn(&Ev) -> bool) -> Ev {
        guard(what, async {
            loop {
                let ev = self.rx.recv().await.expect("the protocol was dropped");
                if f(&ev) {
                    return ev;
                }
            }
        })
        .await
    }

    /// Everything logged so far.
    pub fn events(&self) -> Vec<Ev> {
        self.log.lock().unwrap().clone()
    }

    /// How many datagrams were logged so far.
    pub fn dgrams(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.is_dgram())
            .count()
    }

    /// Whether anything is waiting in the channel right now.
    pub fn has_pending(&mut self) -> bool {
        !self.rx.is_empty()
    }
}

/// A factory for one [`Rec`] with an optional hook, and its [`Probe`].
pub fn recorder(hook: Option<Hook>) -> (impl FnOnce() -> Rec, Probe) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::unbounded_channel();
    let rec_log = log.clone();
    let factory = move || Rec {
        log: rec_log,
        tx,
        transport: None,
        hook,
    };
    (factory, Probe { log, rx })
}

/// A hook that echoes every datagram to its sender.
pub fn echo() -> Hook {
    Box::new(|t, ev| {
        if let Ev::Dgram(d, a) = ev {
            t.sendto(d.clone(), Some(a.clone())).expect("echo sendto");
        }
    })
}

// ---- addresses ----------------------------------------------------------------

/// A UDP port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

pub fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A fresh directory for Unix socket paths, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tt-dgram-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Unix datagram socketpair whose first end has the smallest send buffer
/// the kernel allows, so that it blocks (EAGAIN) after a few datagrams while
/// the second end does not read.
pub fn unix_pair_small_sndbuf() -> (tokio::net::UnixDatagram, tokio::net::UnixDatagram) {
    let (a, b) = tokio::net::UnixDatagram::pair().expect("socketpair");
    socket2::SockRef::from(&a)
        .set_send_buffer_size(1)
        .expect("SO_SNDBUF");
    (a, b)
}

/// Receive everything waiting on a raw socket now, without blocking.
pub fn drain_now(sock: &tokio::net::UnixDatagram) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 300 * 1024];
    loop {
        match sock.try_recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

// ---- payloads -------------------------------------------------------------------

/// Header of a test datagram: sequence number, total length, checksum of the
/// payload (FNV-1a), each a little-endian u32.
pub const HEADER: usize = 12;

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A test datagram of `len` bytes (at least [`HEADER`]) for sequence `seq`.
pub fn frame(seq: u32, len: usize) -> Bytes {
    assert!(len >= HEADER);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend((0..len - HEADER).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8));
    let sum = fnv1a(&v[HEADER..]);
    v[8..12].copy_from_slice(&sum.to_le_bytes());
    Bytes::from(v)
}

/// Check a test datagram: whole (its length field matches), intact (its
/// checksum matches). Returns its sequence number.
pub fn check_frame(d: &[u8]) -> u32 {
    assert!(
        d.len() >= HEADER,
        "a datagram of {} bytes lost its header",
        d.len()
    );
    let word = |i: usize| u32::from_le_bytes(d[i..i + 4].try_into().unwrap());
    let (seq, len, sum) = (word(0), word(4), word(8));
    assert_eq!(len as usize, d.len(), "datagram {seq} merged or split");
    assert_eq!(fnv1a(&d[HEADER..]), sum, "datagram {seq} corrupted");
    seq
}
