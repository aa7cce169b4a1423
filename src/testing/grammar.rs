//! The call-order grammar of protocol callbacks, as a state machine that
//! sees one callback at a time: what [`Checked`](super::Checked) runs on a
//! live connection and [`check_grammar`] replays over a recorded log.
//!
//! The rules are the contract written in [`crate::Protocol`]'s module docs
//! (and [`crate::DatagramProtocol`]'s):
//!
//! ```text
//! stream:    connection_made (data_received | get_buffer buffer_updated?)* eof_received? connection_lost
//! datagram:  connection_made (datagram_received | error_received)*                     connection_lost
//! ```
//!
//! with `pause_writing`/`resume_writing` strictly alternating, pause first,
//! anywhere between the first and the last callback.

use super::log::Event;

/// One callback, as the grammar sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Made,
    /// `data_received` with this many bytes.
    Data(usize),
    GetBuffer,
    /// `buffer_updated(n)`; `spare_ok`: `n` fitted in the buffer's spare room.
    BufferUpdated {
        n: usize,
        spare_ok: bool,
    },
    Eof,
    PauseWriting,
    ResumeWriting,
    Lost,
    Datagram,
    ErrorReceived,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Made => "connection_made",
            Call::Data(_) => "data_received",
            Call::GetBuffer => "get_buffer",
            Call::BufferUpdated { .. } => "buffer_updated",
            Call::Eof => "eof_received",
            Call::PauseWriting => "pause_writing",
            Call::ResumeWriting => "resume_writing",
            Call::Lost => "connection_lost",
            Call::Datagram => "datagram_received",
            Call::ErrorReceived => "error_received",
        }
    }
}

/// Where one connection is in the grammar.
#[derive(Debug, Default, Clone)]
pub(crate) struct Grammar {
    made: bool,
    lost: bool,
    eof: bool,
    paused: bool,
    /// The last callback other than `pause_writing`/`resume_writing`.
    prev: Option<Call>,
    /// How many callbacks were seen (for the messages).
    seen: usize,
}

impl Grammar {
    /// Whether `pause_writing` was the last of the pair delivered.
    pub(crate) fn writing_paused(&self) -> bool {
        self.paused
    }

    /// Whether `connection_lost` ran.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost
    }

    /// Take one callback; `Err` names the rule it breaks (the state still
    /// advances, so one breach is reported once).
    pub(crate) fn on(&mut self, call: Call) -> Result<(), String> {
        let i = self.seen;
        self.seen += 1;
        let name = call.name();
        let res = self.check(call, i, name);
        match call {
            Call::Made => self.made = true,
            Call::Lost => self.lost = true,
            Call::Eof => self.eof = true,
            Call::PauseWriting => self.paused = true,
            Call::ResumeWriting => self.paused = false,
            _ => {}
        }
        if !matches!(call, Call::PauseWriting | Call::ResumeWriting) {
            self.prev = Some(call);
        }
        res
    }

    fn check(&self, call: Call, i: usize, name: &str) -> Result<(), String> {
        if call == Call::Made {
            return match (self.made, self.lost || i > 0) {
                (true, _) => Err(format!("connection_made again (callback #{i})")),
                (false, true) => Err(format!("connection_made is not first (callback #{i})")),
                (false, false) => Ok(()),
            };
        }
        if !self.made {
            return Err(format!("{name} before connection_made (callback #{i})"));
        }
        if self.lost {
            return Err(format!("{name} after connection_lost (callback #{i})"));
        }
        match call {
            Call::Data(0) => Err(format!("empty data_received (callback #{i})")),
            Call::Data(_) | Call::GetBuffer | Call::BufferUpdated { .. } if self.eof => {
                Err(format!("{name} after eof_received (callback #{i})"))
            }
            Call::BufferUpdated { n, spare_ok } => {
                if self.prev != Some(Call::GetBuffer) {
                    Err(format!(
                        "buffer_updated not right after get_buffer (callback #{i})"
                    ))
                } else if n == 0 || !spare_ok {
                    Err(format!(
                        "buffer_updated({n}) does not fit what get_buffer lent (callback #{i})"
                    ))
                } else {
                    Ok(())
                }
            }
            Call::Eof if self.eof => Err(format!("eof_received twice (callback #{i})")),
            Call::PauseWriting if self.paused => {
                Err(format!("pause_writing twice in a row (callback #{i})"))
            }
            Call::ResumeWriting if !self.paused => Err(format!(
                "resume_writing without pause_writing (callback #{i})"
            )),
            _ => Ok(()),
        }
    }

    /// At the end of a complete log: `connection_lost` must have run.
    pub(crate) fn finish(&self) -> Result<(), String> {
        if !self.made {
            return Err("connection_made never ran".into());
        }
        if !self.lost {
            return Err("connection_lost is not last (it never ran)".into());
        }
        Ok(())
    }
}

/// Check the stream callback grammar on one connection's complete log (as
/// a [`Recorder`](super::Recorder) writes it): `connection_made` first and
/// once, `connection_lost` last and once, `eof_received` at most once and
/// never followed by data, no empty `data_received`, each `buffer_updated`
/// right after a `get_buffer` with `n > 0` bytes, `pause_writing` and
/// `resume_writing` alternating, pause first. [`Event::Mark`]s are skipped;
/// an [`Event::Violation`] fails the check.
///
/// # Panics
///
/// On the first breach, with the rule and the whole log.
///
/// ```
/// use tokio_transports::testing::{Event, check_grammar};
/// check_grammar(&[Event::Made, Event::Data("hi".into()), Event::Eof, Event::Lost(None)]);
/// let broken = [Event::Made, Event::Eof, Event::Data("late".into()), Event::Lost(None)];
/// assert!(std::panic::catch_unwind(|| check_grammar(&broken)).is_err());
/// ```
pub fn check_grammar(events: &[Event]) {
    if let Err(msg) = grammar_errors(events) {
        let evs: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Mark(_)))
            .collect();
        panic!("callback contract broken: {msg}\nevents: {evs:?}");
    }
}

/// [`check_grammar`]'s verdict without the panic.
fn grammar_errors(events: &[Event]) -> Result<(), String> {
    let mut g = Grammar::default();
    for e in events {
        let call = match e {
            Event::Mark(_) => continue,
            Event::Violation(v) => return Err(format!("violation: {v}")),
            Event::Made => Call::Made,
            Event::Data(d) => Call::Data(d.len()),
            Event::GetBuffer(_) => Call::GetBuffer,
            Event::BufferUpdated { n, data } => Call::BufferUpdated {
                n: *n,
                spare_ok: *n == data.len(),
            },
            Event::Eof => Call::Eof,
            Event::PauseWriting(_) => Call::PauseWriting,
            Event::ResumeWriting(_) => Call::ResumeWriting,
            Event::Lost(_) => Call::Lost,
        };
        g.on(call)?;
    }
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_enforced() {
        let mut g = Grammar::default();
        assert!(g.on(Call::Data(1)).is_err(), "before connection_made");
        let mut g = Grammar::default();
        g.on(Call::Made).unwrap();
        g.on(Call::PauseWriting).unwrap();
        assert!(g.writing_paused());
        g.on(Call::GetBuffer).unwrap();
        g.on(Call::ResumeWriting).unwrap();
        g.on(Call::BufferUpdated {
            n: 3,
            spare_ok: true,
        })
        .unwrap();
        assert!(
            g.on(Call::BufferUpdated {
                n: 3,
                spare_ok: true
            })
            .is_err()
        );
        g.on(Call::Eof).unwrap();
        assert!(g.on(Call::Data(1)).is_err());
        assert!(g.on(Call::Eof).is_err());
        assert!(g.finish().is_err());
        g.on(Call::Lost).unwrap();
        assert!(g.on(Call::ResumeWriting).is_err());
        assert!(g.on(Call::Lost).is_err());
        assert!(g.is_lost());
    }
}
