//! Unit tests of the sans-IO state machine: no sockets, no runtime.

use super::*;

fn limits(low: usize, high: usize) -> WriteLimits {
    WriteLimits { low, high }
}

fn events(sm: &mut StreamState) -> Vec<String> {
    std::iter::from_fn(|| sm.poll_event())
        .map(|e| match e {
            Event::PauseWriting => "pause".to_string(),
            Event::ResumeWriting => "resume".to_string(),
            Event::ShutdownWrite => "shutdown".to_string(),
            Event::Lost(None) => "lost".to_string(),
            Event::Lost(Some(e)) => format!("lost({e})"),
        })
        .collect()
}

fn b(n: usize) -> Bytes {
    Bytes::from(vec![b'x'; n])
}

#[test]
fn pause_only_strictly_over_high() {
    let mut sm = StreamState::new(limits(2, 10));
    sm.write(b(10));
    sm.check_pause();
    assert!(events(&mut sm).is_empty(), "equal to high does not pause");
    sm.write(b(1));
    sm.check_pause();
    assert_eq!(events(&mut sm), ["pause"]);
    sm.write(b(100));
    sm.check_pause();
    assert!(events(&mut sm).is_empty(), "edge-triggered: one pause");
    assert!(sm.is_write_paused());
}

#[test]
fn resume_at_or_below_low() {
    let mut sm = StreamState::new(limits(4, 10));
    sm.write(b(20));
    sm.check_pause();
    assert_eq!(events(&mut sm), ["pause"]);
    sm.consume(15); // 5 left: above low
    assert!(events(&mut sm).is_empty());
    sm.consume(1); // 4 left: at low
    assert_eq!(events(&mut sm), ["resume"]);
    sm.consume(4);
    assert!(events(&mut sm).is_empty(), "one resume per pause");
}

#[test]
fn zero_watermarks() {
    let mut sm = StreamState::new(limits(0, 0));
    sm.write(b(1));
    sm.check_pause();
    assert_eq!(events(&mut sm), ["pause"]);
    sm.write(b(1));
    sm.consume(1);
    assert!(events(&mut sm).is_empty(), "low 0: resume only when empty");
    sm.consume(1);
    assert_eq!(events(&mut sm), ["resume"]);
}

#[test]
fn tightening_limits_pauses_loosening_does_not_resume() {
    let mut sm = StreamState::new(limits(16, 64));
    sm.write(b(50));
    sm.check_pause();
    assert!(events(&mut sm).is_empty());
    sm.set_limits(limits(10, 40));
    assert_eq!(events(&mut sm), ["pause"]);
    sm.set_limits(limits(100, 400));
    assert!(events(&mut sm).is_empty(), "RW only comes with a drain");
    sm.consume(1);
    assert_eq!(events(&mut sm), ["resume"]);
}

#[test]
fn empty_write_is_ignored() {
    let mut sm = StreamState::default();
    assert_eq!(sm.write(Bytes::new()), WriteOutcome::Empty);
    assert_eq!(sm.queued(), 0);
}

#[test]
fn consume_splits_chunks_in_order() {
    let mut sm = StreamState::default();
    sm.write(Bytes::from_static(b"abc"));
    sm.write(Bytes::from_static(b"def"));
    sm.consume(4);
    let mut out = [IoSlice::new(&[]); 4];
    let n = sm.chunks(&mut out);
    assert_eq!(n, 1);
    assert_eq!(&*out[0], b"ef");
    assert_eq!(sm.queued(), 2);
}

#[test]
fn close_with_empty_queue_is_lost_at_once() {
    let mut sm = StreamState::default();
    sm.close();
    assert_eq!(events(&mut sm), ["lost"]);
    assert_eq!(sm.phase(), Phase::Lost);
    sm.close();
    sm.abort(None);
    assert!(
        events(&mut sm).is_empty(),
        "close/abort after loss are no-ops"
    );
}

#[test]
fn close_flushes_first_and_accepts_writes_meanwhile() {
    let mut sm = StreamState::default();
    sm.write(b(10));
    sm.close();
    assert!(events(&mut sm).is_empty());
    assert!(!sm.is_reading());
    assert_eq!(
        sm.write(b(5)),
        WriteOutcome::Queued,
        "closing-but-flushing accepts writes"
    );
    sm.consume(15);
    sm.drained();
    assert_eq!(events(&mut sm), ["lost"]);
    assert_eq!(sm.write(b(1)), WriteOutcome::Dropped);
    assert_eq!(sm.queued(), 0, "a dropped write is not queued");
}

#[test]
fn abort_discards_the_queue() {
    let mut sm = StreamState::default();
    sm.write(b(10));
    assert_eq!(sm.abort(None), 10);
    assert_eq!(sm.queued(), 0);
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn abort_after_close_before_drain_is_single_loss() {
    let mut sm = StreamState::default();
    sm.write(b(10));
    sm.close();
    sm.abort(None);
    sm.abort(None);
    sm.drained();
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn fatal_error_is_delivered() {
    let mut sm = StreamState::default();
    sm.write(b(3));
    sm.abort(Some(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "reset",
    )));
    assert_eq!(events(&mut sm), ["lost(reset)"]);
}

#[test]
fn no_flow_events_after_loss() {
    let mut sm = StreamState::new(limits(1, 2));
    sm.write(b(5));
    sm.check_pause();
    assert_eq!(events(&mut sm), ["pause"]);
    sm.abort(None);
    sm.consume(0);
    sm.check_pause();
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn write_eof_waits_for_the_queue() {
    let mut sm = StreamState::default();
    sm.write(b(4));
    sm.write_eof();
    assert!(events(&mut sm).is_empty());
    assert_eq!(sm.write_side(), WriteSide::EofPending);
    assert_eq!(sm.write(b(1)), WriteOutcome::Dropped);
    sm.consume(4);
    sm.drained();
    assert_eq!(events(&mut sm), ["shutdown"]);
    assert_eq!(sm.write_side(), WriteSide::Shut);
    assert!(sm.is_reading(), "reading continues after write_eof");
    sm.write_eof();
    assert!(events(&mut sm).is_empty(), "idempotent");
}

#[test]
fn write_eof_with_empty_queue_is_immediate_and_noop_when_closing() {
    let mut sm = StreamState::default();
    sm.write_eof();
    assert_eq!(events(&mut sm), ["shutdown"]);
    let mut sm = StreamState::default();
    sm.write(b(1));
    sm.close();
    sm.write_eof();
    assert_eq!(sm.write_side(), WriteSide::Open);
}

#[test]
fn eof_is_reported_once_and_stops_reading_for_good() {
    let mut sm = StreamState::default();
    assert!(sm.read_eof());
    assert!(!sm.read_eof());
    assert!(!sm.is_reading());
    sm.resume_reading();
    assert!(!sm.is_reading());
    sm.pause_reading();
    sm.resume_reading();
    assert_eq!(sm.read_state(), ReadState::Eof);
}

#[test]
fn pause_and_resume_reading_are_idempotent_and_noops_when_closing() {
    let mut sm = StreamState::default();
    sm.pause_reading();
    sm.pause_reading();
    assert!(!sm.is_reading());
    sm.resume_reading();
    sm.resume_reading();
    assert!(sm.is_reading());
    sm.write(b(1));
    sm.close();
    sm.resume_reading();
    assert!(!sm.is_reading());
}

#[test]
fn eof_after_close_is_not_reported() {
    let mut sm = StreamState::default();
    sm.write(b(1));
    sm.close();
    assert!(!sm.read_eof());
}

#[test]
fn default_limits_are_asyncios() {
    let sm = StreamState::default();
    assert_eq!(sm.limits(), limits(16 * 1024, 64 * 1024));
}

#[test]
fn a_writer_claiming_more_than_queued_takes_only_what_was_queued() {
    let mut sm = StreamState::new(limits(4, 16));
    sm.write(b(6));
    sm.write(b(4));
    assert_eq!(sm.consume(3), 3);
    assert_eq!(sm.queued(), 7);
    assert_eq!(sm.consume(100), 7, "capped at what was queued");
    assert_eq!(sm.queued(), 0);
    assert_eq!(sm.single_chunk(), None, "the queue is empty");
}

#[test]
fn only_writes_tracks_events_close_pending_eof_and_shutdown() {
    let mut sm = StreamState::new(limits(2, 10));
    assert!(sm.only_writes());
    sm.write(b(11));
    assert!(sm.only_writes(), "queued writes alone leave it clear");
    sm.check_pause();
    assert!(!sm.only_writes(), "an event is due");
    assert_eq!(events(&mut sm), ["pause"]);
    assert!(sm.only_writes(), "clear once the events are taken");
    sm.consume(11);
    assert!(!sm.only_writes());
    assert_eq!(events(&mut sm), ["resume"]);
    sm.write(b(3));
    sm.write_eof();
    assert!(!sm.only_writes(), "an end of file waits for the drain");
    sm.consume(3);
    sm.drained();
    assert_eq!(events(&mut sm), ["shutdown"]);
    sm.start_shutdown();
    assert!(
        !sm.only_writes(),
        "the driver is shutting the write half down"
    );
    sm.shutdown_done();
    assert!(sm.only_writes(), "the write half is shut, nothing pending");
    sm.close();
    assert!(!sm.only_writes(), "closing");
    assert_eq!(events(&mut sm), ["lost"]);
    assert!(!sm.only_writes(), "lost for good");
}

#[test]
fn reads_are_limited_only_while_writes_wait() {
    let mut sm = StreamState::new(limits(1000, 64 * 1024));
    assert_eq!(sm.read_limit(), usize::MAX, "nothing queued: no limit");
    sm.write(b(100 * 1024));
    assert_eq!(sm.read_limit(), 28 * 1024, "up to twice the high watermark");
    sm.write(b(28 * 1024));
    assert_eq!(sm.read_limit(), MIN_READ, "at twice the high: the minimum");
    sm.consume(128 * 1024);
    assert_eq!(sm.read_limit(), usize::MAX);
}

#[test]
fn a_tls_close_flushes_sends_close_notify_and_waits_for_the_peers() {
    let mut sm = StreamState::new_tls(limits(2, 10));
    sm.write(b(5));
    sm.close();
    assert!(events(&mut sm).is_empty(), "the queue goes out first");
    sm.consume(5);
    sm.drained();
    assert_eq!(events(&mut sm), ["shutdown"], "close_notify once flushed");
    sm.start_shutdown();
    assert!(
        !sm.awaiting_peer_close(),
        "not while close_notify is going out"
    );
    assert_eq!(
        sm.write(b(1)),
        WriteOutcome::Dropped,
        "nothing after close_notify"
    );
    sm.shutdown_done();
    assert!(sm.awaiting_peer_close());
    sm.drained();
    assert!(
        events(&mut sm).is_empty(),
        "waits for the peer's close_notify"
    );
    sm.peer_close_seen();
    assert_eq!(events(&mut sm), ["lost"]);
    assert!(!sm.awaiting_peer_close());
}

#[test]
fn a_tls_close_after_the_peers_close_notify_ends_once_ours_is_out() {
    let mut sm = StreamState::new_tls(limits(2, 10));
    assert!(sm.read_eof(), "eof_received is due");
    sm.close();
    assert_eq!(events(&mut sm), ["shutdown"]);
    sm.start_shutdown();
    sm.shutdown_done();
    assert!(!sm.awaiting_peer_close(), "the peer's came already");
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn a_plain_close_does_not_wait_for_the_peer() {
    let mut sm = StreamState::new(limits(2, 10));
    sm.close();
    assert!(!sm.awaiting_peer_close());
    assert_eq!(events(&mut sm), ["lost"]);
}

// ---- one-way modes (pipes) ---------------------------------------------

#[test]
fn read_pipe_refuses_writes_and_write_eof() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::ReadOnly);
    assert_eq!(sm.mode(), Mode::ReadOnly);
    assert_eq!(sm.write_side(), WriteSide::Shut);
    assert!(!sm.accepts_writes());
    assert_eq!(sm.write(b(3)), WriteOutcome::Dropped);
    assert_eq!(sm.queued(), 0);
    sm.write_eof();
    assert!(events(&mut sm).is_empty(), "no shutdown for a read pipe");
    assert!(sm.only_writes());
    assert!(sm.is_reading());
}

#[test]
fn read_pipe_closes_at_eof_whatever_eof_received_returns() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::ReadOnly);
    assert!(sm.read_eof(), "eof_received is due once");
    sm.eof_received_returned(true);
    assert_eq!(sm.phase(), Phase::Lost);
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn duplex_eof_received_true_keeps_open() {
    let mut sm = StreamState::new(limits(2, 10));
    assert!(sm.read_eof());
    sm.eof_received_returned(true);
    assert_eq!(sm.phase(), Phase::Open);
    sm.eof_received_returned(false);
    assert_eq!(events(&mut sm), ["lost"]);
}

#[test]
fn read_pipe_pause_resume_and_close() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::ReadOnly);
    sm.pause_reading();
    sm.pause_reading();
    assert_eq!(sm.read_state(), ReadState::Paused);
    sm.resume_reading();
    assert!(sm.is_reading());
    sm.close();
    assert_eq!(events(&mut sm), ["lost"], "nothing to flush: lost at once");
    sm.resume_reading();
    sm.pause_reading();
    assert_eq!(sm.read_state(), ReadState::Stopped, "harmless once closed");
}

#[test]
fn write_pipe_does_not_read() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::WriteOnly);
    assert!(!sm.is_reading());
    sm.resume_reading();
    assert!(!sm.is_reading(), "nothing to resume");
    assert_eq!(sm.write(b(4)), WriteOutcome::Queued);
}

#[test]
fn write_pipe_write_eof_is_close_and_drops_later_writes() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::WriteOnly);
    sm.write(b(5));
    sm.write_eof();
    assert_eq!(sm.phase(), Phase::Closing, "write_eof closes a write pipe");
    assert_eq!(
        sm.write(b(1)),
        WriteOutcome::Dropped,
        "asyncio drops writes while closing"
    );
    assert!(events(&mut sm).is_empty(), "waits for the queue");
    sm.consume(5);
    sm.drained();
    assert_eq!(
        events(&mut sm),
        ["lost"],
        "no shutdown event: the close ends it"
    );
}

#[test]
fn write_pipe_close_drops_later_writes_socket_close_does_not() {
    let mut pipe = StreamState::with_mode(limits(2, 10), Mode::WriteOnly);
    pipe.write(b(5));
    pipe.close();
    assert_eq!(pipe.write(b(1)), WriteOutcome::Dropped);
    let mut sock = StreamState::new(limits(2, 10));
    sock.write(b(5));
    sock.close();
    assert_eq!(
        sock.write(b(1)),
        WriteOutcome::Queued,
        "gh-115514: a socket still sends"
    );
}

#[test]
fn write_pipe_reader_gone_error_depends_on_buffer() {
    let mut sm = StreamState::with_mode(limits(2, 10), Mode::WriteOnly);
    assert!(
        sm.reader_gone_error().is_none(),
        "empty buffer: a clean end"
    );
    sm.write(b(3));
    let err = sm.reader_gone_error().expect("data buffered");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(sm.abort(Some(err)), 3);
    assert_eq!(events(&mut sm), ["lost(broken pipe)"]);
}

#[test]
fn write_pipe_flow_control_as_sockets() {
    let mut sm = StreamState::with_mode(limits(4, 10), Mode::WriteOnly);
    sm.write(b(11));
    sm.check_pause();
    assert_eq!(events(&mut sm), ["pause"]);
    sm.consume(7);
    assert_eq!(events(&mut sm), ["resume"]);
}
