//! Reading: pause_reading / resume_reading / is_reading, and EOF handling
//! (eof_received's return value).

mod common;

use common::*;
use tokio::io::AsyncWriteExt;

/// Data events after the marker `m`.
fn data_after(evs: &[Ev], m: &'static str) -> usize {
    let i = index_of(evs, |e| *e == Ev::Mark(m));
    evs[i..].iter().filter(|e| e.is_data()).count()
}

#[tokio::test]
async fn pause_and_resume_are_idempotent() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    assert!(t.is_reading());
    t.pause_reading();
    assert!(!t.is_reading());
    t.pause_reading();
    assert!(!t.is_reading());
    t.resume_reading();
    assert!(t.is_reading());
    t.resume_reading();
    assert!(t.is_reading());
    peer.write_all(b"still flows").await.unwrap();
    assert_eq!(log.wait_received(11).await, b"still flows");
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn no_data_while_paused_from_outside() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.pause_reading();
    log.mark("paused");
    peer.write_all(b"held back").await.unwrap();
    // The bytes are in our socket's receive queue; the task has run since.
    wait_unread(&t, 9).await;
    barrier(&t).await;
    assert_eq!(data_after(&log.events(), "paused"), 0);
    log.mark("resume");
    t.resume_reading();
    // The same wait is enough to see the data once reading is on: so the
    // check above could have seen it, had pause_reading not held it back.
    barrier(&t).await;
    assert_eq!(log.received(), b"held back");
    assert_eq!(data_after(&log.events(), "resume"), log.count(Ev::is_data));
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_reading_inside_data_received_stops_delivery_at_once() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if matches!(ev, Ev::Data(_)) {
                t.pause_reading();
            }
        }),
    )
    .await;
    peer.write_all(b"first").await.unwrap();
    log.wait_received(5).await;
    assert!(!t.is_reading());
    peer.write_all(b"second").await.unwrap();
    wait_unread(&t, 6).await;
    barrier(&t).await;
    assert_eq!(log.count(Ev::is_data), 1, "{:?}", log.events());
    // Resume: exactly the held bytes arrive, after the marker.
    log.mark("resume");
    t.resume_reading();
    assert_eq!(log.wait_received(11).await, b"firstsecond");
    assert_eq!(data_after(&log.events(), "resume"), 1);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn pause_reading_inside_connection_made_means_no_reading_starts() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Made {
                t.pause_reading();
            }
        }),
    )
    .await;
    assert!(!t.is_reading());
    peer.write_all(b"early").await.unwrap();
    wait_unread(&t, 5).await;
    barrier(&t).await;
    assert_eq!(log.count(Ev::is_data), 0);
    t.resume_reading();
    assert_eq!(log.wait_received(5).await, b"early");
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn eof_while_paused_is_seen_after_resume() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    t.pause_reading();
    peer.write_all(b"last words").await.unwrap();
    peer.shutdown().await.unwrap();
    wait_unread(&t, 10).await;
    barrier(&t).await;
    assert_eq!(log.count(|e| e.is_data() || *e == Ev::Eof), 0);
    t.resume_reading();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.received(), b"last words");
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    reg.finish().await;
}

#[tokio::test]
async fn buffered_protocol_pause_reading_inside_buffer_updated() {
    let reg = Registry::new();
    let (t, log, mut peer) = buffered_client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if matches!(ev, Ev::BufferUpdated { .. }) {
                t.pause_reading();
            }
        }),
    )
    .await;
    peer.write_all(b"one").await.unwrap();
    log.wait_received(3).await;
    peer.write_all(b"two").await.unwrap();
    wait_unread(&t, 3).await;
    barrier(&t).await;
    assert_eq!(log.count(Ev::is_data), 1);
    log.mark("resume");
    t.resume_reading();
    assert_eq!(log.wait_received(6).await, b"onetwo");
    assert_eq!(data_after(&log.events(), "resume"), 1);
    t.close();
    log.wait_lost().await;
    reg.finish().await;
}

#[tokio::test]
async fn no_data_after_close_inside_data_received() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if matches!(ev, Ev::Data(_)) {
                t.close();
            }
        }),
    )
    .await;
    // Plenty of data in flight: only the first chunk may be delivered.
    let payload = vec![1u8; 1 << 20];
    let _ = guard("peer write", async {
        let _ = peer.write_all(&payload).await;
    })
    .await;
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.count(Ev::is_data), 1, "{:?}", log.events());
    assert!(!t.is_reading());
    reg.finish().await;
}

#[tokio::test]
async fn is_reading_false_when_closing_and_resume_is_a_noop() {
    let reg = Registry::new();
    let (t, log, peer) = client_with_raw_peer(&reg, Config::default()).await;
    // Keep the close pending: the peer does not read 16 MiB.
    for _ in 0..16 {
        t.write(vec![0u8; 1 << 20]).unwrap();
    }
    log.wait_event("pause_writing", Ev::is_pw).await;
    t.pause_reading();
    t.close();
    assert!(!t.is_reading());
    t.resume_reading();
    assert!(!t.is_reading(), "resume_reading on a closing transport");
    t.pause_reading();
    t.resume_reading();
    assert!(!t.is_reading());
    // Data sent now is never delivered.
    peer.try_write(b"ignored").unwrap();
    barrier(&t).await;
    assert!(log.lost().is_none(), "still flushing");
    t.abort();
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.count(Ev::is_data), 0);
    drop(peer);
    reg.finish().await;
}

#[tokio::test]
async fn eof_received_false_closes_the_transport() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(&reg, Config::default()).await;
    peer.write_all(b"bye").await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(log.wait_lost().await, None);
    let evs: Vec<Ev> = log
        .events()
        .into_iter()
        .filter(|e| !matches!(e, Ev::Data(_)))
        .collect();
    assert_eq!(evs, [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert!(t.is_closing());
    assert!(!t.is_reading());
    // Our side closed too: the peer reads EOF.
    assert_eq!(read_to_eof(&mut peer).await, b"");
    reg.finish().await;
}

#[tokio::test]
async fn eof_received_false_flushes_what_it_wrote() {
    let reg = Registry::new();
    let (_t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().hook(|t, ev, _| {
            if *ev == Ev::Eof {
                t.write(vec![4u8; 4 << 20]).unwrap();
            }
        }),
    )
    .await;
    peer.shutdown().await.unwrap();
    let got = read_to_eof(&mut peer).await;
    assert_eq!(got.len(), 4 << 20);
    assert_eq!(log.wait_lost().await, None);
    reg.finish().await;
}

#[tokio::test]
async fn eof_received_true_keeps_the_transport_open_for_writing() {
    let reg = Registry::new();
    let (t, log, mut peer) = client_with_raw_peer(
        &reg,
        Config::default().keep_open().hook(|t, ev, _| {
            if *ev == Ev::Eof {
                t.write("reply after eof").unwrap();
            }
        }),
    )
    .await;
    peer.write_all(b"request").await.unwrap();
    peer.shutdown().await.unwrap();
    assert_eq!(read_n(&mut peer, 15).await, b"reply after eof");
    log.wait_event("eof", |e| *e == Ev::Eof).await;
    barrier(&t).await;
    assert!(log.lost().is_none(), "stays open");
    assert!(!t.is_closing());
    assert!(!t.is_reading(), "reading is off for good after EOF");
    t.pause_reading();
    t.resume_reading();
    assert!(
        !t.is_reading(),
        "a pause/resume cycle must not re-arm reading"
    );
    t.write(" and more").unwrap();
    assert_eq!(read_n(&mut peer, 9).await, b" and more");
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.received(), b"request");
    assert_eq!(log.count(|e| *e == Ev::Eof), 1);
    reg.finish().await;
}

#[tokio::test]
async fn buffered_eof_received_true_then_protocol_closes() {
    let reg = Registry::new();
    let (t, log, mut peer) =
        buffered_client_with_raw_peer(&reg, Config::default().keep_open()).await;
    peer.write_all(b"abc").await.unwrap();
    peer.shutdown().await.unwrap();
    log.wait_event("eof", |e| *e == Ev::Eof).await;
    assert!(!t.is_reading());
    t.write("xyz").unwrap();
    t.close();
    assert_eq!(read_to_eof(&mut peer).await, b"xyz");
    assert_eq!(log.wait_lost().await, None);
    assert_eq!(log.received(), b"abc");
    reg.finish().await;
}
