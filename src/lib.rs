//! # tokio-transports
//!
//! Python asyncio's callback-style **Transports and Protocols** on tokio.
//!
//! A *transport* moves bytes; a *protocol* is your state machine, which the
//! transport calls back: `connection_made`, `data_received`, `eof_received`,
//! `connection_lost`, `pause_writing`/`resume_writing`, and for
//! [`BufferedProtocol`]s `get_buffer`/`buffer_updated`. Each connection is a
//! tokio task that owns the socket; the [`Transport`] handle you get (and
//! that `connection_made` hands your protocol) is cheap to clone and usable
//! from any thread.
//!
//! ```no_run
//! use tokio_transports::{BaseProtocol, Bytes, Protocol, ServerOptions, Transport};
//!
//! #[derive(Default)]
//! struct Echo(Option<Transport>);
//! impl BaseProtocol for Echo {
//!     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()); }
//! }
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: Bytes) {
//!         if let Some(t) = &self.0 { let _ = t.write(data); }
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let server = tokio_transports::create_server(Echo::default, "127.0.0.1", 8888, ServerOptions::default()).await?;
//! server.serve_forever().await
//! # }
//! ```
//!
//! TLS: [`ConnectOptions::ssl`] and [`ServerOptions::ssl`] (asyncio's `ssl=`),
//! and [`start_tls`] to upgrade a live connection; rustls is re-exported as
//! [`rustls`] for its configuration types.
//!
//! Pipes: [`connect_read_pipe`] and [`connect_write_pipe`] (pipes, FIFOs,
//! sockets, ptys): the same [`Transport`], one way.
//!
//! Adapters to the rest of tokio: [`codec`] runs a tokio-util `Decoder` +
//! `Encoder` as a protocol that hands the application whole frames;
//! [`streams`] makes any connection a tokio `AsyncRead + AsyncWrite`
//! (asyncio's `open_connection` / `start_server`), for hyper, `Framed` and
//! the like. Both keep the transport's flow control, as backpressure.
//!
//! [`Bytes`] and [`BytesMut`] are re-exported from the `bytes` crate, so a
//! project needs only this crate and `tokio`.
//!
//! Testing: with the `test-util` feature, [`testing`] drives a protocol
//! without sockets (feed bytes, read back what it wrote, step time) and
//! checks the order of its callbacks.
//!
//! See `docs/asyncio-parity.md` for every asyncio item and its Rust
//! counterpart, and `docs/architecture.md` for how a byte travels.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!(
    "tokio-transports supports Unix only (Linux, and the other Unixes with what \
     they lack noted in the crate docs): it is built on file descriptors, Unix \
     sockets, pipes and pidfd, which Windows does not have"
);

#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub mod codec;
mod context;
mod datagram;
mod error;
mod exception;
mod extra;
mod flow;
mod inbox;
mod limits;
mod protocol;
mod server;
mod shared;
mod stats;
mod stream;
#[cfg(feature = "streams")]
#[cfg_attr(docsrs, doc(cfg(feature = "streams")))]
pub mod streams;
#[cfg(feature = "process")]
mod subprocess;
mod tcp;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
#[cfg(feature = "tls")]
mod tls;
mod trace;
mod unix;

/// The byte buffers of this crate's API, re-exported so that a project needs
/// no `bytes` dependency of its own: `data_received` gets a [`Bytes`], a
/// `BufferedProtocol`'s `get_buffer` returns a `&mut` [`BytesMut`].
///
/// ```
/// use tokio_transports::{Bytes, BytesMut};
/// let mut buf = BytesMut::with_capacity(64);
/// buf.extend_from_slice(b"hello");
/// let frozen: Bytes = buf.freeze();
/// assert_eq!(&frozen[..], b"hello");
/// ```
pub use bytes::{Bytes, BytesMut};
pub use datagram::{
    AddressFamily, DatagramAddr, DatagramError, DatagramOptions, DatagramProtocol, DatagramSocket,
    DatagramTransport, IntoDatagramSocket, create_datagram_endpoint,
    create_datagram_endpoint_from_socket,
};
pub use error::{AddressAction, AddressError, CallbackPanicked, TransportError, raw_os_error};
pub use exception::{
    ExceptionContext, ExceptionHandler, call_exception_handler, default_exception_handler,
    set_exception_handler,
};
pub use extra::{ExtraInfo, PeerCredentials, SocketAddress};
pub use limits::{DEFAULT_HIGH_WATER, WriteLimits};
pub use protocol::{
    AnyProtocol, AsAny, BaseProtocol, Buffered, BufferedProtocol, IntoProtocol, Protocol,
};
/// The rustls crate this one is built with, for the configuration types
/// ([`ClientConfig`](rustls::ClientConfig), [`ServerConfig`](rustls::ServerConfig),
/// certificates and keys in [`pki_types`](rustls::pki_types)).
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use rustls;
pub use server::{
    ACCEPT_RETRY_DELAY, Server, ServerHosts, ServerOptions, ShutdownReport, UnixEndpoint,
    create_server, create_unix_server,
};
pub use stats::{TransportStats, callback_timing, set_callback_timing};
pub use stream::handle::Transport;
pub use stream::pipe::{connect_read_pipe, connect_write_pipe};
pub use stream::{IntoUnixStream, connect_io, connect_unix_stream};
#[cfg(feature = "process")]
#[cfg_attr(docsrs, doc(cfg(feature = "process")))]
pub use subprocess::{
    Stdio, SubprocessOptions, SubprocessProtocol, SubprocessTransport, subprocess_exec,
    subprocess_shell,
};
pub use tcp::{
    ConnectOptions, IntoTcpStream, connect_accepted_socket, create_connection,
    create_connection_from_socket,
};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls::{
    ClientTls, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, ServerTls, StartTls,
    TLS_WRITE_LIMITS, TlsError, TlsInfo, start_tls,
};
pub use unix::create_unix_connection;

/// The unit protocol ignores every callback: handy for a transport that
/// only writes, or in examples.
impl BaseProtocol for () {}

/// See the [`BaseProtocol`] impl.
impl Protocol for () {}
