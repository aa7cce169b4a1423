//! Streams on top of transports: a connection as tokio's `AsyncRead +
//! AsyncWrite` (asyncio's `asyncio.streams`: `open_connection`,
//! `start_server` and their Unix forms).
//!
//! This module owns the stream adapter: [`TransportStream`] (the stream,
//! `io_impl.rs`), its halves [`StreamReader`] and [`StreamWriter`]
//! (`split.rs`), the reading and writing logic they share (`sides.rs`),
//! [`StreamProtocol`] (the protocol under them, `protocol.rs`) and the
//! creation functions below. A [`TransportStream`] is made over any
//! transport of this crate with [`TransportStream::open`]; the functions
//! here are the common cases, named after asyncio's:
//!
//! | asyncio | here |
//! |---|---|
//! | `reader, writer = await asyncio.open_connection(host, port, ssl=..)` | `let (reader, writer) = open_connection(host, port, ConnectOptions::default()).await?.into_split()` |
//! | `await asyncio.start_server(client_connected_cb, host, port)` | `start_server(cb, host, port, ServerOptions::default()).await?` → [`Server`] |
//! | `asyncio.open_unix_connection(path)`, `asyncio.start_unix_server(cb, path)` | [`open_unix_connection`], [`start_unix_server`] |
//! | `limit=` | [`TransportStream::set_read_limit`] |
//!
//! One value is both the reader and the writer;
//! [`TransportStream::into_split`] gives asyncio's pair, a [`StreamReader`]
//! and a [`StreamWriter`], for two tasks. Flow control is the
//! transport's, as backpressure: see [`TransportStream`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//! use tokio_transports::streams::{open_connection, start_server};
//! use tokio_transports::{ConnectOptions, ServerOptions};
//!
//! // An echo server: each connection is a stream handed to an async fn.
//! let server = start_server(
//!     |stream| async move {
//!         let (mut r, mut w) = stream.into_split();
//!         let _ = tokio::io::copy(&mut r, &mut w).await;
//!     },
//!     "127.0.0.1",
//!     0,
//!     ServerOptions::default(),
//! )
//! .await?;
//! let port = server.sockets()[0].port();
//!
//! let mut stream = BufReader::new(open_connection("127.0.0.1", port, ConnectOptions::default()).await?);
//! stream.write_all(b"hello\n").await?;
//! let mut line = String::new();
//! stream.read_line(&mut line).await?;
//! assert_eq!(line, "hello\n");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::{ConnectOptions, Server, ServerHosts, ServerOptions, Transport, UnixEndpoint};

mod io_impl;
mod protocol;
mod sides;
mod split;

pub use io_impl::TransportStream;
pub use protocol::{DEFAULT_READ_LIMIT, StreamProtocol};
pub use split::{StreamReader, StreamWriter};

impl TransportStream {
    /// A stream over the transport that `connect` makes with the
    /// [`StreamProtocol`] it is given: pass the protocol to any creation
    /// function of this crate (`move || p` as the factory), so TLS, Unix
    /// sockets, pipes and [`connect_io`](crate::connect_io) I/O all become
    /// streams.
    ///
    /// # Errors
    ///
    /// What `connect` returns; `InvalidInput` if `connect` did not give the
    /// protocol to the transport it returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// use tokio_transports::streams::TransportStream;
    /// // A read pipe as an AsyncRead.
    /// let (writer, reader) = tokio::net::unix::pipe::pipe()?;
    /// let fd = reader.into_blocking_fd()?;
    /// let mut stream = TransportStream::open(|p| tokio_transports::connect_read_pipe(move || p, fd)).await?;
    /// tokio::io::AsyncWriteExt::write_all(&mut { writer }, b"through a pipe").await?;
    /// let mut text = String::new();
    /// stream.read_to_string(&mut text).await?;
    /// assert_eq!(text, "through a pipe");
    /// # Ok(()) }
    /// ```
    pub async fn open<F, Fut>(connect: F) -> io::Result<TransportStream>
    where
        F: FnOnce(StreamProtocol) -> Fut,
        Fut: Future<Output = io::Result<Transport>>,
    {
        let protocol = StreamProtocol::new(None);
        let shared = protocol.shared.clone();
        let transport = connect(protocol).await?;
        let ours = shared
            .lock()
            .transport
            .as_ref()
            .is_some_and(|t| t.id() == transport.id());
        // Lost before we looked (a peer that closed at once) still counts:
        // the protocol then saw the connection.
        if !ours && !shared.lock().lost {
            transport.abort();
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TransportStream::open: the transport does not run the StreamProtocol it was given",
            ));
        }
        Ok(TransportStream::new(transport, shared))
    }
}

/// A TCP (or, with [`ConnectOptions::ssl`], TLS) connection as a stream:
/// asyncio's `open_connection`, which returns a `(reader, writer)` pair
/// where this returns one [`TransportStream`]. The options are
/// [`create_connection`](crate::create_connection)'s.
///
/// # Errors
///
/// [`create_connection`](crate::create_connection)'s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let opts = tokio_transports::ConnectOptions::default();
/// let mut stream = tokio_transports::streams::open_connection("127.0.0.1", port, opts).await?;
/// stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
/// # Ok(()) }
/// ```
pub async fn open_connection(
    host: &str,
    port: u16,
    options: ConnectOptions,
) -> io::Result<TransportStream> {
    TransportStream::open(|p| crate::create_connection(move || p, host, port, options)).await
}

/// A Unix socket connection as a stream: asyncio's `open_unix_connection`.
/// The options are [`create_unix_connection`](crate::create_unix_connection)'s.
///
/// # Errors
///
/// [`create_unix_connection`](crate::create_unix_connection)'s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::streams::{open_unix_connection, start_unix_server};
/// use tokio_transports::{ConnectOptions, ServerOptions};
/// let path = std::env::temp_dir().join(format!("tt-doc-streams-{}.sock", std::process::id()));
/// let server = start_unix_server(|_stream| async {}, &path, ServerOptions::default()).await?;
/// let stream = open_unix_connection(&path, ConnectOptions::default()).await?;
/// assert!(stream.transport().peer_credentials().is_some());
/// # Ok(()) }
/// ```
pub async fn open_unix_connection(
    endpoint: impl Into<UnixEndpoint>,
    options: ConnectOptions,
) -> io::Result<TransportStream> {
    let endpoint = endpoint.into();
    TransportStream::open(|p| crate::create_unix_connection(move || p, endpoint, options)).await
}

/// The server-side callback's shape, made into what each connection's
/// protocol runs at `connection_made`.
fn spawner<F, Fut>(client_connected: F) -> protocol::OnConnect
where
    F: Fn(TransportStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |stream: TransportStream| {
        let transport = stream.transport().clone();
        // The callback itself (before it returns a future) and then its
        // future: a panic in either is asyncio's exception escaping
        // `client_connected_cb`.
        let connected =
            match std::panic::catch_unwind(AssertUnwindSafe(|| client_connected(stream))) {
                Ok(connected) => connected,
                Err(payload) => return report_unhandled(&transport, &*payload),
            };
        tokio::spawn(async move {
            if let Err(payload) = AssertUnwindSafe(connected).catch_unwind().await {
                report_unhandled(&transport, &*payload);
            }
        });
    })
}

/// `client_connected` panicked (asyncio: an exception escaped
/// `client_connected_cb`): report it to the exception handler with
/// asyncio's message, then close the connection, as asyncio's done callback
/// does. The stream may have been dropped while unwinding, which closes the
/// connection already, or have been moved elsewhere (another task, one half
/// of a split), which does not.
fn report_unhandled(transport: &Transport, payload: &(dyn std::any::Any + Send)) {
    let panicked = crate::CallbackPanicked::from_payload("client_connected_cb", payload);
    let err = io::Error::other(format!("client_connected panicked: {}", panicked.message));
    crate::call_exception_handler(
        &crate::ExceptionContext::new("Unhandled exception in client_connected_cb")
            .with_error(&err)
            .with_peername(transport.peername())
            .with_sockname(transport.sockname()),
    );
    transport.close();
}

/// A TCP (or, with [`ServerOptions::ssl`], TLS) server whose connections
/// are streams: asyncio's `start_server`. Each accepted connection is handed
/// to `client_connected` as a [`TransportStream`], and the future it
/// returns is spawned on the runtime (asyncio's `client_connected_cb`, here
/// with one stream instead of a reader and a writer). When that future ends
/// and drops the stream, the connection is closed. If `client_connected` or
/// its future panics, the panic is reported to the
/// [exception handler](crate::set_exception_handler) as "Unhandled
/// exception in client_connected_cb" (as asyncio reports an exception
/// there), the connection is closed (also when the stream was moved to
/// another task), and the server goes on. The options and the
/// returned [`Server`] are [`create_server`](crate::create_server)'s.
///
/// # Errors
///
/// [`create_server`](crate::create_server)'s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_transports::streams::{open_connection, start_server};
/// use tokio_transports::{ConnectOptions, ServerOptions};
/// let server = start_server(
///     |mut stream| async move {
///         let _ = stream.write_all(b"hello from the server").await;
///     },
///     "127.0.0.1",
///     0,
///     ServerOptions::default(),
/// )
/// .await?;
/// let mut client = open_connection("127.0.0.1", server.sockets()[0].port(), ConnectOptions::default()).await?;
/// let mut text = String::new();
/// client.read_to_string(&mut text).await?;
/// assert_eq!(text, "hello from the server");
/// # Ok(()) }
/// ```
pub async fn start_server<F, Fut>(
    client_connected: F,
    hosts: impl ServerHosts,
    port: u16,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn(TransportStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let spawn = spawner(client_connected);
    let factory = move || StreamProtocol::new(Some(spawn.clone()));
    crate::create_server(factory, hosts, port, options).await
}

/// A Unix socket server whose connections are streams: asyncio's
/// `start_unix_server`. As [`start_server`], with
/// [`create_unix_server`](crate::create_unix_server)'s endpoint and options.
///
/// # Errors
///
/// [`create_unix_server`](crate::create_unix_server)'s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_transports::streams::{open_unix_connection, start_unix_server};
/// use tokio_transports::{ConnectOptions, ServerOptions};
/// let path = std::env::temp_dir().join(format!("tt-doc-unix-streams-{}.sock", std::process::id()));
/// let server = start_unix_server(
///     |mut stream| async move { let _ = stream.write_all(b"hi").await; },
///     &path,
///     ServerOptions::default(),
/// )
/// .await?;
/// let mut client = open_unix_connection(&path, ConnectOptions::default()).await?;
/// let mut text = String::new();
/// client.read_to_string(&mut text).await?;
/// assert_eq!(text, "hi");
/// # Ok(()) }
/// ```
pub async fn start_unix_server<F, Fut>(
    client_connected: F,
    endpoint: impl Into<UnixEndpoint>,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn(TransportStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let spawn = spawner(client_connected);
    let factory = move || StreamProtocol::new(Some(spawn.clone()));
    crate::create_unix_server(factory, endpoint, options).await
}
