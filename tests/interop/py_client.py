"""py_client.py - a WebSocket client built on Python's `websockets` (asyncio),
the peer that tests/test_interop.c runs against our server. Run it with
/usr/bin/python3 (Debian's python3-websockets).

  python3 py_client.py --version
  python3 py_client.py URL [--protocols a,b] ACTION...

The same actions, test payloads and output lines as ws_client.js; exits 0
when every check passed. A fragmented text message is sent as str pieces of
FRAG characters (websockets encodes each piece on its own), a binary one as
FRAG-byte pieces.
"""
import asyncio
import json
import sys

import websockets


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def q(s):
    return json.dumps(s, ensure_ascii=False)


BIN_UNIT = bytes((i * 7 + 3) & 255 for i in range(251))
TEXT_UNIT = "a\u00e9\u20ac\U0001F600"   # 10 bytes of UTF-8


def payload(kind, size):
    if kind == "binary":
        return (BIN_UNIT * (size // 251 + 1))[:size]
    return TEXT_UNIT * (size // 10) + "x" * (size % 10)


failed = False


def bad(line):
    global failed
    failed = True
    out(line)


def split(p, frag):
    return [p[i:i + frag] for i in range(0, len(p), frag)] or [p[:0]]


async def expect(ws, label, kind, size):
    want = payload(kind, size)
    try:
        got = await ws.recv()
    except websockets.ConnectionClosed:
        return bad(label + " bad: closed first")
    if type(got) is not type(want):
        return bad(label + " bad: type")
    if got != want:
        return bad("%s bad: %d differ" % (label, len(got)))
    out(label + " ok")


async def run(url, protocols, actions):
    async with websockets.connect(url, subprotocols=protocols or None, max_size=64 * 1024 * 1024,
                                  ping_interval=None) as ws:
        out("OPEN " + q(ws.subprotocol or ""))
        for act in actions:
            verb, _, rest = act.partition(":")
            args = rest.split(":")
            if verb == "echo":
                kind, size = args[0], int(args[1])
                await ws.send(payload(kind, size))
                await expect(ws, "ECHO %s %d" % (kind, size), kind, size)
            elif verb in ("frag", "fragping"):
                kind, size, frag = args[0], int(args[1]), int(args[2])
                pieces = split(payload(kind, size), frag)

                async def frames():
                    for i, piece in enumerate(pieces):
                        yield piece
                        if i == 0 and verb == "fragping":
                            pongs.append(await ws.ping(b"mid"))

                pongs = []
                await ws.send(frames())
                if verb == "fragping":
                    await pongs[0]
                    out("PONG " + q("mid"))
                await expect(ws, "FRAG %s %d %d" % (kind, size, frag), kind, size)
            elif verb == "recv":
                await expect(ws, "RECV %s %d" % (args[0], int(args[1])), args[0], int(args[1]))
            elif verb == "ping":
                await (await ws.ping(rest.encode()))
                out("PONG " + q(rest))
            elif verb == "send":
                await ws.send(rest)
            elif verb == "close":
                code, _, reason = rest.partition(":")
                await ws.close(int(code), reason)
            elif verb == "drop":
                ws.transport.close()    # FIN without a close frame
                await ws.wait_closed()
            elif verb == "wait-close":
                try:
                    extra = await ws.recv()
                    bad("ERROR " + q("message instead of close: %r" % extra[:40]))
                except websockets.ConnectionClosed:
                    pass
            else:
                bad("ERROR " + q("unknown action " + act))
        await ws.close()
    out("CLOSE %d %s" % (ws.close_code, q(ws.close_reason or "")))


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "--version":
        out("VERSION python=%s websockets=%s" % (sys.version.split()[0], websockets.__version__))
        return 0
    url = argv.pop(0)
    protocols = []
    if argv and argv[0] == "--protocols":
        argv.pop(0)
        protocols = [s.strip() for s in argv.pop(0).split(",")]
    try:
        asyncio.run(asyncio.wait_for(run(url, protocols, argv), 120))
    except Exception as e:   # noqa: BLE001 - every failure becomes one ERROR line
        bad("ERROR " + q("%s: %s" % (type(e).__name__, e)))
    out("DONE")
    return 1 if failed else 0


sys.exit(main())
