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

/// Run `f` with this thread's read buffer (empty, with at least
/// `MIN_SPARE` bytes of spare capacity). If the pool is already in use on
/// this thread (a read nested inside a read), `f` gets a fresh buffer.
pub(crate) fn with_buffer<R>(f: impl FnOnce(&mut BytesMut) -> R) -> R {
    POOL.with(|pool| match pool.try_borrow_mut() {
        Ok(mut buf) => {
            debug_assert!(buf.is_empty());
            if buf.capacity() - buf.len() < MIN_SPARE {
                buf.reserve(CHUNK);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut BytesMut::with_capacity(CHUNK)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_come_back_to_the_pool() {
        let first = with_buffer(|b| {
            b.extend_from_slice(b"hello");
            let ptr = b.as_ptr();
            let data = b.split_to(5).freeze();
            (ptr, data)
        });
        assert_eq!(&first.1[..], b"hello");
        drop(first.1);
        // Use up the spare room so the next call must refill.
        with_buffer(|b| {
            let room = b.capacity() - MIN_SPARE + 1;
            b.resize(room, 0);
            drop(b.split_to(room));
        });
        // Every slice was dropped: the refill reuses the same allocation.
        let ptr = with_buffer(|b| b.as_ptr());
        assert_eq!(ptr, first.0);
    }

    #[test]
    fn a_held_slice_forces_a_new_allocation() {
        let held = with_buffer(|b| {
            let room = b.capacity() - MIN_SPARE + 1;
            b.resize(room, 1);
            b.split_to(room).freeze()
        });
        let ptr = with_buffer(|b| b.as_ptr());
        assert_ne!(ptr, held.as_ptr());
        assert!(held.iter().all(|&x| x == 1));
    }
}
