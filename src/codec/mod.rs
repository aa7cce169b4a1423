//! Framed protocols: a tokio-util [`Decoder`] + [`Encoder`] pair as a
//! protocol that hands the application whole frames.
//!
//! This module owns [`FramedProtocol`] (the protocol a transport drives:
//! it reads into its own buffer and decodes there), [`FrameHandler`] (the
//! application's callbacks, in frames) and [`FramedTransport`] (the
//! [`Transport`] plus an encoder, `transport.rs`). A framed protocol is the
//! handler alone:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport};
//! use tokio_transports::{ServerOptions, create_server};
//! use tokio_util::codec::LinesCodec;
//!
//! /// Answers every line with its length.
//! struct Lengths;
//! impl FrameHandler<LinesCodec> for Lengths {
//!     fn frame_received(&mut self, line: String, t: &mut FramedTransport<LinesCodec>) {
//!         let _ = t.send(line.len().to_string());
//!     }
//! }
//!
//! let server = create_server(
//!     || FramedProtocol::new(LinesCodec::new(), Lengths),
//!     "127.0.0.1",
//!     0,
//!     ServerOptions::default(),
//! )
//! .await?;
//! # let port = server.sockets()[0].port();
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
//! # c.write_all(b"hello\nab\n").await?;
//! # c.shutdown().await?;
//! # let mut out = String::new();
//! # c.read_to_string(&mut out).await?;
//! # assert_eq!(out, "5\n2\n");
//! # Ok(()) }
//! ```
//!
//! # Flow control
//!
//! Frames are written through the transport's write path
//! ([`FramedTransport::send`] encodes and calls [`Transport::write`]), so the
//! watermarks, `pause_writing`/`resume_writing` (forwarded to the handler)
//! and [`Transport::drain`] apply unchanged. Input: a handler that calls
//! [`FramedTransport::pause_reading`] gets no further frame, not even those
//! already decoded from bytes received, until
//! [`FramedTransport::resume_reading`], which delivers those first. After
//! the end of file, pausing does nothing (as on the transport): the frames
//! `decode_eof` makes of the rest are handed over at once, then
//! `eof_received`.
//!
//! # Errors
//!
//! A decode error (from `decode` or, at the end of file, `decode_eof`)
//! stops the decoding and [`close`](Transport::close)s the transport: what
//! the handler wrote before is still sent, nothing more is read, and the
//! handler's `connection_lost` gets `Some(err)` with kind `InvalidData`
//! whose [`get_ref`](std::io::Error::get_ref) is the codec's error (even if
//! the close itself went well).
//!
//! A panic in a handler callback follows the crate's rule for protocol
//! callbacks: that connection is lost with a
//! [`CallbackPanicked`](crate::CallbackPanicked) error, and the exception
//! handler's report names the protocol callback the transport was in
//! (`buffer_updated` for `frame_received`).

use std::io;

use bytes::BytesMut;

use crate::Transport;
use crate::protocol::{AnyProtocol, BaseProtocol, BufferedProtocol, IntoProtocol};
use crate::stream::handle::{CLOSING, LOST, READ_PAUSED};

mod transport;

/// tokio-util's codec traits and codecs, re-exported for the handler's
/// signature (the same crate and version as this one's).
///
/// ```
/// use tokio_transports::codec::{Decoder, LinesCodec};
/// let mut codec = LinesCodec::new();
/// let mut buf = tokio_transports::BytesMut::from(&b"hi\n"[..]);
/// assert_eq!(codec.decode(&mut buf).unwrap(), Some("hi".to_string()));
/// ```
pub use tokio_util::codec::{
    AnyDelimiterCodec, BytesCodec, Decoder, Encoder, LengthDelimitedCodec, LinesCodec,
    LinesCodecError,
};
pub use transport::FramedTransport;

/// The most room reserved for one read (tokio-util's `Framed` starts with
/// the same 8 KiB): an idle connection holds at most this much, a large
/// frame grows the buffer as the codec asks (`reserve` in `decode`).
const READ_ROOM: usize = 8 * 1024;

/// The application's side of a framed connection: [`BaseProtocol`]'s and
/// [`Protocol`](crate::Protocol)'s callbacks, with frames instead of bytes
/// and a [`FramedTransport`] to answer with. Only `frame_received` is
/// required.
///
/// ```
/// use tokio_transports::codec::{FrameHandler, FramedTransport, LengthDelimitedCodec};
/// use tokio_transports::BytesMut;
///
/// /// Echoes every length-prefixed frame.
/// struct Echo;
/// impl FrameHandler<LengthDelimitedCodec> for Echo {
///     fn frame_received(&mut self, frame: BytesMut, t: &mut FramedTransport<LengthDelimitedCodec>) {
///         let _ = t.send(frame.freeze());
///     }
/// }
/// ```
pub trait FrameHandler<C: Decoder>: Send + 'static {
    /// Called once, first, as [`BaseProtocol::connection_made`]. Keep a
    /// clone of `transport` to send from elsewhere.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// struct Greeter;
    /// impl FrameHandler<LinesCodec> for Greeter {
    ///     fn connection_made(&mut self, t: &mut FramedTransport<LinesCodec>) {
    ///         let _ = t.send("welcome");
    ///     }
    ///     fn frame_received(&mut self, _line: String, _t: &mut FramedTransport<LinesCodec>) {}
    /// }
    /// ```
    fn connection_made(&mut self, transport: &mut FramedTransport<C>) {
        let _ = transport;
    }

    /// Called with each decoded frame, in order.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// struct Count(usize);
    /// impl FrameHandler<LinesCodec> for Count {
    ///     fn frame_received(&mut self, _line: String, _t: &mut FramedTransport<LinesCodec>) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// ```
    fn frame_received(&mut self, frame: C::Item, transport: &mut FramedTransport<C>);

    /// Called once at the peer's end of file, after the frames that
    /// `decode_eof` made of the rest. As [`Protocol::eof_received`](crate::Protocol::eof_received):
    /// `false` (the default) closes the transport, `true` keeps it open
    /// for writing.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// struct Last;
    /// impl FrameHandler<LinesCodec> for Last {
    ///     fn frame_received(&mut self, _line: String, _t: &mut FramedTransport<LinesCodec>) {}
    ///     fn eof_received(&mut self, t: &mut FramedTransport<LinesCodec>) -> bool {
    ///         let _ = t.send("bye");
    ///         false // closes after "bye" is sent
    ///     }
    /// }
    /// ```
    fn eof_received(&mut self, transport: &mut FramedTransport<C>) -> bool {
        let _ = transport;
        false
    }

    /// Called once, last, as [`BaseProtocol::connection_lost`]; after a
    /// decode error, with that error (kind `InvalidData`, the codec's error
    /// in `get_ref()`).
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec, LinesCodecError};
    /// struct P;
    /// impl FrameHandler<LinesCodec> for P {
    ///     fn frame_received(&mut self, _line: String, _t: &mut FramedTransport<LinesCodec>) {}
    ///     fn connection_lost(&mut self, exc: Option<std::io::Error>) {
    ///         if let Some(e) = exc.as_ref().and_then(|e| e.get_ref()) {
    ///             if e.downcast_ref::<LinesCodecError>().is_some() { eprintln!("bad line: {e}"); }
    ///         }
    ///     }
    /// }
    /// ```
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// [`BaseProtocol::pause_writing`], forwarded.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// struct P { paused: bool }
    /// impl FrameHandler<LinesCodec> for P {
    ///     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
    ///     fn pause_writing(&mut self) { self.paused = true; }
    /// }
    /// ```
    fn pause_writing(&mut self) {}

    /// [`BaseProtocol::resume_writing`], forwarded.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// struct P { paused: bool }
    /// impl FrameHandler<LinesCodec> for P {
    ///     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
    ///     fn resume_writing(&mut self) { self.paused = false; }
    /// }
    /// ```
    fn resume_writing(&mut self) {}
}

/// Where the end of file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Eof {
    /// Not received.
    No,
    /// Received: `decode_eof` is handing over the last frames.
    Pending,
    /// Handled.
    Done,
}

/// A codec and a [`FrameHandler`] as a protocol: pass it wherever a
/// protocol is expected (it is a [`BufferedProtocol`]: the transport reads
/// straight into its buffer, where frames are decoded without a copy).
/// See the [module documentation](self) for flow control and errors.
///
/// The codec decodes here and a clone of it encodes in the
/// [`FramedTransport`] (hence `C: Clone`, which tokio-util's codecs are).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
/// struct Upper;
/// impl FrameHandler<LinesCodec> for Upper {
///     fn frame_received(&mut self, line: String, t: &mut FramedTransport<LinesCodec>) {
///         let _ = t.send(line.to_uppercase());
///     }
/// }
/// let (a, b) = tokio::io::duplex(1024);
/// let t = tokio_transports::connect_io(|| FramedProtocol::new(LinesCodec::new(), Upper), a).await?;
/// # use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
/// let mut b = tokio::io::BufReader::new(b);
/// b.write_all(b"shout\n").await?;
/// let mut line = String::new();
/// b.read_line(&mut line).await?;
/// assert_eq!(line, "SHOUT\n");
/// # drop(t); Ok(()) }
/// ```
pub struct FramedProtocol<C: Decoder, H> {
    codec: C,
    handler: H,
    buf: BytesMut,
    transport: Option<FramedTransport<C>>,
    /// A decode error, for `connection_lost`.
    failed: Option<io::Error>,
    eof: Eof,
}

impl<C, H> FramedProtocol<C, H>
where
    C: Decoder + Clone + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    H: FrameHandler<C>,
{
    /// The protocol for one connection: `codec` decodes (and its clones
    /// encode), `handler` gets the frames.
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
    /// struct H;
    /// impl FrameHandler<LinesCodec> for H {
    ///     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
    /// }
    /// let p = FramedProtocol::new(LinesCodec::new_with_max_length(1024), H);
    /// ```
    pub fn new(codec: C, handler: H) -> Self {
        FramedProtocol {
            codec,
            handler,
            buf: BytesMut::new(),
            transport: None,
            failed: None,
            eof: Eof::No,
        }
    }

    /// The handler (e.g. from [`Transport::with_protocol`] after a
    /// downcast to this type).
    ///
    /// ```
    /// use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
    /// struct Count(usize);
    /// impl FrameHandler<LinesCodec> for Count {
    ///     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) { self.0 += 1; }
    /// }
    /// let mut p = FramedProtocol::new(LinesCodec::new(), Count(0));
    /// assert_eq!(p.handler_mut().0, 0);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Whether a frame may be handed over now: not after a decode error,
    /// nor once the transport is closing, nor while reading is paused
    /// before the end of file (after it, pausing does nothing, as on the
    /// transport).
    fn may_deliver(&self) -> bool {
        let stop = if self.eof == Eof::No {
            READ_PAUSED | CLOSING | LOST
        } else {
            CLOSING | LOST
        };
        self.failed.is_none()
            && self
                .transport
                .as_ref()
                .is_some_and(|t| !t.transport().shared.has(stop))
    }

    /// Decode and hand over every whole frame in the buffer, then finish a
    /// pending end of file. Returns what `eof_received` should.
    fn deliver(&mut self) -> bool {
        while self.may_deliver() {
            let step = if self.eof == Eof::No {
                self.codec.decode(&mut self.buf)
            } else if self.eof == Eof::Pending {
                self.codec.decode_eof(&mut self.buf)
            } else {
                return false;
            };
            match step {
                Ok(Some(frame)) => {
                    if let Some(t) = self.transport.as_mut() {
                        self.handler.frame_received(frame, t);
                    }
                }
                Ok(None) if self.eof == Eof::Pending => {
                    self.eof = Eof::Done;
                    let keep = match self.transport.as_mut() {
                        Some(t) => self.handler.eof_received(t),
                        None => false,
                    };
                    return keep;
                }
                Ok(None) => return false,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
        }
        // Closing (or failed) with the end of file's frames undelivered:
        // nothing more is handed over; the close goes on.
        false
    }

    /// A decode error: stop, close, and keep the error for `connection_lost`.
    fn fail(&mut self, e: C::Error) {
        self.failed = Some(io::Error::new(io::ErrorKind::InvalidData, e));
        if let Some(t) = &self.transport {
            t.transport().close();
        }
    }

    /// After [`FramedTransport::resume_reading`]: hand over the frames held
    /// while reading was paused.
    fn redeliver(protocol: &mut AnyProtocol) {
        if let Some(p) = protocol.downcast_mut::<Self>() {
            p.deliver();
        }
    }
}

impl<C, H> BaseProtocol for FramedProtocol<C, H>
where
    C: Decoder + Clone + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    H: FrameHandler<C>,
{
    fn connection_made(&mut self, transport: &Transport) {
        let t = self.transport.insert(FramedTransport::new(
            transport.clone(),
            self.codec.clone(),
            Self::redeliver,
        ));
        self.handler.connection_made(t);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let exc = self.failed.take().or(exc);
        self.transport = None;
        self.handler.connection_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.handler.pause_writing();
    }

    fn resume_writing(&mut self) {
        self.handler.resume_writing();
    }
}

impl<C, H> BufferedProtocol for FramedProtocol<C, H>
where
    C: Decoder + Clone + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    H: FrameHandler<C>,
{
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
        self.buf.reserve(sizehint.clamp(1, READ_ROOM));
        &mut self.buf
    }

    fn buffer_updated(&mut self, _nbytes: usize) {
        self.deliver();
    }

    fn eof_received(&mut self) -> bool {
        self.eof = Eof::Pending;
        self.deliver()
    }
}

impl<C, H> IntoProtocol for FramedProtocol<C, H>
where
    C: Decoder + Clone + Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    H: FrameHandler<C>,
{
    fn into_protocol(self) -> AnyProtocol {
        AnyProtocol::buffered(self)
    }

    /// Held inline by the transport's task, as a `Buffered` protocol is
    /// (see [`IntoProtocol::__drive`]).
    #[inline]
    fn __drive<V: crate::drive::DriveVisitor>(self, visitor: V) -> V::Output {
        visitor.visit(crate::drive::Typed::new(crate::Buffered(self)))
    }
}
