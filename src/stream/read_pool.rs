//! The per-thread read buffer that plain [`Protocol`](crate::Protocol)s
//! receive from.
//!
//! Each runtime worker thread keeps one 128 KiB [`BytesMut`]. A read fills its
//! spare capacity and the filled part is split off as a zero-copy [`Bytes`]
//! for `data_received`. When the spare room runs low the pool calls
//! [`BytesMut::reserve`], which takes the whole allocation back (without
//! copying) once every slice handed out has been dropped, and otherwise
//! starts a fresh one. So an idle connection holds no read buffer at all, as
//! in uvloop, where one buffer serves the whole loop.
//!
//! A driver borrows the buffer for one whole poll ([`lend`]), so the
//! thread-local is reached once per poll however many reads the poll makes.
//!
//! [`Bytes`]: bytes::Bytes

use std::cell::RefCell;

use bytes::BytesMut;

/// Size of a pool allocation, and the most one read asks for.
pub(crate) const CHUNK: usize = 128 * 1024;
/// Below this much spare room the pool is refilled before reading, so every
/// read can take at least 64 KiB (fewer reads per megabyte when streaming).
const MIN_SPARE: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Run `f` with this thread's read buffer (empty; call [`refill`] before
/// reading into it). If the buffer is already lent out on this thread (a
/// poll nested inside a poll), `f` gets a buffer of its own.
pub(crate) fn lend<R>(f: impl FnOnce(&mut BytesMut) -> R) -> R {
    POOL.with(|pool| match pool.try_borrow_mut() {
        Ok(mut buf) => {
            debug_assert!(buf.is_empty());
            f(&mut buf)
        }
        Err(_) => f(&mut BytesMut::new()),
    })
}

/// Make sure the next read can take at least `MIN_SPARE` bytes.
#[inline]
pub(crate) fn refill(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_SPARE {
        buf.reserve(CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's buffer, refilled, as a driver has it before reading.
    fn with_refilled<R>(f: impl FnOnce(&mut BytesMut) -> R) -> R {
        lend(|buf| {
            refill(buf);
            f(buf)
        })
    }

    #[test]
    fn slices_come_back_to_the_pool() {
        let (ptr, data) = with_refilled(|b| {
            b.extend_from_slice(b"hello");
            (b.as_ptr(), b.split_to(5).freeze())
        });
        assert_eq!(&data[..], b"hello");
        drop(data);
        with_refilled(|b| {
            let room = b.capacity() - MIN_SPARE + 1;
            b.resize(room, 0);
            drop(b.split_to(room));
        });
        let again = with_refilled(|b| b.as_ptr());
        assert_eq!(again, ptr, "the whole allocation came back");
    }

    #[test]
    fn a_held_slice_forces_a_new_allocation() {
        let held = with_refilled(|b| {
            let room = b.capacity() - MIN_SPARE + 1;
            b.resize(room, 1);
            b.split_to(room).freeze()
        });
        let (ptr, spare) = with_refilled(|b| (b.as_ptr(), b.capacity()));
        assert_ne!(ptr, held.as_ptr());
        assert!(spare >= MIN_SPARE);
        assert!(held.iter().all(|&x| x == 1));
    }

    #[test]
    fn a_nested_loan_gets_its_own_buffer() {
        with_refilled(|outer| {
            let outer_ptr = outer.as_ptr();
            let inner_ptr = with_refilled(|inner| inner.as_ptr());
            assert_ne!(outer_ptr, inner_ptr);
        });
    }
}
