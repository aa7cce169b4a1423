//! [`ExcCapture`]: a capturing exception handler and its [`Report`]s,
//! serialized across the tests of one binary (the handler is process-global).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_transports::{
    CallbackPanicked, ExceptionContext, ExceptionHandler, set_exception_handler,
};

use super::guard;

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
