//! `cat` through pipe transports: standard input is read through
//! `connect_read_pipe`, standard output written through `connect_write_pipe`,
//! with flow control: when the output pipe's buffer goes over its high
//! watermark (`pause_writing`), reading stops (`pause_reading`) until it
//! drains (`resume_writing` → `resume_reading`). So the process never holds
//! more than about the high watermark plus one read, whatever the sizes.
//!
//! ```sh
//! cat bigfile | cargo run --example pipe_cat > copy    # copy == bigfile
//! ```
//!
//! Standard input and output must be pipes, FIFOs, sockets or terminals
//! (`pipe_cat < file` is refused: "Pipe transport is for pipes/sockets
//! only.", asyncio's error). As in asyncio, both are made non-blocking,
//! which other processes sharing them (a terminal) see too.
//!
//! The same in Python:
//!
//! ```python
//! class Out(asyncio.Protocol):
//!     def __init__(self): self.reader = None; self.done = loop.create_future()
//!     def pause_writing(self): self.reader.pause_reading()
//!     def resume_writing(self): self.reader.resume_reading()
//!     def connection_lost(self, exc): self.done.set_result(exc)
//!
//! class In(asyncio.Protocol):
//!     def __init__(self, out): self.out = out
//!     def data_received(self, data): self.out.write(data)
//!     def eof_received(self): self.out.close()   # flushes, then connection_lost
//!
//! out_t, out_p = await loop.connect_write_pipe(Out, sys.stdout)
//! in_t, _ = await loop.connect_read_pipe(lambda: In(out_t), sys.stdin)
//! out_p.reader = in_t
//! await out_p.done
//! ```

use std::os::fd::AsFd;
use std::sync::{Arc, OnceLock};

use tokio_transports::{BaseProtocol, Bytes, Protocol, Transport};

/// The output side: pauses and resumes the input with the output's flow
/// control.
struct Out {
    reader: Arc<OnceLock<Transport>>,
}

impl BaseProtocol for Out {
    fn pause_writing(&mut self) {
        if let Some(r) = self.reader.get() {
            r.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(r) = self.reader.get() {
            r.resume_reading();
        }
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        if let Some(e) = exc {
            eprintln!("pipe_cat: output: {e}");
            // Nobody reads what we would copy: stop reading too.
            if let Some(r) = self.reader.get() {
                r.close();
            }
        }
    }
}

/// Never called on a write pipe, but every protocol is a `Protocol`.
impl Protocol for Out {}

/// The input side: every chunk goes to the output (zero-copy), end of file
/// closes the output once it is flushed.
struct In {
    out: Transport,
}

impl BaseProtocol for In {
    fn connection_made(&mut self, transport: &Transport) {
        // Nothing is read until `main` has told `Out` about this transport
        // (so that `Out` can pause it).
        transport.pause_reading();
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        if let Some(e) = exc {
            eprintln!("pipe_cat: input: {e}");
            self.out.close();
        }
    }
}

impl Protocol for In {
    fn data_received(&mut self, data: Bytes) {
        // Dropped (and counted) if the output is already gone.
        let _ = self.out.write(data);
    }

    fn eof_received(&mut self) -> bool {
        self.out.close(); // flush, then connection_lost(None)
        false
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    // Our own descriptors for fds 0 and 1 (the transports close what they own).
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;

    let reader = Arc::new(OnceLock::new());
    let r = reader.clone();
    let out = tokio_transports::connect_write_pipe(move || Out { reader: r }, stdout).await?;
    let o = out.clone();
    let input = tokio_transports::connect_read_pipe(move || In { out: o }, stdin).await?;
    let _ = reader.set(input.clone());
    input.resume_reading();

    out.closed().await;
    input.close();
    input.closed().await;
    if out.dropped_writes() > 0 {
        std::process::exit(1);
    }
    Ok(())
}
