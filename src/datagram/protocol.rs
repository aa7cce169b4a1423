//! [`DatagramProtocol`]: the application's side of a datagram endpoint
//! (asyncio's `DatagramProtocol`, with its `BaseProtocol` methods).
//!
//! # Call order
//!
//! ```text
//! connection_made  (datagram_received | error_received)*  connection_lost
//! ```
//!
//! * `connection_made` comes first and exactly once; `connection_lost` last
//!   and exactly once (nothing follows it, not even `pause_writing`).
//! * `pause_writing` and `resume_writing` strictly alternate, starting with
//!   `pause_writing`, and may come between any two of the callbacks above.
//! * A datagram arrives whole, in one `datagram_received`; an empty one is
//!   delivered as an empty [`Bytes`].
//! * No `datagram_received` follows a callback that called
//!   [`pause_reading`](DatagramTransport::pause_reading) or
//!   [`close`](DatagramTransport::close), nor such a call made elsewhere once
//!   the endpoint's task has seen it.
//!
//! Callbacks run on the endpoint's task, one at a time. What a callback sends
//! goes straight to the socket (queued only if the socket is full), without a
//! channel hop; its other requests (`pause_reading`, `close`, ...) take
//! effect when it returns. `pause_writing` caused by a callback's sends comes
//! after that callback returns, not from inside `sendto` as in asyncio,
//! because Rust forbids re-entering `&mut self`. For the same reason a send
//! that fails inside a callback is reported by `error_received` after it
//! returns.
//!
//! # Panics in callbacks
//!
//! As in asyncio, a panic in `datagram_received`, `error_received`,
//! `pause_writing` or `resume_writing` is reported to the
//! [exception handler](crate::set_exception_handler) and the endpoint stays
//! open: one bad datagram must not take down a server's only socket. A panic
//! in `connection_made` is fatal, as for stream transports: it is reported
//! and the endpoint is closed with `connection_lost(Some(err))`, where `err`
//! wraps a [`CallbackPanicked`](crate::CallbackPanicked). A panic in
//! `connection_lost` is reported; the socket is released anyway.

use std::io;

use bytes::Bytes;

use super::handle::DatagramTransport;
use crate::AsAny;
use crate::extra::SocketAddress;

/// The callbacks of a datagram endpoint: asyncio's `DatagramProtocol`.
///
/// Every method has asyncio's default (do nothing), so a protocol implements
/// only what it needs. One protocol instance serves every peer: the sender's
/// address comes with each datagram.
///
/// ```
/// use tokio_transports::Bytes;
/// use tokio_transports::{DatagramProtocol, DatagramTransport, SocketAddress};
///
/// /// The reference's UDP echo server.
/// #[derive(Default)]
/// struct EchoServerProtocol(Option<DatagramTransport>);
/// impl DatagramProtocol for EchoServerProtocol {
///     fn connection_made(&mut self, transport: &DatagramTransport) {
///         self.0 = Some(transport.clone());
///     }
///     fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
///         if let Some(t) = &self.0 {
///             let _ = t.sendto(data, Some(addr));
///         }
///     }
/// }
/// ```
pub trait DatagramProtocol: AsAny + Send + 'static {
    /// Called once, first, when the endpoint is ready. Keep a clone of
    /// `transport` to send or close later.
    ///
    /// ```
    /// use tokio_transports::{DatagramProtocol, DatagramTransport};
    /// struct P(Option<DatagramTransport>);
    /// impl DatagramProtocol for P {
    ///     fn connection_made(&mut self, t: &DatagramTransport) { self.0 = Some(t.clone()); }
    /// }
    /// ```
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// Called with each received datagram, whole (up to 65,507 bytes over
    /// UDP/IPv4, 65,527 over IPv6, 256 KiB over Unix sockets), possibly
    /// empty, and the sender's address: [`SocketAddress::Inet`] for UDP,
    /// [`SocketAddress::Unix`] for Unix sockets (`Unix(None)` for an unnamed
    /// sender such as the other end of a socketpair).
    ///
    /// `data` is a zero-copy slice of a buffer shared by the thread's
    /// endpoints; copy it (`Bytes::copy_from_slice`) if you keep many small
    /// datagrams for long.
    ///
    /// ```
    /// use tokio_transports::Bytes;
    /// use tokio_transports::{DatagramProtocol, SocketAddress};
    /// struct Log;
    /// impl DatagramProtocol for Log {
    ///     fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
    ///         println!("{} bytes from {addr}", data.len());
    ///     }
    /// }
    /// ```
    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        let _ = (data, addr);
    }

    /// Called when a send or receive failed, e.g. `ConnectionRefused` after
    /// an ICMP port-unreachable on a connected endpoint, or a datagram too
    /// large to send. The datagram concerned is dropped; the endpoint stays
    /// open and keeps receiving.
    ///
    /// ```
    /// use tokio_transports::DatagramProtocol;
    /// struct P;
    /// impl DatagramProtocol for P {
    ///     fn error_received(&mut self, exc: std::io::Error) {
    ///         println!("Error received: {exc}");
    ///     }
    /// }
    /// ```
    fn error_received(&mut self, exc: io::Error) {
        let _ = exc;
    }

    /// Called once, last, when the endpoint is closed: `None` after
    /// [`close`](DatagramTransport::close) (once the queue is sent) or
    /// [`abort`](DatagramTransport::abort); `Some(err)` if
    /// `connection_made` panicked.
    ///
    /// ```
    /// use tokio_transports::DatagramProtocol;
    /// struct P;
    /// impl DatagramProtocol for P {
    ///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
    ///         println!("Connection closed");
    ///     }
    /// }
    /// ```
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// Called when the send queue goes strictly over the high watermark
    /// (each queued datagram counts its length plus 8 bytes). Advisory:
    /// datagrams are still accepted.
    ///
    /// ```
    /// use tokio_transports::DatagramProtocol;
    /// struct P { paused: bool }
    /// impl DatagramProtocol for P {
    ///     fn pause_writing(&mut self) { self.paused = true; }
    ///     fn resume_writing(&mut self) { self.paused = false; }
    /// }
    /// ```
    fn pause_writing(&mut self) {}

    /// Called when the send queue drains to the low watermark or below,
    /// after a `pause_writing`.
    ///
    /// ```
    /// use tokio_transports::DatagramProtocol;
    /// struct P { paused: bool }
    /// impl DatagramProtocol for P {
    ///     fn resume_writing(&mut self) { self.paused = false; }
    /// }
    /// ```
    fn resume_writing(&mut self) {}
}

/// The unit protocol ignores every callback: handy for an endpoint that only
/// sends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{DatagramOptions, create_datagram_endpoint};
/// let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
/// let t = create_datagram_endpoint(|| (), opts).await?;
/// t.sendto("fire and forget", None)?;
/// # Ok(()) }
/// ```
impl DatagramProtocol for () {}

/// A boxed protocol is a protocol, so factories may return
/// `Box<dyn DatagramProtocol>` to choose the kind at run time.
///
/// ```
/// use tokio_transports::DatagramProtocol;
/// fn pick(quiet: bool) -> Box<dyn DatagramProtocol> {
///     Box::new(())
/// }
/// fn takes(_: impl DatagramProtocol) {}
/// takes(pick(true));
/// ```
impl DatagramProtocol for Box<dyn DatagramProtocol> {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        (**self).connection_made(transport)
    }
    fn datagram_received(&mut self, data: Bytes, addr: SocketAddress) {
        (**self).datagram_received(data, addr)
    }
    fn error_received(&mut self, exc: io::Error) {
        (**self).error_received(exc)
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        (**self).connection_lost(exc)
    }
    fn pause_writing(&mut self) {
        (**self).pause_writing()
    }
    fn resume_writing(&mut self) {
        (**self).resume_writing()
    }
}
