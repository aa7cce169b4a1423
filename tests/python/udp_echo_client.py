"""UDP Echo Client: the asyncio documentation's example
(https://docs.python.org/3/library/asyncio-protocol.html#udp-echo-client),
verbatim except that the host and port come from the command line
(``udp_echo_client.py [HOST [PORT]]``, default 127.0.0.1 9999) and every
print flushes, so the output can be read through a pipe.

tests/datagram_examples.rs runs it against the Rust examples.
"""

import asyncio
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 9999


class EchoClientProtocol:
    def __init__(self, message, on_con_lost):
        self.message = message
        self.on_con_lost = on_con_lost
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        print('Send:', self.message, flush=True)
        self.transport.sendto(self.message.encode())

    def datagram_received(self, data, addr):
        print("Received:", data.decode(), flush=True)

        print("Close the socket", flush=True)
        self.transport.close()

    def error_received(self, exc):
        print('Error received:', exc, flush=True)

    def connection_lost(self, exc):
        print("Connection closed", flush=True)
        self.on_con_lost.set_result(True)


async def main():
    # Get a reference to the event loop as we plan to use
    # low-level APIs.
    loop = asyncio.get_running_loop()

    on_con_lost = loop.create_future()
    message = "Hello World!"

    transport, protocol = await loop.create_datagram_endpoint(
        lambda: EchoClientProtocol(message, on_con_lost),
        remote_addr=(HOST, PORT))

    try:
        await on_con_lost
    finally:
        transport.close()


asyncio.run(main())
