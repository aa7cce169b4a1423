//! Shared helpers for the integration tests. The recorder, its log, the
//! grammar check and the scripted I/O come from the crate's public test kit
//! (`tokio_transports::testing`, feature `test-util`); what is left here is
//! per-test bookkeeping and sockets.
//!
//! * [`Recorder`]: a protocol (streaming and buffered) that logs every callback
//!   into a [`Log`], optionally echoes, and runs a configurable hook inside each
//!   callback with the transport.
//! * [`Registry`]: every log a test creates; [`Registry::finish`] waits for every
//!   connection's `connection_lost` and runs [`check_grammar`] on each, so the
//!   callback contract is checked on every connection of every test.
//! * [`GateIo`]: an in-memory I/O whose write side the test opens byte by byte,
//!   for exact flow-control boundaries.
//! * [`ExcCapture`]: installs a capturing exception handler, serialized across
//!   the tests of one binary (the handler is process-global).
//! * Waiting helpers: [`guard`], [`barrier`], [`is_pending`], [`wait_unread`].
//! * Socket helpers: [`echo_server`], [`client_with_raw_peer`], [`read_n`],
//!   [`set_reset_on_drop`] and the like.
//!
//! One submodule per concept; everything is re-exported here, so tests just
//! `use common::*;`.

#![allow(dead_code)]

mod exc;
mod gate_io;
mod grammar;
mod log;
mod recorder;
mod registry;
mod sockets;
mod util;

// Each test binary uses only some of these: an unused re-export is not an error.
#[allow(unused_imports)]
pub use exc::{ExcCapture, Report};
#[allow(unused_imports)]
pub use gate_io::{Feed, Gate, GateIo};
#[allow(unused_imports)]
pub use grammar::check_grammar;
#[allow(unused_imports)]
pub use log::{Ev, Log, LostInfo, index_of, received_in, received_len};
#[allow(unused_imports)]
pub use recorder::{Config, Hook, Recorder};
#[allow(unused_imports)]
pub use registry::Registry;
#[allow(unused_imports)]
pub use sockets::{
    buffered_client_with_raw_peer, buffered_server, client_with_raw_peer, client_with_raw_peer_on,
    echo_server, free_port, read_n, read_to_eof, set_reset_on_drop, shutdown, wait_unread,
};
#[allow(unused_imports)]
pub use util::{Counter, GUARD, barrier, guard, is_pending, pattern};
