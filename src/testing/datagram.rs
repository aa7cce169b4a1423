//! [`DatagramHarness`]: one datagram endpoint whose protocol is driven by
//! the crate's real datagram driver and state machine over a scripted
//! socket ([`ScriptedSocket`], crate-private), polled on the test's thread.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use tokio::io::Ready;

use super::checked::{Checked, GrammarCheck};
use super::step::{Stepper, assert_grammar};
use crate::datagram::driver::Driver;
use crate::datagram::handle::{Family, READ_PAUSED, Shared, SharedConfig};
use crate::datagram::socket::{Socket, UDP_RECV_ROOM};
use crate::datagram::state::DatagramState;
use crate::extra::Extra;
use crate::{DatagramProtocol, DatagramTransport, SocketAddress, WriteLimits};

#[derive(Default)]
struct SocketState {
    inbound: VecDeque<io::Result<(Bytes, SocketAddress)>>,
    recv_waker: Option<Waker>,
    sent: Vec<(Bytes, SocketAddress)>,
    taken: usize,
    /// The socket's send buffer is full: sends would block.
    blocked: bool,
    send_waker: Option<Waker>,
}

/// The scripted socket: what the driver receives comes from the test, what
/// it sends is recorded.
struct ScriptedSocket {
    state: Mutex<SocketState>,
    /// Where `send` on a connected socket goes.
    remote: Option<SocketAddress>,
}

impl ScriptedSocket {
    fn lock(&self) -> MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_receiver(st: &mut SocketState) {
        if let Some(w) = st.recv_waker.take() {
            w.wake();
        }
    }

    fn record(&self, data: &[u8], to: SocketAddress) -> io::Result<usize> {
        let mut st = self.lock();
        if st.blocked {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        st.sent.push((Bytes::copy_from_slice(data), to));
        Ok(data.len())
    }
}

impl Socket for ScriptedSocket {
    const RECV_ROOM: usize = UDP_RECV_ROOM;

    fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        if st.inbound.is_empty() {
            st.recv_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        if st.blocked {
            st.send_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn try_recv_into(&self, buf: &mut BytesMut) -> io::Result<(usize, SocketAddress)> {
        match self.lock().inbound.pop_front() {
            Some(Ok((data, from))) => {
                buf.extend_from_slice(&data);
                Ok((data.len(), from))
            }
            Some(Err(e)) => Err(e),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn try_send(&self, data: &[u8]) -> io::Result<usize> {
        let to = self
            .remote
            .clone()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        self.record(data, to)
    }

    fn try_send_to(&self, data: &[u8], to: &SocketAddress) -> io::Result<usize> {
        self.record(data, to.clone())
    }

    async fn readable_or_error(self: Arc<Self>) -> io::Result<Ready> {
        poll_fn(|cx| self.poll_recv_ready(cx)).await?;
        Ok(Ready::READABLE)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    fn clear_error_readiness(&self) {}
}

/// Drives one [`DatagramProtocol`] without a socket, through this crate's
/// own datagram driver and state machine: the protocol gets an ordinary
/// [`DatagramTransport`] in `connection_made`; the test feeds datagrams
/// (and receive errors) and reads back what was sent, with its targets.
/// Each method that feeds or changes something runs the endpoint until it
/// is idle; every callback is checked against the call-order grammar
/// ([`Checked`]) and a breach panics at that step. The endpoint is UDP,
/// bound to `127.0.0.1:9999`.
///
/// ```
/// use tokio_transports::{Bytes, DatagramProtocol, DatagramTransport, SocketAddress};
/// use tokio_transports::testing::DatagramHarness;
///
/// /// The reference's UDP echo server.
/// #[derive(Default)]
/// struct Echo(Option<DatagramTransport>);
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, t: &DatagramTransport) { self.0 = Some(t.clone()); }
///     fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
///         let _ = self.0.as_ref().unwrap().sendto(data, Some(addr));
///     }
/// }
///
/// let mut h = DatagramHarness::new(Echo::default());
/// let client: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
/// h.feed_datagram("ping", client);
/// assert_eq!(h.sent(), [(Bytes::from("ping"), SocketAddress::Inet(client))]);
/// ```
pub struct DatagramHarness<P: 'static> {
    stepper: Stepper<Driver<ScriptedSocket>>,
    sock: Arc<ScriptedSocket>,
    transport: DatagramTransport,
    check: GrammarCheck,
    _protocol: PhantomData<fn() -> P>,
}

impl<P> std::fmt::Debug for DatagramHarness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramHarness")
            .field("closed", &self.stepper.is_done())
            .finish()
    }
}

/// The harness endpoint's own address.
const LOCAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9999);

impl<P: DatagramProtocol> DatagramHarness<P> {
    /// An unconnected endpoint (asyncio's `local_addr=` only) driving
    /// `protocol`: `connection_made` has run when this returns.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let h = DatagramHarness::new(());
    /// assert!(h.transport().peername().is_none());
    /// ```
    pub fn new(protocol: P) -> Self {
        Self::start(protocol, None)
    }

    /// An endpoint connected to `remote` (asyncio's `remote_addr=`):
    /// `sendto(data, None)` goes there.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let remote: std::net::SocketAddr = "10.0.0.1:53".parse().unwrap();
    /// let mut h = DatagramHarness::connected((), remote);
    /// h.transport().sendto("query", None).unwrap();
    /// assert_eq!(h.sent()[0].1, remote.into());
    /// ```
    pub fn connected(protocol: P, remote: SocketAddr) -> Self {
        Self::start(protocol, Some(remote))
    }

    fn start(protocol: P, remote: Option<SocketAddr>) -> Self {
        let checked = Checked::new(protocol);
        let check = checked.check();
        let remote = remote.map(SocketAddress::Inet);
        let sock = Arc::new(ScriptedSocket {
            state: Mutex::new(SocketState::default()),
            remote: remote.clone(),
        });
        let limits = WriteLimits::default();
        let shared = Shared::new(SharedConfig {
            extra: Extra::new(remote.clone(), Some(SocketAddress::Inet(LOCAL)), None),
            limits,
            family: Family::Inet,
            remote: remote.clone(),
            connected: remote.is_some(),
            socket: None,
        });
        let transport = DatagramTransport { shared };
        let (started, _) = oneshot::channel();
        let driver = Driver::new(
            sock.clone(),
            transport.clone(),
            DatagramState::new(limits),
            Box::new(checked),
            started,
        );
        let mut h = DatagramHarness {
            stepper: Stepper::new(driver),
            sock,
            transport,
            check,
            _protocol: PhantomData,
        };
        h.run_pending();
        h
    }
}

impl<P: 'static> DatagramHarness<P> {
    /// Run the endpoint until it is idle.
    ///
    /// # Panics
    ///
    /// If a callback broke the call-order grammar, or the endpoint is
    /// still busy after 100,000 polls.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.transport().close();
    /// h.run_pending();
    /// assert!(h.is_closed());
    /// ```
    pub fn run_pending(&mut self) {
        self.stepper.run();
        assert_grammar(&self.check);
    }

    /// As [`StreamHarness::settle`](super::StreamHarness::settle): run the
    /// endpoint and give the runtime's other tasks turns until both are idle.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// let t = h.transport().clone();
    /// tokio::spawn(async move { t.sendto("x", Some("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap().into())) });
    /// h.settle().await;
    /// assert_eq!(h.sent().len(), 1);
    /// # }
    /// ```
    pub async fn settle(&mut self) {
        let check = self.check.clone();
        self.stepper.settle(|| assert_grammar(&check)).await;
    }

    /// Let `d` of tokio time pass, running the endpoint whenever something
    /// wakes it meanwhile; then [`settle`](Self::settle) (see
    /// [`StreamHarness::advance`](super::StreamHarness::advance)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.advance(std::time::Duration::from_secs(5)).await;
    /// assert!(!h.is_closed());
    /// # }
    /// ```
    pub async fn advance(&mut self, d: Duration) {
        let check = self.check.clone();
        self.stepper.advance(d, || assert_grammar(&check)).await;
    }

    /// The transport the protocol got in `connection_made`.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// assert!(DatagramHarness::new(()).transport().is_reading());
    /// ```
    pub fn transport(&self) -> &DatagramTransport {
        &self.transport
    }

    /// The grammar checker's handle.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// DatagramHarness::new(()).check().assert_ok();
    /// ```
    pub fn check(&self) -> &GrammarCheck {
        &self.check
    }

    /// The protocol under test (also after `connection_lost`).
    ///
    /// # Panics
    ///
    /// If the protocol was switched with `set_protocol`.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let h = DatagramHarness::new(());
    /// let () = *h.protocol();
    /// ```
    pub fn protocol(&self) -> &P {
        self.try_protocol()
            .expect("the protocol was switched with set_protocol")
    }

    /// The protocol under test, or `None` if `set_protocol` replaced it.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// assert!(DatagramHarness::new(()).try_protocol().is_some());
    /// ```
    pub fn try_protocol(&self) -> Option<&P> {
        self.stepper
            .driver()
            .protocol()
            .as_any()
            .downcast_ref::<Checked<P>>()
            .map(Checked::inner)
    }

    /// Run `f` on the protocol, then run the endpoint.
    ///
    /// # Panics
    ///
    /// As [`protocol`](Self::protocol).
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.with_protocol(|()| ());
    /// ```
    pub fn with_protocol<R>(&mut self, f: impl FnOnce(&mut P) -> R) -> R {
        let p = self
            .stepper
            .driver_mut()
            .protocol_mut()
            .as_any_mut()
            .downcast_mut::<Checked<P>>()
            .expect("the protocol was switched with set_protocol");
        let r = f(p.inner_mut());
        self.run_pending();
        r
    }

    /// A datagram from `from` arrives, whole, in one `datagram_received`
    /// (empty ones too).
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.feed_datagram("hi", "127.0.0.1:4000".parse::<std::net::SocketAddr>().unwrap());
    /// ```
    pub fn feed_datagram(&mut self, data: impl Into<Bytes>, from: impl Into<SocketAddress>) {
        {
            let mut st = self.sock.lock();
            st.inbound.push_back(Ok((data.into(), from.into())));
            ScriptedSocket::wake_receiver(&mut st);
        }
        self.run_pending();
    }

    /// The next receive fails with `err` (an ICMP error, say):
    /// `error_received(err)`; the endpoint stays open.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.feed_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    /// assert!(!h.is_closed());
    /// ```
    pub fn feed_error(&mut self, err: io::Error) {
        {
            let mut st = self.sock.lock();
            st.inbound.push_back(Err(err));
            ScriptedSocket::wake_receiver(&mut st);
        }
        self.run_pending();
    }

    /// Every datagram sent so far, with its target, in order.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// assert!(DatagramHarness::new(()).sent().is_empty());
    /// ```
    pub fn sent(&mut self) -> Vec<(Bytes, SocketAddress)> {
        self.run_pending();
        self.sock.lock().sent.clone()
    }

    /// The datagrams sent since the last `take_sent`.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// let to: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    /// h.transport().sendto("a", Some(to.into())).unwrap();
    /// assert_eq!(h.take_sent().len(), 1);
    /// assert!(h.take_sent().is_empty());
    /// ```
    pub fn take_sent(&mut self) -> Vec<(Bytes, SocketAddress)> {
        self.run_pending();
        let mut st = self.sock.lock();
        let out = st.sent[st.taken..].to_vec();
        st.taken = st.sent.len();
        out
    }

    /// `true`: the socket's send buffer is full, so sends are queued in
    /// the transport (past the high watermark: `pause_writing`); `false`
    /// (the start): it takes every datagram.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// let to: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    /// h.set_send_blocked(true);
    /// h.transport().sendto("queued", Some(to.into())).unwrap();
    /// assert!(h.sent().is_empty());
    /// h.set_send_blocked(false);
    /// assert_eq!(h.sent().len(), 1);
    /// ```
    pub fn set_send_blocked(&mut self, blocked: bool) {
        {
            let mut st = self.sock.lock();
            st.blocked = blocked;
            if let (false, Some(w)) = (blocked, st.send_waker.take()) {
                w.wake();
            }
        }
        self.run_pending();
    }

    /// Whether the protocol was last told `pause_writing`.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// assert!(!DatagramHarness::new(()).is_writing_paused());
    /// ```
    pub fn is_writing_paused(&self) -> bool {
        self.check.is_writing_paused()
    }

    /// Whether reading is paused (`pause_reading`, not resumed yet).
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// let mut h = DatagramHarness::new(());
    /// h.transport().pause_reading();
    /// assert!(h.is_reading_paused());
    /// ```
    pub fn is_reading_paused(&self) -> bool {
        self.transport.shared.has(READ_PAUSED) && !self.stepper.is_done()
    }

    /// Whether `connection_lost` has run.
    ///
    /// ```
    /// # use tokio_transports::testing::DatagramHarness;
    /// assert!(!DatagramHarness::new(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.stepper.is_done()
    }
}
