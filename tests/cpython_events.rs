//! CPython's tests of the event loop's network methods and of the socket
//! transport's behaviour, translated to this crate's API on real loopback
//! sockets:
//!
//! * `Lib/test/test_asyncio/test_events.py` (`EventLoopTestsMixin`): the
//!   creation methods with the `MyProto` state machine (`local_addr`, a
//!   local address in use, server close).
//! * `test_proactor_events.py` (`ProactorSocketTransportTests`): the
//!   proactor's mocks are platform-specific, but what they assert is the
//!   socket transport's contract (reading, EOF, reset, `close`/`abort` with
//!   and without a buffer, `write_eof`, pausing reading, the write
//!   watermarks); here it is checked on our TCP transport.
//! * `test_transports.py` (`TransportTests`): the flow-control mixin's
//!   `set_write_buffer_limits` / `get_write_buffer_limits`, `writelines`,
//!   `get_extra_info`.
//!
//! Each test is named after the test it translates; the comment above it
//! names the original (file, class, method). What tests/cpython_stream.rs,
//! cpython_base_events.rs, cpython_pipes_datagram.rs, flow_control.rs and
//! uvloop_tcp_udp.rs already translate is left out (`test_create_connection`,
//! `test_create_server*`, `test_connect_accepted_socket` (uvloop's twin),
//! the datagram endpoint tests (uvloop's `_test_create_datagram_endpoint_addrs`
//! and `test_create_datagram_endpoint_sock` twins),
//! `test_datagram_send_to_non_listening_address`, the pipe tests, ...), and
//! so are Python-only features (`TransportSocket`, repr, the `loop`
//! argument) and what docs/asyncio-parity.md lists as a deliberate
//! difference (tested as documented where a test depends on it:
//! `test_dont_pause_writing`).
//!
//! "The send has not completed" (a pending proactor future) becomes a real
//! socket whose kernel buffers are full: [`fill_kernel`] writes zeros to
//! the socket behind the transport's back while the peer (with a small
//! receive buffer) does not read, until the send queue is full and nothing
//! is left in flight. What the transport writes after that stays in its own
//! buffer, byte for byte, until the peer reads.
//!
//! This file uses no optional feature of the crate (only the test kit,
//! which the dev-dependency always turns on), so it is not gated: it builds
//! with `--no-default-features` too.

mod common;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_transports::{
    BaseProtocol, ConnectOptions, ExtraInfo, Protocol, ServerOptions, SocketAddress, Transport,
    TransportError, create_connection, create_server, raw_os_error,
};

// ---------------------------------------------------------------------------
// MyBaseProto / MyProto (test_events.py)
// ---------------------------------------------------------------------------

/// What a [`MyBaseProto`] went through, as the test sees it.
#[derive(Clone, Debug)]
struct ProtoState {
    /// INITIAL -> CONNECTED -> EOF? -> CLOSED.
    state: &'static str,
    nbytes: usize,
    /// Transitions MyBaseProto's `_assert_state` would have refused.
    violations: Vec<String>,
    /// `Transport::id()` of the transport `connection_made` got.
    transport_id: Option<usize>,
    /// What `connection_lost` got (`Some(None)`: `connection_lost(None)`).
    lost: Option<Option<ErrorKind>>,
}

/// The test's side of one [`MyBaseProto`].
#[derive(Clone)]
struct Watch(watch::Receiver<ProtoState>);

impl Watch {
    fn now(&self) -> ProtoState {
        self.0.borrow().clone()
    }

    /// Wait until `pred` holds (the protocol's last state is still seen
    /// once it has been dropped).
    async fn until(&self, what: &str, pred: impl FnMut(&ProtoState) -> bool) -> ProtoState {
        let mut rx = self.0.clone();
        let state = guard(what, rx.wait_for(pred))
            .await
            .unwrap_or_else(|_| panic!("{what}: the protocol went away first: {:?}", self.now()));
        state.clone()
    }

    async fn closed(&self) -> ProtoState {
        let s = self.until("state CLOSED", |s| s.state == "CLOSED").await;
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        s
    }
}

/// CPython's `MyBaseProto`: a state machine that checks each callback
/// comes in a state that allows it; `MyProto` (with `greeting`) writes an
/// HTTP request from `connection_made`.
struct MyBaseProto {
    tx: Arc<watch::Sender<ProtoState>>,
    greeting: Option<&'static [u8]>,
}

const GET: &[u8] = b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n";

impl MyBaseProto {
    fn new() -> (Self, Watch) {
        let (tx, rx) = watch::channel(ProtoState {
            state: "INITIAL",
            nbytes: 0,
            violations: Vec::new(),
            transport_id: None,
            lost: None,
        });
        let p = MyBaseProto {
            tx: Arc::new(tx),
            greeting: None,
        };
        (p, Watch(rx))
    }

    /// CPython's `MyProto`.
    fn my_proto() -> (Self, Watch) {
        let (mut p, w) = Self::new();
        p.greeting = Some(GET);
        (p, w)
    }

    fn step(
        &self,
        callback: &str,
        expected: &[&str],
        to: Option<&'static str>,
        f: impl FnOnce(&mut ProtoState),
    ) {
        self.tx.send_modify(|s| {
            if !expected.contains(&s.state) {
                s.violations.push(format!(
                    "{callback}: state {:?}, expected {expected:?}",
                    s.state
                ));
            }
            f(s);
            if let Some(to) = to {
                s.state = to;
            }
        });
    }
}

impl BaseProtocol for MyBaseProto {
    fn connection_made(&mut self, transport: &Transport) {
        let id = transport.id();
        self.step("connection_made", &["INITIAL"], Some("CONNECTED"), |s| {
            s.transport_id = Some(id)
        });
        if let Some(g) = self.greeting {
            transport.write(g).unwrap();
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let kind = exc.map(|e| e.kind());
        self.step(
            "connection_lost",
            &["CONNECTED", "EOF"],
            Some("CLOSED"),
            |s| s.lost = Some(kind),
        );
    }
}

impl Protocol for MyBaseProto {
    fn data_received(&mut self, data: Bytes) {
        self.step("data_received", &["CONNECTED"], None, |s| {
            s.nbytes += data.len()
        });
    }

    fn eof_received(&mut self) -> bool {
        self.step("eof_received", &["CONNECTED"], Some("EOF"), |_| {});
        false
    }
}

/// A server's protocol factory making `make()` protocols; the test gets
/// each one's [`Watch`] in the order they were made.
fn proto_factory(
    make: fn() -> (MyBaseProto, Watch),
) -> (
    impl Fn() -> MyBaseProto + Send + Sync + 'static,
    mpsc::UnboundedReceiver<Watch>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let factory = move || {
        let (p, w) = make();
        let _ = tx.send(w);
        p
    };
    (factory, rx)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `ioctl(SIOCOUTQNSD)`: bytes in the send queue not sent yet.
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

fn ioctl_int(fd: i32, req: libc::c_ulong) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: both requests write one c_int; `fd` is open (lent by the transport).
    let rc = unsafe { libc::ioctl(fd, req as _, &mut v) };
    assert_eq!(rc, 0, "ioctl({req:#x}): {}", io::Error::last_os_error());
    v as usize
}

/// Bytes sent and not yet acknowledged on a transport's socket:
/// `ioctl(TIOCOUTQ)` (unacknowledged + unsent) minus `ioctl(SIOCOUTQNSD)`
/// (unsent).
fn in_flight(t: &Transport) -> usize {
    t.with_socket(|s| {
        let fd = s.as_raw_fd();
        ioctl_int(fd, libc::TIOCOUTQ as libc::c_ulong) - ioctl_int(fd, SIOCOUTQNSD)
    })
    .expect("the socket is open")
}

/// Write zeros straight to the transport's socket until it would block;
/// returns how many bytes it took. Every send ends its own segment
/// (`MSG_EOR`), so nothing written later can be appended to a segment
/// already queued: a later write needs room the full send queue does not
/// have.
fn send_until_full(t: &Transport) -> usize {
    let chunk = [0u8; 64 * 1024];
    t.with_socket(|s| {
        let mut n = 0;
        for size in [chunk.len(), 1] {
            // Bounded: the send queue holds a few MiB at most.
            for _ in 0..100_000 {
                match s.send_with_flags(&chunk[..size], libc::MSG_EOR) {
                    Ok(k) => n += k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("filling the socket: {e}"),
                }
            }
        }
        n
    })
    .expect("the socket is open")
}

/// Fill the kernel's buffers of the transport's socket (made by
/// [`client_with_stalled_peer`], whose peer has a small receive buffer and
/// does not read) by writing zeros straight to the socket, behind the
/// transport's back, until the send queue is full and nothing sent is still
/// unacknowledged (an acknowledgement would free room). From then on the
/// socket takes nothing until the peer reads: the state CPython's tests mock
/// as a send that has not completed. The transport must have nothing
/// buffered. Returns how many bytes were written (the peer reads them
/// before anything the transport writes afterwards).
async fn fill_kernel(t: &Transport) -> usize {
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "fill_kernel needs an empty buffer"
    );
    guard("the socket's send queue to fill up and settle", async {
        let mut total = 0;
        // Bounded by the guard: the last acknowledgements take up to a
        // delayed-ACK time (some 40 ms) to come back.
        loop {
            total += send_until_full(t);
            if in_flight(t) == 0 {
                // Nothing left to acknowledge: room freed before this
                // check is taken now; if none was, the queue stays full.
                let more = send_until_full(t);
                total += more;
                if more == 0 && in_flight(t) == 0 {
                    assert!(total > 0, "the socket took nothing");
                    return total;
                }
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// A client transport (logged as `"client"`) connected to a raw tokio
/// socket that the test drives by hand; the raw socket's receive buffer is
/// small (set on the listener, so the connection starts with it) and stays
/// full while it does not read: the transport's socket then takes nothing.
async fn client_with_stalled_peer(reg: &Registry, cfg: Config) -> (Transport, Log, TcpStream) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sock.listen(16).unwrap();
    sock.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(sock.into()).unwrap();
    client_with_raw_peer_on(listener, reg, cfg).await
}

/// Read everything up to EOF (or a reset) from a raw peer.
async fn read_all(peer: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    guard("reading to EOF", async {
        loop {
            match peer.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Drain what [`fill_kernel`] wrote and then `tail.len()` more bytes:
/// those must be `tail`.
async fn read_filler_then(peer: &mut TcpStream, filler: usize, tail: &[u8]) {
    let got = read_n(peer, filler + tail.len()).await;
    assert!(
        got[..filler].iter().all(|&b| b == 0),
        "the filler comes first"
    );
    assert_eq!(&got[filler..], tail);
}

fn pauses(log: &Log) -> usize {
    log.count(Ev::is_pw)
}

fn resumes(log: &Log) -> usize {
    log.count(Ev::is_rw)
}

fn losts(log: &Log) -> usize {
    log.count(Ev::is_lost)
}

/// test_proactor_events.py's `pause_writing_transport(high)`: a client
/// transport with `high` as its high watermark (low derived, high / 4),
/// nothing buffered, no flow-control callback yet.
async fn pause_writing_transport(reg: &Registry, high: usize) -> (Transport, Log, TcpStream) {
    let (t, log, peer) = client_with_stalled_peer(reg, Config::default()).await;
    t.set_write_buffer_limits(Some(high), None).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!(pauses(&log), 0);
    assert_eq!(resumes(&log), 0);
    (t, log, peer)
}

// ---------------------------------------------------------------------------
// CPython Lib/test/test_asyncio/test_events.py (EventLoopTestsMixin)
// ---------------------------------------------------------------------------

// CPython test_events.py EventLoopTestsMixin.test_create_connection_local_addr:
// create_connection with local_addr=(host, port) binds the client socket
// there: the transport's sockname has that port (the server sees it as the
// peer), and MyProto's request arrives. The port is a free one found with
// port 0, as CPython's find_unused_port; it is looked for again (at most
// five times) if another test took it in between.
#[tokio::test]
async fn test_create_connection_local_addr() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let mut attempt = 0;
    let (t, w, port) = loop {
        attempt += 1;
        let port = free_port("127.0.0.1");
        let local: SocketAddr = ([127, 0, 0, 1], port).into();
        let (p, w) = MyBaseProto::my_proto();
        match create_connection(
            move || p,
            "127.0.0.1",
            server_port,
            ConnectOptions::default().local_addr(local),
        )
        .await
        {
            Ok(t) => break (t, w, port),
            Err(e) if e.kind() == ErrorKind::AddrInUse && attempt < 5 => continue,
            Err(e) => panic!("create_connection(local_addr={local}): {e}"),
        }
    };
    assert_eq!(t.sockname().expect("sockname").port(), port);
    assert_eq!(w.now().transport_id, Some(t.id()), "pr.transport is tr");
    let (mut peer, seen) = guard("accept", listener.accept()).await.unwrap();
    assert_eq!(seen, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(read_n(&mut peer, GET.len()).await, GET);
    t.close();
    let s = w.closed().await;
    assert_eq!(s.lost, Some(None));
}

// CPython test_events.py EventLoopTestsMixin.test_create_connection_local_addr_in_use:
// local_addr is the address the server listens on: the bind fails with
// EADDRINUSE and the error names the address as Python prints it
// (`str(httpd.address) in strerror`). The factory is never called.
#[tokio::test]
async fn test_create_connection_local_addr_in_use() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let called = Counter::default();
    let c = called.clone();
    let err = create_connection(
        move || {
            c.incr();
            MyBaseProto::my_proto().0
        },
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default().local_addr(addr),
    )
    .await
    .expect_err("binding the listening address must fail");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert_eq!(raw_os_error(&err), Some(libc::EADDRINUSE), "{err}");
    let python_addr = format!("('127.0.0.1', {})", addr.port());
    assert!(err.to_string().contains(&python_addr), "{err}");
    assert_eq!(called.get(), 0);
}

// CPython test_events.py EventLoopTestsMixin.test_server_close: a client
// connects to a server on 0.0.0.0, sends b'xxx' and leaves; after
// server.close() a new connection to the port is refused (close() stops
// listening at once).
#[tokio::test]
async fn test_server_close() {
    let (factory, mut made) = proto_factory(MyBaseProto::my_proto);
    let server = create_server(factory, "0.0.0.0", 0, ServerOptions::default())
        .await
        .unwrap();
    let port = server.sockets()[0].port();
    let mut client = guard("connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap();
    client.write_all(b"xxx").await.unwrap();
    drop(client);

    server.close();

    let r = guard(
        "connect after close",
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    assert_eq!(
        r.map(|_| ()).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    guard("wait_closed", server.wait_closed()).await;
    // The connection accepted before the close (if the accept loop got to
    // it) went through MyProto's states and ended.
    while let Ok(w) = made.try_recv() {
        w.closed().await;
    }
}

// ---------------------------------------------------------------------------
// CPython Lib/test/test_asyncio/test_proactor_events.py
// (ProactorSocketTransportTests), on a TCP transport
// ---------------------------------------------------------------------------

// CPython test_proactor_events.py ProactorSocketTransportTests.test_loop_reading_data
// (and test_ctor, test_loop_reading): the transport is made, connection_made
// runs, reading starts without delivering anything; b'data' from the peer
// arrives as data_received(b'data').
#[tokio::test]
async fn test_loop_reading_data() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert_eq!(log.events(), [Ev::Made]);
    assert!(t.is_reading());
    peer.write_all(b"data").await.unwrap();
    log.wait_until("data", |e| received_in(e) == b"data").await;
    assert_eq!(
        log.events(),
        [Ev::Made, Ev::Data(Bytes::from_static(b"data"))]
    );
    t.close();
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_loop_reading_no_data:
// a 0-byte read is the end of file: eof_received() is called, and since it
// returns a false value the transport closes: connection_lost(None), and
// the peer reads EOF.
#[tokio::test]
async fn test_loop_reading_no_data() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    peer.shutdown().await.unwrap();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.events(), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    assert!(read_all(&mut peer).await.is_empty());
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_loop_reading_conn_reset_lost:
// a reset read is `_force_close(err)`, not `_fatal_error`: the protocol
// gets connection_lost(ConnectionResetError), no eof_received, and nothing
// is reported to the exception handler.
#[tokio::test]
async fn test_loop_reading_conn_reset_lost() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (_t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    peer.write_all(b"hi").await.unwrap();
    log.wait_until("data", |e| received_in(e) == b"hi").await;
    set_reset_on_drop(&peer);
    drop(peer);
    let lost = log
        .wait_lost()
        .await
        .expect("connection_lost(ConnectionResetError)");
    assert_eq!(lost.kind, ErrorKind::ConnectionReset, "{lost:?}");
    assert_eq!(log.count(|e| *e == Ev::Eof), 0);
    assert!(exc.reports().is_empty(), "{:?}", exc.reports());
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_write_no_data
// (and test_write): write(b'') buffers nothing and sends nothing; a write
// with data is sent.
#[tokio::test]
async fn test_write_no_data() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write(&b""[..]).unwrap();
    t.writelines(Vec::<Bytes>::new()).unwrap();
    assert_eq!(t.get_write_buffer_size(), 0);
    barrier(&t).await;
    assert_eq!(t.stats().writes, 0, "no write with data");
    assert_eq!(t.stats().bytes_sent, 0);
    t.write(&b"data"[..]).unwrap();
    t.close();
    assert_eq!(read_all(&mut peer).await, b"data");
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_close:
// close() -> is_closing() at once, connection_lost(None) once; a second
// close() (after the loss) calls nothing.
#[tokio::test]
async fn test_close() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.close();
    assert!(t.is_closing());
    assert_eq!(log.wait_lost().await, None);
    t.close();
    barrier(&t).await;
    assert_eq!(losts(&log), 1);
    assert!(read_all(&mut peer).await.is_empty());
    reg.finish().await;
}

// CPython test_proactor_events.py
// ProactorSocketTransportTests.test_close_protocol_connection_lost_once:
// close() twice in a row -> connection_lost is called once.
#[tokio::test]
async fn test_close_protocol_connection_lost_once() {
    let reg = Registry::new();
    let (t, log, _peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.close();
    t.close();
    assert_eq!(log.wait_lost().await, None);
    t.closed().await;
    assert_eq!(losts(&log), 1);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_close_buffer
// (and test_close_write_fut, test_loop_writing_closing): close() while data
// is still buffered (the socket takes nothing) does not call
// connection_lost yet; once the pending write completes, the close
// finishes: the peer gets the data, then EOF, and connection_lost(None).
#[tokio::test]
async fn test_close_buffer() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_stalled_peer(&reg, Config::default()).await;
    let filler = fill_kernel(&t).await;
    t.write(&b"data"[..]).unwrap();
    t.close();
    barrier(&t).await;
    assert!(t.is_closing());
    assert_eq!(
        log.lost(),
        None,
        "no connection_lost while data is buffered"
    );
    assert_eq!(t.get_write_buffer_size(), 4);
    let got = read_all(&mut peer).await;
    assert_eq!(got.len(), filler + 4);
    assert_eq!(&got[filler..], b"data");
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_abort
// (and test_force_close, test_fatal_error_2): abort() with data buffered is
// `_force_close(None)`: the buffer is dropped at once (size 0),
// connection_lost(None), and the buffered bytes never reach the peer.
#[tokio::test]
async fn test_abort() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_stalled_peer(&reg, Config::default()).await;
    let filler = fill_kernel(&t).await;
    t.write(&b"data"[..]).unwrap();
    assert_eq!(t.get_write_buffer_size(), 4);
    t.abort();
    assert_eq!(
        t.get_write_buffer_size(),
        0,
        "the buffer is dropped when abort() returns"
    );
    assert!(t.is_closing());
    assert_eq!(log.wait_lost().await, None);
    assert!(t.drain().await.is_err(), "buffered data was discarded");
    let got = read_all(&mut peer).await;
    assert!(
        got.len() <= filler && got.iter().all(|&b| b == 0),
        "b'data' was sent"
    );
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_loop_writing_force_close:
// a write, then `_force_close(None)` while it may be in progress: the
// protocol gets connection_lost(None) and nothing is reported to the
// exception handler.
#[tokio::test]
async fn test_loop_writing_force_close() {
    let exc = ExcCapture::install().await;
    let reg = Registry::new();
    let (t, log, _peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.write(&b"data"[..]).unwrap();
    t.abort();
    assert_eq!(log.wait_lost().await, None);
    t.closed().await;
    assert!(exc.reports().is_empty(), "{:?}", exc.reports());
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_force_close_idempotent
// (gh-89237): abort() on a transport that is already closing (close() is
// waiting for the buffer to drain) still calls connection_lost, at once,
// without waiting for the peer, or the protocol's waiters would hang.
#[tokio::test]
async fn test_force_close_idempotent() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_stalled_peer(&reg, Config::default()).await;
    let filler = fill_kernel(&t).await;
    t.write(&b"data"[..]).unwrap();
    t.close();
    barrier(&t).await;
    assert_eq!(log.lost(), None);
    t.abort();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(losts(&log), 1);
    let got = read_all(&mut peer).await;
    assert!(
        got.len() <= filler && got.iter().all(|&b| b == 0),
        "b'data' was sent"
    );
    reg.finish().await;
}

// CPython test_proactor_events.py
// ProactorSocketTransportTests.test_force_close_protocol_connection_lost_once:
// `_force_close` twice (abort() twice) calls connection_lost once; a
// close() after it changes nothing.
#[tokio::test]
async fn test_force_close_protocol_connection_lost_once() {
    let reg = Registry::new();
    let (t, log, _peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.abort();
    t.abort();
    assert_eq!(log.wait_lost().await, None);
    t.close();
    t.abort();
    t.closed().await;
    assert_eq!(losts(&log), 1);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_write_eof:
// can_write_eof() is true; write_eof() shuts the write half down (the
// peer reads EOF), a second write_eof() does nothing more; the transport
// stays open and still receives. A write after it is refused
// (documented: `TransportError::WriteAfterEof`, asyncio's RuntimeError).
#[tokio::test]
async fn test_write_eof() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert!(t.can_write_eof());
    t.write_eof().unwrap();
    t.write_eof().unwrap();
    assert!(!t.is_closing(), "write_eof does not close");
    assert_eq!(t.write(&b"x"[..]), Err(TransportError::WriteAfterEof));
    assert!(
        read_all(&mut peer).await.is_empty(),
        "EOF, and nothing else"
    );
    peer.write_all(b"after").await.unwrap();
    log.wait_until("data after write_eof", |e| received_in(e) == b"after")
        .await;
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_write_eof_buffer:
// write(b'data') then write_eof() while the send is pending: the EOF is
// written (no more writes), but the socket is shut down only after the
// data went out: the peer reads the data, then EOF.
#[tokio::test]
async fn test_write_eof_buffer() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_stalled_peer(&reg, Config::default()).await;
    let filler = fill_kernel(&t).await;
    t.write(&b"data"[..]).unwrap();
    t.write_eof().unwrap();
    assert_eq!(t.write(&b"more"[..]), Err(TransportError::WriteAfterEof));
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 4, "still pending");
    assert!(!t.is_closing());
    let got = read_all(&mut peer).await;
    assert_eq!(got.len(), filler + 4);
    assert_eq!(&got[filler..], b"data");
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_pause_resume_reading:
// data1 and data2 arrive; pause_reading() twice -> is_reading() false and
// nothing is delivered (data3 waits in the kernel); resume_reading() twice
// -> is_reading() true, data3 and data4 arrive; pause_reading() directly
// followed by resume_reading() loses nothing (data5); after close()
// is_reading() is false.
#[tokio::test]
async fn test_pause_resume_reading() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert!(t.is_reading());
    let mut expected = Vec::new();
    for msg in [&b"data1"[..], b"data2"] {
        peer.write_all(msg).await.unwrap();
        expected.extend_from_slice(msg);
        log.wait_until("data", |e| received_in(e) == expected).await;
    }

    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    peer.write_all(b"data3").await.unwrap();
    wait_unread(&t, 5).await;
    barrier(&t).await;
    assert_eq!(log.received(), expected, "nothing delivered while paused");

    t.resume_reading();
    t.resume_reading();
    assert!(t.is_reading());
    expected.extend_from_slice(b"data3");
    log.wait_until("data3", |e| received_in(e) == expected)
        .await;
    peer.write_all(b"data4").await.unwrap();
    expected.extend_from_slice(b"data4");
    log.wait_until("data4", |e| received_in(e) == expected)
        .await;

    t.pause_reading();
    t.resume_reading();
    peer.write_all(b"data5").await.unwrap();
    expected.extend_from_slice(b"data5");
    log.wait_until("data5", |e| received_in(e) == expected)
        .await;

    t.close();
    assert!(!t.is_reading());
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_pause_reading_connection_made:
// pause_reading() inside connection_made: no reading starts (the peer's
// byte stays in the kernel), is_reading() false; resume_reading() ->
// is_reading() true and the byte arrives; close() -> is_reading() false.
#[tokio::test]
async fn test_pause_reading_connection_made() {
    let reg = Registry::new();
    let cfg = Config::default().hook(|t, ev, _| {
        if *ev == Ev::Made {
            t.pause_reading();
        }
    });
    let (t, log, mut peer) = client_with_raw_peer(&reg, cfg).await;
    assert!(!t.is_reading());
    peer.write_all(b"x").await.unwrap();
    wait_unread(&t, 1).await;
    barrier(&t).await;
    assert_eq!(log.events(), [Ev::Made]);

    t.resume_reading();
    assert!(t.is_reading());
    log.wait_until("data", |e| received_in(e) == b"x").await;

    t.close();
    assert!(!t.is_reading());
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_pause_resume_writing:
// high watermark 4; a 10-byte write that the socket does not take pauses
// the protocol; once the send completes the buffer is empty and the
// protocol is resumed.
#[tokio::test]
async fn test_pause_resume_writing() {
    let reg = Registry::new();
    let (t, log, mut peer) = pause_writing_transport(&reg, 4).await;
    let filler = fill_kernel(&t).await;
    t.write(&b"large data"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 1);
    assert_eq!(resumes(&log), 0);

    // flush the buffer
    read_filler_then(&mut peer, filler, b"large data").await;
    log.wait_until("resume_writing", |e| e.iter().any(Ev::is_rw))
        .await;
    assert_eq!(t.get_write_buffer_size(), 0);
    assert_eq!((pauses(&log), resumes(&log)), (1, 1));
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_pause_writing_2write:
// high watermark 4, the socket takes nothing: b'123' leaves 3 buffered
// bytes (3 <= 4, no pause); b'abc' makes 6 (> 4): pause_writing.
#[tokio::test]
async fn test_pause_writing_2write() {
    let reg = Registry::new();
    let (t, log, mut peer) = pause_writing_transport(&reg, 4).await;
    let filler = fill_kernel(&t).await;

    t.write(&b"123"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 3);
    assert_eq!(pauses(&log), 0);

    t.write(&b"abc"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 6);
    assert_eq!(pauses(&log), 1);

    read_filler_then(&mut peer, filler, b"123abc").await;
    log.wait_until("resume_writing", |e| e.iter().any(Ev::is_rw))
        .await;
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_pause_writing_3write:
// high watermark 4, the socket takes nothing: 1 byte (1 <= 4), 2 more
// (3 <= 4): no pause; 3 more (6 > 4): pause_writing.
#[tokio::test]
async fn test_pause_writing_3write() {
    let reg = Registry::new();
    let (t, log, mut peer) = pause_writing_transport(&reg, 4).await;
    let filler = fill_kernel(&t).await;

    t.write(&b"1"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 1);
    assert_eq!(pauses(&log), 0);

    t.write(&b"23"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 3);
    assert_eq!(pauses(&log), 0);

    t.write(&b"abc"[..]).unwrap();
    barrier(&t).await;
    assert_eq!(t.get_write_buffer_size(), 6);
    assert_eq!(pauses(&log), 1);

    read_filler_then(&mut peer, filler, b"123abc").await;
    log.wait_until("resume_writing", |e| e.iter().any(Ev::is_rw))
        .await;
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_proactor_events.py ProactorSocketTransportTests.test_dont_pause_writing:
// high watermark 4; a 15-byte write that the socket takes at once. CPython
// does not pause (its write() sends first). Documented difference
// (docs/asyncio-parity.md, cross-cutting "write() only queues" row, and
// BaseProtocol.pause_writing): here write() only queues, the task finds 15
// bytes (> 4) before its send and calls pause_writing, then resume_writing
// once the kernel took them all; the buffer ends empty. This tests our
// documented behaviour: one pause/resume pair, in that order.
#[tokio::test]
async fn test_dont_pause_writing() {
    let reg = Registry::new();
    let (t, log, mut peer) = pause_writing_transport(&reg, 4).await;
    t.write(&b"very large data"[..]).unwrap();
    log.wait_until("resume_writing", |e| e.iter().any(Ev::is_rw))
        .await;
    assert_eq!(t.get_write_buffer_size(), 0);
    let flow: Vec<Ev> = log
        .events()
        .into_iter()
        .filter(|e| e.is_pw() || e.is_rw())
        .collect();
    assert_eq!(flow, [Ev::PauseWriting(15), Ev::ResumeWriting(0)]);
    assert_eq!(read_n(&mut peer, 15).await, b"very large data");
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// ---------------------------------------------------------------------------
// CPython Lib/test/test_asyncio/test_transports.py (TransportTests)
// ---------------------------------------------------------------------------

// CPython test_transports.py TransportTests.test_flowcontrol_mixin_set_write_limits,
// on a real connection as uvloop's twin (uvloop tests/test_tcp.py
// _TestTCP.test_flowcontrol_mixin_set_write_limits) does: 512 bytes
// buffered (the socket takes nothing); low=16385 alone -> (16385, 65540),
// no pause; high=0, low=1 -> ValueError 'high.*must be >= low' (here
// `TransportError::InvalidLimits`, limits unchanged); (high 1024, low 128)
// -> (128, 1024), no pause; (high 256, low 128) -> (128, 256) and the
// protocol is paused at once (512 > 256).
#[tokio::test]
async fn test_flowcontrol_mixin_set_write_limits() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_stalled_peer(&reg, Config::default()).await;
    let filler = fill_kernel(&t).await;
    let q = vec![b'q'; 512];
    t.write(q.clone()).unwrap();
    assert_eq!(t.get_write_buffer_size(), 512);

    t.set_write_buffer_limits(None, Some(16385)).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 0);
    assert_eq!(t.get_write_buffer_limits(), (16385, 65540));

    let err = t.set_write_buffer_limits(Some(0), Some(1)).unwrap_err();
    assert_eq!(err, TransportError::InvalidLimits { high: 0, low: 1 });
    let msg = err.to_string();
    assert!(
        msg.starts_with("high (0)") && msg.contains("must be >= low"),
        "{msg}"
    );
    assert_eq!(t.get_write_buffer_limits(), (16385, 65540), "unchanged");

    t.set_write_buffer_limits(Some(1024), Some(128)).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 0);
    assert_eq!(t.get_write_buffer_limits(), (128, 1024));

    t.set_write_buffer_limits(Some(256), Some(128)).unwrap();
    barrier(&t).await;
    assert_eq!(pauses(&log), 1);
    assert_eq!(t.get_write_buffer_limits(), (128, 256));

    read_filler_then(&mut peer, filler, &q).await;
    log.wait_until("resume_writing", |e| e.iter().any(Ev::is_rw))
        .await;
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_transports.py TransportTests.test_writelines: writelines()
// of three chunks is one write of their concatenation: the buffer counts
// 15 bytes when it returns, it is one write call, and the peer reads
// b'line1line2line3'.
#[tokio::test]
async fn test_writelines() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.writelines([
        Bytes::from_static(b"line1"),
        Bytes::from(b"line2".to_vec()),
        Bytes::copy_from_slice(b"line3"),
    ])
    .unwrap();
    assert_eq!(t.get_write_buffer_size(), 15);
    assert_eq!(t.stats().writes, 1);
    assert_eq!(read_n(&mut peer, 15).await, b"line1line2line3");
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

// CPython test_transports.py TransportTests.test_get_extra_info: a name the
// transport knows gives its value, an unknown one None, and the caller's
// default then (here `Option::unwrap_or`, documented for the `default`
// argument).
#[tokio::test]
async fn test_get_extra_info() {
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert_eq!(
        t.get_extra_info("peername"),
        Some(ExtraInfo::Address(SocketAddress::Inet(
            peer.local_addr().unwrap()
        )))
    );
    assert_eq!(
        t.get_extra_info("sockname"),
        Some(ExtraInfo::Address(SocketAddress::Inet(
            peer.peer_addr().unwrap()
        )))
    );
    assert!(matches!(
        t.get_extra_info("socket"),
        Some(ExtraInfo::Socket(_))
    ));
    assert_eq!(t.get_extra_info("unknown"), None);
    let default = ExtraInfo::Socket(-1);
    assert_eq!(
        t.get_extra_info("unknown").unwrap_or(default.clone()),
        default
    );
    t.close();
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}
