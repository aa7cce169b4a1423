//! A server on a socket of yours (asyncio's `create_server(sock=...)`):
//! std, tokio and socket2 listeners, listening or only bound, a Unix
//! listener, and the sockets it refuses.

mod common;

use std::io::ErrorKind;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_transports::{ServerOptions, SocketAddress, create_server_from_socket};

/// Connect a raw client, send `msg`, and read its echo back.
async fn raw_echo(addr: std::net::SocketAddr, msg: &[u8]) {
    let mut s = guard("connect", TcpStream::connect(addr)).await.unwrap();
    s.write_all(msg).await.unwrap();
    assert_eq!(read_n(&mut s, msg.len()).await, msg);
}

#[tokio::test]
async fn a_std_listener_that_already_listens() {
    let reg = Registry::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = create_server_from_socket(
        reg.factory("server", Config::echo()),
        listener,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(server.sockets(), [addr]);
    assert!(server.is_serving());
    raw_echo(addr, b"from a socket of mine").await;
    shutdown(&server).await;
    // Closed with the server: the port refuses connections again.
    let r = guard("connect", TcpStream::connect(addr)).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    reg.finish().await;
}

#[tokio::test]
async fn a_tokio_listener() {
    let reg = Registry::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = create_server_from_socket(
        reg.factory("server", Config::echo()),
        listener,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    raw_echo(addr, b"tokio").await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn a_bound_socket_listens_when_serving_starts() {
    let reg = Registry::new();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let server = create_server_from_socket(
        reg.factory("server", Config::echo()),
        sock,
        ServerOptions::default().start_serving(false),
    )
    .await
    .unwrap();
    assert!(!server.is_serving());
    assert_eq!(server.sockets(), [addr]);
    // Bound, not listening: refused.
    let r = guard("connect", TcpStream::connect(addr)).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    server.start_serving().await.unwrap();
    assert!(server.is_serving());
    raw_echo(addr, b"now listening").await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn a_unix_listener_is_served_and_its_file_left_alone() {
    let reg = Registry::new();
    let dir = std::env::temp_dir().join(format!("tt-from-socket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = create_server_from_socket(
        reg.factory("server", Config::echo()),
        listener,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        server.socket_addresses(),
        [SocketAddress::Unix(Some(path.clone()))]
    );
    assert!(server.sockets().is_empty(), "no IP address");
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"unix").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"unix");
    drop(s);
    shutdown(&server).await;
    // As in asyncio: only create_unix_server removes the socket file.
    assert!(path.exists(), "the file of a socket passed in stays");
    std::fs::remove_dir_all(&dir).unwrap();
    reg.finish().await;
}

#[tokio::test]
async fn sockets_it_cannot_serve_on_are_refused_before_anything_starts() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err =
        create_server_from_socket(|| (), socket2::Socket::from(udp), ServerOptions::default())
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("A Stream Socket was expected"),
        "{err}"
    );
    let dgram = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None).unwrap();
    let err = create_server_from_socket(|| (), dgram, ServerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
