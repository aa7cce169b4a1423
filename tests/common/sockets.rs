//! Real TCP sockets: recording servers and clients, raw tokio peers, and
//! helpers that read from, reset, or inspect a socket ([`wait_unread`]).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_transports::{
    Buffered, ConnectOptions, Server, ServerOptions, Transport, create_connection, create_server,
};

use super::{Config, Log, Registry, guard};

/// An echo server on 127.0.0.1 whose connections log as `"server"`.
pub async fn echo_server(reg: &Registry, cfg: Config) -> (Server, u16) {
    let server = create_server(
        reg.factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// A buffered-protocol server on 127.0.0.1 whose connections log as `"server"`.
pub async fn buffered_server(reg: &Registry, cfg: Config) -> (Server, u16) {
    let server = create_server(
        reg.buffered_factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// Close a server and wait for it (and its connections) to be done.
pub async fn shutdown(server: &Server) {
    server.close();
    guard("server wait_closed", server.wait_closed()).await;
}

/// A transport (logged as `"client"`) connected to a raw tokio socket that
/// the test drives by hand.
pub async fn client_with_raw_peer(reg: &Registry, cfg: Config) -> (Transport, Log, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    client_with_raw_peer_on(listener, reg, cfg).await
}

/// [`client_with_raw_peer`] through a listener the test set up (socket
/// options that the accepted socket inherits, such as a small receive
/// buffer).
pub async fn client_with_raw_peer_on(
    listener: TcpListener,
    reg: &Registry,
    cfg: Config,
) -> (Transport, Log, TcpStream) {
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder("client", cfg);
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .expect("create_connection");
    let (peer, _) = guard("accept", listener.accept()).await.unwrap();
    (t, log, peer)
}

/// The same with a [`Buffered`] recorder.
pub async fn buffered_client_with_raw_peer(
    reg: &Registry,
    cfg: Config,
) -> (Transport, Log, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder("client", cfg);
    let log = rec.log();
    let t = create_connection(
        move || Buffered(rec),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .expect("create_connection");
    let (peer, _) = guard("accept", listener.accept()).await.unwrap();
    (t, log, peer)
}

/// Read exactly `n` bytes from a raw socket.
pub async fn read_n(s: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    guard(&format!("reading {n} bytes"), s.read_exact(&mut buf))
        .await
        .expect("read_exact");
    buf
}

/// Read until EOF.
pub async fn read_to_eof(s: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut buf = Vec::new();
    guard("reading to EOF", s.read_to_end(&mut buf))
        .await
        .expect("read_to_end");
    buf
}

/// Make dropping `s` send a reset (SO_LINGER 0).
pub fn set_reset_on_drop(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// A free TCP port on `ip` (bound, then released).
pub fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Wait until the kernel holds at least `n` unread bytes on the transport's
/// socket (the transport itself is not reading them): readiness of a
/// duplicate of the socket, then `FIONREAD`.
pub async fn wait_unread(t: &Transport, n: usize) {
    let fd = t.with_socket(|s| s.as_raw_fd()).expect("socket is open");
    // SAFETY: `fd` is open (the transport is live); dup gives us our own fd.
    let dup = unsafe { libc::dup(fd) };
    assert!(dup >= 0, "dup failed");
    // SAFETY: `dup` is a fresh fd we own.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: the AsyncFd owns `owned`, an open fd that stays the same while it lives.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
    .expect("AsyncFd");
    guard(&format!("{n} unread bytes in the kernel"), async {
        loop {
            let mut ready = afd.readable().await.unwrap();
            let mut avail: libc::c_int = 0;
            // SAFETY: FIONREAD writes one c_int.
            let rc = unsafe { libc::ioctl(afd.as_raw_fd(), libc::FIONREAD, &mut avail) };
            assert_eq!(rc, 0, "ioctl(FIONREAD)");
            if avail as usize >= n {
                return;
            }
            ready.clear_ready();
        }
    })
    .await;
}
