//! hyper over the stream adapter: the `hyper_server` example's code serving
//! HTTP/1 over TCP (a raw client, and hyper's client over a stream), TLS
//! and a Unix socket.
#![cfg(all(feature = "streams", feature = "tls"))]

mod common;
mod tls_support;

#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod hyper_server;

use common::{guard, read_to_eof};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_transports::streams::{
    TransportStream, open_connection, open_unix_connection, start_unix_server,
};
use tokio_transports::{ConnectOptions, ServerOptions};

/// GET `path` with hyper's HTTP/1 client over `stream`: (status, body).
async fn get(stream: TransportStream, path: &str) -> (u16, String) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = guard("the response", sender.send_request(req))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    drop(sender);
    guard("the client connection", driver)
        .await
        .unwrap()
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_raw_get_gets_the_body() {
    let server = hyper_server::start("127.0.0.1", 0, ServerOptions::default())
        .await
        .unwrap();
    let mut client = TcpStream::connect(server.sockets()[0]).await.unwrap();
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let response = String::from_utf8(read_to_eof(&mut client).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nHello from tokio-transports: GET /hello\n"),
        "{response}"
    );
}

#[tokio::test]
async fn hyper_client_and_server_both_over_streams() {
    let server = hyper_server::start("127.0.0.1", 0, ServerOptions::default())
        .await
        .unwrap();
    let port = server.sockets()[0].port();
    let stream = open_connection("127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    let (status, body) = get(stream, "/over/streams").await;
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from tokio-transports: GET /over/streams\n");
}

#[tokio::test]
async fn hyper_over_tls() {
    let pki = tls_support::Pki::new();
    let server = hyper_server::start("127.0.0.1", 0, ServerOptions::default().ssl(pki.server()))
        .await
        .unwrap();
    let port = server.sockets()[0].port();
    let opts = ConnectOptions::default().ssl(pki.client().server_hostname("localhost"));
    let stream = open_connection("127.0.0.1", port, opts).await.unwrap();
    let (status, body) = get(stream, "/tls").await;
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from tokio-transports: GET /tls\n");
}

#[tokio::test]
async fn hyper_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("tt-hyper-{}.sock", std::process::id()));
    let _server = start_unix_server(
        hyper_server::serve_connection,
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let stream = open_unix_connection(&path, ConnectOptions::default())
        .await
        .unwrap();
    let (status, body) = get(stream, "/unix").await;
    assert_eq!(status, 200);
    assert_eq!(body, "Hello from tokio-transports: GET /unix\n");
}
