//! A test kit for protocol authors (feature `test-util`, off by default):
//! drive any [`Protocol`](crate::Protocol),
//! [`BufferedProtocol`](crate::BufferedProtocol) or
//! [`DatagramProtocol`](crate::DatagramProtocol) without sockets, as Netty's
//! `EmbeddedChannel` and Twisted's `StringTransport` do.
//!
//! * [`StreamHarness`] and [`DatagramHarness`]: one connection or endpoint
//!   run by this crate's **real** driver and state machine over a scripted
//!   peer, polled on the test's thread. Feed bytes, an end of file, a
//!   reset, datagrams, errors; read back what was written or sent, in
//!   order and whole; stop the peer reading to fill the write buffer and
//!   see `pause_writing`/`resume_writing`; read the pause states; reach the
//!   protocol's state. Each call runs the connection until it is idle.
//! * [`ScriptedIo`] / [`Peer`]: that scripted stream peer on its own, for
//!   [`connect_io`](crate::connect_io) on a runtime.
//! * [`Checked`]: a wrapper that checks the call-order grammar on every
//!   callback ([`GrammarCheck`] reports); the harnesses wrap every
//!   protocol in it and panic at the step that broke a rule.
//! * [`Recorder`], [`Log`], [`Event`]: a protocol that records every
//!   callback, for tests over real transports; [`check_grammar`] checks a
//!   finished log.
//!
//! **Time.** The harnesses work under `#[tokio::test(start_paused = true)]`
//! (the feature turns on tokio's `test-util`): timers the protocol arms
//! fire when the test moves the clock with [`StreamHarness::advance`] /
//! [`DatagramHarness::advance`], at their own moments (the connection runs
//! each time one wakes it). [`StreamHarness::settle`] runs the connection
//! and the protocol's tasks until both are idle, without moving the clock. Without timers or spawned tasks no runtime
//! is needed at all: a plain `#[test]` works.
//!
//! What the harness does not do: TLS (`start_tls` needs a real task), and
//! socket options (`with_socket` gives `None`). A stream harness has no
//! addresses unless [`StreamHarness::builder`] gives it some.
//!
//! # A protocol author's test
//!
//! ```
//! use std::time::Duration;
//! use tokio_transports::{BaseProtocol, Bytes, Protocol, Transport};
//! use tokio_transports::testing::StreamHarness;
//!
//! /// Echoes, and hangs up on a peer idle for 10 s.
//! #[derive(Default)]
//! struct Echo { t: Option<Transport>, idle: Option<tokio::task::JoinHandle<()>> }
//! impl Echo {
//!     fn arm(&mut self) {
//!         let t = self.t.clone().unwrap();
//!         if let Some(old) = self.idle.replace(tokio::spawn(async move {
//!             tokio::time::sleep(Duration::from_secs(10)).await;
//!             t.close();
//!         })) {
//!             old.abort();
//!         }
//!     }
//! }
//! impl BaseProtocol for Echo {
//!     fn connection_made(&mut self, t: &Transport) { self.t = Some(t.clone()); self.arm(); }
//! }
//! impl Protocol for Echo {
//!     fn data_received(&mut self, data: Bytes) {
//!         let _ = self.t.as_ref().unwrap().write(data);
//!         self.arm();
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)] // #[tokio::test(start_paused = true)]
//! async fn main() {
//!     let mut h = StreamHarness::new(Echo::default());
//!     h.feed("hello ");
//!     h.feed("world");
//!     assert_eq!(h.take_written(), "hello world");
//!     h.advance(Duration::from_secs(9)).await;
//!     h.feed("still here");
//!     h.advance(Duration::from_secs(9)).await;
//!     assert!(!h.is_closed());
//!     h.advance(Duration::from_secs(1)).await;
//!     assert!(h.is_closed(), "closed after 10 s of silence");
//!     assert_eq!(h.written(), "hello worldstill here");
//! }
//! ```

mod checked;
mod datagram;
mod grammar;
mod log;
mod recorder;
mod scripted;
mod step;
mod stream;

pub use checked::{Checked, GrammarCheck};
pub use datagram::DatagramHarness;
pub use grammar::check_grammar;
pub use log::{Event, Log, LostInfo, WAIT_TIMEOUT, received_in, received_len};
pub use recorder::{Hook, Recorder, RecorderConfig};
pub use scripted::{Peer, ScriptedIo};
pub use stream::{StreamHarness, StreamHarnessBuilder};
