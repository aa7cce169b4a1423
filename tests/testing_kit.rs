//! The public test kit (`tokio_transports::testing`, feature `test-util`):
//! each capability of the stream and datagram harnesses, time stepping, the
//! recorder, and the grammar checker catching a broken protocol.

use std::io;
use std::time::Duration;

use tokio_transports::testing::{
    Checked, DatagramHarness, Event, Log, Recorder, RecorderConfig, StreamHarness, check_grammar,
};
use tokio_transports::{
    BaseProtocol, Bytes, BytesMut, DatagramProtocol, DatagramTransport, Protocol, SocketAddress,
    Transport, WriteLimits,
};

fn limits(high: usize, low: usize) -> WriteLimits {
    WriteLimits::new(Some(high), Some(low)).unwrap()
}

fn recorder(cfg: RecorderConfig) -> (Recorder, Log) {
    let log = Log::new("kit");
    (Recorder::new(log.clone(), cfg), log)
}

/// The callbacks' names, for compact assertions.
fn shape(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .map(|e| match e {
            Event::Made => "made".into(),
            Event::Data(d) => format!("data({})", String::from_utf8_lossy(d)),
            Event::GetBuffer(_) => "get_buffer".into(),
            Event::BufferUpdated { data, .. } => {
                format!("updated({})", String::from_utf8_lossy(data))
            }
            Event::Eof => "eof".into(),
            Event::PauseWriting(n) => format!("pause({n})"),
            Event::ResumeWriting(n) => format!("resume({n})"),
            Event::Lost(None) => "lost(None)".into(),
            Event::Lost(Some(e)) => format!("lost({:?})", e.kind),
            Event::Mark(m) => format!("mark({m})"),
            Event::Violation(v) => format!("violation({v})"),
        })
        .collect()
}

// ---- stream: bytes in, bytes out -------------------------------------------

#[test]
fn fed_bytes_arrive_in_order_and_writes_come_back_whole() {
    let (rec, log) = recorder(RecorderConfig::echo());
    let mut h = StreamHarness::new(rec);
    h.feed("one ");
    h.feed(b"two ".as_slice());
    h.feed(vec![b't', b'h', b'r', b'e', b'e']);
    assert_eq!(h.take_written(), "one two three");
    assert_eq!(
        shape(&log.events()),
        ["made", "data(one )", "data(two )", "data(three)"]
    );
    // Writes from outside the callbacks, in order, whole.
    h.transport().write("four ").unwrap();
    h.transport().writelines(["fi", "", "ve"]).unwrap();
    assert_eq!(h.take_written(), "four five");
    assert_eq!(h.written(), "one two threefour five");
    h.transport().close();
    h.run_pending();
    assert!(h.is_closed());
    check_grammar(&log.events());
}

#[test]
fn what_one_callback_writes_goes_out_in_one_vectored_write() {
    struct ThreeWrites(Option<Transport>);
    impl BaseProtocol for ThreeWrites {
        fn connection_made(&mut self, t: &Transport) {
            self.0 = Some(t.clone());
        }
    }
    impl Protocol for ThreeWrites {
        fn data_received(&mut self, _: Bytes) {
            let t = self.0.as_ref().unwrap();
            for part in ["a", "bb", "ccc"] {
                t.write(part).unwrap();
            }
        }
    }
    let mut h = StreamHarness::new(ThreeWrites(None));
    h.feed("go");
    assert_eq!(h.written(), "abbccc");
    assert_eq!(h.peer().write_calls(), [(3, 6)]);
}

#[test]
fn eof_closes_unless_the_protocol_keeps_the_connection_open() {
    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::new(rec);
    h.feed("last words");
    h.feed_eof();
    assert!(h.is_closed());
    assert_eq!(
        shape(&log.events()),
        ["made", "data(last words)", "eof", "lost(None)"]
    );

    // eof_received -> true: still open for writing, then write_eof shuts
    // the write half down once the buffer is sent.
    let (rec, log) = recorder(RecorderConfig::default().keep_open());
    let mut h = StreamHarness::new(rec);
    h.feed_eof();
    assert!(!h.is_closed());
    h.transport().write("reply").unwrap();
    h.transport().write_eof().unwrap();
    assert_eq!(h.written(), "reply");
    assert!(h.peer().is_shutdown());
    h.transport().close();
    h.run_pending();
    assert!(h.is_closed());
    assert_eq!(shape(&log.events()), ["made", "eof", "lost(None)"]);
}

#[test]
fn a_reset_loses_the_connection_without_eof() {
    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::new(rec);
    h.feed("x");
    h.feed_reset();
    assert!(h.is_closed());
    assert_eq!(
        shape(&log.events()),
        ["made", "data(x)", "lost(ConnectionReset)"]
    );
    assert!(h.peer().is_dropped(), "the I/O is released");
}

#[test]
fn any_read_error_reaches_connection_lost() {
    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::new(rec);
    h.feed_error(io::Error::new(io::ErrorKind::TimedOut, "gone quiet"));
    let lost = log.lost().unwrap().unwrap();
    assert_eq!(
        (lost.kind, lost.message.as_str()),
        (io::ErrorKind::TimedOut, "gone quiet")
    );
}

#[test]
fn close_flushes_first_and_the_peer_closing_ends_the_connection() {
    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::new(rec);
    h.set_peer_reading(false);
    h.transport().write("pending").unwrap();
    h.transport().close();
    h.run_pending();
    assert!(!h.is_closed(), "close waits for the buffer");
    assert!(h.transport().is_closing());
    h.set_peer_reading(true);
    assert!(h.is_closed());
    assert_eq!(h.written(), "pending");
    assert_eq!(shape(&log.events()), ["made", "lost(None)"]);

    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::new(rec);
    h.close_from_peer();
    assert!(h.is_closed());
    assert_eq!(shape(&log.events()), ["made", "eof", "lost(None)"]);
}

// ---- stream: flow control --------------------------------------------------

#[test]
fn a_peer_that_stops_reading_pauses_and_resumes_writing_at_the_watermarks() {
    let (rec, log) = recorder(RecorderConfig::default());
    let mut h = StreamHarness::with_limits(rec, limits(10, 4));
    h.set_peer_reading(false);
    h.transport().write("0123456789").unwrap();
    h.run_pending();
    assert!(!h.is_writing_paused(), "at the high watermark, not over it");
    h.transport().write("A").unwrap();
    h.run_pending();
    assert!(h.is_writing_paused());
    assert_eq!(h.transport().get_write_buffer_size(), 11);
    // 11 -> 5 bytes: above the low watermark, still paused.
    h.allow(6);
    assert!(h.is_writing_paused());
    assert_eq!(h.transport().get_write_buffer_size(), 5);
    // 5 -> 4: resumed.
    h.allow(1);
    assert!(!h.is_writing_paused());
    h.set_peer_reading(true);
    assert_eq!(h.written(), "0123456789A");
    assert_eq!(
        shape(&log.events()),
        ["made", "pause(11)", "resume(4)"],
        "the sizes seen inside the callbacks"
    );
}

#[test]
fn reading_can_be_paused_and_held_data_comes_after_resume() {
    let cfg = RecorderConfig::default().hook(|t, ev, _| {
        if matches!(ev, Event::Data(d) if &d[..] == b"stop") {
            t.pause_reading();
        }
    });
    let (rec, log) = recorder(cfg);
    let mut h = StreamHarness::new(rec);
    assert!(!h.is_reading_paused());
    h.feed("stop");
    assert!(h.is_reading_paused());
    h.feed("held");
    assert_eq!(shape(&log.events()), ["made", "data(stop)"]);
    h.transport().resume_reading();
    h.run_pending();
    assert!(!h.is_reading_paused());
    assert_eq!(shape(&log.events()), ["made", "data(stop)", "data(held)"]);
}

// ---- stream: buffered protocols --------------------------------------------

#[test]
fn a_buffered_protocol_gets_the_bytes_in_its_own_buffers() {
    let (rec, log) = recorder(RecorderConfig::default().buf_cap(4));
    let mut h = StreamHarness::buffered(rec);
    h.feed("abcdefghij");
    h.feed_eof();
    assert_eq!(log.received(), b"abcdefghij");
    assert_eq!(
        shape(&log.events()),
        [
            "made",
            "get_buffer",
            "updated(abcd)",
            "get_buffer",
            "updated(efgh)",
            "get_buffer",
            "updated(ij)",
            "get_buffer",
            "eof",
            "lost(None)"
        ]
    );
    check_grammar(&log.events());
}

#[test]
fn the_protocol_is_reachable_before_and_after_the_end() {
    #[derive(Default)]
    struct Count {
        bytes: usize,
        lost: bool,
    }
    impl BaseProtocol for Count {
        fn connection_lost(&mut self, _: Option<io::Error>) {
            self.lost = true;
        }
    }
    impl Protocol for Count {
        fn data_received(&mut self, d: Bytes) {
            self.bytes += d.len();
        }
    }
    let mut h = StreamHarness::new(Count::default());
    h.feed("12345");
    assert_eq!(h.protocol().bytes, 5);
    h.with_protocol(|p| p.bytes = 100);
    h.feed_eof();
    assert!(h.protocol().lost);
    assert_eq!(h.protocol().bytes, 100);
}

// ---- time ------------------------------------------------------------------

/// Sends `ping` every 5 s from a timer task; stops when the connection ends.
#[derive(Default)]
struct Heartbeat {
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl BaseProtocol for Heartbeat {
    fn connection_made(&mut self, t: &Transport) {
        let t = t.clone();
        self.timer = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            every.tick().await; // the first tick is immediate
            loop {
                every.tick().await;
                if t.write("ping\n").is_err() {
                    return;
                }
            }
        }));
    }

    fn connection_lost(&mut self, _: Option<io::Error>) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

impl Protocol for Heartbeat {}

#[tokio::test(start_paused = true)]
async fn timers_fire_when_the_test_moves_the_clock() {
    let mut h = StreamHarness::new(Heartbeat::default());
    h.settle().await;
    h.advance(Duration::from_millis(4_999)).await;
    assert_eq!(h.written(), "");
    h.advance(Duration::from_millis(1)).await;
    assert_eq!(h.take_written(), "ping\n");
    h.advance(Duration::from_secs(10)).await;
    assert_eq!(h.take_written(), "ping\nping\n");
    h.feed_eof();
    assert!(h.is_closed());
    h.advance(Duration::from_secs(60)).await;
    assert_eq!(
        h.take_written(),
        "",
        "the timer stopped with the connection"
    );
}

// ---- the grammar checker ---------------------------------------------------

/// A framing adapter a protocol author might write: splits the stream into
/// lines for an inner protocol. Buggy on purpose: it forwards empty lines
/// as empty `data_received`, and at the end it passes the end of file on
/// before the last, unterminated line.
struct Lines<P> {
    inner: P,
    partial: Vec<u8>,
}

impl<P: Protocol> BaseProtocol for Lines<P> {
    fn connection_made(&mut self, t: &Transport) {
        self.inner.connection_made(t);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.inner.connection_lost(exc);
    }
}

impl<P: Protocol> Protocol for Lines<P> {
    fn data_received(&mut self, data: Bytes) {
        self.partial.extend_from_slice(&data);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.inner
                .data_received(Bytes::copy_from_slice(&line[..line.len() - 1]));
        }
    }
    fn eof_received(&mut self) -> bool {
        let keep = self.inner.eof_received();
        let rest = std::mem::take(&mut self.partial);
        self.inner.data_received(rest.into()); // BUG: after eof_received
        keep
    }
}

fn lines_over_checked_recorder() -> (
    StreamHarness<Lines<Checked<Recorder>>>,
    Log,
    tokio_transports::testing::GrammarCheck,
) {
    let (rec, log) = recorder(RecorderConfig::default());
    let inner = Checked::new(rec);
    let check = inner.check();
    let h = StreamHarness::new(Lines {
        inner,
        partial: Vec::new(),
    });
    (h, log, check)
}

#[test]
fn the_checker_names_each_breach_of_a_broken_adapter() {
    let (mut h, log, check) = lines_over_checked_recorder();
    h.feed("a\n\nb");
    assert_eq!(
        check.violations(),
        ["empty data_received (callback #2)"],
        "the empty line"
    );
    h.feed_eof();
    assert_eq!(
        check.violations(),
        [
            "empty data_received (callback #2)",
            "data_received after eof_received (callback #4)"
        ]
    );
    // The transport's side of the grammar was fine all along.
    h.check().assert_ok();
    assert!(h.is_closed());
    // The recorder's log shows the same breach to check_grammar.
    let evs = log.events();
    assert!(std::panic::catch_unwind(|| check_grammar(&evs)).is_err());
}

#[test]
#[should_panic(expected = "data_received after eof_received")]
fn a_broken_adapter_fails_its_test() {
    // Without the checker this test passes: every byte arrives, the
    // connection closes cleanly.
    let (mut h, log, check) = lines_over_checked_recorder();
    h.feed("hello\nwor");
    h.feed("ld");
    h.feed_eof();
    assert_eq!(log.received(), b"helloworld");
    assert!(h.is_closed());
    check.assert_complete();
}

#[test]
fn checked_works_on_a_real_transport_too() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (rec, log) = recorder(RecorderConfig::echo());
        let p = Checked::new(rec);
        let check = p.check();
        let (a, mut b) = tokio::io::duplex(64);
        tokio_transports::connect_io(move || p, a).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut b, b"real")
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut b).await.unwrap();
        log.wait_lost().await;
        check.assert_complete();
        check_grammar(&log.events());
    });
}

// ---- datagrams -------------------------------------------------------------

#[derive(Default)]
struct DgramLog {
    t: Option<DatagramTransport>,
    events: Vec<String>,
    echo: bool,
}

impl DatagramProtocol for DgramLog {
    fn connection_made(&mut self, t: &DatagramTransport) {
        self.t = Some(t.clone());
        self.events.push("made".into());
    }
    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        self.events
            .push(format!("dgram({}, {addr})", String::from_utf8_lossy(&data)));
        if self.echo {
            let _ = self.t.as_ref().unwrap().sendto(data, Some(addr));
        }
    }
    fn error_received(&mut self, exc: io::Error) {
        self.events.push(format!("error({:?})", exc.kind()));
    }
    fn pause_writing(&mut self) {
        self.events.push("pause".into());
    }
    fn resume_writing(&mut self) {
        self.events.push("resume".into());
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.events
            .push(format!("lost({:?})", exc.map(|e| e.kind())));
    }
}

fn addr(s: &str) -> std::net::SocketAddr {
    s.parse().unwrap()
}

#[test]
fn datagrams_in_and_out_with_their_addresses() {
    let mut h = DatagramHarness::new(DgramLog {
        echo: true,
        ..DgramLog::default()
    });
    h.feed_datagram("a", addr("127.0.0.1:1000"));
    h.feed_datagram("", addr("127.0.0.1:2000"));
    h.feed_error(io::Error::from(io::ErrorKind::ConnectionRefused));
    assert!(!h.is_closed());
    assert_eq!(
        h.sent(),
        [
            (Bytes::from("a"), addr("127.0.0.1:1000").into()),
            (Bytes::new(), addr("127.0.0.1:2000").into()),
        ]
    );
    assert_eq!(
        h.protocol().events,
        [
            "made",
            "dgram(a, ('127.0.0.1', 1000))",
            "dgram(, ('127.0.0.1', 2000))",
            "error(ConnectionRefused)"
        ]
    );
    h.transport().close();
    h.feed_datagram("after close", addr("127.0.0.1:1000"));
    assert!(h.is_closed());
    assert_eq!(h.protocol().events.last().unwrap(), "lost(None)");
    assert_eq!(h.protocol().events.len(), 5, "nothing after the close");
}

#[test]
fn a_full_socket_queues_and_pauses_then_resumes() {
    let mut h = DatagramHarness::connected(DgramLog::default(), addr("10.0.0.1:53"));
    h.transport()
        .set_write_buffer_limits(Some(100), Some(20))
        .unwrap();
    h.set_send_blocked(true);
    for i in 0..3 {
        h.transport().sendto(vec![b'0' + i; 30], None).unwrap();
    }
    h.run_pending();
    assert!(h.is_writing_paused(), "3 x (30 + 8) > 100");
    assert!(h.sent().is_empty());
    h.set_send_blocked(false);
    assert!(!h.is_writing_paused());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|(_, to)| *to == addr("10.0.0.1:53").into()));
    assert_eq!(sent[2].0, vec![b'2'; 30]);
    assert_eq!(h.protocol().events, ["made", "pause", "resume"]);
}

#[test]
fn datagram_reading_pauses() {
    let mut h = DatagramHarness::new(DgramLog::default());
    h.transport().pause_reading();
    h.run_pending();
    assert!(h.is_reading_paused());
    h.feed_datagram("held", addr("127.0.0.1:1"));
    assert_eq!(h.protocol().events, ["made"]);
    h.transport().resume_reading();
    h.run_pending();
    assert_eq!(
        h.protocol().events,
        ["made", "dgram(held, ('127.0.0.1', 1))"]
    );
}

#[tokio::test(start_paused = true)]
async fn datagram_timers_step_with_the_clock() {
    /// Sends a probe every second to its connected peer.
    #[derive(Default)]
    struct Probe;
    impl DatagramProtocol for Probe {
        fn connection_made(&mut self, t: &DatagramTransport) {
            let t = t.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if t.is_closing() || t.sendto("probe", None).is_err() {
                        return;
                    }
                }
            });
        }
    }
    let mut h = DatagramHarness::connected(Probe, addr("10.0.0.2:9"));
    h.advance(Duration::from_millis(2_500)).await;
    assert_eq!(h.take_sent().len(), 2);
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(h.take_sent().len(), 1);
}

#[test]
fn buffered_get_buffer_sizes_follow_the_protocol() {
    // A protocol whose buffer has room for exactly 3 bytes each time.
    struct Three(BytesMut, Vec<u8>);
    impl BaseProtocol for Three {}
    impl tokio_transports::BufferedProtocol for Three {
        fn get_buffer(&mut self, _: usize) -> &mut BytesMut {
            self.0 = BytesMut::with_capacity(3);
            &mut self.0
        }
        fn buffer_updated(&mut self, n: usize) {
            assert!(n <= 3);
            self.1.extend_from_slice(&self.0[..n]);
        }
    }
    let mut h = StreamHarness::buffered(Three(BytesMut::new(), Vec::new()));
    h.feed("12345678");
    assert_eq!(h.protocol().1, b"12345678");
}

/// Reads its transport's addresses in `connection_made`, as a protocol that
/// logs or checks its peer does.
#[derive(Default)]
struct AddressReader {
    seen: Vec<Option<String>>,
    inet: (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>),
    socket_lent: bool,
}

impl BaseProtocol for AddressReader {
    fn connection_made(&mut self, t: &Transport) {
        for key in ["peername", "sockname", "socket"] {
            self.seen.push(t.get_extra_info(key).map(|v| v.to_string()));
        }
        self.inet = (t.peername(), t.sockname());
        self.socket_lent = t.with_socket(|_| ()).is_some();
    }
}

impl Protocol for AddressReader {}

impl tokio_transports::BufferedProtocol for AddressReader {
    fn get_buffer(&mut self, _hint: usize) -> &mut BytesMut {
        unreachable!("nothing is fed")
    }
    fn buffer_updated(&mut self, _n: usize) {}
}

#[test]
fn builder_addresses_are_seen_in_connection_made() {
    let peer: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let ours: std::net::SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let h = StreamHarness::builder()
        .peername(peer)
        .sockname(ours)
        .limits(limits(100, 10))
        .start(AddressReader::default());
    let p = h.protocol();
    assert_eq!(
        p.seen,
        vec![
            Some("('192.0.2.7', 40000)".to_string()),
            Some("('2001:db8::1', 443, 0, 0)".to_string()),
            None,
        ]
    );
    assert_eq!(p.inet, (Some(peer), Some(ours)));
    assert!(!p.socket_lent, "a harness has no socket to lend");
    assert_eq!(h.transport().get_write_buffer_limits(), (10, 100));

    // Unix names, on a buffered protocol; an unnamed peer shows as ''.
    let h = StreamHarness::builder()
        .peername(SocketAddress::Unix(None))
        .sockname(SocketAddress::Unix(Some("/run/app.sock".into())))
        .start_buffered(AddressReader::default());
    let p = h.protocol();
    assert_eq!(
        p.seen,
        vec![Some(String::new()), Some("/run/app.sock".to_string()), None]
    );
    assert_eq!(p.inet, (None, None), "no Internet address on a Unix name");
}

#[test]
fn harness_without_builder_has_no_addresses() {
    let h = StreamHarness::new(AddressReader::default());
    assert_eq!(h.protocol().seen, vec![None, None, None]);
    assert_eq!(h.protocol().inet, (None, None));
    // The addresses outlive the connection, as on a socket's transport.
    let mut h = StreamHarness::builder()
        .peername("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap())
        .start(AddressReader::default());
    h.transport().close();
    h.run_pending();
    assert!(h.is_closed());
    assert_eq!(
        h.transport().peername(),
        Some("127.0.0.1:1".parse().unwrap())
    );
}
