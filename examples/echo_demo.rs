//! The tour: an echo server and a client in one process, every protocol
//! callback printed as it fires.
//!
//! ```text
//! cargo run --example echo_demo
//! ```
//!
//! 1. `create_server` on 127.0.0.1, port 0 (the kernel picks one), and
//!    `create_connection` to it: `connection_made` on both sides.
//! 2. A few messages echoed: `data_received` on both sides.
//! 3. Flow control: the server stops reading (`pause_reading`), the client
//!    writes 2 MiB, its write buffer goes over the high watermark and the
//!    client gets `pause_writing`; the server resumes reading, the buffer
//!    drains and the client gets `resume_writing`.
//! 4. Half-close: the client calls `write_eof`; the server gets
//!    `eof_received`, answers, and closes; the client gets the answer, then
//!    `eof_received`, and closes too: `connection_lost` on both sides.
//! 5. The server is closed and `wait_closed` returns; the program exits.
//!
//! The protocols report to `main` over channels (as asyncio code would
//! resolve futures), so `main` can wait for each step instead of sleeping.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_transports::{
    BaseProtocol, Bytes, ConnectOptions, ExceptionContext, Protocol, ServerOptions, Transport,
    WriteLimits, create_connection, create_server, set_exception_handler,
};

mod common;
use common::py_repr;

/// Size of the flow-control demo's write: far more than the (shrunk) socket
/// buffers hold while the server does not read.
const BULK: usize = 2 * 1024 * 1024;

/// While set, `data_received` counts bulk data instead of printing every chunk
/// (how the kernel splits 2 MiB into chunks varies from run to run).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Print `data` as Python's `repr()` of its text.
fn show(data: &[u8]) -> String {
    py_repr(&String::from_utf8_lossy(data))
}

// ---- the server's protocol: echo, and answer a half-close ---------------

struct ServerProtocol {
    transport: Option<Transport>,
    /// Tells `main` about the new connection (for the flow-control step).
    accepted: UnboundedSender<Transport>,
}

impl BaseProtocol for ServerProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let peer = transport.peer_address().map(ToString::to_string);
        println!(
            "[server] connection_made: from {}",
            peer.as_deref().unwrap_or("None")
        );
        self.transport = Some(transport.clone());
        let _ = self.accepted.send(transport.clone());
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        println!("[server] connection_lost: {}", describe_exc(&exc));
    }

    fn pause_writing(&mut self) {
        // Does not happen here (the server's high watermark is above BULK);
        // an echo server that could outpace its peer would `pause_reading()`
        // here and `resume_reading()` in `resume_writing`.
        println!("[server] pause_writing");
    }

    fn resume_writing(&mut self) {
        println!("[server] resume_writing");
    }
}

impl Protocol for ServerProtocol {
    fn data_received(&mut self, data: Bytes) {
        if !QUIET.load(Ordering::Relaxed) {
            println!("[server] data_received: {} -> echo it", show(&data));
        }
        if let Some(t) = &self.transport {
            // Echo without a copy: the received `Bytes` goes straight back out.
            // (`write` only fails after our own `write_eof`.)
            let _ = t.write(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        println!("[server] eof_received: the client is done sending; answer and close");
        if let Some(t) = &self.transport {
            let _ = t.write("Bye!");
            t.close();
        }
        // `true`: keep the transport open, we close it ourselves (the default
        // `false` would close it too, after flushing what was written).
        true
    }
}

// ---- the client's protocol: forward what happens to `main` --------------

enum ClientEvent {
    Data(Bytes),
    Paused,
    Resumed,
}

struct ClientProtocol {
    events: UnboundedSender<ClientEvent>,
}

impl BaseProtocol for ClientProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        let peer = transport.peer_address().map(ToString::to_string);
        println!(
            "[client] connection_made: to {}",
            peer.as_deref().unwrap_or("None")
        );
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        println!("[client] connection_lost: {}", describe_exc(&exc));
    }

    fn pause_writing(&mut self) {
        println!("[client] pause_writing: write buffer over the high watermark");
        let _ = self.events.send(ClientEvent::Paused);
    }

    fn resume_writing(&mut self) {
        println!("[client] resume_writing: write buffer drained to the low watermark");
        let _ = self.events.send(ClientEvent::Resumed);
    }
}

impl Protocol for ClientProtocol {
    fn data_received(&mut self, data: Bytes) {
        if !QUIET.load(Ordering::Relaxed) {
            println!("[client] data_received: {}", show(&data));
        }
        let _ = self.events.send(ClientEvent::Data(data));
    }

    fn eof_received(&mut self) -> bool {
        println!("[client] eof_received: the server closed; close too");
        // The default: the transport closes itself.
        false
    }
}

fn describe_exc(exc: &Option<io::Error>) -> String {
    match exc {
        None => "None (a clean close)".to_string(),
        Some(e) => format!("error: {e}"),
    }
}

/// Wait for the next client event, with a time limit so that a bug cannot
/// hang the demo.
async fn next_event(events: &mut UnboundedReceiver<ClientEvent>) -> io::Result<ClientEvent> {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(io::Error::other("the client protocol is gone")),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no client event within 10 s",
        )),
    }
}

/// Wait until `n` bytes have come back to the client.
async fn receive(events: &mut UnboundedReceiver<ClientEvent>, n: usize) -> io::Result<Vec<u8>> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        if let ClientEvent::Data(d) = next_event(events).await? {
            got.extend_from_slice(&d);
        }
    }
    Ok(got)
}

// One thread, like asyncio's event loop: the output comes in a stable order.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let started = Instant::now();

    // asyncio's loop.set_exception_handler: errors that no caller can see
    // (a failed accept, a panicking callback...) are reported here.
    set_exception_handler(Some(Arc::new(|ctx: &ExceptionContext<'_>| {
        eprintln!("[exception handler] {ctx:?}");
    })));

    // 1. Server and client.
    let (accepted_tx, mut accepted_rx) = unbounded_channel();
    let server_options = ServerOptions::default()
        // High enough that echoing the bulk data never pauses the server.
        .write_limits(WriteLimits::new(Some(4 * BULK), None)?);
    let server = create_server(
        move || ServerProtocol {
            transport: None,
            accepted: accepted_tx.clone(),
        },
        "127.0.0.1",
        0,
        server_options,
    )
    .await?;
    let port = server
        .sockets()
        .first()
        .map(|addr| addr.port())
        .ok_or_else(|| io::Error::other("the server has no socket"))?;
    println!("[main] create_server: listening on 127.0.0.1:{port}");

    let (events_tx, mut events) = unbounded_channel();
    let client = create_connection(
        || ClientProtocol { events: events_tx },
        "127.0.0.1",
        port,
        ConnectOptions::default(),
    )
    .await?;
    println!("[main] create_connection: returned after the client's connection_made");
    let server_side = accepted_rx
        .recv()
        .await
        .ok_or_else(|| io::Error::other("the server accepted nothing"))?;
    println!(
        "[main] the server has {} connection(s)",
        server.clients().len()
    );

    // 2. Echo a few messages.
    for message in ["Hello World!", "How are you?", "Fine, thanks.\n"] {
        println!("[main] client write: {}", py_repr(message));
        client.write(message)?;
        let echoed = receive(&mut events, message.len()).await?;
        if echoed != message.as_bytes() {
            return Err(io::Error::other(format!("echo mismatch: {echoed:?}")));
        }
    }

    // 3. Flow control.
    let (low, high) = client.get_write_buffer_limits();
    println!("[main] client write buffer limits: low {low}, high {high}");
    // Small socket buffers, so the kernel cannot swallow the whole write.
    client
        .with_socket(|s| s.set_send_buffer_size(16 * 1024))
        .transpose()?;
    server_side
        .with_socket(|s| s.set_recv_buffer_size(16 * 1024))
        .transpose()?;
    println!("[main] server pause_reading()");
    server_side.pause_reading();
    QUIET.store(true, Ordering::Relaxed);
    println!("[main] client write: {BULK} bytes");
    client.write(vec![b'x'; BULK])?;
    // The kernel takes what fits in the socket buffers; the rest stays in the
    // transport's write buffer, which goes over `high`: pause_writing.
    if !matches!(next_event(&mut events).await?, ClientEvent::Paused) {
        return Err(io::Error::other("expected pause_writing"));
    }
    println!("[main] server resume_reading()");
    server_side.resume_reading();
    let (mut echoed, mut resumed) = (0, false);
    while echoed < BULK || !resumed {
        match next_event(&mut events).await? {
            ClientEvent::Data(d) => echoed += d.len(),
            ClientEvent::Resumed => resumed = true,
            ClientEvent::Paused => {}
        }
    }
    QUIET.store(false, Ordering::Relaxed);
    println!("[main] all {echoed} bytes came back");

    // 4. Half-close, then both sides close.
    println!("[main] client write_eof()");
    client.write_eof().unwrap();
    client.closed().await;
    server_side.closed().await;
    println!("[main] both transports are closed");

    // 5. Close the server.
    server.close();
    server.wait_closed().await;
    println!(
        "[main] server closed; done in {} ms",
        started.elapsed().as_millis()
    );
    Ok(())
}
