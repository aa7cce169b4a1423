//! [`Checked`]: a protocol wrapper that checks the call-order grammar on
//! every callback before forwarding it, and [`GrammarCheck`], the handle
//! that reports what it found. Works on real transports and in the
//! harnesses (which wrap every protocol in it).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};

use super::grammar::{Call, Grammar};
use crate::{
    BaseProtocol, BufferedProtocol, DatagramProtocol, DatagramTransport, Protocol, SocketAddress,
    Transport,
};

#[derive(Default)]
struct CheckState {
    grammar: Grammar,
    violations: Vec<String>,
    /// The spare room of the buffer the last `get_buffer` lent.
    spare: Option<usize>,
}

/// What a [`Checked`] protocol saw: the breaches of the call-order grammar
/// (recorded, not panicked, since a panic inside a callback is the
/// transport's to handle) and the writing-paused state. Cheap to clone; read
/// it from any thread.
///
/// ```
/// use tokio_transports::testing::Checked;
/// let checked = Checked::new(());
/// let check = checked.check();
/// assert!(check.violations().is_empty());
/// assert!(!check.is_writing_paused());
/// ```
#[derive(Clone, Default)]
pub struct GrammarCheck(Arc<Mutex<CheckState>>);

impl fmt::Debug for GrammarCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrammarCheck")
            .field("violations", &self.violations())
            .finish()
    }
}

impl GrammarCheck {
    fn lock(&self) -> MutexGuard<'_, CheckState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on(&self, call: Call) {
        let mut st = self.lock();
        if let Err(v) = st.grammar.on(call) {
            st.violations.push(v);
        }
    }

    /// Every breach so far, in order, each naming its rule.
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, Protocol};
    /// use tokio_transports::testing::Checked;
    /// let mut p = Checked::new(());
    /// Protocol::data_received(&mut p, "too early".into());
    /// assert_eq!(p.check().violations(), ["data_received before connection_made (callback #0)"]);
    /// ```
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Panic, listing them, if there was any breach.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// Checked::new(()).check().assert_ok();
    /// ```
    pub fn assert_ok(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "callback contract broken: {v:?}");
    }

    /// [`assert_ok`](Self::assert_ok), and `connection_lost` has run: the
    /// check for a connection that is over.
    ///
    /// ```should_panic
    /// # use tokio_transports::testing::Checked;
    /// Checked::new(()).check().assert_complete(); // connection_made never ran
    /// ```
    pub fn assert_complete(&self) {
        self.assert_ok();
        if let Err(v) = self.lock().grammar.finish() {
            panic!("callback contract broken: {v}");
        }
    }

    /// Whether the protocol was last told `pause_writing` (and not yet
    /// `resume_writing`).
    ///
    /// ```
    /// use tokio_transports::BaseProtocol;
    /// # use tokio_transports::testing::Checked;
    /// let mut p = Checked::new(());
    /// p.pause_writing();
    /// assert!(p.check().is_writing_paused());
    /// ```
    pub fn is_writing_paused(&self) -> bool {
        self.lock().grammar.writing_paused()
    }

    /// Whether `connection_lost` has run.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// assert!(!Checked::new(()).check().is_lost());
    /// ```
    pub fn is_lost(&self) -> bool {
        self.lock().grammar.is_lost()
    }
}

/// Wraps a protocol (stream, buffered or datagram) and checks every
/// callback against the call-order grammar before forwarding it:
/// `connection_made` first and once, `connection_lost` last and once,
/// `eof_received` at most once and never followed by data, no empty
/// `data_received`, `buffer_updated(n)` right after a `get_buffer` whose
/// buffer had room for `n > 0` bytes, `pause_writing`/`resume_writing`
/// alternating, pause first. Breaches are recorded in its [`GrammarCheck`].
///
/// Use it on a real transport as on a harness (which wraps every protocol
/// in one and panics at the step that broke a rule):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::testing::Checked;
/// let p = Checked::new(());
/// let check = p.check();
/// let (a, b) = tokio::io::duplex(64);
/// let t = tokio_transports::connect_io(move || p, a).await?;
/// drop(b);
/// t.closed().await;
/// check.assert_complete();
/// # Ok(()) }
/// ```
///
/// A [`BufferedProtocol`] is wrapped inside [`Buffered`](crate::Buffered):
/// `Buffered(Checked::new(my_buffered_protocol))`.
pub struct Checked<P> {
    inner: P,
    check: GrammarCheck,
}

impl<P> Checked<P> {
    /// Wrap `inner`.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// let p = Checked::new(5u8);
    /// assert_eq!(*p.inner(), 5);
    /// ```
    pub fn new(inner: P) -> Self {
        Checked {
            inner,
            check: GrammarCheck::default(),
        }
    }

    /// The handle reporting what this wrapper found.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// let check = Checked::new(()).check();
    /// check.assert_ok();
    /// ```
    pub fn check(&self) -> GrammarCheck {
        self.check.clone()
    }

    /// The wrapped protocol.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// assert_eq!(Checked::new("p").inner(), &"p");
    /// ```
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped protocol, mutably.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// let mut p = Checked::new(1u32);
    /// *p.inner_mut() += 1;
    /// assert_eq!(p.into_inner(), 2);
    /// ```
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Unwrap.
    ///
    /// ```
    /// # use tokio_transports::testing::Checked;
    /// assert_eq!(Checked::new(3i8).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P: BaseProtocol> BaseProtocol for Checked<P> {
    fn connection_made(&mut self, transport: &Transport) {
        self.check.on(Call::Made);
        self.inner.connection_made(transport);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.check.on(Call::Lost);
        self.inner.connection_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.check.on(Call::PauseWriting);
        BaseProtocol::pause_writing(&mut self.inner);
    }

    fn resume_writing(&mut self) {
        self.check.on(Call::ResumeWriting);
        BaseProtocol::resume_writing(&mut self.inner);
    }
}

impl<P: Protocol> Protocol for Checked<P> {
    fn data_received(&mut self, data: Bytes) {
        self.check.on(Call::Data(data.len()));
        self.inner.data_received(data);
    }

    fn eof_received(&mut self) -> bool {
        self.check.on(Call::Eof);
        Protocol::eof_received(&mut self.inner)
    }
}

impl<P: BufferedProtocol> BufferedProtocol for Checked<P> {
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
        self.check.on(Call::GetBuffer);
        let buf = self.inner.get_buffer(sizehint);
        self.check.lock().spare = Some(buf.capacity() - buf.len());
        buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        let spare = self.check.lock().spare.take();
        self.check.on(Call::BufferUpdated {
            n: nbytes,
            spare_ok: spare.is_some_and(|s| nbytes <= s),
        });
        self.inner.buffer_updated(nbytes);
    }

    fn eof_received(&mut self) -> bool {
        self.check.on(Call::Eof);
        BufferedProtocol::eof_received(&mut self.inner)
    }
}

impl<P: DatagramProtocol> DatagramProtocol for Checked<P> {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.check.on(Call::Made);
        DatagramProtocol::connection_made(&mut self.inner, transport);
    }

    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        self.check.on(Call::Datagram);
        self.inner.datagram_received(data, addr);
    }

    fn error_received(&mut self, exc: io::Error) {
        self.check.on(Call::ErrorReceived);
        self.inner.error_received(exc);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.check.on(Call::Lost);
        DatagramProtocol::connection_lost(&mut self.inner, exc);
    }

    fn pause_writing(&mut self) {
        self.check.on(Call::PauseWriting);
        DatagramProtocol::pause_writing(&mut self.inner);
    }

    fn resume_writing(&mut self) {
        self.check.on(Call::ResumeWriting);
        DatagramProtocol::resume_writing(&mut self.inner);
    }
}
