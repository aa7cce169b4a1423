//! The callback contract (order, counts, exceptions) on echo connections,
//! streaming and buffered, server and client sides, over TCP, Unix stream
//! pairs and in-memory pipes.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{Buffered, ConnectOptions, connect_io, connect_unix_stream};

/// Send `msgs` one at a time over `t`, waiting each time for the echo.
async fn ping_pong(t: &tokio_transports::Transport, log: &Log, msgs: &[Vec<u8>]) {
    let mut expected = Vec::new();
    for m in msgs {
        t.write(m.clone()).unwrap();
        expected.extend_from_slice(m);
        let got = log.wait_received(expected.len()).await;
        assert_eq!(got, expected, "echo mismatch");
    }
}

fn messages(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| pattern(100 + i * 37, i as u8)).collect()
}

/// Assert the exact shape of a log, ignoring how the bytes were chunked.
fn shape(evs: &[Ev]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for e in evs {
        let s = match e {
            Ev::Made => "made",
            Ev::Data(_) => "data",
            Ev::GetBuffer(_) | Ev::BufferUpdated { .. } => "buffered",
            Ev::Eof => "eof",
            Ev::PauseWriting(_) => "pause",
            Ev::ResumeWriting(_) => "resume",
            Ev::Lost(None) => "lost(None)",
            Ev::Lost(Some(_)) => "lost(Some)",
            Ev::Mark(_) => continue,
            Ev::Violation(_) => "violation",
        };
        if out.last() != Some(&s) || !matches!(s, "data" | "buffered") {
            out.push(s);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_echo_client_closes_first() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let client = reg.recorder("client", Config::default());
    let clog = client.log();
    let t = tokio_transports::create_connection(
        move || client,
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    ping_pong(&t, &clog, &messages(5)).await;
    t.close();
    assert_eq!(clog.wait_lost().await, None);
    let slog = reg.nth("server", 0).await;
    assert_eq!(slog.wait_lost().await, None);
    // Client closed first: it never reads EOF. The server reads EOF, and the
    // default eof_received (false) closes it.
    assert_eq!(shape(&clog.events()), ["made", "data", "lost(None)"]);
    assert_eq!(shape(&slog.events()), ["made", "data", "eof", "lost(None)"]);
    assert_eq!(slog.received(), messages(5).concat());
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn buffered_server_echoes_to_stream_client() {
    let reg = Registry::new();
    let (server, port) = buffered_server(&reg, Config::echo()).await;
    let client = reg.recorder("client", Config::default());
    let clog = client.log();
    let t = tokio_transports::create_connection(
        move || client,
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    ping_pong(&t, &clog, &messages(5)).await;
    t.close();
    let slog = reg.nth("server", 0).await;
    assert_eq!(slog.wait_lost().await, None);
    let sevs = slog.events();
    assert_eq!(shape(&sevs), ["made", "buffered", "eof", "lost(None)"]);
    assert!(
        sevs.iter()
            .all(|e| !matches!(e, Ev::GetBuffer(h) if *h == 0)),
        "get_buffer sizehint must be > 0: {sevs:?}"
    );
    assert!(!sevs.iter().any(|e| matches!(e, Ev::Data(_))));
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_client_against_stream_server() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let client = reg.recorder("client", Config::default());
    let clog = client.log();
    let t = tokio_transports::create_connection(
        move || Buffered(client),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(t.with_protocol(|p| p.is_buffered()).await, Some(true));
    ping_pong(&t, &clog, &messages(5)).await;
    t.close();
    assert_eq!(clog.wait_lost().await, None);
    assert_eq!(shape(&clog.events()), ["made", "buffered", "lost(None)"]);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn client_half_close_closes_both_sides() {
    // The client sends EOF; the server's default eof_received closes the
    // server side; the client then reads EOF and closes too.
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let client = reg.recorder("client", Config::default());
    let clog = client.log();
    let t = tokio_transports::create_connection(
        move || client,
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    ping_pong(&t, &clog, &messages(2)).await;
    t.write_eof().unwrap();
    assert!(!t.is_closing(), "write_eof does not make is_closing true");
    assert_eq!(clog.wait_lost().await, None);
    let slog = reg.nth("server", 0).await;
    assert_eq!(slog.wait_lost().await, None);
    assert_eq!(shape(&clog.events()), ["made", "data", "eof", "lost(None)"]);
    assert_eq!(shape(&slog.events()), ["made", "data", "eof", "lost(None)"]);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn server_closes_first_client_reads_eof() {
    let reg = Registry::new();
    let (server, port) = echo_server(
        &reg,
        Config::echo().hook(|t, ev, _| {
            if let Ev::Data(d) = ev
                && d.ends_with(b"!")
            {
                t.close();
            }
        }),
    )
    .await;
    let client = reg.recorder("client", Config::default());
    let clog = client.log();
    let t = tokio_transports::create_connection(
        move || Buffered(client),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    t.write("bye!").unwrap();
    assert_eq!(clog.wait_lost().await, None);
    // The echo written in the same callback as close() is flushed first.
    assert_eq!(clog.received(), b"bye!");
    assert_eq!(
        shape(&clog.events()),
        ["made", "buffered", "eof", "lost(None)"]
    );
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn many_sequential_connections_each_keep_the_contract() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    for i in 0..10u8 {
        let client = reg.recorder("client", Config::default());
        let clog = client.log();
        let buffered = i % 2 == 0;
        let t = if buffered {
            tokio_transports::create_connection(
                move || Buffered(client),
                "127.0.0.1",
                port,
                ConnectOptions::default(),
            )
            .await
        } else {
            tokio_transports::create_connection(
                move || client,
                "127.0.0.1",
                port,
                ConnectOptions::default(),
            )
            .await
        }
        .unwrap();
        ping_pong(&t, &clog, &[pattern(1000, i)]).await;
        if i % 3 == 0 {
            t.abort();
        } else {
            t.close();
        }
        assert_eq!(clog.wait_lost().await, None);
    }
    for i in 0..10 {
        reg.nth("server", i).await.wait_lost().await;
    }
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test]
async fn unix_stream_pair_contract() {
    let reg = Registry::new();
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let ta = connect_unix_stream(|| reg.recorder("a", Config::echo()), a)
        .await
        .unwrap();
    let blog = reg.log("b");
    let tb = connect_unix_stream(
        || Buffered(Recorder::new(blog.clone(), Config::default())),
        b,
    )
    .await
    .unwrap();
    let alog = reg.named("a")[0].clone();
    assert!(
        alog.events().contains(&Ev::Made),
        "returns after connection_made"
    );
    ping_pong(&tb, &blog, &messages(3)).await;
    assert!(ta.can_write_eof());
    tb.write_eof().unwrap();
    assert_eq!(alog.wait_lost().await, None);
    assert_eq!(blog.wait_lost().await, None);
    assert_eq!(shape(&alog.events()), ["made", "data", "eof", "lost(None)"]);
    assert_eq!(
        shape(&blog.events()),
        ["made", "buffered", "eof", "lost(None)"]
    );
    reg.finish().await;
}

#[tokio::test]
async fn duplex_pipe_contract() {
    let reg = Registry::new();
    let (a, mut b) = tokio::io::duplex(4096);
    let rec = reg.recorder("io", Config::echo());
    let log = rec.log();
    let t = connect_io(|| rec, a).await.unwrap();
    assert!(log.events().contains(&Ev::Made));
    assert_eq!(t.peername(), None);
    b.write_all(b"through the pipe").await.unwrap();
    assert_eq!(read_n(&mut b, 16).await, b"through the pipe");
    b.shutdown().await.unwrap();
    assert_eq!(log.wait_lost().await, None);
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(shape(&log.events()), ["made", "data", "eof", "lost(None)"]);
    reg.finish().await;
}

#[tokio::test]
async fn grammar_checker_rejects_broken_logs() {
    // The checker itself must be able to fail.
    let bad: Vec<Vec<Ev>> = vec![
        vec![Ev::Lost(None)],
        vec![Ev::Made],
        vec![Ev::Made, Ev::Made, Ev::Lost(None)],
        vec![Ev::Made, Ev::Lost(None), Ev::Lost(None)],
        vec![Ev::Made, Ev::Eof, Ev::Data("x".into()), Ev::Lost(None)],
        vec![Ev::Made, Ev::Eof, Ev::Eof, Ev::Lost(None)],
        vec![Ev::Made, Ev::Data("".into()), Ev::Lost(None)],
        vec![
            Ev::Made,
            Ev::BufferUpdated {
                n: 1,
                data: "x".into(),
            },
            Ev::Lost(None),
        ],
        vec![
            Ev::Made,
            Ev::GetBuffer(1),
            Ev::BufferUpdated {
                n: 0,
                data: "".into(),
            },
            Ev::Lost(None),
        ],
        vec![Ev::Made, Ev::ResumeWriting(0), Ev::Lost(None)],
        vec![
            Ev::Made,
            Ev::PauseWriting(0),
            Ev::PauseWriting(0),
            Ev::Lost(None),
        ],
        vec![Ev::Made, Ev::Lost(None), Ev::PauseWriting(0)],
    ];
    for evs in bad {
        let r = std::panic::catch_unwind(|| check_grammar(&evs));
        assert!(r.is_err(), "accepted a broken log: {evs:?}");
    }
    check_grammar(&[
        Ev::Made,
        Ev::PauseWriting(1),
        Ev::Data("x".into()),
        Ev::GetBuffer(5),
        Ev::ResumeWriting(0),
        Ev::BufferUpdated {
            n: 1,
            data: "y".into(),
        },
        Ev::GetBuffer(5),
        Ev::Eof,
        Ev::PauseWriting(9),
        Ev::Lost(None),
    ]);
    Registry::new().finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_can_write_to_another_connection() {
    // A relay: what the server side of connection A receives, its
    // data_received writes to connection B (another transport's handle).
    let reg = Registry::new();
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = tokio_transports::create_connection(
        reg.factory("relay-out", Config::default()),
        "127.0.0.1",
        sink.local_addr().unwrap().port(),
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    let (mut sink_peer, _) = sink.accept().await.unwrap();
    let out = b.clone();
    let (server, port) = echo_server(
        &reg,
        Config::default().hook(move |_, ev, _| {
            if let Ev::Data(d) = ev {
                out.write(d.clone()).unwrap();
            }
        }),
    )
    .await;
    let mut src = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let data = pattern(500_000, 4);
    src.write_all(&data).await.unwrap();
    assert!(read_n(&mut sink_peer, data.len()).await == data);
    // Nothing was sent back to the source: the writes went to B only.
    drop(src);
    reg.nth("server", 0).await.wait_lost().await;
    b.close();
    assert_eq!(read_to_eof(&mut sink_peer).await, b"");
    shutdown(&server).await;
    reg.finish().await;
}
