//! [`StreamHarness`]: one stream connection whose protocol is driven by the
//! crate's real driver and state machine over a [`ScriptedIo`], polled on
//! the test's thread: every call that changes something runs the
//! connection until it is idle before it returns.

use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;

use super::checked::{Checked, GrammarCheck};
use super::scripted::{Peer, ScriptedIo};
use super::step::{Stepper, assert_grammar};
use crate::extra::Extra;
use crate::stream::driver::Driver;
use crate::stream::handle::READ_PAUSED;
use crate::stream::{StreamConfig, prepare_stream_any};
use crate::{
    AnyProtocol, Buffered, BufferedProtocol, IntoProtocol, Protocol, SocketAddress, Transport,
    WriteLimits,
};

/// Drives one [`Protocol`] or [`BufferedProtocol`] without a socket, as
/// Netty's `EmbeddedChannel` or Twisted's `StringTransport` do, but through
/// this crate's own driver, state machine and [`Transport`]: the protocol
/// gets an ordinary `Transport` in `connection_made`, and everything it
/// sees (the order of callbacks, when `pause_writing` comes, what a close
/// flushes) is what a socket would give it.
///
/// The connection runs on the test's thread, only when the harness is
/// called: each method that feeds or changes something runs it until it is
/// idle, and every callback is checked against the call-order grammar
/// ([`Checked`]); a breach panics at the step that caused it. Calls made on
/// [`transport`](Self::transport) directly are applied at the next harness
/// call, or by [`run_pending`](Self::run_pending).
///
/// ```
/// use tokio_transports::{BaseProtocol, Bytes, Protocol, Transport};
/// use tokio_transports::testing::StreamHarness;
///
/// /// Answers each line with its length.
/// #[derive(Default)]
/// struct LineLen { t: Option<Transport>, buf: Vec<u8> }
/// impl BaseProtocol for LineLen {
///     fn connection_made(&mut self, t: &Transport) { self.t = Some(t.clone()); }
/// }
/// impl Protocol for LineLen {
///     fn data_received(&mut self, data: Bytes) {
///         self.buf.extend_from_slice(&data);
///         while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
///             let line: Vec<u8> = self.buf.drain(..=i).collect();
///             let _ = self.t.as_ref().unwrap().write(format!("{}\n", line.len() - 1));
///         }
///     }
/// }
///
/// let mut h = StreamHarness::new(LineLen::default());
/// h.feed("hel");
/// assert_eq!(h.written(), "");
/// h.feed("lo\nhi\n");
/// assert_eq!(h.written(), "5\n2\n");
/// h.feed_eof(); // eof_received returns false: the transport closes
/// assert!(h.is_closed());
/// assert_eq!(h.protocol().buf, b"");
/// ```
pub struct StreamHarness<P: 'static> {
    stepper: Stepper<std::pin::Pin<Box<Driver<ScriptedIo>>>>,
    transport: Transport,
    peer: Peer,
    check: GrammarCheck,
    _protocol: PhantomData<fn() -> P>,
}

impl<P> std::fmt::Debug for StreamHarness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHarness")
            .field("peer", &self.peer)
            .field("closed", &self.stepper.is_done())
            .finish()
    }
}

impl<P: Protocol> StreamHarness<P> {
    /// Start a connection driving `protocol`: `connection_made` has run
    /// when this returns. Default watermarks; the peer reads everything.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::new(());
    /// assert!(!h.transport().is_closing());
    /// ```
    pub fn new(protocol: P) -> Self {
        Self::with_limits(protocol, WriteLimits::default())
    }

    /// [`new`](Self::new) with these watermarks from the start.
    ///
    /// ```
    /// # use tokio_transports::WriteLimits;
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::with_limits((), WriteLimits::new(Some(100), Some(10)).unwrap());
    /// assert_eq!(h.transport().get_write_buffer_limits(), (10, 100));
    /// ```
    pub fn with_limits(protocol: P, limits: WriteLimits) -> Self {
        StreamHarnessBuilder::new().limits(limits).start(protocol)
    }
}

impl<P: BufferedProtocol> StreamHarness<P> {
    /// Start a connection driving a [`BufferedProtocol`]: the driver reads
    /// into the buffers its `get_buffer` lends.
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, BufferedProtocol, BytesMut};
    /// use tokio_transports::testing::StreamHarness;
    /// struct Collect(BytesMut);
    /// impl BaseProtocol for Collect {}
    /// impl BufferedProtocol for Collect {
    ///     fn get_buffer(&mut self, _hint: usize) -> &mut BytesMut { self.0.reserve(16); &mut self.0 }
    ///     fn buffer_updated(&mut self, _n: usize) {}
    /// }
    /// let mut h = StreamHarness::buffered(Collect(BytesMut::new()));
    /// h.feed("abc");
    /// h.feed("def");
    /// assert_eq!(&h.protocol().0[..], b"abcdef");
    /// ```
    pub fn buffered(protocol: P) -> Self {
        Self::buffered_with_limits(protocol, WriteLimits::default())
    }

    /// [`buffered`](Self::buffered) with these watermarks from the start.
    ///
    /// ```
    /// # use tokio_transports::{BaseProtocol, BufferedProtocol, BytesMut, WriteLimits};
    /// # use tokio_transports::testing::StreamHarness;
    /// # struct C(BytesMut); impl BaseProtocol for C {}
    /// # impl BufferedProtocol for C {
    /// #     fn get_buffer(&mut self, _: usize) -> &mut BytesMut { self.0.reserve(8); &mut self.0 }
    /// #     fn buffer_updated(&mut self, _: usize) {}
    /// # }
    /// let h = StreamHarness::buffered_with_limits(C(BytesMut::new()), WriteLimits::new(Some(8), Some(4)).unwrap());
    /// assert_eq!(h.transport().get_write_buffer_limits(), (4, 8));
    /// ```
    pub fn buffered_with_limits(protocol: P, limits: WriteLimits) -> Self {
        StreamHarnessBuilder::new()
            .limits(limits)
            .start_buffered(protocol)
    }
}

impl StreamHarness<()> {
    /// A [`StreamHarnessBuilder`]: watermarks and the connection's
    /// addresses before `connection_made` runs.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::builder()
    ///     .peername("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap())
    ///     .start(());
    /// assert_eq!(h.transport().peername(), Some("192.0.2.7:40000".parse().unwrap()));
    /// ```
    pub fn builder() -> StreamHarnessBuilder {
        StreamHarnessBuilder::new()
    }
}

/// How a [`StreamHarness`] starts: its watermarks and the addresses its
/// transport reports (`peername()`, `sockname()`, `get_extra_info("peername")`
/// / `("sockname")`), which a protocol may read in `connection_made`.
/// Without them a harness has no addresses, as [`connect_io`](crate::connect_io).
///
/// ```
/// use tokio_transports::{BaseProtocol, Protocol, SocketAddress, Transport};
/// use tokio_transports::testing::StreamHarness;
///
/// /// Greets the peer by its address.
/// #[derive(Default)]
/// struct Greeter;
/// impl BaseProtocol for Greeter {
///     fn connection_made(&mut self, t: &Transport) {
///         let peer = t.get_extra_info("peername").map(|v| v.to_string()).unwrap_or_default();
///         let _ = t.write(format!("hello {peer}\n"));
///     }
/// }
/// impl Protocol for Greeter {}
///
/// let mut h = StreamHarness::builder()
///     .peername("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap())
///     .sockname(SocketAddress::Unix(Some("/run/app.sock".into())))
///     .start(Greeter);
/// assert_eq!(h.written(), "hello ('192.0.2.7', 40000)\n");
/// assert_eq!(h.transport().get_extra_info("sockname").unwrap().to_string(), "/run/app.sock");
/// ```
#[derive(Debug, Default)]
pub struct StreamHarnessBuilder {
    limits: WriteLimits,
    peername: Option<SocketAddress>,
    sockname: Option<SocketAddress>,
}

impl StreamHarnessBuilder {
    /// Default watermarks, no addresses.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarnessBuilder;
    /// let h = StreamHarnessBuilder::new().start(());
    /// assert_eq!(h.transport().peername(), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The write buffer's watermarks from the start.
    ///
    /// ```
    /// # use tokio_transports::WriteLimits;
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::builder()
    ///     .limits(WriteLimits::new(Some(100), Some(10)).unwrap())
    ///     .start(());
    /// assert_eq!(h.transport().get_write_buffer_limits(), (10, 100));
    /// ```
    pub fn limits(mut self, limits: WriteLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The peer's address: an IP address and port, or a Unix path.
    ///
    /// ```
    /// # use tokio_transports::SocketAddress;
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::builder().peername(SocketAddress::Unix(None)).start(());
    /// assert_eq!(h.transport().get_extra_info("peername").unwrap().to_string(), "");
    /// ```
    pub fn peername(mut self, addr: impl Into<SocketAddress>) -> Self {
        self.peername = Some(addr.into());
        self
    }

    /// The connection's own address.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let addr: std::net::SocketAddr = "127.0.0.1:8888".parse().unwrap();
    /// let h = StreamHarness::builder().sockname(addr).start(());
    /// assert_eq!(h.transport().sockname(), Some(addr));
    /// ```
    pub fn sockname(mut self, addr: impl Into<SocketAddress>) -> Self {
        self.sockname = Some(addr.into());
        self
    }

    /// Start a harness driving `protocol` ([`StreamHarness::new`] with
    /// these settings).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::builder().start(());
    /// assert!(!h.is_closed());
    /// ```
    pub fn start<P: Protocol>(self, protocol: P) -> StreamHarness<P> {
        let checked = Checked::new(protocol);
        let check = checked.check();
        StreamHarness::start(checked, check, self)
    }

    /// Start a harness driving a [`BufferedProtocol`]
    /// ([`StreamHarness::buffered`] with these settings).
    ///
    /// ```
    /// # use tokio_transports::{BaseProtocol, BufferedProtocol, BytesMut};
    /// # use tokio_transports::testing::StreamHarness;
    /// # struct C(BytesMut); impl BaseProtocol for C {}
    /// # impl BufferedProtocol for C {
    /// #     fn get_buffer(&mut self, _: usize) -> &mut BytesMut { self.0.reserve(8); &mut self.0 }
    /// #     fn buffer_updated(&mut self, _: usize) {}
    /// # }
    /// let addr: std::net::SocketAddr = "[::1]:9".parse().unwrap();
    /// let mut h = StreamHarness::builder().peername(addr).start_buffered(C(BytesMut::new()));
    /// h.feed("abc");
    /// assert_eq!(&h.protocol().0[..], b"abc");
    /// assert_eq!(h.transport().peername(), Some(addr));
    /// ```
    pub fn start_buffered<P: BufferedProtocol>(self, protocol: P) -> StreamHarness<P> {
        let checked = Checked::new(protocol);
        let check = checked.check();
        StreamHarness::start(Buffered(checked), check, self)
    }
}

impl<P: 'static> StreamHarness<P> {
    fn start(
        protocol: impl IntoProtocol,
        check: GrammarCheck,
        options: StreamHarnessBuilder,
    ) -> Self {
        let (io, peer) = ScriptedIo::new();
        let config = StreamConfig {
            limits: options.limits,
            extra: Extra::new(options.peername, options.sockname, None),
            notify_started: false,
            ..StreamConfig::default()
        };
        let (transport, _started, driver) = prepare_stream_any(io, protocol, config);
        let mut h = StreamHarness {
            stepper: Stepper::new(driver),
            transport,
            peer,
            check,
            _protocol: PhantomData,
        };
        h.run_pending();
        h
    }

    /// Run the connection until it is idle: apply what was called on the
    /// transport from outside, read what was fed, write what the peer
    /// takes, deliver the callbacks that follow.
    ///
    /// # Panics
    ///
    /// If a callback broke the call-order grammar, or the connection is
    /// still busy after 100,000 polls.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.transport().write("from the test").unwrap();
    /// h.run_pending();
    /// assert_eq!(h.peer().written(), "from the test");
    /// ```
    pub fn run_pending(&mut self) {
        self.stepper.run();
        assert_grammar(&self.check);
    }

    /// [`run_pending`](Self::run_pending), then give the runtime's other
    /// tasks (ones the protocol spawned, timers that fired) a few turns,
    /// and run the connection again, until neither has anything to do.
    /// Use it after `tokio::time::advance`, or see
    /// [`advance`](Self::advance).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// let t = h.transport().clone();
    /// tokio::spawn(async move { t.write("from a task") });
    /// h.settle().await;
    /// assert_eq!(h.written(), "from a task");
    /// # }
    /// ```
    pub async fn settle(&mut self) {
        let check = self.check.clone();
        self.stepper.settle(|| assert_grammar(&check)).await;
    }

    /// Let `d` of tokio time pass, running the connection each time
    /// something wakes it meanwhile (a timer task of the protocol writing,
    /// say), at that moment; then [`settle`](Self::settle). Under
    /// `#[tokio::test(start_paused = true)]` the runtime jumps from timer
    /// to timer, so this returns at once and a timer the protocol re-arms
    /// fires as often as it would in real time (unlike one
    /// `tokio::time::advance(d)`, which fires each timer at most once).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// let t = h.transport().clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(30)).await;
    ///     t.close();
    /// });
    /// h.advance(Duration::from_secs(29)).await;
    /// assert!(!h.is_closed());
    /// h.advance(Duration::from_secs(1)).await;
    /// assert!(h.is_closed());
    /// # }
    /// ```
    pub async fn advance(&mut self, d: Duration) {
        let check = self.check.clone();
        self.stepper.advance(d, || assert_grammar(&check)).await;
    }

    /// The transport the protocol got in `connection_made`.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::new(());
    /// assert!(h.transport().is_reading());
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The scripted peer: the same operations as the harness's, without
    /// running the connection (several steps at once, then
    /// [`run_pending`](Self::run_pending)).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.peer().feed("a");
    /// h.peer().feed_eof();
    /// h.run_pending();
    /// assert!(h.is_closed());
    /// ```
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The grammar checker's handle (e.g. whether writing is paused).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// StreamHarness::new(()).check().assert_ok();
    /// ```
    pub fn check(&self) -> &GrammarCheck {
        &self.check
    }

    fn any(&self) -> &AnyProtocol {
        self.stepper.driver().protocol()
    }

    /// The protocol under test, to read its state (also after
    /// `connection_lost`).
    ///
    /// # Panics
    ///
    /// If the protocol was switched with `set_protocol` (see
    /// [`try_protocol`](Self::try_protocol)).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let h = StreamHarness::new(());
    /// let () = *h.protocol();
    /// ```
    pub fn protocol(&self) -> &P {
        self.try_protocol()
            .expect("the protocol was switched with set_protocol")
    }

    /// The protocol under test, or `None` if `set_protocol` replaced it.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// assert!(StreamHarness::new(()).try_protocol().is_some());
    /// ```
    pub fn try_protocol(&self) -> Option<&P> {
        self.any().downcast_ref::<Checked<P>>().map(Checked::inner)
    }

    /// Run `f` on the protocol (between callbacks, as asyncio's
    /// `get_protocol()` would allow), then run the connection, so what `f`
    /// did through its transport takes effect.
    ///
    /// # Panics
    ///
    /// As [`protocol`](Self::protocol).
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, Protocol, Transport};
    /// # use tokio_transports::testing::StreamHarness;
    /// #[derive(Default)]
    /// struct Greeter(Option<Transport>);
    /// impl BaseProtocol for Greeter {
    ///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
    /// }
    /// impl Protocol for Greeter {}
    /// let mut h = StreamHarness::new(Greeter::default());
    /// h.with_protocol(|p| p.0.as_ref().unwrap().write("hello").unwrap());
    /// assert_eq!(h.written(), "hello");
    /// ```
    pub fn with_protocol<R>(&mut self, f: impl FnOnce(&mut P) -> R) -> R {
        let p = self
            .stepper
            .driver_mut()
            .protocol_mut()
            .downcast_mut::<Checked<P>>()
            .expect("the protocol was switched with set_protocol");
        let r = f(p.inner_mut());
        self.run_pending();
        r
    }

    /// Feed `data` to the transport and run the connection: the protocol
    /// has received it when this returns (in one `data_received`, or one
    /// `get_buffer`/`buffer_updated` pair, unless it is larger than a read
    /// or than the buffer lent). After an end (`feed_eof`, `feed_reset`,
    /// ...) nothing fed is read, as from a socket.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.feed(vec![1u8, 2, 3]);
    /// ```
    pub fn feed(&mut self, data: impl Into<Bytes>) {
        self.peer.feed(data);
        self.run_pending();
    }

    /// The peer's end of file: `eof_received`, then a close unless it
    /// returned `true`.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.feed_eof();
    /// assert!(h.is_closed());
    /// ```
    pub fn feed_eof(&mut self) {
        self.peer.feed_eof();
        self.run_pending();
    }

    /// A reset from the peer (`ECONNRESET` on the next read):
    /// `connection_lost(Some(err))`, no `eof_received`.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.feed_reset();
    /// assert!(h.is_closed());
    /// ```
    pub fn feed_reset(&mut self) {
        self.peer.feed_reset();
        self.run_pending();
    }

    /// The next read fails with `err`.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.feed_error(std::io::Error::other("disk on fire"));
    /// assert!(h.is_closed());
    /// ```
    pub fn feed_error(&mut self, err: io::Error) {
        self.peer.feed_error(err);
        self.run_pending();
    }

    /// The peer closes its socket: an end of file to read, and every later
    /// write fails with a broken pipe.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.close_from_peer();
    /// assert!(h.is_closed());
    /// ```
    pub fn close_from_peer(&mut self) {
        self.peer.fail_writes(io::ErrorKind::BrokenPipe);
        self.peer.feed_eof();
        self.run_pending();
    }

    /// Everything the transport wrote so far, in order and whole (after
    /// running what is pending).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.transport().write("a").unwrap();
    /// h.transport().writelines(["b", "c"]).unwrap();
    /// assert_eq!(h.written(), "abc");
    /// ```
    pub fn written(&mut self) -> Bytes {
        self.run_pending();
        self.peer.written()
    }

    /// What the transport wrote since the last `take_written`.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.transport().write("a").unwrap();
    /// assert_eq!(h.take_written(), "a");
    /// h.transport().write("b").unwrap();
    /// assert_eq!(h.take_written(), "b");
    /// assert_eq!(h.written(), "ab");
    /// ```
    pub fn take_written(&mut self) -> Bytes {
        self.run_pending();
        self.peer.take_written()
    }

    /// Whether the peer reads what is written (`true` at the start). With
    /// `false`, writes stay in the transport's buffer: past the high
    /// watermark the protocol gets `pause_writing`, and `resume_writing`
    /// once the peer reads again and the buffer drains to the low one.
    ///
    /// ```
    /// # use tokio_transports::WriteLimits;
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::with_limits((), WriteLimits::new(Some(4), Some(2)).unwrap());
    /// h.set_peer_reading(false);
    /// h.transport().write("12345").unwrap();
    /// h.run_pending();
    /// assert!(h.is_writing_paused());
    /// h.set_peer_reading(true);
    /// assert!(!h.is_writing_paused());
    /// assert_eq!(h.written(), "12345");
    /// ```
    pub fn set_peer_reading(&mut self, reading: bool) {
        self.peer.set_peer_reading(reading);
        self.run_pending();
    }

    /// Let exactly `n` more bytes through to the peer (see [`Peer::allow`]).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.set_peer_reading(false);
    /// h.transport().write("abcdef").unwrap();
    /// h.allow(2);
    /// assert_eq!(h.written(), "ab");
    /// assert_eq!(h.transport().get_write_buffer_size(), 4);
    /// ```
    pub fn allow(&mut self, n: usize) {
        self.peer.allow(n);
        self.run_pending();
    }

    /// Whether the protocol was last told `pause_writing` (not yet
    /// `resume_writing`).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// assert!(!StreamHarness::new(()).is_writing_paused());
    /// ```
    pub fn is_writing_paused(&self) -> bool {
        self.check.is_writing_paused()
    }

    /// Whether reading is paused (`pause_reading` without `resume_reading`
    /// yet; not an end of file or a close).
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.transport().pause_reading();
    /// assert!(h.is_reading_paused());
    /// h.feed("held");
    /// h.transport().resume_reading();
    /// assert!(!h.is_reading_paused());
    /// ```
    pub fn is_reading_paused(&self) -> bool {
        self.transport.shared.has(READ_PAUSED) && !self.stepper.is_done()
    }

    /// Whether the connection is over: `connection_lost` has run.
    ///
    /// ```
    /// # use tokio_transports::testing::StreamHarness;
    /// let mut h = StreamHarness::new(());
    /// h.transport().close();
    /// h.run_pending();
    /// assert!(h.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.stepper.is_done()
    }
}
