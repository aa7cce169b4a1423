//! Connecting existing sockets: the asyncio documentation's example that
//! wraps one end of a `socket.socketpair()` in a transport and waits until
//! data arrives on it. Prints:
//!
//! ```text
//! Received: abc
//! ```
//!
//! The Python original:
//!
//! ```python
//! class MyProtocol(asyncio.Protocol):
//!     def __init__(self, on_con_lost):
//!         self.transport = None
//!         self.on_con_lost = on_con_lost
//!
//!     def connection_made(self, transport):
//!         self.transport = transport
//!
//!     def data_received(self, data):
//!         print("Received:", data.decode())
//!         # We are done: close the transport;
//!         # connection_lost() will be called automatically.
//!         self.transport.close()
//!
//!     def connection_lost(self, exc):
//!         # The socket has been closed
//!         self.on_con_lost.set_result(True)
//!
//! async def main():
//!     loop = asyncio.get_running_loop()
//!     on_con_lost = loop.create_future()
//!     # Create a pair of connected sockets
//!     rsock, wsock = socket.socketpair()
//!     # Register the socket to wait for data.
//!     transport, protocol = await loop.create_connection(
//!         lambda: MyProtocol(on_con_lost), sock=rsock)
//!     # Simulate the reception of data from the network.
//!     loop.call_soon(wsock.send, 'abc'.encode())
//!     try:
//!         await protocol.on_con_lost
//!     finally:
//!         transport.close()
//!         wsock.close()
//!
//! asyncio.run(main())
//! ```
//!
//! `connect_unix_stream` plays `create_connection(sock=rsock)` for a Unix
//! socket (`create_connection_from_socket` does it for a TCP one), and
//! `Transport::closed()` replaces the `on_con_lost` future.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

use tokio_transports::{BaseProtocol, Bytes, Protocol, Transport, connect_unix_stream};

#[derive(Default)]
struct MyProtocol {
    transport: Option<Transport>,
}

impl BaseProtocol for MyProtocol {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        // The socket has been closed; `transport.closed()` resolves now.
    }
}

impl Protocol for MyProtocol {
    fn data_received(&mut self, data: Bytes) {
        println!("Received: {}", String::from_utf8_lossy(&data));

        // We are done: close the transport;
        // connection_lost() will be called automatically.
        if let Some(transport) = &self.transport {
            transport.close();
        }
    }
}

// One thread, like asyncio's event loop.
#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    // Create a pair of connected sockets (blocking, as Python's are).
    let (rsock, mut wsock) = UnixStream::pair()?;

    // Register the socket to wait for data.
    let transport = connect_unix_stream(MyProtocol::default, rsock).await?;

    // Simulate the reception of data from the network.
    wsock.write_all(b"abc")?;

    // Wait for connection_lost, then clean up.
    transport.closed().await;
    transport.close();
    drop(wsock);
    Ok(())
}
