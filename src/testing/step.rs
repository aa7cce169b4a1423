//! [`Stepper`]: polls a connection's driver on the test's own thread until
//! it is idle, the harnesses' replacement for the runtime's scheduler. The
//! driver is the real one; only who polls it, and when, differs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Polls before a harness gives up on a connection that never becomes idle
/// (a protocol that writes from `resume_writing` forever, say).
const MAX_POLLS: usize = 100_000;

/// Turns of the runtime [`settle`](super::StreamHarness::settle) gives other
/// tasks after the connection went idle, before it calls it settled.
pub(crate) const QUIET_TURNS: usize = 4;

/// Set whenever anything (the I/O, the inbox, a timer) wakes the driver.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
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
        self.woken.0.load(Ordering::Acquire)
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
            self.woken.0.store(false, Ordering::Release);
            match Pin::new(&mut self.driver).poll(&mut cx) {
                Poll::Ready(()) => self.done = true,
                Poll::Pending if !self.is_woken() => return,
                Poll::Pending => {}
            }
        }
        panic!("the connection never became idle ({MAX_POLLS} polls)");
    }
}
