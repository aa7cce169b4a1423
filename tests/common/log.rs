//! The event log: [`Ev`] (one recorded callback), [`LostInfo`], and [`Log`]
//! (one connection's events, with the helpers that wait on them), plus the
//! free functions over event slices ([`received_in`], [`received_len`],
//! [`index_of`]).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_transports::{CallbackPanicked, Transport};

use super::guard;

/// What `connection_lost` got, made comparable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostInfo {
    pub kind: io::ErrorKind,
    pub message: String,
    /// The payload if the error is a [`CallbackPanicked`].
    pub panicked: Option<CallbackPanicked>,
}

impl LostInfo {
    pub(super) fn from_err(e: &io::Error) -> Self {
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

/// One recorded callback (or a test marker).
#[derive(Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(Bytes),
    GetBuffer(usize),
    BufferUpdated {
        n: usize,
        data: Bytes,
    },
    Eof,
    /// `pause_writing`, with the write-buffer size seen inside the callback.
    PauseWriting(usize),
    /// `resume_writing`, with the write-buffer size seen inside the callback.
    ResumeWriting(usize),
    Lost(Option<LostInfo>),
    /// A marker pushed by the test (not a callback).
    Mark(&'static str),
    /// An invariant the recorder checks inside a callback was broken.
    Violation(String),
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Made => f.write_str("Made"),
            Ev::Data(d) => write!(f, "Data({})", d.len()),
            Ev::GetBuffer(h) => write!(f, "GetBuffer(hint={h})"),
            Ev::BufferUpdated { n, .. } => write!(f, "BufferUpdated({n})"),
            Ev::Eof => f.write_str("Eof"),
            Ev::PauseWriting(s) => write!(f, "PauseWriting(size={s})"),
            Ev::ResumeWriting(s) => write!(f, "ResumeWriting(size={s})"),
            Ev::Lost(e) => write!(f, "Lost({e:?})"),
            Ev::Mark(m) => write!(f, "Mark({m})"),
            Ev::Violation(v) => write!(f, "Violation({v})"),
        }
    }
}

impl Ev {
    pub fn is_data(&self) -> bool {
        matches!(self, Ev::Data(_) | Ev::BufferUpdated { .. })
    }
    pub fn is_pw(&self) -> bool {
        matches!(self, Ev::PauseWriting(_))
    }
    pub fn is_rw(&self) -> bool {
        matches!(self, Ev::ResumeWriting(_))
    }
    pub fn is_lost(&self) -> bool {
        matches!(self, Ev::Lost(_))
    }
}

struct LogInner {
    name: &'static str,
    events: Mutex<Vec<Ev>>,
    changed: Notify,
    transport: Mutex<Option<Transport>>,
}

/// One connection's callback log (shared by every protocol the connection
/// had, when it switched with `set_protocol`).
#[derive(Clone)]
pub struct Log(Arc<LogInner>);

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Log({}: {:?})", self.0.name, self.events())
    }
}

impl Log {
    pub fn new(name: &'static str) -> Self {
        Log(Arc::new(LogInner {
            name,
            events: Mutex::new(Vec::new()),
            changed: Notify::new(),
            transport: Mutex::new(None),
        }))
    }

    pub fn name(&self) -> &'static str {
        self.0.name
    }

    pub fn push(&self, ev: Ev) {
        self.0.events.lock().unwrap().push(ev);
        self.0.changed.notify_waiters();
    }

    /// Push a test marker.
    pub fn mark(&self, m: &'static str) {
        self.push(Ev::Mark(m));
    }

    pub fn events(&self) -> Vec<Ev> {
        self.0.events.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.0
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| pred(e))
            .count()
    }

    /// Store the transport `connection_made` got (for [`Log::transport`]).
    pub(super) fn set_transport(&self, t: &Transport) {
        *self.0.transport.lock().unwrap() = Some(t.clone());
    }

    /// The transport `connection_made` got.
    pub fn transport(&self) -> Transport {
        self.0
            .transport
            .lock()
            .unwrap()
            .clone()
            .expect("connection_made has not run")
    }

    /// Every byte received so far (`data_received` and `buffer_updated`), in order.
    pub fn received(&self) -> Vec<u8> {
        received_in(&self.events())
    }

    /// `Some(exc)` once `connection_lost(exc)` ran.
    pub fn lost(&self) -> Option<Option<LostInfo>> {
        self.events().into_iter().find_map(|e| match e {
            Ev::Lost(x) => Some(x),
            _ => None,
        })
    }

    /// Wait until `pred` holds on the events; returns them.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Ev]) -> bool) -> Vec<Ev> {
        let what = format!("{what} on {}", self.0.name);
        guard(&what, async {
            loop {
                let notified = self.0.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let evs = self.0.events.lock().unwrap();
                    if pred(&evs) {
                        return evs.clone();
                    }
                }
                notified.await;
            }
        })
        .await
    }

    pub async fn wait_made(&self) -> Transport {
        self.wait_until("connection_made", |e| e.contains(&Ev::Made))
            .await;
        self.transport()
    }

    pub async fn wait_lost(&self) -> Option<LostInfo> {
        self.wait_until("connection_lost", |e| e.iter().any(Ev::is_lost))
            .await;
        self.lost().unwrap()
    }

    /// Wait until at least `n` bytes were received; returns all received bytes.
    pub async fn wait_received(&self, n: usize) -> Vec<u8> {
        let evs = self
            .wait_until(&format!("{n} bytes received"), |e| received_len(e) >= n)
            .await;
        received_in(&evs)
    }

    pub async fn wait_event(&self, what: &str, pred: impl Fn(&Ev) -> bool) -> Vec<Ev> {
        self.wait_until(what, |e| e.iter().any(&pred)).await
    }
}

pub fn received_len(evs: &[Ev]) -> usize {
    evs.iter()
        .map(|e| match e {
            Ev::Data(d) => d.len(),
            Ev::BufferUpdated { data, .. } => data.len(),
            _ => 0,
        })
        .sum()
}

pub fn received_in(evs: &[Ev]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in evs {
        match e {
            Ev::Data(d) => out.extend_from_slice(d),
            Ev::BufferUpdated { data, .. } => out.extend_from_slice(data),
            _ => {}
        }
    }
    out
}

/// Index of the first event matching `pred` (panics if none).
pub fn index_of(evs: &[Ev], pred: impl Fn(&Ev) -> bool) -> usize {
    evs.iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no such event in {evs:?}"))
}
