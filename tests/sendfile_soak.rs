//! Stress: `sendfile` on many connections at once, every ending.
//!
//! A server on a two-worker runtime sends, on each connection, a header,
//! a random slice of one shared file with `sendfile` (native on TCP), a
//! trailer, then closes; its clients are raw tokio sockets. Each
//! connection's plan picks an ending: a clean one (the client checks every
//! byte), the server aborting during the send, the server closing during
//! the send (the file still finishes, then the trailer), the client
//! resetting during the send, or the server's task giving up on the call
//! (its future dropped). Socket buffers are small and the server acts
//! once the client has part of the file (a `Notify` per connection), so
//! those endings land during a send; the test counts the sends they cut
//! short and requires some. Afterwards: every server-side callback grammar
//! holds, every transfer is byte-exact (whole, or a prefix where it was
//! cut), and the process's open-fd count is back to its baseline once the
//! server is closed.
//!
//! Settings: CI default (a few hundred connections, a second or two);
//! `TOKIO_TRANSPORTS_STRESS=long` for more; `TOKIO_TRANSPORTS_STRESS_SEED=<n>`
//! for another seed.

mod common;
mod stress;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::*;
use stress::{Rng, pick, seed};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_transports::testing::Event;
use tokio_transports::{ServerOptions, Transport, create_server, sendfile};

/// Connections in the long setting (and the most there are).
const MAX_CONNS: usize = 3000;

/// The shared file's size.
const FILE: usize = 2 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Clean,
    ServerAborts,
    ServerCloses,
    ClientResets,
    CallDropped,
}

const ENDINGS: [Ending; 5] = [
    Ending::Clean,
    Ending::ServerAborts,
    Ending::ServerCloses,
    Ending::ClientResets,
    Ending::CallDropped,
];

/// What one connection does: which slice, which ending.
#[derive(Clone, Copy, Debug)]
struct Plan {
    id: u64,
    offset: u64,
    len: u64,
    ending: Ending,
}

fn header(p: &Plan) -> Vec<u8> {
    format!("H{:08}:", p.id).into_bytes()
}

fn trailer(p: &Plan) -> Vec<u8> {
    format!(":T{:08}", p.id).into_bytes()
}

/// Bytes the clients received, for the summary.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// The client has this much of the file (or all of a shorter one) when it
/// tells the server to act (abort, close, drop the call).
const MIDWAY: usize = 16 * 1024;

/// One signal per connection: the client got `MIDWAY` bytes of the file.
fn midway(id: u64) -> &'static Notify {
    static SIGNALS: OnceLock<Vec<Notify>> = OnceLock::new();
    &SIGNALS.get_or_init(|| (0..MAX_CONNS).map(|_| Notify::new()).collect())[id as usize]
}

/// Aborted sends whose file was cut short, for the summary.
static ABORTED_SHORT: AtomicUsize = AtomicUsize::new(0);

/// Dropped calls whose file was cut short, for the summary.
static CUT_SHORT: AtomicUsize = AtomicUsize::new(0);

/// Server tasks still running.
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// The server side of one connection, run once the client's id arrived.
async fn serve(t: Transport, file: Arc<File>, p: Plan) {
    serve_plan(t, file, p).await;
    SERVING.fetch_sub(1, Ordering::SeqCst);
}

async fn serve_plan(t: Transport, file: Arc<File>, p: Plan) {
    // Small socket buffers (the client's too): a file of a few hundred KiB
    // cannot sit in the kernel at once, so the server acts during the send.
    let _ = t.with_socket(|s| s.set_send_buffer_size(16 * 1024));
    t.write(header(&p)).unwrap();
    match p.ending {
        Ending::Clean | Ending::ClientResets => {
            let _ = sendfile(&t, &*file, p.offset, Some(p.len), true).await;
            t.write(trailer(&p)).ok();
            t.close();
        }
        Ending::ServerAborts => {
            let mut send = Box::pin(sendfile(&t, &*file, p.offset, Some(p.len), true));
            // Abort once the client has some of the file (or after the
            // send, for a short one).
            let done = tokio::select! {
                _ = &mut send => true,
                _ = midway(p.id).notified() => false,
            };
            t.abort();
            if !done {
                let _ = send.await;
            }
        }
        Ending::ServerCloses => {
            let t2 = t.clone();
            let trailer = trailer(&p);
            let id = p.id;
            let closer = tokio::spawn(async move {
                // Once the client has some of the file: the send is under
                // way (or, for a short file, done).
                midway(id).notified().await;
                // Made during the send: held until the file is out.
                t2.write(trailer).ok();
                t2.close();
            });
            let r = sendfile(&t, &*file, p.offset, Some(p.len), true).await;
            assert_eq!(r.unwrap(), p.len, "plan {p:?}");
            let _ = closer.await;
        }
        Ending::CallDropped => {
            let mut send = Box::pin(sendfile(&t, &*file, p.offset, Some(p.len), true));
            tokio::select! {
                r = &mut send => { let _ = r; }
                _ = midway(p.id).notified() => {}
            }
            // The future is dropped here: the send stops, the protocol
            // comes back.
            drop(send);
            t.write(trailer(&p)).ok();
            t.close();
        }
    }
}

/// The client side: read everything, check what must be exact.
async fn client(port: u16, p: Plan, data: Arc<Vec<u8>>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = sock.connect(addr).await.unwrap();
    // The server's connection_made looks the plan up by this id.
    tokio::io::AsyncWriteExt::write_all(&mut s, &p.id.to_be_bytes())
        .await
        .unwrap();
    if p.ending == Ending::ClientResets {
        let mut head = vec![0u8; 64];
        let _ = s.read_exact(&mut head).await;
        set_reset_on_drop(&s);
        return;
    }
    let mut got = Vec::new();
    // Some of the file first (or the end), then the server may act.
    let want = header(&p).len() + (p.len as usize).min(MIDWAY);
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < want {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    midway(p.id).notify_one();
    let _ = s.read_to_end(&mut got).await;
    RECEIVED.fetch_add(got.len(), Ordering::Relaxed);
    let file = &data[p.offset as usize..(p.offset + p.len) as usize];
    let h = header(&p);
    match p.ending {
        Ending::Clean => {
            assert_eq!(got, [&h[..], file, &trailer(&p)].concat(), "plan {p:?}");
        }
        Ending::ServerCloses => {
            // The close came during the send: the whole file, then the
            // trailer.
            assert_eq!(got, [&h[..], file, &trailer(&p)].concat(), "plan {p:?}");
        }
        Ending::CallDropped => {
            // The header, a prefix of the file, the trailer.
            assert!(got.starts_with(&h), "plan {p:?}");
            let t = trailer(&p);
            assert!(got.ends_with(&t), "plan {p:?}");
            let mid = &got[h.len()..got.len() - t.len()];
            assert_eq!(mid, &file[..mid.len()], "plan {p:?}");
            if mid.len() < file.len() {
                CUT_SHORT.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ending::ServerAborts => {
            // A prefix of header + file.
            let whole = [&h[..], file].concat();
            assert_eq!(got, whole[..got.len().min(whole.len())], "plan {p:?}");
            if got.len() < whole.len() {
                ABORTED_SHORT.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ending::ClientResets => unreachable!(),
    }
}

#[test]
fn sendfile_on_many_connections_every_ending() {
    stress::serial_run(async {
        let conns = pick(300, MAX_CONNS);
        let mut rng = Rng::fork(seed(), 0x5e1d);
        let data = Arc::new(stress::stream_bytes(7, 0, FILE));
        let path = std::env::temp_dir().join(format!("tt-sendfile-soak-{}", std::process::id()));
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(&data).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let file = Arc::new(f);
        let plans: Arc<Vec<Plan>> = Arc::new(
            (0..conns as u64)
                .map(|id| {
                    let offset = rng.range(0, FILE / 2) as u64;
                    let len = rng.range(1, FILE - offset as usize) as u64;
                    let ending = ENDINGS[rng.range(0, ENDINGS.len())];
                    Plan {
                        id,
                        offset,
                        len,
                        ending,
                    }
                })
                .collect(),
        );
        let baseline = stress::open_fds();
        let reg = Registry::new();
        // Each server connection reads the client's 8-byte id, then serves
        // that plan.
        let (plans2, file2) = (plans.clone(), file.clone());
        let cfg = Config::default().hook(move |t, ev, log| {
            if let Event::Data(_) = ev {
                let got = log.received();
                if got.len() == 8 {
                    let id = u64::from_be_bytes(got[..8].try_into().unwrap());
                    let p = plans2[id as usize];
                    SERVING.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(t.clone(), file2.clone(), p));
                }
            }
        });
        let server = create_server(
            reg.factory("server", cfg),
            "127.0.0.1",
            0,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        let port = server.sockets()[0].port();
        let mut set = JoinSet::new();
        let mut next = 0;
        while next < conns || !set.is_empty() {
            while next < conns && set.len() < 16 {
                set.spawn(client(port, plans[next], data.clone()));
                next += 1;
            }
            if let Some(r) = guard("a client", set.join_next()).await {
                r.expect("client");
            }
        }
        shutdown(&server).await;
        reg.finish().await;
        drop(server);
        // The server tasks' calls hold duplicates of the file's fd.
        guard("server tasks", async {
            while SERVING.load(Ordering::SeqCst) > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let after = stress::open_fds();
        drop(file);
        let mut per = [0usize; 5];
        for p in plans.iter() {
            per[ENDINGS.iter().position(|e| *e == p.ending).unwrap()] += 1;
        }
        eprintln!(
            "sendfile soak: {conns} connections {:?} (clean, server aborts, server closes, \
             client resets, call dropped), {} aborts and {} dropped calls cut a file short, \
             {} MB received",
            per,
            ABORTED_SHORT.load(Ordering::Relaxed),
            CUT_SHORT.load(Ordering::Relaxed),
            RECEIVED.load(Ordering::Relaxed) >> 20
        );
        // The endings that act during a send did so, at least sometimes.
        assert!(
            ABORTED_SHORT.load(Ordering::Relaxed) > 0,
            "no abort hit a send"
        );
        assert!(
            CUT_SHORT.load(Ordering::Relaxed) > 0,
            "no dropped call cut a send"
        );
        assert_eq!(
            after,
            baseline,
            "fds: {baseline} before, {after} after: {:?}",
            stress::fd_listing()
        );
    });
}
