"""UDP Echo Server: the asyncio documentation's example
(https://docs.python.org/3/library/asyncio-protocol.html#udp-echo-server),
verbatim except that the host and port come from the command line
(``udp_echo_server.py [HOST [PORT]]``, default 127.0.0.1 9999) and every
print flushes, so the output can be read through a pipe.

tests/datagram_examples.rs runs it against the Rust examples.
"""

import asyncio
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 9999


class EchoServerProtocol:
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        message = data.decode()
        print('Received %r from %s' % (message, addr), flush=True)
        print('Send %r to %s' % (message, addr), flush=True)
        self.transport.sendto(data, addr)


async def main():
    print("Starting UDP server", flush=True)

    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    # One protocol instance will be created to serve all
    # client requests.
    transport, protocol = await loop.create_datagram_endpoint(
        EchoServerProtocol,
        local_addr=(HOST, PORT))

    try:
        await asyncio.sleep(3600)  # Serve for 1 hour.
    finally:
        transport.close()


asyncio.run(main())
