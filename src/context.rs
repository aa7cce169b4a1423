//! "Are we inside a callback of this transport?": the thread-local that lets
//! a transport method called from a protocol callback skip the channel.
//!
//! While a driver runs a callback it installs the transport's id and a
//! command list in its kind's [`Slot`]. A handle method that finds its own
//! transport's id there pushes its command onto that list (no channel hop, no
//! wake-up); the driver applies the list right after the callback returns, in
//! order. Any other call, from another thread, task or transport, goes
//! through the channel.
//!
//! Each transport kind declares its own slot for its own command type:
//!
//! ```ignore
//! thread_local! { static CURRENT: Slot<Command> = const { RefCell::new(None) }; }
//! ```

use std::cell::RefCell;
use std::thread::LocalKey;

/// The callback that is running on this thread, if any.
pub(crate) struct Current<C> {
    id: usize,
    commands: Vec<C>,
}

/// A kind's thread-local slot.
pub(crate) type Slot<C> = RefCell<Option<Current<C>>>;

/// Run `f` as a callback of transport `id`. Commands issued for `id` inside
/// `f` are appended to `commands` (which the caller drains afterwards).
/// Nested scopes (another transport's callback run inside this one) save and
/// restore the outer scope, also when `f` unwinds.
pub(crate) fn scope<C: 'static, R>(
    slot: &'static LocalKey<Slot<C>>,
    id: usize,
    commands: &mut Vec<C>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<'a, C: 'static> {
        slot: &'static LocalKey<Slot<C>>,
        outer: Option<Current<C>>,
        commands: &'a mut Vec<C>,
    }
    impl<C: 'static> Drop for Restore<'_, C> {
        fn drop(&mut self) {
            let outer = self.outer.take();
            let mine = self
                .slot
                .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
            if let Some(mine) = mine {
                *self.commands = mine.commands;
            }
        }
    }
    let outer = slot.with(|c| {
        c.borrow_mut().replace(Current {
            id,
            commands: std::mem::take(commands),
        })
    });
    let _restore = Restore {
        slot,
        outer,
        commands,
    };
    f()
}

/// If this thread is inside a callback of transport `id`, queue `cmd` there
/// and return `None`; otherwise hand `cmd` back, to be sent over the channel.
pub(crate) fn try_push<C: 'static>(
    slot: &'static LocalKey<Slot<C>>,
    id: usize,
    cmd: C,
) -> Option<C> {
    slot.with(|c| match c.try_borrow_mut() {
        Ok(mut cur) => match cur.as_mut() {
            Some(cur) if cur.id == id => {
                cur.commands.push(cmd);
                None
            }
            _ => Some(cmd),
        },
        Err(_) => Some(cmd),
    })
}

/// A unique id for a new transport of any kind.
pub(crate) fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! { static SLOT: Slot<u32> = const { RefCell::new(None) }; }

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
            let mut inner = Vec::new();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scope(&SLOT, 2, &mut inner, || {
                    assert_eq!(try_push(&SLOT, 2, 20), None);
                    panic!("boom");
                })
            }));
            assert!(r.is_err());
            assert_eq!(inner, vec![20]);
            assert_eq!(try_push(&SLOT, 1, 10), None);
        });
        assert_eq!(outer, vec![10]);
    }
}
