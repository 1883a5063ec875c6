"""bench_websockets.py - the Python `websockets` peer of tools/bench/wsr-bench.c.
Run with /usr/bin/python3 (Debian's python3-websockets, 10.4).

  python3 bench_websockets.py --version     VERSION python <v>, websockets <v>
  python3 bench_websockets.py server        echo server on 127.0.0.1, port 0: READY <port>
  python3 bench_websockets.py client URL    READY once open, then one command a line on stdin:
    WARM|RUN tp|lat SIZE WINDOW MS          RESULT <msgs> <ns> <p50 ns> <p99 ns> <errors>
    QUIT                                    close and exit

The workload is the one wsr-bench.c runs itself (see wl_echo there):
  tp:  WINDOW binary messages of SIZE bytes outstanding; each echo lets one
       more go until MS have passed, then the window drains; ns is from the
       first send to the last echo.
  lat: one message at a time; p50 and p99 are nearest-rank percentiles.
Compression (permessage-deflate, on by default in websockets) is off on both
sides, as in ws_reconnect.h. max_queue is unbounded so that a window of
echoes can wait to be read without stalling the sender.
"""
import asyncio
import math
import sys
import time

import websockets

MAX = 64 * 1024 * 1024
OPTS = dict(compression=None, max_size=MAX, max_queue=None)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def nearest_rank(s, p):
    if not s:
        return 0
    return s[min(len(s), max(1, math.ceil(p * len(s)))) - 1]


async def serve():
    async def echo(ws, path=None):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    server = await websockets.serve(echo, "127.0.0.1", 0, **OPTS)
    out("READY %d" % server.sockets[0].getsockname()[1])
    await asyncio.Future()


async def run(ws, mode, size, window, ms):
    msg = bytes((i * 7 + 3) & 255 for i in range(size))
    clock = time.perf_counter_ns
    t0 = clock()
    end = t0 + ms * 1000000
    got = errors = 0
    if mode == "tp":
        sent = window
        stop = False
        for _ in range(window):
            await ws.send(msg)
        while True:
            m = await ws.recv()
            t = clock()
            got += 1
            if len(m) != size:
                errors += 1
            if not stop and t >= end:
                stop = True
            if not stop:
                sent += 1
                await ws.send(msg)
            elif got == sent:
                return "RESULT %d %d 0 0 %d" % (got, t - t0, errors)
    samples = []
    while True:
        t_sent = clock()
        await ws.send(msg)
        m = await ws.recv()
        t = clock()
        got += 1
        if len(m) != size:
            errors += 1
        samples.append(t - t_sent)
        if t >= end:
            samples.sort()
            return "RESULT %d %d %d %d %d" % (got, t - t0, nearest_rank(samples, 0.5),
                                              nearest_rank(samples, 0.99), errors)


async def client(url):
    ws = await websockets.connect(url, **OPTS)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out("READY")
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "QUIT":
            break
        if line[0] not in ("WARM", "RUN"):
            out("ERROR unknown command " + line[0])
            continue
        out(await run(ws, line[1], int(line[2]), int(line[3]), int(line[4])))
    await ws.close()


def main():
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "--version":
        out("VERSION python %s, websockets %s" % (sys.version.split()[0], websockets.__version__))
    elif role == "server":
        asyncio.run(serve())
    elif role == "client" and len(sys.argv) > 2:
        asyncio.run(client(sys.argv[2]))
    else:
        sys.stderr.write("usage: python3 bench_websockets.py --version | server | client URL\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
