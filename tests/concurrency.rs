//! Many connections on a multi-thread runtime, and transport handles used
//! from other threads while the connection's task runs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio_transports::{Buffered, ConnectOptions, create_connection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_twenty_messages_each() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::echo()).await;
    let mut tasks = JoinSet::new();
    for c in 0..50u8 {
        let rec = reg.recorder("client", Config::default());
        tasks.spawn(async move {
            let log = rec.log();
            let t = if c % 2 == 0 {
                create_connection(move || rec, "127.0.0.1", port, ConnectOptions::default()).await
            } else {
                create_connection(
                    move || Buffered(rec),
                    "127.0.0.1",
                    port,
                    ConnectOptions::default(),
                )
                .await
            }
            .unwrap();
            let mut sent = Vec::new();
            for m in 0..20u8 {
                let msg = pattern(50 + (c as usize * 13 + m as usize * 101) % 3000, c ^ m);
                t.write(msg.clone()).unwrap();
                sent.extend_from_slice(&msg);
                let got = log.wait_received(sent.len()).await;
                assert!(got == sent, "connection {c}, message {m}: echo differs");
            }
            t.close();
            assert_eq!(log.wait_lost().await, None);
            sent.len()
        });
    }
    let mut total = 0;
    while let Some(r) = guard("client tasks", tasks.join_next()).await {
        total += r.expect("client task");
    }
    assert!(total > 50 * 20 * 50);
    for i in 0..50 {
        assert_eq!(reg.nth("server", i).await.wait_lost().await, None);
    }
    let server_bytes: usize = reg.named("server").iter().map(|l| l.received().len()).sum();
    assert_eq!(server_bytes, total);
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_from_several_threads_keep_per_thread_order() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    const THREADS: usize = 4;
    const MSGS: usize = 2000;
    let mut writers = Vec::new();
    for id in 0..THREADS {
        let t = t.clone();
        writers.push(tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for seq in 0..MSGS {
                let msg = format!("{id}:{seq};");
                n += msg.len();
                t.write(msg).unwrap();
            }
            n
        }));
    }
    let mut total = 0;
    for w in writers {
        total += guard("writer", w).await.unwrap();
    }
    let got = read_n(&mut peer, total).await;
    let text = String::from_utf8(got).unwrap();
    let mut next = [0usize; THREADS];
    for item in text.split_terminator(';') {
        let (id, seq) = item.split_once(':').unwrap();
        let (id, seq): (usize, usize) = (id.parse().unwrap(), seq.parse().unwrap());
        assert_eq!(seq, next[id], "thread {id} out of order");
        next[id] += 1;
    }
    assert_eq!(next, [MSGS; THREADS]);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

/// A raw client that streams data to `port` until `stop` is set (or a
/// bound is reached), ignoring errors once the other side goes away.
fn spawn_streamer(port: u16, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let chunk = vec![0x5au8; 512];
        for _ in 0..1_000_000 {
            if stop.load(Ordering::Relaxed) || s.write_all(&chunk).await.is_err() {
                break;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_received_after_pause_reading_returns_on_another_thread() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = spawn_streamer(port, stop.clone());
    let log = reg.nth("server", 0).await;
    let t = log.wait_made().await;
    for _ in 0..500 {
        // Data is flowing.
        let before = log.count(Ev::is_data);
        log.wait_until("data flowing", |e| {
            e.iter().filter(|e| e.is_data()).count() > before
        })
        .await;
        t.pause_reading();
        // A delivery already under way on the connection's thread may end
        // after pause_reading() returned, but no new one may start: at most
        // one data_received between the return and the barrier.
        let at_return = log.count(Ev::is_data);
        barrier(&t).await;
        let after_barrier = log.count(Ev::is_data);
        assert!(
            after_barrier <= at_return + 1,
            "{} deliveries after pause_reading() returned",
            after_barrier - at_return
        );
        log.mark("paused");
        barrier(&t).await;
        log.mark("resuming");
        t.resume_reading();
    }
    stop.store(true, Ordering::Relaxed);
    t.close();
    log.wait_lost().await;
    let _ = guard("streamer", streamer).await;
    let mut paused = false;
    for (i, e) in log.events().iter().enumerate() {
        match e {
            Ev::Mark("paused") => paused = true,
            Ev::Mark("resuming") => paused = false,
            e if e.is_data() && paused => {
                panic!("data_received (event {i}) after pause_reading() returned")
            }
            _ => {}
        }
    }
    shutdown(&server).await;
    reg.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_received_after_close_returns_on_another_thread() {
    let reg = Registry::new();
    let (server, port) = echo_server(&reg, Config::default()).await;
    for i in 0..30 {
        let stop = Arc::new(AtomicBool::new(false));
        let streamer = spawn_streamer(port, stop.clone());
        let log = reg.nth("server", i).await;
        let t = log.wait_made().await;
        log.wait_until("data flowing", |e| e.iter().any(Ev::is_data))
            .await;
        t.close();
        log.mark("closed");
        assert_eq!(log.wait_lost().await, None);
        stop.store(true, Ordering::Relaxed);
        let _ = guard("streamer", streamer).await;
        let evs = log.events();
        let m = index_of(&evs, |e| *e == Ev::Mark("closed"));
        // A delivery already under way on the connection's thread may end
        // after close() returned; none may start after it.
        assert!(
            evs[m..].iter().filter(|e| e.is_data()).count() <= 1,
            "connection {i}: data_received after close() returned: {:?}",
            &evs[m..]
        );
    }
    shutdown(&server).await;
    reg.finish().await;
}
