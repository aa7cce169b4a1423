//! The public API's error contract: OS errors that gain an address keep
//! their code (reachable through `source()` and `raw_os_error`), and every
//! creation function returns an error, not a panic, outside a runtime.

use std::error::Error as _;
use std::future::Future;
use std::io::{self, ErrorKind};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tokio_transports::{
    AddressAction, AddressError, ConnectOptions, DatagramOptions, ServerOptions, SocketAddress,
    connect_io, connect_unix_stream, create_connection, create_connection_from_socket,
    create_datagram_endpoint, create_datagram_endpoint_from_socket, create_server,
    create_server_from_socket, raw_os_error,
};

/// The code of the `io::Error` that is `err`'s source, by std alone.
fn source_code(err: &io::Error) -> Option<i32> {
    err.source()?
        .downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
}

fn detail(err: &io::Error) -> &AddressError {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<AddressError>())
        .unwrap_or_else(|| panic!("no AddressError in {err:?}"))
}

#[tokio::test]
async fn server_bind_in_use_keeps_eaddrinuse_and_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let opts = ServerOptions::default().reuse_address(false);
    let err = create_server(|| (), "127.0.0.1", addr.port(), opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "error while attempting to bind on address ('127.0.0.1', {}): address already in use",
            addr.port()
        )),
        "{err}"
    );
    assert_eq!(raw_os_error(&err), Some(libc::EADDRINUSE));
    assert_eq!(source_code(&err), Some(libc::EADDRINUSE));
    let d = detail(&err);
    assert_eq!(d.action(), AddressAction::Bind);
    assert_eq!(d.address(), &SocketAddress::Inet(addr));
    assert_eq!(d.raw_os_error(), Some(libc::EADDRINUSE));
    assert_eq!(d.os_error().kind(), ErrorKind::AddrInUse);
}

#[tokio::test]
async fn connect_refused_keeps_econnrefused_and_names_the_address() {
    // A port that was just free: nothing listens there now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = create_connection(|| (), "127.0.0.1", addr.port(), ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "Connect call failed ('127.0.0.1', {}): connection refused",
            addr.port()
        )),
        "{err}"
    );
    assert_eq!(raw_os_error(&err), Some(libc::ECONNREFUSED));
    assert_eq!(source_code(&err), Some(libc::ECONNREFUSED));
    assert_eq!(detail(&err).action(), AddressAction::Connect);
    assert_eq!(detail(&err).address(), &SocketAddress::Inet(addr));
}

#[tokio::test]
async fn connect_local_addr_in_use_keeps_eaddrinuse() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let opts = ConnectOptions::default().local_addr(busy_addr);
    let err = create_connection(|| (), "127.0.0.1", target.port(), opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert_eq!(raw_os_error(&err), Some(libc::EADDRINUSE));
    assert_eq!(detail(&err).action(), AddressAction::Bind);
    assert_eq!(detail(&err).address(), &SocketAddress::Inet(busy_addr));
}

#[tokio::test]
async fn datagram_bind_in_use_keeps_eaddrinuse() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = create_datagram_endpoint(|| (), DatagramOptions::default().local_addr(addr))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains(&addr.port().to_string()), "{err}");
    assert_eq!(raw_os_error(&err), Some(libc::EADDRINUSE));
    assert_eq!(source_code(&err), Some(libc::EADDRINUSE));
    assert_eq!(detail(&err).address(), &SocketAddress::Inet(addr));
}

#[test]
fn raw_os_error_reads_bare_and_plain_errors() {
    assert_eq!(
        raw_os_error(&io::Error::from_raw_os_error(libc::EPIPE)),
        Some(libc::EPIPE)
    );
    assert_eq!(raw_os_error(&io::Error::other("no code")), None);
}

/// Poll a creation future once, with no runtime anywhere: it must be ready
/// with an error (tokio would panic if it reached the socket).
fn outside_runtime<T>(fut: impl Future<Output = io::Result<T>>) -> io::Error {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Err(e)) => e,
        Poll::Ready(Ok(_)) => panic!("created a transport without a runtime"),
        Poll::Pending => panic!("pending without a runtime"),
    }
}

#[test]
fn connect_io_outside_a_runtime_is_an_error() {
    let (a, _b) = tokio::io::duplex(64);
    let err = outside_runtime(connect_io(|| (), a));
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn every_creation_function_outside_a_runtime_is_an_error() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    outside_runtime(connect_unix_stream(|| (), a));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    outside_runtime(create_connection_from_socket(
        || (),
        sock,
        Default::default(),
    ));
    outside_runtime(create_connection(
        || (),
        "127.0.0.1",
        1,
        ConnectOptions::default(),
    ));
    outside_runtime(create_server(
        || (),
        "127.0.0.1",
        0,
        ServerOptions::default(),
    ));
    outside_runtime(create_server_from_socket(
        || (),
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        ServerOptions::default(),
    ));
    let (d, _e) = std::os::unix::net::UnixDatagram::pair().unwrap();
    outside_runtime(create_datagram_endpoint_from_socket(|| (), d));
    outside_runtime(create_datagram_endpoint(
        || (),
        DatagramOptions::default().local_addr(("127.0.0.1", 0)),
    ));
}
