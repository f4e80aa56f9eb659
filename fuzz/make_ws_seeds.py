#!/usr/bin/python3
"""Writes the seed corpus of fuzz_ws_frames (fuzz/corpus/fuzz_ws_frames/): client WebSocket frames
(masked, as RFC 6455 requires of clients) after the two mode bytes the target reads first (see
fuzz/fuzz_ws_frames.cpp): byte 0 = deflate offer (bits 0-2) | message bound (bits 3-5) | small
reads (bit 6), byte 1 = read size."""
import json
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_ws_frames")
MASK = b"\x37\xfa\x21\x3d"


def frame(opcode, payload, fin=True, rsv1=False, mask=MASK):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    if mask is None:
        return bytes([head[0], head[1] & 0x7F]) + head[2:] + payload
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def masked(payload):
    return bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))


def huge_compressed_frame(opcode, declared):
    """A compressed frame declaring `declared` bytes, followed by a valid deflate stream that
    inflates to more than one read's worth (so that Beast asks for a buffer of the declared size
    for the next read)."""
    return bytes([0xC0 | opcode, 0xFF]) + struct.pack("!Q", declared) + MASK + \
        masked(deflate(EVENT * 40))


def deflate(payload):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


EVENT = json.dumps({"api_key": "k", "timestamp": 1700000000.5, "method": "GET",
                    "endpoint": "/api/users/42?x=1", "client_ip": "203.0.113.7",
                    "status_code": 200, "latency_ms": 3.2,
                    "headers": {"user-agent": "curl/8", "x-api-key": "s3cr3t"},
                    "payload": "{\"q\":\"' OR 1=1 --\"}", "seq": 7}).encode()
CLOSE = frame(0x8, struct.pack("!H", 1000) + b"bye")


def mode(offer=0, bound=0, small=False, size=0):
    return bytes([offer | (bound << 3) | (0x40 if small else 0), size])


SEEDS = {
    "text-event": mode() + frame(0x1, EVENT) + CLOSE,
    "text-event-small-reads": mode(small=True, size=3) + frame(0x1, EVENT) + CLOSE,
    "two-events-then-eof": mode() + frame(0x1, EVENT) + frame(0x1, b"{\"method\":\"POST\"}"),
    "binary": mode() + frame(0x2, b"\x00\x01\x02garbage\xff") + CLOSE,
    "fragmented": mode() + frame(0x1, EVENT[:20], fin=False) + frame(0x9, b"ping!") +
    frame(0x0, EVENT[20:60], fin=False) + frame(0x0, EVENT[60:]) + CLOSE,
    "ping-pong-close": mode() + frame(0x9, b"hello") + frame(0xA, b"unsolicited") + CLOSE,
    "close-no-reason": mode() + frame(0x8, b""),
    "close-bad-code": mode() + frame(0x8, struct.pack("!H", 1005)),
    "close-one-byte": mode() + frame(0x8, b"\x03"),
    "unmasked": mode() + frame(0x1, b"{}", mask=None),
    "reserved-opcode": mode() + frame(0x3, b"x"),
    "control-too-long": mode() + frame(0x9, b"p" * 126),
    "control-fragmented": mode() + frame(0x9, b"p", fin=False),
    "continuation-first": mode() + frame(0x0, b"x"),
    "invalid-utf8-text": mode() + frame(0x1, b"{\"method\":\"\xc0\xaf\"}") + CLOSE,
    "utf8-split-across-fragments": mode() + frame(0x1, b"\"\xe2\x82", fin=False) +
    frame(0x0, b"\xac\"") + CLOSE,
    "len16": mode() + frame(0x1, b"[" + b"1," * 150 + b"1]") + CLOSE,
    "len64-huge-declared": mode() + bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 62) + MASK + b"x",
    "over-small-bound": mode(bound=2) + frame(0x1, b"a" * 100) + CLOSE,
    "over-bound-fragments": mode(bound=1) + frame(0x1, b"a" * 20, fin=False) +
    frame(0x0, b"b" * 20) + CLOSE,
    "deflate-event": mode(offer=1) + frame(0x1, deflate(EVENT), rsv1=True) + CLOSE,
    "deflate-context-takeover": mode(offer=1) + frame(0x1, deflate(EVENT), rsv1=True) +
    frame(0x1, deflate(EVENT), rsv1=True) + CLOSE,
    "deflate-no-context": mode(offer=3) + frame(0x1, deflate(EVENT), rsv1=True) + CLOSE,
    "deflate-window-bits": mode(offer=4) + frame(0x1, deflate(b"A" * 5000), rsv1=True) + CLOSE,
    "deflate-bomb-small-bound": mode(offer=2, bound=3) + frame(0x2, deflate(b"\x00" * 200000),
                                                              rsv1=True) + CLOSE,
    "deflate-fragmented": mode(offer=1, small=True, size=5) +
    frame(0x1, deflate(EVENT)[:30], fin=False, rsv1=True) +
    frame(0x0, deflate(EVENT)[30:]) + CLOSE,
    "rsv1-without-deflate": mode() + frame(0x1, deflate(EVENT), rsv1=True),
    "deflate-corrupt": mode(offer=1) + frame(0x1, b"\xff\xff\xff\x00garbage", rsv1=True),
    "deflate-on-control": mode(offer=1) + frame(0x9, b"x", rsv1=True),
    # Finding: a compressed frame declaring a huge length made Beast size the read buffer from
    # that length (bad_alloc out of the I/O thread: the server died; or gigabytes allocated).
    "regress-deflate-huge-length": mode(offer=1) + huge_compressed_frame(0x1, (1 << 64) - 1),
    "regress-deflate-huge-length-2": mode(offer=1) + huge_compressed_frame(0x2, 1 << 62),
    "regress-deflate-huge-continuation": mode(offer=1) +
    frame(0x1, deflate(EVENT)[:10], fin=False, rsv1=True) + bytes([0x80, 0xFF]) +
    struct.pack("!Q", (1 << 64) - 1) + MASK + masked(deflate(EVENT)[10:]),
    "eof-mid-header": mode() + b"\x81",
    "eof-mid-payload": mode() + frame(0x1, EVENT)[:40],
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(SEEDS)} seeds in {OUT}")
