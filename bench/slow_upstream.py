#!/usr/bin/env python3
"""An upstream AS for bench/memory.sh that answers every request after DELAY seconds: an
authorization request with a 302 to the redirect_uri carrying a code, its state and the signal
(as bench/instructions.sh's upstream does), so that requests stay in flight in the proxy.

    slow_upstream.py PORT DELAY
"""
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

PORT, DELAY = int(sys.argv[1]), float(sys.argv[2])


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            state = parse_qs(urlsplit(target).query).get("state", [""])[0]
            await asyncio.sleep(DELAY)
            writer.write(
                b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\nX-Vert-Representation: none\r\n"
                + f"Location: https://pgo.example.nl/callback?code=C0DE&state={state}\r\n\r\n".encode()
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main())
