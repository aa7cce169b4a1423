//! Small shared helpers: the [`guard`] timeout, [`barrier`] and
//! [`is_pending`] for synchronizing with a connection's task, the [`pattern`]
//! byte generator, and the [`Counter`] shared with hooks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use tokio_transports::Transport;

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

/// A deterministic byte pattern.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
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
