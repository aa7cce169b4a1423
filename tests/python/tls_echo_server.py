"""TLS Echo Server: the asyncio documentation's TCP Echo Server example
(https://docs.python.org/3/library/asyncio-protocol.html#tcp-echo-server)
with ``ssl=``: verbatim except that the host and port come from the command
line (``tls_echo_server.py [HOST [PORT]]``, default 127.0.0.1 8443), the
certificate and key from ``$TLS_ECHO_DIR`` (``cert.pem``, ``key.pem``), and
every print flushes, so the output can be read through a pipe.

tests/python_peers.rs runs it against the Rust examples.
"""

import asyncio
import os
import ssl
import sys
import tempfile

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8443
CERTS = os.environ.get('TLS_ECHO_DIR',
                       os.path.join(tempfile.gettempdir(), 'tokio-transports-tls-echo'))


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

    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(os.path.join(CERTS, 'cert.pem'),
                            os.path.join(CERTS, 'key.pem'))

    server = await loop.create_server(
        EchoServerProtocol,
        HOST, PORT, ssl=ssl_ctx)

    async with server:
        await server.serve_forever()


asyncio.run(main())
