"""Unix Echo Client: the asyncio documentation's TCP Echo Client example
(https://docs.python.org/3/library/asyncio-protocol.html#tcp-echo-client)
on a Unix socket (``create_unix_connection``), otherwise verbatim; the path
comes from the command line (``unix_echo_client.py PATH``) and every print
flushes.

tests/python_peers.rs runs it against the Rust examples.
"""

import asyncio
import sys

PATH = sys.argv[1]


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

    transport, protocol = await loop.create_unix_connection(
        lambda: EchoClientProtocol(message, on_con_lost),
        PATH)

    # Wait until the protocol signals that the connection
    # is lost and close the transport.
    try:
        await on_con_lost
    finally:
        transport.close()


asyncio.run(main())
