//! The [`Recorder`] protocol (streaming and buffered) that logs every
//! callback into a [`Log`], and its [`Config`] (echo, EOF behaviour, buffer
//! shape, [`Hook`]).

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio_transports::{BaseProtocol, BufferedProtocol, Protocol, Transport};

use super::{Ev, Log, LostInfo};

/// Runs inside a callback, after the event was logged, with the transport.
pub type Hook = Arc<dyn Fn(&Transport, &Ev, &Log) + Send + Sync>;

/// How a [`Recorder`] behaves.
#[derive(Clone)]
pub struct Config {
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
    pub hook: Option<Hook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            echo: false,
            keep_open_on_eof: false,
            buf_cap: 64 * 1024,
            keep_buffer: false,
            hook: None,
        }
    }
}

impl Config {
    pub fn echo() -> Self {
        Config {
            echo: true,
            ..Config::default()
        }
    }
    pub fn keep_open(mut self) -> Self {
        self.keep_open_on_eof = true;
        self
    }
    pub fn buf_cap(mut self, n: usize) -> Self {
        self.buf_cap = n;
        self
    }
    pub fn keep_buffer(mut self) -> Self {
        self.keep_buffer = true;
        self
    }
    pub fn hook(mut self, f: impl Fn(&Transport, &Ev, &Log) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(f));
        self
    }
}

/// A protocol that records every callback. Implements both [`Protocol`] and
/// [`BufferedProtocol`]: pass it as is, or wrapped in
/// [`Buffered`](tokio_transports::Buffered).
pub struct Recorder {
    log: Log,
    cfg: Config,
    transport: Option<Transport>,
    buf: BytesMut,
    /// Buffer length and spare room when `get_buffer` returned.
    before: Option<(usize, usize)>,
    /// With `keep_buffer`: what the buffer must hold.
    shadow: Vec<u8>,
}

impl Recorder {
    pub fn new(log: Log, cfg: Config) -> Self {
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
    pub fn successor(log: &Log, cfg: Config, t: &Transport) -> Self {
        let mut r = Recorder::new(log.clone(), cfg);
        r.transport = Some(t.clone());
        r
    }

    pub fn log(&self) -> Log {
        self.log.clone()
    }

    fn record(&self, ev: Ev) {
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
}

impl BaseProtocol for Recorder {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.log.set_transport(transport);
        self.record(Ev::Made);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.record(Ev::Lost(exc.as_ref().map(LostInfo::from_err)));
    }

    fn pause_writing(&mut self) {
        let size = self
            .transport
            .as_ref()
            .map_or(0, |t| t.get_write_buffer_size());
        self.record(Ev::PauseWriting(size));
    }

    fn resume_writing(&mut self) {
        let size = self
            .transport
            .as_ref()
            .map_or(0, |t| t.get_write_buffer_size());
        self.record(Ev::ResumeWriting(size));
    }
}

impl Protocol for Recorder {
    fn data_received(&mut self, data: Bytes) {
        if data.is_empty() {
            self.log.push(Ev::Violation("empty data_received".into()));
        }
        self.echo(&data);
        self.record(Ev::Data(data));
    }

    fn eof_received(&mut self) -> bool {
        self.record(Ev::Eof);
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
        self.record(Ev::GetBuffer(sizehint));
        &mut self.buf
    }

    fn buffer_updated(&mut self, n: usize) {
        let Some((len, spare)) = self.before.take() else {
            self.log
                .push(Ev::Violation("buffer_updated without get_buffer".into()));
            return;
        };
        if self.buf.len() != len + n || n > spare || n == 0 {
            self.log.push(Ev::Violation(format!(
                "buffer_updated({n}): buffer went from {len} to {} bytes (spare was {spare})",
                self.buf.len()
            )));
        }
        let data = if self.cfg.keep_buffer {
            let data = Bytes::copy_from_slice(&self.buf[len.min(self.buf.len())..]);
            self.shadow.extend_from_slice(&data);
            if self.buf[..] != self.shadow[..] {
                self.log.push(Ev::Violation(
                    "the transport changed bytes before the append point".into(),
                ));
            }
            data
        } else {
            let mut taken = self.buf.split();
            taken.split_off(len.min(taken.len())).freeze()
        };
        self.echo(&data);
        self.record(Ev::BufferUpdated { n, data });
    }

    fn eof_received(&mut self) -> bool {
        self.record(Ev::Eof);
        self.cfg.keep_open_on_eof
    }
}
