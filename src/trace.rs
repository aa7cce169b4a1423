//! Tracing: one span per transport and per server, and the debug events the
//! tasks emit in them (made, lost, pauses and resumes, TLS handshakes).
//!
//! Spans are at DEBUG level and their fields are only formatted when a
//! subscriber wants them: with no subscriber (or one filtering DEBUG out) a
//! span is `Span::none()` and an event is a check of its call site's cached
//! interest. A transport's task enters its span while it runs (only if the
//! span is enabled), so events from the protocol's own callbacks land in it
//! too. [`Transport::span`](crate::Transport::span) hands it out for tasks of
//! the application's that belong to the connection.

use std::fmt;

use tracing::Span;
use tracing::field::Empty;

use crate::extra::{Extra, SocketAddress};

/// A socket address for a span field: `127.0.0.1:8888`, `[::1]:8888`, or a
/// Unix path (empty when unnamed).
struct Addr<'a>(&'a SocketAddress);

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddress::Inet(a) => write!(f, "{a}"),
            other => write!(f, "{other}"),
        }
    }
}

/// The span of one transport: `kind` (`tcp`, `unix`, `pipe`, `io`, `udp`,
/// `unix-datagram`), `tls`, and the peer and local addresses when known.
pub(crate) fn transport_span(kind: &'static str, tls: bool, extra: &Extra) -> Span {
    let span = tracing::debug_span!("transport", kind, tls, peer = Empty, local = Empty);
    if !span.is_disabled() {
        if let Some(peer) = &extra.peername {
            span.record("peer", tracing::field::display(Addr(peer)));
        }
        if let Some(local) = &extra.sockname {
            span.record("local", tracing::field::display(Addr(local)));
        }
    }
    span
}

/// The span of a server: its listening addresses.
pub(crate) fn server_span(addrs: &[SocketAddress]) -> Span {
    let span = tracing::debug_span!("server", listen = Empty);
    if !span.is_disabled() {
        let list: Vec<String> = addrs.iter().map(|a| Addr(a).to_string()).collect();
        span.record("listen", tracing::field::display(list.join(", ")));
    }
    span
}

/// The kind of a stream transport, from what it knows of itself.
pub(crate) fn stream_kind(extra: &Extra, one_way: bool) -> &'static str {
    if one_way {
        return "pipe";
    }
    match extra.peername.as_ref().or(extra.sockname.as_ref()) {
        Some(SocketAddress::Inet(_)) => "tcp",
        Some(SocketAddress::Unix(_)) => "unix",
        None => "io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_for_logs_and_kinds_follow_the_addresses() {
        let inet = SocketAddress::Inet("127.0.0.1:8888".parse().unwrap());
        assert_eq!(Addr(&inet).to_string(), "127.0.0.1:8888");
        let v6 = SocketAddress::Inet("[::1]:9".parse().unwrap());
        assert_eq!(Addr(&v6).to_string(), "[::1]:9");
        let unix = SocketAddress::Unix(Some("/tmp/s".into()));
        assert_eq!(Addr(&unix).to_string(), "/tmp/s");
        let tcp = Extra::new(Some(inet), None, None);
        assert_eq!(stream_kind(&tcp, false), "tcp");
        assert_eq!(stream_kind(&tcp, true), "pipe");
        let u = Extra::new(None, Some(unix), None);
        assert_eq!(stream_kind(&u, false), "unix");
        assert_eq!(stream_kind(&Extra::default(), false), "io");
    }
}
