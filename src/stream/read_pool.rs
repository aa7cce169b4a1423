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
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

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

/// The error of a reader that replaced the `ReadBuf` it was given.
const SWAPPED_BUFFER: &str = "the reader replaced the read buffer it was given";

/// Read from `io` into the spare capacity of `buf`, extending `buf` by the
/// bytes read (tokio-util's `poll_read_buf` without the generic `BufMut`
/// layers: this is on the path of every read).
#[inline(always)]
pub(crate) fn poll_read<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut read_buf = ReadBuf::uninit(buf.spare_capacity_mut());
    let start = read_buf.filled().as_ptr();
    ready!(Pin::new(io).poll_read(cx, &mut read_buf))?;
    let filled = read_buf.filled();
    if start != filled.as_ptr() {
        // A faulty reader swapped in a buffer of its own: what it filled
        // is not ours to hand out.
        return Poll::Ready(Err(io::Error::other(SWAPPED_BUFFER)));
    }
    let n = filled.len();
    // SAFETY: `ReadBuf` guarantees that its first `filled().len()` bytes are
    // initialized, and they are the `n` bytes right after `buf.len()`: the
    // spare capacity it was built on (its start is checked above, and a
    // `ReadBuf` never fills more than its capacity).
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
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

    /// Hands out `chunks` one per read, then EOF.
    struct Chunks(Vec<&'static [u8]>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.0.is_empty() {
                buf.put_slice(self.0.remove(0));
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Swaps in a buffer of its own, as a faulty reader might.
    struct Swapper;

    impl AsyncRead for Swapper {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let own: &'static mut [u8] = Box::leak(Box::new([7u8; 4]));
            *buf = ReadBuf::new(own);
            buf.set_filled(4);
            Poll::Ready(Ok(()))
        }
    }

    fn read(io: &mut (impl AsyncRead + Unpin), buf: &mut BytesMut) -> io::Result<usize> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match poll_read(io, &mut cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn reads_extend_the_buffer_after_what_it_holds() {
        let mut io = Chunks(vec![b"abc", b"de"]);
        let mut buf = BytesMut::with_capacity(16);
        assert_eq!(read(&mut io, &mut buf).unwrap(), 3);
        assert_eq!(read(&mut io, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..], b"abcde");
        assert_eq!(read(&mut io, &mut buf).unwrap(), 0, "EOF");
        assert_eq!(&buf[..], b"abcde");
    }

    #[test]
    fn a_reader_that_swaps_the_buffer_gets_an_error() {
        let mut buf = BytesMut::with_capacity(16);
        let err = read(&mut Swapper, &mut buf).unwrap_err();
        assert_eq!(err.to_string(), SWAPPED_BUFFER);
        assert!(
            buf.is_empty(),
            "nothing of the reader's own buffer is taken"
        );
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
