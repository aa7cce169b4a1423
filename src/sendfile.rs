//! [`sendfile`]: asyncio's `loop.sendfile(transport, file, offset, count,
//! fallback=True)`, a file sent over a stream transport.
//!
//! This module owns the function and the protocol it puts in the
//! transport's place while it sends ([`Fallback`], or [`FallbackBuffered`]
//! for a buffered protocol: asyncio's `_SendfileFallbackProtocol`). As in
//! CPython:
//!
//! 1. reading is paused, and the protocol is swapped for [`Fallback`]
//!    (one [`Command::Swap`], on the connection's task): the protocol hears
//!    no `pause_writing`/`resume_writing` caused by the file's bytes, and
//!    anything else (`connection_lost`, data if someone resumes reading)
//!    is passed on to it;
//! 2. the native send: on a plain TCP or Unix socket on Linux, the
//!    connection's task sends what was written before, then the file with
//!    the kernel's `sendfile(2)`, no copy through user space; commands
//!    that arrive meanwhile wait for it (`stream/driver/sendfile.rs`,
//!    CPython's `_sendfile_native`);
//! 3. or, where that is not available (TLS, `connect_io`, a file the
//!    kernel cannot send from, such as a pipe), the fallback: the file is
//!    read in blocks (on tokio's blocking pool, as CPython's
//!    `run_in_executor`), each block is written and
//!    [`drain`](Transport::drain) is awaited before the next one
//!    (CPython's `_sendfile_fallback`);
//! 4. the original protocol is put back (with the `resume_writing` or
//!    `pause_writing` it missed, if the flow state changed meanwhile),
//!    reading resumes if it was on, and the file's position is set after
//!    the last byte sent. The swap back also runs when the future is
//!    dropped half-way (a guard's `Drop`); a native send then stops too.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;

use crate::Transport;
use crate::error::current_runtime;
use crate::protocol::{AnyProtocol, BaseProtocol, BufferedProtocol, Protocol};
use crate::stream::driver::sendfile::{Job, Outcome};
use crate::stream::handle::{Command, EOF_WRITTEN, FlowOwed, SwapFn};

/// Bytes read from the file, written and drained at a time (CPython's
/// fallback uses 16 KiB; a larger block means fewer trips to the blocking
/// pool, and the watermarks still bound what is buffered).
const BLOCK: usize = 64 * 1024;

/// Send `count` bytes of `file` (to its end if `None`) from `offset` over
/// `transport`, and return how many were sent: asyncio's
/// `loop.sendfile(transport, file, offset, count, fallback=fallback)`.
///
/// The bytes go out in order after everything written before the call. On
/// a plain TCP or Unix socket (Linux) the kernel sends them from the file
/// (`sendfile(2)`, no copy through user space); writes, `close()`,
/// `with_protocol`, `pause_reading` and every other command from other
/// tasks wait until it is done and then run in order (CPython's native
/// send refuses a `write()` meanwhile); `abort()` ends it at once, with an
/// error. The calls run on the connection's worker thread, as CPython's
/// on its loop: a file that is slow to read holds that thread. Elsewhere
/// (TLS, `connect_io`, a file the kernel cannot send from) the file is read
/// and written in blocks if `fallback` is true, and writes by others then
/// go out between blocks, as in asyncio's fallback.
///
/// While it runs, reading is paused (resumed at the end if it was on) and
/// the protocol hears no `pause_writing`/`resume_writing` caused by the
/// file's bytes; if the flow state it last heard changed meanwhile, it gets
/// the callback it missed at the end. Its `connection_lost` still reaches
/// it if the connection ends.
///
/// `file` is any open file descriptor, read at `offset +` what was sent
/// (`sendfile(2)` and `pread` leave its position alone); at the end (also
/// after an error) the position is set just after the last byte sent, as
/// asyncio does. A descriptor that cannot seek (a pipe) is read from where
/// it is, with `offset` 0.
///
/// Errors (asyncio's messages):
/// * the transport is closing: `NotConnected`, "Transport is closing";
/// * after `write_eof()`: `BrokenPipe`, "Cannot call sendfile() after
///   write_eof()" (asyncio's fallback fails on its first `write()` with
///   the same words);
/// * a pipe transport: `Unsupported`, "sendfile is not supported for
///   transport";
/// * `count` is `Some(0)`: `InvalidInput`;
/// * no native send and `fallback` is false: `Unsupported`, "fallback is
///   disabled ...";
/// * the connection closes or is lost half-way: `BrokenPipe` ("Connection
///   closed by peer", asyncio's words, also for a local `close()` during
///   the fallback), the socket's error, or the error `drain()` reports;
///   the file's position is then just after the bytes handed to the
///   transport (or the kernel);
/// * another `sendfile` on the same transport is sending block by block:
///   `Other`, "sendfile is already in progress" (one made during a native
///   send waits behind it like any command, then runs).
///
/// Dropping the future stops the send (the blocks already handed over
/// still go out), puts the protocol back and resumes reading; the
/// fallback then sets the file's position after the blocks it handed over
/// (as asyncio does when cancelled), a native send leaves it alone (its
/// count stays on the connection's task). A `set_protocol` made while the file is
/// sent replaces the stand-in: the new protocol stays and the one
/// `sendfile` held is dropped, and reading still resumes.
///
/// The fallback reads `file` on tokio's blocking pool
/// ([`spawn_blocking`](tokio::task::spawn_blocking)), so it needs a tokio
/// runtime (outside one it is an error); a read under way when the future
/// is dropped runs to its end there (for a pipe as the file, until the
/// pipe gives data or closes, and those bytes are consumed). While it runs,
/// [`with_protocol`](Transport::with_protocol) sees `sendfile`'s stand-in
/// protocol, as asyncio's `get_protocol()` does during its fallback;
/// during a native send a `with_protocol` waits like any command and sees
/// your protocol.
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
    if transport.shared.has(EOF_WRITTEN) && !transport.shared.mode.is_pipe() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "Cannot call sendfile() after write_eof()",
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
    // If the future is dropped half-way, the guard sets the position.
    swapped.file_at = seekable.then(|| (file.clone(), offset));
    let result = match send_native(transport, &swapped, &file, offset, count).await? {
        Outcome::Sent(n) => {
            swapped.sent = n;
            Ok(())
        }
        Outcome::Failed { sent, error } => {
            swapped.sent = sent;
            Err(error)
        }
        Outcome::NotAvailable if fallback => match current_runtime() {
            // The fallback reads on tokio's blocking pool.
            Ok(_) => {
                send_blocks(transport, &file, seekable, offset, count, &mut swapped.sent).await
            }
            Err(e) => Err(e),
        },
        Outcome::NotAvailable => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "fallback is disabled and native sendfile is not available for this transport or file",
        )),
    };
    swapped.end_and_wait().await;
    // After an error too: the position tells how much was sent.
    if swapped.file_at.take().is_some() && swapped.sent > 0 {
        (&*file).seek(SeekFrom::Start(offset + swapped.sent))?;
    }
    result.map(|()| swapped.sent)
}

/// The native half: the connection's task sends the file with
/// `sendfile(2)` (see `stream/driver/sendfile.rs`), or answers that it
/// cannot.
async fn send_native(
    transport: &Transport,
    swapped: &Swapped,
    file: &File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<Outcome> {
    let fd = file.as_fd().try_clone_to_owned()?;
    let (tx, rx) = oneshot::channel();
    let restore = swapped.restore_fn(None);
    transport.send_command(Command::Sendfile(Box::new(Job::new(
        fd, offset, count, restore, tx,
    ))));
    Ok(rx.await.unwrap_or_else(|_| Outcome::Failed {
        sent: 0,
        error: closed_by_peer(),
    }))
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

/// Tells one `sendfile` call's protocols apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the protocol in place while a file is sent keeps (asyncio's
/// `_SendfileFallbackProtocol`): the original protocol, and what to do
/// when it is put back.
struct Held {
    /// The `sendfile` call that put it in place.
    id: u64,
    original: Option<AnyProtocol>,
    /// Whether the original was last told to pause writing.
    original_paused: bool,
}

/// The protocol in place of a plain [`Protocol`] while a file is sent: it
/// passes on everything but the flow-control callbacks (the sending waits
/// with `drain()`, or sends nothing through the queue).
struct Fallback(Held);

/// The same in place of a [`BufferedProtocol`]: a buffered protocol itself,
/// so reads (and a read kept back when reading was paused from another
/// thread) keep going into the original's buffers.
struct FallbackBuffered {
    held: Held,
    /// Only if the original is gone (never while it is in place).
    spare: BytesMut,
}

impl BaseProtocol for Fallback {
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(p) = &mut self.0.original {
            p.base_mut().connection_lost(exc);
        }
    }
    // `pause_writing`/`resume_writing`: the default no-ops.
}

impl Protocol for Fallback {
    fn data_received(&mut self, data: Bytes) {
        // Only if someone resumed reading meanwhile: the original gets it.
        if let Some(AnyProtocol::Stream(p)) = &mut self.0.original {
            p.data_received(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        match &mut self.0.original {
            Some(AnyProtocol::Stream(p)) => p.eof_received(),
            _ => false,
        }
    }
}

impl BaseProtocol for FallbackBuffered {
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(p) = &mut self.held.original {
            p.base_mut().connection_lost(exc);
        }
    }
}

impl BufferedProtocol for FallbackBuffered {
    fn get_buffer(&mut self, sizehint: usize) -> &mut BytesMut {
        match &mut self.held.original {
            Some(AnyProtocol::Buffered(p)) => p.get_buffer(sizehint),
            _ => {
                self.spare.clear();
                self.spare.reserve(sizehint.max(1));
                &mut self.spare
            }
        }
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        if let Some(AnyProtocol::Buffered(p)) = &mut self.held.original {
            p.buffer_updated(nbytes);
        }
    }

    fn eof_received(&mut self) -> bool {
        match &mut self.held.original {
            Some(AnyProtocol::Buffered(p)) => p.eof_received(),
            _ => false,
        }
    }
}

/// The [`Held`] of the protocol in place, if it is one of ours.
fn held_mut(p: &mut AnyProtocol) -> Option<&mut Held> {
    if p.downcast_ref::<Fallback>().is_some() {
        return p.downcast_mut::<Fallback>().map(|f| &mut f.0);
    }
    p.downcast_mut::<FallbackBuffered>().map(|f| &mut f.held)
}

/// One `sendfile` call's hold on the transport: made by
/// [`begin`](Self::begin), undone by [`end`](Self::end) or, if the sending
/// future is dropped, by `Drop` (from the moment the swap is asked for, so
/// a future dropped before the task made it still puts everything back).
struct Swapped {
    transport: Transport,
    id: u64,
    /// Set on the task when the swap paused reading.
    resume_reading: Arc<AtomicBool>,
    done: bool,
    /// Bytes of the file sent so far.
    sent: u64,
    /// The file (if it can seek) and the offset the call started at: a
    /// dropped call sets the file's position after what it handed over, as
    /// asyncio's does when cancelled.
    file_at: Option<(Arc<File>, u64)>,
}

impl Swapped {
    /// Put a [`Fallback`] (or [`FallbackBuffered`]) in the protocol's place
    /// and pause reading. Both happen on the connection's task, in order
    /// with every other command (a call right after another one sees the
    /// reading state the first one left).
    async fn begin(transport: &Transport) -> io::Result<Swapped> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let resume_reading = Arc::new(AtomicBool::new(false));
        // From here on, dropping the guard puts things back.
        let mut guard = Swapped {
            transport: transport.clone(),
            id,
            resume_reading: resume_reading.clone(),
            done: false,
            sent: 0,
            file_at: None,
        };
        let (tx, rx) = oneshot::channel::<io::Result<()>>();
        let t = transport.clone();
        transport.send_command(Command::Swap(Box::new(move |p, told_paused| {
            if held_mut(p).is_some() {
                let _ = tx.send(Err(io::Error::other("sendfile is already in progress")));
                return None;
            }
            if t.is_reading() {
                // Inside the task's callback: applied right after it.
                t.pause_reading();
                resume_reading.store(true, Ordering::Relaxed);
            }
            let original = std::mem::replace(p, AnyProtocol::stream(()));
            let buffered = original.is_buffered();
            let held = Held {
                id,
                original: Some(original),
                original_paused: told_paused,
            };
            *p = if buffered {
                AnyProtocol::buffered(FallbackBuffered {
                    held,
                    spare: BytesMut::new(),
                })
            } else {
                AnyProtocol::stream(Fallback(held))
            };
            let _ = tx.send(Ok(()));
            None
        })));
        match rx.await {
            Ok(Ok(())) => Ok(guard),
            Ok(Err(e)) => {
                // Nothing of ours is in place: nothing to put back.
                guard.done = true;
                Err(e)
            }
            // The connection finished before the swap.
            Err(_) => {
                guard.done = true;
                Err(closed_by_peer())
            }
        }
    }

    /// Put the original protocol back (with the flow-control callback it
    /// missed, if any) and resume reading if it was on. Only this call's
    /// own protocol is replaced; if `set_protocol` replaced it meanwhile,
    /// the new protocol stays, and reading still resumes. A native send
    /// runs the same swap back on the task as it ends (see
    /// [`restore_fn`](Self::restore_fn)); this one then finds nothing left
    /// to do.
    fn end(&mut self) -> Option<oneshot::Receiver<()>> {
        if std::mem::replace(&mut self.done, true) {
            return None;
        }
        let (done_tx, done_rx) = oneshot::channel();
        self.transport
            .send_command(Command::Swap(self.restore_fn(Some(done_tx))));
        Some(done_rx)
    }

    /// The swap back, as a closure run on the task; `done` is told once it
    /// ran. Reading resumes once, whichever of the two swaps back runs
    /// first.
    fn restore_fn(&self, done: Option<oneshot::Sender<()>>) -> SwapFn {
        let id = self.id;
        let transport = self.transport.clone();
        let resume_reading = self.resume_reading.clone();
        Box::new(move |p, told_paused| {
            let mut owed = None;
            let ours = held_mut(p).filter(|h| h.id == id).and_then(|held| {
                let original = held.original.take()?;
                Some((original, held.original_paused))
            });
            if let Some((original, original_paused)) = ours {
                *p = original;
                owed = match (original_paused, told_paused) {
                    (true, false) => Some(FlowOwed::Resume),
                    (false, true) => Some(FlowOwed::Pause),
                    _ => None,
                };
            }
            if resume_reading.swap(false, Ordering::Relaxed) {
                // Inside the task's callback: applied right after it
                // (`is_reading()` is true from here on).
                transport.resume_reading();
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
            owed
        })
    }

    /// [`end`](Self::end), and wait until the task has done it: when
    /// `sendfile` returns, the protocol is back and `is_reading()` tells
    /// the truth.
    async fn end_and_wait(&mut self) {
        if let Some(done) = self.end() {
            let _ = done.await;
        }
    }
}

impl Drop for Swapped {
    fn drop(&mut self) {
        let _ = self.end();
        if let Some((file, offset)) = self.file_at.take()
            && self.sent > 0
        {
            // Nobody to tell if this fails: the position is a courtesy.
            let _ = (&*file).seek(SeekFrom::Start(offset + self.sent));
        }
    }
}
