//! The Server object: binding, serving, closing, waiting, client control.

mod common;

use std::io::ErrorKind;
use std::sync::{Arc, OnceLock};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_transports::{ConnectOptions, Server, ServerOptions, create_connection, create_server};

async fn connect_refused(addr: std::net::SocketAddr) {
    let r = guard("connect", TcpStream::connect(addr)).await;
    assert_eq!(
        r.map(|_| ()).unwrap_err().kind(),
        ErrorKind::ConnectionRefused,
        "connect to {addr} should be refused"
    );
}

async fn echo_client(reg: &Registry, port: u16, host: &str) -> (tokio_transports::Transport, Log) {
    let rec = reg.recorder("client", Config::default());
    let log = rec.log();
    let t = create_connection(move || rec, host, port, ConnectOptions::default())
        .await
        .unwrap();
    (t, log)
}

/// Write `msg` and wait for its echo (on top of what was received before).
async fn check_echo(t: &tokio_transports::Transport, log: &Log, msg: &[u8]) {
    let before = log.received();
    t.write(msg.to_vec()).unwrap();
    let got = log.wait_received(before.len() + msg.len()).await;
    assert_eq!(&got[before.len()..], msg);
}

#[tokio::test]
async fn ephemeral_port_is_shown_by_sockets() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let socks = server.sockets();
    assert_eq!(socks.len(), 1);
    assert_eq!(socks[0].ip().to_string(), "127.0.0.1");
    assert_ne!(socks[0].port(), 0);
    assert!(server.is_serving());
    let (t, log) = echo_client(&reg, socks[0].port(), "127.0.0.1").await;
    check_echo(&t, &log, b"hello").await;
    assert_eq!(server.clients().len(), 1);
    t.close();
    shutdown(&server).await;
    assert!(server.sockets().is_empty());
    assert!(!server.is_serving());
    reg.finish().await;
}

#[tokio::test]
async fn several_hosts() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        ["127.0.0.1", "::1"],
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let socks = server.sockets();
    assert_eq!(socks.len(), 2, "{socks:?}");
    assert!(socks.iter().any(|a| a.is_ipv4()));
    assert!(socks.iter().any(|a| a.is_ipv6()));
    for a in &socks {
        let (t, log) = echo_client(&reg, a.port(), &a.ip().to_string()).await;
        check_echo(&t, &log, a.to_string().as_bytes()).await;
        assert_eq!(
            reg.named("server").last().unwrap().transport().sockname(),
            Some(*a)
        );
        t.close();
    }
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn duplicate_hosts_bind_once() {
    let reg = Registry::new();
    let port = free_port("127.0.0.1");
    let server = create_server(
        reg.factory("server", Config::echo()),
        vec![
            "127.0.0.1".to_string(),
            "127.0.0.1".to_string(),
            String::new(),
        ],
        port,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        server.sockets(),
        vec![format!("127.0.0.1:{port}").parse().unwrap()]
    );
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn start_serving_false_binds_but_refuses_until_started() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default().start_serving(false),
    )
    .await
    .unwrap();
    let addr = server.sockets()[0];
    assert_ne!(addr.port(), 0, "bound already");
    assert!(!server.is_serving());
    connect_refused(addr).await;
    server.start_serving().await.unwrap();
    assert!(server.is_serving());
    server.start_serving().await.unwrap(); // idempotent
    assert_eq!(server.sockets(), vec![addr]);
    let (t, log) = echo_client(&reg, addr.port(), "127.0.0.1").await;
    check_echo(&t, &log, b"now").await;
    t.close();
    shutdown(&server).await;
    assert!(server.start_serving().await.is_err(), "closed");
    reg.finish().await;
}

#[tokio::test]
async fn close_stops_listening_but_keeps_connections() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let addr = server.sockets()[0];
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"before").await;
    server.close();
    assert!(!server.is_serving());
    assert!(server.sockets().is_empty());
    connect_refused(addr).await;
    // The accepted connection still works, in both directions.
    check_echo(&t, &log, b"after close").await;
    server.close(); // idempotent
    assert_eq!(server.clients().len(), 1);
    t.close();
    guard("wait_closed", server.wait_closed()).await;
    assert!(server.clients().is_empty());
    reg.finish().await;
}

#[tokio::test]
async fn wait_closed_waits_for_close_and_every_connection() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    // Open, no connections: still waits (CPython 3.12.1+).
    {
        let wc = server.wait_closed();
        tokio::pin!(wc);
        assert!(is_pending(wc.as_mut()));
    }
    let (t1, l1) = echo_client(&reg, port, "127.0.0.1").await;
    let (t2, l2) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t1, &l1, b"1").await;
    check_echo(&t2, &l2, b"2").await;
    let wc = server.wait_closed();
    tokio::pin!(wc);
    assert!(is_pending(wc.as_mut()));
    server.close();
    let s1 = reg.nth("server", 0).await;
    let s2 = reg.nth("server", 1).await;
    barrier(&s1.transport()).await;
    assert!(is_pending(wc.as_mut()), "two live connections");
    t1.close();
    s1.wait_lost().await;
    barrier(&s2.transport()).await;
    assert!(is_pending(wc.as_mut()), "one live connection");
    t2.close();
    guard("wait_closed", wc).await;
    assert!(
        s2.lost().is_some(),
        "resolves only after the last connection_lost"
    );
    // Once satisfied, it returns at once forever.
    guard("wait_closed again", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn wait_closed_when_connections_end_before_close() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"x").await;
    t.close();
    reg.nth("server", 0).await.wait_lost().await;
    let wc = server.wait_closed();
    tokio::pin!(wc);
    assert!(is_pending(wc.as_mut()), "still open");
    server.close();
    guard("wait_closed", wc).await;
    reg.finish().await;
}

#[tokio::test]
async fn close_clients_is_graceful() {
    let reg = Registry::new();
    const N: usize = 8 << 20;
    let (server, port) = echo_server(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write(vec![7u8; N]).unwrap();
            }
        }),
    )
    .await;
    let mut raw1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut raw2 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s1 = reg.nth("server", 0).await;
    let s2 = reg.nth("server", 1).await;
    s1.wait_made().await;
    s2.wait_made().await;
    assert_eq!(server.clients().len(), 2);
    server.close_clients();
    for t in [s1.transport(), s2.transport()] {
        assert!(t.is_closing());
    }
    // Each peer gets every byte, then EOF.
    let (a, b) = tokio::join!(read_to_eof(&mut raw1), read_to_eof(&mut raw2));
    assert_eq!(a.len(), N);
    assert_eq!(b.len(), N);
    assert_eq!(s1.wait_lost().await, None);
    assert_eq!(s2.wait_lost().await, None);
    assert!(
        server.is_serving(),
        "close_clients does not close the server"
    );
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn abort_clients_drops_buffers() {
    let reg = Registry::new();
    const N: usize = 16 << 20;
    let (server, port) = echo_server(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.write(vec![7u8; N]).unwrap();
            }
        }),
    )
    .await;
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let s = reg.nth("server", 0).await;
    s.wait_event("pause_writing", Ev::is_pw).await;
    server.abort_clients();
    assert_eq!(s.wait_lost().await, None);
    let got = read_to_eof(&mut raw).await;
    assert!(got.len() < N, "abort must drop the buffer");
    assert!(server.clients().is_empty());
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn serve_forever_errors_and_returns() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let forever = server.serve_forever();
    tokio::pin!(forever);
    assert!(is_pending(forever.as_mut()));
    let err = server.serve_forever().await.unwrap_err();
    assert!(err.to_string().contains("already being awaited"), "{err}");
    // It serves.
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"served").await;
    // Closed from elsewhere: it returns Ok once the connections have ended
    // (asyncio's serve_forever awaits wait_closed() when close() cancels it).
    let other = server.clone();
    guard("close", tokio::spawn(async move { other.close() }))
        .await
        .unwrap();
    assert!(!server.is_serving());
    assert!(is_pending(forever.as_mut()), "a connection is still open");
    let err = server.serve_forever().await.unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    t.close();
    guard("serve_forever", forever).await.unwrap();
    guard("wait_closed", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn serve_forever_starts_serving() {
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default().start_serving(false),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let s2 = server.clone();
    let task = tokio::spawn(async move { s2.serve_forever().await });
    // Connect once the server serves: the first attempts may be refused.
    let (t, log) = guard("connect after serve_forever", async {
        loop {
            tokio::task::yield_now().await;
            if server.is_serving() {
                break echo_client(&reg, port, "127.0.0.1").await;
            }
        }
    })
    .await;
    check_echo(&t, &log, b"ok").await;
    server.close();
    // serve_forever returns once the last connection is gone.
    t.close();
    guard("serve_forever", task).await.unwrap().unwrap();
    guard("wait_closed", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn dropping_serve_forever_closes_the_server() {
    let reg = Registry::new();
    let (server, _port) = echo_server(&reg, Config::echo()).await;
    let addr = server.sockets()[0];
    {
        let forever = server.serve_forever();
        tokio::pin!(forever);
        assert!(is_pending(forever.as_mut()));
        assert!(server.is_serving());
    }
    assert!(!server.is_serving());
    connect_refused(addr).await;
    guard("wait_closed", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn dropping_the_last_server_handle_closes_it() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let addr = server.sockets()[0];
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"x").await;
    let clone: Server = server.clone();
    drop(server);
    assert!(clone.is_serving(), "a clone keeps it open");
    drop(clone);
    connect_refused(addr).await;
    check_echo(&t, &log, b"connections outlive the server").await;
    t.close();
    reg.finish().await;
}

#[tokio::test]
async fn bind_to_a_port_in_use() {
    let reg = Registry::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = create_server(
        reg.factory("server", Config::default()),
        "127.0.0.1",
        port,
        ServerOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string()
            .contains("error while attempting to bind on address"),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    reg.finish().await;
}

#[tokio::test]
async fn a_bind_failure_closes_the_sockets_already_bound() {
    let reg = Registry::new();
    // Find a port free on ::1 but taken on 127.0.0.1 (a few tries at most).
    let (_taken, port) = (0..10)
        .find_map(|_| {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = taken.local_addr().unwrap().port();
            std::net::TcpListener::bind(("::1", port))
                .is_ok()
                .then_some((taken, port))
        })
        .expect("no port free on ::1 and taken on 127.0.0.1");
    let err = create_server(
        reg.factory("server", Config::default()),
        ["::1", "127.0.0.1"],
        port,
        ServerOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    // The ::1 socket bound first was released.
    let again = std::net::TcpListener::bind(("::1", port));
    assert!(again.is_ok(), "::1:{port} still bound: {again:?}");
    reg.finish().await;
}

#[tokio::test]
async fn clients_tracks_live_connections() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    assert!(server.clients().is_empty());
    let mut clients = Vec::new();
    for i in 0..3 {
        let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
        check_echo(&t, &log, b"hi").await;
        assert_eq!(server.clients().len(), i + 1);
        clients.push(t);
    }
    let ids: Vec<usize> = {
        let mut v: Vec<usize> = server.clients().iter().map(|t| t.id()).collect();
        v.sort();
        v
    };
    let mut expected: Vec<usize> = Vec::new();
    for i in 0..3 {
        expected.push(reg.nth("server", i).await.transport().id());
    }
    expected.sort();
    assert_eq!(ids, expected);
    clients[1].close();
    reg.nth("server", 1).await.wait_lost().await;
    assert_eq!(server.clients().len(), 2);
    for t in &clients {
        t.close();
    }
    shutdown(&server).await;
    assert!(server.clients().is_empty());
    reg.finish().await;
}

#[tokio::test]
async fn a_raw_client_writing_and_leaving() {
    // A peer that sends, half-closes and goes away: the server side reads
    // everything, then EOF, then closes.
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::default()).await;
    let mut raw = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let data = pattern(300_000, 1);
    raw.write_all(&data).await.unwrap();
    raw.shutdown().await.unwrap();
    let s = reg.nth("server", 0).await;
    assert_eq!(s.wait_lost().await, None);
    assert!(s.received() == data);
    assert_eq!(read_to_eof(&mut raw).await, b"");
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn the_port_is_free_again_right_after_close() {
    // close() closes the listening sockets: a new server can bind the port
    // at once (asyncio closes them synchronously).
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    server.close();
    let again = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        port,
        ServerOptions::default(),
    )
    .await;
    let again = again.unwrap_or_else(|e| panic!("rebinding right after close(): {e}"));
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"second server").await;
    t.close();
    shutdown(&again).await;
    guard("wait_closed", server.wait_closed()).await;
    reg.finish().await;
}

#[tokio::test]
async fn empty_host_means_every_interface() {
    let reg = Registry::new();
    for hosts in [Some(""), None] {
        let server = create_server(
            reg.factory("server", Config::echo()),
            hosts,
            0,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        let socks = server.sockets();
        assert_eq!(socks.len(), 2, "{socks:?}");
        let v4 = socks.iter().find(|a| a.is_ipv4()).unwrap();
        let v6 = socks.iter().find(|a| a.is_ipv6()).unwrap();
        assert!(v4.ip().is_unspecified() && v6.ip().is_unspecified());
        let (t, log) = echo_client(&reg, v4.port(), "127.0.0.1").await;
        check_echo(&t, &log, b"v4").await;
        t.close();
        let (t, log) = echo_client(&reg, v6.port(), "::1").await;
        check_echo(&t, &log, b"v6").await;
        t.close();
        shutdown(&server).await;
    }
    reg.finish().await;
}

#[tokio::test]

async fn an_unavailable_address_among_several_is_skipped() {
    let reg = Registry::new();
    // 203.0.113.0/24 (TEST-NET-3) is never a local address.
    let server = create_server(
        reg.factory("server", Config::echo()),
        ["127.0.0.1", "203.0.113.7"],
        0,
        ServerOptions::default(),
    )
    .await;
    let server = server.unwrap_or_else(|e| panic!("one address bound; got {e}"));
    let socks = server.sockets();
    assert_eq!(socks.len(), 1, "{socks:?}");
    let (t, log) = echo_client(&reg, socks[0].port(), "127.0.0.1").await;
    check_echo(&t, &log, b"ok").await;
    t.close();
    shutdown(&server).await;
    // Nothing bound at all: an error.
    let err = create_server(
        reg.factory("server", Config::echo()),
        "203.0.113.7",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable, "{err}");
    reg.finish().await;
}

#[tokio::test]
async fn connection_lost_runs_before_the_socket_closes_and_before_detaching() {
    let reg = Registry::new();
    let slot: Arc<OnceLock<Server>> = Arc::new(OnceLock::new());
    let s2 = slot.clone();
    let server = create_server(
        reg.factory(
            "server",
            Config::echo().hook(move |t, ev, log| {
                if ev.is_lost() {
                    if t.with_socket(|_| ()).is_some() {
                        log.mark("socket still open");
                    }
                    if let Some(server) = s2.get()
                        && server.clients().iter().any(|c| c.id() == t.id())
                    {
                        log.mark("still attached");
                    }
                }
            }),
        ),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    assert!(slot.set(server.clone()).is_ok());
    let port = server.sockets()[0].port();
    let (t, log) = echo_client(&reg, port, "127.0.0.1").await;
    check_echo(&t, &log, b"x").await;
    t.close();
    let s = reg.nth("server", 0).await;
    s.wait_lost().await;
    let evs = s.events();
    assert!(evs.contains(&Ev::Mark("socket still open")), "{evs:?}");
    assert!(evs.contains(&Ev::Mark("still attached")), "{evs:?}");
    let st = s.transport();
    st.closed().await;
    assert_eq!(st.with_socket(|_| ()), None);
    guard("detached", async {
        server.close();
        server.wait_closed().await;
    })
    .await;
    assert!(server.clients().is_empty());
    reg.finish().await;
}
