//! Subprocess: the asyncio documentation's "loop.subprocess_exec() and
//! SubprocessProtocol" example: a Python child prints the date, a
//! `SubprocessProtocol` collects its output, and the parent prints it.
//!
//! ```text
//! cargo run --example subprocess_date
//! Current date: 2026-12-02 08:03:12.123456
//! ```
//!
//! The Python original:
//!
//! ```python
//! class DateProtocol(asyncio.SubprocessProtocol):
//!     def __init__(self, exit_future):
//!         self.exit_future = exit_future
//!         self.output = bytearray()
//!
//!     def pipe_data_received(self, fd, data):
//!         self.output.extend(data)
//!
//!     def process_exited(self):
//!         self.exit_future.set_result(True)
//!
//! async def get_date():
//!     loop = asyncio.get_running_loop()
//!     code = 'import datetime; print(datetime.datetime.now())'
//!     exit_future = asyncio.Future(loop=loop)
//!     transport, protocol = await loop.subprocess_exec(
//!         lambda: DateProtocol(exit_future),
//!         sys.executable, '-c', code,
//!         stdin=None, stderr=None)
//!     await exit_future
//!     transport.close()
//!     data = bytes(protocol.output)
//!     return data.decode('ascii').rstrip()
//!
//! date = asyncio.run(get_date())
//! print(f"Current date: {date}")
//! ```
//!
//! One difference, on purpose: `process_exited` is not ordered against the
//! pipes' events (CPython gh-108973), so the output may still be arriving
//! when it runs. This port waits for `closed()` (after `connection_lost`,
//! which comes after every pipe closed) before it reads the output.

use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_transports::{Bytes, Stdio, SubprocessOptions, SubprocessProtocol, subprocess_exec};

struct DateProtocol {
    exit_future: Option<oneshot::Sender<()>>,
    /// Shared with `main`: the protocol itself lives in the transport.
    output: Arc<Mutex<Vec<u8>>>,
}

impl SubprocessProtocol for DateProtocol {
    fn pipe_data_received(&mut self, _fd: i32, data: Bytes) {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&data);
    }

    fn process_exited(&mut self) {
        if let Some(exit) = self.exit_future.take() {
            let _ = exit.send(());
        }
    }
}

async fn get_date() -> io::Result<String> {
    let code = "import datetime; print(datetime.datetime.now())";
    let (exit_tx, exit_future) = oneshot::channel();
    let output = Arc::new(Mutex::new(Vec::new()));
    let out = output.clone();

    // Create the subprocess controlled by DateProtocol; redirect the
    // standard output into a pipe (stdin and stderr: the parent's own).
    let transport = subprocess_exec(
        move || DateProtocol {
            exit_future: Some(exit_tx),
            output: out,
        },
        "python3",
        ["-c", code],
        SubprocessOptions::default()
            .stdin(Stdio::Inherit)
            .stderr(Stdio::Inherit),
    )
    .await?;

    // Wait for the subprocess exit using the process_exited() method of
    // the protocol.
    let _ = exit_future.await;

    // The process has exited, but stdout may still hold the last bytes:
    // wait until every pipe has delivered and closed (`connection_lost`),
    // then close the transport as the original does (a no-op by now: the
    // child is reaped and its pipes are closed).
    transport.closed().await;
    transport.close();

    // Read the output which was collected by the pipe_data_received()
    // method of the protocol.
    let data = output.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(String::from_utf8_lossy(&data).trim_end().to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let date = get_date().await?;
    println!("Current date: {date}");
    Ok(())
}
