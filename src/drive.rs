//! How a stream task reaches its protocol, and how a creation function keeps
//! the protocol's concrete type up to the task it builds.
//!
//! A stream driver is generic over [`Drive`]. Two types implement it:
//!
//! * [`AnyProtocol`]: a boxed protocol of either kind, called through its
//!   vtable. What `set_protocol` installs, what a `start_tls` hands to the TLS
//!   task, and what the test kit's harness and a child's pipes hold.
//! * [`Typed`]: a concrete protocol held inline in the task's (boxed) driver,
//!   its callbacks called statically (inlined where the compiler sees fit),
//!   and no allocation of its own. What the creation functions and the server
//!   build from a factory's `P: Protocol` or `Buffered<P>`. It turns into a
//!   boxed [`AnyProtocol`] the first time something needs that form
//!   (`set_protocol`, `with_protocol`, `start_tls`); the connection then
//!   carries on with dynamic calls.
//!
//! The concrete type travels through [`IntoProtocol`](crate::IntoProtocol)'s hidden
//! [`__drive`](crate::IntoProtocol::__drive) method and a [`DriveVisitor`]:
//! the caller hands a visitor, the protocol calls it with its typed form
//! (or, for a type without one, with `into_protocol()`).
//!
//! The module is public only because `IntoProtocol`'s hidden method names
//! its traits; nothing in it is part of the API.

use bytes::{Bytes, BytesMut};

use crate::protocol::{AnyProtocol, BaseProtocol, Buffered, BufferedProtocol, Protocol};

/// Keeps [`Drive`] and [`Inline`] to this crate's types (they are public
/// only because a hidden method names them).
mod sealed {
    pub trait Sealed {}
}

impl sealed::Sealed for AnyProtocol {}
impl<P: Inline> sealed::Sealed for Typed<P> {}
impl<P: Protocol> sealed::Sealed for P {}
impl<P: BufferedProtocol> sealed::Sealed for Buffered<P> {}

/// What a stream task calls on its protocol. Not part of the API (sealed).
pub trait Drive: sealed::Sealed + Send + 'static {
    /// Whether reads go into the protocol's buffer (`get_buffer`).
    fn is_buffered(&self) -> bool;
    /// The callbacks every protocol has.
    fn base_mut(&mut self) -> &mut dyn BaseProtocol;
    /// `data_received` (a buffered protocol never gets it).
    fn data_received(&mut self, data: Bytes);
    /// `get_buffer`; `None` for a plain protocol.
    fn get_buffer(&mut self, sizehint: usize) -> Option<&mut BytesMut>;
    /// `buffer_updated` (a plain protocol never gets it).
    fn buffer_updated(&mut self, nbytes: usize);
    /// `eof_received`, of either kind.
    fn eof_received(&mut self) -> bool;
    /// The protocol as an [`AnyProtocol`] (a [`Typed`] one is boxed from
    /// then on).
    fn as_any(&mut self) -> &mut AnyProtocol;
    /// Put `protocol` in place of the current one (`set_protocol`), which
    /// is dropped.
    fn replace(&mut self, protocol: AnyProtocol) {
        *self.as_any() = protocol;
    }
    /// Take the protocol out, leaving the unit protocol in its place.
    fn take(&mut self) -> AnyProtocol {
        std::mem::replace(self.as_any(), AnyProtocol::stream(()))
    }
}

impl Drive for AnyProtocol {
    #[inline]
    fn is_buffered(&self) -> bool {
        AnyProtocol::is_buffered(self)
    }

    #[inline]
    fn base_mut(&mut self) -> &mut dyn BaseProtocol {
        AnyProtocol::base_mut(self)
    }

    #[inline]
    fn data_received(&mut self, data: Bytes) {
        if let AnyProtocol::Stream(p) = self {
            p.data_received(data);
        }
    }

    #[inline]
    fn get_buffer(&mut self, sizehint: usize) -> Option<&mut BytesMut> {
        match self {
            AnyProtocol::Buffered(p) => Some(p.get_buffer(sizehint)),
            AnyProtocol::Stream(_) => None,
        }
    }

    #[inline]
    fn buffer_updated(&mut self, nbytes: usize) {
        if let AnyProtocol::Buffered(p) = self {
            p.buffer_updated(nbytes);
        }
    }

    #[inline]
    fn eof_received(&mut self) -> bool {
        AnyProtocol::eof_received(self)
    }

    #[inline]
    fn as_any(&mut self) -> &mut AnyProtocol {
        self
    }
}

/// A concrete protocol of either kind, as [`Typed`] holds it: a
/// [`Protocol`], or a [`BufferedProtocol`] in [`Buffered`]. Not part of the
/// API (sealed).
pub trait Inline: sealed::Sealed + Send + 'static {
    /// Known at compile time: the driver's read path folds the other one
    /// away.
    const BUFFERED: bool;
    /// See [`Drive::base_mut`].
    fn base_mut(&mut self) -> &mut dyn BaseProtocol;
    /// See [`Drive::data_received`].
    fn data_received(&mut self, data: Bytes);
    /// See [`Drive::get_buffer`].
    fn get_buffer(&mut self, sizehint: usize) -> Option<&mut BytesMut>;
    /// See [`Drive::buffer_updated`].
    fn buffer_updated(&mut self, nbytes: usize);
    /// See [`Drive::eof_received`].
    fn eof_received(&mut self) -> bool;
    /// Boxed.
    fn boxed(self) -> AnyProtocol;
}

impl<P: Protocol> Inline for P {
    const BUFFERED: bool = false;

    #[inline]
    fn base_mut(&mut self) -> &mut dyn BaseProtocol {
        self
    }

    #[inline]
    fn data_received(&mut self, data: Bytes) {
        Protocol::data_received(self, data);
    }

    #[inline]
    fn get_buffer(&mut self, _: usize) -> Option<&mut BytesMut> {
        None
    }

    #[inline]
    fn buffer_updated(&mut self, _: usize) {}

    #[inline]
    fn eof_received(&mut self) -> bool {
        Protocol::eof_received(self)
    }

    fn boxed(self) -> AnyProtocol {
        AnyProtocol::stream(self)
    }
}

impl<P: BufferedProtocol> Inline for Buffered<P> {
    const BUFFERED: bool = true;

    #[inline]
    fn base_mut(&mut self) -> &mut dyn BaseProtocol {
        &mut self.0
    }

    #[inline]
    fn data_received(&mut self, _: Bytes) {}

    #[inline]
    fn get_buffer(&mut self, sizehint: usize) -> Option<&mut BytesMut> {
        Some(self.0.get_buffer(sizehint))
    }

    #[inline]
    fn buffer_updated(&mut self, nbytes: usize) {
        self.0.buffer_updated(nbytes);
    }

    #[inline]
    fn eof_received(&mut self) -> bool {
        self.0.eof_received()
    }

    fn boxed(self) -> AnyProtocol {
        AnyProtocol::buffered(self.0)
    }
}

/// A concrete protocol held inline, until something needs it boxed. Not
/// part of the API.
pub struct Typed<P>(Slot<P>);

enum Slot<P> {
    Inline(P),
    Boxed(AnyProtocol),
}

impl<P: Inline> Typed<P> {
    /// Hold `protocol` inline.
    pub(crate) fn new(protocol: P) -> Self {
        Typed(Slot::Inline(protocol))
    }
}

impl<P: Inline> Drive for Typed<P> {
    #[inline]
    fn is_buffered(&self) -> bool {
        match &self.0 {
            Slot::Inline(_) => P::BUFFERED,
            Slot::Boxed(p) => p.is_buffered(),
        }
    }

    #[inline]
    fn base_mut(&mut self) -> &mut dyn BaseProtocol {
        match &mut self.0 {
            Slot::Inline(p) => p.base_mut(),
            Slot::Boxed(p) => p.base_mut(),
        }
    }

    #[inline]
    fn data_received(&mut self, data: Bytes) {
        match &mut self.0 {
            Slot::Inline(p) => p.data_received(data),
            Slot::Boxed(p) => Drive::data_received(p, data),
        }
    }

    #[inline]
    fn get_buffer(&mut self, sizehint: usize) -> Option<&mut BytesMut> {
        match &mut self.0 {
            Slot::Inline(p) => p.get_buffer(sizehint),
            Slot::Boxed(p) => Drive::get_buffer(p, sizehint),
        }
    }

    #[inline]
    fn buffer_updated(&mut self, nbytes: usize) {
        match &mut self.0 {
            Slot::Inline(p) => p.buffer_updated(nbytes),
            Slot::Boxed(p) => Drive::buffer_updated(p, nbytes),
        }
    }

    #[inline]
    fn eof_received(&mut self) -> bool {
        match &mut self.0 {
            Slot::Inline(p) => p.eof_received(),
            Slot::Boxed(p) => Drive::eof_received(p),
        }
    }

    fn replace(&mut self, protocol: AnyProtocol) {
        // The old one is dropped as it is, not boxed first.
        self.0 = Slot::Boxed(protocol);
    }

    #[cold]
    fn as_any(&mut self) -> &mut AnyProtocol {
        if let Slot::Inline(_) = self.0 {
            let Slot::Inline(p) =
                std::mem::replace(&mut self.0, Slot::Boxed(AnyProtocol::stream(())))
            else {
                unreachable!("checked just above");
            };
            self.0 = Slot::Boxed(p.boxed());
        }
        match &mut self.0 {
            Slot::Boxed(p) => p,
            Slot::Inline(_) => unreachable!("boxed just above"),
        }
    }
}

/// Called by [`IntoProtocol::__drive`](crate::IntoProtocol::__drive) with
/// the protocol in the form a task drives. Not part of the API.
pub trait DriveVisitor {
    /// What the visit makes (a task, a spawned connection).
    type Output;
    /// Take the protocol.
    fn visit<D: Drive>(self, protocol: D) -> Self::Output;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count(usize);
    impl BaseProtocol for Count {}
    impl Protocol for Count {
        fn data_received(&mut self, data: Bytes) {
            self.0 += data.len();
        }
    }

    #[test]
    fn a_typed_protocol_keeps_its_state_when_boxed() {
        let mut t = Typed::new(Count::default());
        assert!(!Drive::is_buffered(&t));
        Drive::data_received(&mut t, Bytes::from_static(b"abc"));
        let any = t.as_any();
        assert_eq!(any.downcast_mut::<Count>().map(|c| c.0), Some(3));
        // Calls after the switch reach the same (now boxed) protocol.
        Drive::data_received(&mut t, Bytes::from_static(b"de"));
        let taken = t.take();
        assert_eq!(taken.downcast_ref::<Count>().map(|c| c.0), Some(5));
        // The unit protocol is left behind.
        assert!(t.as_any().downcast_ref::<()>().is_some());
    }

    #[test]
    fn replacing_a_typed_protocol_drops_it_and_installs_the_new_one() {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        impl BaseProtocol for Flag {}
        impl Protocol for Flag {}
        let mut t = Typed::new(Flag(dropped.clone()));
        t.replace(AnyProtocol::stream(Count(7)));
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(t.as_any().downcast_ref::<Count>().map(|c| c.0), Some(7));
    }

    #[test]
    fn a_typed_buffered_protocol_is_buffered() {
        struct B(BytesMut);
        impl BaseProtocol for B {}
        impl BufferedProtocol for B {
            fn get_buffer(&mut self, _: usize) -> &mut BytesMut {
                &mut self.0
            }
            fn buffer_updated(&mut self, _: usize) {}
        }
        let mut t = Typed::new(Buffered(B(BytesMut::with_capacity(8))));
        assert!(Drive::is_buffered(&t));
        assert!(Drive::get_buffer(&mut t, 8).is_some());
        assert!(t.as_any().is_buffered());
        assert!(Drive::get_buffer(&mut t, 8).is_some());
    }
}
