//! The codec protocol (`tokio_transports::codec`): frames split across
//! reads and many in one read, `decode_eof`, decode errors, flow control
//! both ways, over an in-memory pipe, TCP and TLS; the `line_chat` example.
#![cfg(all(feature = "codec", feature = "streams", feature = "tls"))]

mod common;
mod tls_support;

#[path = "../examples/line_chat.rs"]
#[allow(dead_code)]
mod line_chat;

use std::fmt::Debug;
use std::io;

use common::{barrier, guard, read_to_eof};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_transports::codec::{
    Decoder, FrameHandler, FramedProtocol, FramedTransport, LengthDelimitedCodec, LinesCodec,
    LinesCodecError,
};
use tokio_transports::{ConnectOptions, ServerOptions, Transport, WriteLimits, create_server};
use tokio_util::codec::Framed;

#[derive(Debug, PartialEq)]
enum Ev {
    Made,
    Frame(String),
    Eof,
    /// The error's kind, message, and whether it is a `LinesCodecError`.
    Lost(Option<(io::ErrorKind, String, bool)>),
    Pause,
    Resume,
}

fn frame(s: &str) -> Ev {
    Ev::Frame(format!("{s:?}"))
}

/// A hook run on each frame (its `Debug` text) with the transport.
type OnFrame<C> = Box<dyn FnMut(&str, &mut FramedTransport<C>) + Send>;

/// Records every callback; optionally pauses reading after each frame,
/// runs a hook on each frame, and hands its transport out.
struct Rec<C> {
    tx: UnboundedSender<Ev>,
    pause_each: bool,
    on_frame: Option<OnFrame<C>>,
    export: Option<UnboundedSender<FramedTransport<C>>>,
    limits: Option<WriteLimits>,
}

impl<C> Rec<C> {
    fn new(tx: UnboundedSender<Ev>) -> Self {
        Rec {
            tx,
            pause_each: false,
            on_frame: None,
            export: None,
            limits: None,
        }
    }
}

/// A LinesCodec hook: answer each frame with `echo: FRAME`.
fn echo() -> Option<OnFrame<LinesCodec>> {
    Some(Box::new(|text, t| t.send(format!("echo: {text}")).unwrap()))
}

impl<C> FrameHandler<C> for Rec<C>
where
    C: Decoder + Clone + Send + 'static,
    C::Item: Debug,
{
    fn connection_made(&mut self, t: &mut FramedTransport<C>) {
        if let Some(l) = self.limits {
            t.set_write_buffer_limits(Some(l.high()), Some(l.low()))
                .unwrap();
        }
        if let Some(e) = &self.export {
            let _ = e.send(t.clone());
        }
        let _ = self.tx.send(Ev::Made);
    }

    fn frame_received(&mut self, f: C::Item, t: &mut FramedTransport<C>) {
        let text = format!("{f:?}");
        if let Some(hook) = &mut self.on_frame {
            hook(&text, t);
        }
        let _ = self.tx.send(Ev::Frame(text));
        if self.pause_each {
            t.pause_reading();
        }
    }

    fn eof_received(&mut self, _t: &mut FramedTransport<C>) -> bool {
        let _ = self.tx.send(Ev::Eof);
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let info = exc.map(|e| {
            let lines = e
                .get_ref()
                .is_some_and(|r| r.downcast_ref::<LinesCodecError>().is_some());
            (e.kind(), e.to_string(), lines)
        });
        let _ = self.tx.send(Ev::Lost(info));
    }

    fn pause_writing(&mut self) {
        let _ = self.tx.send(Ev::Pause);
    }

    fn resume_writing(&mut self) {
        let _ = self.tx.send(Ev::Resume);
    }
}

async fn next(rx: &mut UnboundedReceiver<Ev>) -> Ev {
    guard("a callback", rx.recv())
        .await
        .expect("the handler is gone")
}

/// A LinesCodec handler over an in-memory pipe, and the pipe's other end.
async fn lines_over_duplex(
    configure: impl FnOnce(&mut Rec<LinesCodec>),
) -> (Transport, DuplexStream, UnboundedReceiver<Ev>) {
    let (tx, mut rx) = unbounded_channel();
    let mut rec = Rec::new(tx);
    configure(&mut rec);
    let (a, b) = tokio::io::duplex(1 << 16);
    let t = tokio_transports::connect_io(move || FramedProtocol::new(LinesCodec::new(), rec), a)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Ev::Made);
    (t, b, rx)
}

#[tokio::test]
async fn a_frame_split_across_reads_is_handed_over_whole() {
    let (t, mut peer, mut rx) = lines_over_duplex(|_| {}).await;
    for part in ["hel", "lo\nwo", "r", "ld\n"] {
        peer.write_all(part.as_bytes()).await.unwrap();
        barrier(&t).await;
    }
    assert_eq!(next(&mut rx).await, frame("hello"));
    assert_eq!(next(&mut rx).await, frame("world"));
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn many_frames_in_one_read_come_in_order() {
    let (t, mut peer, mut rx) = lines_over_duplex(|_| {}).await;
    peer.write_all(b"a\nb\r\nc\n").await.unwrap();
    barrier(&t).await;
    for f in ["a", "b", "c"] {
        assert_eq!(next(&mut rx).await, frame(f));
    }
}

#[tokio::test]
async fn decode_eof_hands_over_the_tail_then_eof_received() {
    let (t, mut peer, mut rx) = lines_over_duplex(|_| {}).await;
    peer.write_all(b"x\ntail without newline").await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(next(&mut rx).await, frame("x"));
    assert_eq!(next(&mut rx).await, frame("tail without newline"));
    assert_eq!(next(&mut rx).await, Ev::Eof);
    assert_eq!(next(&mut rx).await, Ev::Lost(None));
    guard("closed", t.closed()).await;
}

#[tokio::test]
async fn a_decode_error_closes_after_the_replies_and_reaches_connection_lost() {
    let (tx, mut rx) = unbounded_channel();
    let server = create_server(
        move || {
            let mut rec = Rec::new(tx.clone());
            rec.on_frame = echo();
            FramedProtocol::new(LinesCodec::new_with_max_length(8), rec)
        },
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let mut peer = TcpStream::connect(server.sockets()[0]).await.unwrap();
    assert_eq!(next(&mut rx).await, Ev::Made);
    peer.write_all(b"ok\nfar too long a line\nnever seen\n")
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, frame("ok"));
    match next(&mut rx).await {
        Ev::Lost(Some((kind, msg, lines))) => {
            assert_eq!(kind, io::ErrorKind::InvalidData);
            assert!(lines, "the codec's error is the payload: {msg}");
            assert!(msg.contains("max line length exceeded"), "{msg}");
        }
        other => panic!("expected the decode error, got {other:?}"),
    }
    // The reply to the frame before the error was still sent, then the end.
    assert_eq!(read_to_eof(&mut peer).await, b"echo: \"ok\"\n");
    assert!(rx.try_recv().is_err(), "nothing after connection_lost");
}

#[tokio::test]
async fn bytes_left_at_eof_are_a_decode_error() {
    let (tx, mut rx) = unbounded_channel();
    let (a, mut b) = tokio::io::duplex(1024);
    let rec: Rec<LengthDelimitedCodec> = Rec::new(tx);
    tokio_transports::connect_io(
        move || FramedProtocol::new(LengthDelimitedCodec::new(), rec),
        a,
    )
    .await
    .unwrap();
    assert_eq!(next(&mut rx).await, Ev::Made);
    // One whole frame, then half a header.
    b.write_all(b"\0\0\0\x02hi\0\0").await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(
        next(&mut rx).await,
        Ev::Frame(format!("{:?}", bytes::BytesMut::from(&b"hi"[..])))
    );
    match next(&mut rx).await {
        Ev::Lost(Some((kind, msg, _))) => {
            assert_eq!(kind, io::ErrorKind::InvalidData);
            assert!(msg.contains("bytes remaining"), "{msg}");
        }
        other => panic!("expected the decode_eof error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panicking_handler_loses_its_connection_with_the_panic() {
    let capture = common::ExcCapture::install().await;
    let (t, mut peer, mut rx) = lines_over_duplex(|r| {
        r.on_frame = Some(Box::new(|text, _t| {
            if text == "\"boom\"" {
                panic!("handler exploded");
            }
        }));
    })
    .await;
    peer.write_all(b"fine\nboom\nnever\n").await.unwrap();
    assert_eq!(next(&mut rx).await, frame("fine"));
    match next(&mut rx).await {
        Ev::Lost(Some((_, msg, _))) => assert!(msg.contains("handler exploded"), "{msg}"),
        other => panic!("expected the panic, got {other:?}"),
    }
    guard("closed", t.closed()).await;
    assert!(rx.try_recv().is_err(), "no frame after the panic");
    // Reported once, as the callback the transport called.
    let reports = capture.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("buffer_updated"), "{reports:?}");
}

#[tokio::test]
async fn pause_reading_holds_decoded_frames_until_resume() {
    let (exp_tx, mut exp_rx) = unbounded_channel();
    let (t, mut peer, mut rx) = lines_over_duplex(|r| {
        r.pause_each = true;
        r.export = Some(exp_tx);
    })
    .await;
    let framed = exp_rx.recv().await.unwrap();
    peer.write_all(b"1\n2\n3\n").await.unwrap();
    assert_eq!(next(&mut rx).await, frame("1"));
    barrier(&t).await;
    assert!(!t.is_reading());
    assert!(rx.try_recv().is_err(), "no frame while paused");
    for f in ["2", "3"] {
        framed.resume_reading();
        assert_eq!(next(&mut rx).await, frame(f));
        barrier(&t).await;
        assert!(rx.try_recv().is_err(), "one frame per resume");
    }
    // After the end of file pausing does nothing (as on the transport):
    // decode_eof's frames and eof_received follow at once.
    peer.write_all(b"4\n5").await.unwrap();
    peer.shutdown().await.unwrap();
    framed.resume_reading();
    assert_eq!(next(&mut rx).await, frame("4"));
    framed.resume_reading();
    assert_eq!(next(&mut rx).await, frame("5"));
    assert_eq!(next(&mut rx).await, Ev::Eof);
    assert_eq!(next(&mut rx).await, Ev::Lost(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_pauses_writing_and_the_handler_sees_it() {
    let (tx, mut rx) = unbounded_channel();
    // Asked for "flood", the handler sends 16 MiB in lines from its
    // callback: more than the kernel takes at once.
    let line = "x".repeat(64 * 1024 - 1);
    let lines = 256;
    let flood = line.clone();
    let server = create_server(
        move || {
            let mut rec = Rec::new(tx.clone());
            rec.limits = Some(WriteLimits::new(Some(16 * 1024), Some(4 * 1024)).unwrap());
            let flood = flood.clone();
            rec.on_frame = Some(Box::new(
                move |_text, t: &mut FramedTransport<LinesCodec>| {
                    for _ in 0..lines {
                        t.send(flood.as_str()).unwrap();
                    }
                },
            ));
            FramedProtocol::new(LinesCodec::new(), rec)
        },
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let mut peer = TcpStream::connect(server.sockets()[0]).await.unwrap();
    assert_eq!(next(&mut rx).await, Ev::Made);
    peer.write_all(b"flood\n").await.unwrap();
    assert_eq!(next(&mut rx).await, frame("flood"));
    // The peer reads nothing yet: the handler is paused.
    assert_eq!(next(&mut rx).await, Ev::Pause);
    let total = lines * (line.len() + 1);
    let mut got = vec![0u8; total];
    guard("reading it all", peer.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Ev::Resume);
    assert!(got.chunks(line.len() + 1).all(|l| l.ends_with(b"\n")));
}

#[tokio::test]
async fn framed_protocol_over_tls() {
    let pki = tls_support::Pki::new();
    let (tx, mut rx) = unbounded_channel();
    let server = create_server(
        move || {
            let mut rec = Rec::new(tx.clone());
            rec.on_frame = echo();
            FramedProtocol::new(LinesCodec::new(), rec)
        },
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(pki.server()),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    let opts = ConnectOptions::default().ssl(pki.client().server_hostname("localhost"));
    let stream = tokio_transports::streams::open_connection("127.0.0.1", port, opts)
        .await
        .unwrap();
    let mut framed = Framed::new(stream, LinesCodec::new());
    framed.send("secret").await.unwrap();
    assert_eq!(next(&mut rx).await, Ev::Made);
    assert_eq!(next(&mut rx).await, frame("secret"));
    let reply = guard("the reply", framed.next()).await.unwrap().unwrap();
    assert_eq!(reply, "echo: \"secret\"");
}

/// One line from a chat client.
async fn line(c: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    guard("a line", c.read_line(&mut s)).await.unwrap();
    s
}

#[tokio::test]
async fn line_chat_broadcasts_and_drops_an_overlong_line() {
    let server = line_chat::start("127.0.0.1", 0).await.unwrap();
    let addr = server.sockets()[0];
    let mut a = BufReader::new(TcpStream::connect(addr).await.unwrap());
    assert_eq!(line(&mut a).await, "welcome, you are guest1\n");
    let mut b = BufReader::new(TcpStream::connect(addr).await.unwrap());
    assert_eq!(line(&mut b).await, "welcome, you are guest2\n");
    assert_eq!(line(&mut a).await, "* guest2 joined\n");
    // One line split over two writes, and two lines in one.
    a.get_mut().write_all(b"hel").await.unwrap();
    a.get_mut()
        .write_all(b"lo\nhow are\r\nyou\n")
        .await
        .unwrap();
    assert_eq!(line(&mut b).await, "guest1: hello\n");
    assert_eq!(line(&mut b).await, "guest1: how are\n");
    assert_eq!(line(&mut b).await, "guest1: you\n");
    // A line over the limit is a decode error: guest2 is closed.
    let long = vec![b'x'; line_chat::MAX_LINE + 1];
    b.get_mut().write_all(&long).await.unwrap();
    assert_eq!(read_to_eof(&mut b).await, b"");
    assert_eq!(line(&mut a).await, "* guest2 left\n");
    a.get_mut().write_all(b"/quit\n").await.unwrap();
    assert_eq!(line(&mut a).await, "bye\n");
    assert_eq!(read_to_eof(&mut a).await, b"");
}
