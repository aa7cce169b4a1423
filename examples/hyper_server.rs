//! An HTTP/1 server from hyper, running over this crate's transports through
//! the stream adapter ([`tokio_transports::streams`]): every accepted
//! connection is a `TransportStream` (`AsyncRead + AsyncWrite`), which
//! hyper serves as it would a `TcpStream`, with the transport's watermarks
//! as backpressure.
//!
//! ```text
//! cargo run --example hyper_server                # http://127.0.0.1:8080/
//! cargo run --example hyper_server -- 127.0.0.1 9000
//! curl http://127.0.0.1:8080/hello
//! ```
//!
//! ```text
//! Serving HTTP on http://127.0.0.1:8080/ (Ctrl-C to stop)
//! GET /hello from 127.0.0.1:54321
//! ```
//!
//! The same `serve_connection` serves a TLS, Unix-socket or pipe stream
//! unchanged (`tests/hyper_adapter.rs` runs it over TCP, TLS and a Unix
//! socket).

use std::convert::Infallible;
use std::io;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_transports::streams::{TransportStream, start_server};
use tokio_transports::{Server, ServerOptions};

/// The service: answers every request with a line naming it.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!(
        "Hello from tokio-transports: {} {}\n",
        req.method(),
        req.uri().path()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Serve HTTP/1 on one connection, whatever transport it runs on.
pub async fn serve_connection(stream: TransportStream) {
    let peer = stream.transport().peername();
    let service = service_fn(move |req: Request<Incoming>| {
        if let Some(peer) = peer {
            println!("{} {} from {peer}", req.method(), req.uri().path());
        }
        hello(req)
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        eprintln!("connection error: {e}");
    }
}

/// The server: asyncio's `start_server` with hyper as the client callback.
pub async fn start(host: &str, port: u16, options: ServerOptions) -> io::Result<Server> {
    start_server(serve_connection, host, port, options).await
}

#[tokio::main]
#[allow(dead_code)] // the tests include this file for `start` and `serve_connection`
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_string());
    let port = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let server = start(&host, port, ServerOptions::default()).await?;
    let addr = server.sockets()[0];
    println!("Serving HTTP on http://{addr}/ (Ctrl-C to stop)");
    tokio::select! {
        r = server.serve_forever() => r,
        r = tokio::signal::ctrl_c() => {
            server.close();
            server.wait_closed().await;
            r
        }
    }
}
