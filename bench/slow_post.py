#!/usr/bin/env python3
"""Slow POST: 300 clients each announce a 1 MB body and send one byte. Prints, each second for
five seconds, how many connections the upstream (a stand-in AS on 127.0.0.1) holds.

    python3 bench/slow_post.py target/debug/medmij-vert-proxy

Before request bodies were buffered (listen.max_body_bytes / body_read_timeout): 300.
After: 0. Everything binds to 127.0.0.1; the run stops by itself."""
import asyncio, subprocess, sys, os, re
binary = os.path.abspath(sys.argv[1])
held = set()
async def upstream(reader, writer):
    held.add(writer)
    try:
        while await reader.read(4096):
            pass
    finally:
        held.discard(writer)
async def main():
    srv = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    os.chdir(os.environ.get("TMPDIR", "/tmp"))
    open("slow_post_proxy.toml","w").write(f'[listen]\naddr="127.0.0.1:0"\nworkers=1\n[upstream]\nurl="http://127.0.0.1:{port}"\n[clients]\nstatic=[{{hostname="pgo.example.nl"}}]\n[log]\nlevel="info"\n')
    p = subprocess.Popen([binary, "--config", "slow_post_proxy.toml"], stderr=subprocess.PIPE, text=True)
    while True:
        line = p.stderr.readline()
        m = re.search(r"addr=(\S+)", line)
        if "listening" in line and m: addr = m.group(1); break
    host, pport = addr.rsplit(":",1)
    clients = []
    for _ in range(300):
        r, w = await asyncio.open_connection(host, int(pport))
        w.write(b"POST /oauth2/token HTTP/1.1\r\nHost: as\r\nContent-Length: 1000000\r\n\r\nx")
        await w.drain()
        clients.append(w)
    for t in range(5):
        await asyncio.sleep(1)
        print(f"after {t+1}s: upstream connections held = {len(held)}")
    p.terminate()
    p.wait()
    sys.stdout.flush()
    os._exit(0)  # the held sockets go with the process
asyncio.run(main())
