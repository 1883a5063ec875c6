"""py_server.py - a WebSocket server built on Python's `websockets` (asyncio),
the peer that tests/test_interop.c runs against our client. Run it with
/usr/bin/python3 (Debian's python3-websockets).

  python3 py_server.py [--port N] [--subprotocols a,b] [--ping PAYLOAD]
                       [--close-on K CODE REASON] [--drop-on K] [--fragment N]

The same arguments and output lines as ws_server.js: the port first, then
OPEN "<subprotocol>", MSG <text|binary> <len> <sha1> ["<text>"],
PONG "<payload>", CLOSE <code> "<reason>". With --fragment N a text echo
goes out as str pieces of N characters (websockets encodes each on its own,
so no frame ends inside a character), a binary one in N-byte frames, with
a ping "mid <k>" (for the k-th message) after the first.
"""
import argparse
import asyncio
import hashlib
import json
import sys

import websockets


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def q(s):
    return json.dumps(s, ensure_ascii=False)


ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--subprotocols", default="")
ap.add_argument("--ping", default=None)
ap.add_argument("--close-on", nargs=3, default=None)
ap.add_argument("--drop-on", type=int, default=0)
ap.add_argument("--fragment", type=int, default=0)
opt = ap.parse_args()
subprotocols = [s.strip() for s in opt.subprotocols.split(",") if s.strip()]


async def ping(ws, data):
    try:
        waiter = await ws.ping(data.encode())
        await waiter
        out("PONG " + q(data))
    except websockets.ConnectionClosed:
        pass


async def handler(ws, path=None):
    out("OPEN " + q(ws.subprotocol or ""))
    pinger = asyncio.ensure_future(ping(ws, opt.ping)) if opt.ping is not None else None
    n = 0
    try:
        async for msg in ws:
            n += 1
            data = msg.encode() if isinstance(msg, str) else msg
            line = "MSG %s %d %s" % ("text" if isinstance(msg, str) else "binary", len(data),
                                     hashlib.sha1(data).hexdigest())
            if isinstance(msg, str) and len(data) <= 64:
                line += " " + q(msg)
            out(line)
            if opt.close_on and n == int(opt.close_on[0]):
                await ws.close(int(opt.close_on[1]), opt.close_on[2])
            elif n == opt.drop_on:
                ws.transport.close()    # FIN without a close frame
            elif opt.fragment:
                pieces = [msg[i:i + opt.fragment] for i in range(0, len(msg), opt.fragment)] or [msg]

                async def frames(pieces=pieces, n=n):
                    for i, piece in enumerate(pieces):
                        yield piece
                        if i == 0:    # websockets wants each unanswered ping's payload unique
                            await ws.ping(b"mid %d" % n)

                await ws.send(frames())
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    if pinger:
        pinger.cancel()
    await ws.wait_closed()
    out("CLOSE %d %s" % (ws.close_code, q(ws.close_reason or "")))


async def main():
    async with websockets.serve(handler, "127.0.0.1", opt.port, subprotocols=subprotocols or None,
                                max_size=64 * 1024 * 1024, ping_interval=None) as server:
        out(str(server.sockets[0].getsockname()[1]))
        await asyncio.Future()


asyncio.run(main())
