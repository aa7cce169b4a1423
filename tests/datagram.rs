//! The datagram transport on real sockets (UDP on loopback, Unix datagram
//! sockets): every `DatagramTransport` method, every `DatagramProtocol`
//! callback, the creation options and their errors, flow control with
//! CPython's `len + 8` accounting, and `error_received` from a real ICMP
//! port-unreachable.
//!
//! Waiting is event-driven (channels, `closed()`, round trips through the
//! endpoint's task); timeouts are only hang guards.

mod datagram_common;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use datagram_common::*;
use tokio::net::{UdpSocket, UnixDatagram};
use tokio_transports::{
    AddressFamily, DatagramError, DatagramOptions, DatagramTransport, ExtraInfo, SocketAddress,
    create_datagram_endpoint, create_datagram_endpoint_from_socket,
};

fn local(port: u16) -> DatagramOptions {
    DatagramOptions::default().local_addr(("127.0.0.1", port))
}

fn remote(addr: SocketAddr) -> DatagramOptions {
    DatagramOptions::default().remote_addr(addr)
}

async fn close_and_check(t: &DatagramTransport, mut probe: Probe) -> Vec<Ev> {
    t.close();
    guard("closed()", t.closed()).await;
    while probe.has_pending() {
        probe.next().await;
    }
    let evs = probe.events();
    check_grammar(&evs);
    assert_eq!(evs.last(), Some(&Ev::Lost(None)));
    evs
}

// ---- echo, addresses, extra info ----------------------------------------------

#[tokio::test]
async fn udp_echo_round_trip_with_addresses_and_extra_info() {
    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let server_addr = server.sockname().unwrap();
    assert_eq!(server_addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server_addr.port(), 0);

    let (factory, mut client_probe) = recorder(None);
    let client = create_datagram_endpoint(factory, remote(server_addr))
        .await
        .unwrap();
    // create_datagram_endpoint returns after connection_made ran.
    assert_eq!(client_probe.events(), [Ev::Made]);
    assert_eq!(client_probe.next().await, Ev::Made);
    let client_addr = client.sockname().unwrap();

    client.sendto("Hello World!", None).unwrap();
    let (data, from) = client_probe.dgram().await;
    assert_eq!(&data[..], b"Hello World!");
    assert_eq!(from, SocketAddress::Inet(server_addr));
    assert_eq!(
        server_probe.events()[1],
        Ev::Dgram(
            Bytes::from_static(b"Hello World!"),
            SocketAddress::Inet(client_addr)
        )
    );

    // get_extra_info: sockname always, peername only when connected.
    assert_eq!(
        server.get_extra_info("sockname"),
        Some(ExtraInfo::Address(SocketAddress::Inet(server_addr)))
    );
    assert_eq!(server.get_extra_info("peername"), None);
    assert_eq!(server.peername(), None);
    assert_eq!(
        client.get_extra_info("peername"),
        Some(ExtraInfo::Address(SocketAddress::Inet(server_addr)))
    );
    assert_eq!(client.peername(), Some(server_addr));
    assert_eq!(
        client.peer_address(),
        Some(&SocketAddress::Inet(server_addr))
    );
    assert_eq!(
        client.remote_address(),
        Some(&SocketAddress::Inet(server_addr))
    );
    assert_eq!(
        client.local_address(),
        Some(&SocketAddress::Inet(client_addr))
    );
    assert_eq!(client.get_extra_info("nonexistent"), None);
    let Some(ExtraInfo::Socket(fd)) = client.get_extra_info("socket") else {
        panic!("no socket in extra info");
    };
    assert!(fd >= 0);
    assert_eq!(
        client.with_socket(|s| s.local_addr().unwrap().as_socket()),
        Some(Some(client_addr))
    );

    close_and_check(&client, client_probe).await;
    // After the close: addresses stay, the socket is gone.
    assert_eq!(client.peername(), Some(server_addr));
    assert_eq!(client.get_extra_info("socket"), None);
    assert_eq!(client.with_socket(|_| ()), None);
    close_and_check(&server, server_probe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_protocol_instance_serves_every_peer() {
    let (factory, mut probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let to = server.sockname().unwrap();
    assert_eq!(probe.next().await, Ev::Made);
    let mut peers = Vec::new();
    for i in 0..3u8 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&[i], to).await.unwrap();
        peers.push(s);
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (d, a) = probe.dgram().await;
        seen.push((d[0], a));
    }
    seen.sort_by_key(|s| s.0);
    for (i, s) in peers.iter().enumerate() {
        assert_eq!(
            seen[i],
            (i as u8, SocketAddress::Inet(s.local_addr().unwrap()))
        );
        let mut buf = [0u8; 4];
        let n = guard("echo", s.recv(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], &[i as u8]);
    }
    close_and_check(&server, probe).await;
}

// ---- sendto -----------------------------------------------------------------

#[tokio::test]
async fn sendto_address_rules_and_errors_keep_the_endpoint_open() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let (factory, probe) = recorder(None);
    let connected = create_datagram_endpoint(factory, remote(peer_addr))
        .await
        .unwrap();

    // Another address than the connected remote: CPython's ValueError.
    let other = SocketAddress::Inet(v4(1));
    let err = connected.sendto("x", Some(other.clone())).unwrap_err();
    assert_eq!(
        err,
        DatagramError::AddressMismatch {
            remote: SocketAddress::Inet(peer_addr),
            given: other
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Invalid address: must be None or ('127.0.0.1', {})",
            peer_addr.port()
        )
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
    assert_eq!(connected.get_write_buffer_size(), 0, "nothing was queued");
    assert!(!connected.is_closing());

    // None and the remote itself both go to the remote.
    connected.sendto("a", None).unwrap();
    connected
        .sendto("b", Some(SocketAddress::Inet(peer_addr)))
        .unwrap();
    let mut buf = [0u8; 8];
    for want in [b"a", b"b"] {
        let (n, from) = guard("datagram", peer.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], want);
        assert_eq!(from, connected.sockname().unwrap());
    }

    // An unconnected endpoint: no address is a synchronous error (uvloop #338),
    // a Unix address is refused, and the endpoint stays usable.
    let (factory, unconnected_probe) = recorder(None);
    let unconnected = create_datagram_endpoint(factory, local(0)).await.unwrap();
    assert_eq!(unconnected.sendto("x", None), Err(DatagramError::NoAddress));
    let unix = SocketAddress::Unix(Some("/tmp/x".into()));
    assert_eq!(
        unconnected.sendto("x", Some(unix.clone())),
        Err(DatagramError::UnsupportedAddress(unix))
    );
    assert!(!unconnected.is_closing());
    unconnected
        .sendto("still open", Some(SocketAddress::Inet(peer_addr)))
        .unwrap();
    let (n, _) = guard("datagram", peer.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"still op");

    close_and_check(&connected, probe).await;
    let evs = close_and_check(&unconnected, unconnected_probe).await;
    assert!(!evs.iter().any(|e| matches!(e, Ev::Error(..))), "{evs:?}");
}

#[tokio::test]
async fn empty_datagrams_are_sent_and_delivered() {
    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let (factory, mut probe) = recorder(None);
    let client = create_datagram_endpoint(factory, remote(server.sockname().unwrap()))
        .await
        .unwrap();
    probe.next().await;
    client.sendto(Bytes::new(), None).unwrap();
    assert_eq!(
        client.get_write_buffer_size(),
        8,
        "an empty datagram counts 8"
    );
    client.sendto("after", None).unwrap();
    let (d, _) = probe.dgram().await;
    assert!(d.is_empty(), "the empty datagram comes back empty");
    let (d, _) = probe.dgram().await;
    assert_eq!(&d[..], b"after", "and is not merged with the next one");
    assert_eq!(client.get_write_buffer_size(), 0);
    close_and_check(&client, probe).await;
    let evs = close_and_check(&server, server_probe).await;
    assert!(matches!(&evs[1], Ev::Dgram(d, _) if d.is_empty()));
}

#[tokio::test]
async fn the_largest_udp_datagram_arrives_whole_and_a_too_large_one_is_an_error() {
    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let (factory, mut probe) = recorder(None);
    let client = create_datagram_endpoint(factory, remote(server.sockname().unwrap()))
        .await
        .unwrap();
    probe.next().await;
    let big = frame(1, 65_507);
    client.sendto(big.clone(), None).unwrap();
    client.sendto(frame(2, 20), None).unwrap();
    let (d, _) = probe.dgram().await;
    assert_eq!(check_frame(&d), 1);
    assert_eq!(d, big);
    let (d, _) = probe.dgram().await;
    assert_eq!(check_frame(&d), 2);

    // One byte more does not fit in an IPv4 UDP datagram: EMSGSIZE goes to
    // error_received, the datagram is dropped, the endpoint stays open.
    client.sendto(vec![0u8; 65_508], None).unwrap();
    match probe.next().await {
        Ev::Error(_, code, _) => assert_eq!(code, Some(libc::EMSGSIZE)),
        other => panic!("expected error_received, got {other:?}"),
    }
    assert!(!client.is_closing());
    assert_eq!(client.get_write_buffer_size(), 0);
    client.sendto(frame(3, 30), None).unwrap();
    let (d, _) = probe.dgram().await;
    assert_eq!(check_frame(&d), 3);
    close_and_check(&client, probe).await;
    close_and_check(&server, server_probe).await;
}

#[tokio::test]
async fn a_large_unix_datagram_arrives_whole() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    let big = frame(7, 200_000);
    guard("send", b.send(&big)).await.unwrap();
    let (d, from) = probe.dgram().await;
    assert_eq!(d, big);
    assert_eq!(from, SocketAddress::Unix(None));
    close_and_check(&t, probe).await;
}

// ---- sending from callbacks ---------------------------------------------------

#[tokio::test]
async fn a_callback_sends_at_once_and_never_counts_in_the_buffer() {
    // asyncio's sendto with an empty queue sends before it returns: the
    // write buffer size seen right after it is 0.
    let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let hook: Hook = Box::new(move |t, ev| {
        if let Ev::Dgram(d, a) = ev {
            t.sendto(d.clone(), Some(a.clone())).unwrap();
            seen.lock().unwrap().push(t.get_write_buffer_size());
        }
    });
    let (factory, probe) = recorder(Some(hook));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 8];
    for i in 0..3u8 {
        peer.send_to(&[i], server.sockname().unwrap())
            .await
            .unwrap();
        let n = guard("echo", peer.recv(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], &[i]);
    }
    assert_eq!(*sizes.lock().unwrap(), [0, 0, 0]);
    close_and_check(&server, probe).await;
}

#[tokio::test]
async fn a_callback_that_fills_the_socket_queues_the_rest_in_order() {
    let (a, b) = unix_pair_small_sndbuf();
    let hook: Hook = Box::new(|t, ev| {
        if let Ev::Dgram(d, _) = ev
            && &d[..] == b"go"
        {
            for i in 0..40 {
                t.sendto(frame(i, 1000), None).unwrap();
            }
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    b.send(b"go").await.unwrap();
    probe.dgram().await;
    barrier(&t).await;
    assert!(t.get_write_buffer_size() > 0, "some were queued");
    let mut got = Vec::new();
    while got.len() < 40 {
        guard("readable", b.readable()).await.unwrap();
        got.extend(drain_now(&b));
    }
    let seqs: Vec<u32> = got.iter().map(|d| check_frame(d)).collect();
    assert_eq!(
        seqs,
        (0..40).collect::<Vec<_>>(),
        "sent and queued, in order"
    );
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn a_failed_send_from_a_callback_is_reported_after_it() {
    let hook: Hook = Box::new(|t, ev| {
        if let Ev::Dgram(_, a) = ev {
            // Too large for IPv4: EMSGSIZE, at once.
            t.sendto(vec![0u8; 65_508], Some(a.clone())).unwrap();
            t.sendto("fits", Some(a.clone())).unwrap();
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    probe.next().await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    peer.send_to(b"x", server.sockname().unwrap())
        .await
        .unwrap();
    probe.dgram().await;
    match probe.next().await {
        Ev::Error(_, code, _) => assert_eq!(code, Some(libc::EMSGSIZE)),
        other => panic!("expected error_received, got {other:?}"),
    }
    let mut buf = [0u8; 8];
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(
        &buf[..n],
        b"fits",
        "the failed one was dropped, the next sent"
    );
    assert_eq!(server.get_write_buffer_size(), 0);
    assert!(!server.is_closing());
    close_and_check(&server, probe).await;
}

#[tokio::test]
async fn sendto_after_abort_or_close_in_a_callback_is_dropped() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|t, ev| {
        if ev.is_dgram() {
            t.abort();
            t.sendto("after abort", None).unwrap();
        }
    });
    let (factory, probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    b.send(b"x").await.unwrap();
    guard("closed", t.closed()).await;
    assert!(drain_now(&b).is_empty(), "nothing is sent after abort");
    assert_eq!(t.dropped_writes(), 1);
    check_grammar(&probe.events());

    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|t, ev| {
        if ev.is_dgram() {
            t.close();
            t.sendto("after close", None).unwrap();
        }
    });
    let (factory, probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    b.send(b"x").await.unwrap();
    guard("closed", t.closed()).await;
    // Nothing was queued, so close() lost the endpoint at once: asyncio
    // drops a later sendto too (only a flushing close accepts more).
    assert!(drain_now(&b).is_empty());
    assert_eq!(t.dropped_writes(), 1);
    check_grammar(&probe.events());
}

// ---- flow control -------------------------------------------------------------

#[tokio::test]
async fn write_buffer_size_is_exact_and_flow_control_pauses_and_resumes() {
    let (a, b) = unix_pair_small_sndbuf();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    assert_eq!(probe.next().await, Ev::Made);
    assert_eq!(t.get_write_buffer_limits(), (16384, 65536));
    t.set_write_buffer_limits(Some(4000), None).unwrap();
    assert_eq!(t.get_write_buffer_limits(), (1000, 4000));

    // Exact the moment sendto returns: the task has not run yet.
    for i in 0..3 {
        t.sendto(frame(i, 1000), None).unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), 3 * 1008);
    for i in 3..40 {
        t.sendto(frame(i, 1000), None).unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), 40 * 1008);

    // The peer does not read: the socket fills, the queue goes over 4000.
    match probe.next().await {
        Ev::PauseWriting(size) => assert!(size > 4000, "paused at {size}"),
        other => panic!("expected pause_writing, got {other:?}"),
    }
    barrier(&t).await;
    let queued = t.get_write_buffer_size();
    assert!(queued > 4000, "{queued}");
    assert_eq!(queued % 1008, 0, "whole datagrams are queued");

    // From another thread, while the queue is stuck: still exact.
    let t2 = t.clone();
    let (before, after) = std::thread::spawn(move || {
        let before = t2.get_write_buffer_size();
        t2.sendto(frame(40, 1000), None).unwrap();
        (before, t2.get_write_buffer_size())
    })
    .join()
    .unwrap();
    assert_eq!(after, before + 1008);

    // The peer reads: the queue drains, resume_writing at <= 1000.
    let mut got = Vec::new();
    let resumed = guard("resume_writing", async {
        loop {
            got.extend(drain_now(&b));
            tokio::select! {
                ev = probe.next() => break ev,
                r = b.readable() => r.unwrap(),
            }
        }
    })
    .await;
    match resumed {
        Ev::ResumeWriting(size) => assert!(size <= 1000, "resumed at {size}"),
        other => panic!("expected resume_writing, got {other:?}"),
    }
    while got.len() < 41 {
        guard("readable", b.readable()).await.unwrap();
        got.extend(drain_now(&b));
    }
    let seqs: Vec<u32> = got.iter().map(|d| check_frame(d)).collect();
    assert_eq!(
        seqs,
        (0..41).collect::<Vec<_>>(),
        "every datagram, in order"
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn a_flood_of_empty_datagrams_pauses_writing() {
    let (a, b) = unix_pair_small_sndbuf();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    t.set_write_buffer_limits(Some(80), Some(16)).unwrap();
    for _ in 0..200 {
        t.sendto(Bytes::new(), None).unwrap();
    }
    assert_eq!(t.get_write_buffer_size(), 200 * 8);
    match probe.next().await {
        Ev::PauseWriting(size) => assert!(size > 80, "{size}"),
        other => panic!("expected pause_writing, got {other:?}"),
    }
    let mut got = 0;
    while got < 200 {
        guard("readable", b.readable()).await.unwrap();
        let batch = drain_now(&b);
        assert!(batch.iter().all(Vec::is_empty));
        got += batch.len();
    }
    match probe.next().await {
        Ev::ResumeWriting(size) => assert!(size <= 16, "{size}"),
        other => panic!("expected resume_writing, got {other:?}"),
    }
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn lowering_the_limits_pauses_at_once() {
    let (a, b) = unix_pair_small_sndbuf();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    for i in 0..30 {
        t.sendto(frame(i, 500), None).unwrap();
    }
    barrier(&t).await;
    let queued = t.get_write_buffer_size();
    assert!(queued > 1000 && queued < 65536, "{queued}");
    assert!(!probe.has_pending(), "under the default high watermark");
    t.set_write_buffer_limits(Some(1000), None).unwrap();
    assert!(matches!(probe.next().await, Ev::PauseWriting(_)));
    assert!(t.set_write_buffer_limits(Some(10), Some(20)).is_err());
    assert_eq!(t.get_write_buffer_limits(), (250, 1000), "unchanged");
    t.abort();
    guard("closed", t.closed()).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    let evs = probe.events();
    check_grammar(&evs);
    drop(b);
}

// ---- close, abort, loss ---------------------------------------------------------

#[tokio::test]
async fn close_sends_the_queued_datagrams_before_connection_lost() {
    let (a, b) = unix_pair_small_sndbuf();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    for i in 0..50 {
        t.sendto(frame(i, 1000), None).unwrap();
    }
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_reading());
    // Closing but flushing: still accepted, sent after the others.
    t.sendto(frame(50, 1000), None).unwrap();
    t.close(); // idempotent
    barrier(&t).await;
    assert!(
        !t.is_closed(),
        "the peer has not read yet, the queue is not empty"
    );
    assert!(t.get_write_buffer_size() > 0);

    let mut got = Vec::new();
    while got.len() < 51 {
        guard("readable", b.readable()).await.unwrap();
        got.extend(drain_now(&b));
    }
    guard("closed", t.closed()).await;
    let seqs: Vec<u32> = got.iter().map(|d| check_frame(d)).collect();
    assert_eq!(seqs, (0..51).collect::<Vec<_>>());
    assert_eq!(t.get_write_buffer_size(), 0);
    let evs = probe.events();
    check_grammar(&evs);
    assert_eq!(evs.last(), Some(&Ev::Lost(None)));
    assert_eq!(t.dropped_writes(), 0);
}

#[tokio::test]
async fn abort_drops_the_queue() {
    let (a, b) = unix_pair_small_sndbuf();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    for i in 0..50 {
        t.sendto(frame(i, 1000), None).unwrap();
    }
    barrier(&t).await;
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert!(t.is_closing());
    guard("closed", t.closed()).await;
    assert_eq!(t.get_write_buffer_size(), 0);
    let got = drain_now(&b);
    assert!(
        got.len() < 50,
        "the queue was dropped ({} arrived)",
        got.len()
    );
    for (i, d) in got.iter().enumerate() {
        assert_eq!(check_frame(d), i as u32);
    }
    let evs = probe.events();
    check_grammar(&evs);
    assert_eq!(evs.last(), Some(&Ev::Lost(None)));
    t.abort(); // no-op after the loss
    t.close();
}

#[tokio::test]
async fn datagrams_after_the_loss_are_dropped_and_counted() {
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint(factory, remote(v4(9)))
        .await
        .unwrap();
    t.abort();
    guard("closed", t.closed()).await;
    assert!(t.is_closed());
    t.sendto("late", None).unwrap();
    t.sendto("", None).unwrap();
    assert_eq!(t.dropped_writes(), 2);
    assert_eq!(t.get_write_buffer_size(), 0);
    // The address is still checked first.
    assert!(t.sendto("x", Some(SocketAddress::Inet(v4(10)))).is_err());
    assert_eq!(t.dropped_writes(), 2);
    check_grammar(&probe.events());
}

#[tokio::test]
async fn close_from_inside_a_callback_stops_delivery() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|t, ev| {
        if ev.is_dgram() {
            t.close();
        }
    });
    let (factory, probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    for i in 0..3u8 {
        b.send(&[i]).await.unwrap();
    }
    guard("closed", t.closed()).await;
    let evs = probe.events();
    check_grammar(&evs);
    assert_eq!(evs.iter().filter(|e| e.is_dgram()).count(), 1, "{evs:?}");
}

// ---- reading --------------------------------------------------------------------

#[tokio::test]
async fn pause_reading_holds_datagrams_until_resume() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    assert!(t.is_reading());
    t.pause_reading();
    t.pause_reading();
    assert!(!t.is_reading());
    barrier(&t).await;
    for i in 0..3u8 {
        b.send(&[i]).await.unwrap();
    }
    barrier(&t).await;
    assert_eq!(probe.dgrams(), 0, "nothing is delivered while paused");
    t.resume_reading();
    assert!(t.is_reading());
    for i in 0..3u8 {
        let (d, _) = probe.dgram().await;
        assert_eq!(&d[..], &[i]);
    }
    close_and_check(&t, probe).await;
    assert!(!t.is_reading(), "not reading once closed");
    t.resume_reading();
    assert!(!t.is_reading());
}

#[tokio::test]
async fn pause_reading_from_a_callback_takes_effect_when_it_returns() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|t, ev| {
        if ev.is_dgram() {
            t.pause_reading();
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    for i in 0..3u8 {
        b.send(&[i]).await.unwrap();
    }
    let (d, _) = probe.dgram().await;
    assert_eq!(&d[..], &[0]);
    barrier(&t).await;
    assert_eq!(probe.dgrams(), 1);
    assert!(!t.is_reading());
    t.resume_reading();
    let (d, _) = probe.dgram().await;
    assert_eq!(&d[..], &[1], "one more, then paused again by the hook");
    t.resume_reading();
    let (d, _) = probe.dgram().await;
    assert_eq!(&d[..], &[2]);
    close_and_check(&t, probe).await;
}

// ---- ICMP -------------------------------------------------------------------

#[tokio::test]
async fn icmp_port_unreachable_reaches_error_received_and_the_endpoint_stays_open() {
    let port = free_udp_port();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint(factory, remote(v4(port)))
        .await
        .unwrap();
    probe.next().await;
    t.sendto("anyone there?", None).unwrap();
    // Nothing listens: the kernel answers with ICMP port unreachable, which
    // the connected socket reports as ECONNREFUSED.
    match probe.next().await {
        Ev::Error(kind, code, _) => {
            assert_eq!(kind, io::ErrorKind::ConnectionRefused);
            assert_eq!(code, Some(libc::ECONNREFUSED));
        }
        other => panic!("expected error_received, got {other:?}"),
    }
    assert!(!t.is_closing());
    assert!(t.is_reading());

    // Still receiving and sending: something now listens on that port.
    let peer = UdpSocket::bind(v4(port)).await.unwrap();
    peer.send_to(b"here", t.sockname().unwrap()).await.unwrap();
    let (d, from) = probe.dgram().await;
    assert_eq!(&d[..], b"here");
    assert_eq!(from, SocketAddress::Inet(v4(port)));
    t.sendto("hello", None).unwrap();
    let mut buf = [0u8; 16];
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn icmp_errors_reported_on_the_next_send_too() {
    let port = free_udp_port();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint(factory, remote(v4(port)))
        .await
        .unwrap();
    probe.next().await;
    // Keep sending until two errors were reported: each send either fails
    // with the pending ECONNREFUSED or provokes the next one.
    for i in 0..2 {
        t.sendto(format!("probe {i}"), None).unwrap();
        match probe.next().await {
            Ev::Error(kind, ..) => assert_eq!(kind, io::ErrorKind::ConnectionRefused),
            other => panic!("expected error_received, got {other:?}"),
        }
    }
    assert!(!t.is_closing());
    close_and_check(&t, probe).await;
}

// ---- Unix -------------------------------------------------------------------

#[tokio::test]
async fn unix_path_endpoints_have_typed_addresses() {
    let dir = TempDir::new();
    let server_path = dir.path("server.sock");
    let client_path = dir.path("client.sock");
    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(
        factory,
        DatagramOptions::default().local_addr(server_path.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        server.get_extra_info("sockname"),
        Some(ExtraInfo::Address(SocketAddress::Unix(Some(
            server_path.clone()
        ))))
    );
    assert_eq!(server.sockname(), None, "not an IP address");
    assert_eq!(server.get_extra_info("peername"), None);

    let (factory, mut probe) = recorder(None);
    let client = create_datagram_endpoint(
        factory,
        DatagramOptions::default()
            .local_addr(client_path.as_path())
            .remote_addr(server_path.as_path())
            .family(AddressFamily::Unix),
    )
    .await
    .unwrap();
    assert_eq!(
        client.peer_address(),
        Some(&SocketAddress::Unix(Some(server_path.clone())))
    );
    probe.next().await;
    client.sendto("over a path", None).unwrap();
    let (d, from) = probe.dgram().await;
    assert_eq!(&d[..], b"over a path");
    assert_eq!(from, SocketAddress::Unix(Some(server_path.clone())));
    assert_eq!(
        server_probe.events()[1],
        Ev::Dgram(
            Bytes::from_static(b"over a path"),
            SocketAddress::Unix(Some(client_path.clone()))
        )
    );
    // Addresses of the other family are refused synchronously.
    assert!(matches!(
        server.sendto("x", Some(SocketAddress::Inet(v4(1)))),
        Err(DatagramError::UnsupportedAddress(_))
    ));
    assert!(matches!(
        server.sendto("x", Some(SocketAddress::Unix(None))),
        Err(DatagramError::UnsupportedAddress(_))
    ));
    close_and_check(&client, probe).await;
    close_and_check(&server, server_probe).await;

    // The socket file is left behind, as asyncio leaves it; binding again
    // removes the stale file first.
    assert!(server_path.exists());
    let (factory, probe) = recorder(None);
    let again = create_datagram_endpoint(
        factory,
        DatagramOptions::default().local_addr(server_path.clone()),
    )
    .await
    .unwrap();
    close_and_check(&again, probe).await;

    // A regular file is not removed: the bind fails.
    let file = dir.path("regular");
    std::fs::write(&file, b"keep me").unwrap();
    let err = create_datagram_endpoint(|| (), DatagramOptions::default().local_addr(file.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains("error while attempting to bind"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[tokio::test]
async fn an_unbound_unix_client_is_unnamed() {
    let dir = TempDir::new();
    let path = dir.path("s.sock");
    let server_sock = UnixDatagram::bind(&path).unwrap();
    let (factory, probe) = recorder(None);
    let client = create_datagram_endpoint(
        factory,
        DatagramOptions::default().remote_addr(path.clone()),
    )
    .await
    .unwrap();
    assert_eq!(client.local_address(), Some(&SocketAddress::Unix(None)));
    client.sendto("hi", None).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = guard("datagram", server_sock.recv_from(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert!(from.is_unnamed());
    close_and_check(&client, probe).await;
}

#[tokio::test]
async fn socketpair_endpoints_talk_both_ways() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let (fa, mut pa) = recorder(None);
    let (fb, mut pb) = recorder(Some(echo()));
    let ta = create_datagram_endpoint_from_socket(fa, a).await.unwrap();
    let tb = create_datagram_endpoint_from_socket(fb, b).await.unwrap();
    pa.next().await;
    pb.next().await;
    assert_eq!(ta.peer_address(), Some(&SocketAddress::Unix(None)));
    assert_eq!(ta.remote_address(), Some(&SocketAddress::Unix(None)));
    ta.sendto("ping", None).unwrap();
    ta.sendto("", Some(SocketAddress::Unix(None))).unwrap();
    let (d, from) = pb.dgram().await;
    assert_eq!((&d[..], from), (&b"ping"[..], SocketAddress::Unix(None)));
    let (d, _) = pa.dgram().await;
    assert_eq!(&d[..], b"ping");
    let (d, _) = pa.dgram().await;
    assert!(d.is_empty());
    close_and_check(&ta, pa).await;
    close_and_check(&tb, pb).await;
}

// ---- creation -----------------------------------------------------------------

#[tokio::test]
async fn creation_errors_match_cpythons_checks() {
    let invalid = |e: io::Error| {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        e.to_string()
    };
    let e = create_datagram_endpoint(|| (), DatagramOptions::default())
        .await
        .unwrap_err();
    assert_eq!(invalid(e), "unexpected address family");

    let path: std::path::PathBuf = "/tmp/nonexistent-dir-xyz/s.sock".into();
    let e = create_datagram_endpoint(
        || (),
        DatagramOptions::default()
            .local_addr(path.clone())
            .family(AddressFamily::Inet),
    )
    .await
    .unwrap_err();
    assert!(invalid(e).contains("needs family Unix"));

    let e = create_datagram_endpoint(
        || (),
        DatagramOptions::default()
            .local_addr(path.clone())
            .remote_addr(v4(9)),
    )
    .await
    .unwrap_err();
    assert!(invalid(e).contains("same family"));

    let e = create_datagram_endpoint(
        || (),
        DatagramOptions::default()
            .remote_addr(v4(9))
            .family(AddressFamily::Unix),
    )
    .await
    .unwrap_err();
    assert!(invalid(e).contains("family Unix takes Unix socket paths"));

    // No family in common between the two addresses.
    let e = create_datagram_endpoint(
        || (),
        DatagramOptions::default()
            .local_addr(v4(0))
            .remote_addr("[::1]:9".parse::<SocketAddr>().unwrap()),
    )
    .await
    .unwrap_err();
    assert_eq!(invalid(e), "can not get address information");

    // An address of the wrong family for `family`.
    let e = create_datagram_endpoint(
        || (),
        DatagramOptions::default()
            .local_addr(("127.0.0.1", 0))
            .family(AddressFamily::Inet6),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("getaddrinfo() returned empty list"),
        "{e}"
    );

    // A port in use.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = create_datagram_endpoint(|| (), local(port))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert!(e.to_string().starts_with(&format!(
        "error while attempting to bind on address ('127.0.0.1', {port})"
    )));

    // sock= that is not a datagram socket.
    let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let e = create_datagram_endpoint_from_socket(|| (), tcp)
        .await
        .unwrap_err();
    assert!(invalid(e).starts_with("A datagram socket was expected"));

    // A missing Unix peer.
    let e = create_datagram_endpoint(|| (), DatagramOptions::default().remote_addr(path))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_family_without_addresses_gives_an_unbound_socket() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint(
        factory,
        DatagramOptions::default().family(AddressFamily::Inet),
    )
    .await
    .unwrap();
    assert_eq!(t.sockname(), Some("0.0.0.0:0".parse().unwrap()));
    t.sendto("x", Some(SocketAddress::Inet(peer.local_addr().unwrap())))
        .unwrap();
    let mut buf = [0u8; 4];
    let (n, from) = guard("datagram", peer.recv_from(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"x");
    assert_ne!(from.port(), 0, "the kernel bound it on the first send");
    close_and_check(&t, probe).await;

    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint(
        factory,
        DatagramOptions::default().family(AddressFamily::Unix),
    )
    .await
    .unwrap();
    assert_eq!(t.local_address(), Some(&SocketAddress::Unix(None)));
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn host_names_are_resolved() {
    let (factory, probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(
        factory,
        DatagramOptions::default()
            .local_addr(("localhost", 0))
            .family(AddressFamily::Inet),
    )
    .await
    .unwrap();
    assert_eq!(server.sockname().unwrap().ip().to_string(), "127.0.0.1");
    close_and_check(&server, probe).await;
}

#[tokio::test]
async fn reuse_port_lets_endpoints_share_an_address() {
    let reuse = |port| local(port).reuse_port(true);
    let (f1, p1) = recorder(None);
    let first = create_datagram_endpoint(f1, reuse(0)).await.unwrap();
    let port = first.sockname().unwrap().port();
    assert_eq!(first.with_socket(|s| s.reuse_port().unwrap()), Some(true));
    let (f2, p2) = recorder(None);
    let second = create_datagram_endpoint(f2, reuse(port)).await.unwrap();
    assert_eq!(second.sockname().unwrap().port(), port);
    let e = create_datagram_endpoint(|| (), local(port))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    close_and_check(&first, p1).await;
    close_and_check(&second, p2).await;
}

#[tokio::test]
async fn allow_broadcast_sets_so_broadcast_and_does_not_connect() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint(
        factory,
        DatagramOptions::default()
            .remote_addr(peer_addr)
            .allow_broadcast(true),
    )
    .await
    .unwrap();
    assert_eq!(t.with_socket(|s| s.broadcast().unwrap()), Some(true));
    assert_eq!(t.peername(), None, "not connected");
    assert_eq!(t.get_extra_info("peername"), None);
    assert_eq!(t.remote_address(), Some(&SocketAddress::Inet(peer_addr)));
    // The remote address is still the default, and the only, target.
    t.sendto("to the remote", None).unwrap();
    let mut buf = [0u8; 32];
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"to the remote");
    assert!(matches!(
        t.sendto("x", Some(SocketAddress::Inet(v4(1)))),
        Err(DatagramError::AddressMismatch { .. })
    ));
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn existing_sockets_std_tokio_and_socket2() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut buf = [0u8; 16];

    // A bound std socket: unconnected.
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let std_addr = std_sock.local_addr().unwrap();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, std_sock)
        .await
        .unwrap();
    assert_eq!(t.sockname(), Some(std_addr));
    assert_eq!(t.peername(), None);
    assert_eq!(t.sendto("x", None), Err(DatagramError::NoAddress));
    t.sendto("std", Some(SocketAddress::Inet(peer_addr)))
        .unwrap();
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"std");
    close_and_check(&t, probe).await;

    // A connected tokio socket: its peer is the default target.
    let tokio_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    tokio_sock.connect(peer_addr).await.unwrap();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, tokio_sock)
        .await
        .unwrap();
    assert_eq!(t.peername(), Some(peer_addr));
    t.sendto("tokio", None).unwrap();
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"tokio");
    close_and_check(&t, probe).await;

    // A socket2 socket.
    let s2 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s2.bind(&v4(0).into()).unwrap();
    let (factory, probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, s2)
        .await
        .unwrap();
    t.sendto("socket2", Some(SocketAddress::Inet(peer_addr)))
        .unwrap();
    let n = guard("datagram", peer.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"socket2");
    close_and_check(&t, probe).await;

    // A std Unix datagram socket.
    let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let (factory, mut probe) = recorder(None);
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    b.send(b"std unix").unwrap();
    let (d, _) = probe.dgram().await;
    assert_eq!(&d[..], b"std unix");
    close_and_check(&t, probe).await;
}

#[tokio::test]
async fn ipv6_loopback_addresses_print_like_python() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("note: no IPv6 loopback here; skipping");
        return;
    }
    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(
        factory,
        DatagramOptions::default()
            .local_addr(("::1", 0))
            .family(AddressFamily::Inet6),
    )
    .await
    .unwrap();
    let addr = server.sockname().unwrap();
    let (factory, mut probe) = recorder(None);
    let client = create_datagram_endpoint(factory, remote(addr))
        .await
        .unwrap();
    probe.next().await;
    client.sendto("v6", None).unwrap();
    let (d, from) = probe.dgram().await;
    assert_eq!(&d[..], b"v6");
    assert_eq!(from.to_string(), format!("('::1', {}, 0, 0)", addr.port()));
    close_and_check(&client, probe).await;
    close_and_check(&server, server_probe).await;
}

// ---- protocol switching -----------------------------------------------------------

#[tokio::test]
async fn set_protocol_and_with_protocol() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let (f1, mut p1) = recorder(None);
    let t = create_datagram_endpoint_from_socket(f1, a).await.unwrap();
    p1.next().await;
    b.send(b"one").await.unwrap();
    p1.dgram().await;
    let (f2, mut p2) = recorder(None);
    t.set_protocol(f2());
    b.send(b"two").await.unwrap();
    let (d, _) = p2.dgram().await;
    assert_eq!(&d[..], b"two");
    assert_eq!(t.with_protocol(|_| "ran").await, Some("ran"));
    t.close();
    guard("closed", t.closed()).await;
    assert!(matches!(p2.next().await, Ev::Lost(None)));
    assert_eq!(p1.dgrams(), 1, "the old protocol got nothing more");
    assert_eq!(t.with_protocol(|_| ()).await, None);
}

// ---- a burst -------------------------------------------------------------------

/// Sizes of the burst: mostly small, some medium, a few up to the maximum.
fn burst_size(i: u32) -> usize {
    let r = i.wrapping_mul(2_654_435_761).rotate_left(7);
    match r % 100 {
        0..=49 => HEADER + (r as usize % 100),
        50..=84 => 100 + (r as usize % 1400),
        85..=97 => 1500 + (r as usize % 7500),
        _ => 9000 + (r as usize % (65_507 - 9000 + 1)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_10000_mixed_datagrams_arrives_intact_and_unmerged() {
    const N: u32 = 10_000;
    /// Bytes in flight at most: well under the receive buffers.
    const WINDOW: usize = 96 * 1024;

    let (factory, server_probe) = recorder(Some(echo()));
    let server = create_datagram_endpoint(factory, local(0)).await.unwrap();
    let (echoed_tx, mut echoed_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    struct Client(tokio::sync::mpsc::UnboundedSender<Bytes>);
    impl tokio_transports::DatagramProtocol for Client {
        fn datagram_received(&mut self, data: Bytes, _addr: SocketAddress) {
            let _ = self.0.send(data);
        }
    }
    let client = create_datagram_endpoint(|| Client(echoed_tx), remote(server.sockname().unwrap()))
        .await
        .unwrap();
    for t in [&server, &client] {
        t.with_socket(|s| s.set_recv_buffer_size(4 << 20))
            .unwrap()
            .unwrap();
    }

    let mut seen = vec![false; N as usize];
    let mut arrived = 0u32;
    let mut in_flight: std::collections::VecDeque<(u32, usize)> = Default::default();
    let mut bytes_in_flight = 0;
    let mut lost = 0u32;
    let on_echo = |d: Bytes, seen: &mut Vec<bool>, arrived: &mut u32| {
        let seq = check_frame(&d);
        assert_eq!(d.len(), burst_size(seq));
        assert!(!seen[seq as usize], "datagram {seq} arrived twice");
        seen[seq as usize] = true;
        *arrived += 1;
    };
    for seq in 0..N {
        let len = burst_size(seq);
        // Pace: wait for echoes while the window is full. A datagram lost on
        // the way counts as lost after a grace period.
        while bytes_in_flight + len > WINDOW {
            let (oldest, oldest_len) = in_flight[0];
            if seen[oldest as usize] {
                in_flight.pop_front();
                bytes_in_flight -= oldest_len;
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(1), echoed_rx.recv()).await {
                Ok(Some(d)) => on_echo(d, &mut seen, &mut arrived),
                Ok(None) => panic!("client gone"),
                Err(_) => {
                    lost += 1;
                    in_flight.pop_front();
                    bytes_in_flight -= oldest_len;
                }
            }
        }
        client.sendto(frame(seq, len), None).unwrap();
        in_flight.push_back((seq, len));
        bytes_in_flight += len;
    }
    // The tail: whatever is still on its way.
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), echoed_rx.recv()).await {
        on_echo(d, &mut seen, &mut arrived);
        if arrived == N {
            break;
        }
    }
    assert!(
        arrived >= N - N / 100,
        "only {arrived} of {N} datagrams came back ({lost} given up on)"
    );
    assert_eq!(client.dropped_writes(), 0);
    client.close();
    guard("client closed", client.closed()).await;
    server.close();
    guard("server closed", server.closed()).await;
    let evs = server_probe.events();
    check_grammar(&evs);
    assert!(
        !evs.iter().any(|e| matches!(e, Ev::Error(..))),
        "no send errors"
    );
}
