//! create_connection, create_connection_from_socket, connect_accepted_socket.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_transports::{
    Buffered, ConnectOptions, connect_accepted_socket, create_connection,
    create_connection_from_socket,
};

#[tokio::test]
async fn refused_connection_never_calls_the_factory() {
    let reg = Registry::new();
    let port = free_port("127.0.0.1");
    let called = Counter::default();
    let c2 = called.clone();
    let f = reg.factory("client", Config::default());
    let err = create_connection(
        move || {
            c2.incr();
            f()
        },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert_eq!(called.get(), 0);
    assert!(reg.logs().is_empty());
    reg.finish().await;
}

#[tokio::test]
async fn returns_only_after_connection_made() {
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder(
        "client",
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write("hello from connection_made").unwrap();
            }
        }),
    );
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    assert_eq!(log.events().first(), Some(&Ev::Made));
    assert_eq!(log.transport().id(), t.id(), "the same transport");
    let (mut peer, _) = listener.accept().await.unwrap();
    assert_eq!(read_n(&mut peer, 26).await, b"hello from connection_made");
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn binds_to_local_addr() {
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let local_port = free_port("127.0.0.1");
    let local: SocketAddr = format!("127.0.0.1:{local_port}").parse().unwrap();
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default().local_addr(local),
    )
    .await
    .unwrap();
    assert_eq!(t.sockname(), Some(local));
    let (_peer, peer_sees) = listener.accept().await.unwrap();
    assert_eq!(peer_sees, local);
    t.close();
    reg.finish().await;
}

#[tokio::test]
async fn local_addr_errors() {
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Wrong family.
    let err = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default().local_addr("[::1]:0".parse().unwrap()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Local address in use by a listener.
    let busy = listener.local_addr().unwrap();
    let err = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        port,
        ConnectOptions::default().local_addr(busy),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string()
            .contains("error while attempting to bind on address"),
        "{err}"
    );
    assert!(reg.logs().is_empty());
    reg.finish().await;
}

#[tokio::test]
async fn connect_timeout_against_a_full_backlog() {
    // A listener with backlog 0 that never accepts: once one connection
    // sits in its queue, further SYNs are dropped and connects hang.
    let reg = Registry::new();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let _filler = guard("filler connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let called = Counter::default();
    let c2 = called.clone();
    let limit = Duration::from_millis(100);
    let started = std::time::Instant::now();
    let err = create_connection(
        move || {
            c2.incr();
        },
        "127.0.0.1",
        addr.port(),
        ConnectOptions::default().connect_timeout(limit),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(started.elapsed() >= limit);
    assert_eq!(called.get(), 0, "no protocol for a failed connect");

    // A generous timeout does not get in the way.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = create_connection(
        reg.factory("client", Config::default()),
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
        ConnectOptions::default().connect_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    t.close();
    reg.finish().await;
}

#[tokio::test]
async fn happy_eyeballs_single_family() {
    let reg = Registry::new();
    for host in ["127.0.0.1", "::1"] {
        let listener = TcpListener::bind((host, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = ConnectOptions::default().happy_eyeballs_delay(Duration::from_millis(250));
        let t = create_connection(
            reg.factory("client", Config::default()),
            host,
            port,
            opts.clone(),
        )
        .await
        .unwrap();
        assert_eq!(t.peername(), Some(listener.local_addr().unwrap()));
        t.close();
        // Refused with happy eyeballs too.
        drop(listener);
        let err = create_connection(|| (), host, port, opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }
    reg.finish().await;
}

#[tokio::test]
async fn happy_eyeballs_localhost_finds_the_family_that_listens() {
    // "localhost" resolves to 127.0.0.1 and, on most hosts, ::1. Listen on
    // the IPv4 address only; a dual-stack resolution must still connect.
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", port))
        .await
        .unwrap()
        .collect();
    assert!(resolved.iter().any(|a| a.is_ipv4()), "{resolved:?}");
    let v6_free = std::net::TcpListener::bind(("::1", port)).is_ok();
    for delay in [Some(Duration::from_millis(50)), None] {
        let t = create_connection(
            reg.factory("client", Config::default()),
            "localhost",
            port,
            {
                let mut opts = ConnectOptions::default();
                opts.happy_eyeballs_delay = delay;
                opts
            },
        )
        .await
        .unwrap_or_else(|e| panic!("resolved {resolved:?} (v6 port free: {v6_free}): {e}"));
        assert_eq!(t.peername(), Some(listener.local_addr().unwrap()));
        let (mut peer, _) = listener.accept().await.unwrap();
        t.write("hi").unwrap();
        assert_eq!(read_n(&mut peer, 2).await, b"hi");
        t.close();
    }
    reg.finish().await;
}

#[tokio::test]
async fn from_std_and_tokio_sockets() {
    let reg = Registry::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_addr = listener.local_addr().unwrap();

    // std::net::TcpStream (blocking; create_connection_from_socket makes it non-blocking).
    let std_sock = std::net::TcpStream::connect(server_addr).unwrap();
    let std_local = std_sock.local_addr().unwrap();
    let rec = reg.recorder("std", Config::default());
    let std_log = rec.log();
    let t1 = create_connection_from_socket(move || rec, std_sock, Default::default())
        .await
        .unwrap();
    assert_eq!(std_log.events().first(), Some(&Ev::Made));
    assert_eq!(t1.peername(), Some(server_addr));
    assert_eq!(t1.sockname(), Some(std_local));
    assert_eq!(t1.with_socket(|s| s.tcp_nodelay().unwrap()), Some(true));

    // tokio::net::TcpStream.
    let tokio_sock = tokio::net::TcpStream::connect(server_addr).await.unwrap();
    let rec = reg.recorder("tokio", Config::default());
    let tokio_log = rec.log();
    let t2 = create_connection_from_socket(move || Buffered(rec), tokio_sock, Default::default())
        .await
        .unwrap();
    assert_eq!(t2.peername(), Some(server_addr));

    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    for (t, log) in [(&t1, &std_log), (&t2, &tokio_log)] {
        let (mut peer, peer_addr) = listener.accept().await.unwrap();
        assert_eq!(t.sockname(), Some(peer_addr));
        t.write("out").unwrap();
        assert_eq!(read_n(&mut peer, 3).await, b"out");
        peer.write_all(b"in").await.unwrap();
        assert_eq!(log.wait_received(2).await, b"in");
        drop(peer);
        assert_eq!(log.wait_lost().await, None);
    }
    reg.finish().await;
}

#[tokio::test]
async fn connect_accepted_socket_serves_an_accepted_connection() {
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    let rec = reg.recorder("accepted", Config::echo());
    let log = rec.log();
    let t = connect_accepted_socket(move || rec, accepted, None)
        .await
        .unwrap();
    assert_eq!(log.events().first(), Some(&Ev::Made));
    assert_eq!(t.peername(), Some(client.local_addr().unwrap()));
    assert_eq!(t.with_socket(|s| s.tcp_nodelay().unwrap()), Some(true));
    client.write_all(b"echo me").await.unwrap();
    assert_eq!(read_n(&mut client, 7).await, b"echo me");
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    guard("eof", client.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(log.wait_lost().await, None);

    // A std socket accepted elsewhere works too.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c2 = tokio::net::TcpStream::connect(std_listener.local_addr().unwrap())
        .await
        .unwrap();
    let (std_accepted, _) = std_listener.accept().unwrap();
    let t2 = connect_accepted_socket(reg.factory("accepted", Config::echo()), std_accepted, None)
        .await
        .unwrap();
    c2.write_all(b"std").await.unwrap();
    assert_eq!(read_n(&mut c2, 3).await, b"std");
    t2.close();
    reg.finish().await;
}
