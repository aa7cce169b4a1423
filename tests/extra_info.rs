//! get_extra_info, peername/sockname, with_socket.

mod common;

use common::*;
use tokio_transports::{
    ConnectOptions, ExtraInfo, ServerOptions, SocketAddress, connect_io, connect_unix_stream,
    create_connection, create_server,
};

fn addr(info: Option<ExtraInfo>) -> std::net::SocketAddr {
    match info {
        Some(ExtraInfo::Address(SocketAddress::Inet(a))) => a,
        other => panic!("not an inet address: {other:?}"),
    }
}

#[tokio::test]
async fn tcp_client_and_server_sides() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    let st = reg.nth("server", 0).await.wait_made().await;

    let server_addr = server.sockets()[0];
    assert_eq!(addr(t.get_extra_info("peername")), server_addr);
    assert_eq!(t.peername(), Some(server_addr));
    let client_addr = addr(t.get_extra_info("sockname"));
    assert_eq!(t.sockname(), Some(client_addr));
    assert_eq!(client_addr.ip().to_string(), "127.0.0.1");
    assert_ne!(client_addr.port(), 0);
    // The server side sees the same pair, reversed.
    assert_eq!(st.peername(), Some(client_addr));
    assert_eq!(st.sockname(), Some(server_addr));
    assert_eq!(st.peer_address(), Some(&SocketAddress::Inet(client_addr)));
    assert_eq!(t.local_address(), Some(&SocketAddress::Inet(client_addr)));

    // "socket": an open fd, the same one with_socket sees.
    let fd = match t.get_extra_info("socket") {
        Some(ExtraInfo::Socket(fd)) => fd,
        other => panic!("{other:?}"),
    };
    assert!(fd >= 0);
    use std::os::fd::AsRawFd;
    assert_eq!(t.with_socket(|s| s.as_raw_fd()), Some(fd));
    assert_eq!(
        t.with_socket(|s| s.peer_addr().unwrap().as_socket()),
        Some(Some(server_addr))
    );
    // TCP_NODELAY is on by default, on both sides.
    assert_eq!(t.with_socket(|s| s.tcp_nodelay().unwrap()), Some(true));
    assert_eq!(st.with_socket(|s| s.tcp_nodelay().unwrap()), Some(true));
    // Unknown keys.
    assert_eq!(t.get_extra_info("no such key"), None);
    assert_eq!(t.get_extra_info("pipe"), None);
    assert_eq!(t.get_extra_info(""), None);

    // After close: addresses stay, the socket is gone.
    t.close();
    t.closed().await;
    assert_eq!(t.peername(), Some(server_addr));
    assert_eq!(addr(t.get_extra_info("sockname")), client_addr);
    assert_eq!(t.get_extra_info("socket"), None);
    assert_eq!(t.with_socket(|_| ()), None);
    st.closed().await;
    assert_eq!(st.peername(), Some(client_addr));
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn socket_options_from_the_options() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::default()),
        "127.0.0.1",
        0,
        ServerOptions::default().nodelay(false).keep_alive(true),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default().nodelay(false),
    )
    .await
    .unwrap();
    assert_eq!(t.with_socket(|s| s.tcp_nodelay().unwrap()), Some(false));
    let st = reg.nth("server", 0).await.wait_made().await;
    assert_eq!(st.with_socket(|s| s.tcp_nodelay().unwrap()), Some(false));
    assert_eq!(st.with_socket(|s| s.keepalive().unwrap()), Some(true));
    // with_socket can set options too.
    t.with_socket(|s| s.set_tcp_nodelay(true).unwrap()).unwrap();
    assert_eq!(t.with_socket(|s| s.tcp_nodelay().unwrap()), Some(true));
    t.close();
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn ipv6_addresses() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::default()),
        "::1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let server_addr = server.sockets()[0];
    assert!(server_addr.is_ipv6());
    let t = create_connection(
        reg.factory("client", Config::default()),
        "::1",
        server_addr.port(),
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(t.peername(), Some(server_addr));
    assert!(t.sockname().unwrap().is_ipv6());
    let shown = SocketAddress::Inet(server_addr).to_string();
    assert_eq!(shown, format!("('::1', {}, 0, 0)", server_addr.port()));
    t.close();
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn unix_pair_and_in_memory_pipe() {
    let reg = Registry::new();
    let (a, _b) = tokio::net::UnixStream::pair().unwrap();
    let t = connect_unix_stream(|| reg.recorder("unix", Config::default()), a)
        .await
        .unwrap();
    assert_eq!(t.peer_address(), Some(&SocketAddress::Unix(None)));
    assert_eq!(
        t.get_extra_info("peername"),
        Some(ExtraInfo::Address(SocketAddress::Unix(None)))
    );
    assert_eq!(t.peername(), None, "not an IP address");
    assert!(matches!(
        t.get_extra_info("socket"),
        Some(ExtraInfo::Socket(_))
    ));
    t.close();
    t.closed().await;
    assert_eq!(t.peer_address(), Some(&SocketAddress::Unix(None)));
    assert_eq!(t.get_extra_info("socket"), None);

    let (io, _other) = tokio::io::duplex(64);
    let p = connect_io(|| reg.recorder("pipe", Config::default()), io)
        .await
        .unwrap();
    assert_eq!(p.get_extra_info("peername"), None);
    assert_eq!(p.get_extra_info("sockname"), None);
    assert_eq!(p.get_extra_info("socket"), None);
    assert_eq!(p.with_socket(|_| ()), None);
    assert!(p.can_write_eof());
    p.close();
    reg.finish().await;
}
