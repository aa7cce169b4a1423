//! The per-test [`Registry`] of connection logs, which checks the callback
//! grammar of every connection when the test finishes.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_transports::Buffered;

use super::{Config, Log, Recorder, check_grammar, guard};

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
