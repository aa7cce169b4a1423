//! TLS against OpenSSL's command-line peers: `openssl s_server` and
//! `openssl s_client`. Skipped (with a note on stderr) when `openssl` is not
//! installed, unless `TOKIO_TRANSPORTS_REQUIRE_OPENSSL=1` (CI sets it).
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tls_support::{Pki, temp_dir, tls_client_to, tls_server_keeping_logs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_transports::{ServerOptions, create_server};

fn openssl_available() -> bool {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("TOKIO_TRANSPORTS_REQUIRE_OPENSSL").is_none(),
            "openssl is required (TOKIO_TRANSPORTS_REQUIRE_OPENSSL is set) but not installed"
        );
        eprintln!("openssl not installed: skipped");
    }
    found
}

/// Wait until something accepts on `port` (a probe that connects and
/// closes at once).
async fn wait_listening(port: u16, child: &mut tokio::process::Child) {
    guard("server listening", async {
        let mut backoff = Duration::from_millis(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(child.try_wait().unwrap().is_none(), "the server exited");
            // Readiness probe only: the process is still starting up.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    })
    .await;
}

#[tokio::test]
async fn our_client_against_openssl_s_server() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    let dir = temp_dir("s_server");
    let (_, cert, key) = pki.write_pem(&dir);
    let port = free_port("127.0.0.1");
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-rev", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_listening(port, &mut server).await;

    let reg = Registry::new();
    let (t, log) = tls_client_to(&reg, "localhost", port, pki.client())
        .await
        .unwrap();
    t.write("hello openssl\n").unwrap();
    // `-rev`: each line comes back reversed.
    assert_eq!(log.wait_received(14).await, b"lssnepo olleh\n");
    assert!(t.tls_info().unwrap().protocol_version.is_some());
    t.close();
    assert_eq!(guard("client lost", log.wait_lost()).await, None);
    reg.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn openssl_s_client_against_our_server() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    let dir = temp_dir("s_client");
    let (ca, _, _) = pki.write_pem(&dir);
    let reg = Registry::new();
    // Echo, then close (as the reference's echo server does).
    let cfg = Config::echo().hook(|t, ev, _| {
        if matches!(ev, Ev::Data(_)) {
            t.close();
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
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
        .args(["-servername", "localhost", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"hello from s_client\n").await.unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut out = Vec::new();
    guard("s_client output", stdout.read_to_end(&mut out))
        .await
        .unwrap();
    drop(stdin);
    let status = guard("s_client exit", client.wait()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "hello from s_client\n");
    assert!(status.success(), "{status:?}");
    let srv = reg.nth("server", 0).await;
    let lost = guard("server lost", srv.wait_lost()).await;
    assert_eq!(lost, None, "s_client answers our close_notify");
    shutdown(&server).await;
    reg.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn openssl_s_client_with_the_wrong_ca_fails_and_the_server_goes_on() {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new();
    let other = Pki::new();
    let dir = temp_dir("s_client_bad");
    let (wrong_ca, _, _) = other.write_pem(&dir);
    let reg = Registry::new();
    let (server, port, servers) = tls_server_keeping_logs(pki.server(), Config::echo()).await;
    let out = guard(
        "s_client",
        Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error"])
            .args(["-servername", "localhost", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(&wrong_ca)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("verify"), "{stderr}");
    // The server is still serving.
    let (t, log) = tls_client_to(&reg, "localhost", port, pki.client())
        .await
        .unwrap();
    t.write("ok").unwrap();
    log.wait_received(2).await;
    t.close();
    log.wait_lost().await;
    // The protocol of the failed connection heard nothing; only the good
    // connection reached connection_made.
    let servers = servers.lock().unwrap().clone();
    assert_eq!(servers.len(), 2);
    let made: Vec<_> = servers.iter().filter(|l| !l.events().is_empty()).collect();
    assert_eq!(made.len(), 1);
    guard("server lost", made[0].wait_lost()).await;
    check_grammar(&made[0].events());
    shutdown(&server).await;
    reg.finish().await;
    let _ = std::fs::remove_dir_all(dir);
}
