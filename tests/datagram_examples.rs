//! The UDP echo examples against the asyncio documentation's originals
//! (`tests/python/udp_echo_{server,client}.py`, run by `python3`), on
//! loopback:
//!
//! * Python client + Python server: the reference output, checked against
//!   the lines the documentation's code prints.
//! * Python client + `udp_echo_server`, `udp_echo_client` + Python server,
//!   and the two Rust examples together: each side prints exactly the
//!   reference's lines (the client's ephemeral port aside).
//!
//! The example binaries are the ones `cargo test` builds next to this test
//! (`<target>/debug/examples/`). Without `python3` the Python sessions are
//! skipped, and a note on stderr says so (visible in a plain `cargo test`),
//! unless `TOKIO_TRANSPORTS_REQUIRE_PYTHON=1` makes that a failure.
//!
//! A server is ready once its socket shows up in `/proc/net/udp` (the
//! Python server prints "Starting UDP server" before it binds, so the line
//! alone is no signal); a client run ends when the process exits. Every
//! child process is killed when its guard drops, on every path.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::{Duration, Instant};

mod peers;

use peers::{example, python, read_all};

/// What the documentation's UDP echo server prints for one client
/// (`PORT`: the client's ephemeral port).
const SERVER_LINES: [&str; 3] = [
    "Starting UDP server",
    "Received 'Hello World!' from ('127.0.0.1', PORT)",
    "Send 'Hello World!' to ('127.0.0.1', PORT)",
];

/// What the documentation's UDP echo client prints.
const CLIENT_LINES: [&str; 4] = [
    "Send: Hello World!",
    "Received: Hello World!",
    "Close the socket",
    "Connection closed",
];

/// How long any one process may run before it is killed and the test fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
enum Peer {
    /// `tests/python/<name>.py`, run by `python3 -u`.
    Python(&'static str),
    /// `<target>/debug/examples/<name>`.
    Example(&'static str),
}

impl Peer {
    fn command(self, port: u16) -> Command {
        let mut cmd = match self {
            Peer::Python(name) => {
                let mut cmd = Command::new("python3");
                cmd.arg("-u").arg(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/python")
                        .join(format!("{name}.py")),
                );
                cmd
            }
            Peer::Example(name) => Command::new(example(name)),
        };
        cmd.arg("127.0.0.1")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// A child process, killed on drop; its output read on threads (stdout
/// line by line, as printed).
struct Running {
    child: Child,
    what: String,
    stdout: Receiver<String>,
    stderr: Receiver<Vec<u8>>,
}

fn read_lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    fn start(peer: Peer, port: u16) -> Running {
        let what = format!("{peer:?} on port {port}");
        let mut child = peer
            .command(port)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        Running {
            child,
            what,
            stdout,
            stderr,
        }
    }

    /// Wait for the process to exit by itself (killing it after
    /// [`PROCESS_TIMEOUT`]); its stdout lines.
    fn wait(mut self) -> Vec<String> {
        // The process's pipes close when it exits; the stderr reader sends
        // its bytes then, so this waits on that event, not on a timer.
        let err = match self.stderr.recv_timeout(PROCESS_TIMEOUT) {
            Ok(err) => err,
            Err(_) => {
                let what = self.what.clone();
                let out = self.kill_and_collect();
                panic!("{what} did not exit within {PROCESS_TIMEOUT:?}; it printed {out:?}");
            }
        };
        let status = self.child.wait().expect("wait");
        let out: Vec<String> = self.stdout.iter().collect();
        assert!(
            status.success(),
            "{} failed: {status}\n{out:?}\n{}",
            self.what,
            String::from_utf8_lossy(&err)
        );
        out
    }

    /// Kill the process (a server) and return its stdout lines.
    fn kill_and_collect(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.collect().0
    }

    /// Everything printed until the pipes closed (the process exited).
    fn collect(&mut self) -> (Vec<String>, String) {
        let out = self.stdout.iter().collect();
        let err = self
            .stderr
            .recv_timeout(PROCESS_TIMEOUT)
            .unwrap_or_default();
        (out, String::from_utf8_lossy(&err).into_owned())
    }

    /// The next line printed, waiting at most [`PROCESS_TIMEOUT`].
    fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(PROCESS_TIMEOUT)
            .unwrap_or_else(|e| panic!("no line from {}: {e}", self.what))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (Linux's `/proc/net/udp`).
fn udp_bound(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// Run `server` on a free port, wait until it is bound, run `client` to
/// completion, stop the server; what each printed.
fn session(server: Peer, client: Peer) -> (Vec<String>, Vec<String>) {
    let port = free_port();
    let mut srv = Running::start(server, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !udp_bound(port) {
        if let Some(status) = srv.child.try_wait().expect("try_wait") {
            panic!("{server:?} exited early ({status}): {:?}", srv.collect());
        }
        assert!(
            Instant::now() < deadline,
            "{server:?} never bound port {port}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let client_out = Running::start(client, port).wait();
    // The server printed before it echoed, and the client exits only after
    // the echo arrived: everything is in the pipe by now.
    let server_out = srv.kill_and_collect();
    (server_out, client_out)
}

/// Replace the client's ephemeral port in `('127.0.0.1', 54321)` by `PORT`.
fn normalize(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.find("('127.0.0.1', ") {
            Some(i) => {
                let start = i + "('127.0.0.1', ".len();
                let end = l[start..].find(')').map_or(l.len(), |j| start + j);
                assert!(l[start..end].parse::<u16>().is_ok(), "not a port in {l:?}");
                format!("{}PORT{}", &l[..start], &l[end..])
            }
            None => l.clone(),
        })
        .collect()
}

fn check(server: Peer, client: Peer) {
    let (server_out, client_out) = session(server, client);
    assert_eq!(
        normalize(&server_out),
        SERVER_LINES,
        "{server:?} serving {client:?}"
    );
    assert_eq!(client_out, CLIENT_LINES, "{client:?} against {server:?}");
}

#[test]
fn python_reference_pair_prints_the_documented_lines() {
    if python().is_some() {
        check(
            Peer::Python("udp_echo_server"),
            Peer::Python("udp_echo_client"),
        );
    }
}

#[test]
fn python_client_against_udp_echo_server() {
    if python().is_some() {
        check(
            Peer::Example("udp_echo_server"),
            Peer::Python("udp_echo_client"),
        );
    }
}

#[test]
fn udp_echo_client_against_python_server() {
    if python().is_some() {
        check(
            Peer::Python("udp_echo_server"),
            Peer::Example("udp_echo_client"),
        );
    }
}

#[test]
fn udp_echo_client_against_udp_echo_server() {
    check(
        Peer::Example("udp_echo_server"),
        Peer::Example("udp_echo_client"),
    );
}

#[test]
fn udp_echo_client_reports_a_refused_port_and_keeps_waiting() {
    // Nothing listens: the client's datagram comes back as an ICMP port
    // unreachable, which its error_received prints; the documentation's
    // client then keeps waiting for an answer (it is killed here).
    let client = Running::start(Peer::Example("udp_echo_client"), free_port());
    assert_eq!(client.next_line(), "Send: Hello World!");
    let line = client.next_line();
    assert!(
        line.starts_with("Error received: Connection refused"),
        "{line:?}"
    );
    let mut client = client;
    assert!(
        client.child.try_wait().expect("try_wait").is_none(),
        "the client must keep waiting, as the Python one does"
    );
    assert_eq!(client.kill_and_collect(), Vec::<String>::new());
}
