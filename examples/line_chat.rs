//! A line chat server: a framed protocol ([`tokio_transports::codec`]) with
//! tokio-util's `LinesCodec`. Every line a client sends goes to every other
//! client, prefixed with the sender's name; `/quit` leaves. The handler is
//! all there is: no buffering, no splitting, no line parsing.
//!
//! ```text
//! cargo run --example line_chat                  # 127.0.0.1:8888
//! cargo run --example line_chat -- 127.0.0.1 9000
//! nc 127.0.0.1 8888                              # in two or more terminals
//! ```
//!
//! Limits, as a server facing the network needs them: a line longer than
//! 1 KiB is a decode error (the connection closes, the log says why), and a
//! client that does not read and lets more than 1 MiB pile up for it is
//! dropped (`abort`) rather than buffered for without end.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_transports::codec::{FrameHandler, FramedProtocol, FramedTransport, LinesCodec};
use tokio_transports::{Server, ServerOptions, create_server};

/// The longest line accepted.
pub const MAX_LINE: usize = 1024;
/// What may wait unsent for one client before it is dropped.
pub const MAX_BACKLOG: usize = 1 << 20;

/// Every connected client, by number.
#[derive(Clone, Default)]
pub struct Room {
    members: Arc<Mutex<HashMap<usize, FramedTransport<LinesCodec>>>>,
    next: Arc<AtomicUsize>,
}

impl Room {
    /// Send `line` to everyone but `from`.
    fn broadcast(&self, from: usize, line: &str) {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        for (id, t) in members.iter_mut().filter(|(id, _)| **id != from) {
            if t.get_write_buffer_size() > MAX_BACKLOG {
                eprintln!("guest{id} does not read: dropped");
                t.abort();
            } else {
                let _ = t.send(line);
            }
        }
    }
}

/// One client's handler.
struct Member {
    room: Room,
    id: usize,
}

impl FrameHandler<LinesCodec> for Member {
    fn connection_made(&mut self, t: &mut FramedTransport<LinesCodec>) {
        let _ = t.send(format!("welcome, you are guest{}", self.id));
        let mut members = self.room.members.lock().unwrap_or_else(|p| p.into_inner());
        members.insert(self.id, t.clone());
        drop(members);
        self.room
            .broadcast(self.id, &format!("* guest{} joined", self.id));
    }

    fn frame_received(&mut self, line: String, t: &mut FramedTransport<LinesCodec>) {
        if line == "/quit" {
            let _ = t.send("bye");
            t.close();
            return;
        }
        self.room
            .broadcast(self.id, &format!("guest{}: {line}", self.id));
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        if let Some(e) = exc {
            eprintln!("guest{}: {e}", self.id);
        }
        let mut members = self.room.members.lock().unwrap_or_else(|p| p.into_inner());
        members.remove(&self.id);
        drop(members);
        self.room
            .broadcast(self.id, &format!("* guest{} left", self.id));
    }
}

/// The chat server on `host:port`.
pub async fn start(host: &str, port: u16) -> io::Result<Server> {
    let room = Room::default();
    let factory = move || {
        let id = room.next.fetch_add(1, Ordering::Relaxed) + 1;
        let member = Member {
            room: room.clone(),
            id,
        };
        FramedProtocol::new(LinesCodec::new_with_max_length(MAX_LINE), member)
    };
    create_server(factory, host, port, ServerOptions::default()).await
}

#[tokio::main]
#[allow(dead_code)] // the tests include this file for `start`
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".to_string());
    let port = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("port {p:?}: {e}")))?,
        None => 8888,
    };
    let server = start(&host, port).await?;
    println!(
        "chat on {} (nc {} {port}; Ctrl-C to stop)",
        server.sockets()[0],
        host
    );
    tokio::select! {
        r = server.serve_forever() => r,
        r = tokio::signal::ctrl_c() => r,
    }
}
