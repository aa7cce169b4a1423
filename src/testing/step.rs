//! [`Stepper`]: polls a connection's driver on the test's own thread until
//! it is idle, the harnesses' replacement for the runtime's scheduler. The
//! driver is the real one; only who polls it, and when, differs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::task::AtomicWaker;

/// Polls before a harness gives up on a connection that never becomes idle
/// (a protocol that writes from `resume_writing` forever, say).
const MAX_POLLS: usize = 100_000;

/// Turns of the runtime [`settle`](super::StreamHarness::settle) gives other
/// tasks after the connection went idle, before it calls it settled.
const QUIET_TURNS: usize = 4;

/// Set whenever anything (the I/O, the inbox, a timer) wakes the driver;
/// also wakes the test's task if it waits for that ([`Stepper::woken`]).
#[derive(Default)]
struct Woken {
    flag: AtomicBool,
    waiter: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.waiter.wake();
    }
}

/// A driver future and the waker it is polled with.
pub(crate) struct Stepper<D> {
    driver: D,
    woken: Arc<Woken>,
    waker: Waker,
    done: bool,
}

impl<D: Future<Output = ()> + Unpin> Stepper<D> {
    pub(crate) fn new(driver: D) -> Self {
        let woken = Arc::new(Woken::default());
        Stepper {
            driver,
            waker: Waker::from(woken.clone()),
            woken,
            done: false,
        }
    }

    pub(crate) fn driver(&self) -> &D {
        &self.driver
    }

    pub(crate) fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    /// Whether the driver finished (`connection_lost` ran).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether something woke the driver since it was last polled.
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.flag.load(Ordering::Acquire)
    }

    /// Resolves once something wakes the driver (at once if something
    /// already did since its last poll).
    pub(crate) async fn woken(&self) {
        std::future::poll_fn(|cx| {
            self.woken.waiter.register(cx.waker());
            if self.is_woken() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Run the driver, and give the runtime's other tasks turns, until
    /// neither has anything left to do.
    pub(crate) async fn settle(&mut self, mut check: impl FnMut()) {
        let mut quiet = 0;
        while quiet < QUIET_TURNS {
            self.run();
            check();
            tokio::task::yield_now().await;
            quiet = if self.is_woken() { 0 } else { quiet + 1 };
        }
        self.run();
        check();
    }

    /// Let `d` of tokio time pass, running the driver whenever something
    /// wakes it meanwhile, at the moment it does. Under a paused clock the
    /// runtime jumps from timer to timer, so a timer the protocol re-arms
    /// fires as often as it would in real time, and this returns at once in
    /// real time.
    pub(crate) async fn advance(&mut self, d: Duration, mut check: impl FnMut()) {
        let deadline = tokio::time::Instant::now() + d;
        self.settle(&mut check).await;
        loop {
            let woke = tokio::select! {
                biased;
                () = self.woken() => true,
                () = tokio::time::sleep_until(deadline) => false,
            };
            self.settle(&mut check).await;
            if !woke {
                return;
            }
        }
    }

    /// Poll the driver until it waits for something outside it (or ends).
    ///
    /// # Panics
    ///
    /// If it is still busy after [`MAX_POLLS`] polls.
    pub(crate) fn run(&mut self) {
        let mut cx = Context::from_waker(&self.waker);
        for _ in 0..MAX_POLLS {
            if self.done {
                return;
            }
            self.woken.flag.store(false, Ordering::Release);
            match Pin::new(&mut self.driver).poll(&mut cx) {
                Poll::Ready(()) => self.done = true,
                Poll::Pending if !self.is_woken() => return,
                Poll::Pending => {}
            }
        }
        panic!("the connection never became idle ({MAX_POLLS} polls)");
    }
}

/// The harnesses' rule: a breach of the grammar fails the test at the step
/// that caused it.
pub(crate) fn assert_grammar(check: &super::GrammarCheck) {
    let v = check.violations();
    assert!(v.is_empty(), "callback contract broken: {v:?}");
}
