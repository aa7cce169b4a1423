//! "Are we inside a callback of this connection?": the thread-local that lets
//! a `Transport` method called from a protocol callback skip the channel.
//!
//! While the driver runs a callback it installs the connection's id and a
//! command list here. A handle method that finds its own connection's id
//! pushes its command onto that list (no channel hop, no wake-up); the driver
//! applies the list right after the callback returns, in order. Any other
//! call, from another thread, task or connection, goes through the channel.

use std::cell::RefCell;

use super::handle::Command;

struct Current {
    id: usize,
    commands: Vec<Command>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Run `f` as a callback of connection `id`. Commands issued for `id` inside
/// `f` are appended to `commands` (which the caller drains afterwards).
/// Nested scopes (another connection's callback run inside this one) save and
/// restore the outer scope.
pub(crate) fn scope<R>(id: usize, commands: &mut Vec<Command>, f: impl FnOnce() -> R) -> R {
    let outer = CURRENT.with(|c| {
        c.borrow_mut().replace(Current {
            id,
            commands: std::mem::take(commands),
        })
    });
    // Restore the outer scope even if `f` unwinds.
    struct Restore<'a> {
        outer: Option<Option<Current>>,
        commands: &'a mut Vec<Command>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let outer = self.outer.take().unwrap_or(None);
            let mine = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
            if let Some(mine) = mine {
                *self.commands = mine.commands;
            }
        }
    }
    let _restore = Restore {
        outer: Some(outer),
        commands,
    };
    f()
}

/// If the current thread is inside a callback of connection `id`, queue `cmd`
/// there and return `None`; otherwise hand `cmd` back to be sent over the channel.
pub(crate) fn try_push(id: usize, cmd: Command) -> Option<Command> {
    CURRENT.with(|c| match c.try_borrow_mut() {
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
