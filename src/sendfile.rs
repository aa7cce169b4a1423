//! [`sendfile`]: asyncio's `loop.sendfile(transport, file, offset, count,
//! fallback=True)`, a file sent over a stream transport.
//!
//! This module owns the function and the protocol it puts in the
//! transport's place while it sends ([`Fallback`], asyncio's
//! `_SendfileFallbackProtocol`). What it does is CPython's fallback
//! (`BaseEventLoop._sendfile_fallback`), which CPython also uses for every
//! TLS transport:
//!
//! 1. reading is paused, and the protocol is swapped for [`Fallback`]
//!    (one [`Command::Swap`], on the connection's task): the protocol hears
//!    no `pause_writing`/`resume_writing` caused by the file's bytes, and
//!    anything else (`connection_lost`, data if someone resumes reading)
//!    is passed on to it;
//! 2. the file is read in blocks (on tokio's blocking pool, as CPython's
//!    `run_in_executor`), each block is written and
//!    [`drain`](Transport::drain) is awaited before the next one;
//! 3. the original protocol is put back (with the `resume_writing` or
//!    `pause_writing` it missed, if the flow state changed meanwhile),
//!    reading resumes if it was on, and the file's position is set after
//!    the last byte sent. Step 3 also runs when the future is dropped
//!    half-way (a guard's `Drop`).
//!
//! The kernel's `sendfile(2)` (CPython's native path for plain sockets) is
//! not used: see docs/asyncio-parity.md.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;

use crate::Transport;
use crate::protocol::{AnyProtocol, BaseProtocol, Protocol};
use crate::stream::handle::{Command, FlowOwed};

/// Bytes read from the file, written and drained at a time (CPython's
/// fallback uses 16 KiB; a larger block means fewer trips to the blocking
/// pool, and the watermarks still bound what is buffered).
const BLOCK: usize = 64 * 1024;

/// Send `count` bytes of `file` (to its end if `None`) from `offset` over
/// `transport`, and return how many were sent: asyncio's
/// `loop.sendfile(transport, file, offset, count, fallback=fallback)`.
///
/// The bytes go out in order after everything written before the call.
/// While it runs, reading is paused (resumed at the end if it was on) and
/// the protocol hears no `pause_writing`/`resume_writing` caused by the
/// file's bytes; if the flow state it last heard changed meanwhile, it gets
/// the callback it missed at the end. Its other callbacks still reach it
/// (`connection_lost` if the connection ends). Writes made by others while
/// it runs go out between its blocks (as in asyncio's fallback).
///
/// `file` is any open file descriptor: read with `pread` at `offset +`
/// what was sent, so its position does not matter; at the end (also after
/// an error) the position is set just after the last byte sent, as
/// asyncio does. A descriptor that cannot seek (a pipe) is read from where
/// it is, with `offset` 0.
///
/// Errors (asyncio's messages):
/// * the transport is closing: `NotConnected`, "Transport is closing";
/// * a pipe transport: `Unsupported`, "sendfile is not supported for
///   transport";
/// * `count` is `Some(0)`: `InvalidInput`;
/// * `fallback` is false: `Unsupported` (the kernel's `sendfile(2)` is not
///   used yet, so every transport needs the fallback);
/// * the connection closes or is lost half-way: `BrokenPipe` ("Connection
///   closed by peer"), or the error `drain()` reports; the file's position
///   is then just after the bytes handed to the transport (as asyncio's);
/// * another `sendfile` on the same transport is in progress: `Other`,
///   "sendfile is already in progress".
///
/// Reading from `file` runs on tokio's blocking pool
/// ([`spawn_blocking`](tokio::task::spawn_blocking)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use std::io::{Seek, Write};
/// use tokio::io::AsyncReadExt;
///
/// let mut file = tempfile_with(b"0123456789")?;
/// let (a, mut peer) = tokio::io::duplex(1024);
/// let t = tokio_transports::connect_io(|| (), a).await?;
/// t.write("header:")?;
/// let sent = tokio_transports::sendfile(&t, &file, 2, Some(5), true).await?;
/// assert_eq!(sent, 5);
/// assert_eq!(file.stream_position()?, 7);
/// t.close();
/// let mut got = String::new();
/// peer.read_to_string(&mut got).await?;
/// assert_eq!(got, "header:23456");
/// # fn tempfile_with(bytes: &[u8]) -> std::io::Result<std::fs::File> {
/// #     let path = std::env::temp_dir().join(format!("sendfile-doc-{}", std::process::id()));
/// #     let mut f = std::fs::File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
/// #     std::fs::remove_file(&path)?;
/// #     f.write_all(bytes)?;
/// #     Ok(f)
/// # }
/// # Ok(()) }
/// ```
pub async fn sendfile<F: AsFd + ?Sized>(
    transport: &Transport,
    file: &F,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> io::Result<u64> {
    if transport.is_closing() {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "Transport is closing",
        ));
    }
    if transport.shared.mode.is_pipe() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "sendfile is not supported for transport (a pipe transport)",
        ));
    }
    if count == Some(0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "count must be a positive integer (got 0)",
        ));
    }
    if !fallback {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "fallback is disabled and native sendfile is not supported for transport",
        ));
    }
    // A duplicate shares the file's position: setting it at the end moves
    // the caller's.
    let file = Arc::new(File::from(file.as_fd().try_clone_to_owned()?));
    let seekable = (&*file).stream_position().is_ok();
    if !seekable && offset != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "offset must be 0 for a file that cannot seek",
        ));
    }
    let mut swapped = Swapped::begin(transport).await?;
    let result = send_blocks(transport, &file, seekable, offset, count, &mut swapped.sent).await;
    swapped.end();
    // After an error too: the position tells how much was sent.
    if seekable && swapped.sent > 0 {
        (&*file).seek(SeekFrom::Start(offset + swapped.sent))?;
    }
    result.map(|()| swapped.sent)
}

/// The fallback's loop: read a block, write it, drain. `sent` counts the
/// bytes handed to the transport (as asyncio's count, they may not all
/// have reached the peer when the connection fails).
async fn send_blocks(
    transport: &Transport,
    file: &Arc<File>,
    seekable: bool,
    offset: u64,
    count: Option<u64>,
    sent: &mut u64,
) -> io::Result<()> {
    loop {
        let want = match count {
            Some(count) if count <= *sent => return Ok(()),
            Some(count) => (count - *sent).min(BLOCK as u64) as usize,
            None => BLOCK,
        };
        let block = read_block(file, seekable, offset + *sent, want).await?;
        if block.is_empty() {
            return Ok(()); // end of file
        }
        if transport.is_closing() {
            return Err(closed_by_peer());
        }
        let n = block.len() as u64;
        transport.write(block).map_err(io::Error::from)?;
        *sent += n;
        transport.drain().await?;
    }
}

/// The error for a connection that closed while the file was being sent.
fn closed_by_peer() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "Connection closed by peer")
}

/// Read up to `want` bytes at `at` (or, if the file cannot seek, from
/// where it is) on the blocking pool.
async fn read_block(file: &Arc<File>, seekable: bool, at: u64, want: usize) -> io::Result<Bytes> {
    let file = file.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; want];
        loop {
            let r = if seekable {
                file.read_at(&mut buf, at)
            } else {
                (&*file).read(&mut buf)
            };
            match r {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Bytes::from(buf));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    });
    read.await.map_err(io::Error::other)?
}

/// The protocol in place while the file is sent (asyncio's
/// `_SendfileFallbackProtocol`): it keeps the original and passes on
/// everything but the flow-control callbacks.
struct Fallback {
    original: Option<AnyProtocol>,
    /// Whether the original was last told to pause writing.
    original_paused: bool,
}

impl BaseProtocol for Fallback {
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(p) = &mut self.original {
            p.base_mut().connection_lost(exc);
        }
    }
    // `pause_writing`/`resume_writing`: the default no-ops; the sending
    // loop waits with `drain()`.
}

impl Protocol for Fallback {
    fn data_received(&mut self, data: Bytes) {
        // Only if someone resumed reading meanwhile: the original gets it.
        match &mut self.original {
            Some(AnyProtocol::Stream(p)) => p.data_received(data),
            Some(AnyProtocol::Buffered(p)) => {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let buf = p.get_buffer(rest.len());
                    let n = (buf.capacity() - buf.len()).min(rest.len());
                    // The transport's own rule for a full buffer (a panic
                    // in a callback is fatal to the connection).
                    assert!(n > 0, "get_buffer() returned an empty buffer");
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    p.buffer_updated(n);
                }
            }
            None => {}
        }
    }

    fn eof_received(&mut self) -> bool {
        match &mut self.original {
            Some(AnyProtocol::Stream(p)) => p.eof_received(),
            Some(AnyProtocol::Buffered(p)) => p.eof_received(),
            None => false,
        }
    }
}

/// The fallback's hold on the transport: made by [`begin`](Self::begin),
/// undone by [`end`](Self::end) or, if the sending future is dropped, by
/// `Drop`.
struct Swapped {
    transport: Transport,
    resume_reading: bool,
    done: bool,
    /// Bytes of the file sent so far.
    sent: u64,
}

impl Swapped {
    /// Pause reading and put a [`Fallback`] in the protocol's place.
    async fn begin(transport: &Transport) -> io::Result<Swapped> {
        let resume_reading = transport.is_reading();
        transport.pause_reading();
        let (tx, rx) = oneshot::channel::<io::Result<()>>();
        transport.send_command(Command::Swap(Box::new(move |p, told_paused| {
            if p.downcast_mut::<Fallback>().is_some() {
                let _ = tx.send(Err(io::Error::other("sendfile is already in progress")));
                return None;
            }
            let original = std::mem::replace(p, AnyProtocol::stream(()));
            *p = AnyProtocol::stream(Fallback {
                original: Some(original),
                original_paused: told_paused,
            });
            let _ = tx.send(Ok(()));
            None
        })));
        let outcome = match rx.await {
            Ok(outcome) => outcome,
            // The connection finished before the swap.
            Err(_) => Err(closed_by_peer()),
        };
        if let Err(e) = outcome {
            if resume_reading {
                transport.resume_reading();
            }
            return Err(e);
        }
        Ok(Swapped {
            transport: transport.clone(),
            resume_reading,
            done: false,
            sent: 0,
        })
    }

    /// Put the original protocol back (with the flow-control callback it
    /// missed, if any) and resume reading if it was on.
    fn end(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.transport
            .send_command(Command::Swap(Box::new(|p, told_paused| {
                let fallback = p.downcast_mut::<Fallback>()?;
                let original_paused = fallback.original_paused;
                let original = fallback.original.take()?;
                *p = original;
                match (original_paused, told_paused) {
                    (true, false) => Some(FlowOwed::Resume),
                    (false, true) => Some(FlowOwed::Pause),
                    _ => None,
                }
            })));
        if self.resume_reading {
            self.transport.resume_reading();
        }
    }
}

impl Drop for Swapped {
    fn drop(&mut self) {
        self.end();
    }
}
