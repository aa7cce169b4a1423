//! The write queue of [`StreamState`](super::state::StreamState): a FIFO of
//! chunks that keeps its oldest chunk inline, so that the common case (one
//! chunk waiting at a time) allocates nothing.

use std::collections::VecDeque;

use bytes::Bytes;

/// FIFO of chunks waiting to be written; the oldest is kept inline.
#[derive(Debug, Default)]
pub(crate) struct ChunkQueue {
    first: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl ChunkQueue {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    #[inline]
    pub(crate) fn push_back(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            // `rest` is empty whenever `first` is: see `pop_front`.
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    #[cfg(test)]
    pub(crate) fn front(&self) -> Option<&Bytes> {
        self.first.as_ref()
    }

    /// The chunk queued, if it is the only one.
    #[inline]
    pub(crate) fn only(&self) -> Option<&Bytes> {
        // `rest` is empty whenever `first` is: see `pop_front`.
        if self.rest.is_empty() {
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
        self.first = self.rest.pop_front();
        front
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.first.iter().chain(self.rest.iter())
    }

    #[inline]
    pub(crate) fn clear(&mut self) {
        self.first = None;
        if !self.rest.is_empty() {
            self.rest.clear();
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
