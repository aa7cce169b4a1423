//! TLS echo benchmark: this crate's TLS echo server (`create_server` with
//! `ServerOptions::ssl`) against a hand-written tokio-rustls echo server,
//! same process, same load, one after the other. Modelled on `echo.rs`.
//!
//! The figure that counts is the **server's user-space CPU time per
//! operation**. Each server runs on its own `current_thread` runtime on its
//! own dedicated `std::thread`; its CPU time is read with
//! `getrusage(RUSAGE_THREAD)` executed *on that thread* (a task spawned on
//! the server runtime), before and after every measured round. Clients run
//! on the main thread's own runtime and use tokio-rustls directly (not this
//! crate), so only the servers differ. Servers alternate round by round and
//! every figure is the median over the rounds (the verdict, as in
//! `echo.rs`, is judged on the rounds pooled).
//!
//! Certificates are made at start with rcgen: a CA and a leaf for
//! `localhost` and `127.0.0.1` signed by it (ECDSA P-256); the clients trust
//! the CA and verify the name `localhost`. Both servers get their own,
//! identically built `rustls::ServerConfig` with rustls' defaults (ring,
//! TLS 1.3 preferred, two session tickets sent after each handshake, a
//! stateful session cache each). The clients turn resumption off, so every
//! handshake is a full one.
//!
//! The raw server: `TlsAcceptor::from(config)`, a task per connection that
//! accepts, then `read_buf`s into a heap buffer allocated once per
//! connection (`Vec::with_capacity`, 64 KiB unless said otherwise; not
//! zeroed, as in `echo.rs`) and `write_all`s + `flush`es what it read; at
//! EOF it shuts the session down (close_notify) as ours does. `TCP_NODELAY`
//! is set on both.
//!
//! Scenarios (`cargo bench --bench tls`):
//!
//! * `rr-64-x1`, `rr-1k-x1`, `rr-64-x64`, `rr-1k-x64`: request/response.
//!   Each connection sends a message, waits for its whole echo, repeats
//!   (connections made and warmed with one echo outside the measurement).
//! * `bulk-64k`: one connection; the client writes 64 KiB chunks back to
//!   back and reads the echo concurrently; figures per MB.
//! * `handshake`: connect, TLS handshake, one 64 B echo, close (client
//!   close_notify, then the client waits for the server's close_notify /
//!   EOF); 4 clients in parallel; figures per connection.
//! * `mem-idle`: heap bytes the server thread holds per idle TLS connection
//!   that has echoed 1 KiB once (200 connections), measured with a counting
//!   global allocator (per thread: bytes allocated minus freed on the
//!   server thread). Ours against raw with a 4 KiB read buffer (the
//!   target's baseline, as `echo.rs`'s `mem`) and raw with 64 KiB. A
//!   warm-up round first (it also fills each server's session cache to its
//!   cap, after which new tickets replace old ones), then 1 (quick) or 3
//!   rounds, medians.
//!
//! Targets (ours / raw user CPU per operation, same run): request/response
//! <= 1.10x, bulk per MB <= 1.05x, handshake per connection <= 1.10x; idle
//! memory <= raw (4 KiB) + 2 KiB per connection.
//!
//! Profiles as `echo.rs`: `cargo bench --bench tls` (bench: release,
//! `debug = 1`), `cargo bench --profile bench-release --bench tls` (thin
//! LTO, one codegen unit). Binaries `target/release/deps/tls-*` and
//! `target/bench-release/deps/tls-*` (for callgrind: the server is the
//! second thread, `callgrind.out.*-02`, when `TLS_BENCH_ONLY` is set).
//!
//! Environment:
//!
//! * `TLS_BENCH_QUICK=1`: a short run (3 rounds of 0.25 s; the default is
//!   6 rounds of 1.2 s).
//! * `TLS_BENCH_ROUNDS=n`, `TLS_BENCH_SECS=x`: rounds and seconds per round.
//! * `TLS_BENCH_WARMUP_SECS=x`: warm-up per scenario and server (0: none).
//! * `TLS_BENCH_OPS=n`: at most `n` operations per connection per round
//!   (fixed-count runs, e.g. under callgrind; bulk: `n` chunks of 64 KiB;
//!   handshake: `n` connections per client, so 4n in all).
//! * `TLS_BENCH_ONLY=ours|raw`: run one server only (profiling).
//! * `TLS_BENCH_FILTER=a,b`: only scenarios whose id contains one of these
//!   (a first command-line argument that does not start with `-` works too);
//!   a filter equal to a scenario id selects that scenario only.
//! * `TLS_BENCH_VERBOSE=1`: print every round.
//! * `TLS_BENCH_MEM_CONNS=n`: connections in `mem-idle` (200).

mod common;
#[path = "common/measure.rs"]
mod measure;

use common::{ServerThread, median};
use measure::{Round, Summary, sample, summarize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_transports::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_transports::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_transports::{BaseProtocol, Protocol, Server, ServerOptions, ServerTls, Transport};

// ---------------------------------------------------------------------------
// Certificates and TLS configurations.
// ---------------------------------------------------------------------------

/// The server's certificate chain and key, and the CA the clients trust.
struct Certs {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

/// A CA, and a leaf for `localhost` and `127.0.0.1` signed by it.
fn make_certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tokio-transports bench CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("leaf certificate");
    Certs {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ca: ca_cert.der().clone(),
    }
}

impl Certs {
    /// A fresh server configuration (rustls' defaults), one per server so
    /// that no session cache is shared.
    fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .expect("server config");
        Arc::new(config)
    }

    /// The clients' configuration: trusts the CA, no resumption (every
    /// handshake is a full one).
    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------
// The two TLS echo servers.
// ---------------------------------------------------------------------------

/// Our echo protocol (as echo.rs's): writes every received chunk back (zero
/// copy), and stops reading while the peer is not taking the echo
/// (pause_writing → pause_reading), so bulk memory stays bounded.
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

/// Start our TLS echo server on the current (server-thread) runtime.
async fn start_ours(config: Arc<ServerConfig>) -> (Server, u16) {
    let options = ServerOptions::default()
        // tokio's TcpListener::bind uses 1024 too.
        .backlog(1024)
        .ssl(ServerTls::new(config));
    let server = tokio_transports::create_server(Echo::default, "127.0.0.1", 0, options)
        .await
        .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// The hand-written tokio-rustls echo server: a task per connection that
/// accepts the session, then reads into a `buf_size`-byte heap buffer
/// allocated once per connection (`read_buf`: not zeroed, as `echo.rs`'s
/// raw server; a `vec![0; 64 KiB]` would add a 64 KiB memset, about 70,000
/// instructions, to every connection) and writes back what it read
/// (`write_all` + `flush`); at EOF it sends close_notify (`shutdown`).
/// `TCP_NODELAY` is set, as ours does.
async fn start_raw(config: Arc<ServerConfig>, buf_size: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    let acceptor = TlsAcceptor::from(config);
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
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf: Vec<u8> = Vec::with_capacity(buf_size);
                loop {
                    buf.clear();
                    match tls.read_buf(&mut buf).await {
                        Ok(0) => {
                            let _ = tls.shutdown().await;
                            return;
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                    if tls.write_all(&buf).await.is_err() || tls.flush().await.is_err() {
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
    mem_conns: usize,
    mem_rounds: usize,
    verbose: bool,
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("TLS_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let rounds = env_f64("TLS_BENCH_ROUNDS")
            .map_or(if quick { 3 } else { 6 }, |v| (v as usize).clamp(1, 50));
        let secs = env_f64("TLS_BENCH_SECS")
            .unwrap_or(if quick { 0.25 } else { 1.2 })
            .clamp(0.01, 1000.0);
        let warmup = env_f64("TLS_BENCH_WARMUP_SECS")
            .unwrap_or(if quick { 0.05 } else { 0.2 })
            .clamp(0.0, 10.0);
        let max_ops = env_f64("TLS_BENCH_OPS").map_or(50_000_000, |v| (v as u64).max(1));
        let only = match std::env::var("TLS_BENCH_ONLY").as_deref() {
            Ok("ours") => Some(Which::Ours),
            Ok("raw") => Some(Which::Raw),
            _ => None,
        };
        let mut filter: Vec<String> = std::env::var("TLS_BENCH_FILTER")
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
        let mem_conns = env_f64("TLS_BENCH_MEM_CONNS").map_or(200, |v| (v as usize).clamp(1, 2000));
        Config {
            quick,
            rounds,
            dur: Duration::from_secs_f64(secs),
            warmup: Duration::from_secs_f64(warmup),
            max_ops,
            only,
            filter,
            mem_conns,
            mem_rounds: if quick { 1 } else { 3 },
            verbose: std::env::var("TLS_BENCH_VERBOSE").is_ok_and(|v| v != "0"),
        }
    }

    /// Whether scenario `id` runs: a filter equal to some scenario's id
    /// selects that scenario only; any other filter selects the ids that
    /// contain it.
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
    /// Connect, handshake, one echo of `size` bytes, close; `par` clients
    /// in parallel.
    Handshake { size: usize, par: usize },
}

impl Kind {
    /// Whether figures are per MB (bulk) rather than per operation.
    fn per_mb(self) -> bool {
        matches!(self, Kind::Bulk { .. })
    }
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
        title: "TLS req/resp 64 B, 1 conn",
        kind: Kind::Rr { size: 64, conns: 1 },
        target: 1.10,
    },
    Scenario {
        id: "rr-1k-x1",
        title: "TLS req/resp 1 KiB, 1 conn",
        kind: Kind::Rr {
            size: 1024,
            conns: 1,
        },
        target: 1.10,
    },
    Scenario {
        id: "rr-64-x64",
        title: "TLS req/resp 64 B, 64 conns",
        kind: Kind::Rr {
            size: 64,
            conns: 64,
        },
        target: 1.10,
    },
    Scenario {
        id: "rr-1k-x64",
        title: "TLS req/resp 1 KiB, 64 conns",
        kind: Kind::Rr {
            size: 1024,
            conns: 64,
        },
        target: 1.10,
    },
    Scenario {
        id: "bulk-64k",
        title: "TLS bulk 64 KiB writes, 1 conn (per MB)",
        kind: Kind::Bulk { chunk: 64 * 1024 },
        target: 1.05,
    },
    Scenario {
        id: "handshake",
        title: "TLS connect+handshake+echo 64 B+close, 4 clients",
        kind: Kind::Handshake { size: 64, par: 4 },
        target: 1.10,
    },
];

/// The memory scenario, run after [`SCENARIOS`].
const MEM_ID: &str = "mem-idle";
/// Bytes each `mem-idle` connection echoes before going idle.
const MEM_MSG: usize = 1024;
/// `mem-idle`'s target: ours at most this many bytes per connection above
/// raw (4 KiB buffer).
const MEM_TARGET: f64 = 2048.0;

/// Every scenario id.
fn all_ids() -> impl Iterator<Item = &'static str> {
    SCENARIOS.iter().map(|sc| sc.id).chain([MEM_ID])
}

// ---------------------------------------------------------------------------
// Clients (tokio-rustls directly).
// ---------------------------------------------------------------------------

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose server ended without close_notify (a ragged EOF), as
/// the clients saw it; printed when not zero.
static RAGGED: AtomicU64 = AtomicU64::new(0);

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn io<T>(what: &str, f: impl Future<Output = std::io::Result<T>>) -> T {
    match tokio::time::timeout(IO_TIMEOUT, f).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: timed out after {IO_TIMEOUT:?}"),
    }
}

/// What every client connection needs.
#[derive(Clone)]
struct Client {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Client {
    /// Connect (`TCP_NODELAY`) and run the TLS handshake.
    async fn connect(&self, addr: SocketAddr) -> Tls {
        let tcp = io("connect", TcpStream::connect(addr)).await;
        tcp.set_nodelay(true).expect("nodelay");
        io(
            "TLS handshake",
            self.connector.connect(self.name.clone(), tcp),
        )
        .await
    }
}

async fn echo_once(s: &mut Tls, msg: &[u8], buf: &mut [u8]) {
    io("write", s.write_all(msg)).await;
    io("flush", s.flush()).await;
    io("read", s.read_exact(buf)).await;
}

/// Close a client connection: close_notify and FIN, then wait (bounded) for
/// the server's close_notify and EOF, so the server's side of the close is
/// done when this returns.
async fn close_tls(mut s: Tls) {
    let _ = tokio::time::timeout(IO_TIMEOUT, s.shutdown()).await;
    let mut buf = [0u8; 512];
    // Bounded: at most 64 reads (the server has nothing left to echo).
    for _ in 0..64 {
        match tokio::time::timeout(IO_TIMEOUT, s.read(&mut buf)).await {
            Ok(Ok(0)) => return,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    RAGGED.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(_) => panic!("close: no EOF from the server after {IO_TIMEOUT:?}"),
        }
    }
}

/// Close every connection, concurrently.
async fn close_all(streams: Vec<Tls>) {
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(close_tls(s)))
        .collect();
    for t in tasks {
        t.await.expect("close task");
    }
}

/// Request/response on every stream until `deadline` or `max_ops` each.
/// Returns the streams (closed by the caller after the CPU sample).
async fn rr_run(
    streams: Vec<Tls>,
    size: usize,
    deadline: Instant,
    max_ops: u64,
) -> (Vec<Tls>, u64, Vec<u64>) {
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
/// the echo concurrently; then close_notify, and read to the server's
/// close_notify. Returns the bytes echoed back.
async fn bulk_run(s: Tls, chunk: usize, deadline: Instant, max_chunks: u64) -> u64 {
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        let data = vec![0xa5u8; chunk];
        let mut n = 0u64;
        while n < max_chunks && Instant::now() < deadline {
            io("bulk write", wr.write_all(&data)).await;
            n += 1;
        }
        io("bulk flush", wr.flush()).await;
        io("bulk shutdown", wr.shutdown()).await;
        n * chunk as u64
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    // Bounded: every pass reads at least one byte (the writer stops at the
    // deadline or after `max_chunks`), ends, or times out.
    loop {
        match tokio::time::timeout(IO_TIMEOUT, rd.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got += n as u64,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                RAGGED.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(Err(e)) => panic!("bulk read: {e}"),
            Err(_) => panic!("bulk read: timed out after {IO_TIMEOUT:?}"),
        }
    }
    let sent = writer.await.expect("writer");
    assert_eq!(sent, got, "bulk: echoed bytes differ from sent bytes");
    got
}

/// `par` clients each: connect, handshake, one echo, close; until
/// `deadline` or `max_ops` each.
async fn handshake_run(
    client: &Client,
    addr: SocketAddr,
    size: usize,
    par: usize,
    deadline: Instant,
    max_ops: u64,
) -> (u64, Vec<u64>) {
    let mut tasks = Vec::with_capacity(par);
    for _ in 0..par {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let msg = vec![0x33u8; size];
            let mut buf = vec![0u8; size];
            let mut lat = Vec::with_capacity(1 << 12);
            let mut ops = 0u64;
            while ops < max_ops && Instant::now() < deadline {
                let t0 = Instant::now();
                let mut s = client.connect(addr).await;
                echo_once(&mut s, &msg, &mut buf).await;
                close_tls(s).await;
                lat.push(t0.elapsed().as_nanos() as u64);
                ops += 1;
            }
            (ops, lat)
        }));
    }
    let mut ops = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.expect("handshake task");
        ops += n;
        lat.extend(l);
    }
    (ops, lat)
}

/// Let the server finish whatever the last client action started.
async fn settle(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---------------------------------------------------------------------------
// The bench.
// ---------------------------------------------------------------------------

/// One side of the comparison: its thread, its servers, their ports.
struct Side {
    thread: ServerThread,
    /// Ours only; kept open for the whole run.
    _server: Option<Server>,
    /// The echo server (raw: 64 KiB buffer).
    echo: u16,
    /// Raw only: the echo with a 4 KiB buffer (`mem-idle`'s baseline).
    echo4k: u16,
}

impl Side {
    async fn start_ours(thread: ServerThread, certs: &Certs) -> Side {
        let (server, echo) = thread.run(start_ours(certs.server_config())).await;
        Side {
            thread,
            _server: Some(server),
            echo,
            echo4k: 0,
        }
    }

    async fn start_raw(thread: ServerThread, certs: &Certs) -> Side {
        // One configuration for both raw servers: they never run at once,
        // and it is one hand-written server's configuration.
        let config = certs.server_config();
        let echo = thread.run(start_raw(config.clone(), 64 * 1024)).await;
        let echo4k = thread.run(start_raw(config, 4 * 1024)).await;
        Side {
            thread,
            _server: None,
            echo,
            echo4k,
        }
    }
}

struct Bench {
    cfg: Config,
    client: Client,
    ours: Option<Side>,
    raw: Option<Side>,
}

#[derive(Default)]
struct MemResult {
    n: usize,
    ours: f64,
    raw4: f64,
    raw64: f64,
    residues: Vec<(&'static str, f64)>,
}

impl Bench {
    fn side(&self, which: Which) -> &Side {
        match which {
            Which::Ours => self.ours.as_ref().expect("ours running"),
            Which::Raw => self.raw.as_ref().expect("raw running"),
        }
    }

    async fn round(&self, which: Which, kind: Kind, dur: Duration) -> Round {
        let side = self.side(which);
        let thread = &side.thread;
        let addr = local(side.echo);
        let max_ops = self.cfg.max_ops;
        match kind {
            Kind::Rr { size, conns } => {
                // Set up outside the measurement: connect, handshake, one
                // echo each.
                let msg = vec![0x5au8; size];
                let mut buf = vec![0u8; size];
                let mut streams = Vec::with_capacity(conns);
                for _ in 0..conns {
                    let mut s = self.client.connect(addr).await;
                    echo_once(&mut s, &msg, &mut buf).await;
                    streams.push(s);
                }
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let (streams, ops, lat_ns) = rr_run(streams, size, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                let cpu = sample(thread).await.since(before);
                close_all(streams).await;
                settle(30).await;
                Round {
                    ops,
                    elapsed,
                    cpu,
                    lat_ns,
                }
            }
            Kind::Bulk { chunk } => {
                let mut s = self.client.connect(addr).await;
                echo_once(&mut s, b"x", &mut [0u8; 1]).await;
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let bytes = bulk_run(s, chunk, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                // The server closes after the close_notify; include that.
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
            Kind::Handshake { size, par } => {
                settle(10).await;
                let before = sample(thread).await;
                let t0 = Instant::now();
                let (ops, lat_ns) =
                    handshake_run(&self.client, addr, size, par, t0 + dur, max_ops).await;
                let elapsed = t0.elapsed();
                // The server finishes the last closes after the clients.
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
        let (o, r) = (
            summarize(&ours, sc.kind.per_mb()),
            summarize(&raw, sc.kind.per_mb()),
        );
        print_scenario(sc, &o, &r);
        (o, r)
    }

    /// Heap bytes the server thread holds per idle TLS connection that has
    /// echoed `MEM_MSG` bytes: open `n` connections (handshake, one echo
    /// each), wait, measure; close them all, wait, measure the residue.
    async fn mem_round(&self, thread: &ServerThread, port: u16, n: usize) -> (f64, f64) {
        let addr = local(port);
        let msg = vec![0x77u8; MEM_MSG];
        let mut buf = vec![0u8; MEM_MSG];
        settle(50).await;
        let before = sample(thread).await;
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = self.client.connect(addr).await;
            echo_once(&mut s, &msg, &mut buf).await;
            streams.push(s);
        }
        settle(100).await;
        let after = sample(thread).await;
        close_all(streams).await;
        settle(200).await;
        let end = sample(thread).await;
        let per_conn = (after.net_bytes - before.net_bytes) as f64 / n as f64;
        let residue = (end.net_bytes - before.net_bytes) as f64;
        (per_conn, residue)
    }

    /// `mem-idle`: a warm-up round, then `mem_rounds` rounds, medians.
    async fn memory(&self) -> MemResult {
        let n = self.cfg.mem_conns;
        let mut ours = Vec::new();
        let mut raw64 = Vec::new();
        let mut raw4 = Vec::new();
        let mut residues = Vec::new();
        for r in 0..=self.cfg.mem_rounds {
            if let Some(side) = &self.ours {
                let (b, res) = self.mem_round(&side.thread, side.echo, n).await;
                if self.cfg.verbose {
                    eprintln!("  {MEM_ID} round {r} ours: {b:.0} B/conn, residue {res:+.0} B");
                }
                if r > 0 {
                    ours.push(b);
                    residues.push(("ours", res));
                }
            }
            if let Some(side) = &self.raw {
                let t = &side.thread;
                let (b4, res4) = self.mem_round(t, side.echo4k, n).await;
                let (b64, res64) = self.mem_round(t, side.echo, n).await;
                if self.cfg.verbose {
                    eprintln!(
                        "  {MEM_ID} round {r} raw: 4 KiB {b4:.0} B/conn (residue {res4:+.0} B), \
                         64 KiB {b64:.0} B/conn (residue {res64:+.0} B)"
                    );
                }
                if r > 0 {
                    raw4.push(b4);
                    raw64.push(b64);
                    residues.push(("raw-4k", res4));
                    residues.push(("raw-64k", res64));
                }
            }
        }
        MemResult {
            n,
            ours: median(ours),
            raw4: median(raw4),
            raw64: median(raw64),
            residues,
        }
    }
}

// ---------------------------------------------------------------------------
// Printing.
// ---------------------------------------------------------------------------

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
        Kind::Handshake { .. } => ("conn/s", "conn"),
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

/// What the TLS session negotiates (printed once).
async fn describe_session(client: &Client, addr: SocketAddr) -> String {
    let mut s = client.connect(addr).await;
    echo_once(&mut s, b"?", &mut [0u8; 1]).await;
    let conn = s.get_ref().1;
    let text = format!(
        "{:?}, {:?}",
        conn.protocol_version(),
        conn.negotiated_cipher_suite().map(|c| c.suite())
    );
    close_tls(s).await;
    text
}

fn main() {
    let cfg = Config::from_env();
    let started = Instant::now();
    println!(
        "tls bench: {} rounds x {:.2} s per server and scenario (warm-up {:.2} s){}",
        cfg.rounds,
        cfg.dur.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        if cfg.quick { ", quick" } else { "" },
    );
    println!(
        "figures are medians over rounds; CPU is the server thread's own (getrusage RUSAGE_THREAD on that thread); \
         raw = tokio-rustls TlsAcceptor, task per connection, 64 KiB buffer"
    );
    let certs = make_certs();
    let client = Client {
        connector: TlsConnector::from(certs.client_config()),
        name: ServerName::try_from("localhost").expect("server name"),
    };

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    client_rt.block_on(async {
        let ours = if cfg.runs(Which::Ours) {
            let t = ServerThread::spawn("srv-ours", None);
            Some(Side::start_ours(t, &certs).await)
        } else {
            None
        };
        let raw = if cfg.runs(Which::Raw) {
            let t = ServerThread::spawn("srv-raw", None);
            Some(Side::start_raw(t, &certs).await)
        } else {
            None
        };
        let bench = Bench {
            cfg,
            client,
            ours,
            raw,
        };
        for (name, side) in [("ours", &bench.ours), ("raw", &bench.raw)] {
            if let Some(side) = side {
                let what = describe_session(&bench.client, local(side.echo)).await;
                println!("session with {name}: {what}");
            }
        }

        let mut summary = Vec::new();
        for sc in SCENARIOS {
            if !bench.cfg.wants(sc.id) {
                continue;
            }
            let (o, r) = bench.scenario(sc).await;
            summary.push((sc, o, r));
        }
        let mem = if bench.cfg.wants(MEM_ID) {
            Some(bench.memory().await)
        } else {
            None
        };

        if let Some(m) = &mem {
            println!();
            println!(
                "{MEM_ID}: heap held by the server thread per idle TLS connection that echoed {MEM_MSG} B \
                 ({} connections; counting global allocator, per thread)",
                m.n
            );
            println!("  ours            {:>8} B", fmt(m.ours));
            println!("  raw, 4 KiB buf  {:>8} B", fmt(m.raw4));
            println!("  raw, 64 KiB buf {:>8} B", fmt(m.raw64));
            println!(
                "  ours - raw(4 KiB) = {:+.0} B (target <= +{MEM_TARGET:.0}), ours - raw(64 KiB) = {:+.0} B",
                m.ours - m.raw4,
                m.ours - m.raw64
            );
            let res: Vec<String> = m
                .residues
                .iter()
                .map(|(n, r)| format!("{n} {r:+.0} B"))
                .collect();
            println!(
                "  held after all closed (whole server thread): {}",
                res.join(", ")
            );
        }

        let ragged = RAGGED.load(Ordering::Relaxed);
        if ragged != 0 {
            println!();
            println!("note: {ragged} connection(s) ended without the server's close_notify");
        }

        if bench.ours.is_some() && bench.raw.is_some() {
            println!();
            println!(
                "summary: server user CPU per unit, ours / raw: median of rounds, pooled rounds (target, judged on pooled)"
            );
            for (sc, o, r) in &summary {
                let pooled = o.pooled_user_us / r.pooled_user_us;
                let verdict = if pooled <= sc.target {
                    "met"
                } else {
                    "MISSED"
                };
                println!(
                    "  {:<50} {:>7} {:>7}  (<= {:.2}x) {}",
                    sc.title,
                    ratio(o.med.user_us, r.med.user_us),
                    ratio(o.pooled_user_us, r.pooled_user_us),
                    sc.target,
                    verdict
                );
            }
            if let Some(m) = &mem {
                let d = m.ours - m.raw4;
                println!(
                    "  {:<50} {:>+7.0} B (<= +{MEM_TARGET:.0} B) {}",
                    "memory per idle TLS conn vs raw 4 KiB",
                    d,
                    if d <= MEM_TARGET { "met" } else { "MISSED" }
                );
            }
        }
        println!();
        println!("total {:.1} s", started.elapsed().as_secs_f64());
        drop(bench);
    });
}
