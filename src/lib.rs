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
//! Testing: with the `test-util` feature, the `testing` module drives a protocol
//! without sockets (feed bytes, read back what it wrote, step time) and
//! checks the order of its callbacks.
//!
//! See `docs/asyncio-parity.md` for every asyncio item and its Rust
//! counterpart, and `docs/architecture.md` for how a byte travels.
//!
//! # Map of the crate
//!
//! | What | Where |
//! |---|---|
//! | Protocols (your callbacks) | [`BaseProtocol`], [`Protocol`], [`BufferedProtocol`] (as [`Buffered`]), [`DatagramProtocol`], `SubprocessProtocol` |
//! | The stream transport handle | [`Transport`]: write, close, flow control, extra info, [`Transport::drain`], [`Transport::closed`] |
//! | TCP | [`create_connection`], [`create_connection_from_socket`], [`connect_accepted_socket`], [`create_server`] → [`Server`] |
//! | Unix stream sockets | [`create_unix_connection`], [`connect_unix_stream`], [`create_unix_server`] |
//! | UDP and Unix datagrams | [`create_datagram_endpoint`], [`create_datagram_endpoint_from_socket`] → [`DatagramTransport`] |
//! | Pipes | [`connect_read_pipe`], [`connect_write_pipe`]; any `AsyncRead + AsyncWrite`: [`connect_io`] |
//! | TLS (feature `tls`) | `ConnectOptions::ssl`, `ServerOptions::ssl`, `start_tls`, `ClientTls`, `ServerTls`, `TlsInfo`, the `rustls` re-export |
//! | Child processes (feature `process`) | `subprocess_exec`, `subprocess_shell` → `SubprocessTransport` |
//! | Adapters (features `codec`, `streams`) | `codec` (a tokio-util codec as a protocol), `streams` (a connection as `AsyncRead + AsyncWrite`) |
//! | The test kit (feature `test-util`) | `testing` |
//! | Errors and diagnostics | [`TransportError`], [`AddressError`], [`raw_os_error`], [`set_exception_handler`], [`TransportStats`] |
//!
//! # Cargo features
//!
//! | Feature | Default | What it adds |
//! |---|---|---|
//! | `tls` | yes | TLS over rustls (ring provider): `ClientTls`, `ServerTls`, `ConnectOptions::ssl`, `ServerOptions::ssl`, `connect_accepted_socket`'s `ssl`, `start_tls`, `Transport::tls_info` and the `"peercert"`, `"cipher"`, `"ssl_object"` extra info, the `rustls` re-export. Pulls rustls, tokio-rustls and ring (which builds C: a C compiler is needed) |
//! | `process` | yes | Child processes: `subprocess_exec`, `subprocess_shell`, `SubprocessTransport`, `SubprocessProtocol`, `Stdio`, `SubprocessOptions` (Linux only, see below) |
//! | `codec` | yes | The `codec` module; turns on tokio-util's `codec` feature |
//! | `streams` | yes | The `streams` module (asyncio's streams: `open_connection`, `start_server`, `TransportStream`) |
//! | `test-util` | no | The `testing` module (harnesses, call-order checker, recorder) and tokio's `test-util` (paused time). Off by default, as tokio's feature of that name: it is for tests (turn it on in `[dev-dependencies]`), and it turns tokio's `test-util` on for the whole build |
//!
//! The default set is everything but the test kit, so that adding the crate
//! gives asyncio's whole API; for a smaller build, turn the defaults off
//! (`default-features = false`) and list what you use (the build without
//! `tls` skips ring's C, its largest part). Always there, in every build:
//! TCP, UDP, Unix stream and datagram sockets, pipes, servers, flow control,
//! extra info, the exception handler. Unix sockets and pipes need no
//! dependency, and the public enums have Unix variants
//! ([`SocketAddress::Unix`], [`DatagramAddr::Unix`]) that a feature could
//! not add without breaking a dependent's exhaustive `match`. Without `tls`,
//! [`connect_accepted_socket`]'s `ssl` is an `Option<Infallible>`: `None`
//! builds either way.
//!
//! # Platforms
//!
//! Unix only: the crate is built on file descriptors, Unix sockets and
//! pipes, and does not compile elsewhere (a `compile_error!` says so).
//! Linux is where it is developed and tested (CI runs on Linux, and checks
//! that the crate builds for macOS and FreeBSD, without `tls`, whose ring
//! needs the target's C compiler). On other Unixes the crate builds without
//! what Linux alone has:
//!
//! * child processes (feature `process`) use pidfd (`pidfd_open`,
//!   `waitid(P_PIDFD)`): the feature is compiled out elsewhere;
//! * abstract Unix socket names (a path starting with a NUL byte) are
//!   Linux's;
//! * a Unix stream peer's credentials ([`Transport::peer_credentials`],
//!   `"peercred"`) come from `SO_PEERCRED` on Linux and `getpeereid`-like
//!   calls elsewhere, whatever tokio's `peer_cred` gives.
//!
//! # Minimum supported Rust version
//!
//! Rust **1.88** (`rust-version` in `Cargo.toml`): the code uses edition
//! 2024 (1.85), trait upcasting (1.86) and `let` chains (1.88). CI checks
//! it the way a new user meets it: a fresh project on 1.88 that depends on
//! this crate, resolved and checked with that toolchain. Raising it is a
//! minor-version change.
//!
//! # Cancel safety
//!
//! A future of this crate may be dropped (a `select!`, a timeout, an
//! aborted task). What that leaves behind:
//!
//! | Future | Dropped before it returned |
//! |---|---|
//! | [`create_connection`], [`create_connection_from_socket`], [`connect_accepted_socket`], [`create_unix_connection`], [`connect_unix_stream`], [`connect_io`], [`connect_read_pipe`], [`connect_write_pipe`] | No connection is left running. Before the connection exists: nothing was made (the socket being connected is closed). After: the connection is closed; if `connection_made` had not run yet, it never runs and the protocol hears nothing (as after a failed TLS handshake); if it had run, the protocol gets `connection_lost(None)` after the close, as asyncio's `transport.close()` when `create_connection` is cancelled. With TLS, a dropped future during the handshake aborts it and closes the socket |
//! | [`create_datagram_endpoint`], [`create_datagram_endpoint_from_socket`] | The endpoint, if its task started, is closed: `connection_made` then `connection_lost(None)` |
//! | `subprocess_exec`, `subprocess_shell` | The pipes connected so far are closed and the child is killed (and still reaped): no child the caller never got runs on |
//! | `start_tls` | Before the handshake completed: the upgrade is cancelled and the connection aborted (`connection_lost` with a "cancelled" error), as asyncio closes the transport. After: the connection goes on encrypted (the caller holds its `Transport`) |
//! | [`create_server`], [`create_unix_server`] | The listening sockets bound so far are closed; no server is left accepting |
//! | `streams::open_connection`, `streams::open_unix_connection`, `TransportStream::open` | As `create_connection`: the connection is closed |
//! | `streams::start_server`, `streams::start_unix_server` | As `create_server` |
//! | [`Server::serve_forever`] | The server is closed (stops listening; accepted connections stay), as asyncio's cancelled `serve_forever` |
//! | [`Server::wait_closed`], [`Server::start_serving`] | Cancel-safe |
//! | [`Server::shutdown`] | Stopping is already under way and goes on: accepting stopped, every connection was asked to close; only the wait for the grace period, the final abort and the report are lost. Call it again, or [`Server::abort_clients`], to finish |
//! | [`Server::serve_until`] | Before its trigger fired: the server keeps serving (drop it and it closes as any `Server`). After: as `shutdown` |
//! | [`Transport::drain`], [`Transport::closed`], [`DatagramTransport::drain`], [`DatagramTransport::closed`], `SubprocessTransport::wait`, `SubprocessTransport::closed` | Cancel-safe: they only wait; the transport is unchanged |
//! | [`Transport::with_protocol`], [`DatagramTransport::with_protocol`] | The closure was sent to the connection's task and runs there anyway; only its result is lost |
//! | Reads and writes of a `streams::TransportStream` | As tokio's `AsyncRead`/`AsyncWrite`: a dropped `read` loses no data; a dropped `write` wrote what it reported and nothing else |

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
mod sendfile;
mod server;
mod shared;
mod stats;
mod stream;
#[cfg(feature = "streams")]
#[cfg_attr(docsrs, doc(cfg(feature = "streams")))]
pub mod streams;
// Child processes use pidfd (`pidfd_open`, `waitid(P_PIDFD)`): Linux only.
#[cfg(all(feature = "process", target_os = "linux"))]
mod subprocess;
mod tcp;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
#[cfg(feature = "tls")]
mod tls;
mod trace;
mod unix;
mod wake;

#[doc(hidden)]
pub mod drive;

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
pub use sendfile::sendfile;
pub use server::{
    ACCEPT_RETRY_DELAY, IntoListenerSocket, Server, ServerHosts, ServerOptions, ShutdownReport,
    UnixEndpoint, create_server, create_server_from_socket, create_unix_server,
};
pub use stats::{TransportStats, callback_timing, set_callback_timing};
pub use stream::handle::Transport;
pub use stream::pipe::{connect_read_pipe, connect_write_pipe};
pub use stream::{IntoUnixStream, connect_io, connect_unix_stream};
#[cfg(all(feature = "process", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "process", target_os = "linux"))))]
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

// The README's Rust snippets, compiled (and run, but for `no_run` ones) as
// doc tests: `cargo test --doc` checks that the README's code builds.
#[cfg(all(
    doctest,
    feature = "tls",
    feature = "codec",
    feature = "streams",
    feature = "test-util"
))]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

/// The unit protocol ignores every callback: handy for a transport that
/// only writes, or in examples.
impl BaseProtocol for () {}

/// See the [`BaseProtocol`] impl.
impl Protocol for () {}
