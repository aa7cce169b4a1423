//! TLS transports against real peers: this crate on both sides, raw
//! tokio-rustls peers driven by hand, and Python's `ssl` + asyncio.
//! Certificates are made at test time (see `tls_support`).
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::io::ErrorKind;
use std::time::Duration;

use common::*;
use tls_support::{Pki, raw_tls_peer, rustls_error, tls_server_keeping_logs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_transports::rustls::pki_types::ServerName;
use tokio_transports::{
    ClientTls, ConnectOptions, ExtraInfo, ServerOptions, ServerTls, TransportError, WriteLimits,
    create_connection, create_server,
};

async fn tls_echo_server(
    reg: &Registry,
    pki: &Pki,
    cfg: Config,
) -> (tokio_transports::Server, u16) {
    let server = create_server(
        reg.factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// A TLS echo server whose connections run a buffered protocol.
async fn tls_buffered_echo_server(reg: &Registry, pki: &Pki) -> (tokio_transports::Server, u16) {
    let server = create_server(
        reg.buffered_factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

async fn tls_client(
    reg: &Registry,
    port: u16,
    tls: ClientTls,
) -> std::io::Result<(tokio_transports::Transport, Log)> {
    tls_support::tls_client_to(reg, "localhost", port, tls).await
}

#[tokio::test]
async fn echo_between_our_server_and_our_client() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_echo_server(&reg, &pki, Config::echo()).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();

    // The handshake is done before connection_made, so its results are there.
    let info = t.tls_info().expect("tls info");
    assert!(!info.server_side);
    assert_eq!(info.peer_certificates.len(), 2, "leaf and CA");
    assert_eq!(info.server_name.as_deref(), Some("localhost"));
    assert!(info.protocol_version.is_some() && info.cipher_suite.is_some());
    assert!(matches!(
        t.get_extra_info("cipher"),
        Some(ExtraInfo::Cipher(_))
    ));
    assert!(matches!(
        t.get_extra_info("peercert"),
        Some(ExtraInfo::PeerCertificates(c)) if c.len() == 2
    ));
    assert!(t.get_extra_info("peername").is_some());
    let l = WriteLimits::tls_default();
    assert_eq!(t.get_write_buffer_limits(), (l.low(), l.high()));

    // No half-close over TLS.
    assert!(!t.can_write_eof());
    assert!(matches!(t.write_eof(), Err(TransportError::Unsupported(_))));

    t.write("hello over tls").unwrap();
    assert_eq!(log.wait_received(14).await, b"hello over tls");
    let big = pattern(300_000, 7);
    t.write(big.clone()).unwrap();
    let got = log.wait_received(14 + big.len()).await;
    assert_eq!(&got[14..], &big[..]);

    let srv = reg.nth("server", 0).await;
    let st = srv.wait_made().await;
    let sinfo = st.tls_info().unwrap();
    assert!(sinfo.server_side);
    assert_eq!(sinfo.server_name.as_deref(), Some("localhost"), "SNI");
    assert!(sinfo.peer_certificates.is_empty(), "no client certificate");

    // Our close: close_notify both ways; the server sees eof_received.
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    assert_eq!(srv.count(|e| *e == Ev::Eof), 1);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn a_self_signed_certificate_works_when_trusted() {
    let pki = Pki::new();
    let reg = Registry::new();
    let server = create_server(
        reg.factory("server", Config::echo()),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(ServerTls::new(pki.self_signed_server_config())),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let (t, log) = tls_client(&reg, port, ClientTls::new(pki.self_signed_client_config()))
        .await
        .unwrap();
    t.write("x").unwrap();
    log.wait_received(1).await;
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn handshake_failures_name_the_cause_and_the_protocol_hears_nothing() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port, servers) = tls_server_keeping_logs(pki.server(), Config::echo()).await;

    // Unknown issuer.
    let log = Log::new("unverified");
    let rec = Recorder::new(log.clone(), Config::default());
    let err = create_connection(
        move || rec,
        "localhost",
        port,
        ConnectOptions::default().ssl(ClientTls::new(Pki::untrusting_client_config())),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(
        err.to_string().starts_with("certificate verify failed"),
        "{err}"
    );
    assert!(matches!(
        rustls_error(&err),
        Some(tokio_transports::rustls::Error::InvalidCertificate(_))
    ));
    assert!(log.events().is_empty(), "{:?}", log.events());

    // Host-name mismatch.
    let log = Log::new("mismatch");
    let rec = Recorder::new(log.clone(), Config::default());
    let err = create_connection(
        move || rec,
        "127.0.0.1",
        port,
        ConnectOptions::default().ssl(pki.client().server_hostname("wrong.example")),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Hostname mismatch"), "{err}");
    assert!(log.events().is_empty());

    // The server went on: a good client still gets its echo. The failed
    // connections' protocols were made but heard nothing (and are not
    // waited for: they never get connection_lost).
    let (t, clog) = tls_client(&reg, port, pki.client()).await.unwrap();
    t.write("still serving").unwrap();
    clog.wait_received(13).await;
    t.close();
    clog.wait_lost().await;
    let servers = servers.lock().unwrap().clone();
    assert_eq!(servers.len(), 3, "the factory ran for every connection");
    let made: Vec<_> = servers.iter().filter(|l| !l.events().is_empty()).collect();
    assert_eq!(
        made.len(),
        1,
        "only the good connection reached its protocol"
    );
    guard("server lost", made[0].wait_lost()).await;
    check_grammar(&made[0].events());
    shutdown(&server).await;
    assert!(servers.iter().filter(|l| l.events().is_empty()).count() == 2);
    reg.finish().await;
}

#[tokio::test]
async fn an_ip_address_is_verified_as_one() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_echo_server(&reg, &pki, Config::echo()).await;
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let t = create_connection(
        move || rec,
        "127.0.0.1",
        port,
        ConnectOptions::default().ssl(pki.client()),
    )
    .await
    .unwrap();
    assert_eq!(
        t.tls_info().unwrap().server_name.as_deref(),
        Some("127.0.0.1")
    );
    t.close();
    log.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn handshake_timeout_against_a_silent_peer() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut sock = sock;
        // Read the ClientHello and say nothing until the client gives up.
        let mut buf = vec![0u8; 4096];
        while sock.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let log = Log::new("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let err = guard(
        "handshake timeout",
        create_connection(
            move || rec,
            "localhost",
            port,
            ConnectOptions::default()
                .ssl(pki.client().handshake_timeout(Duration::from_millis(200))),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{err}");
    assert!(
        err.to_string()
            .contains("SSL handshake is taking longer than 0.2 seconds"),
        "{err}"
    );
    assert!(log.events().is_empty());
    // The socket was closed: the silent peer sees its end.
    guard("peer sees the close", holder).await.unwrap();
}

#[tokio::test]
async fn peer_eof_during_the_handshake_is_a_reset() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        drop(sock);
    });
    let log = Log::new("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let err = create_connection(
        move || rec,
        "localhost",
        port,
        ConnectOptions::default().ssl(pki.client()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectionReset),
        "{:?} {err}",
        err.kind()
    );
    assert!(log.events().is_empty());
}

#[tokio::test]
async fn zero_timeouts_and_missing_names_are_refused_before_connecting() {
    let pki = Pki::new();
    let port = free_port("127.0.0.1");
    let err = create_connection(
        || (),
        "localhost",
        port,
        ConnectOptions::default().ssl(pki.client().handshake_timeout(Duration::ZERO)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = create_server(
        || (),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server().shutdown_timeout(Duration::ZERO)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let err = tokio_transports::create_connection_from_socket(
        || (),
        sock,
        ConnectOptions::default().ssl(pki.client()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("server_hostname"), "{err}");
}

/// A panic in the `eof_received` that the peer's close_notify brings after
/// our own `close()` is fatal, as on the normal read path: the connection
/// ends with the panic as `connection_lost`'s error, not `None`.
#[tokio::test]
async fn a_panic_in_eof_received_during_the_close_is_the_loss_error() {
    let exc = ExcCapture::install().await;
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let log = reg.log("client");
    let rec = Recorder::new(
        log.clone(),
        Config::default().hook(|_, ev, _| {
            if *ev == Ev::Eof {
                panic!("eof_received fails");
            }
        }),
    );
    let t = tokio_transports::create_connection(
        move || rec,
        "localhost",
        port,
        ConnectOptions::default().ssl(pki.client()),
    )
    .await
    .unwrap();
    let mut peer = peer.await.unwrap();
    t.close();
    let mut got = Vec::new();
    guard("peer reads to close_notify", peer.read_to_end(&mut got))
        .await
        .unwrap();
    peer.shutdown().await.unwrap(); // its close_notify
    let lost = guard("client lost", log.wait_lost())
        .await
        .expect("the panic, not a clean close");
    assert!(lost.panicked.is_some(), "{lost:?}");
    exc.wait_for("the panic's report", |r| r.message.contains("eof_received"))
        .await;
    reg.finish().await;
}

#[tokio::test]
async fn close_waits_for_the_peers_close_notify() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let mut peer = peer.await.unwrap();
    t.write("last words").unwrap();
    t.close();
    assert!(t.is_closing());
    // The peer gets the data, then our close_notify (a clean end of file).
    let mut got = Vec::new();
    guard("peer reads to close_notify", peer.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"last words");
    // Until the peer answers, the connection is not lost, and what the
    // peer sends meanwhile is not delivered.
    t.write("after close is dropped").unwrap();
    assert!(log.lost().is_none());
    peer.write_all(b"late data").await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    // The peer's close_notify completes our close with `eof_received`
    // first, as asyncio's SSL shutdown (`_do_shutdown` → `_call_eof_received`).
    let evs = log.events();
    assert_eq!(log.count(|e| *e == Ev::Eof), 1, "{evs:?}");
    assert_eq!(evs[evs.len() - 2], Ev::Eof, "right before connection_lost");
    assert_eq!(
        received_len(&log.events()),
        0,
        "nothing after close() is delivered"
    );
    assert_eq!(t.dropped_writes(), 1, "the write after close_notify");
    reg.finish().await;
}

#[tokio::test]
async fn shutdown_timeout_when_the_peer_never_answers() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let (t, log) = tls_client(
        &reg,
        port,
        pki.client().shutdown_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let _peer = peer.await.unwrap(); // held, never read, never answers
    t.close();
    let lost = guard("client lost", log.wait_lost())
        .await
        .expect("an error");
    assert_eq!(lost.kind, ErrorKind::TimedOut);
    assert_eq!(lost.message, "SSL shutdown timed out");
    reg.finish().await;
}

#[tokio::test]
async fn the_peers_close_notify_gives_eof_received_then_our_close_notify() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    // keep_open: eof_received returns true, which TLS cannot honour.
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default().keep_open());
    let _t = create_connection(
        move || rec,
        "localhost",
        port,
        ConnectOptions::default().ssl(pki.client()),
    )
    .await
    .unwrap();
    let mut peer = peer.await.unwrap();
    peer.write_all(b"bye").await.unwrap();
    peer.shutdown().await.unwrap(); // close_notify
    let mut rest = Vec::new();
    guard(
        "our close_notify reaches the peer",
        peer.read_to_end(&mut rest),
    )
    .await
    .unwrap();
    assert!(rest.is_empty());
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let evs = log.events();
    assert_eq!(received_in(&evs), b"bye");
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    reg.finish().await;
}

#[tokio::test]
async fn a_ragged_end_closes_without_eof_received() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let (_t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let mut peer = peer.await.unwrap();
    peer.write_all(b"partial").await.unwrap();
    peer.flush().await.unwrap();
    log.wait_received(7).await;
    // Close the socket under the session: no close_notify.
    let (tcp, _) = peer.into_inner();
    drop(tcp);
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(log.count(|e| *e == Ev::Eof), 0);
    reg.finish().await;
}

#[tokio::test]
async fn a_corrupted_record_ends_the_connection_with_the_tls_error() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_echo_server(&reg, &pki, Config::echo()).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = TlsConnector::from(pki.client_config());
    let mut client = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    client.write_all(b"ok").await.unwrap();
    let mut two = [0u8; 2];
    client.read_exact(&mut two).await.unwrap();
    let (mut tcp, _) = client.into_inner();
    // An application-data record whose contents fail authentication.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend_from_slice(&[0xAB; 32]);
    tcp.write_all(&record).await.unwrap();
    let srv = reg.nth("server", 0).await;
    let lost = guard("server lost", srv.wait_lost())
        .await
        .expect("an error");
    assert_eq!(lost.kind, ErrorKind::InvalidData, "{lost:?}");
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_reading_holds_decrypted_data_and_a_close_while_paused_drops_it() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let mut peer = peer.await.unwrap();

    t.pause_reading();
    peer.write_all(b"held").await.unwrap();
    peer.flush().await.unwrap();
    // A round trip through the client's task: it ran after the data came.
    t.write("ping").unwrap();
    let mut ping = [0u8; 4];
    peer.read_exact(&mut ping).await.unwrap();
    barrier(&t).await;
    assert_eq!(
        received_len(&log.events()),
        0,
        "nothing delivered while paused"
    );
    t.resume_reading();
    assert_eq!(log.wait_received(4).await, b"held");

    t.pause_reading();
    peer.write_all(b"never delivered").await.unwrap();
    peer.flush().await.unwrap();
    t.close();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(log.received(), b"held");
    reg.finish().await;
}

#[tokio::test]
async fn buffered_protocols_read_plaintext_into_their_own_buffer() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_buffered_echo_server(&reg, &pki).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let data = pattern(200_000, 3);
    t.write(data.clone()).unwrap();
    assert_eq!(log.wait_received(data.len()).await, data);
    let srv = reg.nth("server", 0).await;
    assert!(srv.count(|e| matches!(e, Ev::BufferUpdated { .. })) > 0);
    t.close();
    log.wait_lost().await;
    srv.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn an_idle_buffered_tls_connection_is_not_asked_for_a_buffer() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_buffered_echo_server(&reg, &pki).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let srv = reg.nth("server", 0).await;
    let st = srv.wait_made().await;
    // Two round trips through the server's task: it has polled its I/O.
    barrier(&st).await;
    assert_eq!(
        srv.count(|e| matches!(e, Ev::GetBuffer(_))),
        0,
        "no get_buffer before data"
    );
    t.write("now").unwrap();
    log.wait_received(3).await;
    assert!(srv.count(|e| matches!(e, Ev::GetBuffer(_))) > 0);
    t.close();
    log.wait_lost().await;
    srv.wait_lost().await;
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn many_clients_closing_at_once() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (server, port) = tls_echo_server(&reg, &pki, Config::echo()).await;
    let mut clients = Vec::new();
    for _ in 0..24 {
        let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
        t.write("hi").unwrap();
        clients.push((t, log));
    }
    for (_, log) in &clients {
        log.wait_received(2).await;
    }
    for (t, _) in &clients {
        t.close();
    }
    for (_, log) in &clients {
        assert_eq!(guard("client lost", log.wait_lost()).await, None);
    }
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn close_clients_ends_handshakes_in_progress() {
    let pki = Pki::new();
    let (server, port, made) = tls_server_keeping_logs(pki.server(), Config::default()).await;
    // A client that connects and never starts its handshake.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    guard("attached", async {
        while server.clients().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.close();
    server.close_clients();
    guard("wait_closed", server.wait_closed()).await;
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).await.unwrap_or(0), 0, "socket closed");
    assert!(made.lock().unwrap().iter().all(|l| l.events().is_empty()));
}

// ---- Python's ssl + asyncio as the peer ---------------------------------

fn python_available() -> bool {
    std::process::Command::new("python3")
        .arg("-c")
        .arg("import ssl, asyncio")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const PY_CLIENT: &str = r#"
import asyncio, ssl, sys
async def main(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.open_connection('127.0.0.1', port, ssl=ctx, server_hostname='localhost')
    writer.write(b'Hello World!')
    data = await reader.readexactly(12)
    print('Data received:', data.decode())
    writer.close()
    await writer.wait_closed()
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"#;

const PY_SERVER: &str = r#"
import asyncio, ssl, sys
async def main(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    done = asyncio.get_running_loop().create_future()
    async def handle(reader, writer):
        data = await reader.readexactly(5)
        writer.write(data.upper())
        await writer.drain()
        rest = await reader.read()
        print('server got eof after', len(rest), 'more bytes', flush=True)
        writer.close()
        done.set_result(None)
    server = await asyncio.start_server(handle, '127.0.0.1', 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done, 20)
asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[tokio::test]
async fn python_ssl_client_against_our_server() {
    if !python_available() {
        eprintln!("python3 with ssl not available: skipped");
        return;
    }
    let pki = Pki::new();
    let dir = tls_support::temp_dir("pyclient");
    let (ca, _, _) = pki.write_pem(&dir);
    let reg = Registry::new();
    let (server, port) = tls_echo_server(&reg, &pki, Config::echo()).await;
    let out = guard(
        "python client",
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(PY_CLIENT)
            .arg(port.to_string())
            .arg(&ca)
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "Data received: Hello World!");
    let srv = reg.nth("server", 0).await;
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    reg.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn our_client_against_a_python_ssl_server() {
    if !python_available() {
        eprintln!("python3 with ssl not available: skipped");
        return;
    }
    let pki = Pki::new();
    let dir = tls_support::temp_dir("pyserver");
    let (_, cert, key) = pki.write_pem(&dir);
    let mut child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(PY_SERVER)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    guard("python server port", async {
        let mut b = [0u8; 1];
        while stdout.read(&mut b).await.unwrap() == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
    })
    .await;
    let port: u16 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    let reg = Registry::new();
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    t.write("hello").unwrap();
    assert_eq!(log.wait_received(5).await, b"HELLO");
    t.write("abc").unwrap();
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let mut rest = String::new();
    guard("python output", stdout.read_to_string(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest.trim(), "server got eof after 3 more bytes");
    assert!(guard("python exit", child.wait()).await.unwrap().success());
    reg.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_cancelled_connect_closes_the_socket_during_the_handshake() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        let mut buf = vec![0u8; 4096];
        // Silent until the client's socket closes.
        while sock.read(&mut buf).await.unwrap_or(0) > 0 {}
    });
    let log = Log::new("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let connect = create_connection(
        move || rec,
        "localhost",
        port,
        ConnectOptions::default().ssl(pki.client()),
    );
    tokio::select! {
        _ = connect => panic!("the silent peer cannot complete a handshake"),
        _ = accepted_rx => {}
    }
    // The connect future is dropped here, mid-handshake (60 s timeout).
    guard("the socket closes at once", holder).await.unwrap();
    assert!(log.events().is_empty());
}

#[tokio::test]
async fn flow_control_over_tls_pauses_at_the_high_watermark_and_resumes() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, accepted) = raw_tls_peer(&pki).await;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let total = 24 * 1024 * 1024;
    let peer = tokio::spawn(async move {
        let mut tls = accepted.await.unwrap();
        go_rx.await.unwrap(); // read nothing until the client paused
        let mut got = vec![0u8; total];
        tls.read_exact(&mut got).await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        tls.shutdown().await.unwrap();
        got
    });
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let data = pattern(total, 9);
    for chunk in data.chunks(256 * 1024) {
        t.write(chunk.to_vec()).unwrap();
    }
    let evs = log.wait_event("pause_writing", Ev::is_pw).await;
    let Some(Ev::PauseWriting(size)) = evs.iter().find(|e| e.is_pw()) else {
        unreachable!()
    };
    assert!(
        *size >= 512 * 1024,
        "paused at {size}: the TLS high watermark"
    );
    go_tx.send(()).unwrap();
    let evs = log.wait_event("resume_writing", Ev::is_rw).await;
    let Some(Ev::ResumeWriting(size)) = evs.iter().find(|e| e.is_rw()) else {
        unreachable!()
    };
    assert!(
        *size <= 128 * 1024,
        "resumed at {size}: the TLS low watermark"
    );
    guard("drain", t.drain()).await.unwrap();
    t.close();
    let got = guard("peer", peer).await.unwrap();
    assert!(got == data, "every byte, in order");
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    reg.finish().await;
}

#[tokio::test]
async fn abort_is_immediate_even_with_a_silent_peer() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (port, peer) = raw_tls_peer(&pki).await;
    let (t, log) = tls_client(&reg, port, pki.client()).await.unwrap();
    let mut peer = peer.await.unwrap(); // never reads, never answers
    t.write("queued").unwrap();
    t.abort();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let mut rest = Vec::new();
    // The socket is closed without close_notify: rustls reports the
    // truncation (or the peer sees the data, then the end).
    let _ = guard("peer sees the end", peer.read_to_end(&mut rest)).await;
    reg.finish().await;
}

#[test]
fn a_runtime_dropped_during_the_handshake_leaves_nothing_waiting() {
    let pki = Pki::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let log = Log::new("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let tls = pki.client();
    let connect = rt.spawn(async move {
        create_connection(
            move || rec,
            "localhost",
            port,
            ConnectOptions::default().ssl(tls),
        )
        .await
    });
    // The connection is accepted; the handshake can never finish.
    let (mut silent, _) = listener.accept().unwrap();
    // Its ClientHello came: the transport's task is in the handshake.
    let mut hello = [0u8; 5];
    std::io::Read::read_exact(&mut silent, &mut hello).unwrap();
    drop(rt);
    // The task was dropped: its socket is closed and the protocol heard
    // nothing (it never had connection_made).
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut silent, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(log.events().is_empty(), "{:?}", log.events());
    drop(connect);
}
