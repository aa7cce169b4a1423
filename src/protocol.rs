//! Protocol traits: the application's side of a connection.
//!
//! This module owns the callback traits a transport drives, mirroring asyncio's
//! `BaseProtocol`, `Protocol` and `BufferedProtocol`, and [`AnyProtocol`], the box
//! a stream transport holds (either kind, switchable with
//! [`Transport::set_protocol`](crate::Transport::set_protocol)).
//!
//! # Call order (the contract every stream transport keeps)
//!
//! ```text
//! streaming:  connection_made  data_received*                 eof_received?  connection_lost
//! buffered:   connection_made  (get_buffer buffer_updated?)*  eof_received?  connection_lost
//! ```
//!
//! * `connection_made` comes first and exactly once.
//! * `connection_lost` comes last and exactly once; nothing follows it, not even
//!   `pause_writing`/`resume_writing`.
//! * `eof_received` comes at most once and is never followed by `data_received`,
//!   `get_buffer` or `buffer_updated`.
//! * `data_received` never gets an empty [`Bytes`]; `buffer_updated(n)` always has `n > 0`.
//! * `get_buffer` is called once per read attempt and is followed by `buffer_updated`
//!   unless that read found EOF or failed (asyncio allows the same).
//! * `pause_writing` and `resume_writing` strictly alternate, starting with `pause_writing`,
//!   and may come between any two of the callbacks above.
//!
//! Callbacks take `&mut self` and run on the connection's task, one at a time.
//! A callback may call any [`Transport`](crate::Transport) method; what it writes is
//! sent right after it returns (no channel hop, no wake-up). A `pause_writing` caused
//! by such a write is delivered right after the callback returns, not from inside
//! `write()` as in asyncio, because Rust forbids re-entering `&mut self`.

use std::any::Any;
use std::io;

use bytes::{Bytes, BytesMut};

use crate::Transport;

/// The callbacks every protocol has: asyncio's `BaseProtocol`.
///
/// Every method has asyncio's default (do nothing), so a protocol implements
/// only what it needs.
///
/// ```
/// use tokio_transports::{BaseProtocol, Transport};
///
/// struct Quiet;
/// impl BaseProtocol for Quiet {
///     fn connection_made(&mut self, transport: &Transport) {
///         println!("connected to {:?}", transport.peername());
///     }
/// }
/// ```
pub trait BaseProtocol: AsAny + Send + 'static {
    /// Called once, first, when the connection is made. Keep a clone of
    /// `transport` to write or close later.
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, Transport};
    /// struct P(Option<Transport>);
    /// impl BaseProtocol for P {
    ///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
    /// }
    /// ```
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Called once, last, when the connection is closed. `None` means a regular
    /// close (local `close`/`abort`, or peer EOF handled by the default
    /// `eof_received`); `Some(err)` an I/O error, or a panic in a callback.
    ///
    /// ```
    /// use tokio_transports::BaseProtocol;
    /// struct P;
    /// impl BaseProtocol for P {
    ///     fn connection_lost(&mut self, exc: Option<std::io::Error>) {
    ///         if let Some(e) = exc { eprintln!("lost: {e}"); }
    ///     }
    /// }
    /// ```
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// Called when the transport's write buffer goes strictly over the high
    /// watermark. Advisory: writes are still accepted. Exactly one
    /// [`resume_writing`](Self::resume_writing) follows once the buffer
    /// drains to the low watermark (unless the connection is lost first).
    ///
    /// # When it is called
    ///
    /// Not from inside `write()`, as in asyncio (Rust forbids re-entering
    /// `&mut self`), but on the connection's task: for writes made inside a
    /// callback, right after that callback returns (before any other
    /// callback, and before the task sends anything) if the callback's
    /// writes took [`Transport::get_write_buffer_size`] strictly over the
    /// high watermark, even if the kernel then takes all of it (then
    /// `resume_writing` follows at once); later, when a send leaves more
    /// than the high watermark unsent. For writes from elsewhere: when the
    /// task next runs.
    ///
    /// So a loop inside one callback cannot be stopped by this call (unlike
    /// asyncio's `while not self.paused: transport.write(...)`): a producer
    /// that writes from its callbacks stops when
    /// `get_write_buffer_size()` goes over the high watermark
    /// ([`Transport::get_write_buffer_limits`]) or when the transport is
    /// closing (an `abort()` from another thread makes the size 0 at once),
    /// and goes on in `resume_writing`, which is then always owed:
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, Transport};
    /// struct Producer { t: Option<Transport>, left: usize }
    /// impl Producer {
    ///     fn produce(&mut self) {
    ///         let Some(t) = &self.t else { return };
    ///         let high = t.get_write_buffer_limits().1;
    ///         while self.left > 0 && !t.is_closing() && t.get_write_buffer_size() <= high {
    ///             let n = self.left.min(16 * 1024);
    ///             let _ = t.write(vec![b'x'; n]);
    ///             self.left -= n;
    ///         }
    ///     }
    /// }
    /// impl BaseProtocol for Producer {
    ///     fn connection_made(&mut self, t: &Transport) { self.t = Some(t.clone()); self.produce(); }
    ///     fn resume_writing(&mut self) { self.produce(); }
    /// }
    /// ```
    ///
    /// A task outside the
    /// callbacks that only watches a flag set here keeps writing until the
    /// connection's task runs and can overshoot the high watermark by far
    /// (70 to 117 times in one test run): such a writer should await
    /// [`Transport::drain`] instead.
    ///
    /// ```
    /// use tokio_transports::BaseProtocol;
    /// struct P { paused: bool }
    /// impl BaseProtocol for P {
    ///     fn pause_writing(&mut self) { self.paused = true; }
    ///     fn resume_writing(&mut self) { self.paused = false; }
    /// }
    /// ```
    fn pause_writing(&mut self) {}

    /// Called when the write buffer drains to the low watermark or below, after
    /// a `pause_writing`.
    ///
    /// ```
    /// use tokio_transports::BaseProtocol;
    /// struct P { paused: bool }
    /// impl BaseProtocol for P {
    ///     fn resume_writing(&mut self) { self.paused = false; }
    /// }
    /// ```
    fn resume_writing(&mut self) {}
}

/// Lets a boxed protocol be downcast to its concrete type (see
/// [`AnyProtocol::downcast_mut`]). Implemented for every `'static` type: never
/// implement it yourself.
///
/// ```
/// use tokio_transports::AsAny;
/// let mut n = 5u32;
/// assert_eq!(n.as_any_mut().downcast_mut::<u32>(), Some(&mut 5));
/// ```
pub trait AsAny: Any {
    /// `self` as `&dyn Any`.
    ///
    /// ```
    /// use tokio_transports::AsAny;
    /// assert!(7u8.as_any().is::<u8>());
    /// ```
    fn as_any(&self) -> &dyn Any;

    /// `self` as `&mut dyn Any`.
    ///
    /// ```
    /// use tokio_transports::AsAny;
    /// let mut s = String::new();
    /// s.as_any_mut().downcast_mut::<String>().unwrap().push('x');
    /// assert_eq!(s, "x");
    /// ```
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A streaming protocol: asyncio's `Protocol`. Received bytes arrive as
/// zero-copy [`Bytes`] slices of the transport's read buffer.
///
/// ```
/// use tokio_transports::Bytes;
/// use tokio_transports::{BaseProtocol, Protocol, Transport};
///
/// /// Echoes everything back.
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl BaseProtocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
/// }
/// impl Protocol for Echo {
///     fn data_received(&mut self, data: Bytes) {
///         if let Some(t) = &self.0 { let _ = t.write(data); }
///     }
/// }
/// ```
pub trait Protocol: BaseProtocol {
    /// Called with each chunk of received bytes; never empty. Chunk boundaries
    /// carry no meaning: a message may arrive in several calls.
    ///
    /// **What keeping `data` costs.** The chunk is a zero-copy view of the
    /// transport's per-thread read buffer, so dropping it (or writing it
    /// back, which drops it once sent) is free. Keeping it, or any slice of
    /// it, is free too, but keeps memory alive until it is dropped: a read
    /// of at most 512 bytes was copied into a 1 KiB block shared with other
    /// small reads, so it keeps at most that block; a larger read shares a
    /// 128 KiB buffer, and keeping any part of it keeps all 128 KiB. A
    /// protocol that holds a little of a large read for long (a partial
    /// frame on an idle connection) should copy it
    /// (`Bytes::copy_from_slice`, or append it to a `BytesMut` of its own).
    ///
    /// ```
    /// use tokio_transports::Bytes;
    /// use tokio_transports::{BaseProtocol, Protocol};
    /// struct Count(usize);
    /// impl BaseProtocol for Count {}
    /// impl Protocol for Count {
    ///     fn data_received(&mut self, data: Bytes) { self.0 += data.len(); }
    /// }
    /// ```
    fn data_received(&mut self, data: Bytes) {
        let _ = data;
    }

    /// Called once when the peer half-closes (sends EOF). Return `false` (the
    /// default) to let the transport close itself; `true` to keep it open for
    /// writing, in which case the protocol closes it later.
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, Protocol};
    /// struct HalfClose;
    /// impl BaseProtocol for HalfClose {}
    /// impl Protocol for HalfClose {
    ///     fn eof_received(&mut self) -> bool { true }
    /// }
    /// ```
    fn eof_received(&mut self) -> bool {
        false
    }
}

/// A protocol that provides its own receive buffer: asyncio's
/// `BufferedProtocol`. The transport reads from the socket straight into the
/// spare capacity of the [`BytesMut`] that `get_buffer` returns, with no copy
/// in between, then reports how many bytes it appended with `buffer_updated`.
///
/// ```
/// use tokio_transports::BytesMut;
/// use tokio_transports::{BaseProtocol, BufferedProtocol};
///
/// struct Collect(BytesMut);
/// impl BaseProtocol for Collect {}
/// impl BufferedProtocol for Collect {
///     fn get_buffer(&mut self, _sizehint: usize) -> &mut BytesMut {
///         self.0.reserve(4096);
///         &mut self.0
///     }
///     fn buffer_updated(&mut self, nbytes: usize) {
///         let len = self.0.len();
///         println!("got {nbytes} bytes: {:?}", &self.0[len - nbytes..]);
///     }
/// }
/// ```
pub trait BufferedProtocol: BaseProtocol {
    /// Return the buffer to receive into. The transport appends at most
    /// `capacity() - len()` bytes after the buffer's current contents.
    /// `sizehint` is the transport's preferred read size (a hint only).
    /// A buffer with no spare capacity is an error: the connection is closed
    /// with `connection_lost(Some(..))` saying `get_buffer() returned an empty buffer`.
    ///
    /// ```
    /// use tokio_transports::BytesMut;
    /// use tokio_transports::{BaseProtocol, BufferedProtocol};
    /// struct P(BytesMut);
    /// impl BaseProtocol for P {}
    /// impl BufferedProtocol for P {
    ///     fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
    ///         self.0.reserve(sizehint.max(1024));
    ///         &mut self.0
    ///     }
    ///     fn buffer_updated(&mut self, _n: usize) {}
    /// }
    /// ```
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut;

    /// Called after `nbytes` (always > 0) were appended to the buffer that the
    /// last `get_buffer` returned.
    ///
    /// ```
    /// use tokio_transports::BytesMut;
    /// use tokio_transports::{BaseProtocol, BufferedProtocol};
    /// struct Lines(BytesMut);
    /// impl BaseProtocol for Lines {}
    /// impl BufferedProtocol for Lines {
    ///     fn get_buffer(&mut self, _h: usize) -> &mut BytesMut { self.0.reserve(512); &mut self.0 }
    ///     fn buffer_updated(&mut self, _n: usize) {
    ///         while let Some(i) = self.0.iter().position(|b| *b == b'\n') {
    ///             let line = self.0.split_to(i + 1);
    ///             println!("{:?}", line);
    ///         }
    ///     }
    /// }
    /// ```
    fn buffer_updated(&mut self, nbytes: usize);

    /// Same as [`Protocol::eof_received`].
    ///
    /// ```
    /// use tokio_transports::BytesMut;
    /// use tokio_transports::{BaseProtocol, BufferedProtocol};
    /// struct P(BytesMut);
    /// impl BaseProtocol for P {}
    /// impl BufferedProtocol for P {
    ///     fn get_buffer(&mut self, _h: usize) -> &mut BytesMut { self.0.reserve(64); &mut self.0 }
    ///     fn buffer_updated(&mut self, _n: usize) {}
    ///     fn eof_received(&mut self) -> bool { false }
    /// }
    /// ```
    fn eof_received(&mut self) -> bool {
        false
    }
}

/// A boxed protocol of either kind: what a stream transport drives.
///
/// Build one with [`AnyProtocol::stream`] or [`AnyProtocol::buffered`]; every
/// function that takes a protocol takes [`IntoProtocol`], which a plain
/// [`Protocol`] and a [`Buffered`]-wrapped [`BufferedProtocol`] implement.
///
/// ```
/// use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
/// struct P;
/// impl BaseProtocol for P {}
/// impl Protocol for P {}
/// let any = AnyProtocol::stream(P);
/// assert!(!any.is_buffered());
/// ```
pub enum AnyProtocol {
    /// A streaming [`Protocol`].
    Stream(Box<dyn Protocol>),
    /// A [`BufferedProtocol`].
    Buffered(Box<dyn BufferedProtocol>),
}

impl AnyProtocol {
    /// Box a streaming protocol.
    ///
    /// ```
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
    /// # struct P; impl BaseProtocol for P {} impl Protocol for P {}
    /// let p = AnyProtocol::stream(P);
    /// ```
    pub fn stream<P: Protocol>(p: P) -> Self {
        AnyProtocol::Stream(Box::new(p))
    }

    /// Box a buffered protocol.
    ///
    /// ```
    /// # use tokio_transports::BytesMut;
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, BufferedProtocol};
    /// # struct P(BytesMut); impl BaseProtocol for P {}
    /// # impl BufferedProtocol for P {
    /// #   fn get_buffer(&mut self, _: usize) -> &mut BytesMut { &mut self.0 }
    /// #   fn buffer_updated(&mut self, _: usize) {} }
    /// let p = AnyProtocol::buffered(P(BytesMut::with_capacity(1024)));
    /// assert!(p.is_buffered());
    /// ```
    pub fn buffered<P: BufferedProtocol>(p: P) -> Self {
        AnyProtocol::Buffered(Box::new(p))
    }

    /// Whether this is a [`BufferedProtocol`].
    ///
    /// ```
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
    /// # struct P; impl BaseProtocol for P {} impl Protocol for P {}
    /// assert!(!AnyProtocol::stream(P).is_buffered());
    /// ```
    pub fn is_buffered(&self) -> bool {
        matches!(self, AnyProtocol::Buffered(_))
    }

    /// The protocol seen through its base callbacks.
    ///
    /// ```
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
    /// # struct P; impl BaseProtocol for P {} impl Protocol for P {}
    /// let mut p = AnyProtocol::stream(P);
    /// p.base_mut().pause_writing();
    /// ```
    pub fn base_mut(&mut self) -> &mut dyn BaseProtocol {
        match self {
            AnyProtocol::Stream(p) => &mut **p,
            AnyProtocol::Buffered(p) => &mut **p,
        }
    }

    /// The protocol as its concrete type, if it is a `T`: the way to reach
    /// your protocol's state through
    /// [`Transport::with_protocol`](crate::Transport::with_protocol), asyncio's
    /// `get_protocol()`.
    ///
    /// ```
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
    /// struct Counter(u32);
    /// impl BaseProtocol for Counter {}
    /// impl Protocol for Counter {}
    /// let mut p = AnyProtocol::stream(Counter(3));
    /// assert_eq!(p.downcast_mut::<Counter>().map(|c| c.0), Some(3));
    /// assert!(p.downcast_mut::<u8>().is_none());
    /// ```
    pub fn downcast_mut<T: 'static>(&mut self) -> Option<&mut T> {
        match self {
            AnyProtocol::Stream(p) => (**p).as_any_mut().downcast_mut(),
            AnyProtocol::Buffered(p) => (**p).as_any_mut().downcast_mut(),
        }
    }

    /// Shared-reference form of [`AnyProtocol::downcast_mut`].
    ///
    /// ```
    /// # use tokio_transports::{AnyProtocol, BaseProtocol, Protocol};
    /// struct P; impl BaseProtocol for P {} impl Protocol for P {}
    /// assert!(AnyProtocol::stream(P).downcast_ref::<P>().is_some());
    /// ```
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            AnyProtocol::Stream(p) => (**p).as_any().downcast_ref(),
            AnyProtocol::Buffered(p) => (**p).as_any().downcast_ref(),
        }
    }

    pub(crate) fn eof_received(&mut self) -> bool {
        match self {
            AnyProtocol::Stream(p) => p.eof_received(),
            AnyProtocol::Buffered(p) => p.eof_received(),
        }
    }
}

impl std::fmt::Debug for AnyProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_buffered() {
            "AnyProtocol::Buffered(..)"
        } else {
            "AnyProtocol::Stream(..)"
        })
    }
}

/// Wraps a [`BufferedProtocol`] so it can be passed wherever a protocol is
/// expected (a plain [`Protocol`] needs no wrapper).
///
/// ```
/// use tokio_transports::BytesMut;
/// use tokio_transports::{BaseProtocol, Buffered, BufferedProtocol, IntoProtocol};
/// struct P(BytesMut); impl BaseProtocol for P {}
/// impl BufferedProtocol for P {
///     fn get_buffer(&mut self, _: usize) -> &mut BytesMut { &mut self.0 }
///     fn buffer_updated(&mut self, _: usize) {}
/// }
/// let any = Buffered(P(BytesMut::new())).into_protocol();
/// assert!(any.is_buffered());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Buffered<P>(pub P);

/// Anything a transport can drive: every [`Protocol`], a [`BufferedProtocol`]
/// wrapped in [`Buffered`], an [`AnyProtocol`], or a boxed trait object.
///
/// ```
/// use tokio_transports::{BaseProtocol, IntoProtocol, Protocol};
/// struct P; impl BaseProtocol for P {} impl Protocol for P {}
/// assert!(!P.into_protocol().is_buffered());
/// ```
pub trait IntoProtocol: Send + 'static {
    /// Box `self` as an [`AnyProtocol`].
    ///
    /// ```
    /// use tokio_transports::{BaseProtocol, IntoProtocol, Protocol};
    /// struct P; impl BaseProtocol for P {} impl Protocol for P {}
    /// let any = P.into_protocol();
    /// ```
    fn into_protocol(self) -> AnyProtocol;

    /// Hand `self` to `visitor` in the form a transport's task drives: a
    /// [`Protocol`] or a [`Buffered`] protocol inline (no box, static
    /// calls), anything else as [`into_protocol`](Self::into_protocol)
    /// makes it. Not part of the API: the crate's creation functions use it
    /// to keep the protocol's type up to the task they build.
    #[doc(hidden)]
    fn __drive<V: crate::drive::DriveVisitor>(self, visitor: V) -> V::Output
    where
        Self: Sized,
    {
        visitor.visit(self.into_protocol())
    }
}

impl<P: Protocol> IntoProtocol for P {
    fn into_protocol(self) -> AnyProtocol {
        AnyProtocol::Stream(Box::new(self))
    }

    #[inline]
    fn __drive<V: crate::drive::DriveVisitor>(self, visitor: V) -> V::Output {
        visitor.visit(crate::drive::Typed::new(self))
    }
}

impl<P: BufferedProtocol> IntoProtocol for Buffered<P> {
    fn into_protocol(self) -> AnyProtocol {
        AnyProtocol::Buffered(Box::new(self.0))
    }

    #[inline]
    fn __drive<V: crate::drive::DriveVisitor>(self, visitor: V) -> V::Output {
        visitor.visit(crate::drive::Typed::new(self))
    }
}

impl IntoProtocol for AnyProtocol {
    fn into_protocol(self) -> AnyProtocol {
        self
    }
}

impl IntoProtocol for Box<dyn BufferedProtocol> {
    fn into_protocol(self) -> AnyProtocol {
        AnyProtocol::Buffered(self)
    }
}
