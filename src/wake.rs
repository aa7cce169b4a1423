//! [`TaskWaker`]: a task's waker that stays registered after a wake-up,
//! for wakers of the crate's own that stand between tokio and a task (a
//! child's parts, a write pipe's error watch).
//!
//! A `futures` `AtomicWaker` gives its waker up on every wake-up, so the
//! task registers (and clones) it again on every poll. Here the waker stays,
//! and the task compares it with the one it last registered (a pointer
//! comparison); only a changed waker takes the lock. A wake-up takes the
//! lock and wakes by reference.

use std::sync::Mutex;
use std::task::Waker;

/// The waker to wake, shared between the task and its wakers.
#[derive(Default)]
pub(crate) struct TaskWaker {
    waker: Mutex<Option<Waker>>,
}

impl TaskWaker {
    /// Make sure `waker` is the one woken; `seen` is the task's record of
    /// the waker registered last (kept by the task, not shared).
    #[inline]
    pub(crate) fn register(&self, seen: &mut Option<Waker>, waker: &Waker) {
        if !seen.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.register_slow(seen, waker);
        }
    }

    #[cold]
    fn register_slow(&self, seen: &mut Option<Waker>, waker: &Waker) {
        let old = self
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(waker.clone());
        // Dropped outside the lock: a waker's drop is the executor's code.
        drop(old);
        *seen = Some(waker.clone());
    }

    /// Wake the registered task, if any (it stays registered).
    pub(crate) fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_waker_stays_registered_and_a_new_one_replaces_it() {
        let tw = TaskWaker::default();
        tw.wake(); // nobody registered: nothing happens
        let mut seen = None;
        let a = Arc::new(Count(AtomicUsize::new(0)));
        let wa = Waker::from(a.clone());
        tw.register(&mut seen, &wa);
        tw.wake();
        tw.wake();
        assert_eq!(
            a.0.load(Ordering::SeqCst),
            2,
            "still registered after a wake-up"
        );
        let b = Arc::new(Count(AtomicUsize::new(0)));
        let wb = Waker::from(b.clone());
        tw.register(&mut seen, &wb);
        tw.wake();
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
    }
}
