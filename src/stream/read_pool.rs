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
//! A driver [`take`]s the buffer for the reads of one poll and [`put`]s it
//! back before the poll returns, so the buffer is lent, never shared: two
//! thread-local accesses per poll, however many reads it makes.
//!
//! [`Bytes`]: bytes::Bytes

use std::cell::Cell;

use bytes::BytesMut;

/// Size of a pool allocation, and the most one read asks for.
pub(crate) const CHUNK: usize = 128 * 1024;
/// Below this much spare room the pool is refilled before reading, so every
/// read can take at least 64 KiB (fewer reads per megabyte when streaming).
const MIN_SPARE: usize = 64 * 1024;

thread_local! {
    static POOL: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Borrow this thread's read buffer (empty). If it is already lent out on
/// this thread (a read nested inside a read), or the thread has none yet,
/// the caller gets a new one.
#[inline]
pub(crate) fn take() -> BytesMut {
    POOL.with(Cell::take).unwrap_or_default()
}

/// Give the buffer back to this thread's pool.
#[inline]
pub(crate) fn put(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    // A buffer that was lent out meanwhile (see `take`) is dropped here.
    drop(POOL.with(|pool| pool.replace(Some(buf))));
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

    /// Take the pool's buffer, refilled, as a driver does before reading.
    fn lend() -> BytesMut {
        let mut buf = take();
        refill(&mut buf);
        buf
    }

    #[test]
    fn slices_come_back_to_the_pool() {
        let mut b = lend();
        b.extend_from_slice(b"hello");
        let ptr = b.as_ptr();
        let data = b.split_to(5).freeze();
        put(b);
        assert_eq!(&data[..], b"hello");
        drop(data);
        let mut b = lend();
        let room = b.capacity() - MIN_SPARE + 1;
        b.resize(room, 0);
        drop(b.split_to(room));
        refill(&mut b);
        assert_eq!(b.as_ptr(), ptr, "the whole allocation came back");
        put(b);
    }

    #[test]
    fn a_held_slice_forces_a_new_allocation() {
        let mut b = lend();
        let room = b.capacity() - MIN_SPARE + 1;
        b.resize(room, 1);
        let held = b.split_to(room).freeze();
        refill(&mut b);
        assert_ne!(b.as_ptr(), held.as_ptr());
        assert!(b.capacity() >= MIN_SPARE);
        put(b);
        assert!(held.iter().all(|&x| x == 1));
    }

    #[test]
    fn a_nested_borrow_gets_its_own_buffer() {
        let mut outer = lend();
        let mut inner = lend();
        outer.extend_from_slice(b"a");
        inner.extend_from_slice(b"b");
        assert_ne!(outer.as_ptr(), inner.as_ptr());
        drop(outer.split_to(1));
        drop(inner.split_to(1));
        put(inner);
        put(outer);
        let again = take();
        assert!(again.capacity() > 0, "the last buffer put back is kept");
        put(again);
    }
}
