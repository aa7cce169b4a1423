//! [`FramedTransport`]: a [`Transport`] with an encoder, what a
//! [`FrameHandler`](super::FrameHandler) sends frames through.

use std::io;
use std::ops::Deref;

use bytes::BytesMut;
use tokio_util::codec::Encoder;

use crate::Transport;
use crate::protocol::AnyProtocol;
use crate::stream::handle::{Command, READ_PAUSED};

/// Room reserved at a time for encoding: small frames share one block.
const ENCODE_ROOM: usize = 4 * 1024;

/// A [`Transport`] and a clone of the connection's codec, to send frames:
/// [`send`](Self::send) encodes and writes, through the transport's write
/// path (so the watermarks, `pause_writing`/`resume_writing` and
/// [`Transport::drain`] apply). It dereferences to the [`Transport`] for
/// everything else (`close`, `abort`, `drain`, addresses, ...), except
/// [`pause_reading`](Self::pause_reading) and
/// [`resume_reading`](Self::resume_reading), which also hold and release
/// frames already decoded.
///
/// Clone it (with its encoder) to send from another task; there, await
/// [`drain`](Transport::drain) between frames for flow control.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
/// use tokio::sync::mpsc;
/// /// Hands its transport to the application.
/// struct Export(mpsc::UnboundedSender<FramedTransport<LinesCodec>>);
/// impl FrameHandler<LinesCodec> for Export {
///     fn connection_made(&mut self, t: &mut FramedTransport<LinesCodec>) {
///         let _ = self.0.send(t.clone());
///     }
///     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
/// }
/// let (tx, mut rx) = mpsc::unbounded_channel();
/// let (a, b) = tokio::io::duplex(1024);
/// tokio_transports::connect_io(move || FramedProtocol::new(LinesCodec::new(), Export(tx)), a).await?;
/// let mut t = rx.recv().await.unwrap();
/// t.send("from another task").map_err(std::io::Error::other)?;
/// t.drain().await?;
/// # use tokio::io::AsyncBufReadExt;
/// # let mut line = String::new();
/// # tokio::io::BufReader::new(b).read_line(&mut line).await?;
/// # assert_eq!(line, "from another task\n");
/// # Ok(()) }
/// ```
pub struct FramedTransport<C> {
    transport: Transport,
    codec: C,
    out: BytesMut,
    /// The protocol's `redeliver`, run on the connection's task after
    /// `resume_reading`.
    redeliver: fn(&mut AnyProtocol),
}

impl<C> FramedTransport<C> {
    pub(crate) fn new(transport: Transport, codec: C, redeliver: fn(&mut AnyProtocol)) -> Self {
        FramedTransport {
            transport,
            codec,
            out: BytesMut::new(),
            redeliver,
        }
    }

    /// Encode `item` with the codec and write it (one [`Transport::write`]).
    ///
    /// # Errors
    ///
    /// The encoder's error; a [`TransportError`](crate::TransportError)
    /// from the write (after `write_eof`, on a read pipe) as an
    /// `io::Error` in the encoder's error type. Nothing is written then.
    /// As with `write`, a frame sent after the connection is lost is
    /// dropped and counted, not an error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LengthDelimitedCodec};
    /// # use tokio_transports::Bytes;
    /// struct Hello;
    /// impl FrameHandler<LengthDelimitedCodec> for Hello {
    ///     fn connection_made(&mut self, t: &mut FramedTransport<LengthDelimitedCodec>) {
    ///         t.send(Bytes::from_static(b"hello")).unwrap();
    ///     }
    ///     fn frame_received(&mut self, _f: tokio_transports::BytesMut, _t: &mut FramedTransport<LengthDelimitedCodec>) {}
    /// }
    /// let (a, b) = tokio::io::duplex(1024);
    /// tokio_transports::connect_io(|| FramedProtocol::new(LengthDelimitedCodec::new(), Hello), a).await?;
    /// # use tokio::io::AsyncReadExt;
    /// let mut got = [0u8; 9];
    /// tokio::io::BufReader::new(b).read_exact(&mut got).await?;
    /// assert_eq!(&got, b"\0\0\0\x05hello");
    /// # Ok(()) }
    /// ```
    pub fn send<I>(&mut self, item: I) -> Result<(), <C as Encoder<I>>::Error>
    where
        C: Encoder<I>,
    {
        if self.out.capacity() - self.out.len() < 64 {
            self.out.reserve(ENCODE_ROOM);
        }
        if let Err(e) = self.codec.encode(item, &mut self.out) {
            self.out.clear();
            return Err(e);
        }
        let frame = self.out.split().freeze();
        self.transport
            .write(frame)
            .map_err(|e| io::Error::from(e).into())
    }

    /// The transport.
    ///
    /// ```
    /// # use tokio_transports::codec::{FramedTransport, LinesCodec};
    /// fn peer(t: &FramedTransport<LinesCodec>) -> Option<std::net::SocketAddr> {
    ///     t.transport().peername()
    /// }
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The encoder (a clone of the codec the protocol decodes with).
    ///
    /// ```
    /// # use tokio_transports::codec::{FramedTransport, LinesCodec};
    /// fn max(t: &FramedTransport<LinesCodec>) -> usize { t.codec().max_length() }
    /// ```
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The encoder, mutably (to change its settings).
    ///
    /// ```
    /// # use tokio_transports::codec::{FramedTransport, LengthDelimitedCodec};
    /// fn widen(t: &mut FramedTransport<LengthDelimitedCodec>) { t.codec_mut().set_max_frame_length(1 << 20); }
    /// ```
    pub fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// [`Transport::pause_reading`]: from a handler's callback, no frame is
    /// handed over after the current one, not even those already received
    /// and decodable.
    ///
    /// ```
    /// # use tokio_transports::codec::{FrameHandler, FramedTransport, LinesCodec};
    /// /// Takes one line at a time, until the application says "next".
    /// struct OneAtATime;
    /// impl FrameHandler<LinesCodec> for OneAtATime {
    ///     fn frame_received(&mut self, _line: String, t: &mut FramedTransport<LinesCodec>) {
    ///         t.pause_reading();
    ///     }
    /// }
    /// ```
    pub fn pause_reading(&self) {
        self.transport.pause_reading();
    }

    /// [`Transport::resume_reading`], then, on the connection's task, the
    /// frames held while paused are handed over
    /// before anything newly received.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
    /// # struct H;
    /// # impl FrameHandler<LinesCodec> for H {
    /// #     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
    /// # }
    /// # let (a, _b) = tokio::io::duplex(64);
    /// # let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// # struct Export(tokio::sync::mpsc::UnboundedSender<FramedTransport<LinesCodec>>);
    /// # impl FrameHandler<LinesCodec> for Export {
    /// #     fn connection_made(&mut self, t: &mut FramedTransport<LinesCodec>) { let _ = self.0.send(t.clone()); }
    /// #     fn frame_received(&mut self, _l: String, _t: &mut FramedTransport<LinesCodec>) {}
    /// # }
    /// # tokio_transports::connect_io(move || FramedProtocol::new(LinesCodec::new(), Export(tx)), a).await?;
    /// let t: FramedTransport<LinesCodec> = rx.recv().await.unwrap();
    /// t.pause_reading();
    /// assert!(!t.is_reading());
    /// t.resume_reading();
    /// assert!(t.is_reading());
    /// # Ok(()) }
    /// ```
    pub fn resume_reading(&self) {
        let was_paused = self.transport.shared.has(READ_PAUSED);
        self.transport.resume_reading();
        if was_paused && self.transport.is_reading() {
            // `with_protocol` without the answer: runs on the task, after
            // the resume (after the current callback, if called from one).
            self.transport
                .send_command(Command::WithProtocol(Box::new(self.redeliver)));
        }
    }
}

impl<C: Clone> Clone for FramedTransport<C> {
    fn clone(&self) -> Self {
        FramedTransport {
            transport: self.transport.clone(),
            codec: self.codec.clone(),
            out: BytesMut::new(),
            redeliver: self.redeliver,
        }
    }
}

impl<C> Deref for FramedTransport<C> {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl<C> std::fmt::Debug for FramedTransport<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FramedTransport")
            .field(&self.transport)
            .finish()
    }
}
