"""Unix Echo Server: the asyncio documentation's TCP Echo Server example
(https://docs.python.org/3/library/asyncio-protocol.html#tcp-echo-server)
on a Unix socket (``create_unix_server``), otherwise verbatim; the path
comes from the command line (``unix_echo_server.py PATH``) and every print
flushes, so the output can be read through a pipe.

tests/python_peers.rs runs it against the Rust examples.
"""

import asyncio
import sys

PATH = sys.argv[1]


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        peername = transport.get_extra_info('peername')
        print('Connection from {}'.format(peername), flush=True)
        self.transport = transport

    def data_received(self, data):
        message = data.decode()
        print('Data received: {!r}'.format(message), flush=True)

        print('Send: {!r}'.format(message), flush=True)
        self.transport.write(data)

        print('Close the client socket', flush=True)
        self.transport.close()


async def main():
    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    server = await loop.create_unix_server(
        EchoServerProtocol,
        PATH)

    async with server:
        await server.serve_forever()


asyncio.run(main())
