//! The test kit (`tokio_transports::testing`, feature `test-util`) in a
//! `main`, as a protocol author would use it in a `#[test]`: a line protocol
//! driven without sockets, by the crate's real transport over a scripted
//! peer. Prints each step; exits with an error if the protocol misbehaves.
//!
//! ```text
//! cargo run --example protocol_test
//! fed "hel", wrote ""
//! fed "lo\nwor", wrote "HELLO\n"
//! fed "ld\n", wrote "WORLD\n"
//! peer stopped reading: 1 MiB queued, writing paused: true
//! peer reads again: writing paused: false
//! fed EOF: closed: true, every callback in order
//! ```

use tokio_transports::testing::StreamHarness;
use tokio_transports::{BaseProtocol, Bytes, BytesMut, Protocol, Transport};

/// Answers each line in upper case; says "BIG" with 1 MiB on "big".
#[derive(Default)]
struct Shout {
    t: Option<Transport>,
    partial: BytesMut,
    pauses: usize,
}

impl BaseProtocol for Shout {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
    fn pause_writing(&mut self) {
        self.pauses += 1;
    }
}

impl Protocol for Shout {
    fn data_received(&mut self, data: Bytes) {
        self.partial.extend_from_slice(&data);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line = self.partial.split_to(end + 1);
            let Some(t) = &self.t else { return };
            if &line[..] == b"big\n" {
                let _ = t.write(vec![b'!'; 1 << 20]);
            } else {
                let _ = t.write(line.to_ascii_uppercase());
            }
        }
    }
}

fn main() -> Result<(), String> {
    // No runtime needed: nothing here uses timers or spawns tasks.
    let mut h = StreamHarness::new(Shout::default());
    for chunk in ["hel", "lo\nwor", "ld\n"] {
        h.feed(chunk);
        let out = h.take_written();
        println!("fed {chunk:?}, wrote {:?}", String::from_utf8_lossy(&out));
    }
    h.set_peer_reading(false);
    h.feed("big\n");
    println!(
        "peer stopped reading: 1 MiB queued, writing paused: {}",
        h.is_writing_paused()
    );
    h.set_peer_reading(true);
    let big = h.take_written();
    if big.len() != 1 << 20 || h.protocol().pauses != 1 {
        return Err(format!(
            "got {} bytes, {} pauses",
            big.len(),
            h.protocol().pauses
        ));
    }
    println!(
        "peer reads again: writing paused: {}",
        h.is_writing_paused()
    );
    h.feed_eof();
    // The harness checks the callback order at every step (it panics at a
    // breach); `assert_complete` also wants connection_lost to have run.
    h.check().assert_complete();
    println!(
        "fed EOF: closed: {}, every callback in order",
        h.is_closed()
    );
    Ok(())
}
