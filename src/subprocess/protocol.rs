//! [`SubprocessProtocol`]: asyncio's `SubprocessProtocol`, the callbacks a
//! child process's transport makes.

use std::any::Any;
use std::io;

use bytes::Bytes;

use super::SubprocessTransport;

/// The callbacks of a child process (asyncio's `SubprocessProtocol`). Every
/// method has asyncio's default: do nothing.
///
/// # The order of the calls
///
/// * `connection_made` first, once; it has run when
///   [`subprocess_exec`](crate::subprocess_exec) returns. Events that
///   happened before it (a child that writes and exits at once) are kept
///   and delivered after it, in the order they happened.
/// * For each pipe (0: stdin, 1: stdout, 2: stderr): every
///   `pipe_data_received(fd, ..)` of that fd before its
///   `pipe_connection_lost(fd, ..)`, which comes once.
/// * `process_exited` once, when the child has exited (and is reaped). It is
///   not ordered against the pipes' events (CPython gh-108973): a child's
///   output can still be arriving after it exited.
/// * `connection_lost(None)` once and last: after `process_exited` and after
///   every pipe's `pipe_connection_lost`.
/// * `pause_writing` / `resume_writing`: the stdin pipe's flow control,
///   alternating, starting with a pause.
///
/// One callback runs at a time, whichever pipe or event it is for.
///
/// ```
/// use tokio_transports::{Bytes, SubprocessProtocol, SubprocessTransport};
///
/// #[derive(Default)]
/// struct Collect { output: Vec<u8> }
/// impl SubprocessProtocol for Collect {
///     fn pipe_data_received(&mut self, fd: i32, data: Bytes) {
///         if fd == 1 { self.output.extend_from_slice(&data); }
///     }
///     fn process_exited(&mut self) {
///         println!("{}", String::from_utf8_lossy(&self.output));
///     }
/// }
/// ```
pub trait SubprocessProtocol: Any + Send {
    /// The child is running and its pipes are connected.
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport;
    }

    /// Data the child wrote to its stdout (`fd` 1) or stderr (`fd` 2).
    fn pipe_data_received(&mut self, fd: i32, data: Bytes) {
        let _ = (fd, data);
    }

    /// The pipe `fd` closed: `None` at its end of file (or when it was
    /// closed here), the error otherwise.
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }

    /// The child exited; [`SubprocessTransport::get_returncode`] has its
    /// code.
    fn process_exited(&mut self) {}

    /// The stdin pipe's buffer went over its high watermark.
    fn pause_writing(&mut self) {}

    /// The stdin pipe's buffer drained to its low watermark.
    fn resume_writing(&mut self) {}

    /// The end: the child exited and every pipe closed. Once, last.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
}

/// The unit protocol ignores every event.
impl SubprocessProtocol for () {}
