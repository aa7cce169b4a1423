//! Stress: the runtime goes away under live transports.
//!
//! Each test builds a runtime and in it: client connections in several
//! states (idle; "busy" with megabytes queued behind a peer that does not
//! read; "closing" the same with `close()` called; reading paused with data
//! waiting in the kernel; a std thread writing at full speed through the
//! teardown), a server (`create_server`) with an idle and a busy accepted
//! connection, and two datagram endpoints (one bound, one connected to it).
//! Then the runtime is torn down without the tasks finishing (dropped,
//! `shutdown_timeout`, `shutdown_background`) and, from another runtime and
//! from plain threads, every handle is checked:
//!
//! * `closed().await` resolves; `with_protocol(..)` resolves to `None`;
//!   `is_closing()` and `is_closed()` are true; `get_extra_info("socket")`
//!   and `with_socket(..)` are `None`;
//! * the queue died with the task: `get_write_buffer_size()` is 0, and a
//!   `write`/`writelines`/`sendto` after the teardown adds nothing to it and
//!   is counted in `dropped_writes()`; `drain()` resolves (an error where
//!   data was queued);
//! * every peer sees its connection end (EOF or reset);
//! * the server's port is closed: a connect is refused and the port can be
//!   bound again; the datagram endpoints' ports can be bound again;
//! * the process's open-fd count is back to its value before the runtime
//!   was built, while the handles (transports, server) are still held.
//!
//! A task cannot be aborted through the public API (the connection's task is
//! spawned inside the crate, its `JoinHandle` is not exposed), so dropping or
//! shutting down the runtime is how a task dies unfinished here.
//!
//! Every check of a round runs (with a short timeout each, concurrently), and
//! the test then fails listing all that broke.
//!
//! Settings: CI default (a few seconds when the library is right);
//! `TOKIO_TRANSPORTS_STRESS=long` repeats each teardown more times. See
//! `docs/testing.md`.

// Options are set by field assignment, not struct literals: the options
// structs are becoming `#[non_exhaustive]`.
#![allow(clippy::field_reassign_with_default)]

mod common;
mod stress;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use stress::{Failures, open_fds, pick, within};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;
use tokio_transports::{
    ConnectOptions, DatagramOptions, DatagramProtocol, DatagramTransport, ServerOptions,
    SocketAddress, Transport, create_connection, create_datagram_endpoint, create_server,
};

const MIB: usize = 1 << 20;
/// How long a check waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(3);
/// The writer thread's chunk size, and how many writes it makes after the
/// teardown.
const W_CHUNK: usize = 256;
const W_AFTER: usize = 500;
const W_MAX: usize = 200_000;
/// Writes before the teardown at most: then the writer waits for it (a
/// current-thread runtime is not driven between `block_on`s, so nothing
/// drains its buffer).
const W_PRE: usize = 20_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Teardown {
    Drop,
    ShutdownTimeout,
    ShutdownBackground,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// A stream transport to check, with what was true at the teardown.
struct StreamCase {
    t: Transport,
    log: Log,
    /// Data was queued (unsent) when the task died.
    unsent: bool,
}

/// A datagram endpoint to check.
struct DgramCase {
    name: &'static str,
    t: DatagramTransport,
    events: Arc<Mutex<Vec<&'static str>>>,
    local: SocketAddr,
}

/// The writer thread racing the teardown.
struct WriterThread {
    handle: std::thread::JoinHandle<(usize, usize)>,
    torn_down: Arc<AtomicBool>,
    go: std::sync::mpsc::Sender<()>,
    reader: std::sync::mpsc::Receiver<std::io::Result<usize>>,
}

/// Everything built in the doomed runtime.
struct World {
    streams: Vec<StreamCase>,
    /// Raw peers of the stream transports (the test's own sockets).
    peers: Vec<(&'static str, StdTcpStream)>,
    server: tokio_transports::Server,
    server_addr: SocketAddr,
    dgrams: Vec<DgramCase>,
    writer: WriterThread,
}

/// A datagram protocol that records its callbacks and reports datagrams.
struct DgProbe {
    events: Arc<Mutex<Vec<&'static str>>>,
    got: mpsc::UnboundedSender<Bytes>,
}

impl DatagramProtocol for DgProbe {
    fn connection_made(&mut self, _t: &DatagramTransport) {
        self.events.lock().unwrap().push("made");
    }
    fn datagram_received(&mut self, data: Bytes, _addr: SocketAddress) {
        self.events.lock().unwrap().push("datagram");
        let _ = self.got.send(data);
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.events.lock().unwrap().push("lost");
    }
}

fn to_std(s: tokio::net::TcpStream) -> StdTcpStream {
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Fill the transport's queue behind a peer that does not read, until
/// `pause_writing` (so megabytes are queued in the transport, not only in
/// the kernel).
async fn fill(t: &Transport, log: &Log) {
    for _ in 0..8 {
        t.write(vec![0xa5u8; MIB]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    assert!(t.get_write_buffer_size() > 64 * 1024);
}

/// Build the world inside `rt`.
fn build(rt: &Runtime) -> World {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut streams = Vec::new();
        let mut peers = Vec::new();
        let connect = async |name: &'static str| {
            let log = Log::new(name);
            let rec = Recorder::new(log.clone(), Config::default());
            let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
                .await
                .expect("create_connection");
            let (peer, _) = guard("accept", listener.accept()).await.unwrap();
            (t, log, peer)
        };

        // Idle.
        let (t, log, peer) = connect("client-idle").await;
        t.write("hello").unwrap();
        let mut peer = peer;
        assert_eq!(read_n(&mut peer, 5).await, b"hello");
        streams.push(StreamCase {
            t,
            log,
            unsent: false,
        });
        peers.push(("client-idle", to_std(peer)));

        // Busy: megabytes queued behind a peer that does not read.
        let (t, log, peer) = connect("client-busy").await;
        fill(&t, &log).await;
        streams.push(StreamCase {
            t,
            log,
            unsent: true,
        });
        peers.push(("client-busy", to_std(peer)));

        // Closing: the same, and close() is flushing.
        let (t, log, peer) = connect("client-closing").await;
        fill(&t, &log).await;
        t.close();
        streams.push(StreamCase {
            t,
            log,
            unsent: true,
        });
        peers.push(("client-closing", to_std(peer)));

        // Reading paused, data waiting in the kernel.
        let (t, log, mut peer) = connect("client-paused").await;
        t.pause_reading();
        barrier(&t).await;
        peer.write_all(&[7u8; 4096]).await.unwrap();
        wait_unread(&t, 4096).await;
        streams.push(StreamCase {
            t,
            log,
            unsent: false,
        });
        peers.push(("client-paused", to_std(peer)));

        // A std thread writing through the teardown; a std thread reading.
        let (t, log, peer) = connect("client-writer").await;
        let mut peer = to_std(peer);
        let (rtx, reader) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut n = 0;
            let mut buf = vec![0u8; 64 * 1024];
            let r = loop {
                match peer.read(&mut buf) {
                    Ok(0) => break Ok(n),
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(n),
                    Err(e) => break Err(e),
                }
            };
            let _ = rtx.send(r);
        });
        let torn_down = Arc::new(AtomicBool::new(false));
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let handle = {
            let t = t.clone();
            let torn_down = torn_down.clone();
            std::thread::spawn(move || {
                let mut started = Some(started_tx);
                let mut after = 0;
                let mut total = 0;
                while total < W_MAX && after < W_AFTER {
                    if total == W_PRE && !torn_down.load(Ordering::Acquire) {
                        // Wait for the teardown (the timeout only guards).
                        let _ = go_rx.recv_timeout(Duration::from_secs(30));
                    }
                    let late = torn_down.load(Ordering::Acquire);
                    t.write(vec![0x3cu8; W_CHUNK]).unwrap();
                    total += 1;
                    if late {
                        after += 1;
                    }
                    if total == 256
                        && let Some(s) = started.take()
                    {
                        let _ = s.send(());
                    }
                }
                (total, after)
            })
        };
        guard("the writer thread", started_rx).await.unwrap();
        streams.push(StreamCase {
            t,
            log,
            unsent: false,
        });
        let writer = WriterThread {
            handle,
            torn_down,
            go,
            reader,
        };

        // A server with an idle and a busy accepted connection.
        let (ltx, mut lrx) = mpsc::unbounded_channel();
        let names = Arc::new(AtomicUsize::new(0));
        let server = create_server(
            move || {
                let name = ["server-idle", "server-busy"][names.fetch_add(1, Ordering::SeqCst) % 2];
                let log = Log::new(name);
                let _ = ltx.send(log.clone());
                Recorder::new(log, Config::default())
            },
            "127.0.0.1",
            0,
            ServerOptions::default(),
        )
        .await
        .expect("create_server");
        let server_addr = server.sockets()[0];
        for (name, busy) in [("server-idle", false), ("server-busy", true)] {
            let peer = tokio::net::TcpStream::connect(server_addr).await.unwrap();
            let log = guard("accepted", lrx.recv()).await.unwrap();
            assert_eq!(log.name(), name);
            let t = log.wait_made().await;
            if busy {
                fill(&t, &log).await;
            }
            streams.push(StreamCase {
                t,
                log,
                unsent: busy,
            });
            peers.push((name, to_std(peer)));
        }

        // Two datagram endpoints: a bound one and one connected to it.
        let (gtx, mut grx) = mpsc::unbounded_channel();
        let a_events = Arc::new(Mutex::new(Vec::new()));
        let mut o = DatagramOptions::default();
        o.local_addr = Some(("127.0.0.1", 0).into());
        let probe = DgProbe {
            events: a_events.clone(),
            got: gtx.clone(),
        };
        let a = create_datagram_endpoint(move || probe, o).await.unwrap();
        let a_addr = a.sockname().unwrap();
        let b_events = Arc::new(Mutex::new(Vec::new()));
        let mut o = DatagramOptions::default();
        o.remote_addr = Some(a_addr.into());
        let probe = DgProbe {
            events: b_events.clone(),
            got: gtx,
        };
        let b = create_datagram_endpoint(move || probe, o).await.unwrap();
        let b_addr = b.sockname().unwrap();
        b.sendto("ping", None).unwrap();
        assert_eq!(guard("datagram", grx.recv()).await.unwrap(), "ping");
        let dgrams = vec![
            DgramCase {
                name: "dgram-bound",
                t: a,
                events: a_events,
                local: a_addr,
            },
            DgramCase {
                name: "dgram-connected",
                t: b,
                events: b_events,
                local: b_addr,
            },
        ];
        World {
            streams,
            peers,
            server,
            server_addr,
            dgrams,
            writer,
        }
    })
}

/// The checks on one stream transport, after the teardown.
async fn check_stream(t: Transport, log: Log, unsent: bool) -> Failures {
    let mut f = Failures::new(log.name());
    if within(WAIT, t.closed()).await.is_none() {
        f.fail("closed() did not resolve within 3 s");
    }
    match within(WAIT, t.with_protocol(|_| ())).await {
        None => f.fail("with_protocol(..) did not resolve within 3 s"),
        Some(Some(())) => f.fail("with_protocol(..) ran its closure: the protocol is alive"),
        Some(None) => {}
    }
    f.check(t.is_closing(), || "is_closing() is false".into());
    f.check(t.is_closed(), || "is_closed() is false".into());
    f.check(!t.is_reading(), || "is_reading() is true".into());
    f.check(t.get_extra_info("socket").is_none(), || {
        format!(
            "get_extra_info(\"socket\") = {:?}",
            t.get_extra_info("socket")
        )
    });
    f.check(t.with_socket(|_| ()).is_none(), || {
        "with_socket(..) ran its closure".into()
    });
    let size = t.get_write_buffer_size();
    f.check(size == 0, || {
        format!(
            "get_write_buffer_size() = {size} after the teardown (the queue died with the task)"
        )
    });
    let d0 = t.dropped_writes();
    let r = t.write("late");
    f.check(r.is_ok(), || format!("write() after the teardown: {r:?}"));
    let grew = t.get_write_buffer_size().saturating_sub(size);
    f.check(grew == 0, || {
        format!("a write after the teardown added {grew} bytes to the write buffer")
    });
    let d1 = t.dropped_writes();
    f.check(d1 == d0 + 1, || {
        format!("a write after the teardown: dropped_writes() went {d0} -> {d1}")
    });
    let r = t.writelines([&b"a"[..], b"b"]);
    f.check(r.is_ok(), || {
        format!("writelines() after the teardown: {r:?}")
    });
    let d2 = t.dropped_writes();
    f.check(d2 == d1 + 1, || {
        format!("a writelines after the teardown: dropped_writes() went {d1} -> {d2}")
    });
    let grew = t.get_write_buffer_size().saturating_sub(size);
    f.check(grew == 0, || {
        format!("write+writelines after the teardown added {grew} bytes to the write buffer")
    });
    // Harmless after the teardown.
    t.pause_reading();
    t.resume_reading();
    t.write_eof().unwrap();
    t.close();
    t.abort();
    match within(WAIT, t.drain()).await {
        None => f.fail("drain() did not resolve within 3 s"),
        Some(Ok(())) if unsent => {
            f.fail("drain() returned Ok though megabytes were queued when the task died")
        }
        Some(_) => {}
    }
    // Informational: whether connection_lost ran, and the grammar of what
    // did run.
    let evs = log.events();
    if evs.iter().any(Ev::is_lost) {
        check_grammar(&evs);
    }
    f
}

async fn check_dgram(c: DgramCase) -> Failures {
    let DgramCase { name, t, .. } = c;
    let mut f = Failures::new(name);
    if within(WAIT, t.closed()).await.is_none() {
        f.fail("closed() did not resolve within 3 s");
    }
    match within(WAIT, t.with_protocol(|_| ())).await {
        None => f.fail("with_protocol(..) did not resolve within 3 s"),
        Some(Some(())) => f.fail("with_protocol(..) ran its closure: the protocol is alive"),
        Some(None) => {}
    }
    f.check(t.is_closing(), || "is_closing() is false".into());
    f.check(t.is_closed(), || "is_closed() is false".into());
    f.check(t.get_extra_info("socket").is_none(), || {
        format!(
            "get_extra_info(\"socket\") = {:?}",
            t.get_extra_info("socket")
        )
    });
    f.check(t.with_socket(|_| ()).is_none(), || {
        "with_socket(..) ran its closure".into()
    });
    let size = t.get_write_buffer_size();
    f.check(size == 0, || {
        format!("get_write_buffer_size() = {size} after the teardown")
    });
    let d0 = t.dropped_writes();
    let to = if t.remote_address().is_some() {
        None
    } else {
        // Anywhere: it must be dropped, not sent.
        Some(SocketAddress::Inet(
            t.sockname()
                .unwrap_or_else(|| "127.0.0.1:9".parse().unwrap()),
        ))
    };
    let r = t.sendto("late", to);
    f.check(r.is_ok(), || format!("sendto() after the teardown: {r:?}"));
    let grew = t.get_write_buffer_size();
    f.check(grew == 0, || {
        format!("a sendto after the teardown left {grew} bytes in the write buffer")
    });
    let d1 = t.dropped_writes();
    f.check(d1 == d0 + 1, || {
        format!("a sendto after the teardown: dropped_writes() went {d0} -> {d1}")
    });
    t.pause_reading();
    t.resume_reading();
    t.close();
    t.abort();
    if within(WAIT, t.drain()).await.is_none() {
        f.fail("drain() did not resolve within 3 s");
    }
    f
}

/// Read from a peer until the connection ends; `Err` if it is still open
/// after [`WAIT`].
fn peer_sees_end(s: &mut StdTcpStream) -> Result<usize, String> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(n),
            Err(e) => {
                return Err(format!(
                    "still open after {n} bytes ({e}): the socket outlived the runtime"
                ));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("still sending after {n} bytes"));
        }
    }
}

fn build_runtime(flavor: Flavor) -> Runtime {
    match flavor {
        Flavor::CurrentThread => Builder::new_current_thread().enable_all().build(),
        Flavor::MultiThread => Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .unwrap()
}

/// One round: build, tear down, check. Returns the failures.
fn round(flavor: Flavor, teardown: Teardown, r: usize) -> Failures {
    let mut f = Failures::new(format!("{teardown:?} of a {flavor:?} runtime, round {r}"));
    // The first runtime of the process opens tokio's process-wide signal
    // socketpair, which stays open for good: open it before counting.
    drop(build_runtime(flavor));
    let snap_before = stress::fd_snapshot();
    let fds_before = snap_before.len();
    let rt = build_runtime(flavor);
    let fds_runtime = open_fds() - fds_before;
    let World {
        streams,
        mut peers,
        server,
        server_addr,
        dgrams,
        writer,
    } = build(&rt);
    let fds_live = open_fds();

    let started = Instant::now();
    match teardown {
        Teardown::Drop => drop(rt),
        Teardown::ShutdownTimeout => rt.shutdown_timeout(Duration::from_millis(100)),
        Teardown::ShutdownBackground => rt.shutdown_background(),
    }
    let teardown_time = started.elapsed();
    writer.torn_down.store(true, Ordering::Release);
    let _ = writer.go.send(());
    // The writer's late writes are done before the handles are checked (a
    // check counts `dropped_writes()` around one write of its own).
    let (total, after) = writer.handle.join().expect("writer thread");

    // The handles, from another runtime.
    let check_rt = Builder::new_current_thread().enable_all().build().unwrap();
    let dgram_locals: Vec<(&'static str, SocketAddr)> =
        dgrams.iter().map(|d| (d.name, d.local)).collect();
    let dgram_events: Vec<(&'static str, Vec<&'static str>)> = dgrams
        .iter()
        .map(|d| (d.name, d.events.clone()))
        .map(|(n, e)| (n, e.lock().unwrap().clone()))
        .collect();
    let keep: Vec<(Transport, Log)> = streams
        .iter()
        .map(|c| (c.t.clone(), c.log.clone()))
        .collect();
    let keep_dgrams: Vec<DatagramTransport> = dgrams.iter().map(|d| d.t.clone()).collect();
    check_rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for c in streams {
            let StreamCase { t, log, unsent, .. } = c;
            set.spawn(check_stream(t, log, unsent));
        }
        for d in dgrams {
            set.spawn(check_dgram(d));
        }
        while let Some(r) = set.join_next().await {
            f.extend(r.expect("a check panicked"));
        }
    });
    drop(check_rt);

    // The writer thread: every write after the teardown was counted, and
    // nothing is left in the buffer.
    let wt = &keep
        .iter()
        .find(|(_, l)| l.name() == "client-writer")
        .unwrap()
        .0;
    // `shutdown_background` returns before the tasks are dropped: a task
    // still running may send some of the late writes, so only the other
    // teardowns must drop every one of them.
    let late_dropped = teardown == Teardown::ShutdownBackground || wt.dropped_writes() >= after;
    f.check(late_dropped, || {
        format!(
            "client-writer: {after} writes after the teardown, but dropped_writes() = {}",
            wt.dropped_writes()
        )
    });
    let size = wt.get_write_buffer_size();
    f.check(size == 0, || {
        format!(
            "client-writer: get_write_buffer_size() = {size} after {total} writes and the teardown"
        )
    });
    match writer.reader.recv_timeout(WAIT) {
        Ok(Ok(n)) => f.check(n <= total * W_CHUNK, || {
            format!(
                "client-writer: the peer got {n} bytes of {}",
                total * W_CHUNK
            )
        }),
        Ok(Err(e)) => f.fail(format!("client-writer's peer: {e}")),
        Err(_) => f.fail("client-writer's peer: still open 3 s after the teardown"),
    }

    // Every peer sees its connection end.
    for (name, s) in &mut peers {
        if let Err(e) = peer_sees_end(s) {
            f.fail(format!("{name}'s peer: {e}"));
        }
    }

    // The server's port is closed.
    match StdTcpStream::connect_timeout(&server_addr, WAIT) {
        Ok(mut s) => {
            let _ = s.write_all(b"x");
            f.fail(format!(
                "server: a connect to {server_addr} succeeded after the teardown: still listening"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Err(e) => f.fail(format!("server: connect to {server_addr}: {e}")),
    }
    match std::net::TcpListener::bind(server_addr) {
        Ok(_) => {}
        Err(e) => f.fail(format!("server: cannot bind {server_addr} again: {e}")),
    }
    f.check(!server.is_serving(), || {
        "server: is_serving() is true".into()
    });
    for (name, local) in &dgram_locals {
        if let Err(e) = std::net::UdpSocket::bind(local) {
            f.fail(format!("{name}: cannot bind {local} again: {e}"));
        }
    }

    // The fds: back to the count before the runtime, while every handle is
    // still held (the test's own peer sockets closed first). After
    // shutdown_background the runtime's own fds are closed by its threads at
    // a moment nobody can wait for: allow exactly those.
    drop(peers);
    let snap_after = stress::fd_snapshot();
    let fds_after = snap_after.len();
    let slack = if teardown == Teardown::ShutdownBackground {
        fds_runtime
    } else {
        0
    };
    if fds_after > fds_before + slack {
        f.fail(format!(
            "fds: {fds_before} before the runtime, {fds_live} with everything live, \
             {fds_after} after the teardown (allowed {slack} over): {} leaked: {:?}",
            fds_after - fds_before,
            stress::fd_diff(&snap_before, &snap_after)
        ));
    }

    let lost: Vec<&str> = keep
        .iter()
        .filter(|(_, l)| l.events().iter().any(Ev::is_lost))
        .map(|(_, l)| l.name())
        .collect();
    eprintln!(
        "{teardown:?}/{flavor:?} round {r}: teardown took {teardown_time:?}; fds {fds_before} -> \
         {fds_live} live ({fds_runtime} the runtime's) -> {fds_after}; writer: {total} writes \
         ({after} after the teardown), dropped_writes() = {}; connection_lost ran on {lost:?}; \
         datagram callbacks at teardown {dgram_events:?}; {} check(s) failed",
        wt.dropped_writes(),
        if f.is_empty() { "no" } else { "some" }
    );
    drop(keep_dgrams);
    drop(keep);
    drop(server);
    f
}

fn run(flavor: Flavor, teardown: Teardown) {
    let _serial = stress::serial_blocking();
    let rounds = pick(2, 20);
    for r in 0..rounds {
        // Stop at the first round that fails: each costs a few seconds of
        // timeouts then.
        round(flavor, teardown, r).assert_none();
    }
}

#[test]
fn dropping_a_multi_thread_runtime_tears_everything_down() {
    run(Flavor::MultiThread, Teardown::Drop);
}

#[test]
fn dropping_a_current_thread_runtime_tears_everything_down() {
    run(Flavor::CurrentThread, Teardown::Drop);
}

#[test]
fn shutdown_timeout_tears_everything_down() {
    run(Flavor::MultiThread, Teardown::ShutdownTimeout);
}

#[test]
fn shutdown_background_tears_everything_down() {
    run(Flavor::MultiThread, Teardown::ShutdownBackground);
}
