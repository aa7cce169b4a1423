//! `start_tls`: upgrade a live plain (or TLS) stream transport to TLS, as
//! asyncio's `loop.start_tls()` does, keeping the handle the protocol holds.
//!
//! The call marks the transport (nothing read from then on is delivered as
//! plaintext) and sends the connection's task an [`Upgrade`] command, in
//! order with the writes before it. The task sends what was queued before
//! the call in plaintext, then hands the connection (socket, bytes read but
//! not delivered, protocol, write state, commands made after the call) to a
//! new task that runs the handshake and carries on encrypted; see
//! `stream/driver/upgrade.rs`.

use std::future::Future;
use std::io;

use bytes::Bytes;
use futures::channel::oneshot;

use super::{ClientTls, ServerName, ServerTls};
use crate::stream::handle::{CLOSING, Command, EOF_WRITTEN, LOST, Transport, UPGRADING};

/// What [`start_tls`] does: which side of the handshake it takes, with its
/// settings (the client, asyncio's `server_side=False`, whose
/// `server_hostname` is required here; or the server), and the bytes of the
/// peer's first handshake flight the protocol already received.
///
/// ```
/// # use std::sync::Arc;
/// # fn f(client: Arc<tokio_transports::rustls::ClientConfig>, server: Arc<tokio_transports::rustls::ServerConfig>) {
/// use tokio_transports::{Bytes, ClientTls, ServerTls, StartTls};
/// let as_client: StartTls = ClientTls::new(client).server_hostname("mail.example").into();
/// let as_server = StartTls::server(ServerTls::new(server))
///     .already_received(Bytes::from_static(b"\x16\x03\x01"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StartTls {
    side: StartSide,
    received: Bytes,
}

#[derive(Debug, Clone)]
enum StartSide {
    Client(ClientTls),
    Server(ServerTls),
}

impl StartTls {
    /// Take the client side of the handshake.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn f(config: Arc<tokio_transports::rustls::ClientConfig>) {
    /// let up = tokio_transports::StartTls::client(
    ///     tokio_transports::ClientTls::new(config).server_hostname("localhost"),
    /// );
    /// # }
    /// ```
    pub fn client(tls: ClientTls) -> Self {
        StartTls {
            side: StartSide::Client(tls),
            received: Bytes::new(),
        }
    }

    /// Take the server side of the handshake.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn f(config: Arc<tokio_transports::rustls::ServerConfig>) {
    /// let up = tokio_transports::StartTls::server(tokio_transports::ServerTls::new(config));
    /// # }
    /// ```
    pub fn server(tls: ServerTls) -> Self {
        StartTls {
            side: StartSide::Server(tls),
            received: Bytes::new(),
        }
    }

    /// Bytes the protocol received that belong to the TLS session: what
    /// followed the upgrade command in the same `data_received` (a peer
    /// that sent `STARTTLS` and its ClientHello in one segment, or a PROXY
    /// header followed by the ClientHello). They are fed to the session
    /// before anything read from the socket.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn f(config: Arc<tokio_transports::rustls::ServerConfig>, data: tokio_transports::Bytes) {
    /// use tokio_transports::{ServerTls, StartTls};
    /// // data = b"STARTTLS\r\n" followed by the start of the handshake
    /// let rest = data.slice(b"STARTTLS\r\n".len()..);
    /// let up = StartTls::server(ServerTls::new(config)).already_received(rest);
    /// # }
    /// ```
    pub fn already_received(mut self, data: Bytes) -> Self {
        self.received = data;
        self
    }
}

impl From<ClientTls> for StartTls {
    fn from(tls: ClientTls) -> Self {
        StartTls::client(tls)
    }
}

impl From<ServerTls> for StartTls {
    fn from(tls: ServerTls) -> Self {
        StartTls::server(tls)
    }
}

/// The validated side of an upgrade.
pub(crate) enum Side {
    Client(ClientTls, ServerName),
    Server(ServerTls),
}

/// The command that asks a connection's task to upgrade.
pub(crate) struct Upgrade {
    pub(crate) side: Side,
    /// Bytes of the session the protocol already received.
    pub(crate) received: Bytes,
    /// Resolved once the handshake is done (or failed).
    pub(crate) reply: oneshot::Sender<io::Result<()>>,
    /// Commands made after the call in the same callback: applied by the
    /// TLS task, so that their writes go out encrypted.
    pub(crate) held: Vec<Command>,
}

/// Upgrade a live stream transport to TLS (asyncio's `loop.start_tls()`)
/// and resolve once the handshake is done.
///
/// The request is made when `start_tls` is *called*, so call it from a
/// callback (say `data_received`, right after reading a `STARTTLS` command)
/// and spawn or await the returned future:
///
/// * What was written before the call goes out in plaintext before the
///   handshake starts; what is written after it goes out encrypted.
/// * Bytes already read from the socket and not delivered go into the TLS
///   session first, and nothing read after the call is delivered as
///   plaintext. Data the peer sends right after its handshake reaches
///   `data_received` as soon as the handshake is done, possibly before the
///   future resolves.
/// * The protocol gets no second `connection_made`, and the handle it
///   already holds (and every clone) stays the transport's handle: there is
///   no new transport to use, unlike asyncio. The write buffer, its
///   watermarks and the paused-writing state carry over. Afterwards
///   [`can_write_eof`](Transport::can_write_eof) is false, and close sends
///   close_notify.
/// * On failure (handshake error, timeout, peer gone) the future resolves
///   with the error and the protocol gets `connection_lost(Some(err))`
///   (CPython delivers nothing and leaves it hanging).
/// * TLS inside TLS works: upgrade a TLS transport again.
///
/// Keep the returned future until it resolves (await it, or spawn it):
/// dropping it before the handshake is done cancels the upgrade, and the
/// connection is aborted (`connection_lost` with a "cancelled" error), as
/// asyncio closes the transport when `start_tls` is cancelled.
///
/// A `BufferedProtocol` should call it from a callback, or pause reading
/// first: a read made into its own buffer while the call races with it is
/// the protocol's already.
///
/// # Errors
///
/// At once (nothing changes): a zero timeout, a client side without
/// `server_hostname`, a transport closing, lost or after `write_eof()`, an
/// upgrade already under way, or a pipe transport. Later: as above.
///
/// ```no_run
/// use tokio_transports::{BaseProtocol, Bytes, ClientTls, Protocol, Transport, start_tls};
///
/// struct Smtp { t: Option<Transport>, tls: ClientTls }
/// impl BaseProtocol for Smtp {
///     fn connection_made(&mut self, t: &Transport) { self.t = Some(t.clone()); }
/// }
/// impl Protocol for Smtp {
///     fn data_received(&mut self, data: Bytes) {
///         let t = self.t.as_ref().unwrap();
///         if data.starts_with(b"220 Ready to start TLS") {
///             let upgrade = start_tls(t, self.tls.clone());
///             tokio::spawn(async move {
///                 if let Err(e) = upgrade.await {
///                     eprintln!("TLS failed: {e}");
///                 }
///             });
///             // Written after the call: goes out encrypted.
///             let _ = t.write("EHLO client.example\r\n");
///         }
///     }
/// }
/// ```
pub fn start_tls(
    transport: &Transport,
    tls: impl Into<StartTls>,
) -> impl Future<Output = io::Result<()>> + Send + 'static {
    let prepared = prepare(transport, tls.into());
    async move {
        let rx = prepared?;
        rx.await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the transport ended before the TLS upgrade",
            ))
        })
    }
}

fn prepare(transport: &Transport, tls: StartTls) -> io::Result<oneshot::Receiver<io::Result<()>>> {
    let side = match tls.side {
        StartSide::Client(c) => {
            let name = c.validate(None)?;
            Side::Client(c, name)
        }
        StartSide::Server(s) => {
            s.validate()?;
            Side::Server(s)
        }
    };
    let shared = &transport.shared;
    if shared.mode.is_pipe() {
        // TLS needs both ways; a pipe transport has one.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "start_tls() on a pipe transport",
        ));
    }
    if shared.has(CLOSING | LOST | EOF_WRITTEN) {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "start_tls() on a transport that is closing or whose write half is shut",
        ));
    }
    if shared
        .flags
        .fetch_or(UPGRADING, std::sync::atomic::Ordering::AcqRel)
        & UPGRADING
        != 0
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "start_tls() is already under way on this transport",
        ));
    }
    let (reply, rx) = oneshot::channel();
    transport.send_command(Command::StartTls(Box::new(Upgrade {
        side,
        received: tls.received,
        reply,
        held: Vec::new(),
    })));
    Ok(rx)
}
