"""TCP Echo Client: the asyncio documentation's example
(https://docs.python.org/3/library/asyncio-protocol.html#tcp-echo-client),
verbatim except that the host and port come from the command line
(``tcp_echo_client.py [HOST [PORT]]``, default 127.0.0.1 8888) and every
print flushes, so the output can be read through a pipe.

tests/python_peers.rs runs it against the Rust examples.
"""

import asyncio
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8888


class EchoClientProtocol(asyncio.Protocol):
    def __init__(self, message, on_con_lost):
        self.message = message
        self.on_con_lost = on_con_lost

    def connection_made(self, transport):
        transport.write(self.message.encode())
        print('Data sent: {!r}'.format(self.message), flush=True)

    def data_received(self, data):
        print('Data received: {!r}'.format(data.decode()), flush=True)

    def connection_lost(self, exc):
        print('The server closed the connection', flush=True)
        self.on_con_lost.set_result(True)


async def main():
    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    on_con_lost = loop.create_future()
    message = 'Hello World!'

    transport, protocol = await loop.create_connection(
        lambda: EchoClientProtocol(message, on_con_lost),
        HOST, PORT)

    # Wait until the protocol signals that the connection
    # is lost and close the transport.
    try:
        await on_con_lost
    finally:
        transport.close()


asyncio.run(main())
