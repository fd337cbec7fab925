#!/usr/bin/env python3
"""Writes the seed corpus for frame_fuzzer (tests/fuzz/corpus/). Re-run after
changing the frame layout in transport/frame.h."""
import os
import struct
import sys

try:
    import xxhash  # type: ignore
    def xxh32(b):
        return xxhash.xxh32(b, seed=0).intdigest()
except ImportError:  # small pure-python XXH32
    P1, P2, P3, P4, P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    M = 0xFFFFFFFF
    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & M
    def xxh32(b, seed=0):
        n = len(b)
        i = 0
        if n >= 16:
            v = [(seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M]
            while i + 16 <= n:
                for k in range(4):
                    lane = struct.unpack_from('<I', b, i + 4 * k)[0]
                    v[k] = (rotl((v[k] + lane * P2) & M, 13) * P1) & M
                i += 16
            h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        else:
            h = (seed + P5) & M
        h = (h + n) & M
        while i + 4 <= n:
            h = (rotl((h + struct.unpack_from('<I', b, i)[0] * P3) & M, 17) * P4) & M
            i += 4
        while i < n:
            h = (rotl((h + b[i] * P5) & M, 11) * P1) & M
            i += 1
        h ^= h >> 15
        h = (h * P2) & M
        h ^= h >> 13
        h = (h * P3) & M
        h ^= h >> 16
        return h

MAGIC = 0x4B43564B

def header(opcode, flags=0, status=0, req=1, payload=0, meta=0, version=1):
    b = struct.pack('<IHHIIQQI', MAGIC, version, opcode, flags, status, req, payload, meta)
    return b + struct.pack('<I', xxh32(b))

def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(out, exist_ok=True)
    seeds = {
        'request_empty': header(4),
        'request_meta': header(3, meta=5) + b'hello',
        'request_meta_payload': header(4, meta=3, payload=8) + b'abc' + b'P' * 8,
        'response_ok': header(5, flags=1, meta=2, payload=4) + b'mm' + b'dddd',
        'response_error': header(5, flags=1, status=8, meta=9) + b'store full',
        'control_hello': header(1, flags=2),
        'control_ping_response': header(2, flags=3),
        'bad_version': header(4, version=2),
        'bad_checksum': header(4)[:-1] + b'\x00',
        'short': header(4)[:20],
        'huge_lengths': header(4, meta=0xFFFFFFFF, payload=0xFFFFFFFFFFFFFFFF),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)

if __name__ == '__main__':
    main()
