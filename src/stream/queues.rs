//! The write queue of [`StreamState`](super::state::StreamState): a FIFO of
//! chunks that keeps its oldest chunk inline, so that the common case (one
//! chunk waiting at a time) allocates nothing, and the rest behind one
//! pointer, so that the connection's task stays small (tokio moves the task's
//! future several times while spawning it).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// FIFO of chunks waiting to be written; the oldest is kept inline.
#[derive(Debug, Default)]
pub(crate) struct ChunkQueue {
    first: Option<Bytes>,
    /// Allocated when two chunks first wait at once; kept from then on.
    #[allow(
        clippy::box_collection,
        reason = "one pointer instead of a VecDeque's four words keeps the task small"
    )]
    rest: Option<Box<VecDeque<Bytes>>>,
}

impl ChunkQueue {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.as_ref().map_or(0, |r| r.len())
    }

    #[inline(always)]
    pub(crate) fn push_back(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            // `rest` is empty whenever `first` is: see `pop_front`.
            self.first = Some(chunk);
        } else {
            self.push_rest(chunk);
        }
    }

    /// A second chunk or more: behind the first, in `rest`.
    #[inline(never)]
    fn push_rest(&mut self, chunk: Bytes) {
        self.rest.get_or_insert_default().push_back(chunk);
    }

    #[cfg(test)]
    pub(crate) fn front(&self) -> Option<&Bytes> {
        self.first.as_ref()
    }

    /// The chunk queued, if it is the only one.
    #[inline]
    pub(crate) fn only(&self) -> Option<&Bytes> {
        // `rest` is empty whenever `first` is: see `pop_front`.
        if self.rest.as_ref().is_none_or(|r| r.is_empty()) {
            self.first.as_ref()
        } else {
            None
        }
    }

    #[inline]
    pub(crate) fn front_mut(&mut self) -> Option<&mut Bytes> {
        self.first.as_mut()
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        let front = self.first.take();
        self.first = self.rest.as_mut().and_then(|r| r.pop_front());
        front
    }

    /// Fill `out` with the chunks, oldest first; returns how many.
    #[inline]
    pub(crate) fn fill<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let (Some(first), Some(slot)) = (&self.first, out.first_mut()) else {
            return 0;
        };
        *slot = IoSlice::new(first);
        let mut n = 1;
        if let Some(rest) = &self.rest {
            let (a, b) = rest.as_slices();
            for chunk in a.iter().chain(b) {
                let Some(slot) = out.get_mut(n) else { break };
                *slot = IoSlice::new(chunk);
                n += 1;
            }
        }
        n
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.first
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    #[inline(always)]
    pub(crate) fn clear(&mut self) {
        self.first = None;
        if let Some(rest) = &mut self.rest {
            rest.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_queue_is_fifo_across_inline_and_heap() {
        let mut q = ChunkQueue::default();
        for i in 0..5u8 {
            q.push_back(Bytes::from(vec![i]));
        }
        assert_eq!(q.len(), 5);
        let seen: Vec<u8> = q.iter().map(|b| b[0]).collect();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        let mut slices = [IoSlice::new(&[]); 3];
        assert_eq!(q.fill(&mut slices), 3, "as many as fit");
        assert_eq!(slices.map(|s| s[0]), [0, 1, 2]);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(q.fill(&mut slices), 5);
        assert_eq!(q.fill(&mut []), 0);
        for i in 0..5u8 {
            assert_eq!(q.pop_front().unwrap()[0], i);
        }
        assert!(q.pop_front().is_none());
        assert!(q.only().is_none());
        q.push_back(Bytes::from_static(b"x"));
        assert_eq!(q.front().map(|b| &b[..]), Some(&b"x"[..]));
        assert_eq!(q.only().map(|b| &b[..]), Some(&b"x"[..]));
        q.push_back(Bytes::from_static(b"y"));
        assert!(q.only().is_none(), "two chunks");
        q.clear();
        assert_eq!(q.len(), 0);
    }
}
