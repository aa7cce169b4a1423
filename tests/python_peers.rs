//! Real peers over loopback: the asyncio documentation's examples, run by
//! `python3` (`tests/python/*.py`), against this crate's examples.
//!
//! * Python client + Python server: the reference output, checked against the
//!   lines the documentation's code prints.
//! * Python client + `tcp_echo_server` / `buffered_echo_server`, and
//!   `tcp_echo_client` + Python server: both sides must print exactly the
//!   reference's lines (the client's ephemeral port aside).
//! * `connect_existing_socket` against its Python original, and `echo_demo`
//!   running to completion.
//!
//! The example binaries are the ones `cargo test` builds next to this test
//! (`<target>/debug/examples/`). Without `python3` the Python tests are
//! skipped: they pass without running, and a note on stderr says so (visible
//! in a plain `cargo test`), unless `TOKIO_TRANSPORTS_REQUIRE_PYTHON=1` (CI
//! sets it) makes that a failure.
//!
//! Waiting is event-driven: a client run ends when the process exits; the only
//! retry is "is the server listening yet", a client refused with
//! `ConnectionRefused` being run again after a short back-off, for at most 10 s.
//! Every child process is killed when its guard drops, on every path.
#![cfg(all(feature = "tls", feature = "process", target_os = "linux"))]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

// The examples' helpers; their unit tests (Python's `repr`) run here.
#[path = "../examples/common/mod.rs"]
mod examples_common;
// The TLS examples' certificates, made here for the Python TLS server.
#[path = "../examples/common/tls.rs"]
mod examples_tls;
mod peers;

use peers::{dep_info_sources, example, python, python_script, read_all};

/// The lines the documentation's TCP echo server prints for one client
/// (`PORT`: the client's ephemeral port).
const SERVER_LINES: [&str; 4] = [
    "Connection from ('127.0.0.1', PORT)",
    "Data received: 'Hello World!'",
    "Send: 'Hello World!'",
    "Close the client socket",
];

/// The lines the documentation's TCP echo client prints.
const CLIENT_LINES: [&str; 3] = [
    "Data sent: 'Hello World!'",
    "Data received: 'Hello World!'",
    "The server closed the connection",
];

/// How long any one process may run before it is killed and the test fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client keeps retrying while the server is not listening yet.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

// ---- processes -------------------------------------------------------------

/// What a finished (or killed) process printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    /// Stdout's lines with ports in Python address tuples replaced by `PORT`.
    fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(normalize_ports).collect()
    }
}

/// A child process with its output collected by two reader threads. Dropping
/// it kills the process (if it still runs) and reaps it.
struct Running {
    what: String,
    child: Child,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<Vec<u8>>,
}

impl Running {
    fn start(mut cmd: Command, what: &str) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let stdout = read_all(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        Running {
            what: what.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// Whether the process has exited already.
    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Wait for the process to exit (its pipes close), for at most
    /// [`PROCESS_TIMEOUT`]; kill it and fail the test after that.
    fn wait(mut self) -> Output {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let stdout = recv_until(&self.stdout, deadline);
        let stderr = recv_until(&self.stderr, deadline);
        match (stdout, stderr) {
            (Some(stdout), Some(stderr)) => self.output(stdout, stderr),
            _ => {
                let what = self.what.clone();
                let out = self.kill();
                panic!("{what} did not exit within {PROCESS_TIMEOUT:?}; it printed {out:#?}");
            }
        }
    }

    /// Kill the process (a server serves forever) and collect its output.
    fn kill(mut self) -> Output {
        let _ = self.child.kill();
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let stdout = recv_until(&self.stdout, deadline).unwrap_or_default();
        let stderr = recv_until(&self.stderr, deadline).unwrap_or_default();
        self.output(stdout, stderr)
    }

    fn output(&mut self, stdout: Vec<u8>, stderr: Vec<u8>) -> Output {
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what));
        Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A no-op for a process already reaped (std never signals a reaped pid).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn recv_until(rx: &Receiver<Vec<u8>>, deadline: Instant) -> Option<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    rx.recv_timeout(left).ok()
}

// ---- peers -----------------------------------------------------------------

/// One side of an echo session.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// `tests/python/<name>.py`, run by `python3 -u`.
    Python(&'static str),
    /// `<target>/debug/examples/<name>`.
    Example(&'static str),
}

impl Peer {
    /// [`command`](Self::command) with the TLS examples' certificate
    /// directory.
    fn tls_command(self, args: &[&str], certs: &std::path::Path) -> Command {
        let mut cmd = self.command(args);
        cmd.env("TLS_ECHO_DIR", certs);
        cmd
    }

    fn command(self, args: &[&str]) -> Command {
        let mut cmd = match self {
            Peer::Python(name) => {
                let mut cmd = Command::new(python().expect("python3 was checked"));
                cmd.arg("-u").arg(python_script(name));
                cmd
            }
            Peer::Example(name) => Command::new(example(name)),
        };
        cmd.args(args);
        cmd
    }

    fn name(self) -> String {
        match self {
            Peer::Python(name) => format!("python3 tests/python/{name}.py"),
            Peer::Example(name) => format!("example {name}"),
        }
    }
}

/// A port that was free a moment ago (bound, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Run `server` on a free port, then `client` against it, and return what
/// each printed. The client is re-run while its connection is refused (the
/// server is not listening yet), for at most [`READY_TIMEOUT`].
fn echo_session(server: Peer, client: Peer) -> (Output, Output) {
    let port = free_port().to_string();
    let args = ["127.0.0.1", port.as_str()];
    let mut server_proc = Running::start(server.command(&args), &server.name());
    let started = Instant::now();
    let mut backoff = Duration::from_millis(10);
    let client_out = loop {
        let out = Running::start(client.command(&args), &client.name()).wait();
        let refused = !out.status.success() && out.stderr.contains("ConnectionRefused");
        if !refused {
            break out;
        }
        if server_proc.has_exited() {
            let out = server_proc.kill();
            panic!(
                "{} exited before accepting a connection: {out:#?}",
                server.name()
            );
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "{} was not listening on port {port} after {READY_TIMEOUT:?}; last client run: {out:#?}",
            server.name()
        );
        // Readiness probe only: the server is still starting up.
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    };
    // The server printed its lines before writing the echo the client waited
    // for, so they are all in the pipe by now.
    let server_out = server_proc.kill();
    (server_out, client_out)
}

/// Wait until `probe` (a connect that is closed at once) succeeds: the
/// server accepts. Fails the test if the server exits first or is not
/// listening after [`READY_TIMEOUT`].
fn wait_listening(server_proc: &mut Running, server: Peer, probe: impl Fn() -> bool) {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(10);
    while !probe() {
        if server_proc.has_exited() {
            panic!("{} exited before listening", server.name());
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "{} was not listening after {READY_TIMEOUT:?}",
            server.name()
        );
        // Readiness probe only: the server is still starting up.
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

/// [`echo_session`] over TLS: the certificates live in a fresh directory
/// (made here, and remade by a Rust server at its start), and the client is
/// started once the server accepts connections (a probe that connects and
/// closes: a failed handshake, which neither side prints).
fn tls_session(server: Peer, client: Peer) -> (Output, Output) {
    let certs = std::env::temp_dir().join(format!(
        "tt-tls-echo-{}-{}",
        std::process::id(),
        free_port()
    ));
    examples_tls::make_server_config_in(&certs).expect("test certificates");
    let port = free_port().to_string();
    let args = ["127.0.0.1", port.as_str()];
    let mut server_proc = Running::start(server.tls_command(&args, &certs), &server.name());
    let port_num: u16 = port.parse().expect("a port");
    wait_listening(&mut server_proc, server, || {
        std::net::TcpStream::connect(("127.0.0.1", port_num)).is_ok()
    });
    let client_out = Running::start(client.tls_command(&args, &certs), &client.name()).wait();
    let server_out = server_proc.kill();
    let _ = std::fs::remove_dir_all(&certs);
    (server_out, client_out)
}

/// An echo session over a Unix socket path: the server is started on a
/// fresh path, the client once something accepts there.
fn unix_session(server: Peer, client: Peer) -> (Output, Output) {
    let dir = std::env::temp_dir().join(format!(
        "tt-unix-echo-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("echo.sock");
    let path_arg = path.to_string_lossy().into_owned();
    let args = [path_arg.as_str()];
    let mut server_proc = Running::start(server.command(&args), &server.name());
    wait_listening(&mut server_proc, server, || {
        std::os::unix::net::UnixStream::connect(&path).is_ok()
    });
    let client_out = Running::start(client.command(&args), &client.name()).wait();
    let server_out = server_proc.kill();
    let _ = std::fs::remove_dir_all(&dir);
    (server_out, client_out)
}

/// The reference's server lines over a Unix socket: the client's address
/// is the empty name (Python's `str()` of `''`).
const UNIX_SERVER_LINES: [&str; 4] = [
    "Connection from ",
    "Data received: 'Hello World!'",
    "Send: 'Hello World!'",
    "Close the client socket",
];

/// Check one Unix echo session against the reference lines (the probe
/// connection the harness made first prints a line of its own on the
/// server, which is skipped).
fn check_unix_session(server: Peer, client: Peer) {
    let (server_out, client_out) = unix_session(server, client);
    assert!(
        client_out.status.success(),
        "{} failed: {client_out:#?}",
        client.name()
    );
    assert_eq!(client_out.stderr, "", "{}: {client_out:#?}", client.name());
    assert_eq!(client_out.lines(), CLIENT_LINES, "{}", client.name());
    let lines = server_out.lines();
    let session: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l == UNIX_SERVER_LINES[0])
        .collect();
    assert_eq!(
        session,
        &UNIX_SERVER_LINES[1..],
        "{}: {server_out:#?}",
        server.name()
    );
    assert!(lines.iter().any(|l| l == UNIX_SERVER_LINES[0]));
}

/// Check one TLS echo session: both sides print the TCP reference's lines.
fn check_tls_session(server: Peer, client: Peer) {
    let (server_out, client_out) = tls_session(server, client);
    assert!(
        client_out.status.success(),
        "{} failed: {client_out:#?}",
        client.name()
    );
    assert_eq!(client_out.stderr, "", "{}: {client_out:#?}", client.name());
    assert_eq!(server_out.stderr, "", "{}: {server_out:#?}", server.name());
    assert_eq!(server_out.lines(), SERVER_LINES, "{}", server.name());
    assert_eq!(client_out.lines(), CLIENT_LINES, "{}", client.name());
}

/// Replace the port in Python address tuples, `('127.0.0.1', 54321)`, with
/// `PORT`.
fn normalize_ports(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("', ") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str("PORT");
            rest = &tail[digits..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The Python server and client together, once per test process: what the
/// documentation's code really prints. Checked against the constants.
fn reference() -> &'static (Vec<String>, Vec<String>) {
    static REFERENCE: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let (server, client) = echo_session(
            Peer::Python("tcp_echo_server"),
            Peer::Python("tcp_echo_client"),
        );
        assert!(client.status.success(), "Python client failed: {client:#?}");
        assert_eq!(server.stderr, "", "Python server: {server:#?}");
        assert_eq!(client.stderr, "", "Python client: {client:#?}");
        let (server, client) = (server.lines(), client.lines());
        assert_eq!(server, SERVER_LINES, "the Python reference server's output");
        assert_eq!(client, CLIENT_LINES, "the Python reference client's output");
        (server, client)
    })
}

/// Run one echo session and check both sides print exactly what the
/// reference pair prints.
fn check_session(server: Peer, client: Peer) {
    let (reference_server, reference_client) = reference();
    let (server_out, client_out) = echo_session(server, client);
    assert!(
        client_out.status.success(),
        "{} failed: {client_out:#?}",
        client.name()
    );
    assert_eq!(client_out.stderr, "", "{}: {client_out:#?}", client.name());
    assert_eq!(server_out.stderr, "", "{}: {server_out:#?}", server.name());
    assert_eq!(
        &server_out.lines(),
        reference_server,
        "{} (serving {})",
        server.name(),
        client.name()
    );
    assert_eq!(
        &client_out.lines(),
        reference_client,
        "{} (against {})",
        client.name(),
        server.name()
    );
}

// ---- tests -----------------------------------------------------------------

#[test]
fn python_reference_pair_prints_the_documented_lines() {
    if python().is_none() {
        return;
    }
    let (server, client) = reference();
    assert_eq!(server, &SERVER_LINES);
    assert_eq!(client, &CLIENT_LINES);
}

#[test]
fn python_client_against_tcp_echo_server() {
    if python().is_none() {
        return;
    }
    check_session(
        Peer::Example("tcp_echo_server"),
        Peer::Python("tcp_echo_client"),
    );
}

#[test]
fn tcp_echo_client_against_python_server() {
    if python().is_none() {
        return;
    }
    check_session(
        Peer::Python("tcp_echo_server"),
        Peer::Example("tcp_echo_client"),
    );
}

#[test]
fn python_client_against_buffered_echo_server() {
    if python().is_none() {
        return;
    }
    check_session(
        Peer::Example("buffered_echo_server"),
        Peer::Python("tcp_echo_client"),
    );
}

#[test]
fn tcp_echo_client_against_tcp_echo_server() {
    // No Python needed: compared with the documented lines.
    let (server_out, client_out) = echo_session(
        Peer::Example("tcp_echo_server"),
        Peer::Example("tcp_echo_client"),
    );
    assert!(client_out.status.success(), "{client_out:#?}");
    assert_eq!(client_out.stderr, "", "{client_out:#?}");
    assert_eq!(server_out.stderr, "", "{server_out:#?}");
    assert_eq!(server_out.lines(), SERVER_LINES);
    assert_eq!(client_out.lines(), CLIENT_LINES);
}

#[test]
fn connect_existing_socket_prints_what_python_prints() {
    let ours = Running::start(
        Peer::Example("connect_existing_socket").command(&[]),
        "example connect_existing_socket",
    )
    .wait();
    assert!(ours.status.success(), "{ours:#?}");
    assert_eq!(ours.stderr, "", "{ours:#?}");
    assert_eq!(ours.stdout, "Received: abc\n");
    if python().is_none() {
        return;
    }
    let theirs = Running::start(
        Peer::Python("connect_existing_socket").command(&[]),
        "python3 tests/python/connect_existing_socket.py",
    )
    .wait();
    assert!(theirs.status.success(), "{theirs:#?}");
    assert_eq!(theirs.stderr, "", "{theirs:#?}");
    assert_eq!(ours.stdout, theirs.stdout);
}

#[test]
fn echo_demo_runs_to_completion() {
    let started = Instant::now();
    let out = Running::start(Peer::Example("echo_demo").command(&[]), "example echo_demo").wait();
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");
    let lines = out.lines();
    // Every callback the demo shows, in the order it must happen.
    let milestones = [
        "[client] connection_made: to ('127.0.0.1', PORT)",
        "[server] data_received: 'Hello World!' -> echo it",
        "[client] data_received: 'Hello World!'",
        "[client] pause_writing: write buffer over the high watermark",
        "[client] resume_writing: write buffer drained to the low watermark",
        "[main] all 2097152 bytes came back",
        "[server] eof_received: the client is done sending; answer and close",
        "[server] connection_lost: None (a clean close)",
        "[client] data_received: 'Bye!'",
        "[client] eof_received: the server closed; close too",
        "[client] connection_lost: None (a clean close)",
        "[main] both transports are closed",
    ];
    let mut at = 0;
    for m in milestones {
        match lines[at..].iter().position(|l| l == m) {
            Some(i) => at += i + 1,
            None => panic!(
                "echo_demo: {m:?} missing or out of order in:\n{}",
                out.stdout
            ),
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l == "[server] connection_made: from ('127.0.0.1', PORT)"),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("[main] server closed")),
        "{}",
        out.stdout
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "echo_demo took {:?}",
        started.elapsed()
    );
}

#[test]
fn dep_info_lists_sources() {
    let text = "/t/debug/examples/x: /w/examples/x.rs /w/my\\ dir/a.rs /w/src/lib.rs\n\n/w/examples/x.rs:\n";
    assert_eq!(
        dep_info_sources(text),
        [
            PathBuf::from("/w/examples/x.rs"),
            PathBuf::from("/w/my dir/a.rs"),
            PathBuf::from("/w/src/lib.rs"),
        ]
    );
}

#[test]
fn normalize_ports_replaces_only_tuple_ports() {
    assert_eq!(
        normalize_ports("Connection from ('127.0.0.1', 54321)"),
        "Connection from ('127.0.0.1', PORT)"
    );
    assert_eq!(
        normalize_ports("('::1', 8888, 0, 0)"),
        "('::1', 8888, 0, 0)"
    );
    assert_eq!(normalize_ports("plain"), "plain");
}

#[test]
fn tls_python_reference_pair_prints_the_documented_lines() {
    if python().is_none() {
        return;
    }
    check_tls_session(
        Peer::Python("tls_echo_server"),
        Peer::Python("tls_echo_client"),
    );
}

#[test]
fn tls_python_client_against_tls_echo_server() {
    if python().is_none() {
        return;
    }
    check_tls_session(
        Peer::Example("tls_echo_server"),
        Peer::Python("tls_echo_client"),
    );
}

#[test]
fn tls_echo_client_against_python_tls_server() {
    if python().is_none() {
        return;
    }
    check_tls_session(
        Peer::Python("tls_echo_server"),
        Peer::Example("tls_echo_client"),
    );
}

#[test]
fn tls_echo_client_against_tls_echo_server() {
    check_tls_session(
        Peer::Example("tls_echo_server"),
        Peer::Example("tls_echo_client"),
    );
}

#[test]
fn starttls_runs_to_completion() {
    let certs = std::env::temp_dir().join(format!("tt-starttls-{}", std::process::id()));
    let mut cmd = Peer::Example("starttls").command(&[]);
    cmd.env("TLS_ECHO_DIR", &certs);
    let out = Running::start(cmd, "example starttls").wait();
    let _ = std::fs::remove_dir_all(&certs);
    assert!(out.status.success(), "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");
    for line in [
        "[client] got: \"220 ready (plaintext)\"",
        "[server] got: \"STARTTLS\"",
        "[client] got: \"220 go ahead\"",
        "[client] TLS is up: TLSv1_3",
        "[server] TLS is up: TLSv1_3",
        "[server] got: \"EHLO client.example\"",
        "[client] got: \"250 hello, this line was encrypted\"",
        "[client] connection_lost: None",
        "[server] connection_lost: None",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "{line:?} missing in:\n{}",
            out.stdout
        );
    }
}

#[test]
fn unix_echo_client_against_unix_echo_server() {
    check_unix_session(
        Peer::Example("unix_echo_server"),
        Peer::Example("unix_echo_client"),
    );
}

#[test]
fn python_unix_client_against_unix_echo_server() {
    if python().is_none() {
        return;
    }
    check_unix_session(
        Peer::Example("unix_echo_server"),
        Peer::Python("unix_echo_client"),
    );
}

#[test]
fn unix_echo_client_against_python_unix_server() {
    if python().is_none() {
        return;
    }
    check_unix_session(
        Peer::Python("unix_echo_server"),
        Peer::Example("unix_echo_client"),
    );
}

#[test]
fn python_unix_reference_pair() {
    if python().is_none() {
        return;
    }
    check_unix_session(
        Peer::Python("unix_echo_server"),
        Peer::Python("unix_echo_client"),
    );
}

/// "Current date: YYYY-MM-DD HH:MM:SS.ffffff" (Python's `datetime.now()`).
fn is_date_line(line: &str) -> bool {
    let Some(date) = line.strip_prefix("Current date: ") else {
        return false;
    };
    let shape: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    shape == "9999-99-99 99:99:99.999999" || shape == "9999-99-99 99:99:99"
}

#[test]
fn subprocess_date_prints_what_python_prints() {
    let ours = Running::start(
        Peer::Example("subprocess_date").command(&[]),
        "example subprocess_date",
    )
    .wait();
    assert!(ours.status.success(), "{ours:#?}");
    assert_eq!(ours.stderr, "", "{ours:#?}");
    let lines: Vec<&str> = ours.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{ours:#?}");
    assert!(is_date_line(lines[0]), "{ours:#?}");
    if python().is_none() {
        return;
    }
    let theirs = Running::start(
        Peer::Python("subprocess_date").command(&[]),
        "python3 tests/python/subprocess_date.py",
    )
    .wait();
    assert!(theirs.status.success(), "{theirs:#?}");
    let their_lines: Vec<&str> = theirs.stdout.lines().collect();
    assert_eq!(their_lines.len(), 1, "{theirs:#?}");
    assert!(is_date_line(their_lines[0]), "{theirs:#?}");
}
