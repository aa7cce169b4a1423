//! The callback log: [`Event`] (one recorded callback), [`LostInfo`] (what
//! `connection_lost` got, comparable), and [`Log`] (one connection's events,
//! shared between the protocol that writes it and the test that reads it,
//! with waits for what real transports deliver later).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::{CallbackPanicked, Transport};

/// How long a [`Log`] wait lasts before it panics (a guard against a test
/// that would hang, not a timing assumption).
///
/// ```
/// assert_eq!(tokio_transports::testing::WAIT_TIMEOUT.as_secs(), 10);
/// ```
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What `connection_lost` got, made comparable.
///
/// ```
/// use tokio_transports::testing::LostInfo;
/// let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// let info = LostInfo::from_err(&e);
/// assert_eq!(info.kind, std::io::ErrorKind::ConnectionReset);
/// assert!(info.panicked.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostInfo {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The error's message (`to_string()`).
    pub message: String,
    /// The payload, if the error is a [`CallbackPanicked`].
    pub panicked: Option<CallbackPanicked>,
}

impl LostInfo {
    /// Capture `e`.
    ///
    /// ```
    /// use tokio_transports::testing::LostInfo;
    /// let info = LostInfo::from_err(&std::io::Error::other("boom"));
    /// assert_eq!(info.message, "boom");
    /// ```
    pub fn from_err(e: &io::Error) -> Self {
        LostInfo {
            kind: e.kind(),
            message: e.to_string(),
            panicked: e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<CallbackPanicked>())
                .cloned(),
        }
    }
}

/// One recorded stream callback (or a marker a test pushed).
///
/// Its `Debug` output shows lengths, not contents, so a failing assertion
/// over a long log stays readable.
///
/// ```
/// use tokio_transports::testing::Event;
/// assert_eq!(format!("{:?}", Event::Data("abc".into())), "Data(3)");
/// assert!(Event::Data("x".into()).is_data());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// `connection_made`.
    Made,
    /// `data_received`, with its bytes.
    Data(Bytes),
    /// `get_buffer(sizehint)`.
    GetBuffer(usize),
    /// `buffer_updated(n)`, with the `n` bytes the transport appended.
    BufferUpdated {
        /// The count the transport passed.
        n: usize,
        /// The bytes it appended.
        data: Bytes,
    },
    /// `eof_received`.
    Eof,
    /// `pause_writing`, with the write-buffer size seen inside the callback.
    PauseWriting(usize),
    /// `resume_writing`, with the write-buffer size seen inside the callback.
    ResumeWriting(usize),
    /// `connection_lost`.
    Lost(Option<LostInfo>),
    /// A marker pushed by the test (not a callback).
    Mark(&'static str),
    /// An invariant the recorder checks inside a callback was broken.
    Violation(String),
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Made => f.write_str("Made"),
            Event::Data(d) => write!(f, "Data({})", d.len()),
            Event::GetBuffer(h) => write!(f, "GetBuffer(hint={h})"),
            Event::BufferUpdated { n, .. } => write!(f, "BufferUpdated({n})"),
            Event::Eof => f.write_str("Eof"),
            Event::PauseWriting(s) => write!(f, "PauseWriting(size={s})"),
            Event::ResumeWriting(s) => write!(f, "ResumeWriting(size={s})"),
            Event::Lost(e) => write!(f, "Lost({e:?})"),
            Event::Mark(m) => write!(f, "Mark({m})"),
            Event::Violation(v) => write!(f, "Violation({v})"),
        }
    }
}

impl Event {
    /// `Data` or `BufferUpdated`.
    ///
    /// ```
    /// # use tokio_transports::testing::Event;
    /// assert!(!Event::Eof.is_data());
    /// ```
    pub fn is_data(&self) -> bool {
        matches!(self, Event::Data(_) | Event::BufferUpdated { .. })
    }

    /// `PauseWriting`.
    ///
    /// ```
    /// # use tokio_transports::testing::Event;
    /// assert!(Event::PauseWriting(0).is_pw());
    /// ```
    pub fn is_pw(&self) -> bool {
        matches!(self, Event::PauseWriting(_))
    }

    /// `ResumeWriting`.
    ///
    /// ```
    /// # use tokio_transports::testing::Event;
    /// assert!(Event::ResumeWriting(0).is_rw());
    /// ```
    pub fn is_rw(&self) -> bool {
        matches!(self, Event::ResumeWriting(_))
    }

    /// `Lost`.
    ///
    /// ```
    /// # use tokio_transports::testing::Event;
    /// assert!(Event::Lost(None).is_lost());
    /// ```
    pub fn is_lost(&self) -> bool {
        matches!(self, Event::Lost(_))
    }
}

/// How many bytes `events` received (`Data` and `BufferUpdated`).
///
/// ```
/// use tokio_transports::testing::{Event, received_len};
/// assert_eq!(received_len(&[Event::Made, Event::Data("ab".into())]), 2);
/// ```
pub fn received_len(events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| match e {
            Event::Data(d) => d.len(),
            Event::BufferUpdated { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}

/// Every byte `events` received, in order.
///
/// ```
/// use tokio_transports::testing::{Event, received_in};
/// let evs = [Event::Data("ab".into()), Event::BufferUpdated { n: 1, data: "c".into() }];
/// assert_eq!(received_in(&evs), b"abc");
/// ```
pub fn received_in(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(received_len(events));
    for e in events {
        match e {
            Event::Data(d) => out.extend_from_slice(d),
            Event::BufferUpdated { data, .. } => out.extend_from_slice(data),
            _ => {}
        }
    }
    out
}

struct LogInner {
    name: &'static str,
    events: Mutex<Vec<Event>>,
    changed: Notify,
    transport: Mutex<Option<Transport>>,
}

/// One connection's callback log, cheap to clone: the protocol side pushes
/// (a [`Recorder`](super::Recorder) does), the test reads, from any thread.
/// One log may outlive several protocols of a connection that switched with
/// `set_protocol`.
///
/// ```
/// use tokio_transports::testing::{Event, Log};
/// let log = Log::new("client");
/// log.push(Event::Made);
/// log.mark("after connect");
/// assert_eq!(log.events(), [Event::Made, Event::Mark("after connect")]);
/// assert_eq!(log.count(|e| *e == Event::Made), 1);
/// ```
#[derive(Clone)]
pub struct Log(Arc<LogInner>);

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Log({}: {:?})", self.0.name, self.events())
    }
}

impl Log {
    /// An empty log; `name` appears in its messages.
    ///
    /// ```
    /// # use tokio_transports::testing::Log;
    /// assert_eq!(Log::new("server").name(), "server");
    /// ```
    pub fn new(name: &'static str) -> Self {
        Log(Arc::new(LogInner {
            name,
            events: Mutex::new(Vec::new()),
            changed: Notify::new(),
            transport: Mutex::new(None),
        }))
    }

    /// The name given to [`Log::new`].
    ///
    /// ```
    /// # use tokio_transports::testing::Log;
    /// assert_eq!(Log::new("x").name(), "x");
    /// ```
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        // A test that panicked while holding the lock leaves a usable log.
        self.0.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append an event and wake the waiters.
    ///
    /// ```
    /// # use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// log.push(Event::Eof);
    /// assert_eq!(log.events().len(), 1);
    /// ```
    pub fn push(&self, ev: Event) {
        self.lock().push(ev);
        self.0.changed.notify_waiters();
    }

    /// Push a test marker ([`Event::Mark`]).
    ///
    /// ```
    /// # use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// log.mark("here");
    /// assert_eq!(log.events(), [Event::Mark("here")]);
    /// ```
    pub fn mark(&self, m: &'static str) {
        self.push(Event::Mark(m));
    }

    /// A copy of every event so far.
    ///
    /// ```
    /// # use tokio_transports::testing::Log;
    /// assert!(Log::new("x").events().is_empty());
    /// ```
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// How many events match `pred`.
    ///
    /// ```
    /// # use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// log.push(Event::PauseWriting(1));
    /// assert_eq!(log.count(Event::is_pw), 1);
    /// ```
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.lock().iter().filter(|e| pred(e)).count()
    }

    /// Store the transport `connection_made` got (for [`Log::transport`]).
    pub(crate) fn set_transport(&self, t: &Transport) {
        *self.0.transport.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
    }

    /// The transport `connection_made` got.
    ///
    /// # Panics
    ///
    /// If `connection_made` has not run (use [`Log::wait_made`] to wait).
    ///
    /// ```should_panic
    /// # use tokio_transports::testing::Log;
    /// Log::new("x").transport(); // connection_made has not run
    /// ```
    pub fn transport(&self) -> Transport {
        self.0
            .transport
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| panic!("connection_made has not run on {}", self.0.name))
    }

    /// Every byte received so far (`data_received` and `buffer_updated`),
    /// in order.
    ///
    /// ```
    /// # use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// log.push(Event::Data("ab".into()));
    /// assert_eq!(log.received(), b"ab");
    /// ```
    pub fn received(&self) -> Vec<u8> {
        received_in(&self.lock())
    }

    /// `Some(exc)` once `connection_lost(exc)` ran.
    ///
    /// ```
    /// # use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// assert_eq!(log.lost(), None);
    /// log.push(Event::Lost(None));
    /// assert_eq!(log.lost(), Some(None));
    /// ```
    pub fn lost(&self) -> Option<Option<LostInfo>> {
        self.lock().iter().find_map(|e| match e {
            Event::Lost(x) => Some(x.clone()),
            _ => None,
        })
    }

    /// Wait until `pred` holds on the events; returns them. `what` names
    /// the wait in the panic message.
    ///
    /// # Panics
    ///
    /// After [`WAIT_TIMEOUT`] (a guard against hanging). Under paused tokio
    /// time the timeout advances with the clock: with a
    /// [`StreamHarness`](super::StreamHarness) nothing needs waiting for.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// let l = log.clone();
    /// tokio::spawn(async move { l.push(Event::Eof) });
    /// log.wait_until("eof", |e| e.contains(&Event::Eof)).await;
    /// # }
    /// ```
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let wait = async {
            loop {
                let notified = self.0.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let evs = self.lock();
                    if pred(&evs) {
                        return evs.clone();
                    }
                }
                notified.await;
            }
        };
        match tokio::time::timeout(WAIT_TIMEOUT, wait).await {
            Ok(evs) => evs,
            Err(_) => panic!(
                "timed out waiting for {what} on {}: {:?}",
                self.0.name,
                self.events()
            ),
        }
    }

    /// Wait for `connection_made`; returns the transport it got.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let rec = Recorder::new(Log::new("io"), RecorderConfig::default());
    /// let log = rec.log();
    /// let (a, _b) = tokio::io::duplex(64);
    /// tokio_transports::connect_io(|| rec, a).await?;
    /// let t = log.wait_made().await;
    /// assert!(!t.is_closing());
    /// # Ok(()) }
    /// ```
    pub async fn wait_made(&self) -> Transport {
        self.wait_until("connection_made", |e| e.contains(&Event::Made))
            .await;
        self.transport()
    }

    /// Wait for `connection_lost`; returns what it got.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let rec = Recorder::new(Log::new("io"), RecorderConfig::default());
    /// let log = rec.log();
    /// let (a, b) = tokio::io::duplex(64);
    /// tokio_transports::connect_io(|| rec, a).await?;
    /// drop(b); // the peer's end of file: eof_received, then the close
    /// assert_eq!(log.wait_lost().await, None);
    /// # Ok(()) }
    /// ```
    pub async fn wait_lost(&self) -> Option<LostInfo> {
        self.wait_until("connection_lost", |e| e.iter().any(Event::is_lost))
            .await;
        self.lost().flatten()
    }

    /// Wait until at least `n` bytes were received; returns all received
    /// bytes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let rec = Recorder::new(Log::new("io"), RecorderConfig::default());
    /// let log = rec.log();
    /// let (a, mut b) = tokio::io::duplex(64);
    /// tokio_transports::connect_io(|| rec, a).await?;
    /// b.write_all(b"hello").await?;
    /// assert_eq!(log.wait_received(5).await, b"hello");
    /// # Ok(()) }
    /// ```
    pub async fn wait_received(&self, n: usize) -> Vec<u8> {
        let evs = self
            .wait_until(&format!("{n} bytes received"), |e| received_len(e) >= n)
            .await;
        received_in(&evs)
    }

    /// Wait until some event matches `pred`; returns all events.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tokio_transports::testing::{Event, Log};
    /// let log = Log::new("x");
    /// log.push(Event::PauseWriting(9));
    /// log.wait_event("a pause", Event::is_pw).await;
    /// # }
    /// ```
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.wait_until(what, |e| e.iter().any(&pred)).await
    }
}
