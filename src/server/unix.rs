//! Unix stream servers: asyncio's `loop.create_unix_server`, on the same
//! [`Server`] as TCP (one accept loop, one client registry, one
//! `wait_closed`).
//!
//! What is Unix-only lives here: removing a stale socket file before bind
//! (and refusing to touch a file that is not a socket), Linux abstract
//! names, and removing the socket file at close only while it is still the
//! one this server bound ([`Cleanup`]: CPython 3.13's `cleanup_socket`, with
//! its inode check).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use socket2::{Domain, SockAddr, Socket, Type};

use super::accept::FactoryFn;
use super::{Factory, Server, ServerOptions, new_server, ready_to_serve};
use crate::IntoProtocol;
use crate::extra::SocketAddress;

/// Where a Unix server listens or a Unix connection goes (asyncio's `path`
/// or `sock`): a path (a Linux abstract name when it starts with a NUL
/// byte), or a socket you made. Having one of the two, never both or
/// neither, is the type's job (asyncio checks it at run time).
///
/// ```
/// use tokio_transports::UnixEndpoint;
/// let by_path: UnixEndpoint = "/tmp/app.sock".into();
/// let abstract_name: UnixEndpoint = "\0app".into();
/// # let _ = (by_path, abstract_name);
/// ```
#[derive(Debug)]
pub enum UnixEndpoint {
    /// A filesystem path, or an abstract name (leading NUL, Linux).
    Path(PathBuf),
    /// A socket: bound (for a server) or connected (for a connection). It
    /// must be a Unix stream socket; anything else is an error that says so.
    Socket(Socket),
}

impl From<&str> for UnixEndpoint {
    fn from(p: &str) -> Self {
        UnixEndpoint::Path(PathBuf::from(p))
    }
}

impl From<String> for UnixEndpoint {
    fn from(p: String) -> Self {
        UnixEndpoint::Path(PathBuf::from(p))
    }
}

impl From<&Path> for UnixEndpoint {
    fn from(p: &Path) -> Self {
        UnixEndpoint::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for UnixEndpoint {
    fn from(p: PathBuf) -> Self {
        UnixEndpoint::Path(p)
    }
}

impl From<&PathBuf> for UnixEndpoint {
    fn from(p: &PathBuf) -> Self {
        UnixEndpoint::Path(p.clone())
    }
}

impl From<Socket> for UnixEndpoint {
    fn from(s: Socket) -> Self {
        UnixEndpoint::Socket(s)
    }
}

impl From<std::os::unix::net::UnixListener> for UnixEndpoint {
    fn from(s: std::os::unix::net::UnixListener) -> Self {
        UnixEndpoint::Socket(Socket::from(std::os::fd::OwnedFd::from(s)))
    }
}

impl From<std::os::unix::net::UnixStream> for UnixEndpoint {
    fn from(s: std::os::unix::net::UnixStream) -> Self {
        UnixEndpoint::Socket(Socket::from(std::os::fd::OwnedFd::from(s)))
    }
}

/// A bound Unix socket's name: a path, an abstract name (leading NUL), or
/// none.
pub(super) fn unix_name(addr: &SockAddr) -> SocketAddress {
    if let Some(path) = addr.as_pathname() {
        return SocketAddress::Unix(Some(path.to_path_buf()));
    }
    if let Some(name) = addr.as_abstract_namespace() {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name);
        return SocketAddress::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))));
    }
    SocketAddress::Unix(None)
}

/// Whether `path` is a Linux abstract name.
pub(crate) fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// Check that `sock` is a Unix stream socket (asyncio's message).
pub(crate) fn check_unix_stream(sock: &Socket) -> io::Result<()> {
    let domain = crate::extra::socket_domain(sock)?;
    let ty = sock.r#type()?;
    if domain != Domain::UNIX || ty != Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("A UNIX Domain Stream Socket was expected, got {domain:?} {ty:?}"),
        ));
    }
    Ok(())
}

/// A socket file the server removes when it closes, if it is still the
/// one it bound (same device and inode).
pub(crate) struct Cleanup {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Cleanup {
    fn of(path: &Path) -> Option<Cleanup> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Cleanup {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Remove the file if it is still ours: a socket that replaced it is
    /// left alone; one already removed is fine.
    pub(crate) fn remove_if_ours(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bind a new Unix stream socket to `path`, removing a stale socket file
/// first, as asyncio does: the path is checked with `stat` (which follows a
/// symbolic link, so a link to a stale socket is removed and replaced); a
/// file that is not a socket is left untouched and the bind fails with
/// "Address '...' is already in use". A path that cannot be checked (no
/// permission to `stat` it) is logged and the bind is tried all the same.
fn bind_path(path: &Path) -> io::Result<Socket> {
    if !is_abstract(path) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => return Err(in_use(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(
                "Unable to check or remove stale UNIX socket {}: {e}",
                py_repr(path)
            ),
        }
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    let addr = SockAddr::unix(path)?;
    sock.bind(&addr).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            in_use(path)
        } else {
            io::Error::new(
                e.kind(),
                format!(
                    "error while attempting to bind on address {}: {}",
                    py_repr(path),
                    crate::error::os_reason(&e).to_lowercase()
                ),
            )
        }
    })?;
    Ok(sock)
}

/// asyncio's error for a path in use: "Address '...' is already in use".
fn in_use(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("Address {} is already in use", py_repr(path)),
    )
}

/// A path as Python's `repr()` of it shows it: in single quotes (double
/// ones if it holds a single quote and no double one), with backslashes,
/// the quote and control characters escaped (an abstract name's leading NUL
/// reads `\x00`, never a raw NUL byte).
pub(crate) fn py_repr(path: &Path) -> String {
    let text = path.to_string_lossy();
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    format!("{quote}{}{quote}", escape(&text, Some(quote)))
}

/// A path as Python's `str()` of it, with control characters escaped as
/// in [`py_repr`] (a raw NUL byte would cut a C-string log short).
pub(crate) fn py_escape(path: &Path) -> String {
    escape(&path.to_string_lossy(), None)
}

fn escape(text: &str, quote: Option<char>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' if quote.is_some() => out.push_str("\\\\"),
            c if Some(c) == quote => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Create a Unix stream server on a path (or an abstract name, or a bound
/// socket of yours), whose connections are driven by protocols from
/// `protocol_factory` (asyncio's `loop.create_unix_server`). The same
/// [`Server`] as TCP's: `close`, `wait_closed`, `close_clients`,
/// `abort_clients`, `serve_forever`, the accept loop's EMFILE pause.
///
/// From [`ServerOptions`]: `backlog`, `start_serving`, `write_limits`,
/// `ssl` (TLS over the Unix socket) and `cleanup_socket` apply; the TCP
/// options (`reuse_*`, `keep_alive`, `nodelay`) do not.
///
/// Before binding a path, a stale socket file there is removed; a file that
/// is not a socket is left alone and the call fails ("Address '...' is
/// already in use"). When the server closes (or is dropped), the socket
/// file is removed if it is still the one bound (same inode: a socket that
/// replaced it is left alone), unless `cleanup_socket` is off. This applies
/// to a socket you passed too, as in CPython 3.13.
///
/// # Errors
///
/// A bind error (kind kept, path named); a socket that is not a Unix stream
/// socket ("A UNIX Domain Stream Socket was expected, ..."); zero TLS
/// timeouts; outside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use tokio_transports::{ServerOptions, SocketAddress, create_unix_server};
/// let path = std::env::temp_dir().join(format!("tt-doc-{}.sock", std::process::id()));
/// let server = create_unix_server(|| (), &path, ServerOptions::default()).await?;
/// assert_eq!(server.socket_addresses(), [SocketAddress::Unix(Some(path.clone()))]);
/// server.close();
/// server.wait_closed().await;
/// assert!(!path.exists(), "removed at close");
/// # Ok(()) }
/// ```
pub async fn create_unix_server<F, P>(
    protocol_factory: F,
    endpoint: impl Into<UnixEndpoint>,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: Fn() -> P + Send + Sync + 'static,
    P: IntoProtocol,
{
    ready_to_serve(&options)?;
    let sock = match endpoint.into() {
        UnixEndpoint::Path(path) => bind_path(&path)?,
        UnixEndpoint::Socket(sock) => {
            check_unix_stream(&sock)?;
            sock.set_nonblocking(true)?;
            sock
        }
    };
    let addr = sock
        .local_addr()
        .map(|a| unix_name(&a))
        .unwrap_or(SocketAddress::Unix(None));
    let mut cleanup = Vec::new();
    if options.cleanup_socket
        && let SocketAddress::Unix(Some(path)) = &addr
        && !is_abstract(path)
        && let Some(c) = Cleanup::of(path)
    {
        cleanup.push(c);
    }
    let factory: Factory = Arc::new(FactoryFn(protocol_factory));
    new_server(factory, options, vec![(sock, addr)], cleanup).await
}

#[cfg(test)]
mod repr_tests {
    use super::*;

    /// Checked against `python3 -c 'print(repr(p))'`.
    #[test]
    fn paths_read_as_python_shows_them() {
        let r = |p: &str| py_repr(Path::new(p));
        assert_eq!(r("/tmp/s.sock"), "'/tmp/s.sock'");
        assert_eq!(r("\0name"), "'\\x00name'");
        assert_eq!(r("a'b"), "\"a'b\"");
        assert_eq!(r("a'b\""), "'a\\'b\"'");
        assert_eq!(r("a\\b\n"), "'a\\\\b\\n'");
        assert_eq!(py_escape(Path::new("\0name")), "\\x00name");
    }
}
