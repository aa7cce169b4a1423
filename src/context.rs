//! "Are we inside a callback of this transport?": the thread-local that lets
//! a transport method called from a protocol callback skip the channel.
//!
//! While a driver runs a callback it puts the transport's id, and a pointer
//! to its [`Frame`] (its command list, and for streams its write queue), in
//! its kind's [`Slot`]. A handle method that finds its own transport's id
//! there works on that frame directly (no channel hop, no lock, no wake-up);
//! the driver applies the commands, in order, when the callback returns. Any other call, from another thread, task or
//! transport, goes through the channel ([`Inbox`](crate::inbox::Inbox)).
//!
//! Each transport kind declares its own slot for its own command type:
//!
//! ```ignore
//! thread_local! { static CURRENT: Slot<Vec<Command>> = const { Slot::new() }; }
//! ```

use std::cell::Cell;
use std::thread::LocalKey;

/// Where a running callback's commands go: the driver's state that the
/// callback cannot otherwise reach. A plain `Vec` of commands is one; the
/// stream driver's frame also takes writes straight into its queue.
pub(crate) trait Frame: 'static {
    /// The command type of this kind of transport.
    type Command;
    /// Queue `cmd`, to be applied when the callback returns.
    fn push(&mut self, cmd: Self::Command);
}

impl<C: 'static> Frame for Vec<C> {
    type Command = C;
    fn push(&mut self, cmd: C) {
        Vec::push(self, cmd);
    }
}

/// A kind's thread-local state: the transport whose callback is running
/// (0: none) and that driver's frame.
pub(crate) struct Slot<F> {
    id: Cell<usize>,
    frame: Cell<*mut F>,
}

impl<F> Slot<F> {
    pub(crate) const fn new() -> Self {
        Slot {
            id: Cell::new(0),
            frame: Cell::new(std::ptr::null_mut()),
        }
    }
}

/// Run `f` as a callback of transport `id`, with `frame` reachable through
/// [`with_frame`]/[`try_push`]. `f` must not touch `frame` itself. Nested
/// scopes (another transport's callback run inside this one) restore the
/// outer scope when they end, also when `f` unwinds.
#[inline]
pub(crate) fn scope<F: 'static, R>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    frame: &mut F,
    f: impl FnOnce() -> R,
) -> R {
    /// Puts the outer scope's values back, also when `f` unwinds.
    struct Restore<F: 'static> {
        slot: &'static LocalKey<Slot<F>>,
        id: usize,
        frame: *mut F,
    }
    impl<F> Drop for Restore<F> {
        #[inline]
        fn drop(&mut self) {
            self.slot.with(|s| {
                s.id.set(self.id);
                s.frame.set(self.frame);
            });
        }
    }
    let frame: *mut F = frame;
    // Small closures only: `with` inlines to a plain thread-local access.
    let (outer_id, outer_frame) = slot.with(|s| (s.id.replace(id), s.frame.replace(frame)));
    let _restore = Restore {
        slot,
        id: outer_id,
        frame: outer_frame,
    };
    f()
}

/// If this thread is inside a callback of transport `id`, run `f` on that
/// driver's frame with `arg`; otherwise hand `arg` back.
#[inline]
pub(crate) fn with_frame<F: 'static, A, R>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    arg: A,
    f: impl FnOnce(&mut F, A) -> R,
) -> Result<R, A> {
    let frame = slot.with(|s| (s.id.get() == id).then(|| s.frame.get()));
    let Some(frame) = frame else {
        return Err(arg);
    };
    // SAFETY: the slot holds `id` only while `scope(slot, id, frame, _)`
    // runs its callback on this thread (ids are never 0, and the guard
    // restores the outer values when the callback ends or unwinds), and
    // the pointer came from the `&mut F` that `scope` was given for
    // exactly that time. Neither `scope` nor its caller touches the frame
    // while the callback runs, and `f` cannot reach this slot's frame again
    // (a nested scope installs its own), so this is the only access to it.
    let frame = unsafe { &mut *frame };
    Ok(f(frame, arg))
}

/// If this thread is inside a callback of transport `id`, queue `cmd` there
/// and return `None`; otherwise hand `cmd` back, to be sent over the channel.
#[inline]
pub(crate) fn try_push<F: Frame>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    cmd: F::Command,
) -> Option<F::Command> {
    with_frame(slot, id, cmd, |frame, cmd| frame.push(cmd)).err()
}

/// A unique, non-zero id for a new transport of any kind.
pub(crate) fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! { static SLOT: Slot<Vec<u32>> = const { Slot::new() }; }

    #[test]
    fn commands_for_the_running_transport_are_captured() {
        let mut cmds = Vec::new();
        scope(&SLOT, 7, &mut cmds, || {
            assert_eq!(try_push(&SLOT, 7, 1), None);
            assert_eq!(try_push(&SLOT, 8, 2), Some(2), "another transport");
        });
        assert_eq!(cmds, vec![1]);
        assert_eq!(try_push(&SLOT, 7, 3), Some(3), "outside any callback");
    }

    #[test]
    fn nested_scopes_restore_the_outer_one_even_on_panic() {
        let mut outer = Vec::new();
        scope(&SLOT, 1, &mut outer, || {
            assert_eq!(try_push(&SLOT, 1, 9), None);
            let mut inner = Vec::new();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scope(&SLOT, 2, &mut inner, || {
                    assert_eq!(try_push(&SLOT, 2, 20), None);
                    assert_eq!(try_push(&SLOT, 1, 21), Some(21), "outer is not current");
                    panic!("boom");
                })
            }));
            assert!(r.is_err());
            assert_eq!(inner, vec![20]);
            assert_eq!(try_push(&SLOT, 1, 10), None);
        });
        assert_eq!(outer, vec![9, 10]);
    }
}
