//! `start_tls` in the stream driver: the plain task sends what was queued
//! before the call, then hands the connection over to a new task whose I/O
//! is a TLS session over the old I/O (with the bytes read but not
//! delivered put back in front), and ends without a callback. The new task
//! runs the handshake ([`Stage::Upgrading`]), then carries on: same handle,
//! same protocol, same write state, no second `connection_made`.
//!
//! The I/O type of a task is fixed, so the TLS task's I/O is one type for
//! every upgrade, `TlsIo<Rewind<BoxIo>>`: a TLS transport upgraded again
//! (TLS inside TLS) hands its own I/O over, boxed.

use std::io;
use std::task::{Context, Poll};

use super::read::ReadOutcome;
use super::{Driver, Stage};
use crate::drive::Drive;
use crate::inbox::Registered;
use crate::stream::handle::{Core, UPGRADING};
use crate::stream::state::{Phase, StreamState};
use crate::stream::stream_io::StreamIo;
use crate::tls::io::TlsIo;
use crate::tls::layer::{BoxIo, Rewind};
use crate::tls::start::{Side, Upgrade};

/// The I/O of every connection upgraded with `start_tls`.
type UpgradedIo = TlsIo<Rewind<BoxIo>>;

/// A copy of an error for a second recipient (`io::Error` is not `Clone`).
fn copy_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

impl<IO, P: Drive> Driver<IO, P> {
    /// The `StartTls` command: wait for the plaintext queue to drain (see
    /// [`poll_handover`](Self::poll_handover)). Refused on a transport that
    /// is closing.
    pub(super) fn begin_upgrade(&mut self, upgrade: Box<Upgrade>) {
        if self.core.sm.phase() != Phase::Open || self.upgrade.is_some() {
            self.shared().clear(UPGRADING);
            let _ = upgrade.reply.send(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "start_tls() on a transport that is closing",
            )));
            return;
        }
        self.upgrade = Some(upgrade);
    }

    /// Give up an upgrade that can no longer happen (the connection is
    /// closing or lost): the caller gets an error and the commands that
    /// waited for it are applied here.
    fn cancel_upgrade(&mut self) {
        if let Some(upgrade) = self.upgrade.take() {
            self.shared().clear(UPGRADING);
            let _ = upgrade.reply.send(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the transport closed before the TLS upgrade",
            )));
            self.core.commands.extend(upgrade.held);
            self.apply_scratch();
        }
    }

    /// The new task's handshake is done.
    pub(super) fn upgraded(&mut self) {
        self.stage = Stage::Running;
        self.shared().clear(UPGRADING);
        if let Some(reply) = self.started.take() {
            let _ = reply.send(Ok(()));
        }
    }

    /// The new task's handshake failed: the caller gets the error, and the
    /// protocol (which had `connection_made`) gets `connection_lost` with it.
    pub(super) fn upgrade_failed(&mut self, err: io::Error) {
        self.stage = Stage::Running;
        self.shared().clear(UPGRADING);
        if let Some(reply) = self.started.take() {
            let _ = reply.send(Err(copy_error(&err)));
        }
        self.fatal(err);
    }
}

impl<IO, P: Drive> Driver<IO, P>
where
    IO: StreamIo,
{
    /// Once the plaintext queue is out, hand the connection over to a TLS
    /// task. `Some(Ready)`: handed over, this task is done; `Some(Pending)`:
    /// the queue is still draining; `None`: the upgrade was cancelled, go
    /// on as before.
    #[cold]
    pub(super) fn poll_handover(&mut self, cx: &mut Context<'_>) -> Option<Poll<()>> {
        if self.core.sm.phase() != Phase::Open {
            self.cancel_upgrade();
            return None;
        }
        if self.has_output() {
            let blocked = self.flush(cx);
            if self.core.sm.phase() != Phase::Open {
                self.cancel_upgrade();
                return None;
            }
            if blocked || self.has_output() {
                return Some(Poll::Pending);
            }
        }
        let upgrade = self.upgrade.take()?;
        let Some(io) = self.io.take() else {
            self.upgrade = Some(upgrade);
            self.cancel_upgrade();
            return None;
        };
        // Bytes read after the call and not delivered: the peer's first
        // handshake bytes. A read into a buffered protocol's own buffer is
        // the protocol's: delivered here.
        let Upgrade {
            side,
            received,
            reply,
            held,
        } = *upgrade;
        let mut prefix = received;
        match self.stash.take().map(|b| *b) {
            Some(ReadOutcome::Data(data)) if prefix.is_empty() => prefix = data,
            Some(ReadOutcome::Data(data)) => {
                let mut both = bytes::BytesMut::from(&prefix[..]);
                both.extend_from_slice(&data);
                prefix = both.freeze();
            }
            Some(filled @ ReadOutcome::Filled(_)) => self.deliver(filled),
            // An end of file or an error: the handshake meets it again.
            _ => {}
        }
        let inner = Rewind::new(prefix, BoxIo::new(io));
        let tls_io: UpgradedIo = match &side {
            Side::Client(tls, name) => TlsIo::client(inner, tls, name.clone()),
            Side::Server(tls) => TlsIo::server(inner, tls),
        };
        let mut core = std::mem::replace(
            &mut self.core,
            Core {
                sm: StreamState::default(),
                commands: Vec::new(),
            },
        );
        core.sm.make_graceful();
        core.commands = held;
        // The TLS task holds the protocol boxed (see `crate::drive`).
        let protocol = self.protocol.take();
        self.handle
            .shared
            .can_write_eof
            .store(false, std::sync::atomic::Ordering::Release);
        // Boxed, as every stream task (see `prepare_stream`).
        let next = Box::pin(Driver {
            io: Some(tls_io),
            handle: self.handle.clone(),
            core,
            protocol,
            read_wake: None,
            stage: Stage::Upgrading,
            inbox_waker: Registered::default(),
            started: Some(reply),
            stash: None,
            on_finish: self.on_finish.take(),
            upgrade: None,
            sendfile: None,
            timed: self.timed,
        });
        // This task ends here without a callback; the new one owns it all.
        self.stage = Stage::Finished;
        tokio::spawn(next);
        Some(Poll::Ready(()))
    }
}
