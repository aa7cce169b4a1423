//! The event log, from the public test kit ([`tokio_transports::testing`]):
//! [`Ev`] (one recorded callback), [`LostInfo`], [`Log`] (one connection's
//! events, with waits guarded by a 10 s timeout), [`received_in`],
//! [`received_len`]; plus [`index_of`] over event slices.

pub use tokio_transports::testing::{Event as Ev, Log, LostInfo, received_in, received_len};

/// Index of the first event matching `pred` (panics if none).
pub fn index_of(evs: &[Ev], pred: impl Fn(&Ev) -> bool) -> usize {
    evs.iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no such event in {evs:?}"))
}
