#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/.

Seeds are small valid inputs of every kind, from which the fuzzer mutates:
frames with each length encoding, fragmented messages, control frames,
close frames, upgrade requests and answers, URLs, UTF-8 texts. Run it again
after changing the input layout of a target; files it did not write (the
crashers saved under their finding's name) are left alone.

    python3 tests/fuzz/make_corpus.py
"""
import base64
import hashlib
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEYS = [b"dGhlIHNhbXBsZSBub25jZQ==", b"AQIDBAUGBwgJCgsMDQ4PEA=="]


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(op, payload, fin=True, mask=None, rsv=0, force_len=None):
    """One frame; mask is a 4-byte key (client to server) or None."""
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    n = len(payload) if force_len is None else force_len
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is not None:
        head += mask
        payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
    return head + payload


def frames_seeds(masked):
    """Streams a peer might send: (name, bytes)."""
    key = b"\x37\xfa\x21\x3d" if masked else None

    def f(op, payload, **kw):
        return frame(op, payload, mask=key, **kw)

    close = lambda code, reason=b"": f(8, struct.pack(">H", code) + reason)
    yield "text", f(1, b"Hello")
    yield "binary", f(2, bytes(range(256)) * 2)
    yield "empty-text", f(1, b"")
    yield "len125", f(2, b"a" * 125)
    yield "len126-16bit", f(2, b"b" * 126)
    yield "len65535-16bit", f(2, b"c" * 300, force_len=65535)       # declared, then cut short
    yield "len65536-64bit", f(2, b"d" * 300, force_len=65536)
    yield "len-huge-64bit", f(2, b"", force_len=1 << 40)
    yield "len-top-bit", f(2, b"", force_len=1 << 63)
    # 5 in the 16-bit form; the payload is masked with the key, or plain
    yield "nonminimal-16", bytes([0x82, (0x80 if masked else 0) | 126, 0, 5]) + f(2, b"hello")[-9 if masked else -5:]
    yield "utf8-multibyte", f(1, "κόσμε €𝄞 ünïcödé".encode())
    yield "utf8-bad", f(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")
    yield "utf8-split-fragments", f(1, "x€".encode()[:2], fin=False) + f(0, "x€".encode()[2:], fin=True)
    yield "fragmented-3", f(1, b"one ", fin=False) + f(0, b"two ", fin=False) + f(0, b"three")
    yield "fragmented-ping-between", f(2, b"ab", fin=False) + f(9, b"ping!") + f(0, b"cd") + f(10, b"pong")
    yield "fragmented-empty", f(1, b"", fin=False) + f(0, b"", fin=False) + f(0, b"")
    yield "continuation-alone", f(0, b"orphan")
    yield "new-message-inside", f(1, b"a", fin=False) + f(1, b"b")
    yield "ping-pong", f(9, b"") + f(9, b"p" * 125) + f(10, b"unsolicited")
    yield "ping-126", f(9, b"p" * 126)
    yield "ping-fragmented", f(9, b"p", fin=False)
    yield "reserved-bits", f(1, b"rsv", rsv=4)
    yield "reserved-opcode", f(3, b"op3") + f(11, b"opB")
    yield "close-1000-reason", close(1000, b"bye") + f(1, b"after close")
    yield "close-empty", f(8, b"")
    yield "close-1byte", f(8, b"\x03")
    yield "close-1005", close(1005)
    yield "close-4999-123", close(4999, b"r" * 123)
    yield "close-bad-utf8", close(1001, b"\xff")
    yield "many-small", b"".join(f(1 + (i & 1), bytes([65 + i % 26]) * i) for i in range(40))
    # The other role's framing: masked where unmasked is due, or the reverse.
    other = b"\x00\x00\x00\x00" if not masked else None
    yield "wrong-masking", frame(1, b"hi", mask=other)


def frames_corpus(target, masked):
    # settings byte, three seeds, then the wire; a few settings per stream.
    settings = [0x06, 0x0E, 0x16, 0x1E, 0x63, 0x00, 0x41]
    for i, (name, wire) in enumerate(frames_seeds(masked)):
        s = settings[i % len(settings)]
        write(target, name, bytes([s, 17, 5, 9]) + wire)
    # With allocation failures (bit 7; byte 4 is when they start).
    write(target, "faults-ping-text", bytes([0x86, 1, 2, 3, 2]) + b"".join(
        w for n, w in frames_seeds(masked) if n in ("ping-pong", "fragmented-3")))


def roundtrip_corpus():
    head_and_mask = bytes([0x21, 0, 0, 0, 0, 0, 0, 1, 0, 0xA, 0xB, 0xC, 0xD, 5, 0, 1, 2, 65, 66, 67, 68, 69])

    def step(kind, payload, frag=0, big=False):
        n = len(payload)
        return bytes([kind | frag << 3 | (0x80 if big else 0)]) + struct.pack(">H", n) + payload

    text = "Grüße, 世界 🌍".encode()
    script = [
        ("text", step(0, text)),
        ("text-fragmented", step(0, text * 5, frag=2)),
        ("binary-fragmented", step(1, bytes(range(200)), frag=3)),
        ("bad-text", step(2, b"ok\xc3(")),
        ("ping-pong", step(3, b"are you there") + step(4, b"yes")),
        ("ping-too-big", step(3, b"p" * 126)),
        ("close-1000", step(5, b"\x03\xe8" + b"done")),
        ("big-binary", step(1, b"\x01\x02\x03", big=True)[:1] + struct.pack(">H", 65000) + b"xyz"),
        ("mixed", step(0, b"a") + step(3, b"") + step(1, b"b" * 290, frag=1) + step(6, b"") + step(5, b"\x0f\xa0")),
    ]
    for setup in (0, 1, 2, 5, 7):
        for name, s in script:
            write("fuzz_roundtrip", "%s-setup%d" % (name, setup), head_and_mask + bytes([setup]) + s)


def accept(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_corpus():
    req = (b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
           b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEYS[0] + b"\r\n"
           b"Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n"
           b"Sec-WebSocket-Protocol: chat, superchat\r\n\r\n")
    write("fuzz_handshake_request", "valid", b"\x00" + req)
    write("fuzz_handshake_request", "valid-small-limit", b"\x03" + req)
    write("fuzz_handshake_request", "valid-absolute-uri",
          b"\x00" + req.replace(b"GET /chat?room=1", b"GET http://example.com/chat"))
    write("fuzz_handshake_request", "version-8", b"\x00" + req.replace(b"Version: 13", b"Version: 8"))
    write("fuzz_handshake_request", "no-key", b"\x00" + req.replace(b"Sec-WebSocket-Key", b"X-Key"))
    write("fuzz_handshake_request", "post", b"\x00" + req.replace(b"GET", b"POST"))
    write("fuzz_handshake_request", "incomplete", b"\x00" + req[:-2])
    write("fuzz_handshake_request", "too-large", b"\x01" + req)
    write("fuzz_handshake_request", "split-headers",
          b"\x00" + req.replace(b"Connection: keep-alive, Upgrade", b"Connection: keep-alive\r\nConnection: Upgrade"))

    for ki, key in enumerate(KEYS):
        ok = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept(key) + b"\r\n")
        sel = ki << 4
        write("fuzz_handshake_response", "valid-key%d" % ki, bytes([sel]) + ok + b"\r\n")
        write("fuzz_handshake_response", "valid-proto-key%d" % ki,
              bytes([sel | 2 << 2]) + ok + b"Sec-WebSocket-Protocol: superchat\r\n\r\n")
        write("fuzz_handshake_response", "valid-frames-after-key%d" % ki, bytes([sel | 1 << 2]) + ok + b"\r\n\x81\x02hi")
    write("fuzz_handshake_response", "refused-503",
          b"\x00HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n")
    write("fuzz_handshake_response", "refused-429-date",
          b"\x00HTTP/1.1 429 Too Many Requests\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n")
    write("fuzz_handshake_response", "http10-101",
          b"\x00HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    write("fuzz_handshake_response", "extension",
          b"\x00HTTP/1.1 101 OK\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
    write("fuzz_handshake_response", "incomplete", b"\x01HTTP/1.1 101 Switching")


def url_corpus():
    urls = [b"ws://example.com/chat", b"wss://example.com:8443/a/b?x=1&y=2", b"ws://127.0.0.1:9001",
            b"ws://[::1]:9001/ws", b"WSS://[2001:db8::1]/", b"ws://h?only=query", b"ws://host:0/",
            b"ws://host:65536/", b"ws://host/#frag", b"http://example.com/", b"ws://user@host/",
            b"ws://h\xc3\xa9st/p\xc3\xa4th"]
    for i, u in enumerate(urls):
        write("fuzz_url", "url%02d" % i, u)
    write("fuzz_url", "with-headers", b"ws://example.com/x\0Authorization: Bearer abc\r\nX-Trace: 1\n")
    write("fuzz_url", "bad-header", b"ws://example.com/x\0NoColonHere\r\n")
    write("fuzz_url", "many-headers", b"ws://h/\0" + b"".join(b"X-H%d: v\r\n" % i for i in range(70)))


def utf8_corpus():
    texts = ["plain ascii", "κόσμε", "€𝄞", "\U0010FFFF\uFFFF"]
    for i, t in enumerate(texts):
        write("fuzz_utf8", "valid%d" % i, bytes([i * 5]) + t.encode())
    bad = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
           b"\xce\xba\xe1", b"\x80", b"ok\xf0\x9f\x98"]
    for i, b in enumerate(bad):
        write("fuzz_utf8", "invalid%d" % i, bytes([3 + i]) + b)


if __name__ == "__main__":
    frames_corpus("fuzz_frames_server", masked=True)
    frames_corpus("fuzz_frames_client", masked=False)
    roundtrip_corpus()
    handshake_corpus()
    url_corpus()
    utf8_corpus()
