//! Panicking datagram protocols and the exception handler.
//!
//! asyncio's policy, kept here: an exception in `datagram_received` or
//! `error_received` (and in `pause_writing`/`resume_writing`) is reported to
//! the exception handler and the endpoint stays open and keeps receiving. A
//! panic in `connection_made` is fatal, as for stream transports:
//! `connection_lost(Some(CallbackPanicked))`. A panic in `connection_lost` is
//! reported and the socket is released anyway. Datagrams dropped after the
//! loss are reported from the fifth on.
//!
//! The exception handler is process-wide, so these tests run one at a time
//! (a lock) with a handler that captures every report.

mod datagram_common;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use datagram_common::*;
use tokio::net::UnixDatagram;
use tokio_transports::{
    CallbackPanicked, DatagramProtocol, DatagramTransport, ExceptionContext, SocketAddress,
    create_datagram_endpoint_from_socket, set_exception_handler,
};

/// One report: the message and the error's text.
type Report = (String, Option<String>);

/// Installs a capturing handler for the duration of one test.
struct Capture {
    reports: Arc<Mutex<Vec<Report>>>,
    _lock: MutexGuard<'static, ()>,
}

impl Capture {
    fn install() -> Capture {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        set_exception_handler(Some(Arc::new(move |ctx: &ExceptionContext<'_>| {
            sink.lock()
                .unwrap()
                .push((ctx.message.to_string(), ctx.error.map(|e| e.to_string())));
        })));
        Capture {
            reports,
            _lock: lock,
        }
    }

    fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        set_exception_handler(None);
    }
}

#[tokio::test]
async fn a_panic_in_datagram_received_is_reported_and_the_endpoint_stays_open() {
    let cap = Capture::install();
    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|_, ev| {
        if let Ev::Dgram(d, _) = ev
            && &d[..] == b"bad"
        {
            panic!("cannot parse this one");
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    b.send(b"bad").await.unwrap();
    b.send(b"good").await.unwrap();
    assert_eq!(&probe.dgram().await.0[..], b"bad");
    assert_eq!(&probe.dgram().await.0[..], b"good", "still receiving");
    assert!(!t.is_closing());
    assert_eq!(
        cap.reports(),
        [(
            "protocol.datagram_received() call failed.".to_string(),
            Some("protocol.datagram_received() panicked: cannot parse this one".to_string())
        )]
    );
    t.close();
    guard("closed", t.closed()).await;
    check_grammar(&probe.events());
}

#[tokio::test]
async fn a_panic_in_error_received_is_reported_and_the_endpoint_stays_open() {
    let cap = Capture::install();
    let (a, b) = UnixDatagram::pair().unwrap();
    let hook: Hook = Box::new(|_, ev| {
        if matches!(ev, Ev::Error(..)) {
            panic!("no error handling here");
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    // Too large for the socket's send buffer: EMSGSIZE → error_received.
    t.sendto(vec![0u8; 4 << 20], None).unwrap();
    assert!(matches!(probe.next().await, Ev::Error(..)));
    t.sendto("after", None).unwrap();
    let mut buf = [0u8; 8];
    let n = guard("datagram", b.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], b"after");
    assert!(!t.is_closing());
    let reports = cap.reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].0, "protocol.error_received() call failed.");
    t.close();
    guard("closed", t.closed()).await;
    check_grammar(&probe.events());
}

#[tokio::test]
async fn a_panic_in_pause_writing_is_reported_and_not_fatal() {
    let cap = Capture::install();
    let (a, b) = unix_pair_small_sndbuf();
    let hook: Hook = Box::new(|_, ev| {
        if matches!(ev, Ev::PauseWriting(_)) {
            panic!("pause failed");
        }
    });
    let (factory, mut probe) = recorder(Some(hook));
    let t = create_datagram_endpoint_from_socket(factory, a)
        .await
        .unwrap();
    probe.next().await;
    t.set_write_buffer_limits(Some(1000), None).unwrap();
    for i in 0..20 {
        t.sendto(frame(i, 1000), None).unwrap();
    }
    assert!(matches!(probe.next().await, Ev::PauseWriting(_)));
    assert!(!t.is_closing());
    assert_eq!(cap.reports()[0].0, "protocol.pause_writing() failed");
    // The flag flipped all the same: resume_writing follows the drain.
    let mut got = 0;
    while got < 20 {
        guard("readable", b.readable()).await.unwrap();
        got += drain_now(&b).len();
    }
    assert!(matches!(probe.next().await, Ev::ResumeWriting(_)));
    t.close();
    guard("closed", t.closed()).await;
    check_grammar(&probe.events());
}

#[tokio::test]
async fn a_panic_in_connection_made_is_fatal() {
    let cap = Capture::install();
    struct Bad(Arc<Mutex<Vec<String>>>);
    impl DatagramProtocol for Bad {
        fn connection_made(&mut self, _t: &DatagramTransport) {
            panic!("setup failed");
        }
        fn datagram_received(&mut self, _d: Bytes, _a: SocketAddress) {
            self.0.lock().unwrap().push("datagram".into());
        }
        fn connection_lost(&mut self, exc: Option<io::Error>) {
            let e = exc.expect("an error");
            let p = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<CallbackPanicked>())
                .expect("a CallbackPanicked");
            self.0.lock().unwrap().push(format!("lost: {p}"));
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, _b) = UnixDatagram::pair().unwrap();
    let l = log.clone();
    let t = create_datagram_endpoint_from_socket(move || Bad(l), a)
        .await
        .unwrap();
    guard("closed", t.closed()).await;
    assert!(t.is_closing());
    assert_eq!(
        *log.lock().unwrap(),
        ["lost: protocol.connection_made() panicked: setup failed"]
    );
    assert_eq!(
        cap.reports()[0].0,
        "Fatal error: protocol.connection_made() call failed."
    );
}

#[tokio::test]
async fn a_panic_in_connection_lost_is_reported_and_the_socket_released() {
    let cap = Capture::install();
    struct Bad;
    impl DatagramProtocol for Bad {
        fn connection_lost(&mut self, _exc: Option<io::Error>) {
            panic!("teardown failed");
        }
    }
    let (a, _b) = UnixDatagram::pair().unwrap();
    let t = create_datagram_endpoint_from_socket(|| Bad, a)
        .await
        .unwrap();
    t.close();
    guard("closed", t.closed()).await;
    assert_eq!(t.with_socket(|_| ()), None);
    assert_eq!(
        cap.reports()[0].0,
        "protocol.connection_lost() call failed."
    );
}

#[tokio::test]
async fn datagrams_dropped_after_the_loss_are_reported_from_the_fifth() {
    let cap = Capture::install();
    let (a, _b) = UnixDatagram::pair().unwrap();
    let t = create_datagram_endpoint_from_socket(|| (), a)
        .await
        .unwrap();
    t.abort();
    guard("closed", t.closed()).await;
    for _ in 0..4 {
        t.sendto("late", None).unwrap();
    }
    assert!(cap.reports().is_empty());
    t.sendto("late", None).unwrap();
    t.sendto("late", None).unwrap();
    assert_eq!(
        cap.reports(),
        vec![("socket.send() raised exception.".to_string(), None); 2]
    );
    assert_eq!(t.dropped_writes(), 6);
}
