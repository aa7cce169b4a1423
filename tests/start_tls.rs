//! `start_tls`: upgrading live transports, both sides, against this crate
//! and raw rustls peers; the handle, the protocol and the write state carry
//! over; what asyncio gets wrong (lost read-ahead, the paused-writing
//! assertion, no `connection_lost` on failure) is checked here.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use common::*;
use tls_support::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_transports::rustls;
use tokio_transports::{
    Bytes, ConnectOptions, ServerOptions, StartTls, Transport, WriteLimits, create_connection,
    create_server, start_tls,
};

type Results = mpsc::UnboundedSender<std::io::Result<()>>;

/// Start the upgrade from inside a callback and report its result.
fn upgrade(t: &Transport, tls: StartTls, results: &Results) {
    let fut = start_tls(t, tls);
    let results = results.clone();
    tokio::spawn(async move {
        let _ = results.send(fut.await);
    });
}

/// A plain server whose connections answer `STARTTLS\r\n` with a plaintext
/// `220 go\r\n`, upgrade (server side, with whatever followed the command
/// in the same read) and from then on echo what they decrypt.
async fn starttls_server(
    reg: &Registry,
    pki: &Pki,
    results: Results,
) -> (tokio_transports::Server, u16) {
    let tls = pki.server();
    let cfg = Config::default().hook(move |t, ev, log| {
        let Ev::Data(d) = ev else { return };
        if t.tls_info().is_some() {
            let _ = t.write(d.clone());
            return;
        }
        if log.count(|e| matches!(e, Ev::Mark("upgrading"))) > 0 {
            return;
        }
        if let Some(rest) = d.strip_prefix(b"STARTTLS\r\n") {
            log.push(Ev::Mark("upgrading"));
            t.write("220 go\r\n").unwrap();
            let rest = Bytes::copy_from_slice(rest);
            upgrade(
                t,
                StartTls::server(tls.clone()).already_received(rest),
                &results,
            );
        }
    });
    let server = create_server(
        reg.factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    (server, port)
}

#[tokio::test]
async fn both_sides_upgrade_and_keep_their_handles() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (srv_tx, mut srv_results) = mpsc::unbounded_channel();
    let (server, port) = starttls_server(&reg, &pki, srv_tx).await;

    let (cli_tx, mut cli_results) = mpsc::unbounded_channel();
    let client_tls = pki.client().server_hostname("localhost");
    let cfg = Config::default().hook(move |t, ev, log| {
        let Ev::Data(d) = ev else { return };
        if &d[..] == b"220 go\r\n" && t.tls_info().is_none() {
            log.push(Ev::Mark("upgrading"));
            upgrade(t, client_tls.clone().into(), &cli_tx);
            // Written after the call: goes out encrypted.
            t.write("secret after starttls").unwrap();
        }
    });
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), cfg);
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    assert!(t.can_write_eof());
    t.write("STARTTLS\r\n").unwrap();

    guard("client upgraded", cli_results.recv())
        .await
        .unwrap()
        .unwrap();
    guard("server upgraded", srv_results.recv())
        .await
        .unwrap()
        .unwrap();
    // The echo of what was written right after the call came back decrypted.
    let got = log.wait_received(8 + 21).await;
    assert_eq!(&got[8..], b"secret after starttls");
    // The same handle, now TLS: no half-close, TLS details present.
    assert!(!t.can_write_eof());
    assert!(t.tls_info().is_some());
    assert_eq!(
        log.count(|e| *e == Ev::Made),
        1,
        "no second connection_made"
    );
    t.write("more").unwrap();
    log.wait_received(8 + 21 + 4).await;

    let srv = reg.nth("server", 0).await;
    assert_eq!(srv.count(|e| *e == Ev::Made), 1);
    assert!(srv.transport().tls_info().unwrap().server_side);
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    reg.finish().await;
}

/// A blocking rustls client that sends `STARTTLS\r\n` and its ClientHello
/// in one write (one segment), then finishes the handshake and echoes.
fn pipelining_client(port: u16, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut first = b"STARTTLS\r\n".to_vec();
    conn.write_tls(&mut first).unwrap(); // the ClientHello
    tcp.write_all(&first).unwrap();
    // The plaintext answer comes first; read exactly it.
    let mut answer = [0u8; 8];
    tcp.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"220 go\r\n");
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(b"over tls").unwrap();
    let mut echo = [0u8; 8];
    tls.read_exact(&mut echo).unwrap();
    tls.conn.send_close_notify();
    let _ = tls.flush();
    echo.to_vec()
}

#[tokio::test]
async fn the_handshake_bytes_received_with_the_command_are_not_lost() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (srv_tx, mut srv_results) = mpsc::unbounded_channel();
    let (server, port) = starttls_server(&reg, &pki, srv_tx).await;
    let config = pki.client_config();
    let echo = guard(
        "pipelining client",
        tokio::task::spawn_blocking(move || pipelining_client(port, config)),
    )
    .await
    .unwrap();
    assert_eq!(echo, b"over tls");
    guard("server upgraded", srv_results.recv())
        .await
        .unwrap()
        .unwrap();
    let srv = reg.nth("server", 0).await;
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn start_tls_from_connection_made_against_a_tls_server() {
    let pki = Pki::new();
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(pki.server_config());
    let peer = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(sock).await.unwrap();
        let mut hello = [0u8; 5];
        tls.read_exact(&mut hello).await.unwrap();
        tls.write_all(b"welcome").await.unwrap();
        tls.flush().await.unwrap();
        // Answer our close_notify with the peer's.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        tls.shutdown().await.unwrap();
        hello
    });
    let (tx, mut results) = mpsc::unbounded_channel();
    let client_tls = pki.client().server_hostname("localhost");
    let cfg = Config::default().hook(move |t, ev, _| {
        if *ev == Ev::Made {
            upgrade(t, client_tls.clone().into(), &tx);
            t.write("hello").unwrap();
        }
    });
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), cfg);
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    guard("upgraded", results.recv()).await.unwrap().unwrap();
    assert_eq!(log.wait_received(7).await, b"welcome");
    t.close();
    assert_eq!(&guard("peer", peer).await.unwrap(), b"hello");
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    reg.finish().await;
}

#[tokio::test]
async fn the_paused_writing_state_carries_over() {
    let pki = Pki::new();
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(pki.server_config());
    let big = pattern(32 * 1024 * 1024, 5);
    let big2 = big.clone();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let peer = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        // Read nothing until the client is paused and has asked for TLS.
        go_rx.await.unwrap();
        let mut plain = vec![0u8; big2.len()];
        sock.read_exact(&mut plain).await.unwrap();
        assert!(
            plain == big2,
            "the plaintext before start_tls arrives intact"
        );
        let mut tls = acceptor.accept(sock).await.unwrap();
        let mut after = vec![0u8; 10];
        tls.read_exact(&mut after).await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        tls.shutdown().await.unwrap();
        after
    });
    let log = reg.log("client");
    // The usual producer: write more when resumed. That write must go out
    // encrypted, after the handshake, even though the resume is due while
    // the plaintext before start_tls is still being sent.
    let cfg = Config::default().hook(|t, ev, _| {
        if ev.is_rw() {
            t.write("MORE").unwrap();
        }
    });
    let rec = Recorder::new(log.clone(), cfg);
    let t = create_connection(
        move || rec,
        "127.0.0.1",
        port,
        ConnectOptions::default().write_limits(WriteLimits::new(Some(64 * 1024), None).unwrap()),
    )
    .await
    .unwrap();
    t.write(big).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    let upgrade = start_tls(&t, pki.client().server_hostname("localhost"));
    t.write("after!").unwrap();
    go_tx.send(()).unwrap();
    guard("upgraded", upgrade).await.unwrap();
    log.wait_event("resume_writing", Ev::is_rw).await;
    t.close();
    assert_eq!(&guard("peer", peer).await.unwrap(), b"after!MORE");
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    assert_eq!(log.count(Ev::is_pw), 1);
    assert_eq!(log.count(Ev::is_rw), 1);
    reg.finish().await;
}

#[tokio::test]
async fn tls_inside_tls() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (srv_tx, mut srv_results) = mpsc::unbounded_channel();
    let inner_server = pki.server();
    let cfg = Config::default().hook(move |t, ev, log| {
        let Ev::Data(d) = ev else { return };
        if log.count(|e| matches!(e, Ev::Mark("inner"))) > 0 {
            let _ = t.write(d.clone());
        } else if let Some(rest) = d.strip_prefix(b"AGAIN\n") {
            // The inner ClientHello may come in the same read.
            log.push(Ev::Mark("inner"));
            let rest = Bytes::copy_from_slice(rest);
            let up = StartTls::server(inner_server.clone()).already_received(rest);
            upgrade(t, up, &srv_tx);
        }
    });
    let server = create_server(
        reg.factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let (t, log) = tls_support::tls_client_to(&reg, "localhost", port, pki.client())
        .await
        .unwrap();
    t.write("AGAIN\n").unwrap();
    let inner = start_tls(&t, pki.client().server_hostname("localhost"));
    guard("inner client", inner).await.unwrap();
    guard("inner server", srv_results.recv())
        .await
        .unwrap()
        .unwrap();
    t.write("inside two sessions").unwrap();
    assert_eq!(log.wait_received(19).await, b"inside two sessions");
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    let srv = reg.nth("server", 0).await;
    assert_eq!(guard("server lost", srv.wait_lost()).await, None);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn a_failed_upgrade_reports_to_the_caller_and_the_protocol() {
    let pki = Pki::new();
    let reg = Registry::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = sock.read(&mut buf).await;
        // Not a TLS server.
        let _ = sock.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").await;
    });
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    let err = guard(
        "failed upgrade",
        start_tls(&t, pki.client().server_hostname("localhost")),
    )
    .await
    .unwrap_err();
    let lost = guard("lost", log.wait_lost()).await.expect("an error");
    assert_eq!(lost.message, err.to_string());
    assert_eq!(log.count(|e| *e == Ev::Made), 1);
    reg.finish().await;
}

#[tokio::test]
async fn bad_calls_are_refused_at_once() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (t, log, _peer) = client_with_raw_peer(&reg, Config::default()).await;
    // A client side needs a name: there is no host to take it from.
    let err = start_tls(&t, pki.client()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Two at once.
    let first = start_tls(&t, pki.client().server_hostname("localhost"));
    let err = start_tls(&t, pki.client().server_hostname("localhost"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already under way"), "{err}");
    drop(first);
    let (t2, log2, _peer2) = client_with_raw_peer(&reg, Config::default()).await;
    t2.write_eof().unwrap();
    let err = start_tls(&t2, pki.client().server_hostname("localhost"))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotConnected,
        "after write_eof: {err}"
    );
    t2.abort();
    log2.wait_lost().await;
    t.abort();
    log.wait_lost().await;
    let err = start_tls(&t, pki.client().server_hostname("localhost"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected, "{err}");
    reg.finish().await;
}

#[tokio::test]
async fn writes_held_for_a_hand_over_that_never_came_count_as_dropped() {
    let pki = Pki::new();
    let reg = Registry::new();
    let (tx, mut results) = mpsc::unbounded_channel();
    let tls = pki.client().server_hostname("localhost");
    // On "GO": start_tls, then a write in the same callback (held for the
    // TLS task, which never comes: the peer resets first).
    let cfg = Config::default().hook(move |t, ev, _| {
        if matches!(ev, Ev::Data(d) if &d[..] == b"GO") {
            upgrade(t, tls.clone().into(), &tx);
            t.write("EHLO").unwrap();
        }
    });
    let (t, log, mut peer) = client_with_raw_peer(&reg, cfg).await;
    // A plaintext queue the peer does not read: the hand-over waits for it.
    t.write(pattern(32 * 1024 * 1024, 1)).unwrap();
    log.wait_event("pause_writing", Ev::is_pw).await;
    peer.write_all(b"GO").await.unwrap();
    // Delivered: the callback ran, and its write is held.
    log.wait_until("GO delivered", |evs| received_in(evs) == b"GO")
        .await;
    set_reset_on_drop(&peer);
    drop(peer);
    let lost = guard("lost", log.wait_lost()).await;
    assert!(lost.is_some(), "the reset is an error");
    assert!(guard("start_tls", results.recv()).await.unwrap().is_err());
    assert!(t.dropped_writes() >= 1, "the held write is counted");
    assert!(guard("drain", t.drain()).await.is_err(), "drain says so");
    assert_eq!(t.get_write_buffer_size(), 0);
    reg.finish().await;
}
