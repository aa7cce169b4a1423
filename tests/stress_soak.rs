//! Stress: fd churn, a mixed soak, and panics under load.
//!
//! * `connect_close_churn_returns_to_the_fd_baseline`: connect/close cycles
//!   ended every way (client close, abort, write_eof, server-side close,
//!   refused connects, datagram endpoints), several at a time; the process's
//!   open-fd count (`/proc/self/fd`) after them equals the count before
//!   them, exactly, and equals the count before the server once it is closed.
//! * `mixed_soak_is_byte_exact`: a few hundred concurrent connections, each
//!   a random plan of writes, writelines (with empty chunks), client- and
//!   server-side pause_reading/resume_reading, synchronizations, and an
//!   ending (write_eof, close after the echo, close right after writing,
//!   abort); every byte is checked against a deterministic per-connection
//!   pattern, both ways, and every connection's callback grammar.
//! * `panics_in_callbacks_under_load_kill_only_their_connection`: under
//!   load, server protocols panic in data_received, buffer_updated,
//!   get_buffer, eof_received and connection_made, and client protocols in
//!   data_received; each panic kills its own connection only (reported once
//!   to the exception handler, `connection_lost` with `CallbackPanicked`),
//!   every other connection stays byte-exact, and the server keeps serving.
//!
//! The tests of this binary run one at a time (they count the process's
//! fds). Settings: CI default (seconds); `TOKIO_TRANSPORTS_STRESS=long`
//! for more cycles and connections; `TOKIO_TRANSPORTS_STRESS_SEED=<n>` for
//! another seed. See `docs/testing.md`.

// Options are set by field assignment, not struct literals: the options
// structs are becoming `#[non_exhaustive]`.
#![allow(clippy::field_reassign_with_default)]

mod common;
mod stress;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use common::*;
use stress::{Rng, first_mismatch, open_fds, pick, seed, stream_bytes};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_transports::{
    AnyProtocol, ConnectOptions, DatagramOptions, Server, ServerOptions, Transport,
    create_connection, create_datagram_endpoint, create_server,
};

/// Server-side logs by (client address, server address), so a client can
/// find (and pause) its server-side transport. A client takes its entry
/// out: a later connection may reuse the client's port.
#[derive(Default)]
struct PeerMap {
    map: Mutex<HashMap<(SocketAddr, SocketAddr), Log>>,
    changed: Notify,
}

impl PeerMap {
    fn insert(&self, t: &Transport, log: &Log) {
        if let (Some(peer), Some(local)) = (t.peername(), t.sockname()) {
            let old = self.map.lock().unwrap().insert((peer, local), log.clone());
            assert!(old.is_none(), "two live connections {peer} -> {local}");
            self.changed.notify_waiters();
        }
    }

    /// The server side of client transport `t`.
    async fn take(&self, t: &Transport) -> Log {
        let key = (t.sockname().unwrap(), t.peername().unwrap());
        guard("the server side of a connection", async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(l) = self.map.lock().unwrap().remove(&key) {
                    return l;
                }
                notified.await;
            }
        })
        .await
    }
}

/// A recording server; `cfg` gets a hook that files each connection in `peers`.
async fn server_with(
    reg: &Registry,
    name: &'static str,
    cfg: Config,
    peers: &Arc<PeerMap>,
) -> (Server, u16) {
    let peers = peers.clone();
    let prev = cfg.hook.clone();
    let cfg = cfg.hook(move |t, ev, log| {
        if *ev == Ev::Made {
            peers.insert(t, log);
        }
        if let Some(h) = &prev {
            h(t, ev, log);
        }
    });
    // Thousands of connects at once (the long setting): asyncio's default
    // backlog of 100 would have the kernel drop handshakes, and the clients
    // retry only after seconds.
    let server = create_server(
        reg.factory(name, cfg),
        "127.0.0.1",
        0,
        ServerOptions::default().backlog(4096),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// An echo server that keeps its write half open on EOF and closes once it
/// has echoed everything (close flushes).
fn echo_then_close_on_eof() -> Config {
    Config::echo().keep_open().hook(|t, ev, _| {
        if *ev == Ev::Eof {
            t.close();
        }
    })
}

// ---- fd churn ------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Churn {
    ClientClose,
    ClientAbort,
    WriteEof,
    ServerClose,
    Refused,
    Datagram,
}

const CHURN_KINDS: [Churn; 6] = [
    Churn::ClientClose,
    Churn::ClientAbort,
    Churn::WriteEof,
    Churn::ServerClose,
    Churn::Refused,
    Churn::Datagram,
];

/// The most fds seen open while a churn batch ran.
static PEAK_FDS: AtomicUsize = AtomicUsize::new(0);

async fn churn_one(
    kind: Churn,
    port: u16,
    refused_port: u16,
    reg: Arc<Registry>,
    peers: Arc<PeerMap>,
    n: usize,
) {
    match kind {
        Churn::Refused => {
            let r = create_connection(|| (), "127.0.0.1", refused_port, ConnectOptions::default())
                .await;
            assert!(r.is_err(), "connect to a closed port succeeded");
        }
        Churn::Datagram => {
            let mut o = DatagramOptions::default();
            o.local_addr = Some(("127.0.0.1", 0).into());
            let a = create_datagram_endpoint(|| (), o).await.unwrap();
            let mut o = DatagramOptions::default();
            o.remote_addr = Some(a.sockname().unwrap().into());
            let b = create_datagram_endpoint(|| (), o).await.unwrap();
            b.sendto(vec![1u8; 100], None).unwrap();
            a.close();
            b.close();
            guard("datagram closed", a.closed()).await;
            guard("datagram closed", b.closed()).await;
        }
        _ => {
            let rec = reg.recorder("client", Config::default());
            let log = rec.log();
            let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
                .await
                .expect("create_connection");
            PEAK_FDS.fetch_max(open_fds(), Ordering::Relaxed);
            let data = stream_bytes(n as u64, 0, 1000 + n % 3000);
            t.write(data.clone()).unwrap();
            let got = log.wait_received(data.len()).await;
            assert!(got == data, "churn {n}: echo differs");
            let slog = peers.take(&t).await;
            let s = slog.transport();
            match kind {
                Churn::ClientClose => t.close(),
                Churn::ClientAbort => t.abort(),
                Churn::WriteEof => t.write_eof().unwrap(),
                Churn::ServerClose => s.close(),
                _ => unreachable!(),
            }
            log.wait_lost().await;
            slog.wait_lost().await;
            guard("client closed()", t.closed()).await;
            guard("server-side closed()", s.closed()).await;
        }
    }
}

#[test]
fn connect_close_churn_returns_to_the_fd_baseline() {
    stress::serial_run(async {
        let cycles = pick(300, 5000);
        let batch = 10;
        let started = Instant::now();
        let snap_start = stress::fd_snapshot();
        let fds_start = snap_start.len();
        let reg = Arc::new(Registry::new());
        let peers = Arc::new(PeerMap::default());
        let (server, port) = server_with(&reg, "server", echo_then_close_on_eof(), &peers).await;
        let refused_port = free_port("127.0.0.1");
        // Warm up: one of each, so that lazily created state (the read buffer
        // of each worker, the blocking pool's threads) exists before the
        // baseline. None of it holds an fd, but the baseline should not depend
        // on that.
        for (i, kind) in CHURN_KINDS.iter().enumerate() {
            churn_one(*kind, port, refused_port, reg.clone(), peers.clone(), i).await;
        }
        let snap_base = stress::fd_snapshot();
        let baseline = snap_base.len();
        let mut peak = baseline;
        let mut per_kind = [0usize; 6];
        let mut rng = Rng::fork(seed(), 0xfd);
        let mut done = 0;
        while done < cycles {
            let mut set = JoinSet::new();
            for _ in 0..batch.min(cycles - done) {
                let k = rng.range(0, CHURN_KINDS.len());
                per_kind[k] += 1;
                set.spawn(churn_one(
                    CHURN_KINDS[k],
                    port,
                    refused_port,
                    reg.clone(),
                    peers.clone(),
                    done,
                ));
                done += 1;
            }
            while let Some(r) = guard("churn batch", set.join_next()).await {
                r.expect("churn cycle");
            }
            peak = peak.max(PEAK_FDS.swap(0, Ordering::Relaxed));
        }
        let snap_after = stress::fd_snapshot();
        let after = snap_after.len();
        assert_eq!(
            after,
            baseline,
            "fds: {baseline} before {cycles} connect/close cycles, {after} after; new: {:?}",
            stress::fd_diff(&snap_base, &snap_after)
        );
        shutdown(&server).await;
        drop(server);
        let snap_end = stress::fd_snapshot();
        let after_server = snap_end.len();
        assert_eq!(
            after_server,
            fds_start,
            "fds: {fds_start} before the server, {after_server} after close() + wait_closed(): \
             the listening socket outlives them (closed later, when the aborted accept task \
             is dropped)? new: {:?}",
            stress::fd_diff(&snap_start, &snap_end)
        );
        let reg = Arc::into_inner(reg).unwrap();
        let conns = reg.named("client").len();
        reg.finish().await;
        eprintln!(
            "fd churn: {cycles} cycles ({} at a time) in {:?}: {per_kind:?} of {CHURN_KINDS:?}; \
         {conns} TCP connections; fds {fds_start} at start, {baseline} baseline with the server, \
         peak {peak}, {after} after, {after_server} after the server closed",
            batch,
            started.elapsed()
        );
    });
}

// ---- mixed soak -------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// Echo server: half-close, then everything echoed back and EOF.
    WriteEof,
    /// Echo server: wait for the whole echo, then close().
    CloseAfterEcho,
    /// Sink server: close() right after the last write (close flushes).
    Close,
    /// Sink server: abort() (the server gets a prefix).
    Abort,
}

#[derive(Default, Debug, Clone)]
struct SoakFigures {
    connections: usize,
    bytes_up: u64,
    bytes_down: u64,
    writes: usize,
    writelines: usize,
    empty_chunks: usize,
    client_pauses: usize,
    server_pauses: usize,
    syncs: usize,
    small_buffers: usize,
    endings: [usize; 4],
}

impl SoakFigures {
    fn add(&mut self, o: &SoakFigures) {
        self.connections += o.connections;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.writes += o.writes;
        self.writelines += o.writelines;
        self.empty_chunks += o.empty_chunks;
        self.client_pauses += o.client_pauses;
        self.server_pauses += o.server_pauses;
        self.syncs += o.syncs;
        self.small_buffers += o.small_buffers;
        for i in 0..4 {
            self.endings[i] += o.endings[i];
        }
    }
}

fn size(rng: &mut Rng) -> usize {
    match rng.range(0, 100) {
        0..70 => rng.range(1, 2048),
        70..96 => rng.range(2048, 16384),
        _ => rng.range(65536, 262144),
    }
}

fn check_stream(what: &str, id: u64, got: &[u8], sent: u64, exact: bool) {
    assert!(
        got.len() as u64 <= sent,
        "{what}: got {} bytes, only {sent} were sent",
        got.len()
    );
    if let Some(at) = first_mismatch(id, got) {
        panic!(
            "{what}: byte {at} of {} differs from the pattern",
            got.len()
        );
    }
    if exact {
        assert_eq!(got.len() as u64, sent, "{what}: bytes missing");
    }
}

struct SoakCtx {
    reg: Arc<Registry>,
    peers: Arc<PeerMap>,
    echo_port: u16,
    sink_port: u16,
}

async fn soak_one(ctx: Arc<SoakCtx>, id: u64, mut rng: Rng) -> SoakFigures {
    let mut fig = SoakFigures {
        connections: 1,
        ..Default::default()
    };
    let echo = rng.chance(1, 2);
    let ending = match (echo, rng.range(0, 10)) {
        (true, 0..7) => Ending::WriteEof,
        (true, _) => Ending::CloseAfterEcho,
        (false, 0..8) => Ending::Close,
        (false, _) => Ending::Abort,
    };
    let port = if echo { ctx.echo_port } else { ctx.sink_port };
    let rec = ctx.reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .expect("create_connection");
    let slog = ctx.peers.take(&t).await;
    let s = slog.transport();
    let what = format!("connection {id} ({ending:?})");
    // Half the connections get small kernel send buffers and watermarks, so
    // that pauses back up into the transports' queues (pause_writing). Not
    // small receive buffers: a receive buffer shrunk below the MSS after the
    // connection is up (64 KiB on loopback) makes Linux hold the window
    // closed after the reader drained it, and the sender waits in
    // zero-window probes with backoff (`ss -ti` shows `timer:(persist..)`):
    // the kernel's stall, not the transport's.
    if rng.chance(1, 2) {
        for tr in [&t, &s] {
            tr.with_socket(|k| {
                k.set_send_buffer_size(4096).unwrap();
            })
            .expect("open socket");
            let high = rng.range(1024, 32 * 1024);
            tr.set_write_buffer_limits(Some(high), None).unwrap();
        }
        fig.small_buffers += 1;
    }
    let mut sent: u64 = 0;
    let mut client_paused = 0usize;
    let mut server_paused = 0usize;
    let ops = rng.range(4, 40);
    for _ in 0..ops {
        match rng.range(0, 100) {
            0..40 => {
                let n = size(&mut rng);
                t.write(stream_bytes(id, sent, n)).unwrap();
                sent += n as u64;
                fig.writes += 1;
            }
            40..60 => {
                let mut chunks = Vec::new();
                for _ in 0..rng.range(1, 7) {
                    let n = if rng.chance(1, 4) { 0 } else { size(&mut rng) };
                    if n == 0 {
                        fig.empty_chunks += 1;
                    }
                    chunks.push(Bytes::from(stream_bytes(id, sent, n)));
                    sent += n as u64;
                }
                t.writelines(chunks).unwrap();
                fig.writelines += 1;
            }
            60..70 if client_paused == 0 => {
                t.pause_reading();
                client_paused = rng.range(1, 5);
                fig.client_pauses += 1;
            }
            70..80 if server_paused == 0 => {
                s.pause_reading();
                server_paused = rng.range(1, 5);
                fig.server_pauses += 1;
            }
            80..88 if echo && client_paused == 0 && server_paused == 0 => {
                wait_echo(&what, &t, &log, &s, &slog, sent).await;
                fig.syncs += 1;
            }
            _ => tokio::task::yield_now().await,
        }
        if client_paused > 0 {
            client_paused -= 1;
            if client_paused == 0 {
                t.resume_reading();
            }
        }
        if server_paused > 0 {
            server_paused -= 1;
            if server_paused == 0 {
                s.resume_reading();
            }
        }
    }
    // An ending with reading paused still ends (close/abort); for the others,
    // resume first so that the echo can flow.
    let keep_paused = matches!(ending, Ending::Close | Ending::Abort) && rng.chance(1, 2);
    if !keep_paused {
        if client_paused > 0 {
            t.resume_reading();
        }
        if server_paused > 0 {
            s.resume_reading();
        }
    } else if server_paused > 0 {
        // The server side must read to see the close.
        s.resume_reading();
    }
    match ending {
        Ending::WriteEof => t.write_eof().unwrap(),
        Ending::CloseAfterEcho => {
            wait_echo(&what, &t, &log, &s, &slog, sent).await;
            t.close();
        }
        Ending::Close => t.close(),
        Ending::Abort => t.abort(),
    }
    let clost = log.wait_lost().await;
    let slost = slog.wait_lost().await;
    assert_eq!(clost, None, "{what}: the client's connection_lost");
    let up = slog.received();
    let down = log.received();
    match ending {
        Ending::WriteEof | Ending::CloseAfterEcho => {
            check_stream(&format!("{what}, server side"), id, &up, sent, true);
            check_stream(&format!("{what}, echo"), id, &down, sent, true);
            assert_eq!(slost, None, "{what}: the server's connection_lost");
            assert_eq!(slog.count(|e| *e == Ev::Eof), 1, "{what}: server EOF");
            if ending == Ending::WriteEof {
                assert_eq!(log.count(|e| *e == Ev::Eof), 1, "{what}: client EOF");
            }
        }
        Ending::Close => {
            check_stream(&format!("{what}, server side"), id, &up, sent, true);
            assert_eq!(slost, None, "{what}: the server's connection_lost");
            assert_eq!(slog.count(|e| *e == Ev::Eof), 1, "{what}: server EOF");
            assert!(down.is_empty());
        }
        Ending::Abort => {
            check_stream(&format!("{what}, server side"), id, &up, sent, false);
        }
    }
    if ending != Ending::Abort {
        assert_eq!(t.dropped_writes(), 0, "{what}: dropped writes");
    }
    guard("client closed()", t.closed()).await;
    guard("server-side closed()", s.closed()).await;
    fig.bytes_up += up.len() as u64;
    fig.bytes_down += down.len() as u64;
    fig.endings[ending as usize] += 1;
    fig
}

/// Wait until the client got the whole echo; on a timeout, say where the
/// bytes are.
async fn wait_echo(what: &str, t: &Transport, log: &Log, s: &Transport, slog: &Log, sent: u64) {
    let done = stress::within(
        std::time::Duration::from_secs(8),
        log.wait_until("echo", |e| received_len(e) as u64 >= sent),
    )
    .await;
    if done.is_none() {
        panic!(
            "{what}: echo stuck: sent {sent}, server got {}, client got {}; client: buffer {} \
             reading {} closing {}; server: buffer {} reading {} closing {}; client events \
             tail {:?}; server events tail {:?}",
            slog.received().len(),
            log.received().len(),
            t.get_write_buffer_size(),
            t.is_reading(),
            t.is_closing(),
            s.get_write_buffer_size(),
            s.is_reading(),
            s.is_closing(),
            log.events().iter().rev().take(6).collect::<Vec<_>>(),
            slog.events().iter().rev().take(6).collect::<Vec<_>>(),
        );
    }
}

/// How many connections may be open at once: both ends are in this process,
/// so two fds each, under the soft fd limit with room to spare.
fn max_concurrent(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let soft = if rc == 0 { lim.rlim_cur as usize } else { 1024 };
    wanted.min(soft.saturating_sub(64) / 2).max(1)
}

#[test]
fn mixed_soak_is_byte_exact() {
    stress::serial_run(async {
        let conns = pick(300, 2000);
        let concurrent = max_concurrent(pick(300, 1000));
        let started = Instant::now();
        let base = seed();
        let reg = Arc::new(Registry::new());
        let peers = Arc::new(PeerMap::default());
        let (echo, echo_port) = server_with(&reg, "echo", echo_then_close_on_eof(), &peers).await;
        let (sink, sink_port) = server_with(&reg, "sink", Config::default(), &peers).await;
        let ctx = Arc::new(SoakCtx {
            reg: reg.clone(),
            peers,
            echo_port,
            sink_port,
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrent));
        let mut set = JoinSet::new();
        for id in 0..conns as u64 {
            let ctx = ctx.clone();
            let permits = permits.clone();
            set.spawn(async move {
                let _p = permits.acquire_owned().await.unwrap();
                soak_one(ctx, id, Rng::fork(base, id)).await
            });
        }
        let mut fig = SoakFigures::default();
        while let Some(r) = tokio::time::timeout(GUARD * 6, set.join_next())
            .await
            .expect("the soak took over a minute")
        {
            fig.add(&r.expect("soak connection"));
        }
        shutdown(&echo).await;
        shutdown(&sink).await;
        drop(ctx);
        let reg = Arc::into_inner(reg).unwrap();
        let logs = reg.logs();
        let pw = logs.iter().map(|l| l.count(Ev::is_pw)).sum::<usize>();
        reg.finish().await;
        assert_eq!(fig.connections, conns);
        assert!(fig.client_pauses > 0 && fig.server_pauses > 0 && fig.syncs > 0);
        assert!(pw > 0, "no pause_writing in the whole soak");
        assert!(fig.endings.iter().all(|&n| n > 0), "{:?}", fig.endings);
        eprintln!(
            "mixed soak: seed {base:#x}, {conns} connections ({concurrent} at a time) in {:?}: \
         {} bytes up, {} bytes echoed down; {} writes, {} writelines ({} empty chunks), \
         {} client pauses, {} server pauses, {} echo syncs, {} with small buffers, \
         {pw} pause_writing; endings [write_eof, close after echo, close, abort] = {:?}",
            started.elapsed(),
            fig.bytes_up,
            fig.bytes_down,
            fig.writes,
            fig.writelines,
            fig.empty_chunks,
            fig.client_pauses,
            fig.server_pauses,
            fig.syncs,
            fig.small_buffers,
            fig.endings,
        );
    });
}

// ---- panics under load ------------------------------------------------------

/// Which server protocol the `n`-th accepted connection gets.
fn server_role(n: usize) -> Option<&'static str> {
    if n % 4 != 1 {
        return None;
    }
    Some(
        [
            "data_received",
            "buffer_updated",
            "get_buffer",
            "eof_received",
            "connection_made",
        ][(n / 4) % 5],
    )
}

/// A recorder config that panics in `callback` (data callbacks once the
/// connection has received `after` bytes).
fn panics_in(callback: &'static str, after: usize, echo: bool) -> Config {
    let cfg = if echo {
        echo_then_close_on_eof()
    } else {
        Config::default()
    };
    let prev = cfg.hook.clone();
    cfg.hook(move |t, ev, log| {
        let hit = match ev {
            Ev::Made => callback == "connection_made",
            Ev::Data(_) => callback == "data_received" && log.received().len() >= after,
            Ev::BufferUpdated { .. } => {
                callback == "buffer_updated" && log.received().len() >= after
            }
            Ev::GetBuffer(_) => callback == "get_buffer",
            Ev::Eof => callback == "eof_received",
            _ => false,
        };
        if hit {
            panic!("stress panic in {callback}");
        }
        if let Some(h) = &prev {
            h(t, ev, log);
        }
    })
}

#[test]
fn panics_in_callbacks_under_load_kill_only_their_connection() {
    stress::serial_run(async {
        let exc = ExcCapture::install().await;
        let conns = pick(120, 800);
        let started = Instant::now();
        let base = seed();
        let reg = Arc::new(Registry::new());
        let assigned = Arc::new(AtomicUsize::new(0));
        // The panics are expected: keep their messages off stderr.
        let prev_hook = Arc::new(std::panic::take_hook());
        {
            let prev_hook = prev_hook.clone();
            std::panic::set_hook(Box::new(move |info| {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .unwrap_or("");
                if !msg.starts_with("stress panic in ") {
                    prev_hook(info);
                }
            }));
        }
        let factory = {
            let normal = reg.factory("server", echo_then_close_on_eof());
            let victims: Vec<_> = [
                "data_received",
                "buffer_updated",
                "get_buffer",
                "eof_received",
                "connection_made",
            ]
            .iter()
            .map(|cb| (*cb, reg.factory("victim", panics_in(cb, 10_000, true))))
            .collect();
            let n = Arc::new(AtomicUsize::new(0));
            let assigned = assigned.clone();
            move || {
                let k = n.fetch_add(1, Ordering::SeqCst);
                let (rec, buffered) = match server_role(k) {
                    Some(cb) => {
                        assigned.fetch_add(1, Ordering::SeqCst);
                        let f = &victims.iter().find(|(c, _)| *c == cb).unwrap().1;
                        (f(), matches!(cb, "buffer_updated" | "get_buffer"))
                    }
                    None => (normal(), k.is_multiple_of(2)),
                };
                if buffered {
                    AnyProtocol::buffered(rec)
                } else {
                    AnyProtocol::stream(rec)
                }
            }
        };
        let server = create_server(
            factory,
            "127.0.0.1",
            0,
            ServerOptions::default().backlog(4096),
        )
        .await
        .unwrap();
        let port = server.sockets()[0].port();
        let mut set = JoinSet::new();
        for id in 0..conns as u64 {
            let reg = reg.clone();
            let mut rng = Rng::fork(base ^ 0xbad, id);
            set.spawn(async move {
                let client_victim = id % 7 == 3;
                let total = rng.range(40_000, 120_000);
                let cfg = if client_victim {
                    panics_in("data_received", total / 2, false)
                } else {
                    Config::default()
                };
                let rec = reg.recorder(if client_victim { "cvictim" } else { "client" }, cfg);
                let log = rec.log();
                let t =
                    create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
                        .await
                        .expect("create_connection");
                let mut sent = 0;
                while sent < total && !t.is_closing() {
                    let n = rng.range(1, 8192).min(total - sent);
                    t.write(stream_bytes(id, sent as u64, n)).unwrap();
                    sent += n;
                    if rng.chance(1, 3) {
                        log.wait_until("echo or loss", |e| {
                            received_len(e) >= sent || e.iter().any(Ev::is_lost)
                        })
                        .await;
                    }
                }
                if !t.is_closing() {
                    t.write_eof().unwrap();
                }
                let lost = log.wait_lost().await;
                guard("client closed()", t.closed()).await;
                (id, t.sockname().unwrap(), sent, log, lost)
            });
        }
        let mut clients = Vec::new();
        while let Some(r) = tokio::time::timeout(GUARD * 6, set.join_next())
            .await
            .expect("the panic soak took over a minute")
        {
            clients.push(r.expect("client task"));
        }
        // Server-side logs by the client's address.
        let mut by_peer: HashMap<SocketAddr, Log> = HashMap::new();
        for l in reg.named("server").into_iter().chain(reg.named("victim")) {
            l.wait_lost().await;
            if let Some(p) = l.transport().peername() {
                by_peer.insert(p, l);
            }
        }
        let mut normal = 0;
        let mut server_victims: HashMap<String, usize> = HashMap::new();
        let mut client_victims = 0;
        let mut bytes = 0u64;
        for (id, addr, sent, log, lost) in &clients {
            let slog = by_peer
                .get(addr)
                .unwrap_or_else(|| panic!("connection {id}: no server side"));
            let slost = slog.lost().unwrap();
            let spanic = slost.as_ref().and_then(|l| l.panicked.clone());
            let cpanic = lost.as_ref().and_then(|l| l.panicked.clone());
            if let Some(p) = &spanic {
                assert_eq!(
                    slog.name(),
                    "victim",
                    "connection {id}: a non-victim panicked"
                );
                assert_eq!(p.message, format!("stress panic in {}", p.callback));
                *server_victims.entry(p.callback.to_string()).or_default() += 1;
            }
            if let Some(p) = &cpanic {
                assert_eq!(
                    log.name(),
                    "cvictim",
                    "connection {id}: a non-victim client panicked"
                );
                assert_eq!(p.callback, "data_received");
                client_victims += 1;
            }
            if spanic.is_none() && cpanic.is_none() {
                // Neither side panicked: the whole echo, byte-exact, clean ends
                // (unless the other side's protocol was a victim that had not
                // reached its trigger: those are normal too).
                check_stream(
                    &format!("connection {id}, server side"),
                    *id,
                    &slog.received(),
                    *sent as u64,
                    true,
                );
                check_stream(
                    &format!("connection {id}, echo"),
                    *id,
                    &log.received(),
                    *sent as u64,
                    true,
                );
                assert_eq!(*lost, None, "connection {id}: client connection_lost");
                assert_eq!(slost, None, "connection {id}: server connection_lost");
                normal += 1;
                bytes += 2 * *sent as u64;
            } else {
                // What did arrive is a prefix of the pattern.
                check_stream(
                    &format!("connection {id}, server side"),
                    *id,
                    &slog.received(),
                    *sent as u64,
                    false,
                );
                check_stream(
                    &format!("connection {id}, echo"),
                    *id,
                    &log.received(),
                    *sent as u64,
                    false,
                );
            }
        }
        // One report per panic, nothing else.
        let panicked_total: usize = server_victims.values().sum::<usize>() + client_victims;
        let fatal =
            exc.count(|r| r.message.starts_with("Fatal error: protocol.") && r.panicked.is_some());
        assert_eq!(
            fatal,
            panicked_total,
            "reports: {:?}",
            exc.reports().iter().map(|r| &r.message).collect::<Vec<_>>()
        );
        let others: Vec<String> = exc
            .reports()
            .into_iter()
            .filter(|r| r.panicked.is_none())
            .map(|r| r.message)
            .collect();
        assert!(others.is_empty(), "unexpected reports: {others:?}");
        // Not vacuous: every kind of victim panicked, client victims too, and
        // most connections were normal.
        let assigned = assigned.load(Ordering::SeqCst);
        for cb in [
            "data_received",
            "buffer_updated",
            "get_buffer",
            "eof_received",
            "connection_made",
        ] {
            assert!(
                server_victims.get(cb).copied().unwrap_or(0) > 0,
                "no server protocol panicked in {cb}: {server_victims:?}"
            );
        }
        assert!(client_victims > 0);
        assert!(
            normal * 2 > conns,
            "only {normal} of {conns} connections were normal"
        );
        // The server survived: still serving, and a new connection echoes.
        assert!(server.is_serving());
        if server_role(conns).is_some() {
            // The next accepted connection would be a victim: use it up.
            let t = create_connection(|| (), "127.0.0.1", port, ConnectOptions::default())
                .await
                .unwrap();
            t.close();
            guard("closed()", t.closed()).await;
        }
        let rec = reg.recorder("client", Config::default());
        let log = rec.log();
        let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
            .await
            .unwrap();
        t.write("after the storm").unwrap();
        assert_eq!(log.wait_received(15).await, b"after the storm");
        t.close();
        log.wait_lost().await;
        shutdown(&server).await;
        drop(server);
        let reg = Arc::into_inner(reg).unwrap();
        reg.finish().await;
        // Put the previous hook back.
        std::panic::set_hook(Box::new(move |info| prev_hook(info)));
        eprintln!(
            "panics under load: {conns} connections in {:?}: {} server protocols set to panic, \
         panicked by callback {server_victims:?}, {client_victims} client protocols panicked, \
         {normal} normal connections byte-exact ({bytes} bytes both ways), {fatal} reports",
            started.elapsed(),
            assigned
        );
    });
}
