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
    create_unix_server, set_exception_handler,
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

/// A client connection of either kind.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Stream for T {}

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
    // TCP, then a Unix server: one accept loop serves both.
    let server = create_server(Echo::default, "127.0.0.1", 0, ServerOptions::default())
        .await
        .expect("server");
    let addr = server.sockets()[0];
    check_emfile(&server, &mut rx, async move {
        Box::new(tokio::net::TcpStream::connect(addr).await.expect("connect")) as Box<dyn Stream>
    })
    .await;
    server.close();
    server.wait_closed().await;
    let path = std::env::temp_dir().join(format!("tt-emfile-{}.sock", std::process::id()));
    let server = create_unix_server(Echo::default, &path, ServerOptions::default())
        .await
        .expect("unix server");
    let p2 = path.clone();
    check_emfile(&server, &mut rx, async move {
        Box::new(tokio::net::UnixStream::connect(p2).await.expect("connect")) as Box<dyn Stream>
    })
    .await;
    drop(server);
    assert!(!path.exists());
    set_exception_handler(None);
}

async fn check_emfile(
    server: &tokio_transports::Server,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    connect: impl std::future::Future<Output = Box<dyn Stream>>,
) {
    // Reports from an earlier round are not this round's.
    while rx.try_recv().is_ok() {}
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
    let mut client = connect.await;

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
}
