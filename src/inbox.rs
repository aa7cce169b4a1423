//! The command channel from transport handles to a transport's task: a
//! minimal multi-producer, single-consumer queue.
//!
//! Hand-written because it sits on the hot path: the task checks one atomic
//! flag per pass (a general-purpose channel costs a queue poll and a waker
//! registration), and a new connection allocates nothing for it until the
//! first command arrives. Senders lock a mutex that only they, the task's
//! drain and a change of the task's waker touch; commands from inside a
//! callback never come here (see [`context`](crate::context)).
//!
//! The task's waker stays registered after a wake-up (senders wake it by
//! reference), so a task going to sleep re-registers only when its waker
//! changed: a pointer comparison instead of an atomic waker's handshake.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

struct Queue<C> {
    items: Vec<C>,
    closed: bool,
    /// The task's waker, once it has slept.
    waker: Option<Waker>,
}

/// The queue shared by every handle of one transport and its task.
pub(crate) struct Inbox<C> {
    queue: Mutex<Queue<C>>,
    /// Set by a sender, cleared by the task before it drains.
    pending: AtomicBool,
}

/// The task's record of the waker the senders hold (see
/// [`Inbox::register`]).
#[derive(Default)]
pub(crate) struct Registered(Option<Waker>);

impl<C> Inbox<C> {
    pub(crate) fn new() -> Self {
        Inbox {
            queue: Mutex::new(Queue {
                items: Vec::new(),
                closed: false,
                waker: None,
            }),
            pending: AtomicBool::new(false),
        }
    }

    /// Queue `cmd` and wake the task; hands `cmd` back if the task is gone.
    pub(crate) fn send(&self, cmd: C) -> Result<(), C> {
        let mut cmd = Some(cmd);
        self.signal(|items| items.extend(cmd.take()));
        match cmd {
            None => Ok(()),
            Some(cmd) => Err(cmd),
        }
    }

    /// Under the lock, let `push` add to the queue (unless it is closed),
    /// flag the task and, if it was not flagged yet, wake it. The flag is
    /// set under the lock, so that a task registering a new waker either
    /// sees it afterwards or has its waker seen here.
    fn signal(&self, push: impl FnOnce(&mut Vec<C>)) {
        let waker = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return;
            }
            push(&mut q.items);
            if self.pending.swap(true, Ordering::AcqRel) {
                None
            } else {
                q.waker.clone()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether anything was sent or [`poke`](Self::poke)d since the last
    /// drain (one atomic load).
    #[inline(always)]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Move every queued command to `out`, oldest first. Cheap (one atomic
    /// load) when nothing is queued. Returns `true` if the task was sent or
    /// [`poke`](Self::poke)d something since the last drain.
    #[inline]
    pub(crate) fn drain_into(&self, out: &mut Vec<C>) -> bool {
        if self.pending.load(Ordering::Acquire) {
            self.drain_slow(out);
            return true;
        }
        false
    }

    /// Wake the task without a command, so that it passes through
    /// [`drain_into`](Self::drain_into) (which then returns `true`) with
    /// everything the caller did before this call visible to it: the lock
    /// orders the two.
    pub(crate) fn poke(&self) {
        self.signal(|_| {});
    }

    fn drain_slow(&self, out: &mut Vec<C>) {
        self.pending.store(false, Ordering::Release);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut q.items);
    }

    /// Make sure senders wake `waker` before the task sleeps; `seen` is the
    /// task's record of what they hold. Returns `true` if a command arrived
    /// meanwhile (so the task must not sleep).
    #[inline]
    pub(crate) fn register(&self, seen: &mut Registered, waker: &Waker) -> bool {
        if !seen.0.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.register_slow(seen, waker);
        }
        self.pending.load(Ordering::Acquire)
    }

    #[cold]
    fn register_slow(&self, seen: &mut Registered, waker: &Waker) {
        let old = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.waker.replace(waker.clone())
        };
        // Dropped outside the lock: a waker's drop is the executor's code.
        drop(old);
        seen.0 = Some(waker.clone());
    }

    /// Refuse further commands and return those still queued.
    pub(crate) fn close(&self) -> Vec<C> {
        let (items, waker) = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.closed = true;
            (std::mem::take(&mut q.items), q.waker.take())
        };
        drop(waker);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn commands_arrive_in_order_and_wake_once() {
        let inbox = Inbox::new();
        let mut seen = Registered::default();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        assert!(!inbox.register(&mut seen, &waker));
        inbox.send(1).unwrap();
        inbox.send(2).unwrap();
        assert!(flag.0.swap(false, Ordering::SeqCst));
        let mut out = Vec::new();
        inbox.drain_into(&mut out);
        assert_eq!(out, vec![1, 2]);
        inbox.drain_into(&mut out);
        assert_eq!(out, vec![1, 2], "nothing new");
        // The waker stays registered: the next command wakes it again.
        assert!(!inbox.register(&mut seen, &waker));
        inbox.send(3).unwrap();
        assert!(flag.0.swap(false, Ordering::SeqCst));
        inbox.send(4).unwrap();
        assert!(!flag.0.load(Ordering::SeqCst), "one wake per drain");
        inbox.drain_into(&mut out);
        assert_eq!(out, vec![1, 2, 3, 4]);
    }

    #[test]
    fn register_reports_commands_that_raced_with_it() {
        let inbox = Inbox::new();
        inbox.send(1).unwrap();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        assert!(inbox.register(&mut Registered::default(), &Waker::from(flag)));
    }

    #[test]
    fn a_new_waker_replaces_the_old_one() {
        let inbox = Inbox::new();
        let mut seen = Registered::default();
        let old = Arc::new(Flag(AtomicBool::new(false)));
        let new = Arc::new(Flag(AtomicBool::new(false)));
        assert!(!inbox.register(&mut seen, &Waker::from(old.clone())));
        assert!(!inbox.register(&mut seen, &Waker::from(new.clone())));
        inbox.send(1).unwrap();
        assert!(new.0.load(Ordering::SeqCst));
        assert!(!old.0.load(Ordering::SeqCst));
    }

    #[test]
    fn a_poke_wakes_the_task_once_and_shows_in_the_next_drain() {
        let inbox: Inbox<u32> = Inbox::new();
        let mut seen = Registered::default();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        assert!(!inbox.register(&mut seen, &waker));
        inbox.poke();
        assert!(flag.0.swap(false, Ordering::SeqCst));
        inbox.poke();
        assert!(!flag.0.load(Ordering::SeqCst), "already pending");
        assert!(inbox.register(&mut seen, &waker), "must not sleep");
        let mut out = Vec::new();
        assert!(inbox.drain_into(&mut out));
        assert!(out.is_empty());
        assert!(!inbox.drain_into(&mut out), "nothing since");
        inbox.close();
        inbox.poke();
        assert!(
            !flag.0.load(Ordering::SeqCst),
            "a closed inbox wakes nobody"
        );
    }

    #[test]
    fn a_closed_inbox_hands_commands_back() {
        let inbox = Inbox::new();
        inbox.send(1).unwrap();
        assert_eq!(inbox.close(), vec![1]);
        assert_eq!(inbox.send(2), Err(2));
    }

    #[test]
    fn many_senders_lose_nothing() {
        let inbox = Arc::new(Inbox::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        inbox.send(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        let mut out = Vec::new();
        for th in threads {
            th.join().unwrap();
        }
        inbox.drain_into(&mut out);
        out.sort();
        assert_eq!(out, (0..4000).collect::<Vec<_>>());
    }
}
