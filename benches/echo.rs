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
//! * `writelines-16`, `write-16`, `writelines-1`: request/response, 1 KiB,
//!   1 connection, the server answering each chunk it receives in zero-copy
//!   slices: one `writelines` of 16 slices, 16 `write` calls, one
//!   `writelines` of the whole chunk. Raw tokio answers with one vectored
//!   write of 16 `IoSlice`s (`write_all` for one chunk), which is what a
//!   hand-written server does. `ours writelines-16 / ours write-16` is
//!   printed in the summary (target: writelines no dearer than the loop).
//! * `mem-keep64`: heap per idle connection whose server protocol keeps the
//!   last 64 bytes it received, as a framing protocol keeps a partial frame:
//!   each client sends 1 KiB, waits for a one-byte ack, sends 64 B, waits
//!   for the second ack, then idles. Ours keeps a `Bytes::slice` of the last
//!   `data_received` chunk (zero copy: this measures what a kept slice
//!   pins); raw tokio keeps its 4 KiB read buffer with the 64 B left in it,
//!   and a second raw variant keeps a 64 B copy only (reads into a stack
//!   buffer after `readable()`). Target: ours <= 2 KiB per connection.
//!   `ECHO_BENCH_KEEP_FIRST=65536` makes the first message 64 KiB, which
//!   shows the worst case (each kept slice pins a read-pool allocation).
//! * `mem-buffered-idle`: heap per idle connection that never sent anything,
//!   for a `BufferedProtocol` that allocates its 64 KiB `BytesMut` lazily on
//!   the first `get_buffer`: shows whether the transport asks for a buffer
//!   before any data came (`get_buffer` calls per connection are printed;
//!   target 0). Raw tokio allocates its 64 KiB lazily on the first read that
//!   brings data (it reads into a small stack buffer first: tokio reports a
//!   fresh accepted socket readable once even when nothing came, printed as
//!   "empty ready").
//! * `slow-reader`: one connection whose client sends 1 MiB (quick) or
//!   2 MiB in 64 KiB writes while reading the echo 16 KiB every 16 ms
//!   (about 1 MB/s, paced by a `tokio::time::interval`); the servers' send
//!   buffers and the client's receive buffer are set to 32 KiB so the flood
//!   reaches user space in a short run. The server echoes and pauses reading
//!   on `pause_writing`, resumes on `resume_writing` (the documented
//!   pattern). Reported: the peak of `get_write_buffer_size()` (sampled after
//!   every write and in pause/resume) in multiples of the 64 KiB high
//!   watermark; target <= 2x. Raw tokio: the peak of bytes queued in user
//!   space by a hand-written server with the same pause logic (stop reading
//!   above 64 KiB queued, resume at 16 KiB, reads of at most 64 KiB), whose
//!   own bound is 2x.
//! * `unix-rr-64-x1`, `unix-rr-1k-x1`, `unix-rr-64-x64`: request/response
//!   as `rr-*`, over a Unix stream socket: ours is [`Echo`] served by
//!   `create_unix_server(.., ServerOptions::default())` (which removes its
//!   socket file on close), raw tokio the same task-per-connection echo as
//!   `rr-*` (64 KiB buffer, `read_buf` + `write_all`) on a
//!   `tokio::net::UnixListener`; the clients are `rr-*`'s, connecting with
//!   `UnixStream::connect`. Both sockets live in a fresh temporary directory
//!   (`$TMPDIR/echo-bench-<pid>-..`) made only when one of these scenarios
//!   runs and removed at the end (raw's socket file is removed by hand; a
//!   warning is printed if ours's outlived its server). Target: user CPU
//!   per request at most 1.10x raw. They are in the default set, after the
//!   TCP scenarios, with 4 rounds instead of 6 in a default-length run
//!   (about 30 s; `ECHO_BENCH_ROUNDS` or `ECHO_BENCH_QUICK` set the rounds
//!   for them as for the rest); `ECHO_BENCH_FILTER=unix` runs them alone.
//!
//! Every new scenario runs ours and raw in the same run. The memory and
//! slow-reader scenarios run a warm-up round (memory only) and then 1
//! (quick) or 3 rounds per server variant, medians.
//!
//! Profiles: `cargo bench --bench echo` builds with the `bench` profile
//! (release, `debug = 1`); `cargo bench --profile bench-release --bench
//! echo` with thin LTO and one codegen unit (Cargo.toml; panics stay
//! `unwind`). Both sides are in the same binary, so they are always built
//! alike. The binaries are `target/release/deps/echo-*` and
//! `target/bench-release/deps/echo-*` (for callgrind).
//!
//! Environment:
//!
//! * `ECHO_BENCH_QUICK=1`: a short run (3 rounds of 0.25 s; the default is
//!   6 rounds of 1.2 s, about two minutes in all, plus about 30 s for the
//!   `unix-*` scenarios).
//! * `ECHO_BENCH_ROUNDS=n`, `ECHO_BENCH_SECS=x`: rounds and seconds per round.
//! * `ECHO_BENCH_WARMUP_SECS=x`: warm-up per scenario and server (0: none).
//! * `ECHO_BENCH_OPS=n`: at most `n` operations per connection per round
//!   (fixed-count runs, e.g. under callgrind; bulk: `n` chunks).
//! * `ECHO_BENCH_ONLY=ours|raw`: run one server only (profiling).
//! * `ECHO_BENCH_FILTER=a,b`: only scenarios whose id contains one of these
//!   (a first command-line argument that does not start with `-` works too);
//!   a filter equal to a scenario id selects that scenario only (`mem` is
//!   not `mem-keep64`, `writelines-1` is not `writelines-16`).
//! * `ECHO_BENCH_PIN=1`: pin the server threads to CPU 1 and the client to
//!   CPU 0 (off by default: on a VM the cross-CPU wake-ups it forces cost
//!   more than they steady).
//! * `ECHO_BENCH_VERBOSE=1`: print every round.
//! * `ECHO_BENCH_MEM_CONNS=n`: connections in the memory scenarios (500).
//! * `ECHO_BENCH_KEEP_FIRST=n`: size of `mem-keep64`'s first message (1024).
//! * `ECHO_BENCH_SLOW_BYTES=n`: bytes per `slow-reader` round (1 MiB quick,
//!   2 MiB otherwise).
//!
//! `docs/performance.md` has the results, the method in full, and how to
//! count instructions per operation with callgrind (the user/system split of
//! `getrusage` is tick-sampled, so per-round user figures are noisy).

mod common;
#[path = "common/measure.rs"]
mod measure;

use common::{ServerThread, median, pin_to_cpu};
use measure::{Round, Summary, sample, summarize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio_transports::{
    BaseProtocol, Buffered, BufferedProtocol, IntoProtocol, Protocol, Server, ServerOptions,
    Transport,
};

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

/// Start our server with `factory` on the current (server-thread) runtime.
async fn start_ours<F, P>(factory: F) -> (Server, u16)
where
    F: Fn() -> P + Send + Sync + 'static,
    P: IntoProtocol,
{
    let options = ServerOptions::default()
        // tokio's TcpListener::bind uses 1024 too.
        .backlog(1024);
    let server = tokio_transports::create_server(factory, "127.0.0.1", 0, options)
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

/// Start our [`Echo`] server on the Unix socket `path` on the current
/// (server-thread) runtime; it removes the socket file when it closes.
async fn start_ours_unix(path: PathBuf) -> Server {
    tokio_transports::create_unix_server(Echo::default, &path, ServerOptions::default())
        .await
        .expect("create_unix_server")
}

/// [`start_raw`] over a Unix stream socket bound at `path`: a task per
/// connection, a heap buffer of `buf_size` bytes, `read_buf` + `write_all`.
/// The caller removes the socket file.
async fn start_raw_unix(path: PathBuf, buf_size: usize) {
    let listener = UnixListener::bind(&path).expect("bind unix");
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
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
}

/// A fresh temporary directory for the Unix sockets of one run; removed
/// (with whatever is left in it) on drop, panics included.
struct SocketDir {
    path: PathBuf,
}

impl SocketDir {
    fn create() -> SocketDir {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Bounded: a handful of names, each new to this process.
        for attempt in 0..16u32 {
            let path = base.join(format!(
                "echo-bench-{}-{nanos:x}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return SocketDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
        panic!("no fresh socket directory under {}", base.display());
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A raw tokio accept loop: `TCP_NODELAY` on each socket, then `conn(sock)`
/// on a task of its own.
async fn raw_accept_loop<F, Fut>(conn: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    tokio::spawn(async move {
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(conn(sock));
        }
    });
    port
}

// ---------------------------------------------------------------------------
// Probes the servers of the newer scenarios update (one server runs at a
// time, so process-wide counters are enough).
// ---------------------------------------------------------------------------

/// Connections accepted by the idle-memory servers (never decremented).
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
/// Woken on every `ACCEPTED` increment.
static ACCEPTED_NOTIFY: LazyLock<Notify> = LazyLock::new(Notify::new);
/// `get_buffer` calls (ours) in `mem-buffered-idle`.
static GET_BUFFER_CALLS: AtomicU64 = AtomicU64::new(0);
/// Lazy 64 KiB buffer allocations (ours: in `get_buffer`; raw: after the
/// first readiness) in `mem-buffered-idle`.
static LAZY_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Raw tokio in `mem-buffered-idle`: readiness that found nothing to read.
static SPURIOUS_READY: AtomicU64 = AtomicU64::new(0);
/// `slow-reader`: the most bytes seen buffered (ours: the transport's
/// `get_write_buffer_size()`; raw: the server's user-space queue).
static SLOW_PEAK: AtomicUsize = AtomicUsize::new(0);
/// `slow-reader`: times the server paused reading.
static SLOW_PAUSES: AtomicU64 = AtomicU64::new(0);

fn note_accepted() {
    ACCEPTED.fetch_add(1, Ordering::AcqRel);
    ACCEPTED_NOTIFY.notify_waiters();
}

/// Wait (at most `IO_TIMEOUT`) until `ACCEPTED` reaches `target`.
async fn wait_accepted(target: usize) {
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    // Bounded: every pass but the last waits for a wake-up, each of which
    // comes with an increment (or the deadline ends it).
    for _ in 0..=target.saturating_mul(4) + 16 {
        let notified = ACCEPTED_NOTIFY.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ACCEPTED.load(Ordering::Acquire) >= target {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break;
        }
    }
    let now = ACCEPTED.load(Ordering::Acquire);
    assert!(
        now >= target,
        "server accepted {now} of {target} connections"
    );
}

fn note_slow_peak(buffered: usize) {
    SLOW_PEAK.fetch_max(buffered, Ordering::Relaxed);
}

/// asyncio's flow-control idiom, shared by the protocols below.
fn pause_reading_of(t: &Option<Transport>) {
    if let Some(t) = t {
        t.pause_reading();
    }
}

fn resume_reading_of(t: &Option<Transport>) {
    if let Some(t) = t {
        t.resume_reading();
    }
}

// ---------------------------------------------------------------------------
// `writelines-16`, `write-16`, `writelines-1`: echo in chunks.
// ---------------------------------------------------------------------------

/// How the chunked echo writes a received chunk back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkMode {
    /// One `writelines` of 16 zero-copy slices.
    Writelines16,
    /// 16 `write` calls, one per slice.
    Write16,
    /// One `writelines` of the whole chunk.
    Writelines1,
}

impl ChunkMode {
    const ALL: [ChunkMode; 3] = [
        ChunkMode::Writelines16,
        ChunkMode::Write16,
        ChunkMode::Writelines1,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Slices per answer (raw tokio writes as many `IoSlice`s at once).
    fn chunks(self) -> usize {
        match self {
            ChunkMode::Writelines16 | ChunkMode::Write16 => 16,
            ChunkMode::Writelines1 => 1,
        }
    }
}

/// `data` cut into 16 zero-copy slices of (nearly) equal length.
fn split16(data: &Bytes) -> [Bytes; 16] {
    let n = data.len();
    std::array::from_fn(|i| data.slice(i * n / 16..(i + 1) * n / 16))
}

/// Echoes every chunk back in pieces (see [`ChunkMode`]); flow control as
/// [`Echo`].
struct Chunked {
    transport: Option<Transport>,
    mode: ChunkMode,
}

impl BaseProtocol for Chunked {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn pause_writing(&mut self) {
        pause_reading_of(&self.transport);
    }

    fn resume_writing(&mut self) {
        resume_reading_of(&self.transport);
    }
}

impl Protocol for Chunked {
    fn data_received(&mut self, data: Bytes) {
        let Some(t) = &self.transport else { return };
        match self.mode {
            ChunkMode::Writelines16 => {
                let _ = t.writelines(split16(&data));
            }
            ChunkMode::Write16 => {
                for part in split16(&data) {
                    let _ = t.write(part);
                }
            }
            ChunkMode::Writelines1 => {
                let _ = t.writelines([data]);
            }
        }
    }
}

/// Write every slice of `bufs` (a hand-written `write_all` for vectored
/// writes). Bounded: each pass writes at least one byte or returns.
async fn write_all_vectored(sock: &mut TcpStream, mut bufs: &mut [IoSlice<'_>]) -> bool {
    while !bufs.is_empty() {
        match sock.write_vectored(bufs).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
        }
    }
    true
}

/// Raw tokio's chunked echo: the 64 KiB read buffer of [`start_raw`], the
/// answer written as `chunks` slices of it in one vectored write (one
/// `writev`, as a hand-written server would do it), or with `write_all`
/// for one chunk.
async fn start_raw_chunked(chunks: usize) -> u16 {
    raw_accept_loop(move |mut sock| async move {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let ok = if chunks == 1 {
                sock.write_all(&buf).await.is_ok()
            } else {
                let n = buf.len();
                let mut slices: [IoSlice<'_>; 16] =
                    std::array::from_fn(|i| IoSlice::new(&buf[i * n / 16..(i + 1) * n / 16]));
                write_all_vectored(&mut sock, &mut slices).await
            };
            if !ok {
                return;
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// `mem-keep64`: each connection keeps the last 64 bytes it received.
// ---------------------------------------------------------------------------

/// The client sends `KEEP_FIRST` bytes (1 KiB unless
/// `ECHO_BENCH_KEEP_FIRST` says otherwise), waits for a one-byte ack, sends
/// `KEEP_SECOND` bytes, waits for the second ack.
static KEEP_FIRST: AtomicUsize = AtomicUsize::new(1024);
const KEEP_SECOND: usize = 64;
const KEEP: usize = 64;

/// Ack owed after `before` bytes, now `after`: one per milestone crossed.
fn keep_acks(before: usize, after: usize) -> usize {
    let first = KEEP_FIRST.load(Ordering::Relaxed);
    [first, first + KEEP_SECOND]
        .iter()
        .filter(|&&m| before < m && after >= m)
        .count()
}

/// Keeps the last 64 bytes of the last `data_received` chunk as a
/// zero-copy slice of it (as a framing protocol keeps a partial frame), and
/// acks each milestone with one byte.
#[derive(Default)]
struct Keep64 {
    transport: Option<Transport>,
    kept: Bytes,
    total: usize,
}

impl BaseProtocol for Keep64 {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }
}

impl Protocol for Keep64 {
    fn data_received(&mut self, data: Bytes) {
        let before = self.total;
        self.total += data.len();
        self.kept = data.slice(data.len().saturating_sub(KEEP)..);
        if let Some(t) = &self.transport {
            for _ in 0..keep_acks(before, self.total) {
                let _ = t.write(Bytes::from_static(b"k"));
            }
        }
    }
}

/// Raw tokio, keeping its 4 KiB read buffer per connection with the last
/// 64 bytes left in it (what a hand-written framing server does).
async fn start_raw_keep_buf() -> u16 {
    raw_accept_loop(|mut sock| async move {
        let mut buf: Vec<u8> = Vec::with_capacity(4 * 1024);
        let mut total = 0usize;
        loop {
            let n = match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let before = total;
            total += n;
            let len = buf.len();
            if len > KEEP {
                buf.drain(..len - KEEP);
            }
            for _ in 0..keep_acks(before, total) {
                if sock.write_all(b"k").await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// Read what is ready into a stack buffer (never held across an `.await`)
/// and copy its last 64 bytes into `kept`. `None` at EOF or on an error.
fn read_keep_copy(sock: &TcpStream, kept: &mut Vec<u8>) -> Option<usize> {
    let mut stack = [0u8; 4096];
    match sock.try_read(&mut stack) {
        Ok(0) => None,
        Ok(n) => {
            kept.clear();
            kept.extend_from_slice(&stack[n.saturating_sub(KEEP)..n]);
            Some(n)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(0),
        Err(_) => None,
    }
}

/// Raw tokio, keeping only a 64-byte copy per connection: wait for
/// readiness, read into a stack buffer, copy the tail.
async fn start_raw_keep_copy() -> u16 {
    raw_accept_loop(|mut sock| async move {
        let mut kept: Vec<u8> = Vec::with_capacity(KEEP);
        let mut total = 0usize;
        loop {
            if sock.readable().await.is_err() {
                return;
            }
            let Some(n) = read_keep_copy(&sock, &mut kept) else {
                return;
            };
            let before = total;
            total += n;
            for _ in 0..keep_acks(before, total) {
                if sock.write_all(b"k").await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// `mem-buffered-idle`: a BufferedProtocol that allocates lazily.
// ---------------------------------------------------------------------------

/// Size of the lazily allocated receive buffers.
const LAZY_BUF: usize = 64 * 1024;

/// A `BufferedProtocol` whose buffer is allocated on the first
/// `get_buffer` call, so an idle connection's memory shows whether the
/// transport asked for a buffer before any data came.
#[derive(Default)]
struct LazyBuffered {
    buf: BytesMut,
}

impl BaseProtocol for LazyBuffered {
    fn connection_made(&mut self, _transport: &Transport) {
        note_accepted();
    }
}

impl BufferedProtocol for LazyBuffered {
    fn get_buffer(&mut self, _sizehint: usize) -> &mut BytesMut {
        GET_BUFFER_CALLS.fetch_add(1, Ordering::Relaxed);
        if self.buf.capacity() == 0 {
            LAZY_ALLOCS.fetch_add(1, Ordering::Relaxed);
            self.buf.reserve(LAZY_BUF);
        }
        &mut self.buf
    }

    fn buffer_updated(&mut self, _nbytes: usize) {
        self.buf.clear();
    }
}

/// Raw tokio's first read of a lazily buffered connection: into a small
/// stack buffer (never held across an `.await`); the 64 KiB buffer is
/// allocated only when that read brings data. `None` at EOF or on an
/// error; `Some(false)` when the readiness was spurious.
fn raw_lazy_first_read(sock: &TcpStream, buf: &mut Vec<u8>) -> Option<bool> {
    let mut stack = [0u8; 256];
    match sock.try_read(&mut stack) {
        Ok(0) => None,
        Ok(n) => {
            LAZY_ALLOCS.fetch_add(1, Ordering::Relaxed);
            buf.reserve(LAZY_BUF);
            buf.extend_from_slice(&stack[..n]);
            Some(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            SPURIOUS_READY.fetch_add(1, Ordering::Relaxed);
            Some(false)
        }
        Err(_) => None,
    }
}

/// Raw tokio's lazy equivalent: wait for readiness; allocate the 64 KiB
/// buffer only once a read brings data (tokio reports a freshly accepted
/// socket readable once even when nothing came, so allocating on the first
/// readiness would allocate on every connection), then read into it.
async fn start_raw_lazy() -> u16 {
    raw_accept_loop(|sock| async move {
        note_accepted();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            if sock.readable().await.is_err() {
                return;
            }
            if buf.capacity() == 0 {
                match raw_lazy_first_read(&sock, &mut buf) {
                    None => return,
                    Some(_) => continue,
                }
            }
            buf.clear();
            match sock.try_read_buf(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// `slow-reader`: an echo that floods a peer reading at about 1 MB/s.
// ---------------------------------------------------------------------------

/// asyncio's default high watermark (what ours uses unless told).
const HIGH_WATER: usize = 64 * 1024;
/// asyncio's default low watermark.
const LOW_WATER: usize = 16 * 1024;

/// `slow-reader`'s kernel buffers: the servers' `SO_SNDBUF` and the client's
/// `SO_RCVBUF` (Linux doubles both), kept small and equal for both servers
/// so that the flood reaches user space within a short run (autotuned
/// loopback buffers would absorb megabytes first).
const SLOW_SOCK_BUF: usize = 32 * 1024;

/// [`Echo`] with the write buffer's size sampled after every write and in
/// `pause_writing`/`resume_writing`.
#[derive(Default)]
struct Flood {
    transport: Option<Transport>,
}

impl Flood {
    fn sample(&self) {
        if let Some(t) = &self.transport {
            note_slow_peak(t.get_write_buffer_size());
        }
    }
}

impl BaseProtocol for Flood {
    fn connection_made(&mut self, transport: &Transport) {
        transport.with_socket(|s| s.set_send_buffer_size(SLOW_SOCK_BUF).expect("SO_SNDBUF"));
        self.transport = Some(transport.clone());
    }

    fn pause_writing(&mut self) {
        SLOW_PAUSES.fetch_add(1, Ordering::Relaxed);
        self.sample();
        pause_reading_of(&self.transport);
    }

    fn resume_writing(&mut self) {
        self.sample();
        resume_reading_of(&self.transport);
    }
}

impl Protocol for Flood {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            let _ = t.write(data);
        }
        self.sample();
    }
}

/// Raw tokio's equivalent: reads of at most 64 KiB go into a user-space
/// queue that is written out as the socket takes it; reading stops while
/// more than `HIGH_WATER` bytes are queued and resumes at `LOW_WATER` (the
/// same pause logic). The queue's size is sampled after every read.
async fn start_raw_flood() -> u16 {
    raw_accept_loop(|sock| async move {
        socket2::SockRef::from(&sock)
            .set_send_buffer_size(SLOW_SOCK_BUF)
            .expect("SO_SNDBUF");
        let (mut rd, mut wr) = sock.into_split();
        let mut rbuf = vec![0u8; 64 * 1024];
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        let mut buffered = 0usize;
        let mut paused = false;
        let mut eof = false;
        // Bounded by the peer: every pass reads or writes at least a byte,
        // or ends the connection.
        loop {
            if eof && queue.is_empty() {
                let _ = wr.shutdown().await;
                return;
            }
            let front = queue.front().cloned().unwrap_or_default();
            tokio::select! {
                biased;
                w = wr.write(&front), if !front.is_empty() => match w {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buffered -= n;
                        if n == front.len() {
                            queue.pop_front();
                        } else if let Some(f) = queue.front_mut() {
                            *f = f.slice(n..);
                        }
                        if paused && buffered <= LOW_WATER {
                            paused = false;
                        }
                    }
                },
                r = rd.read(&mut rbuf), if !paused && !eof => match r {
                    Ok(0) => eof = true,
                    Err(_) => return,
                    Ok(n) => {
                        queue.push_back(Bytes::copy_from_slice(&rbuf[..n]));
                        buffered += n;
                        note_slow_peak(buffered);
                        if buffered > HIGH_WATER {
                            paused = true;
                            SLOW_PAUSES.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                },
            }
        }
    })
    .await
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
    /// Rounds of the `unix-*` scenarios: `rounds` when `ECHO_BENCH_ROUNDS`
    /// or `ECHO_BENCH_QUICK` is set, 4 otherwise (keeps the default run
    /// about 30 s longer than without them).
    unix_rounds: usize,
    dur: Duration,
    warmup: Duration,
    max_ops: u64,
    only: Option<Which>,
    filter: Vec<String>,
    pin: bool,
    mem_conns: usize,
    mem_rounds: usize,
    /// Bytes the slow-reader client sends (and reads back) per round.
    slow_bytes: usize,
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
        let unix_rounds = if quick || env_f64("ECHO_BENCH_ROUNDS").is_some() {
            rounds
        } else {
            4
        };
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
        if let Some(v) = env_f64("ECHO_BENCH_KEEP_FIRST") {
            KEEP_FIRST.store((v as usize).clamp(1, 1 << 20), Ordering::Relaxed);
        }
        let slow_bytes = env_f64("ECHO_BENCH_SLOW_BYTES")
            .map_or(if quick { 1 << 20 } else { 2 << 20 }, |v| {
                (v as usize).clamp(64 * 1024, 64 << 20)
            });
        Config {
            quick,
            rounds,
            unix_rounds,
            dur: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64(warmup),
            max_ops,
            only,
            filter,
            pin,
            mem_conns,
            mem_rounds: if quick { 1 } else { 3 },
            slow_bytes,
            verbose: std::env::var("ECHO_BENCH_VERBOSE").is_ok_and(|v| v != "0"),
        }
    }

    /// Whether scenario `id` runs: a filter equal to some scenario's id
    /// selects that scenario only (so `writelines-1` is not also
    /// `writelines-16`, nor `mem` also `mem-keep64`); any other filter
    /// selects the ids that contain it.
    fn wants(&self, id: &str) -> bool {
        self.filter.is_empty()
            || self.filter.iter().any(|f| {
                if all_ids().any(|known| known == f) {
                    f == id
                } else {
                    id.contains(f.as_str())
                }
            })
    }

    fn runs(&self, which: Which) -> bool {
        self.only.is_none_or(|o| o == which)
    }

    /// Measured rounds per server of scenario `sc`.
    fn rounds_of(&self, sc: &Scenario) -> usize {
        if sc.is_unix() {
            self.unix_rounds
        } else {
            self.rounds
        }
    }

    /// Whether any `unix-*` scenario runs (the Unix servers start only
    /// then).
    fn wants_unix(&self) -> bool {
        SCENARIOS.iter().any(|sc| sc.is_unix() && self.wants(sc.id))
    }
}

// ---------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Request/response: `conns` connections, messages of `size` bytes,
    /// against the servers `srv`.
    Rr { size: usize, conns: usize, srv: Srv },
    /// Streaming `chunk`-byte writes over one connection.
    Bulk { chunk: usize },
    /// Connect, one echo of `size` bytes, close; `par` clients in parallel.
    Churn { size: usize, par: usize },
}

impl Kind {
    /// Whether figures are per MB (bulk) rather than per operation.
    fn per_mb(self) -> bool {
        matches!(self, Kind::Bulk { .. })
    }
}

/// Which pair of servers a request/response scenario talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Srv {
    /// [`Echo`] and [`start_raw`] with 64 KiB.
    Echo,
    /// [`Chunked`] and [`start_raw_chunked`].
    Chunked(ChunkMode),
    /// Over a Unix stream socket: [`Echo`] ([`start_ours_unix`]) and
    /// [`start_raw_unix`] with 64 KiB.
    Unix,
}

impl Scenario {
    fn is_unix(&self) -> bool {
        matches!(self.kind, Kind::Rr { srv: Srv::Unix, .. })
    }
}

struct Scenario {
    id: &'static str,
    title: &'static str,
    kind: Kind,
    /// Target for the user-CPU ratio ours/raw (the performance issue's);
    /// `None`: no target against raw tokio (the chunked scenarios are judged
    /// against each other: writelines no dearer than the loop of writes).
    target: Option<f64>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "rr-64-x1",
        title: "req/resp 64 B, 1 conn",
        kind: Kind::Rr {
            size: 64,
            conns: 1,
            srv: Srv::Echo,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "rr-1k-x1",
        title: "req/resp 1 KiB, 1 conn",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
            srv: Srv::Echo,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "rr-64-x64",
        title: "req/resp 64 B, 64 conns",
        kind: Kind::Rr {
            size: 64,
            conns: 64,
            srv: Srv::Echo,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "rr-1k-x64",
        title: "req/resp 1 KiB, 64 conns",
        kind: Kind::Rr {
            size: 1024,
            conns: 64,
            srv: Srv::Echo,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "writelines-16",
        title: "req/resp 1 KiB as 16 chunks, writelines",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
            srv: Srv::Chunked(ChunkMode::Writelines16),
        },
        target: None,
    },
    Scenario {
        id: "write-16",
        title: "req/resp 1 KiB as 16 chunks, 16 writes",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
            srv: Srv::Chunked(ChunkMode::Write16),
        },
        target: None,
    },
    Scenario {
        id: "writelines-1",
        title: "req/resp 1 KiB, writelines of 1 chunk",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
            srv: Srv::Chunked(ChunkMode::Writelines1),
        },
        target: None,
    },
    Scenario {
        id: "bulk-64k",
        title: "bulk 64 KiB writes, 1 conn",
        kind: Kind::Bulk { chunk: 64 * 1024 },
        target: Some(1.05),
    },
    Scenario {
        id: "churn",
        title: "churn: connect+echo 64 B+close, 4 clients",
        kind: Kind::Churn { size: 64, par: 4 },
        target: Some(1.15),
    },
    Scenario {
        id: "unix-rr-64-x1",
        title: "unix req/resp 64 B, 1 conn",
        kind: Kind::Rr {
            size: 64,
            conns: 1,
            srv: Srv::Unix,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "unix-rr-1k-x1",
        title: "unix req/resp 1 KiB, 1 conn",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
            srv: Srv::Unix,
        },
        target: Some(1.10),
    },
    Scenario {
        id: "unix-rr-64-x64",
        title: "unix req/resp 64 B, 64 conns",
        kind: Kind::Rr {
            size: 64,
            conns: 64,
            srv: Srv::Unix,
        },
        target: Some(1.10),
    },
];

/// The scenarios outside [`SCENARIOS`], run after them in this order.
const MEM_ID: &str = "mem";
const MEM_KEEP_ID: &str = "mem-keep64";
const MEM_BUFFERED_ID: &str = "mem-buffered-idle";
const SLOW_ID: &str = "slow-reader";

/// Every scenario id.
fn all_ids() -> impl Iterator<Item = &'static str> {
    SCENARIOS
        .iter()
        .map(|sc| sc.id)
        .chain([MEM_ID, MEM_KEEP_ID, MEM_BUFFERED_ID, SLOW_ID])
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

/// A Unix stream connection to `path`.
async fn connect_unix(path: &Path) -> UnixStream {
    io("connect unix", UnixStream::connect(path)).await
}

async fn echo_once<S>(s: &mut S, msg: &[u8], buf: &mut [u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io("write", s.write_all(msg)).await;
    io("read", s.read_exact(buf)).await;
}

/// Request/response on every stream until `deadline` or `max_ops` each.
/// Returns the streams (closed by the caller after the CPU sample).
async fn rr_run<S>(
    streams: Vec<S>,
    size: usize,
    deadline: Instant,
    max_ops: u64,
) -> (Vec<S>, u64, Vec<u64>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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

/// One request/response round against the server on `thread`: set up
/// outside the measurement (`conns` times: connect, one echo), then measure
/// [`rr_run`] for `dur` (or `max_ops` per connection).
async fn rr_round<S, C, Fut>(
    thread: &ServerThread,
    connect: C,
    size: usize,
    conns: usize,
    dur: Duration,
    max_ops: u64,
) -> Round
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    // Set up outside the measurement: connect, one echo each.
    let msg = vec![0x5au8; size];
    let mut buf = vec![0u8; size];
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut s = connect().await;
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

/// The ports of one side's servers (all on that side's thread).
#[derive(Debug, Default, Clone, Copy)]
struct Ports {
    /// [`Echo`]; raw: 64 KiB buffer.
    echo: u16,
    /// Raw only: the echo with a 4 KiB buffer.
    echo4k: u16,
    /// [`Chunked`] by [`ChunkMode::index`]; raw: [`start_raw_chunked`].
    chunk: [u16; 3],
    /// [`Keep64`]; raw: [`start_raw_keep_buf`].
    keep: u16,
    /// Raw only: [`start_raw_keep_copy`].
    keep_copy: u16,
    /// [`LazyBuffered`]; raw: [`start_raw_lazy`].
    idle: u16,
    /// [`Flood`]; raw: [`start_raw_flood`].
    flood: u16,
}

/// One side of the comparison: its thread, its servers, their ports.
struct Side {
    thread: ServerThread,
    /// Ours only; kept open for the whole run.
    _servers: Vec<Server>,
    ports: Ports,
    /// The Unix echo server, when a `unix-*` scenario runs.
    unix: Option<UnixEcho>,
}

/// One side's Unix echo server: its socket path and (ours) the server.
struct UnixEcho {
    path: PathBuf,
    /// Ours only.
    server: Option<Server>,
}

impl Side {
    /// Close the Unix echo server and make sure its socket file is gone:
    /// ours removes it itself on close (checked), raw's is removed here.
    /// Ours is closed on its own server thread, as a server's owner would.
    /// (This bench found that a Unix server closed from another thread
    /// could leave its accept task spinning: a shut-down Unix listener
    /// reads as ready forever while `accept` finds nothing. Fixed in the
    /// crate: the task is aborted before the shutdown, and its accept
    /// yields through tokio's budget; `server::listener` has the test.)
    async fn close_unix(&mut self) {
        let Some(unix) = self.unix.as_mut() else {
            return;
        };
        match unix.server.take() {
            Some(server) => {
                self.thread.run(async move { server.close() }).await;
                if unix.path.exists() {
                    eprintln!(
                        "warning: {} still exists after our server closed",
                        unix.path.display()
                    );
                    let _ = std::fs::remove_file(&unix.path);
                }
            }
            None => {
                let _ = std::fs::remove_file(&unix.path);
            }
        }
    }
}

impl Side {
    async fn start_ours(thread: ServerThread, unix_dir: Option<&SocketDir>) -> Side {
        let mut servers = Vec::new();
        let mut ports = Ports::default();
        let (s, p) = thread.run(start_ours(Echo::default)).await;
        servers.push(s);
        ports.echo = p;
        for mode in ChunkMode::ALL {
            let factory = move || Chunked {
                transport: None,
                mode,
            };
            let (s, p) = thread.run(start_ours(factory)).await;
            servers.push(s);
            ports.chunk[mode.index()] = p;
        }
        let (s, p) = thread.run(start_ours(Keep64::default)).await;
        servers.push(s);
        ports.keep = p;
        let (s, p) = thread
            .run(start_ours(|| Buffered(LazyBuffered::default())))
            .await;
        servers.push(s);
        ports.idle = p;
        let (s, p) = thread.run(start_ours(Flood::default)).await;
        servers.push(s);
        ports.flood = p;
        let mut unix = None;
        if let Some(dir) = unix_dir {
            let path = dir.socket("ours.sock");
            let server = thread.run(start_ours_unix(path.clone())).await;
            unix = Some(UnixEcho {
                path,
                server: Some(server),
            });
        }
        Side {
            thread,
            _servers: servers,
            ports,
            unix,
        }
    }

    async fn start_raw(thread: ServerThread, unix_dir: Option<&SocketDir>) -> Side {
        let mut ports = Ports {
            echo: thread.run(start_raw(64 * 1024)).await,
            echo4k: thread.run(start_raw(4 * 1024)).await,
            ..Ports::default()
        };
        for mode in ChunkMode::ALL {
            ports.chunk[mode.index()] = thread.run(start_raw_chunked(mode.chunks())).await;
        }
        ports.keep = thread.run(start_raw_keep_buf()).await;
        ports.keep_copy = thread.run(start_raw_keep_copy()).await;
        ports.idle = thread.run(start_raw_lazy()).await;
        ports.flood = thread.run(start_raw_flood()).await;
        let mut unix = None;
        if let Some(dir) = unix_dir {
            let path = dir.socket("raw.sock");
            thread.run(start_raw_unix(path.clone(), 64 * 1024)).await;
            unix = Some(UnixEcho { path, server: None });
        }
        Side {
            thread,
            _servers: Vec::new(),
            ports,
            unix,
        }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Bench {
    cfg: Config,
    ours: Option<Side>,
    raw: Option<Side>,
}

impl Bench {
    fn side(&self, which: Which) -> &Side {
        match which {
            Which::Ours => self.ours.as_ref().expect("ours running"),
            Which::Raw => self.raw.as_ref().expect("raw running"),
        }
    }

    fn target(&self, which: Which, srv: Srv) -> (&ServerThread, SocketAddr) {
        let side = self.side(which);
        let port = match srv {
            Srv::Echo => side.ports.echo,
            Srv::Chunked(mode) => side.ports.chunk[mode.index()],
            Srv::Unix => unreachable!("a Unix scenario has no TCP address"),
        };
        (&side.thread, local(port))
    }

    async fn round(&self, which: Which, kind: Kind, dur: Duration) -> Round {
        let max_ops = self.cfg.max_ops;
        if let Kind::Rr {
            size,
            conns,
            srv: Srv::Unix,
        } = kind
        {
            let side = self.side(which);
            let path = &side.unix.as_ref().expect("unix server running").path;
            return rr_round(
                &side.thread,
                || connect_unix(path),
                size,
                conns,
                dur,
                max_ops,
            )
            .await;
        }
        let srv = match kind {
            Kind::Rr { srv, .. } => srv,
            Kind::Bulk { .. } | Kind::Churn { .. } => Srv::Echo,
        };
        let (thread, addr) = self.target(which, srv);
        match kind {
            Kind::Rr { size, conns, .. } => {
                rr_round(thread, || connect(addr), size, conns, dur, max_ops).await
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
        for r in 0..self.cfg.rounds_of(sc) {
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
        let (o, r) = (
            summarize(&ours, sc.kind.per_mb()),
            summarize(&raw, sc.kind.per_mb()),
        );
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
            if let Some(side) = &self.ours {
                let (b, res) = self.mem_round(&side.thread, side.ports.echo, n).await;
                if r > 0 {
                    ours.push(b);
                    residues.push(("ours", res));
                }
            }
            if let Some(side) = &self.raw {
                let t = &side.thread;
                let (b, res64) = self.mem_round(t, side.ports.echo, n).await;
                let (b4, res4) = self.mem_round(t, side.ports.echo4k, n).await;
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

    /// Heap bytes the server thread holds per idle connection after `load`
    /// (see [`IdleLoad`]): open `n` connections, run the load on each, wait,
    /// measure; close them all, wait, measure the residue.
    async fn idle_round(
        &self,
        thread: &ServerThread,
        port: u16,
        n: usize,
        load: IdleLoad,
    ) -> IdleRound {
        let addr = local(port);
        let first = vec![0x42u8; KEEP_FIRST.load(Ordering::Relaxed)];
        let second = vec![0x43u8; KEEP_SECOND];
        let mut ack = [0u8; 1];
        settle(50).await;
        let before = sample(thread).await;
        let rss_before = rss_bytes();
        let calls_before = GET_BUFFER_CALLS.load(Ordering::Acquire);
        let lazy_before = LAZY_ALLOCS.load(Ordering::Acquire);
        let spurious_before = SPURIOUS_READY.load(Ordering::Acquire);
        let accepted_before = ACCEPTED.load(Ordering::Acquire);
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = connect(addr).await;
            if load == IdleLoad::Keep64 {
                echo_once(&mut s, &first, &mut ack).await;
                echo_once(&mut s, &second, &mut ack).await;
            }
            streams.push(s);
        }
        if load == IdleLoad::Silent {
            wait_accepted(accepted_before + n).await;
        }
        settle(100).await;
        let after = sample(thread).await;
        let rss_after = rss_bytes();
        let calls = GET_BUFFER_CALLS.load(Ordering::Acquire) - calls_before;
        let lazy = LAZY_ALLOCS.load(Ordering::Acquire) - lazy_before;
        let spurious = SPURIOUS_READY.load(Ordering::Acquire) - spurious_before;
        drop(streams);
        settle(200).await;
        let end = sample(thread).await;
        IdleRound {
            per_conn: (after.net_bytes - before.net_bytes) as f64 / n as f64,
            rss_per_conn: (rss_after - rss_before) as f64 / n as f64,
            residue: (end.net_bytes - before.net_bytes) as f64,
            get_buffer: calls as f64 / n as f64,
            lazy: lazy as f64 / n as f64,
            spurious: spurious as f64 / n as f64,
        }
    }

    /// `mem-keep64` or `mem-buffered-idle`: a warm-up round, then
    /// `mem_rounds` rounds of every server variant, medians.
    async fn idle_memory(&self, load: IdleLoad) -> IdleResult {
        let n = self.cfg.mem_conns;
        let mut variants: Vec<(&'static str, &ServerThread, u16)> = Vec::new();
        if let Some(side) = &self.ours {
            let (label, port) = match load {
                IdleLoad::Keep64 => ("ours, Bytes::slice kept", side.ports.keep),
                IdleLoad::Silent => ("ours, BufferedProtocol", side.ports.idle),
            };
            variants.push((label, &side.thread, port));
        }
        if let Some(side) = &self.raw {
            match load {
                IdleLoad::Keep64 => {
                    variants.push(("raw, 4 KiB read buf kept", &side.thread, side.ports.keep));
                    variants.push(("raw, 64 B copy kept", &side.thread, side.ports.keep_copy));
                }
                IdleLoad::Silent => {
                    variants.push(("raw, lazy buf on first data", &side.thread, side.ports.idle));
                }
            }
        }
        let mut rounds: Vec<Vec<IdleRound>> = vec![Vec::new(); variants.len()];
        for r in 0..=self.cfg.mem_rounds {
            for (i, (label, thread, port)) in variants.iter().enumerate() {
                let round = self.idle_round(thread, *port, n, load).await;
                if self.cfg.verbose {
                    eprintln!("  {load:?} round {r} {label}: {round:?}");
                }
                if r > 0 {
                    rounds[i].push(round);
                }
            }
        }
        let rows = variants
            .iter()
            .zip(rounds)
            .map(|((label, _, _), rs)| IdleRow {
                label,
                ours: label.starts_with("ours"),
                per_conn: median(rs.iter().map(|r| r.per_conn).collect()),
                rss_per_conn: median(rs.iter().map(|r| r.rss_per_conn).collect()),
                residue: median(rs.iter().map(|r| r.residue).collect()),
                get_buffer: median(rs.iter().map(|r| r.get_buffer).collect()),
                lazy: median(rs.iter().map(|r| r.lazy).collect()),
                spurious: median(rs.iter().map(|r| r.spurious).collect()),
            })
            .collect();
        IdleResult { load, n, rows }
    }

    /// One `slow-reader` round against `which`'s flooding echo.
    async fn slow_round(&self, which: Which) -> SlowRound {
        let side = self.side(which);
        let addr = local(side.ports.flood);
        let total = self.cfg.slow_bytes;
        settle(20).await;
        SLOW_PEAK.store(0, Ordering::Release);
        SLOW_PAUSES.store(0, Ordering::Release);
        let t0 = Instant::now();
        // Three times the paced reading time, plus slack.
        let deadline = t0 + Duration::from_secs_f64(3.0 * total as f64 / SLOW_RATE + 5.0);
        let bytes = slow_run(addr, total, deadline).await;
        let elapsed = t0.elapsed();
        settle(20).await;
        SlowRound {
            peak: SLOW_PEAK.load(Ordering::Acquire),
            pauses: SLOW_PAUSES.load(Ordering::Acquire),
            bytes,
            elapsed,
        }
    }

    /// `slow-reader`: `mem_rounds` rounds per server, alternating.
    async fn slow_reader(&self) -> SlowResult {
        let servers: Vec<Which> = [Which::Ours, Which::Raw]
            .into_iter()
            .filter(|w| self.cfg.runs(*w))
            .collect();
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        for r in 0..self.cfg.mem_rounds {
            let mut order = servers.clone();
            if r % 2 == 1 {
                order.reverse();
            }
            for w in order {
                let round = self.slow_round(w).await;
                if self.cfg.verbose {
                    eprintln!("  {SLOW_ID} round {r} {}: {round:?}", w.name());
                }
                match w {
                    Which::Ours => ours.push(round),
                    Which::Raw => raw.push(round),
                }
            }
        }
        SlowResult {
            total: self.cfg.slow_bytes,
            ours,
            raw,
        }
    }
}

// ---------------------------------------------------------------------------
// The idle-memory and slow-reader scenarios' clients and results.
// ---------------------------------------------------------------------------

/// What the clients of an idle-memory round do before going idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleLoad {
    /// `mem-keep64`: send 1 KiB, wait for the ack, send 64 B, wait for the
    /// ack.
    Keep64,
    /// `mem-buffered-idle`: nothing at all.
    Silent,
}

/// One idle-memory round of one server variant.
#[derive(Debug, Clone, Copy, Default)]
struct IdleRound {
    /// Server thread's heap bytes per idle connection.
    per_conn: f64,
    /// The process's resident set per connection (indicative: the client's
    /// side is in it too).
    rss_per_conn: f64,
    /// Server thread's heap after all closed, minus before (whole thread).
    residue: f64,
    /// `get_buffer` calls per connection.
    get_buffer: f64,
    /// Lazy buffer allocations per connection.
    lazy: f64,
    /// Raw: readiness events that found nothing, per connection.
    spurious: f64,
}

struct IdleRow {
    label: &'static str,
    ours: bool,
    per_conn: f64,
    rss_per_conn: f64,
    residue: f64,
    get_buffer: f64,
    lazy: f64,
    spurious: f64,
}

struct IdleResult {
    load: IdleLoad,
    n: usize,
    rows: Vec<IdleRow>,
}

impl IdleResult {
    fn ours(&self) -> Option<&IdleRow> {
        self.rows.iter().find(|r| r.ours)
    }

    /// The first raw variant (4 KiB buffer kept / lazy buffer).
    fn raw(&self) -> Option<&IdleRow> {
        self.rows.iter().find(|r| !r.ours)
    }
}

/// The slow reader's pace: `SLOW_READ` bytes every `SLOW_PERIOD`.
const SLOW_READ: usize = 16 * 1024;
const SLOW_PERIOD: Duration = Duration::from_millis(16);
/// Bytes per second that pace gives.
const SLOW_RATE: f64 = SLOW_READ as f64 / 0.016;

/// Send `total` bytes in 64 KiB writes as fast as the server takes them
/// while reading the echo at the slow pace; returns the bytes read back.
/// Bounded by `total` and by `deadline`.
async fn slow_run(addr: SocketAddr, total: usize, deadline: Instant) -> u64 {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(SLOW_SOCK_BUF as u32)
        .expect("SO_RCVBUF");
    let s = io("connect", sock.connect(addr)).await;
    s.set_nodelay(true).expect("nodelay");
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let data = vec![0xc3u8; 64 * 1024];
        let mut sent = 0usize;
        while sent < total && Instant::now() < deadline {
            let n = (total - sent).min(data.len());
            io("slow write", wr.write_all(&data[..n])).await;
            sent += n;
        }
        io("slow shutdown", wr.shutdown()).await;
    });
    let mut tick = tokio::time::interval(SLOW_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; SLOW_READ];
    let mut got = 0u64;
    while (got as usize) < total && Instant::now() < deadline {
        tick.tick().await;
        let n = io("slow read", rd.read(&mut buf)).await;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    if (got as usize) < total {
        // The deadline passed: the writer may be stuck behind the paused
        // server.
        writer.abort();
    } else {
        writer.await.expect("slow writer");
    }
    got
}

#[derive(Debug, Clone, Copy)]
struct SlowRound {
    /// Most bytes seen buffered (see [`SLOW_PEAK`]).
    peak: usize,
    pauses: u64,
    bytes: u64,
    elapsed: Duration,
}

struct SlowResult {
    total: usize,
    ours: Vec<SlowRound>,
    raw: Vec<SlowRound>,
}

/// Median and maximum of the peaks, in multiples of the high watermark.
fn slow_peaks(rounds: &[SlowRound]) -> (f64, f64) {
    let peaks: Vec<f64> = rounds.iter().map(|r| r.peak as f64).collect();
    let max = peaks.iter().copied().fold(f64::NAN, f64::max);
    (median(peaks) / HIGH_WATER as f64, max / HIGH_WATER as f64)
}

/// The process's resident set in bytes (0 if unknown).
fn rss_bytes() -> i64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as i64
}

fn print_idle(m: &IdleResult) {
    println!();
    match m.load {
        IdleLoad::Keep64 => println!(
            "{MEM_KEEP_ID}: heap held by the server thread per idle connection that sent {} B then 64 B \
             and whose server keeps the last 64 B ({} connections)",
            KEEP_FIRST.load(Ordering::Relaxed),
            m.n
        ),
        IdleLoad::Silent => println!(
            "{MEM_BUFFERED_ID}: heap held by the server thread per idle connection that never sent anything, \
             buffer allocated lazily (64 KiB) on the first get_buffer / readiness ({} connections)",
            m.n
        ),
    }
    println!(
        "  {:<32} {:>10} {:>14} {:>12} {:>12} {:>12} {:>12}",
        "", "heap B", "RSS B (proc)", "get_buffer", "lazy allocs", "empty ready", "residue B"
    );
    for r in &m.rows {
        let (calls, spurious) = if r.ours {
            (fmt(r.get_buffer), "-".to_string())
        } else {
            ("-".to_string(), fmt(r.spurious))
        };
        println!(
            "  {:<32} {:>10.0} {:>14.0} {:>12} {:>12} {:>12} {:>+12.0}",
            r.label,
            r.per_conn,
            r.rss_per_conn,
            calls,
            fmt(r.lazy),
            spurious,
            r.residue
        );
    }
    println!(
        "  per connection; RSS is the whole process's (client included), indicative only; \
         empty ready: raw readable() wake-ups that found nothing"
    );
    if let (Some(o), Some(r)) = (m.ours(), m.raw()) {
        println!(
            "  ours / {} = {}, ours - it = {:+.0} B",
            r.label,
            ratio(o.per_conn, r.per_conn),
            o.per_conn - r.per_conn
        );
    }
}

fn print_slow(s: &SlowResult) {
    println!();
    println!(
        "{SLOW_ID}: 1 conn, the client sends {} KiB and reads 16 KiB every 16 ms (~1 MB/s); \
         the server echoes and pauses reading on pause_writing (high watermark {} KiB)",
        s.total / 1024,
        HIGH_WATER / 1024
    );
    println!(
        "  {:<6} {:>12} {:>10} {:>10} {:>8} {:>9}",
        "", "peak B", "x high", "max x", "pauses", "KB/s"
    );
    for (name, rounds) in [("ours", &s.ours), ("raw", &s.raw)] {
        if rounds.is_empty() {
            continue;
        }
        let (med, max) = slow_peaks(rounds);
        let peak = median(rounds.iter().map(|r| r.peak as f64).collect());
        let pauses = median(rounds.iter().map(|r| r.pauses as f64).collect());
        let rate = median(
            rounds
                .iter()
                .map(|r| r.bytes as f64 / r.elapsed.as_secs_f64().max(1e-9) / 1e3)
                .collect(),
        );
        println!(
            "  {:<6} {:>12.0} {:>9.2}x {:>9.2}x {:>8.0} {:>9.0}",
            name, peak, med, max, pauses, rate
        );
    }
    println!(
        "  ours: the transport's get_write_buffer_size() sampled after every write and in pause/resume_writing; \
         raw: bytes queued in user space by a hand-written server with the same pause logic (reads of at most 64 KiB)"
    );
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

    // Removed at the end of main (or while unwinding from a panic).
    let unix_dir = cfg.wants_unix().then(SocketDir::create);
    if let Some(dir) = &unix_dir {
        println!(
            "unix-*: Unix stream sockets in {}, {} rounds; ours = create_unix_server, raw = tokio UnixListener",
            dir.path.display(),
            cfg.unix_rounds
        );
    }

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    client_rt.block_on(async {
        let ours = if cfg.runs(Which::Ours) {
            let t = ServerThread::spawn("srv-ours", server_cpu);
            Some(Side::start_ours(t, unix_dir.as_ref()).await)
        } else {
            None
        };
        let raw = if cfg.runs(Which::Raw) {
            let t = ServerThread::spawn("srv-raw", server_cpu);
            Some(Side::start_raw(t, unix_dir.as_ref()).await)
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
        let mem = if bench.cfg.wants(MEM_ID) {
            bench.memory().await
        } else {
            None
        };
        let mut idle = Vec::new();
        for (id, load) in [
            (MEM_KEEP_ID, IdleLoad::Keep64),
            (MEM_BUFFERED_ID, IdleLoad::Silent),
        ] {
            if bench.cfg.wants(id) {
                idle.push(bench.idle_memory(load).await);
            }
        }
        let slow = if bench.cfg.wants(SLOW_ID) {
            Some(bench.slow_reader().await)
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
        for m in &idle {
            print_idle(m);
        }
        if let Some(s) = &slow {
            print_slow(s);
        }

        let both = bench.ours.is_some() && bench.raw.is_some();
        if both {
            println!();
            println!(
                "summary: server user CPU per unit, ours / raw: median of rounds, pooled rounds (target, judged on pooled)"
            );
            for (sc, o, r) in &summary {
                let pooled = o.pooled_user_us / r.pooled_user_us;
                let verdict = match sc.target {
                    Some(t) if pooled <= t => format!("(<= {t:.2}x) met"),
                    Some(t) => format!("(<= {t:.2}x) MISSED"),
                    None => "(no target against raw)".to_string(),
                };
                println!(
                    "  {:<44} {:>7} {:>7}  {}",
                    sc.title,
                    ratio(o.med.user_us, r.med.user_us),
                    ratio(o.pooled_user_us, r.pooled_user_us),
                    verdict
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
            let user_of = |id: &str| {
                summary
                    .iter()
                    .find(|(sc, _, _)| sc.id == id)
                    .map(|(_, o, _)| (o.med.user_us, o.pooled_user_us))
            };
            if let (Some(l), Some(w)) = (user_of("writelines-16"), user_of("write-16")) {
                println!(
                    "  {:<44} {:>7} {:>7}  (<= 1.00x) {}",
                    "ours writelines-16 / ours write-16",
                    ratio(l.0, w.0),
                    ratio(l.1, w.1),
                    if l.1 <= w.1 { "met" } else { "MISSED" }
                );
            }
        }
        // These judge ours against a fixed target, so they print with one
        // server too.
        for m in &idle {
            if let Some(o) = m.ours() {
                match m.load {
                    IdleLoad::Keep64 => println!(
                        "  {:<44} {:>8.0} B (<= 2048 B) {}",
                        "memory per idle conn keeping 64 B (ours)",
                        o.per_conn,
                        if o.per_conn <= 2048.0 { "met" } else { "MISSED" }
                    ),
                    IdleLoad::Silent => println!(
                        "  {:<44} {:>8.0} B, get_buffer calls/conn {} (0 before any data) {}",
                        "memory per idle buffered conn (ours)",
                        o.per_conn,
                        fmt(o.get_buffer),
                        if o.get_buffer == 0.0 { "met" } else { "MISSED" }
                    ),
                }
            }
        }
        if let Some(s) = slow.as_ref().filter(|s| !s.ours.is_empty()) {
            let (med, max) = slow_peaks(&s.ours);
            println!(
                "  {:<44} {:>7.2}x (max {:.2}x) of high watermark (<= 2.00x) {}",
                "slow reader: peak write buffer (ours)",
                med,
                max,
                if max <= 2.0 { "met" } else { "MISSED" }
            );
        }
        println!();
        println!("total {:.1} s", started.elapsed().as_secs_f64());
        let mut bench = bench;
        for side in [bench.ours.as_mut(), bench.raw.as_mut()].into_iter().flatten() {
            side.close_unix().await;
        }
        drop(bench);
    });
    drop(unix_dir);
}
