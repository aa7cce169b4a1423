//! "Are we inside a callback of this transport?": the thread-local that lets
//! a transport method called from a protocol callback skip the channel.
//!
//! While a driver runs a callback it puts the transport's id, and a pointer
//! to its [`Frame`] (its command list, and for streams its write queue), in
//! its kind's [`Slot`]. A handle method that finds its own transport's id
//! there works on that frame directly (no channel hop, no lock, no wake-up);
//! the driver applies the commands, in order, when the callback returns. Any other call, from another thread, task or
//! transport, goes through the channel ([`Inbox`](crate::inbox::Inbox)), with one exception: a
//! task that drives several transports (a child process's pipes) may lend one
//! transport's frame through a second slot of the same kind while it polls the
//! others (`stream::handle::SIBLING`), for the writes their callbacks make to it.
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
///
/// While `f` runs, the slot is cleared (and restored afterwards, also when
/// `f` unwinds), so code that `f` runs and that calls back into the same
/// transport (a `Bytes` dropped in `f` runs its owner's `Drop`, which may be
/// user code) finds no frame and takes the channel: the frame is never
/// reachable twice.
#[inline(always)]
pub(crate) fn with_frame<F: 'static, A, R>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    arg: A,
    f: impl FnOnce(&mut F, A) -> R,
) -> Result<R, A> {
    frame_access::<true, F, A, R>(slot, id, arg, f)
}

/// [`with_frame`] for an `f` that runs no code but the crate's own: no
/// callback, no drop of a value the user handed in, no transport method.
/// It leaves the slot as it is (two cell writes and a guard fewer), which
/// is sound because nothing `f` runs can reach the slot.
#[inline(always)]
pub(crate) fn with_frame_own<F: 'static, A, R>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    arg: A,
    f: impl FnOnce(&mut F, A) -> R,
) -> Result<R, A> {
    frame_access::<false, F, A, R>(slot, id, arg, f)
}

#[inline(always)]
fn frame_access<const CLEAR: bool, F: 'static, A, R>(
    slot: &'static LocalKey<Slot<F>>,
    id: usize,
    arg: A,
    f: impl FnOnce(&mut F, A) -> R,
) -> Result<R, A> {
    /// Puts the slot's values back, also when `f` unwinds.
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
    let frame = slot.with(|s| {
        (s.id.get() == id).then(|| {
            if CLEAR {
                s.id.set(0);
                s.frame.replace(std::ptr::null_mut())
            } else {
                s.frame.get()
            }
        })
    });
    let Some(frame) = frame else {
        return Err(arg);
    };
    let _restore = CLEAR.then_some(Restore { slot, id, frame });
    // SAFETY: the slot held `id` only while `scope(slot, id, frame, _)`
    // runs its callback on this thread (ids are never 0, and the guard
    // restores the outer values when the callback ends or unwinds), and
    // the pointer came from the `&mut F` that `scope` was given for
    // exactly that time. Neither `scope` nor its caller touches the frame
    // while the callback runs. With `CLEAR`, the slot is cleared until
    // `_restore` drops, after `f` returns or unwinds, so nothing `f` runs
    // (a nested scope installs its own frame; a nested `with_frame` for
    // `id` finds none) can reach this frame again. Without it, `f` runs
    // only the crate's own code, which does not look at the slot (see
    // `with_frame_own`). Either way this is the only access to the frame.
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
    fn the_frame_is_unreachable_while_with_frame_works_on_it() {
        let mut cmds = Vec::new();
        scope(&SLOT, 5, &mut cmds, || {
            let nested = with_frame(&SLOT, 5, 1, |frame, v| {
                frame.push(v);
                // Code run here (a `Drop`, say) that calls the same
                // transport gets no second `&mut` to the frame.
                try_push(&SLOT, 5, 2)
            });
            assert_eq!(nested, Ok(Some(2)), "the nested call is handed back");
            assert_eq!(try_push(&SLOT, 5, 3), None, "restored afterwards");
            let r = std::panic::catch_unwind(|| {
                let _ = with_frame(&SLOT, 5, (), |_, _| panic!("boom"));
            });
            assert!(r.is_err());
            assert_eq!(try_push(&SLOT, 5, 4), None, "restored after a panic too");
        });
        assert_eq!(cmds, vec![1, 3, 4]);
    }

    /// The issue's case: a `Bytes` whose owner's `Drop` calls the same
    /// transport, dropped while `with_frame` works on the frame.
    #[test]
    fn a_bytes_owner_dropped_inside_with_frame_takes_the_channel() {
        thread_local! { static BYTES: Slot<Vec<bytes::Bytes>> = const { Slot::new() }; }
        struct Owner(std::sync::Arc<std::sync::Mutex<Option<bool>>>);
        impl AsRef<[u8]> for Owner {
            fn as_ref(&self) -> &[u8] {
                b"owned"
            }
        }
        impl Drop for Owner {
            fn drop(&mut self) {
                let handed_back = try_push(&BYTES, 9, bytes::Bytes::from_static(b"x")).is_some();
                *self.0.lock().unwrap() = Some(handed_back);
            }
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let owned = bytes::Bytes::from_owner(Owner(seen.clone()));
        let mut frame = Vec::new();
        scope(&BYTES, 9, &mut frame, || {
            let r = with_frame(&BYTES, 9, owned, |frame, data| {
                frame.push(bytes::Bytes::from_static(b"first"));
                drop(data);
                frame.len()
            });
            assert_eq!(r.ok(), Some(1));
        });
        assert_eq!(
            *seen.lock().unwrap(),
            Some(true),
            "the owner's write went to the channel"
        );
        assert_eq!(frame.len(), 1);
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
