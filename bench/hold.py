#!/usr/bin/env python3
"""Opens N client connections to 127.0.0.1:PORT, sends each one request (keep-alive), reads its
response head when WAIT is "answer", and holds every connection open until stdin closes.
Prints "ready" once all requests are out (and, with "answer", answered). For bench/memory.sh.

    hold.py PORT N PATH answer|sent
"""
import asyncio
import sys

PORT, N, PATH, WAIT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


async def one(conns):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hold\r\n\r\n".encode())
    await writer.drain()
    if WAIT == "answer":
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
    conns.append((reader, writer))


async def main():
    conns = []
    sem = asyncio.Semaphore(500)

    async def guarded():
        async with sem:
            await one(conns)

    await asyncio.gather(*(guarded() for _ in range(N)))
    print("ready", len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
