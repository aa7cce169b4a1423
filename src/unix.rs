//! Unix stream connections: asyncio's `loop.create_unix_connection` (a
//! path, an abstract name, or a connected socket), with TLS as for TCP, and
//! the settings every Unix stream transport shares ([`unix_config`]: names
//! as paths, the peer's credentials, no `TCP_NODELAY`).

use std::io;

use tokio::net::UnixStream;

use crate::ConnectOptions;
use crate::error::current_runtime;
use crate::extra::Extra;
use crate::server::UnixEndpoint;
use crate::stream::StreamConfig;
use crate::stream::driver::OnFinish;
use crate::stream::handle::Transport;
use crate::tcp::start_client;
use crate::{IntoProtocol, WriteLimits};

/// The settings of a transport over a connected Unix stream.
pub(crate) fn unix_config(
    stream: &UnixStream,
    limits: WriteLimits,
    on_finish: Option<OnFinish>,
    notify_started: bool,
) -> StreamConfig {
    StreamConfig {
        extra: Extra::unix(stream),
        limits,
        can_write_eof: true,
        on_finish,
        notify_started,
    }
}

/// Connect to a Unix stream socket (a path, a Linux abstract name with a
/// leading NUL, or a connected socket of yours) and drive the connection
/// with the protocol that `protocol_factory` makes (asyncio's
/// `loop.create_unix_connection`). Returns once `connection_made` has run.
///
/// From [`ConnectOptions`]: `write_limits`, `connect_timeout` and `ssl` apply
/// (with TLS, `server_hostname` is required: a Unix path is no host name);
/// the TCP options do not.
///
/// # Errors
///
/// A path where nothing listens (`NotFound`, `ConnectionRefused`, with the
/// path named); a socket that is not a Unix stream socket ("A UNIX Domain
/// Stream Socket was expected, ..."); TLS as for `create_connection`;
/// outside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{ConnectOptions, ServerOptions, create_unix_connection, create_unix_server};
/// let path = std::env::temp_dir().join(format!("tt-doc-conn-{}.sock", std::process::id()));
/// let server = create_unix_server(|| (), &path, ServerOptions::default()).await?;
/// let t = create_unix_connection(|| (), &path, ConnectOptions::default()).await?;
/// assert!(t.peer_credentials().is_some());
/// t.close();
/// # Ok(()) }
/// ```
pub async fn create_unix_connection<F, P>(
    protocol_factory: F,
    endpoint: impl Into<UnixEndpoint>,
    options: ConnectOptions,
) -> io::Result<Transport>
where
    F: FnOnce() -> P,
    P: IntoProtocol,
{
    current_runtime()?;
    let tls = options.tls_start(None)?;
    let stream = match endpoint.into() {
        UnixEndpoint::Path(path) => {
            let connect = UnixStream::connect(&path);
            let connected = match options.connect_timeout {
                Some(limit) => tokio::time::timeout(limit, connect).await.map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connect to {} timed out after {limit:?}",
                            crate::server::py_repr(&path)
                        ),
                    )
                })?,
                None => connect.await,
            };
            connected.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "Connect call failed {}: {}",
                        crate::server::py_escape(&path),
                        crate::error::os_reason(&e).to_lowercase()
                    ),
                )
            })?
        }
        UnixEndpoint::Socket(sock) => {
            crate::server::check_unix_stream(&sock)?;
            sock.set_nonblocking(true)?;
            let std: std::os::unix::net::UnixStream = std::os::fd::OwnedFd::from(sock).into();
            UnixStream::from_std(std)?
        }
    };
    let config = unix_config(&stream, options.write_limits, None, true);
    start_client(stream, protocol_factory(), config, tls).await
}
