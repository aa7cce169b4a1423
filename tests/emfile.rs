//! Accept errors for lack of file descriptors (EMFILE) pause accepting for
//! `ACCEPT_RETRY_DELAY`, get reported to the exception handler, and the
//! server goes on afterwards. This file holds one test only: it lowers the
//! process's RLIMIT_NOFILE, which no other test may share.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_transports::{
    BaseProtocol, ExceptionContext, Protocol, ServerOptions, Transport, create_server,
    set_exception_handler,
};

#[derive(Default)]
struct Echo(Option<Transport>);
impl BaseProtocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.0 = Some(t.clone());
    }
}
impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.0 {
            t.write(data).expect("write");
        }
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64)
}

#[tokio::test(flavor = "current_thread")]
async fn emfile_pauses_accepting_and_the_server_recovers() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    set_exception_handler(Some(Arc::new(move |ctx: &ExceptionContext<'_>| {
        let _ = tx.send(format!(
            "{} | {}",
            ctx.message,
            ctx.error.map(|e| e.to_string()).unwrap_or_default()
        ));
    })));
    let server = create_server(Echo::default, "127.0.0.1", 0, ServerOptions::default())
        .await
        .expect("server");
    let addr = server.sockets()[0];

    // Lower the limit close to what is open, then use up every descriptor
    // but one, which the client socket takes.
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let low = libc::rlimit {
        rlim_cur: open_fds() + 32,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    let mut hogs = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hogs.push(f);
        assert!(hogs.len() < 10_000, "the lowered limit did not take");
    }
    hogs.pop();
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");

    let report = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no accept error reported")
        .expect("handler channel closed");
    assert!(
        report.starts_with("socket.accept() out of system resource"),
        "unexpected report: {report}"
    );

    // Give descriptors back; after the retry delay the pending connection is
    // accepted and served.
    hogs.clear();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    client.write_all(b"still serving").await.expect("write");
    let mut buf = [0u8; 13];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut buf))
        .await
        .expect("echo never came")
        .expect("read");
    assert_eq!(&buf, b"still serving");
    assert!(server.is_serving());
    set_exception_handler(None);
}
