//! [`Recorder`]: a protocol, streaming and buffered at once, that logs every
//! callback into a [`Log`] and checks, inside the callbacks, what only the
//! protocol can see (the buffer a `BufferedProtocol` lent); its
//! [`RecorderConfig`] (echo, what `eof_received` returns, the buffer's
//! shape, a [`Hook`] run inside each callback).

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::log::{Event, Log, LostInfo};
use crate::{BaseProtocol, BufferedProtocol, Protocol, Transport};

/// Runs inside a callback, after its event was logged, with the transport
/// (so it may write, pause or close from the callback, as a protocol would).
///
/// ```
/// use std::sync::Arc;
/// use tokio_transports::testing::{Event, Hook, RecorderConfig};
/// let pause_on_data: Hook = Arc::new(|t, ev, _log| {
///     if ev.is_data() { t.pause_reading(); }
/// });
/// let cfg = RecorderConfig { hook: Some(pause_on_data), ..RecorderConfig::default() };
/// # let _ = cfg;
/// ```
pub type Hook = Arc<dyn Fn(&Transport, &Event, &Log) + Send + Sync>;

/// How a [`Recorder`] behaves.
///
/// ```
/// use tokio_transports::testing::RecorderConfig;
/// let cfg = RecorderConfig::echo().keep_open().buf_cap(16);
/// assert!(cfg.echo && cfg.keep_open_on_eof && cfg.buf_cap == 16);
/// ```
#[derive(Clone)]
pub struct RecorderConfig {
    /// Write every received chunk back.
    pub echo: bool,
    /// What `eof_received` returns.
    pub keep_open_on_eof: bool,
    /// Capacity of the buffer `get_buffer` returns (0: an empty buffer).
    pub buf_cap: usize,
    /// Keep received bytes in the `get_buffer` buffer (growing it by
    /// `buf_cap` when full) instead of taking them out after each update;
    /// checks that the transport only ever appends.
    pub keep_buffer: bool,
    /// Run inside each callback, after its event is logged.
    pub hook: Option<Hook>,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            echo: false,
            keep_open_on_eof: false,
            buf_cap: 64 * 1024,
            keep_buffer: false,
            hook: None,
        }
    }
}

impl RecorderConfig {
    /// The default, echoing what it receives.
    ///
    /// ```
    /// # use tokio_transports::testing::RecorderConfig;
    /// assert!(RecorderConfig::echo().echo);
    /// ```
    pub fn echo() -> Self {
        RecorderConfig {
            echo: true,
            ..RecorderConfig::default()
        }
    }

    /// `eof_received` returns `true` (the transport stays open for writing).
    ///
    /// ```
    /// # use tokio_transports::testing::RecorderConfig;
    /// assert!(RecorderConfig::default().keep_open().keep_open_on_eof);
    /// ```
    pub fn keep_open(mut self) -> Self {
        self.keep_open_on_eof = true;
        self
    }

    /// The capacity of the buffer `get_buffer` returns.
    ///
    /// ```
    /// # use tokio_transports::testing::RecorderConfig;
    /// assert_eq!(RecorderConfig::default().buf_cap(7).buf_cap, 7);
    /// ```
    pub fn buf_cap(mut self, n: usize) -> Self {
        self.buf_cap = n;
        self
    }

    /// See [`RecorderConfig::keep_buffer`](Self#structfield.keep_buffer).
    ///
    /// ```
    /// # use tokio_transports::testing::RecorderConfig;
    /// assert!(RecorderConfig::default().keep_buffer().keep_buffer);
    /// ```
    pub fn keep_buffer(mut self) -> Self {
        self.keep_buffer = true;
        self
    }

    /// Run `f` inside each callback, after its event is logged.
    ///
    /// ```
    /// use tokio_transports::testing::{Event, RecorderConfig};
    /// // Close as soon as anything arrives.
    /// let cfg = RecorderConfig::default().hook(|t, ev, _log| {
    ///     if ev.is_data() { t.close(); }
    /// });
    /// assert!(cfg.hook.is_some());
    /// ```
    pub fn hook(mut self, f: impl Fn(&Transport, &Event, &Log) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(f));
        self
    }
}

/// A protocol that records every callback into a [`Log`]. It implements
/// both [`Protocol`] and [`BufferedProtocol`]: pass it as is, or wrapped in
/// [`Buffered`](crate::Buffered). Works on any transport, real or in a
/// [`StreamHarness`](super::StreamHarness); check a finished log with
/// [`check_grammar`](super::check_grammar).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// use tokio_transports::testing::{Event, Log, Recorder, RecorderConfig, check_grammar};
/// let log = Log::new("io");
/// let rec = Recorder::new(log.clone(), RecorderConfig::echo());
/// let (a, mut b) = tokio::io::duplex(64);
/// tokio_transports::connect_io(|| rec, a).await?;
/// b.write_all(b"ping").await?;
/// b.shutdown().await?;
/// log.wait_lost().await;
/// assert_eq!(log.received(), b"ping");
/// check_grammar(&log.events());
/// # Ok(()) }
/// ```
pub struct Recorder {
    log: Log,
    cfg: RecorderConfig,
    transport: Option<Transport>,
    buf: BytesMut,
    /// Buffer length and spare room when `get_buffer` returned.
    before: Option<(usize, usize)>,
    /// With `keep_buffer`: what the buffer must hold.
    shadow: Vec<u8>,
}

impl Recorder {
    /// A recorder writing into `log`.
    ///
    /// ```
    /// use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let rec = Recorder::new(Log::new("x"), RecorderConfig::default());
    /// assert_eq!(rec.log().name(), "x");
    /// ```
    pub fn new(log: Log, cfg: RecorderConfig) -> Self {
        Recorder {
            log,
            cfg,
            transport: None,
            buf: BytesMut::new(),
            before: None,
            shadow: Vec::new(),
        }
    }

    /// A protocol to switch to with `set_protocol`: it logs into the same
    /// log and already knows the transport (it gets no `connection_made`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let log = Log::new("x");
    /// let (a, _b) = tokio::io::duplex(64);
    /// let rec = Recorder::new(log.clone(), RecorderConfig::default());
    /// let t = tokio_transports::connect_io(|| rec, a).await?;
    /// t.set_protocol(Recorder::successor(&log, RecorderConfig::default(), &t));
    /// # Ok(()) }
    /// ```
    pub fn successor(log: &Log, cfg: RecorderConfig, t: &Transport) -> Self {
        let mut r = Recorder::new(log.clone(), cfg);
        r.transport = Some(t.clone());
        r
    }

    /// The log this recorder writes.
    ///
    /// ```
    /// # use tokio_transports::testing::{Log, Recorder, RecorderConfig};
    /// let rec = Recorder::new(Log::new("x"), RecorderConfig::default());
    /// assert!(rec.log().events().is_empty());
    /// ```
    pub fn log(&self) -> Log {
        self.log.clone()
    }

    fn record(&self, ev: Event) {
        self.log.push(ev.clone());
        if let (Some(hook), Some(t)) = (&self.cfg.hook, &self.transport) {
            hook(t, &ev, &self.log);
        }
    }

    fn echo(&self, data: &Bytes) {
        if self.cfg.echo
            && let Some(t) = &self.transport
        {
            let _ = t.write(data.clone());
        }
    }

    fn write_buffer_size(&self) -> usize {
        self.transport
            .as_ref()
            .map_or(0, |t| t.get_write_buffer_size())
    }
}

impl BaseProtocol for Recorder {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.log.set_transport(transport);
        self.record(Event::Made);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.record(Event::Lost(exc.as_ref().map(LostInfo::from_err)));
    }

    fn pause_writing(&mut self) {
        self.record(Event::PauseWriting(self.write_buffer_size()));
    }

    fn resume_writing(&mut self) {
        self.record(Event::ResumeWriting(self.write_buffer_size()));
    }
}

impl Protocol for Recorder {
    fn data_received(&mut self, data: Bytes) {
        if data.is_empty() {
            self.log
                .push(Event::Violation("empty data_received".into()));
        }
        self.echo(&data);
        self.record(Event::Data(data));
    }

    fn eof_received(&mut self) -> bool {
        self.record(Event::Eof);
        self.cfg.keep_open_on_eof
    }
}

impl BufferedProtocol for Recorder {
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
        if self.cfg.buf_cap == 0 {
            self.buf = BytesMut::new();
        } else if self.cfg.keep_buffer {
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(self.cfg.buf_cap);
            }
        } else if self.buf.capacity() == self.buf.len() {
            self.buf = BytesMut::with_capacity(self.cfg.buf_cap);
        }
        self.before = Some((self.buf.len(), self.buf.capacity() - self.buf.len()));
        self.record(Event::GetBuffer(sizehint));
        &mut self.buf
    }

    fn buffer_updated(&mut self, n: usize) {
        let Some((len, spare)) = self.before.take() else {
            self.log
                .push(Event::Violation("buffer_updated without get_buffer".into()));
            return;
        };
        if self.buf.len() != len + n || n > spare || n == 0 {
            self.log.push(Event::Violation(format!(
                "buffer_updated({n}): buffer went from {len} to {} bytes (spare was {spare})",
                self.buf.len()
            )));
        }
        let data = if self.cfg.keep_buffer {
            let data = Bytes::copy_from_slice(&self.buf[len.min(self.buf.len())..]);
            self.shadow.extend_from_slice(&data);
            if self.buf[..] != self.shadow[..] {
                self.log.push(Event::Violation(
                    "the transport changed bytes before the append point".into(),
                ));
            }
            data
        } else {
            let mut taken = self.buf.split();
            taken.split_off(len.min(taken.len())).freeze()
        };
        self.echo(&data);
        self.record(Event::BufferUpdated { n, data });
    }

    fn eof_received(&mut self) -> bool {
        self.record(Event::Eof);
        self.cfg.keep_open_on_eof
    }
}
