//! [`check_grammar`]: the callback contract, asserted on one connection's
//! complete event log.

use super::Ev;

/// Assert the callback contract on one connection's complete log:
/// `connection_made (data_received | get_buffer buffer_updated?)* eof_received?
/// connection_lost`, with `pause_writing`/`resume_writing` strictly
/// alternating (pause first) anywhere between the first and the last.
pub fn check_grammar(events: &[Ev]) {
    let evs: Vec<&Ev> = events
        .iter()
        .filter(|e| !matches!(e, Ev::Mark(_)))
        .collect();
    let fail = |msg: String| -> ! { panic!("callback contract broken: {msg}\nevents: {evs:?}") };
    if evs.first() != Some(&&Ev::Made) {
        fail("connection_made is not first".into());
    }
    let last = evs.len() - 1;
    if !evs[last].is_lost() {
        fail("connection_lost is not last".into());
    }
    let mut eof = false;
    let mut paused = false;
    // The last event other than pause/resume writing.
    let mut prev: Option<&Ev> = None;
    for (i, e) in evs.iter().enumerate() {
        match e {
            Ev::Made if i != 0 => fail(format!("connection_made again at {i}")),
            Ev::Made => {}
            Ev::Data(d) => {
                if eof {
                    fail(format!("data_received after eof_received at {i}"));
                }
                if d.is_empty() {
                    fail(format!("empty data_received at {i}"));
                }
            }
            Ev::GetBuffer(_) if eof => fail(format!("get_buffer after eof_received at {i}")),
            Ev::GetBuffer(_) => {}
            Ev::BufferUpdated { n, data } => {
                if eof {
                    fail(format!("buffer_updated after eof_received at {i}"));
                }
                if *n == 0 || *n != data.len() {
                    fail(format!("buffer_updated({n}) at {i}"));
                }
                if !matches!(prev, Some(Ev::GetBuffer(_))) {
                    fail(format!("buffer_updated not right after get_buffer at {i}"));
                }
            }
            Ev::Eof if eof => fail(format!("eof_received twice (at {i})")),
            Ev::Eof => eof = true,
            Ev::PauseWriting(_) if paused => fail(format!("pause_writing twice (at {i})")),
            Ev::PauseWriting(_) => paused = true,
            Ev::ResumeWriting(_) if !paused => {
                fail(format!("resume_writing without pause_writing (at {i})"))
            }
            Ev::ResumeWriting(_) => paused = false,
            Ev::Lost(_) if i != last => fail(format!("connection_lost not last (at {i})")),
            Ev::Lost(_) => {}
            Ev::Violation(v) => fail(format!("violation at {i}: {v}")),
            Ev::Mark(_) => unreachable!(),
        }
        if !e.is_pw() && !e.is_rw() {
            prev = Some(e);
        }
    }
}
