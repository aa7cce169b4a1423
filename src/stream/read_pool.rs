//! The per-thread read buffer that plain [`Protocol`](crate::Protocol)s
//! receive from.
//!
//! Each runtime worker thread keeps a [`Pool`]: a 128 KiB *chunk* that reads
//! go into, front to back, and a 1 KiB *slab* for small reads. What a read
//! brings is handed to `data_received` as a zero-copy [`Bytes`] slice:
//!
//! * of the chunk, for a read of more than [`COPY_MAX`] bytes. The slice
//!   shares the chunk's allocation: keeping it, or any slice of it, keeps
//!   the whole 128 KiB alive until it is dropped;
//! * of the slab, for a small read: its bytes are copied there (a few
//!   dozen instructions) and the chunk's room is used again by the next
//!   read. A protocol that keeps such a `Bytes` (a partial frame waiting
//!   for the rest) keeps at most one 1 KiB slab alive, shared with other
//!   small reads.
//!
//! When the chunk's room runs low the pool starts over: in the same
//! allocation if every slice of it has been dropped, else in a chunk it
//! retired earlier whose slices are all gone, else in a new one (zeroed
//! once, when it is made: reads treat the memory as initialised). Up to
//! [`RETIRED_MAX`] chunks wait to be reused, so a stream whose data is still
//! queued for sending when the pool starts over (an echo) rotates a few
//! chunks instead of zeroing a new one each time. The slab starts over the
//! same way, with a retired list of its own (a connection's small read
//! still queued for sending then costs no allocation). An idle
//! connection holds no read buffer at all, as in uvloop, where one buffer
//! serves the whole loop.
//!
//! Each allocation is held as one frozen [`Bytes`] and each slice is a
//! clone of it, narrowed (a reference-count increment and a few inlined
//! steps). The price is one `unsafe` block, [`Region::room`]: reads (and
//! small-read copies) write into the part of that `Bytes` no slice covers
//! yet. Measured against the safe alternative (a `BytesMut` read into its
//! spare capacity and split): 2,584 against 2,656 instructions per 64-byte
//! request and response, 72 fewer, 3% of the whole request and a third of
//! the margin to the 1.10x target over raw tokio (docs/performance.md).
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

/// Size of a pool chunk, and the most one read asks for.
pub(crate) const CHUNK: usize = 128 * 1024;
/// Reads of at most this many bytes are copied into the slab (see the
/// module docs).
pub(crate) const COPY_MAX: usize = 512;
/// Size of a slab: what a kept small read can keep alive at most.
const SLAB: usize = 1024;
/// Chunks (and slabs) kept for reuse while slices of them are still alive.
pub(crate) const RETIRED_MAX: usize = 2;
/// Below this much room the pool starts over before reading, so every read
/// can take at least 64 KiB (fewer reads per megabyte when streaming).
const MIN_SPARE: usize = 64 * 1024;

thread_local! {
    /// Empty while the pool is lent out ([`Loan`]), and before first use.
    static POOL: Cell<Option<Box<Pool>>> = const { Cell::new(None) };
}

/// The error of a reader that replaced the `ReadBuf` it was given.
const SWAPPED_BUFFER: &str = "the reader replaced the read buffer it was given";

/// One allocation that reads (or small-read copies) fill front to back and
/// hand out slices of.
struct Region {
    /// The whole allocation, initialised (empty before first use). Only
    /// sliced, never read through.
    chunk: Bytes,
    /// `chunk`'s first byte, with the right to write (it comes from the
    /// vector's own pointer, never from a reference; see `fresh`).
    base: *mut u8,
    /// `chunk[..filled]` has been handed out and may be shared;
    /// `chunk[filled..]` is covered by no slice: only this region touches it.
    filled: usize,
}

impl Region {
    const fn new() -> Region {
        Region {
            chunk: Bytes::new(),
            base: std::ptr::null_mut(),
            filled: 0,
        }
    }

    /// A new allocation of `size` zeroed (so initialised) bytes. The writing
    /// pointer is taken from the vector itself (`Vec::as_mut_ptr` creates no
    /// reference, so it keeps the right to write); `Bytes::as_ptr` would not
    /// do, as it goes through a shared `&[u8]`. With `len != capacity`,
    /// `Bytes::from(Vec)` keeps the vector's allocation and pointer as they
    /// are (and its clones and drops are a bare reference count); the debug
    /// assertion checks that it still does.
    fn fresh(size: usize) -> Region {
        let mut v = Vec::with_capacity(size + 1);
        v.resize(size, 0u8);
        let base = v.as_mut_ptr();
        let chunk = Bytes::from(v);
        debug_assert_eq!(chunk.as_ptr(), base.cast_const());
        Region {
            chunk,
            base,
            filled: 0,
        }
    }

    /// Room left.
    #[inline]
    fn spare(&self) -> usize {
        self.chunk.len() - self.filled
    }

    /// Whether no slice of the allocation is alive: it can start over.
    #[inline]
    fn is_free(&self) -> bool {
        if self.chunk.is_unique() {
            // The fence orders the slices' last uses (their owners'
            // releasing drops, read by `is_unique`) before our writes.
            fence(Ordering::Acquire);
            return true;
        }
        false
    }

    /// The room left, to write into.
    #[inline(always)]
    fn room(&mut self) -> &mut [u8] {
        // SAFETY: `base..base + chunk.len()` is one live allocation of
        // initialised bytes that `chunk` keeps alive, and `base` may write
        // to it (see `fresh`). The part from `filled` on is covered by no
        // slice handed out (they all end at or before `filled`, which only
        // grows until the region starts over, and that happens only when
        // `is_free` found `chunk` the allocation's sole owner), and `chunk`
        // itself is never read through. So nothing else reads or writes
        // these bytes while the `&mut` lives: it borrows `self`, so it ends
        // before `take` cuts a slice.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(self.filled), self.spare()) }
    }

    /// Hand out the next `n` bytes of the room (filled by the caller).
    #[inline(always)]
    fn take(&mut self, n: usize) -> Bytes {
        // `Bytes::slice`, by hand: its call and range checks cost more than
        // these inlined steps (a clone is one reference-count increment).
        let mut data = self.chunk.clone();
        data.advance(self.filled);
        data.truncate(n);
        self.filled += n;
        data
    }
}

/// One thread's read buffer (see the module docs).
pub(crate) struct Pool {
    chunk: Region,
    slab: Region,
    /// Chunks that still had slices alive when the pool started over.
    retired: Vec<Region>,
    /// The same for slabs.
    retired_slabs: Vec<Region>,
    /// A chunk was allocated (no free one to start over in) since the last
    /// [`take_fresh`](Pool::take_fresh).
    fresh: bool,
}

/// Start `current` (a region of `size` bytes, or a new, empty one) over: in
/// place if no slice of it is alive, else in a free retired region, else in
/// a new one (zeroed once); a region still shared is retired, and at most
/// [`RETIRED_MAX`] are kept (the oldest is dropped, and freed with its last
/// slice). Returns whether it allocated.
fn start_over(current: &mut Region, retired: &mut Vec<Region>, size: usize) -> bool {
    if current.chunk.len() == size && current.is_free() {
        current.filled = 0;
        return false;
    }
    let (next, fresh) = match retired.iter().position(Region::is_free) {
        Some(i) => (retired.swap_remove(i), false),
        None => (Region::fresh(size), true),
    };
    let old = std::mem::replace(current, next);
    current.filled = 0;
    if old.chunk.len() == size {
        if retired.len() == RETIRED_MAX {
            retired.remove(0);
        }
        retired.push(old);
    }
    fresh
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
            chunk: Region::new(),
            slab: Region::new(),
            retired: Vec::new(),
            retired_slabs: Vec::new(),
            fresh: false,
        }
    }

    /// Whether a chunk was allocated since the last call: every slice of
    /// the earlier ones is still alive somewhere (another task's write
    /// queue, in a relay). A reader that yields then lets their holders run
    /// and drop them, instead of allocating (and zeroing) one chunk after
    /// another.
    #[inline]
    pub(crate) fn take_fresh(&mut self) -> bool {
        std::mem::take(&mut self.fresh)
    }

    /// Room left for the next read.
    #[inline]
    fn spare(&self) -> usize {
        self.chunk.spare()
    }

    /// Start the chunk over when its room left is below `MIN_SPARE`: in the
    /// same allocation, a retired one, or a new one (see the module docs).
    #[inline(never)]
    fn refill(&mut self) {
        self.fresh |= start_over(&mut self.chunk, &mut self.retired, CHUNK);
    }

    /// Make room for `n` bytes (at most `SLAB`) in the slab: the same way.
    #[inline(never)]
    fn refill_slab(&mut self, n: usize) {
        debug_assert!(n <= SLAB);
        let _ = start_over(&mut self.slab, &mut self.retired_slabs, SLAB);
    }

    /// Read at most `max` bytes (at least 1) from `io` into the pool's free
    /// room. The bytes read come back as a slice of the chunk, or of the slab
    /// for a small read (see the module docs); empty at EOF.
    #[inline(always)]
    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Bytes>> {
        if self.spare() < MIN_SPARE {
            self.refill();
        }
        let room = self.chunk.room();
        let room = if max < room.len() {
            &mut room[..max]
        } else {
            room
        };
        let n = ready!(read_in_place(io, cx, &mut ReadBuf::new(room)))?;
        if n == 0 {
            return Poll::Ready(Ok(Bytes::new()));
        }
        if n > COPY_MAX {
            return Poll::Ready(Ok(self.chunk.take(n)));
        }
        if self.slab.spare() < n {
            self.refill_slab(n);
        }
        self.slab.room()[..n].copy_from_slice(&self.chunk.room()[..n]);
        Poll::Ready(Ok(self.slab.take(n)))
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
        ready(pool.poll_read(io, &mut cx, usize::MAX))
    }

    fn read_bytes(pool: &mut Pool, bytes: &[u8]) -> Bytes {
        read(pool, &mut Chunks(vec![bytes.to_vec()])).unwrap()
    }

    /// A read large enough to be a slice of the chunk.
    const LARGE: usize = COPY_MAX + 1;

    /// Use up the chunk's room so that the next read starts over.
    fn use_up(pool: &mut Pool) {
        pool.chunk.filled = pool.chunk.chunk.len() - MIN_SPARE + 1;
    }

    #[test]
    fn large_reads_hand_out_consecutive_slices_and_eof_is_empty() {
        let mut pool = Pool::new();
        let mut io = Chunks(vec![vec![1u8; LARGE], vec![2u8; LARGE]]);
        let a = read(&mut pool, &mut io).unwrap();
        let b = read(&mut pool, &mut io).unwrap();
        assert!(a.len() == LARGE && a.iter().all(|&x| x == 1));
        assert!(b.len() == LARGE && b.iter().all(|&x| x == 2));
        assert_eq!(
            b.as_ptr(),
            a.as_ptr().wrapping_add(LARGE),
            "one buffer, no copy"
        );
        assert!(read(&mut pool, &mut io).unwrap().is_empty(), "EOF");
        assert_eq!(pool.chunk.chunk.len(), CHUNK);
    }

    #[test]
    fn small_reads_are_copied_into_the_slab_and_leave_the_chunk_room() {
        let mut pool = Pool::new();
        let a = read_bytes(&mut pool, b"abc");
        let b = read_bytes(&mut pool, &[5u8; COPY_MAX]);
        assert_eq!(&a[..], b"abc");
        assert!(b.len() == COPY_MAX && b.iter().all(|&x| x == 5));
        assert_eq!(
            b.as_ptr(),
            a.as_ptr().wrapping_add(3),
            "consecutive in the slab"
        );
        assert_eq!(pool.chunk.filled, 0, "the chunk's room is used again");
        assert_eq!(pool.slab.chunk.len(), SLAB);
        // A kept small read keeps its slab only: the next slab is new, and
        // the chunk is reused as soon as it starts over.
        let c = read_bytes(&mut pool, &[6u8; COPY_MAX]);
        assert!(c.iter().all(|&x| x == 6));
        assert!(
            c.as_ptr() != a.as_ptr().wrapping_add(3 + COPY_MAX),
            "a new slab"
        );
        assert_eq!(&a[..], b"abc");
        // Once every slice of the slab is gone, it starts over in place.
        let slab = c.as_ptr();
        drop(c);
        let d = read_bytes(&mut pool, &[7u8; COPY_MAX]);
        let e = read_bytes(&mut pool, &[8u8; COPY_MAX]);
        assert_eq!(d.as_ptr(), slab.wrapping_add(COPY_MAX));
        drop(d);
        let f = read_bytes(&mut pool, &[9u8; COPY_MAX]);
        assert!(e.iter().all(|&x| x == 8) && f.iter().all(|&x| x == 9));
    }

    #[test]
    fn the_allocation_is_reused_once_every_slice_is_gone() {
        let mut pool = Pool::new();
        let first = read_bytes(&mut pool, &[3u8; LARGE]);
        let start = first.as_ptr();
        drop(first);
        use_up(&mut pool);
        let again = read_bytes(&mut pool, &[4u8; LARGE]);
        assert_eq!(again.as_ptr(), start, "the whole allocation came back");
        assert!(again.iter().all(|&x| x == 4));
    }

    #[test]
    fn a_held_slice_keeps_its_bytes_and_forces_another_chunk() {
        let mut pool = Pool::new();
        let held = read_bytes(&mut pool, &[1u8; LARGE]);
        use_up(&mut pool);
        let next = read_bytes(&mut pool, &[2u8; LARGE]);
        assert!(next.as_ptr() != held.as_ptr(), "not written over");
        assert!(held.iter().all(|&x| x == 1));
        assert!(next.iter().all(|&x| x == 2));
        assert!(pool.spare() >= MIN_SPARE);
    }

    #[test]
    fn retired_chunks_are_reused_once_their_slices_are_gone() {
        let mut pool = Pool::new();
        let a = read_bytes(&mut pool, &[1u8; LARGE]);
        let first = a.as_ptr();
        use_up(&mut pool);
        let b = read_bytes(&mut pool, &[2u8; LARGE]);
        assert_eq!(pool.retired.len(), 1, "the first chunk is retired");
        drop(a);
        use_up(&mut pool);
        // The current chunk is still shared (b): the retired one, free
        // now, comes back instead of a new (zeroed) one.
        let c = read_bytes(&mut pool, &[3u8; LARGE]);
        assert_eq!(c.as_ptr(), first, "reused, not a new allocation");
        assert!(b.iter().all(|&x| x == 2) && c.iter().all(|&x| x == 3));
        // However many chunks are held, at most RETIRED_MAX are kept.
        let mut held = vec![b, c];
        for i in 0..(RETIRED_MAX + 3) {
            use_up(&mut pool);
            held.push(read_bytes(&mut pool, &[i as u8; LARGE]));
        }
        assert_eq!(pool.retired.len(), RETIRED_MAX);
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
        assert_eq!(pool.chunk.filled, 0, "nothing handed out");

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
        let first = read_bytes(loan.pool(), &[1u8; LARGE]).as_ptr();
        loan.give_back();
        let mut loan = Loan::take();
        let second = read_bytes(loan.pool(), &[2u8; LARGE]).as_ptr();
        // The same allocation, just past the first read.
        assert_eq!(second, first.wrapping_add(LARGE));
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
