//! What the real-peer tests (`python_peers.rs`, `datagram_examples.rs`)
//! share: finding python3 (or skipping), finding the example binaries cargo
//! built (refusing stale ones), and reading a child's pipe on a thread.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::thread;

/// Run an example with no input to its end and return what it printed;
/// panics (with its stderr) if it fails or takes longer than `limit`.
pub fn run_example(name: &str, limit: std::time::Duration) -> String {
    let mut child = Command::new(example(name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = read_all(child.stdout.take().expect("piped stdout"));
    let err = read_all(child.stderr.take().expect("piped stderr"));
    let out = out
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{name} did not finish"));
    let status = child.wait().unwrap_or_else(|e| panic!("{name}: {e}"));
    let err = err.recv_timeout(limit).unwrap_or_default();
    assert!(
        status.success(),
        "{name}: {status}: {}",
        String::from_utf8_lossy(&err)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Read a pipe to its end on a thread; the result arrives on the channel.
pub fn read_all(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// The Python interpreter, or `None` to skip (with a note on stderr, once
/// per test binary, visible in a plain `cargo test`); a failure instead when
/// `TOKIO_TRANSPORTS_REQUIRE_PYTHON` is set.
pub fn python() -> Option<&'static str> {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        Command::new("python3")
            .arg("-c")
            .arg("import sys, asyncio; sys.exit(sys.version_info < (3, 7))")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found {
        return Some("python3");
    }
    let required = std::env::var_os("TOKIO_TRANSPORTS_REQUIRE_PYTHON")
        .is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "python3 (3.7 or later) is required (TOKIO_TRANSPORTS_REQUIRE_PYTHON is set) but was not found"
    );
    // Written to the process's stderr itself, not through `eprintln!`, which
    // the test harness captures (and shows only for failing tests): a plain
    // `cargo test` must say that these tests passed without running.
    static NOTED: std::sync::Once = std::sync::Once::new();
    NOTED.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "note: python3 (3.7 or later) not found: the Python peer tests in this binary pass without running \
             (set TOKIO_TRANSPORTS_REQUIRE_PYTHON=1 to make that a failure)"
        );
    });
    None
}

pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(format!("{name}.py"))
}

/// The example binary `cargo test` built next to this test executable
/// (`<target>/<profile>/deps/<test>-*` → `<target>/<profile>/examples/`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "example binary {} not found: run `cargo test` (which builds the examples) \
             or `cargo build --examples` first",
            bin.display()
        );
    };
    // `cargo test --test <name>` does not rebuild examples: refuse to
    // test a binary older than its own sources (cargo's dep-info lists them)
    // or than the library it links (the newest `libtokio_transports-*.rlib`
    // next to this test; comparing with the library's sources instead would
    // fail whenever a source is edited while the tests run).
    let examples_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut inputs: Vec<PathBuf> = match std::fs::read_to_string(bin.with_extension("d")) {
        Ok(text) => dep_info_sources(&text)
            .into_iter()
            .filter(|p| p.starts_with(&examples_dir))
            .collect(),
        Err(_) => vec![examples_dir.join(format!("{name}.rs"))],
    };
    if let Ok(entries) = std::fs::read_dir(profile_dir.join("deps")) {
        inputs.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with("libtokio_transports-") && n.ends_with(".rlib")
                    })
                }),
        );
    }
    for input in inputs {
        // A source listed but gone since (renamed) cannot be newer.
        let Ok(changed) = std::fs::metadata(&input).and_then(|m| m.modified()) else {
            continue;
        };
        assert!(
            changed <= built,
            "{} is older than {}: run `cargo test` or `cargo build --examples` to rebuild it",
            bin.display(),
            input.display()
        );
    }
    bin
}

/// The sources a dep-info file (`target: src1 src2 ...`, spaces in paths
/// escaped as `\ `) lists for its first target.
pub fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let Some((_, deps)) = text.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    deps.replace("\\ ", "\0")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(s.replace('\0', " ")))
        .collect()
}
