//! Write flow control and the callback panic rule, shared by every kind of
//! transport (asyncio's `_FlowControlMixin`), so that stream and datagram
//! transports cannot drift apart.
//!
//! * [`FlowControl`]: the watermarks and the paused-writing flag. It says
//!   when `pause_writing` is due (the buffer went strictly over the high
//!   watermark, not paused yet) and when `resume_writing` is due (paused,
//!   and the buffer is at or below the low watermark). Each state machine
//!   feeds it its own buffer size and turns its answers into its own events.
//! * [`on_panic`]: what a panicking callback does, by asyncio's rules for
//!   that kind of transport, and [`report_panic`], which tells the exception
//!   handler in asyncio's words.

use std::any::Any;
use std::net::SocketAddr;

use crate::WriteLimits;
use crate::error::CallbackPanicked;
use crate::exception::{ExceptionContext, call_exception_handler};

/// The watermarks and the paused-writing flag of one transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowControl {
    limits: WriteLimits,
    paused: bool,
    /// CPython's TLS rule: pause when the buffer *reaches* the high
    /// watermark (`>=`), not only when it goes over it.
    pause_at_high: bool,
}

impl FlowControl {
    pub(crate) fn new(limits: WriteLimits) -> Self {
        FlowControl {
            limits,
            paused: false,
            pause_at_high: false,
        }
    }

    /// Switch to CPython's TLS pause rule (`size >= high`).
    pub(crate) fn use_tls_rule(&mut self) {
        self.pause_at_high = true;
    }

    /// Whether `pause_writing` is due with `size` bytes buffered: strictly
    /// over the high watermark and not paused yet. Flips the flag when so
    /// (asyncio flips it before calling the protocol).
    #[inline]
    pub(crate) fn pause_due(&mut self, size: usize) -> bool {
        let over = if self.pause_at_high {
            size >= self.limits.high && size > 0
        } else {
            size > self.limits.high
        };
        if !self.paused && over {
            self.paused = true;
            return true;
        }
        false
    }

    /// Whether `resume_writing` is due with `size` bytes buffered: paused,
    /// and at or below the low watermark. Flips the flag when so.
    #[inline]
    pub(crate) fn resume_due(&mut self, size: usize) -> bool {
        if self.paused && size <= self.limits.low {
            self.paused = false;
            return true;
        }
        false
    }

    /// New watermarks. As in asyncio, only a pause can follow at once (the
    /// caller checks [`pause_due`](Self::pause_due)); a resume waits for the
    /// next drain.
    pub(crate) fn set_limits(&mut self, limits: WriteLimits) {
        self.limits = limits;
    }

    pub(crate) fn limits(&self) -> WriteLimits {
        self.limits
    }

    /// Whether writing is paused (`pause_writing` is due or was delivered,
    /// and `resume_writing` is not yet).
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }
}

/// Which kind of transport a callback belongs to: asyncio's panic rules
/// differ between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Stream,
    Datagram,
}

/// What a panic in a protocol callback does to its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnPanic {
    /// Reported; the transport is aborted and `connection_lost` gets the
    /// panic as its error.
    Fatal,
    /// Reported; nothing else changes.
    Report,
}

/// asyncio's rule for a failure in callback `name` (see the parity table):
/// `pause_writing`, `resume_writing` and `connection_lost` are only
/// reported, for every kind of transport (the paused flag has already
/// flipped, and `resume_writing` still comes later); a datagram endpoint
/// also survives failures in `datagram_received` and `error_received`.
/// Anything else is fatal: the reading callbacks of a stream, and
/// `connection_made` (a protocol that could not set itself up gets no data).
pub(crate) fn on_panic(kind: Kind, name: &str) -> OnPanic {
    match (kind, name) {
        (_, "pause_writing" | "resume_writing" | "connection_lost") => OnPanic::Report,
        (Kind::Datagram, "connection_made") => OnPanic::Fatal,
        (Kind::Datagram, _) => OnPanic::Report,
        (Kind::Stream, _) => OnPanic::Fatal,
    }
}

/// Tell the exception handler that callback `name` panicked, in asyncio's
/// words for that case; returns the error describing the panic.
pub(crate) fn report_panic(
    kind: Kind,
    name: &'static str,
    payload: &(dyn Any + Send),
    peername: Option<SocketAddr>,
    sockname: Option<SocketAddr>,
) -> CallbackPanicked {
    let err = CallbackPanicked::from_payload(name, payload);
    let text = match (name, on_panic(kind, name)) {
        ("pause_writing" | "resume_writing", _) => format!("protocol.{name}() failed"),
        (_, OnPanic::Fatal) => format!("Fatal error: protocol.{name}() call failed."),
        (_, OnPanic::Report) => format!("protocol.{name}() call failed."),
    };
    call_exception_handler(
        &ExceptionContext::new(&text)
            .with_error(&err)
            .with_peername(peername)
            .with_sockname(sockname),
    );
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_strictly_over_high_resume_at_or_below_low_alternating() {
        let mut fc = FlowControl::new(WriteLimits::new(Some(100), Some(10)).unwrap());
        assert!(!fc.pause_due(100), "equal to high does not pause");
        assert!(!fc.resume_due(0), "not paused: nothing to resume");
        assert!(fc.pause_due(101));
        assert!(fc.is_paused());
        assert!(!fc.pause_due(1000), "once per pause");
        assert!(!fc.resume_due(11));
        assert!(fc.resume_due(10));
        assert!(!fc.resume_due(0), "once per resume");
        assert!(fc.pause_due(101), "pauses again after a resume");
    }

    #[test]
    fn the_tls_rule_pauses_at_the_high_watermark() {
        let limits = WriteLimits::new(Some(100), Some(10)).unwrap();
        let mut plain = FlowControl::new(limits);
        assert!(!plain.pause_due(100), "plain: strictly over");
        let mut tls = FlowControl::new(limits);
        tls.use_tls_rule();
        assert!(tls.pause_due(100), "TLS: at the high watermark");
        assert!(tls.resume_due(10));
    }

    #[test]
    fn new_limits_take_effect_for_the_next_check() {
        let mut fc = FlowControl::new(WriteLimits::default());
        assert!(!fc.pause_due(1000));
        fc.set_limits(WriteLimits::new(Some(500), None).unwrap());
        assert_eq!(fc.limits().low, 125);
        assert!(fc.pause_due(1000));
        fc.set_limits(WriteLimits::default());
        assert!(
            fc.is_paused(),
            "loosening the limits never resumes by itself"
        );
        assert!(fc.resume_due(1000));
    }

    #[test]
    fn the_panic_rule_is_asyncios() {
        for kind in [Kind::Stream, Kind::Datagram] {
            for name in ["pause_writing", "resume_writing", "connection_lost"] {
                assert_eq!(on_panic(kind, name), OnPanic::Report, "{kind:?} {name}");
            }
            assert_eq!(on_panic(kind, "connection_made"), OnPanic::Fatal);
        }
        for name in [
            "data_received",
            "eof_received",
            "get_buffer",
            "buffer_updated",
        ] {
            assert_eq!(on_panic(Kind::Stream, name), OnPanic::Fatal, "{name}");
        }
        for name in ["datagram_received", "error_received"] {
            assert_eq!(on_panic(Kind::Datagram, name), OnPanic::Report, "{name}");
        }
    }
}
