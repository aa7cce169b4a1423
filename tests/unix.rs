//! Unix stream servers and connections by path (asyncio's
//! `create_unix_server` / `create_unix_connection`): the same transports
//! and `Server` as TCP, plus the socket-file rules (stale files, inode
//! cleanup), abstract names, peer credentials, TLS, and Python's asyncio
//! as a peer both ways.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use common::*;
use tls_support::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{
    ConnectOptions, ExtraInfo, ServerOptions, SocketAddress, UnixEndpoint, create_unix_connection,
    create_unix_server,
};

/// A fresh socket path in a fresh directory (removed by the caller).
fn sock_path(tag: &str) -> PathBuf {
    let dir = tls_support::temp_dir(tag);
    dir.join("s.sock")
}

async fn unix_echo_server(reg: &Registry, path: &Path) -> tokio_transports::Server {
    create_unix_server(
        reg.factory("server", Config::echo()),
        path,
        ServerOptions::default(),
    )
    .await
    .expect("create_unix_server")
}

async fn unix_client(
    reg: &Registry,
    to: impl Into<UnixEndpoint>,
) -> (tokio_transports::Transport, Log) {
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let t = create_unix_connection(move || rec, to, ConnectOptions::default())
        .await
        .expect("create_unix_connection");
    (t, log)
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

#[tokio::test]
async fn echo_over_a_path_with_names_and_credentials() {
    let reg = Registry::new();
    let path = sock_path("echo");
    let server = unix_echo_server(&reg, &path).await;
    assert_eq!(
        server.socket_addresses(),
        [SocketAddress::Unix(Some(path.clone()))]
    );
    assert!(server.sockets().is_empty(), "no IP address");
    let (t, log) = unix_client(&reg, &path).await;
    assert_eq!(
        t.get_extra_info("peername"),
        Some(ExtraInfo::Address(SocketAddress::Unix(Some(path.clone()))))
    );
    t.write("over a unix socket").unwrap();
    assert_eq!(log.wait_received(18).await, b"over a unix socket");
    let creds = t.peer_credentials().expect("SO_PEERCRED");
    assert_eq!(creds.pid, Some(std::process::id() as i32));
    assert!(matches!(
        t.get_extra_info("peercred"),
        Some(ExtraInfo::PeerCredentials(_))
    ));
    assert!(t.can_write_eof());
    let srv = reg.nth("server", 0).await;
    let st = srv.wait_made().await;
    assert_eq!(st.peer_credentials().unwrap().uid, creds.uid);
    // No TCP_NODELAY on a Unix socket, and half-close works as on TCP.
    t.write_eof().unwrap();
    srv.wait_event("eof", |e| *e == Ev::Eof).await;
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    assert!(!path.exists(), "the socket file is removed at close");
    reg.finish().await;
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_a_regular_file_is_left_alone() {
    let reg = Registry::new();
    let path = sock_path("stale");
    // A stale socket: bound, then its listener gone.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path));
    let server = unix_echo_server(&reg, &path).await;
    let (t, log) = unix_client(&reg, &path).await;
    t.write("x").unwrap();
    log.wait_received(1).await;
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;

    // A regular file is never removed: the bind fails, naming the path.
    std::fs::write(&path, b"precious").unwrap();
    let err = create_unix_server(|| (), &path, ServerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    reg.finish().await;
}

#[tokio::test]
async fn close_removes_the_file_only_while_it_is_the_one_bound() {
    // Replaced by another socket: left alone.
    let path = sock_path("inode");
    let server = create_unix_server(|| (), &path, ServerOptions::default())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    server.close();
    server.wait_closed().await;
    assert!(is_socket(&path), "the replacement socket stays");
    drop(other);
    std::fs::remove_file(&path).unwrap();

    // Already removed: fine.
    let server = create_unix_server(|| (), &path, ServerOptions::default())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    server.close();
    server.wait_closed().await;
    assert!(!path.exists());

    // cleanup_socket off: never removed.
    let server = create_unix_server(|| (), &path, ServerOptions::default().cleanup_socket(false))
        .await
        .unwrap();
    server.close();
    server.wait_closed().await;
    assert!(is_socket(&path));

    // Dropping the last handle closes and cleans up too.
    std::fs::remove_file(&path).unwrap();
    let server = create_unix_server(|| (), &path, ServerOptions::default())
        .await
        .unwrap();
    drop(server);
    assert!(!path.exists());
}

#[tokio::test]
async fn an_abstract_name_needs_no_file() {
    let reg = Registry::new();
    let name = format!("\0tokio-transports-test-{}", std::process::id());
    let server = unix_echo_server(&reg, Path::new(&name)).await;
    assert_eq!(
        server.socket_addresses(),
        [SocketAddress::Unix(Some(PathBuf::from(&name)))]
    );
    let (t, log) = unix_client(&reg, name.as_str()).await;
    t.write("abstract").unwrap();
    log.wait_received(8).await;
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn sockets_of_your_own_and_the_wrong_kind() {
    let reg = Registry::new();
    let path = sock_path("own");
    // A bound (not listening) std socket for the server.
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = create_unix_server(
        reg.factory("server", Config::echo()),
        listener,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    // A connected std socket for the client.
    let sock = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let (t, log) = unix_client(&reg, sock).await;
    t.write("mine").unwrap();
    log.wait_received(4).await;
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;

    // A datagram socket is refused, with asyncio's message.
    let dgram = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None).unwrap();
    let err = create_unix_server(|| (), dgram, ServerOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("A UNIX Domain Stream Socket was expected"),
        "{err}"
    );
    let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let err = create_unix_connection(|| (), tcp, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    reg.finish().await;
}

#[tokio::test]
async fn connecting_where_nothing_listens_names_the_path() {
    let path = sock_path("missing");
    let err = create_unix_connection(|| (), &path, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    // A stale socket file: refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = create_unix_connection(|| (), &path, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn the_server_object_works_as_for_tcp() {
    let reg = Registry::new();
    let path = sock_path("server");
    let server = unix_echo_server(&reg, &path).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(unix_client(&reg, &path).await);
    }
    for (t, log) in &clients {
        t.write("hi").unwrap();
        log.wait_received(2).await;
    }
    assert_eq!(server.clients().len(), 5);
    server.close();
    assert!(!server.is_serving());
    // wait_closed waits for the connections.
    let mut waiting = Box::pin(server.wait_closed());
    assert!(is_pending(waiting.as_mut()));
    server.close_clients();
    guard("wait_closed", waiting).await;
    for (_, log) in &clients {
        assert_eq!(guard("client lost", log.wait_lost()).await, None);
    }
    reg.finish().await;
}

#[tokio::test]
async fn tls_over_a_unix_socket() {
    let pki = Pki::new();
    let reg = Registry::new();
    let path = sock_path("tls");
    let server = create_unix_server(
        reg.factory("server", Config::echo()),
        &path,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    // A Unix path is no host name: server_hostname is required.
    let err = create_unix_connection(|| (), &path, ConnectOptions::default().ssl(pki.client()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("server_hostname"), "{err}");
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let t = create_unix_connection(
        move || rec,
        &path,
        ConnectOptions::default().ssl(pki.client().server_hostname("localhost")),
    )
    .await
    .unwrap();
    assert!(t.tls_info().is_some());
    assert!(t.peer_credentials().is_some());
    t.write("secret").unwrap();
    assert_eq!(log.wait_received(6).await, b"secret");
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let srv = reg.nth("server", 0).await;
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    reg.finish().await;
}

// ---- Python's asyncio as a peer ------------------------------------------

fn python_available() -> bool {
    std::process::Command::new("python3")
        .arg("-c")
        .arg("import asyncio")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn python_create_unix_connection_against_our_server() {
    if !python_available() {
        eprintln!("python3 not available: skipped");
        return;
    }
    let reg = Registry::new();
    let path = sock_path("pyclient");
    let server = unix_echo_server(&reg, &path).await;
    let script = r#"
import asyncio, sys
async def main(path):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b'hello unix')
    print((await reader.readexactly(10)).decode())
    writer.close()
    await writer.wait_closed()
asyncio.run(main(sys.argv[1]))
"#;
    let out = guard(
        "python client",
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&path)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello unix");
    let srv = reg.nth("server", 0).await;
    guard("server lost", srv.wait_lost()).await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn our_connection_against_python_create_unix_server() {
    if !python_available() {
        eprintln!("python3 not available: skipped");
        return;
    }
    let path = sock_path("pyserver");
    let script = r#"
import asyncio, sys
class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, data):
        self.t.write(data.upper())
    def eof_received(self):
        print('eof', flush=True)
        done.set_result(None)
async def main(path):
    global done
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.get_running_loop().create_unix_server(Echo, path)
    print('ready', flush=True)
    await asyncio.wait_for(done, 20)
    server.close()
asyncio.run(main(sys.argv[1]))
"#;
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    guard("python ready", stdout.read_exact(&mut ready))
        .await
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    let reg = Registry::new();
    let (t, log) = unix_client(&reg, &path).await;
    t.write("shout").unwrap();
    assert_eq!(log.wait_received(5).await, b"SHOUT");
    t.write_eof().unwrap();
    let mut rest = String::new();
    guard("python eof", stdout.read_to_string(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest.trim(), "eof");
    assert!(guard("python exit", child.wait()).await.unwrap().success());
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    reg.finish().await;
    let _ = tokio::io::stdout().flush().await;
}

#[test]
fn closing_from_another_thread_while_the_server_idles_ends_its_accept_task() {
    // The server's runtime runs on its own thread; close() comes from this
    // one, racing with the accept task's polls (a shut-down Unix listener
    // reads as ready with nothing to accept: the task must not spin).
    for round in 0..20 {
        let path = sock_path("close-race");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let p2 = path.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = create_unix_server(|| (), &p2, ServerOptions::default())
                    .await
                    .unwrap();
                tx.send(server.clone()).unwrap();
                let _ = stop_rx.await;
                guard("wait_closed on the server's runtime", server.wait_closed()).await;
            });
        });
        let server = rx.recv().unwrap();
        server.close();
        let _ = stop_tx.send(());
        thread
            .join()
            .unwrap_or_else(|_| panic!("round {round}: the server thread failed"));
        assert!(!path.exists(), "round {round}");
    }
}
