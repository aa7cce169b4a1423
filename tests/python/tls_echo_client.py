"""TLS Echo Client: the asyncio documentation's TCP Echo Client example
(https://docs.python.org/3/library/asyncio-protocol.html#tcp-echo-client)
with ``ssl=``: verbatim except that the host and port come from the command
line (``tls_echo_client.py [HOST [PORT]]``, default 127.0.0.1 8443), the CA
to trust from ``$TLS_ECHO_DIR/ca.pem``, and every print flushes.

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

    ssl_ctx = ssl.create_default_context(cafile=os.path.join(CERTS, 'ca.pem'))
    transport, protocol = await loop.create_connection(
        lambda: EchoClientProtocol(message, on_con_lost),
        HOST, PORT, ssl=ssl_ctx)

    # Wait until the protocol signals that the connection
    # is lost and close the transport.
    try:
        await on_con_lost
    finally:
        transport.close()


asyncio.run(main())
