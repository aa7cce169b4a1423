//! Helpers shared by the examples (not an example itself: cargo only builds
//! `examples/*.rs` and `examples/*/main.rs`).
//!
//! * [`host_port`]: the address convention every example uses:
//!   `cargo run --example NAME -- [HOST [PORT]]`, defaulting to
//!   `127.0.0.1 8888` like the asyncio documentation's examples.
//! * [`py_repr`]: Python's `repr()` of a `str`, so that `print('{!r}'.format(s))`
//!   translates to `println!("{}", py_repr(s))` with the same output.

// Each example uses only some of these helpers.
#![allow(dead_code)]

use std::io;

/// The default host of the asyncio documentation's examples.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The default port of the asyncio documentation's examples.
pub const DEFAULT_PORT: u16 = 8888;

/// `[HOST [PORT]]` from the command line, defaulting to `127.0.0.1 8888`.
pub fn host_port() -> io::Result<(String, u16)> {
    parse_host_port(std::env::args().skip(1))
}

/// `[PATH]` from the command line for the Unix examples, defaulting to
/// `tokio-transports-echo.sock` in the temporary directory.
pub fn unix_path() -> io::Result<std::path::PathBuf> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tokio-transports-echo.sock"));
    if let Some(extra) = args.next() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unexpected argument {extra:?} (usage: [PATH])"),
        ));
    }
    Ok(path)
}

/// [`host_port`] with another default port (the TLS examples: 8443).
pub fn host_port_or(default_port: u16) -> io::Result<(String, u16)> {
    parse_host_port_or(std::env::args().skip(1), default_port)
}

/// [`host_port`] on an explicit argument list (without the program name).
pub fn parse_host_port(args: impl IntoIterator<Item = String>) -> io::Result<(String, u16)> {
    parse_host_port_or(args, DEFAULT_PORT)
}

/// [`parse_host_port`] with another default port.
pub fn parse_host_port_or(
    args: impl IntoIterator<Item = String>,
    default_port: u16,
) -> io::Result<(String, u16)> {
    let mut args = args.into_iter();
    let host = args.next().unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = match args.next() {
        None => default_port,
        Some(p) => p.parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port {p:?}: {e} (usage: [HOST [PORT]])"),
            )
        })?,
    };
    if let Some(extra) = args.next() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unexpected argument {extra:?} (usage: [HOST [PORT]])"),
        ));
    }
    Ok((host, port))
}

/// Python's `repr()` of a `str`: single quotes unless the text contains `'`
/// and no `"`; `\\`, `\n`, `\r`, `\t` and the quote escaped; other control and
/// non-printable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
///
/// Printability follows Python for every assigned character; unassigned
/// code points (which Python escapes) print unescaped here.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let n = u32::from(c);
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

/// The non-printable characters beyond ASCII, as inclusive ranges: Python's
/// `str.isprintable()` is false for categories Cc, Cf, Cs, Co, Zl, Zp, Zs
/// (except the space) and Cn (unassigned). These are every assigned one
/// (Unicode 14/15) plus the unassigned noncharacters; other unassigned code
/// points are not listed, since typical text has none.
const NON_PRINTABLE: [(u32, u32); 25] = [
    (0x0080, 0x00a0), // C1 controls, no-break space
    (0x00ad, 0x00ad), // soft hyphen
    (0x0600, 0x0605), // Arabic number signs
    (0x061c, 0x061c),
    (0x06dd, 0x06dd),
    (0x070f, 0x070f),
    (0x0890, 0x0891),
    (0x08e2, 0x08e2),
    (0x1680, 0x1680), // ogham space mark
    (0x180e, 0x180e),
    (0x2000, 0x200f), // spaces, zero-width characters, direction marks
    (0x2028, 0x202f), // line and paragraph separators, embeddings
    (0x205f, 0x206f), // invisible operators, isolates
    (0x3000, 0x3000), // ideographic space
    (0xd800, 0xf8ff), // surrogates, private use
    (0xfeff, 0xfeff), // byte order mark
    (0xfff9, 0xfffb), // interlinear annotations
    (0xfffe, 0xffff), // noncharacters
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x13438),  // Egyptian hieroglyph format controls
    (0x1bca0, 0x1bca3),  // shorthand format controls
    (0x1d173, 0x1d17a),  // musical symbol format controls
    (0xe0001, 0xe007f),  // tags
    (0xf0000, 0x10ffff), // private use planes
];

/// Python's `str.isprintable()` for one character (see [`NON_PRINTABLE`]).
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let n = u32::from(c);
    !NON_PRINTABLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&n))
}

#[cfg(test)]
mod tests {
    // Run with `cargo test --example tcp_echo_server`.
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("Hello World!"), "'Hello World!'");
        assert_eq!(py_repr(""), "''");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(py_repr("a\\b"), "'a\\\\b'");
        assert_eq!(py_repr("l1\nl2\r\n\t"), "'l1\\nl2\\r\\n\\t'");
        assert_eq!(py_repr("\0\x07\x7f"), "'\\x00\\x07\\x7f'");
        assert_eq!(py_repr("héllo wörld ☃ 日本"), "'héllo wörld ☃ 日本'");
        assert_eq!(py_repr("\u{a0}\u{85}"), "'\\xa0\\x85'");
        assert_eq!(py_repr("\u{200b}\u{2028}"), "'\\u200b\\u2028'");
        assert_eq!(py_repr("\u{f0000}"), "'\\U000f0000'");
        assert_eq!(py_repr("😀"), "'😀'");
        assert_eq!(py_repr("\u{fffd}"), "'\u{fffd}'");
    }

    #[test]
    fn host_port_defaults_and_overrides() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_host_port(args(&[])).unwrap(),
            ("127.0.0.1".to_string(), 8888)
        );
        assert_eq!(
            parse_host_port(args(&["::1"])).unwrap(),
            ("::1".to_string(), 8888)
        );
        assert_eq!(
            parse_host_port(args(&["localhost", "9000"])).unwrap(),
            ("localhost".to_string(), 9000)
        );
        assert!(parse_host_port(args(&["h", "x"])).is_err());
        assert!(parse_host_port(args(&["h", "1", "2"])).is_err());
    }
}
