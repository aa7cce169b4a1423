//! CPython's and uvloop's own tests for Unix stream servers and connections,
//! translated to this crate: `Lib/test/test_asyncio/test_unix_events.py`
//! (`SelectorEventLoopUnixSocketTests`), the Unix parts of `test_events.py`
//! and `test_server.py` (`UnixServerCleanupTests`,
//! `SelectorStartServerTests.test_start_unix_server_1`), and uvloop's
//! `tests/test_unix.py`. Each test is named after the one it translates;
//! what `tests/unix.rs` already covers is not repeated here, nor what the
//! parity document lists as a deliberate difference (argument checks that
//! the types make unnecessary: path and sock together, neither, `ssl=True`,
//! TLS timeouts without TLS, `server_hostname` without TLS).
#![cfg(all(feature = "streams", feature = "tls"))]

mod common;
mod tls_support;

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::*;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_transports::streams::{TransportStream, open_unix_connection, start_unix_server};
use tokio_transports::{
    ClientTls, ConnectOptions, ExtraInfo, ServerOptions, SocketAddress, connect_unix_stream,
    create_server_from_socket, create_unix_connection, create_unix_server,
};

// ---- helpers ---------------------------------------------------------------

/// A fresh, empty directory, removed when dropped (CPython's
/// `test_utils.unix_socket_path()` / uvloop's `tempfile.TemporaryDirectory`).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tt-cpy-unix-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// How many sockets of this machine are bound to `path` (`/proc/net/unix`,
/// whose last column is the bound name; accepted sockets show their
/// listener's name too). Zero once the listening socket and every accepted
/// one are closed: the translation of uvloop's `srv_sock.fileno() == -1`.
fn sockets_bound_to(path: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let name = path.to_str().unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(7) == Some(name))
        .count()
}

/// A bound, not listening, Unix stream socket (Python's
/// `socket.socket(AF_UNIX); sock.bind(path)`).
fn bound_socket(path: &Path, ty: Type) -> Socket {
    let sock = Socket::new(Domain::UNIX, ty, None).unwrap();
    sock.bind(&SockAddr::unix(path).unwrap()).unwrap();
    sock
}

/// Whether python3 (with asyncio) is here; without it the tests that need
/// it are skipped, unless `TOKIO_TRANSPORTS_REQUIRE_PYTHON` is set (as CI
/// sets it), which makes its absence a failure.
fn python_available() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import asyncio")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok || std::env::var_os("TOKIO_TRANSPORTS_REQUIRE_PYTHON").is_none(),
        "python3 is required (TOKIO_TRANSPORTS_REQUIRE_PYTHON is set) but was not found"
    );
    ok
}

/// An abstract name nobody else uses.
fn abstract_name(tag: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!(
        "\0tt-cpy-unix-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn unix(path: impl Into<PathBuf>) -> Option<ExtraInfo> {
    Some(ExtraInfo::Address(SocketAddress::Unix(Some(path.into()))))
}

const UNNAMED: Option<ExtraInfo> = Some(ExtraInfo::Address(SocketAddress::Unix(None)));

// ---- test_events.py ----------------------------------------------------------

/// test_events.py `EventLoopTestsMixin.test_create_unix_server`: a plain
/// client sends `xxx`, the server protocol is CONNECTED and counts 3
/// bytes, `server.sockets` has one entry, closing the server transport
/// ends in CLOSED. Plus the server side's names (§7, §12 of the reference:
/// `sockname` is the path, `peername` of an accepted connection is `''`).
#[tokio::test]
async fn test_create_unix_server() {
    let reg = Registry::new();
    let dir = TempDir::new("server");
    let path = dir.sock();
    let server = create_unix_server(
        reg.factory("server", Config::default()),
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.socket_addresses().len(), 1);

    let mut client = UnixStream::connect(&path).await.unwrap();
    client.write_all(b"xxx").await.unwrap();
    let srv = reg.nth("server", 0).await;
    let st = srv.wait_made().await;
    assert_eq!(srv.wait_received(3).await, b"xxx");

    assert_eq!(st.get_extra_info("sockname"), unix(&path));
    assert_eq!(st.get_extra_info("peername"), UNNAMED);
    assert!(matches!(
        st.get_extra_info("socket"),
        Some(ExtraInfo::Socket(_))
    ));

    // close connection
    st.close();
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    assert_eq!(read_to_eof(&mut client).await, b"");
    // Still available after the close (cached at construction).
    assert_eq!(st.get_extra_info("sockname"), unix(&path));
    drop(client);
    shutdown(&server).await;
    reg.finish().await;
}

/// test_events.py `EventLoopTestsMixin.test_create_unix_connection`
/// (`_basetest_create_connection` against `run_test_unix_server`, an HTTP
/// server): `MyProto` writes a request in `connection_made`, receives the
/// answer, sees the server's close; `sockname` is not None (an unbound
/// client's name is `''`), the state goes CONNECTED → EOF → CLOSED.
#[tokio::test]
async fn test_create_unix_connection() {
    let reg = Registry::new();
    let dir = TempDir::new("conn");
    let path = dir.sock();
    let listener = UnixListener::bind(&path).unwrap();
    let httpd = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        while !req.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).await.unwrap() == 0 {
                break;
            }
            req.push(b[0]);
        }
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        req
    });
    let rec = reg.recorder(
        "client",
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n")
                    .unwrap();
            }
        }),
    );
    let log = rec.log();
    let t = create_unix_connection(move || rec, &path, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(t.get_extra_info("sockname"), UNNAMED);
    assert_eq!(t.get_extra_info("peername"), unix(&path));
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let evs = log.events();
    assert!(received_len(&evs) > 0);
    assert!(evs.contains(&Ev::Eof), "{evs:?}");
    assert_eq!(
        guard("httpd", httpd).await.unwrap(),
        b"GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"
    );
    t.close();
    reg.finish().await;
}

/// test_events.py `test_create_unix_server_ssl_verify_failed`: a client
/// without the CA fails with "certificate verify failed", and the server's
/// protocol never gets `connection_made` (`proto.transport` stays None).
#[tokio::test]
async fn test_create_unix_server_ssl_verify_failed() {
    let pki = tls_support::Pki::new();
    let dir = TempDir::new("sslfail");
    let path = dir.sock();
    let server_log = Log::new("server");
    let made = Counter::default();
    let (l, m) = (server_log.clone(), made.clone());
    let server = create_unix_server(
        move || {
            m.incr();
            Recorder::new(l.clone(), Config::default())
        },
        &path,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    let client_log = Log::new("client");
    let cl = client_log.clone();
    let err = create_unix_connection(
        move || Recorder::new(cl, Config::default()),
        &path,
        ConnectOptions::default().ssl(
            ClientTls::new(tls_support::Pki::untrusting_client_config()).server_hostname("invalid"),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("certificate verify failed"),
        "{err}"
    );
    // The server side's failed handshake detaches from the server; then
    // nothing was delivered to any protocol.
    shutdown(&server).await;
    assert!(server_log.events().is_empty(), "{:?}", server_log.events());
    assert!(client_log.events().is_empty(), "{:?}", client_log.events());
}

// ---- test_unix_events.py ---------------------------------------------------------

/// test_unix_events.py (and uvloop) `test_create_unix_server_path_stream_bittype`:
/// a socket made `SOCK_STREAM | SOCK_NONBLOCK` is a stream socket all the
/// same; uvloop passes `cleanup_socket=True`, so the file goes at close.
#[tokio::test]
async fn test_create_unix_server_path_stream_bittype() {
    let reg = Registry::new();
    let dir = TempDir::new("bittype");
    let path = dir.sock();
    let sock = bound_socket(&path, Type::STREAM.nonblocking());
    let server = create_unix_server(
        reg.factory("server", Config::echo()),
        sock,
        ServerOptions::default().cleanup_socket(true),
    )
    .await
    .unwrap();
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"bits").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"bits");
    drop(c);
    server.close();
    guard("wait_closed", server.wait_closed()).await;
    assert!(!path.exists(), "cleanup_socket=True removes the file");
    reg.finish().await;
}

/// test_unix_events.py (and uvloop) `test_create_unix_server_existing_path_sock`,
/// with the path a symlink to the stale socket. Both check the path with
/// `os.stat`, which follows the link: `S_ISSOCK` is true, so
/// `os.remove(path)` removes the link and the bind at the path succeeds
/// (CPython 3.11 here: the server binds, the link is gone, the stale target
/// stays). tests/unix.rs covers the plain stale socket.
#[tokio::test]
async fn test_create_unix_server_existing_path_sock_symlink() {
    let dir = TempDir::new("symlink");
    let target = dir.0.join("target");
    drop(std::os::unix::net::UnixListener::bind(&target).unwrap());
    let link = dir.sock();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let srv = create_unix_server(|| (), &link, ServerOptions::default())
        .await
        .expect("the link to a stale socket is removed, as asyncio does");
    assert!(is_socket(&link), "a new socket at the path");
    assert!(is_socket(&target), "the link's target is left alone");
    let c = UnixStream::connect(&link).await;
    assert!(c.is_ok(), "{c:?}");
    shutdown(&srv).await;
}

/// test_unix_events.py `test_create_unix_server_path_inetsock`: a TCP
/// socket is refused with "A UNIX Domain Stream Socket was expected".
/// (tests/unix.rs checks a datagram socket for the server and a TCP one for
/// the connection.)
#[tokio::test]
async fn test_create_unix_server_path_inetsock() {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let err = create_unix_server(|| (), sock, ServerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected"),
        "{err}"
    );
}

// ---- test_server.py ------------------------------------------------------------

/// test_server.py `UnixServerCleanupTests.test_unix_server_addr_cleanup`:
/// the socket file is gone as soon as `close()` returns (no
/// `wait_closed()` in between).
#[tokio::test]
async fn test_unix_server_addr_cleanup() {
    let dir = TempDir::new("addr-cleanup");
    let path = dir.sock();
    let srv = start_unix_server(|_s| async {}, &path, ServerOptions::default())
        .await
        .unwrap();
    assert!(is_socket(&path));
    srv.close();
    assert!(!path.exists());
}

/// test_server.py `test_unix_server_sock_cleanup`: a socket of the caller's,
/// bound (not listening), is served, and its file is removed by `close()`.
#[tokio::test]
async fn test_unix_server_sock_cleanup() {
    let dir = TempDir::new("sock-cleanup");
    let path = dir.sock();
    let sock = bound_socket(&path, Type::STREAM);
    let srv = start_unix_server(|_s| async {}, sock, ServerOptions::default())
        .await
        .unwrap();
    assert!(srv.is_serving());
    srv.close();
    assert!(!path.exists());
}

/// test_server.py `test_unix_server_cleanup_gone`: with a socket of the
/// caller's whose file someone else already removed, `close()` does not
/// fail (and creates nothing).
#[tokio::test]
async fn test_unix_server_cleanup_gone() {
    let dir = TempDir::new("cleanup-gone");
    let path = dir.sock();
    let sock = bound_socket(&path, Type::STREAM);
    let srv = start_unix_server(|_s| async {}, sock, ServerOptions::default())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    srv.close();
    guard("wait_closed", srv.wait_closed()).await;
    assert!(!path.exists());
}

// (test_unix_server_cleanup_replaced and test_unix_server_cleanup_prevented:
// tests/unix.rs, close_removes_the_file_only_while_it_is_the_one_bound.)

/// test_server.py `SelectorStartServerTests.test_start_unix_server_1`:
/// `start_unix_server(..., start_serving=False)` is not serving (a connect
/// is refused, §10), `start_serving()` starts it, `serve_forever()` runs
/// until the handler cancels its task; then the server is closed:
/// `sockets` empty, not serving, and `serve_forever()` fails with "is
/// closed". The client's exchange still completes.
#[tokio::test]
async fn test_start_unix_server_1() {
    let dir = TempDir::new("start1");
    let path = dir.sock();
    let hello: Vec<u8> = [vec![b'1'; 1024 * 5], vec![b'\n']].concat();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let cancel_tx = Arc::new(Mutex::new(Some(cancel_tx)));
    let srv = start_unix_server(
        move |mut stream: TransportStream| {
            let cancel_tx = cancel_tx.clone();
            async move {
                let mut line = Vec::new();
                stream.read_until(b'\n', &mut line).await.unwrap();
                assert_eq!(line.len(), 1024 * 5 + 1);
                // main_task.cancel()
                if let Some(tx) = cancel_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                stream.write_all(b"1").await.unwrap();
                stream.flush().await.unwrap();
                // writer.close(); await writer.wait_closed()
                let t = stream.transport().clone();
                drop(stream);
                t.closed().await;
            }
        },
        &path,
        ServerOptions::default().start_serving(false),
    )
    .await
    .unwrap();

    // async with srv:
    assert!(!srv.is_serving());
    let refused = UnixStream::connect(&path).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    srv.start_serving().await.unwrap();
    assert!(srv.is_serving());
    let s2 = srv.clone();
    let main_task = tokio::spawn(async move { s2.serve_forever().await });

    let client = {
        let path = path.clone();
        tokio::spawn(async move {
            let mut sock = UnixStream::connect(&path).await.unwrap();
            sock.write_all(&hello).await.unwrap();
            read_n(&mut sock, 1).await
        })
    };
    guard("handler cancels the main task", cancel_rx)
        .await
        .unwrap();
    main_task.abort();
    let joined = guard("main task", main_task).await;
    assert!(joined.unwrap_err().is_cancelled());
    // (leaving `async with srv`)
    srv.close();
    guard("wait_closed", srv.wait_closed()).await;
    assert_eq!(guard("client", client).await.unwrap(), b"1");

    assert!(srv.socket_addresses().is_empty());
    assert!(!srv.is_serving());
    let err = srv.serve_forever().await.unwrap_err();
    assert!(err.to_string().contains("is closed"), "{err}");
    assert!(!path.exists());
}

// ---- uvloop tests/test_unix.py -----------------------------------------------------

const TOTAL_CNT: usize = 100;

/// The client of uvloop's `test_create_unix_server_1`: AAAA → OK, BBBB →
/// SPAM, byte by byte as uvloop reads.
async fn aaaa_bbbb_client(path: PathBuf) {
    let mut sock = UnixStream::connect(&path).await.unwrap();
    sock.write_all(b"AAAA").await.unwrap();
    assert_eq!(read_n(&mut sock, 2).await, b"OK");
    sock.write_all(b"BBBB").await.unwrap();
    assert_eq!(read_n(&mut sock, 4).await, b"SPAM");
}

/// The handler of uvloop's `test_create_unix_server_1`.
async fn aaaa_bbbb_handler(mut stream: TransportStream, cnt: Arc<AtomicUsize>) {
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"AAAA");
    stream.write_all(b"OK").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"BBBB");
    stream.write_all(b"SPAM").await.unwrap();
    stream.flush().await.unwrap();
    cnt.fetch_add(1, Ordering::SeqCst);
    // writer.close(); await writer.wait_closed()
    let t = stream.transport().clone();
    drop(stream);
    t.closed().await;
}

/// Run the 100 clients against `srv` on `path`, close it the way uvloop
/// does, and check what uvloop checks (plus that no socket stays bound to
/// the path: the listening socket and every accepted one are closed).
async fn run_aaaa_bbbb(srv: tokio_transports::Server, path: &Path, cnt: &AtomicUsize) {
    assert!(!srv.socket_addresses().is_empty());
    assert!(srv.is_serving());
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..TOTAL_CNT {
        clients.spawn(aaaa_bbbb_client(path.to_path_buf()));
    }
    guard("100 clients", async {
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
    })
    .await;
    // self.loop.call_soon(srv.close); await srv.wait_closed()
    let s2 = srv.clone();
    tokio::spawn(async move { s2.close() });
    guard("wait_closed", srv.wait_closed()).await;
    assert_eq!(
        sockets_bound_to(path),
        0,
        "every socket on the path is closed"
    );
    assert!(!srv.is_serving());
    assert_eq!(cnt.load(Ordering::SeqCst), TOTAL_CNT);
}

/// uvloop `test_create_unix_server_1`, subtest `start_unix_server(path)`:
/// 100 clients, then the server closes and (3.13+) removes its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_server_1_path() {
    let dir = TempDir::new("srv1-path");
    let path = dir.sock();
    let cnt = Arc::new(AtomicUsize::new(0));
    let c = cnt.clone();
    let srv = start_unix_server(
        move |s| aaaa_bbbb_handler(s, c.clone()),
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    run_aaaa_bbbb(srv, &path, &cnt).await;
    assert!(!path.exists());
}

/// uvloop `test_create_unix_server_1`, subtest `start_unix_server(sock)`:
/// the same over a bound socket of the caller's; its file is removed too
/// (`create_unix_server`'s cleanup applies to `sock=`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_server_1_sock() {
    let dir = TempDir::new("srv1-sock");
    let path = dir.sock();
    let sock = bound_socket(&path, Type::STREAM);
    let cnt = Arc::new(AtomicUsize::new(0));
    let c = cnt.clone();
    let srv = start_unix_server(
        move |s| aaaa_bbbb_handler(s, c.clone()),
        sock,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    run_aaaa_bbbb(srv, &path, &cnt).await;
    assert!(!path.exists());
}

/// uvloop `test_create_unix_server_1`, subtest `start_server(sock)`
/// (`is_unix_api=False`): a Unix socket given to the generic
/// `create_server(sock=)` is served, and its file is left in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_server_1_start_server_sock() {
    let dir = TempDir::new("srv1-generic");
    let path = dir.sock();
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let cnt = Arc::new(AtomicUsize::new(0));
    let c = cnt.clone();
    let srv = create_server_from_socket(
        move || AaaaBbbb {
            cnt: c.clone(),
            state: None,
        },
        listener,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    run_aaaa_bbbb(srv, &path, &cnt).await;
    assert!(is_socket(&path), "create_server(sock=) does not clean up");
}

/// The server side of the AAAA/BBBB exchange as a protocol, for the
/// generic `create_server_from_socket` (the stream adapter has no
/// `start_server(sock=)` form).
struct AaaaBbbb {
    cnt: Arc<AtomicUsize>,
    state: Option<(tokio_transports::Transport, Vec<u8>, u8)>,
}

impl tokio_transports::BaseProtocol for AaaaBbbb {
    fn connection_made(&mut self, t: &tokio_transports::Transport) {
        self.state = Some((t.clone(), Vec::new(), 0));
    }
}

impl tokio_transports::Protocol for AaaaBbbb {
    fn data_received(&mut self, data: tokio_transports::Bytes) {
        let Some((t, buf, stage)) = &mut self.state else {
            return;
        };
        buf.extend_from_slice(&data);
        if *stage == 0 && buf.len() >= 4 {
            assert_eq!(&buf[..4], b"AAAA");
            buf.drain(..4);
            t.write("OK").unwrap();
            *stage = 1;
        }
        if *stage == 1 && buf.len() >= 4 {
            assert_eq!(&buf[..4], b"BBBB");
            buf.drain(..4);
            t.write("SPAM").unwrap();
            self.cnt.fetch_add(1, Ordering::SeqCst);
            t.close();
            *stage = 2;
        }
    }
}

/// uvloop `test_create_unix_connection_open_unix_con_addr` and friends:
/// a plain server (`recv_all(4)` AAAA → OK, BBBB → SPAM) and 100 clients
/// made by `connect`.
async fn run_unix_connection_1<F, Fut>(connect: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: std::future::Future<Output = TransportStream> + Send + 'static,
{
    let dir = TempDir::new("conn1");
    let path = dir.sock();
    let listener = UnixListener::bind(&path).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let s = served.clone();
    let server = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        for _ in 0..TOTAL_CNT {
            let (mut sock, _) = listener.accept().await.unwrap();
            let s = s.clone();
            conns.spawn(async move {
                assert_eq!(read_n(&mut sock, 4).await, b"AAAA");
                sock.write_all(b"OK").await.unwrap();
                assert_eq!(read_n(&mut sock, 4).await, b"BBBB");
                sock.write_all(b"SPAM").await.unwrap();
                s.fetch_add(1, Ordering::SeqCst);
            });
        }
        while let Some(r) = conns.join_next().await {
            r.unwrap();
        }
    });
    let cnt = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..TOTAL_CNT {
        let opened = connect(path.clone());
        let cnt = cnt.clone();
        clients.spawn(async move {
            let mut stream = opened.await;
            stream.write_all(b"AAAA").await.unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf[..2]).await.unwrap();
            assert_eq!(&buf[..2], b"OK");
            stream.write_all(b"BBBB").await.unwrap();
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"SPAM");
            // writer.close(); await writer.wait_closed()
            let t = stream.transport().clone();
            drop(stream);
            t.closed().await;
            cnt.fetch_add(1, Ordering::SeqCst);
        });
    }
    guard("100 clients", async {
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
    })
    .await;
    guard("server", server).await.unwrap();
    assert_eq!(cnt.load(Ordering::SeqCst), TOTAL_CNT);
    assert_eq!(served.load(Ordering::SeqCst), TOTAL_CNT);
}

/// uvloop `test_create_unix_connection_open_unix_con_addr`:
/// `open_unix_connection(path)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_connection_open_unix_con_addr() {
    run_unix_connection_1(|path| async move {
        open_unix_connection(&path, ConnectOptions::default())
            .await
            .unwrap()
    })
    .await;
}

/// uvloop `test_create_unix_connection_open_unix_con_sock`:
/// `open_unix_connection(sock=sock)` with a connected (blocking) socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_connection_open_unix_con_sock() {
    run_unix_connection_1(|path| async move {
        let sock = std::os::unix::net::UnixStream::connect(&path).unwrap();
        open_unix_connection(sock, ConnectOptions::default())
            .await
            .unwrap()
    })
    .await;
}

/// uvloop `test_create_unix_connection_open_con_sock`: the generic
/// `open_connection(sock=sock)` over a connected Unix socket (here
/// `connect_unix_stream` under the stream adapter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_connection_open_con_sock() {
    run_unix_connection_1(|path| async move {
        let sock = std::os::unix::net::UnixStream::connect(&path).unwrap();
        TransportStream::open(|p| connect_unix_stream(move || p, sock))
            .await
            .unwrap()
    })
    .await;
}

/// uvloop `test_create_unix_connection_3`: the server reads 4 bytes and
/// closes; the client's `get_extra_info('socket')` is an AF_UNIX socket and
/// `readexactly(10)` ends early (IncompleteReadError: an unexpected EOF).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_create_unix_connection_3() {
    let dir = TempDir::new("conn3");
    let path = dir.sock();
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        for _ in 0..TOTAL_CNT {
            let (mut sock, _) = listener.accept().await.unwrap();
            conns.spawn(async move {
                assert_eq!(read_n(&mut sock, 4).await, b"AAAA");
                drop(sock);
            });
        }
        while let Some(r) = conns.join_next().await {
            r.unwrap();
        }
    });
    let cnt = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..TOTAL_CNT {
        let path = path.clone();
        let cnt = cnt.clone();
        clients.spawn(async move {
            let mut stream = open_unix_connection(&path, ConnectOptions::default())
                .await
                .unwrap();
            let family = stream.transport().with_socket(|s| s.domain().unwrap());
            assert_eq!(family, Some(Domain::UNIX));
            stream.write_all(b"AAAA").await.unwrap();
            let mut buf = [0u8; 10];
            let err = stream.read_exact(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
            let t = stream.transport().clone();
            drop(stream);
            t.closed().await;
            cnt.fetch_add(1, Ordering::SeqCst);
        });
    }
    guard("100 clients", async {
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
    })
    .await;
    guard("server", server).await.unwrap();
    assert_eq!(cnt.load(Ordering::SeqCst), TOTAL_CNT);
}

/// uvloop `test_create_unix_connection_5`: a transport over one end of a
/// socketpair; write, the other end closes, write again: exactly one
/// `connection_lost`, with BrokenPipeError or ConnectionResetError. (In
/// uvloop and asyncio the first write reaches the socket at once; the
/// barrier makes it so here.)
#[tokio::test]
async fn test_create_unix_connection_5() {
    let reg = Registry::new();
    let (s1, s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_unix_connection(move || rec, s2, ConnectOptions::default())
        .await
        .unwrap();
    t.write("AAAAA").unwrap();
    barrier(&t).await;
    drop(s1);
    t.write("AAAAA").unwrap();
    let lost = guard("connection_lost", log.wait_lost()).await;
    let kind = lost.as_ref().map(|l| l.kind);
    assert!(
        matches!(
            kind,
            Some(ErrorKind::BrokenPipe) | Some(ErrorKind::ConnectionReset)
        ),
        "connection_lost({lost:?}), events {:?}",
        log.events()
    );
    assert_eq!(log.count(Ev::is_lost), 1);
    reg.finish().await;
}

/// uvloop `test_create_unix_connection_5`, with both writes still queued
/// when the peer closes (the order a write-queuing transport can see: the
/// peer's end of file first, then the flush that `close()` does fails). In
/// asyncio the same order ends the same way: `eof_received` returns False,
/// `close()` keeps the buffer, the flush fails with EPIPE, and
/// `_fatal_error` gives `connection_lost(BrokenPipeError)`.
#[tokio::test]
async fn test_create_unix_connection_5_writes_unsent() {
    let reg = Registry::new();
    let (s1, s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_unix_connection(move || rec, s2, ConnectOptions::default())
        .await
        .unwrap();
    // Nothing yields between these: the connection's task has not run.
    t.write("AAAAA").unwrap();
    drop(s1);
    t.write("AAAAA").unwrap();
    let lost = guard("connection_lost", log.wait_lost()).await;
    let kind = lost.as_ref().map(|l| l.kind);
    assert!(
        matches!(
            kind,
            Some(ErrorKind::BrokenPipe) | Some(ErrorKind::ConnectionReset)
        ),
        "connection_lost({lost:?}): 10 bytes were never delivered; events {:?}",
        log.events()
    );
    assert_eq!(log.count(Ev::is_lost), 1);
    reg.finish().await;
}

/// uvloop `test_create_unix_connection_sock_cancel_detaches`: cancelling
/// `create_unix_connection(sock=sock)` closes the socket (`sock.fileno()
/// == -1`): the server's side of it sees the end.
#[tokio::test]
async fn test_create_unix_connection_sock_cancel_detaches() {
    let reg = Registry::new();
    let dir = TempDir::new("cancel");
    let path = dir.sock();
    let srv = create_unix_server(
        reg.factory("server", Config::default()),
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let sock = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let calls = Counter::default();
    let c = calls.clone();
    // Boxed, so that `drop` drops the future itself (not a pinned reference).
    let mut connect = Box::pin(create_unix_connection(
        move || {
            c.incr();
        },
        sock,
        ConnectOptions::default(),
    ));
    // await asyncio.sleep(0); task.cancel(): poll it once, then drop it.
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = connect.as_mut().poll(cx) {
            panic!("create_unix_connection returned at once: {r:?}");
        }
        Poll::Ready(())
    })
    .await;
    assert_eq!(
        calls.get(),
        1,
        "the factory ran: the connection's task exists"
    );
    drop(connect);
    let srv_log = reg.nth("server", 0).await;
    assert_eq!(guard("server side lost", srv_log.wait_lost()).await, None);
    assert!(srv_log.events().contains(&Ev::Eof));
    shutdown(&srv).await;
    reg.finish().await;
}

/// uvloop `Test_UV_Unix.test_epollhup`: a BufferedProtocol server with a
/// 50-byte buffer writes `hello` in `connection_made`; the client reads it,
/// sends 51 bytes and closes at once. The server gets all 51 bytes, then
/// `eof_received`, then `connection_lost(None)`.
#[tokio::test]
async fn test_epollhup() {
    const SIZE: usize = 50;
    let reg = Registry::new();
    let dir = TempDir::new("epollhup");
    let path = dir.sock();
    let srv = create_unix_server(
        reg.buffered_factory(
            "server",
            Config::default().buf_cap(SIZE).hook(|t, ev, _| {
                if *ev == Ev::Made {
                    t.write("hello").unwrap();
                }
            }),
        ),
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    {
        let mut s = UnixStream::connect(&path).await.unwrap();
        assert_eq!(read_n(&mut s, 5).await, b"hello");
        // overflow recv buffer and close immediately
        s.write_all(&[b'a'; SIZE + 1]).await.unwrap();
    }
    let log = reg.nth("server", 0).await;
    assert_eq!(guard("server lost", log.wait_lost()).await, None);
    let evs = log.events();
    assert!(evs.contains(&Ev::Eof), "{evs:?}");
    assert_eq!(received_in(&evs), [b'a'; SIZE + 1]);
    shutdown(&srv).await;
    reg.finish().await;
}

// ---- abstract names and Python peers (§7: abstract names are left alone) -----------

/// No upstream test: CPython's `create_unix_server` skips the stale-file
/// check and the cleanup for an abstract name (`if path[0] not in (0,
/// '\x00')`), and its transports report the name as `b'\x00name'`. Here
/// Python's `open_unix_connection` reaches our server by the abstract name
/// and sees it as its `peername`; both sides see each other's names as
/// asyncio does (the unbound client is `''`).
#[tokio::test]
async fn abstract_name_python_client_against_create_unix_server() {
    if !python_available() {
        eprintln!("python3 not available: skipped");
        return;
    }
    let reg = Registry::new();
    let name = abstract_name("pyclient");
    let server = create_unix_server(
        reg.factory("server", Config::echo()),
        Path::new(&name),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let script = r#"
import asyncio, sys
async def main(name):
    reader, writer = await asyncio.open_unix_connection(name)
    print(repr(writer.get_extra_info('peername')))
    print(repr(writer.get_extra_info('sockname')))
    writer.write(b'ping')
    print((await reader.readexactly(4)).decode())
    writer.close()
    await writer.wait_closed()
asyncio.run(main(sys.argv[1].replace('@', '\0', 1)))
"#;
    let out = guard(
        "python client",
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(name.replacen('\0', "@", 1))
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = format!("b'\\x00{}'", &name[1..]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, [shown.as_str(), "''", "ping"]);
    let srv = reg.nth("server", 0).await;
    let st = srv.wait_made().await;
    assert_eq!(st.get_extra_info("sockname"), unix(&name));
    assert_eq!(st.get_extra_info("peername"), UNNAMED);
    guard("server lost", srv.wait_lost()).await;
    shutdown(&server).await;
    reg.finish().await;
}

/// The other way: our `create_unix_connection` to Python's
/// `create_unix_server` on an abstract name; our `peername` is the name,
/// Python sees our client as `''`.
#[tokio::test]
async fn abstract_name_create_unix_connection_against_python_server() {
    if !python_available() {
        eprintln!("python3 not available: skipped");
        return;
    }
    let name = abstract_name("pyserver");
    let script = r#"
import asyncio, sys
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
        print(repr(t.get_extra_info('peername')), flush=True)
        print(repr(t.get_extra_info('sockname')), flush=True)
    def data_received(self, data):
        self.t.write(data)
    def eof_received(self):
        done.set_result(None)
async def main(name):
    global done
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.get_running_loop().create_unix_server(P, name)
    print('ready', flush=True)
    await asyncio.wait_for(done, 20)
    server.close()
asyncio.run(main(sys.argv[1].replace('@', '\0', 1)))
"#;
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(name.replacen('\0', "@", 1))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    guard("python ready", stdout.read_line(&mut line))
        .await
        .unwrap();
    assert_eq!(line, "ready\n");
    let reg = Registry::new();
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_unix_connection(move || rec, name.as_str(), ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(t.get_extra_info("peername"), unix(&name));
    assert_eq!(t.get_extra_info("sockname"), UNNAMED);
    t.write("echo").unwrap();
    assert_eq!(log.wait_received(4).await, b"echo");
    t.write_eof().unwrap();
    let mut rest = String::new();
    guard("python output", stdout.read_to_string(&mut rest))
        .await
        .unwrap();
    let shown = format!("b'\\x00{}'", &name[1..]);
    assert_eq!(rest.lines().collect::<Vec<_>>(), ["''", shown.as_str()]);
    assert!(guard("python exit", child.wait()).await.unwrap().success());
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    reg.finish().await;
}

/// No upstream test: CPython's `create_unix_server` leaves an abstract name
/// alone (no stale-file check, nothing to remove), so a name in use is a
/// bind error, EADDRINUSE, and the server that has it goes on serving.
#[tokio::test]
async fn abstract_name_in_use() {
    let name = abstract_name("inuse");
    let first = create_unix_server(|| (), Path::new(&name), ServerOptions::default())
        .await
        .unwrap();
    let err = create_unix_server(|| (), Path::new(&name), ServerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
    assert!(first.is_serving());
    let t = create_unix_connection(|| (), name.as_str(), ConnectOptions::default())
        .await
        .expect("the first server still has the name");
    t.close();
    shutdown(&first).await;
}

/// The same error's message. CPython builds it with `repr()`
/// (`msg = f'Address {path!r} is already in use'`), so the NUL shows as
/// `\x00`: Python 3.11 says `Address '\x00name' is already in use`. Ours
/// embeds the raw NUL byte, which terminals and C-string logs drop or cut
/// at, so the name reads as a relative path.
#[tokio::test]
async fn abstract_name_in_use_message() {
    let name = abstract_name("inuse-msg");
    let first = create_unix_server(|| (), Path::new(&name), ServerOptions::default())
        .await
        .unwrap();
    let err = create_unix_server(|| (), Path::new(&name), ServerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Address '\\x00{}' is already in use", &name[1..])
    );
    shutdown(&first).await;
}
