//! The methods of asyncio's `DatagramTransport` class: `sendto` with its
//! in-callback fast path (straight to the socket while nothing is queued),
//! the write buffer's size and watermarks, `close`, `abort` and
//! `is_closing`.

use std::io;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{CLOSING, Command, DatagramError, DatagramTransport, Family, LOST};
use crate::TransportError;
use crate::datagram::socket::try_direct;
use crate::datagram::state::cost;
use crate::extra::SocketAddress;

impl DatagramTransport {
    /// Send one datagram (asyncio's `sendto(data, addr=None)`): `data` goes
    /// out as exactly one datagram, never merged or split; empty data sends
    /// an empty datagram. Never blocks. From one of the endpoint's callbacks
    /// with nothing queued, the datagram is sent at once, as in asyncio (and
    /// is never counted in the write buffer); otherwise it is tried as soon
    /// as the endpoint's task sees it. It is queued only if the socket is
    /// full.
    ///
    /// `addr`: `None` sends to the `remote_addr` the endpoint was created
    /// with; on an endpoint with a `remote_addr`, any other address is an
    /// error; on one without, `None` is an error. In these cases nothing is
    /// sent and the endpoint stays open. After the endpoint is lost, or
    /// after [`close`](Self::close) once nothing is left to send, the
    /// datagram is dropped and counted
    /// ([`dropped_writes`](Self::dropped_writes)) before `sendto` returns,
    /// never an error; after `close()` with datagrams still queued it is
    /// queued behind them, as in asyncio. A send the kernel refuses (e.g. a datagram too large)
    /// is reported to `error_received`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use tokio_transports::{create_datagram_endpoint, DatagramError, DatagramOptions, SocketAddress};
    /// let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    /// let to = SocketAddress::Inet(peer.local_addr()?);
    /// let opts = DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// t.sendto(&b"ping"[..], Some(to.clone()))?;
    /// t.sendto("", Some(to))?; // an empty datagram
    /// assert_eq!(t.sendto("where to?", None), Err(DatagramError::NoAddress));
    /// assert!(!t.is_closing());
    /// # Ok(()) }
    /// ```
    pub fn sendto(
        &self,
        data: impl Into<Bytes>,
        addr: Option<SocketAddress>,
    ) -> Result<(), DatagramError> {
        let shared = &*self.shared;
        let to = match (&shared.remote, addr) {
            (Some(remote), given) => {
                if let Some(given) = given
                    && given != *remote
                {
                    return Err(DatagramError::AddressMismatch {
                        remote: remote.clone(),
                        given,
                    });
                }
                if shared.connected {
                    None
                } else {
                    Some(remote.clone())
                }
            }
            (None, Some(given)) => {
                let fits = match &given {
                    SocketAddress::Inet(_) => shared.family == Family::Inet,
                    SocketAddress::Unix(path) => shared.family == Family::Unix && path.is_some(),
                };
                if !fits {
                    return Err(DatagramError::UnsupportedAddress(given));
                }
                Some(given)
            }
            (None, None) => return Err(DatagramError::NoAddress),
        };
        let data = data.into();
        let flags = shared.flags.load(Ordering::Acquire);
        // Lost, or closed with nothing left to send (asyncio's `close()`
        // marks the loss at once then): dropped and counted here, before
        // `sendto` returns. (Closed with datagrams still queued, it is
        // queued behind them and sent, as in asyncio.)
        if flags & LOST != 0 || (flags & CLOSING != 0 && shared.buffer_size() == 0) {
            shared.stats.wrote();
            shared.count_dropped_write();
            return Ok(());
        }
        if flags & CLOSING == 0 {
            // From a callback, with nothing queued: send now, as asyncio does.
            match try_direct(shared.id, &data, to.as_ref()) {
                None => {}
                Some(Ok(_)) => {
                    // (Inside a callback: the task's thread.)
                    shared.stats.wrote_here();
                    shared.stats.sent(data.len());
                    return Ok(());
                }
                Some(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Some(Err(e)) => {
                    // Dropped, and reported once the callback returns.
                    shared.stats.wrote_here();
                    self.send(Command::SendFailed(e));
                    return Ok(());
                }
            }
        }
        shared.stats.wrote();
        shared.add_buffered(cost(data.len()));
        self.send(Command::Send(data, to));
        Ok(())
    }

    /// The write buffer size: for each datagram accepted by
    /// [`sendto`](Self::sendto) and not yet taken by the kernel, its length
    /// plus 8 (CPython's accounting since gh-135444). Exact the moment
    /// `sendto` returns, from any thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use tokio_transports::{create_datagram_endpoint, DatagramOptions};
    /// # let opts = DatagramOptions::default().remote_addr(("127.0.0.1", 9));
    /// let t = create_datagram_endpoint(|| (), opts).await?;
    /// t.sendto(vec![0u8; 100], None)?;
    /// t.sendto("", None)?;
    /// assert_eq!(t.get_write_buffer_size(), 108 + 8); // the task has not run yet
    /// # Ok(()) }
    /// ```
    pub fn get_write_buffer_size(&self) -> usize {
        self.shared.buffer_size()
    }

    /// The watermarks as `(low, high)`, low first as in asyncio.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    /// # Ok(()) }
    /// ```
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.shared.limits()
    }

    /// Set the watermarks (asyncio's `set_write_buffer_limits(high, low)`):
    /// neither → 64 KiB / 16 KiB; only `high` → `low = high / 4`; only `low`
    /// → `high = 4 * low`; `low > high` → an error and nothing changes.
    /// Effective at once: a queue strictly over the new high pauses the
    /// protocol.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.set_write_buffer_limits(Some(1000), None)?;
    /// assert_eq!(t.get_write_buffer_limits(), (250, 1000));
    /// assert!(t.set_write_buffer_limits(Some(10), Some(20)).is_err());
    /// # Ok(()) }
    /// ```
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), TransportError> {
        let limits = self.shared.set_limits(high, low)?;
        self.send(Command::SetLimits(limits));
        Ok(())
    }

    /// Close gracefully (asyncio's `close`): stop receiving, send the queued
    /// datagrams, then deliver `connection_lost(None)`. Idempotent; a no-op
    /// after the endpoint is lost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.close();
    /// assert!(t.is_closing());
    /// t.closed().await;
    /// t.close(); // a silent no-op
    /// # Ok(()) }
    /// ```
    pub fn close(&self) {
        if self.shared.mark_closing() {
            self.send(Command::Close);
        }
    }

    /// Close at once (asyncio's `abort`): drop the queued datagrams and
    /// deliver `connection_lost(None)`. A no-op after the endpoint is lost.
    /// The endpoint is lost when this returns: the write buffer size is 0
    /// and later datagrams are dropped and counted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// t.abort();
    /// t.closed().await;
    /// assert_eq!(t.get_write_buffer_size(), 0);
    /// # Ok(()) }
    /// ```
    pub fn abort(&self) {
        if self.shared.mark_aborting() {
            self.send(Command::Abort);
        }
    }

    /// Whether the endpoint is closing or closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # let opts = tokio_transports::DatagramOptions::default().local_addr(("127.0.0.1", 0));
    /// let t = tokio_transports::create_datagram_endpoint(|| (), opts).await?;
    /// assert!(!t.is_closing());
    /// # Ok(()) }
    /// ```
    pub fn is_closing(&self) -> bool {
        self.shared.is_closing()
    }
}
