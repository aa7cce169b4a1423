//! Shared helpers for the integration tests.
//!
//! * [`Recorder`]: a protocol (streaming and buffered) that logs every callback
//!   into a [`Log`], optionally echoes, and runs a configurable hook inside each
//!   callback with the transport.
//! * [`Registry`]: every log a test creates; [`Registry::finish`] waits for every
//!   connection's `connection_lost` and runs [`check_grammar`] on each, so the
//!   callback contract is checked on every connection of every test.
//! * [`GateIo`]: an in-memory I/O whose write side the test opens byte by byte,
//!   for exact flow-control boundaries.
//! * [`ExcCapture`]: installs a capturing exception handler, serialized across
//!   the tests of one binary (the handler is process-global).
//! * Waiting helpers: [`guard`], [`barrier`], [`is_pending`], [`wait_unread`].

#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_transports::{
    BaseProtocol, Buffered, BufferedProtocol, CallbackPanicked, ConnectOptions, ExceptionContext,
    ExceptionHandler, Protocol, Server, ServerOptions, Transport, create_connection, create_server,
    set_exception_handler,
};

/// Upper bound for any single wait: only a guard against hanging.
pub const GUARD: Duration = Duration::from_secs(10);

/// Await `f`, failing the test if it takes longer than [`GUARD`].
pub async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Poll `fut` once with a no-op waker: whether it is still pending.
pub fn is_pending<F: Future + ?Sized>(fut: Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    fut.poll(&mut cx).is_pending()
}

/// Two round trips through the connection's task: when this returns, the task
/// has processed every command sent before the call, and has finished the
/// poll (events, writes, reads) in which it did so.
pub async fn barrier(t: &Transport) {
    for _ in 0..2 {
        guard("barrier", t.with_protocol(|_| ())).await;
    }
}

// ---- events -----------------------------------------------------------------

/// What `connection_lost` got, made comparable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostInfo {
    pub kind: io::ErrorKind,
    pub message: String,
    /// The payload if the error is a [`CallbackPanicked`].
    pub panicked: Option<CallbackPanicked>,
}

impl LostInfo {
    fn from_err(e: &io::Error) -> Self {
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

/// Assert the callback contract on one connection's complete log:
/// `connection_made (data_received | get_buffer buffer_updated?)* eof_received?
/// connection_lost`, with `pause_writing`/`resume_writing` strictly
/// alternating (pause first) anywhere between the first and the last.
pub fn check_grammar(events: &[Ev]) {
    let evs: Vec<&Ev> = events
        .iter()
        .filter(|e| !matches!(e, Ev::Mark(_)))
        .collect();
    let fail = |msg: String| -> ! { panic!("callback contract broken: {msg}\nevents: {evs:?}") };
    if evs.first() != Some(&&Ev::Made) {
        fail("connection_made is not first".into());
    }
    let last = evs.len() - 1;
    if !evs[last].is_lost() {
        fail("connection_lost is not last".into());
    }
    let mut eof = false;
    let mut paused = false;
    // The last event other than pause/resume writing.
    let mut prev: Option<&Ev> = None;
    for (i, e) in evs.iter().enumerate() {
        match e {
            Ev::Made if i != 0 => fail(format!("connection_made again at {i}")),
            Ev::Made => {}
            Ev::Data(d) => {
                if eof {
                    fail(format!("data_received after eof_received at {i}"));
                }
                if d.is_empty() {
                    fail(format!("empty data_received at {i}"));
                }
            }
            Ev::GetBuffer(_) if eof => fail(format!("get_buffer after eof_received at {i}")),
            Ev::GetBuffer(_) => {}
            Ev::BufferUpdated { n, data } => {
                if eof {
                    fail(format!("buffer_updated after eof_received at {i}"));
                }
                if *n == 0 || *n != data.len() {
                    fail(format!("buffer_updated({n}) at {i}"));
                }
                if !matches!(prev, Some(Ev::GetBuffer(_))) {
                    fail(format!("buffer_updated not right after get_buffer at {i}"));
                }
            }
            Ev::Eof if eof => fail(format!("eof_received twice (at {i})")),
            Ev::Eof => eof = true,
            Ev::PauseWriting(_) if paused => fail(format!("pause_writing twice (at {i})")),
            Ev::PauseWriting(_) => paused = true,
            Ev::ResumeWriting(_) if !paused => {
                fail(format!("resume_writing without pause_writing (at {i})"))
            }
            Ev::ResumeWriting(_) => paused = false,
            Ev::Lost(_) if i != last => fail(format!("connection_lost not last (at {i})")),
            Ev::Lost(_) => {}
            Ev::Violation(v) => fail(format!("violation at {i}: {v}")),
            Ev::Mark(_) => unreachable!(),
        }
        if !e.is_pw() && !e.is_rw() {
            prev = Some(e);
        }
    }
}

// ---- the log ------------------------------------------------------------------

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

// ---- the recorder -------------------------------------------------------------

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
/// [`BufferedProtocol`]: pass it as is, or wrapped in [`Buffered`].
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
        *self.log.0.transport.lock().unwrap() = Some(transport.clone());
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

// ---- the registry ---------------------------------------------------------------

struct RegInner {
    logs: Mutex<Vec<Log>>,
    changed: Notify,
}

impl RegInner {
    fn add(&self, name: &'static str) -> Log {
        let log = Log::new(name);
        self.logs.lock().unwrap().push(log.clone());
        self.changed.notify_waiters();
        log
    }
}

/// Every connection log of one test. Call [`Registry::finish`] at the end:
/// it waits for every `connection_lost` and checks the grammar of each log.
pub struct Registry {
    inner: Arc<RegInner>,
    finished: bool,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            inner: Arc::new(RegInner {
                logs: Mutex::new(Vec::new()),
                changed: Notify::new(),
            }),
            finished: false,
        }
    }

    pub fn log(&self, name: &'static str) -> Log {
        self.inner.add(name)
    }

    pub fn recorder(&self, name: &'static str, cfg: Config) -> Recorder {
        Recorder::new(self.log(name), cfg)
    }

    /// A protocol factory: each call registers a new log named `name`.
    pub fn factory(
        &self,
        name: &'static str,
        cfg: Config,
    ) -> impl Fn() -> Recorder + Send + Sync + Clone + 'static {
        let inner = self.inner.clone();
        move || Recorder::new(inner.add(name), cfg.clone())
    }

    /// The same, for a [`BufferedProtocol`].
    pub fn buffered_factory(
        &self,
        name: &'static str,
        cfg: Config,
    ) -> impl Fn() -> Buffered<Recorder> + Send + Sync + Clone + 'static {
        let f = self.factory(name, cfg);
        move || Buffered(f())
    }

    pub fn logs(&self) -> Vec<Log> {
        self.inner.logs.lock().unwrap().clone()
    }

    pub fn named(&self, name: &str) -> Vec<Log> {
        self.logs()
            .into_iter()
            .filter(|l| l.name() == name)
            .collect()
    }

    /// Wait for the `i`-th log named `name` (e.g. the `i`-th accepted connection).
    pub async fn nth(&self, name: &'static str, i: usize) -> Log {
        guard(&format!("log {name}#{i}"), async {
            loop {
                let notified = self.inner.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(l) = self.named(name).get(i) {
                    return l.clone();
                }
                notified.await;
            }
        })
        .await
    }

    /// Wait until every connection delivered `connection_lost`, then check the
    /// callback grammar of every log.
    pub async fn finish(mut self) {
        self.finished = true;
        for log in self.logs() {
            log.wait_lost().await;
        }
        for log in self.logs() {
            let evs = log.events();
            if std::panic::catch_unwind(|| check_grammar(&evs)).is_err() {
                panic!("grammar check failed on {}", log.name());
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!("Registry dropped without finish(): the grammar was not checked");
        }
    }
}

// ---- sockets ----------------------------------------------------------------

/// An echo server on 127.0.0.1 whose connections log as `"server"`.
pub async fn echo_server(reg: &Registry, cfg: Config) -> (Server, u16) {
    let server = create_server(
        reg.factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// A buffered-protocol server on 127.0.0.1 whose connections log as `"server"`.
pub async fn buffered_server(reg: &Registry, cfg: Config) -> (Server, u16) {
    let server = create_server(
        reg.buffered_factory("server", cfg),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    )
    .await
    .expect("create_server");
    let port = server.sockets()[0].port();
    (server, port)
}

/// Close a server and wait for it (and its connections) to be done.
pub async fn shutdown(server: &Server) {
    server.close();
    guard("server wait_closed", server.wait_closed()).await;
}

/// A transport (logged as `"client"`) connected to a raw tokio socket that
/// the test drives by hand.
pub async fn client_with_raw_peer(reg: &Registry, cfg: Config) -> (Transport, Log, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder("client", cfg);
    let log = rec.log();
    let t = create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default())
        .await
        .expect("create_connection");
    let (peer, _) = guard("accept", listener.accept()).await.unwrap();
    (t, log, peer)
}

/// The same with a [`Buffered`] recorder.
pub async fn buffered_client_with_raw_peer(
    reg: &Registry,
    cfg: Config,
) -> (Transport, Log, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = reg.recorder("client", cfg);
    let log = rec.log();
    let t = create_connection(
        move || Buffered(rec),
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await
    .expect("create_connection");
    let (peer, _) = guard("accept", listener.accept()).await.unwrap();
    (t, log, peer)
}

/// Read exactly `n` bytes from a raw socket.
pub async fn read_n(s: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    guard(&format!("reading {n} bytes"), s.read_exact(&mut buf))
        .await
        .expect("read_exact");
    buf
}

/// Read until EOF.
pub async fn read_to_eof(s: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut buf = Vec::new();
    guard("reading to EOF", s.read_to_end(&mut buf))
        .await
        .expect("read_to_end");
    buf
}

/// Make dropping `s` send a reset (SO_LINGER 0).
pub fn set_reset_on_drop(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// A free TCP port on `ip` (bound, then released).
pub fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Wait until the kernel holds at least `n` unread bytes on the transport's
/// socket (the transport itself is not reading them): readiness of a
/// duplicate of the socket, then `FIONREAD`.
pub async fn wait_unread(t: &Transport, n: usize) {
    let fd = t.with_socket(|s| s.as_raw_fd()).expect("socket is open");
    // SAFETY: `fd` is open (the transport is live); dup gives us our own fd.
    let dup = unsafe { libc::dup(fd) };
    assert!(dup >= 0, "dup failed");
    // SAFETY: `dup` is a fresh fd we own.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: the AsyncFd owns `owned`, an open fd that stays the same while it lives.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
    .expect("AsyncFd");
    guard(&format!("{n} unread bytes in the kernel"), async {
        loop {
            let mut ready = afd.readable().await.unwrap();
            let mut avail: libc::c_int = 0;
            // SAFETY: FIONREAD writes one c_int.
            let rc = unsafe { libc::ioctl(afd.as_raw_fd(), libc::FIONREAD, &mut avail) };
            assert_eq!(rc, 0, "ioctl(FIONREAD)");
            if avail as usize >= n {
                return;
            }
            ready.clear_ready();
        }
    })
    .await;
}

/// A deterministic byte pattern.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

// ---- a gated in-memory I/O ----------------------------------------------------

#[derive(Default)]
struct GateState {
    allowance: usize,
    written: Vec<u8>,
    /// (number of buffers, bytes taken) per accepted write call.
    calls: Vec<(usize, usize)>,
    waker: Option<Waker>,
    shutdown: bool,
    dropped: bool,
}

/// The test's side of a [`GateIo`].
#[derive(Clone)]
pub struct Gate(Arc<Mutex<GateState>>);

impl Gate {
    /// Let `n` more bytes through.
    pub fn allow(&self, n: usize) {
        let mut st = self.0.lock().unwrap();
        st.allowance = st.allowance.saturating_add(n);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
    pub fn written(&self) -> Vec<u8> {
        self.0.lock().unwrap().written.clone()
    }
    pub fn calls(&self) -> Vec<(usize, usize)> {
        self.0.lock().unwrap().calls.clone()
    }
    pub fn is_shutdown(&self) -> bool {
        self.0.lock().unwrap().shutdown
    }
    pub fn is_dropped(&self) -> bool {
        self.0.lock().unwrap().dropped
    }
}

/// An I/O whose reads come from a duplex pipe (the test holds the other end)
/// and whose writes go through a gate the test opens byte by byte: with the
/// gate shut the transport's buffer holds exactly what was written.
pub struct GateIo {
    state: Arc<Mutex<GateState>>,
    read: DuplexStream,
}

impl GateIo {
    /// The I/O, its gate (shut), and the pipe end that feeds its reads.
    pub fn new() -> (GateIo, Gate, DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let state = Arc::new(Mutex::new(GateState::default()));
        (
            GateIo {
                state: state.clone(),
                read: a,
            },
            Gate(state),
            b,
        )
    }
}

impl Drop for GateIo {
    fn drop(&mut self) {
        self.state.lock().unwrap().dropped = true;
    }
}

impl AsyncRead for GateIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for GateIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.state.lock().unwrap();
        if st.shutdown {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if st.allowance == 0 {
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(st.allowance);
            st.written.extend_from_slice(&b[..n]);
            st.allowance -= n;
            taken += n;
            if st.allowance == 0 {
                break;
            }
        }
        st.calls.push((bufs.len(), taken));
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.state.lock().unwrap().shutdown = true;
        Poll::Ready(Ok(()))
    }
}

// ---- the exception handler ---------------------------------------------------

/// Serializes the tests (of one binary) that install an exception handler.
static EXC_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One report the exception handler got.
#[derive(Clone, Debug)]
pub struct Report {
    pub message: String,
    pub error: Option<String>,
    pub panicked: Option<CallbackPanicked>,
    pub peername: Option<SocketAddr>,
    pub sockname: Option<SocketAddr>,
}

struct Reports {
    list: Mutex<Vec<Report>>,
    changed: Notify,
}

/// A capturing exception handler, installed for the life of this value;
/// the previous handler is restored on drop.
pub struct ExcCapture {
    reports: Arc<Reports>,
    prev: Option<Option<ExceptionHandler>>,
    _lock: tokio::sync::MutexGuard<'static, ()>,
}

impl ExcCapture {
    pub async fn install() -> Self {
        let lock = EXC_LOCK.lock().await;
        let reports = Arc::new(Reports {
            list: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        let r = reports.clone();
        let handler: ExceptionHandler = Arc::new(move |ctx: &ExceptionContext<'_>| {
            r.list.lock().unwrap().push(Report {
                message: ctx.message.to_string(),
                error: ctx.error.map(|e| e.to_string()),
                panicked: ctx
                    .error
                    .and_then(|e| e.downcast_ref::<CallbackPanicked>())
                    .cloned(),
                peername: ctx.peername,
                sockname: ctx.sockname,
            });
            r.changed.notify_waiters();
        });
        let prev = set_exception_handler(Some(handler));
        ExcCapture {
            reports,
            prev: Some(prev),
            _lock: lock,
        }
    }

    pub fn reports(&self) -> Vec<Report> {
        self.reports.list.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&Report) -> bool) -> usize {
        self.reports().iter().filter(|r| pred(r)).count()
    }

    /// Wait for a report matching `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Report) -> bool) -> Report {
        guard(&format!("exception report: {what}"), async {
            loop {
                let notified = self.reports.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(r) = self.reports().into_iter().find(|r| pred(r)) {
                    return r;
                }
                notified.await;
            }
        })
        .await
    }
}

impl Drop for ExcCapture {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            set_exception_handler(prev);
        }
    }
}

/// A counter shared with hooks.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn incr(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
