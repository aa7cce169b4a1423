//! The stream adapter (`tokio_transports::streams`): a transport as
//! `AsyncRead + AsyncWrite`, over TCP, TLS, Unix sockets and pipes, with the
//! transport's flow control as backpressure both ways.
#![cfg(all(feature = "codec", feature = "streams", feature = "tls"))]

mod common;
mod tls_support;

use std::io;
use std::pin::pin;

use common::{
    barrier, guard, is_pending, pattern, read_n, read_to_eof, set_reset_on_drop, wait_unread,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_transports::streams::{
    TransportStream, open_connection, open_unix_connection, start_server, start_unix_server,
};
use tokio_transports::{ConnectOptions, ServerOptions};
use tokio_util::codec::{Framed, LinesCodec};

/// A client stream and the raw socket of its peer.
async fn client_and_peer() -> (TransportStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = guard(
        "connect",
        open_connection("127.0.0.1", port, ConnectOptions::default()),
    )
    .await
    .unwrap();
    let (peer, _) = guard("accept", listener.accept()).await.unwrap();
    (stream, peer)
}

/// An echo server whose connections are streams copied onto themselves.
async fn echo_server() -> tokio_transports::Server {
    start_server(
        |stream| async move {
            let (mut r, mut w) = stream.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        },
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn echo_through_tokio_io_copy() {
    let server = echo_server().await;
    let port = server.sockets()[0].port();
    let stream = open_connection("127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let data = pattern(3 << 20, 7);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let got = read_to_eof(&mut r).await;
    assert!(got == data, "echoed {} bytes of {}", got.len(), data.len());
    guard("writer", writer).await.unwrap();
}

#[tokio::test]
async fn framed_codec_over_the_stream() {
    let server = echo_server().await;
    let port = server.sockets()[0].port();
    let stream = open_connection("127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, LinesCodec::new());
    for line in ["one", "two", "three"] {
        framed.send(line).await.unwrap();
    }
    for line in ["one", "two", "three"] {
        let got = guard("a line", framed.next()).await.unwrap().unwrap();
        assert_eq!(got, line);
    }
}

#[tokio::test]
async fn an_unread_stream_pauses_the_transports_reading() {
    let (stream, mut peer) = client_and_peer().await;
    stream.set_read_limit(1024).unwrap();
    let t = stream.transport().clone();
    let data = pattern(256 * 1024, 3);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        peer.write_all(&sent).await.unwrap();
        peer
    });
    // The protocol pauses reading once more than 2 KiB waits unread.
    guard("reading paused", async {
        while t.is_reading() {
            barrier(&t).await;
        }
    })
    .await;
    // The rest waits in the kernel, not in the stream.
    wait_unread(&t, 1).await;
    let mut stream = stream;
    let got = read_n(&mut stream, data.len()).await;
    assert!(got == data);
    // Read down to the limit: reading resumed.
    assert!(t.is_reading());
    drop(guard("writer", writer).await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn poll_write_is_pending_above_the_high_watermark() {
    let (mut stream, mut peer) = client_and_peer().await;
    stream
        .transport()
        .set_write_buffer_limits(Some(4096), Some(1024))
        .unwrap();
    let chunk = vec![1u8; 16 * 1024];
    // Accepted: the buffer was at 0 (at most the high watermark).
    stream.write_all(&chunk).await.unwrap();
    let t = stream.transport().clone();
    // The connection's task has not run (one thread, no await since): the
    // 16 KiB are still queued, over the high watermark.
    assert_eq!(t.get_write_buffer_size(), chunk.len());
    {
        let mut write = pin!(stream.write(&chunk));
        assert!(
            is_pending(write.as_mut()),
            "a write above the high watermark waits"
        );
        assert_eq!(t.get_write_buffer_size(), chunk.len(), "and queues nothing");
        // Once the task sends the queue (the peer's kernel takes it), the
        // buffer drains and the write goes through.
        let n = guard("the pending write", write).await.unwrap();
        assert_eq!(n, chunk.len());
    }
    stream.flush().await.unwrap();
    assert!(t.get_write_buffer_size() <= 1024);
    let got = read_n(&mut peer, 2 * chunk.len()).await;
    assert!(got.iter().all(|&b| b == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_never_buffers_more_than_high_plus_one_write() {
    let (stream, mut peer) = client_and_peer().await;
    let high = 8192;
    stream
        .transport()
        .set_write_buffer_limits(Some(high), None)
        .unwrap();
    let t = stream.transport().clone();
    let chunk = 4096;
    let total = 8 << 20;
    let writer = tokio::spawn(async move {
        let mut stream = stream;
        let mut most = 0;
        let block = vec![9u8; chunk];
        for _ in 0..total / chunk {
            stream.write_all(&block).await.unwrap();
            most = most.max(t.get_write_buffer_size());
        }
        stream.shutdown().await.unwrap();
        most
    });
    let got = read_to_eof(&mut peer).await;
    assert_eq!(got.len(), total);
    let most = guard("writer", writer).await.unwrap();
    assert!(most <= high + chunk, "buffered {most} with high {high}");
}

#[tokio::test(flavor = "current_thread")]
async fn one_write_takes_at_most_the_high_watermark() {
    let (mut stream, mut peer) = client_and_peer().await;
    stream
        .transport()
        .set_write_buffer_limits(Some(32 * 1024), None)
        .unwrap();
    let data = pattern(1 << 20, 9);
    let n = stream.write(&data).await.unwrap();
    assert_eq!(n, 32 * 1024, "a partial write");
    let bufs = [
        io::IoSlice::new(&data[n..n + 10]),
        io::IoSlice::new(&data[n + 10..]),
    ];
    let m = guard("a vectored write", stream.write_vectored(&bufs))
        .await
        .unwrap();
    assert_eq!(m, 32 * 1024, "across both slices");
    let reader = tokio::spawn(async move { read_to_eof(&mut peer).await });
    stream.write_all(&data[n + m..]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(guard("the peer", reader).await.unwrap() == data);
}

#[tokio::test]
async fn end_of_file_and_half_close() {
    let (mut stream, mut peer) = client_and_peer().await;
    peer.write_all(b"question").await.unwrap();
    peer.shutdown().await.unwrap();
    let got = read_to_eof(&mut stream).await;
    assert_eq!(got, b"question");
    // Still open for writing after the peer's end of file.
    stream.write_all(b"answer").await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(
        stream.write_all(b"late").await.is_err(),
        "write after shutdown"
    );
    assert_eq!(read_to_eof(&mut peer).await, b"answer");
    // Both halves are shut, the transport stays until the stream goes
    // (as a socket stays until closed).
    let t = stream.transport().clone();
    assert!(!t.is_closed());
    drop(stream);
    guard("closed", t.closed()).await;
}

#[tokio::test]
async fn a_peer_reset_is_a_read_error_after_the_data() {
    let (mut stream, peer) = client_and_peer().await;
    set_reset_on_drop(&peer);
    let mut peer = peer;
    peer.write_all(b"last words").await.unwrap();
    guard("data", async {
        let mut buf = [0u8; 10];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"last words");
    })
    .await;
    drop(peer);
    let mut buf = [0u8; 16];
    let err = guard("the reset", stream.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    // Then the end of file, and writes fail with the loss's kind.
    assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
    let err = stream.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn dropping_the_stream_closes_the_transport_after_sending() {
    let (mut stream, mut peer) = client_and_peer().await;
    let data = pattern(1 << 20, 1);
    stream.write_all(&data).await.unwrap();
    let t = stream.transport().clone();
    drop(stream);
    assert!(t.is_closing());
    let got = read_to_eof(&mut peer).await;
    assert!(got == data, "got {} of {} bytes", got.len(), data.len());
    guard("closed", t.closed()).await;
}

#[tokio::test]
async fn split_halves_work_apart_and_close_when_both_are_gone() {
    let (stream, mut peer) = client_and_peer().await;
    let t = stream.transport().clone();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        writer.write_all(b"from the writer").await.unwrap();
        writer
    });
    assert_eq!(read_n(&mut peer, 15).await, b"from the writer");
    let writer = guard("writer", writing).await.unwrap();
    peer.write_all(b"to the reader").await.unwrap();
    assert_eq!(read_n(&mut reader, 13).await, b"to the reader");
    drop(writer);
    assert!(!t.is_closing(), "the reader still holds the transport");
    drop(reader);
    assert!(t.is_closing());
    assert_eq!(read_to_eof(&mut peer).await, b"");
    guard("closed", t.closed()).await;
}

#[tokio::test]
async fn over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("tt-stream-adapter-{}.sock", std::process::id()));
    let server = start_unix_server(
        |mut stream| async move {
            let mut line = Vec::new();
            let _ = stream.read_to_end(&mut line).await;
            line.reverse();
            let _ = stream.write_all(&line).await;
        },
        &path,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let mut stream = open_unix_connection(&path, ConnectOptions::default())
        .await
        .unwrap();
    stream.write_all(b"stressed").await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_eof(&mut stream).await, b"desserts");
    server.close();
}

#[tokio::test]
async fn over_a_pipe_pair() {
    let (w, r) = tokio::net::unix::pipe::pipe().unwrap();
    let (w, r) = (w.into_blocking_fd().unwrap(), r.into_blocking_fd().unwrap());
    let mut writer = TransportStream::open(|p| tokio_transports::connect_write_pipe(move || p, w))
        .await
        .unwrap();
    let mut reader = TransportStream::open(|p| tokio_transports::connect_read_pipe(move || p, r))
        .await
        .unwrap();
    // A write pipe reads nothing: its end of file is immediate.
    assert_eq!(writer.read(&mut [0u8; 8]).await.unwrap(), 0);
    // A read pipe writes nothing.
    let err = reader.write_all(b"no").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    let data = pattern(1 << 20, 5);
    let sent = data.clone();
    let feed = tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    tokio::io::copy(&mut reader, &mut got).await.unwrap();
    assert!(got == data);
    guard("writer", feed).await.unwrap();
}

#[tokio::test]
async fn over_tls_with_shutdown_as_close() {
    let pki = tls_support::Pki::new();
    let server = start_server(
        |stream| async move {
            let (mut r, mut w) = tokio::io::split(stream);
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        },
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let opts = ConnectOptions::default().ssl(pki.client().server_hostname("localhost"));
    let stream = open_connection("127.0.0.1", port, opts).await.unwrap();
    assert!(stream.transport().tls_info().is_some());
    assert!(!stream.transport().can_write_eof());
    let mut framed = Framed::new(stream, LinesCodec::new());
    framed.send("over TLS").await.unwrap();
    assert_eq!(
        guard("echo", framed.next()).await.unwrap().unwrap(),
        "over TLS"
    );
    let mut stream = framed.into_inner();
    // TLS cannot half-close: shutdown is close (close_notify).
    stream.shutdown().await.unwrap();
    assert!(stream.transport().is_closing());
    guard("closed", stream.transport().closed()).await;
}

#[test]
fn the_stream_is_send_sync_unpin_and_buf_read() {
    fn check<T: tokio::io::AsyncBufRead + AsyncWriteExt + Send + Sync + Unpin + 'static>() {}
    check::<TransportStream>();
    fn read<T: tokio::io::AsyncBufRead + Send + Sync + Unpin + 'static>() {}
    fn write<T: AsyncWriteExt + Send + Sync + Unpin + 'static>() {}
    read::<tokio_transports::streams::StreamReader>();
    write::<tokio_transports::streams::StreamWriter>();
}

#[tokio::test]
async fn open_refuses_a_transport_without_its_protocol() {
    let (a, _b) = tokio::io::duplex(64);
    let err = TransportStream::open(|_p| tokio_transports::connect_io(|| (), a))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
