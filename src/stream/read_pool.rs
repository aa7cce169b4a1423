//! The per-thread read buffer that plain [`Protocol`](crate::Protocol)s
//! receive from.
//!
//! Each runtime worker thread keeps one 128 KiB allocation, a [`Pool`]. Reads
//! fill it front to back, and each read's bytes are handed to
//! `data_received` as a zero-copy [`Bytes`] slice of it. When the room left
//! runs low the pool starts over: in the same allocation if every slice
//! handed out has been dropped, otherwise in a fresh one (the old one is
//! freed with its last slice). So an idle connection holds no read buffer at
//! all, as in uvloop, where one buffer serves the whole loop.
//!
//! The allocation is held as one frozen [`Bytes`] and each slice is a clone
//! of it, narrowed (a reference-count increment and a few inlined steps),
//! which costs less than half of splitting a [`BytesMut`] (two calls into
//! `bytes` per read; docs/performance.md). The price is one `unsafe` block:
//! reads write into the part of that `Bytes` no slice covers yet.
//!
//! A driver borrows the pool for one whole poll ([`Loan`]), so the
//! thread-local is reached once per poll however many reads the poll makes.
//! [`poll_read_buf`] is the same read into a protocol's own [`BytesMut`]
//! (`BufferedProtocol::get_buffer`).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{Ordering, fence};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Size of a pool allocation, and the most one read asks for.
pub(crate) const CHUNK: usize = 128 * 1024;
/// Below this much room the pool starts over before reading, so every read
/// can take at least 64 KiB (fewer reads per megabyte when streaming).
const MIN_SPARE: usize = 64 * 1024;

thread_local! {
    /// Empty while the pool is lent out ([`Loan`]), and before first use.
    static POOL: Cell<Option<Box<Pool>>> = const { Cell::new(None) };
}

/// The error of a reader that replaced the `ReadBuf` it was given.
const SWAPPED_BUFFER: &str = "the reader replaced the read buffer it was given";

/// One thread's read buffer (see the module docs).
pub(crate) struct Pool {
    /// The whole allocation, `CHUNK` initialised bytes (empty before the
    /// first read). Only sliced, never read through.
    chunk: Bytes,
    /// `chunk`'s first byte, with the right to write (it comes from the
    /// vector's own pointer, never from a reference; see `refill`).
    base: *mut u8,
    /// `chunk[..filled]` has been handed out and may be shared;
    /// `chunk[filled..]` is covered by no slice: only this pool touches it.
    filled: usize,
}

/// This thread's pool, lent out for one poll: taken from the thread-local
/// by [`take`](Loan::take) and put back by [`give_back`](Loan::give_back).
/// No closure is involved, so the driver's whole poll inlines around it.
///
/// If the pool is already lent out on this thread (a poll nested inside a
/// poll), the loan gets a pool of its own; when both are back, the thread
/// keeps one. After this thread's thread-locals were destroyed (a poll run
/// from another thread-local's destructor) the loan also gets its own pool,
/// freed when it is given back. A loan dropped without being given back
/// (a poll that unwinds) frees its pool; the thread starts a new one.
pub(crate) struct Loan {
    pool: Box<Pool>,
}

impl Loan {
    /// Take this thread's pool (or a new one, see [`Loan`]).
    #[inline]
    pub(crate) fn take() -> Loan {
        let pool = POOL.try_with(Cell::take).ok().flatten();
        Loan {
            pool: pool.unwrap_or_else(Loan::new_pool),
        }
    }

    #[cold]
    #[inline(never)]
    fn new_pool() -> Box<Pool> {
        Box::new(Pool::new())
    }

    /// The pool lent.
    #[inline]
    pub(crate) fn pool(&mut self) -> &mut Pool {
        &mut self.pool
    }

    /// Put the pool back for the thread's next poll.
    #[inline]
    pub(crate) fn give_back(self) {
        let pool = Some(self.pool);
        // If the thread-local is gone, the closure is dropped uncalled, and
        // the pool with it.
        let _ = POOL.try_with(move |slot| {
            let other = slot.replace(pool);
            if other.is_some() {
                // A nested loan's pool came back first: keep one.
                drop_pool(other);
            }
        });
    }
}

#[cold]
#[inline(never)]
fn drop_pool(pool: Option<Box<Pool>>) {
    drop(pool);
}

/// Run one read of `io` into `read_buf` and return how many bytes it
/// filled. A faulty reader that swapped in a buffer of its own gets an
/// error: what it filled is not ours to hand out.
#[inline(always)]
fn read_in_place<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    read_buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<usize>> {
    let start = read_buf.filled().as_ptr();
    ready!(Pin::new(io).poll_read(cx, read_buf))?;
    let filled = read_buf.filled();
    if start != filled.as_ptr() {
        return Poll::Ready(Err(io::Error::other(SWAPPED_BUFFER)));
    }
    Poll::Ready(Ok(filled.len()))
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            chunk: Bytes::new(),
            base: std::ptr::null_mut(),
            filled: 0,
        }
    }

    /// Room left for the next read.
    #[inline]
    fn spare(&self) -> usize {
        self.chunk.len() - self.filled
    }

    /// Start over when the room left is below `MIN_SPARE`.
    #[inline(never)]
    fn refill(&mut self) {
        if self.chunk.len() == CHUNK && self.chunk.is_unique() {
            // Every slice is gone: the whole allocation is ours again. The
            // fence orders the slices' last uses (their owners' releasing
            // drops, read by `is_unique`) before our writes.
            fence(Ordering::Acquire);
        } else {
            // Initialised (zeroed) once, so reads may use it as initialised
            // memory. The writing pointer is taken from the vector itself
            // (`Vec::as_mut_ptr` creates no reference, so it keeps the right
            // to write); `Bytes::as_ptr` would not do, as it goes through a
            // shared `&[u8]`. With `len != capacity`, `Bytes::from(Vec)`
            // keeps the vector's allocation and pointer as they are (and
            // its clones and drops are a bare reference count); the debug
            // assertion checks that it still does.
            let mut v = Vec::with_capacity(CHUNK + 1);
            v.resize(CHUNK, 0u8);
            let base = v.as_mut_ptr();
            self.chunk = Bytes::from(v);
            debug_assert_eq!(self.chunk.as_ptr(), base.cast_const());
            self.base = base;
        }
        self.filled = 0;
    }

    /// Read from `io` into the pool's free room. The bytes read come back as
    /// a slice of the pool, empty at EOF.
    #[inline(always)]
    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Bytes>> {
        if self.spare() < MIN_SPARE {
            self.refill();
        }
        // SAFETY: `base..base + chunk.len()` is one live allocation of
        // initialised bytes that `chunk` keeps alive, and `base` may write
        // to it (see `refill`). The part from `filled` on is covered by no
        // slice handed out (they all end at or before `filled`, which only
        // grows until `refill` resets it, and that happens only when
        // `chunk` is the allocation's sole owner), and `chunk` itself is
        // never read through. So nothing else reads or writes these bytes
        // while the `&mut` lives; it ends before the slice below is cut.
        let room =
            unsafe { std::slice::from_raw_parts_mut(self.base.add(self.filled), self.spare()) };
        let n = ready!(read_in_place(io, cx, &mut ReadBuf::new(room)))?;
        if n == 0 {
            return Poll::Ready(Ok(Bytes::new()));
        }
        // `Bytes::slice`, by hand: its call and range checks cost more than
        // these inlined steps (a clone is one reference-count increment).
        let mut data = self.chunk.clone();
        data.advance(self.filled);
        data.truncate(n);
        self.filled += n;
        Poll::Ready(Ok(data))
    }
}

/// Read from `io` into the spare capacity of `buf`, extending `buf` by the
/// bytes read (tokio-util's `poll_read_buf` without the generic `BufMut`
/// layers). For buffered protocols' own buffers.
#[inline]
pub(crate) fn poll_read_buf<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let n = ready!(read_in_place(
        io,
        cx,
        &mut ReadBuf::uninit(buf.spare_capacity_mut())
    ))?;
    // SAFETY: `ReadBuf` guarantees that its first `filled().len()` bytes are
    // initialized, and they are the `n` bytes right after `buf.len()`: the
    // spare capacity it was built on (`read_in_place` checked that its start
    // did not move, and a `ReadBuf` never fills more than its capacity).
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `chunks` one per read, then EOF.
    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.0.is_empty() {
                let chunk = self.0.remove(0);
                buf.put_slice(&chunk);
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

    fn ready<T>(p: Poll<T>) -> T {
        match p {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("pending"),
        }
    }

    fn read(pool: &mut Pool, io: &mut (impl AsyncRead + Unpin)) -> io::Result<Bytes> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        ready(pool.poll_read(io, &mut cx))
    }

    fn read_bytes(pool: &mut Pool, bytes: &[u8]) -> Bytes {
        read(pool, &mut Chunks(vec![bytes.to_vec()])).unwrap()
    }

    /// Use up the room so that the next read starts over.
    fn use_up(pool: &mut Pool) {
        pool.filled = pool.chunk.len() - MIN_SPARE + 1;
    }

    #[test]
    fn reads_hand_out_consecutive_slices_and_eof_is_empty() {
        let mut pool = Pool::new();
        let mut io = Chunks(vec![b"abc".to_vec(), b"de".to_vec()]);
        let a = read(&mut pool, &mut io).unwrap();
        let b = read(&mut pool, &mut io).unwrap();
        assert_eq!((&a[..], &b[..]), (&b"abc"[..], &b"de"[..]));
        assert_eq!(
            b.as_ptr(),
            a.as_ptr().wrapping_add(3),
            "one buffer, no copy"
        );
        assert!(read(&mut pool, &mut io).unwrap().is_empty(), "EOF");
        assert_eq!(pool.chunk.len(), CHUNK);
    }

    #[test]
    fn the_allocation_is_reused_once_every_slice_is_gone() {
        let mut pool = Pool::new();
        let first = read_bytes(&mut pool, b"hello");
        let start = first.as_ptr();
        drop(first);
        use_up(&mut pool);
        let again = read_bytes(&mut pool, b"world");
        assert_eq!(again.as_ptr(), start, "the whole allocation came back");
        assert_eq!(&again[..], b"world");
    }

    #[test]
    fn a_held_slice_keeps_its_bytes_and_forces_a_new_allocation() {
        let mut pool = Pool::new();
        let held = read_bytes(&mut pool, &[1u8; 100]);
        use_up(&mut pool);
        let next = read_bytes(&mut pool, &[2u8; 100]);
        assert!(next.as_ptr() != held.as_ptr(), "not written over");
        assert!(held.iter().all(|&x| x == 1));
        assert!(next.iter().all(|&x| x == 2));
        assert!(pool.spare() >= MIN_SPARE);
    }

    #[test]
    fn slices_held_on_other_threads_never_change() {
        // Many reads with distinct contents, some slices kept (and read) on
        // other threads while the pool goes on writing and starting over.
        let mut pool = Pool::new();
        let (tx, rx) = std::sync::mpsc::channel::<(u8, Bytes)>();
        let checker = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for (tag, data) in rx {
                assert!(data.iter().all(|&x| x == tag), "slice {tag} changed");
                kept.push((tag, data));
                if kept.len() > 8 {
                    kept.remove(0);
                }
                for (tag, data) in &kept {
                    assert!(data.iter().all(|&x| x == *tag), "slice {tag} changed");
                }
            }
        });
        // Fewer rounds under Miri, which runs this test in minutes otherwise.
        for i in 0..(if cfg!(miri) { 300 } else { 3_000usize }) {
            let tag = (i % 251) as u8;
            let data = read_bytes(&mut pool, &vec![tag; 1 + i % 4096]);
            if i % 3 == 0 {
                tx.send((tag, data)).unwrap();
            }
        }
        drop(tx);
        checker.join().unwrap();
    }

    #[test]
    // The faulty reader leaks its own 4-byte buffer (a `ReadBuf` cannot
    // borrow anything shorter-lived), which Miri's leak check reports.
    #[cfg_attr(miri, ignore)]
    fn a_reader_that_swaps_the_buffer_gets_an_error() {
        let mut pool = Pool::new();
        let err = read(&mut pool, &mut Swapper).unwrap_err();
        assert_eq!(err.to_string(), SWAPPED_BUFFER);
        assert_eq!(pool.filled, 0, "nothing handed out");

        let mut buf = BytesMut::with_capacity(16);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let err = ready(poll_read_buf(&mut Swapper, &mut cx, &mut buf)).unwrap_err();
        assert_eq!(err.to_string(), SWAPPED_BUFFER);
        assert!(
            buf.is_empty(),
            "nothing of the reader's own buffer is taken"
        );
    }

    #[test]
    fn buffered_reads_extend_the_buffer_after_what_it_holds() {
        let mut io = Chunks(vec![b"abc".to_vec(), b"de".to_vec()]);
        let mut buf = BytesMut::with_capacity(16);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(ready(poll_read_buf(&mut io, &mut cx, &mut buf)).unwrap(), 3);
        assert_eq!(ready(poll_read_buf(&mut io, &mut cx, &mut buf)).unwrap(), 2);
        assert_eq!(&buf[..], b"abcde");
        assert_eq!(ready(poll_read_buf(&mut io, &mut cx, &mut buf)).unwrap(), 0);
        assert_eq!(&buf[..], b"abcde");
    }

    #[test]
    fn a_nested_loan_gets_its_own_pool() {
        let mut outer = Loan::take();
        let a = read_bytes(outer.pool(), b"outer");
        let mut inner = Loan::take();
        let b = read_bytes(inner.pool(), b"inner");
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!((&a[..], &b[..]), (&b"outer"[..], &b"inner"[..]));
        inner.give_back();
        outer.give_back();
        // One pool is kept, and the next loan reads into it.
        let mut next = Loan::take();
        let c = read_bytes(next.pool(), b"next");
        assert_eq!(&c[..], b"next");
    }

    #[test]
    fn a_loan_returns_the_pool_it_took() {
        let mut loan = Loan::take();
        let first = read_bytes(loan.pool(), b"x").as_ptr();
        loan.give_back();
        let mut loan = Loan::take();
        let second = read_bytes(loan.pool(), b"y").as_ptr();
        // The same allocation, just past the first read.
        assert_eq!(second, first.wrapping_add(1));
    }

    #[test]
    fn a_loan_dropped_by_a_panic_frees_its_pool() {
        let r = std::panic::catch_unwind(|| {
            let mut loan = Loan::take();
            let _a = read_bytes(loan.pool(), b"a");
            panic!("unwind with the pool lent");
        });
        assert!(r.is_err());
        let mut loan = Loan::take();
        assert_eq!(&read_bytes(loan.pool(), b"b")[..], b"b");
        loan.give_back();
    }

    #[test]
    fn loans_work_in_thread_local_destructors() {
        struct OnDrop;
        impl Drop for OnDrop {
            fn drop(&mut self) {
                for _ in 0..2 {
                    let mut loan = Loan::take();
                    let mut inner = Loan::take();
                    assert_eq!(&read_bytes(loan.pool(), b"late")[..], b"late");
                    assert_eq!(&read_bytes(inner.pool(), b"in")[..], b"in");
                    inner.give_back();
                    loan.give_back();
                }
            }
        }
        thread_local! { static EARLY: OnDrop = const { OnDrop }; }
        thread_local! { static LATE: OnDrop = const { OnDrop }; }
        std::thread::spawn(|| {
            // Registered before POOL: its destructor may run after POOL's,
            // when the pool's thread-local is gone.
            EARLY.with(|_| {});
            let mut loan = Loan::take();
            let _ = read_bytes(loan.pool(), b"x");
            loan.give_back();
            LATE.with(|_| {});
        })
        .join()
        .unwrap();
    }
}
