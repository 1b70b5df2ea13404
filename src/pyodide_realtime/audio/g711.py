"""G.711 µ-law and A-law, as plain Python: the reference the JS worklet's tables are checked against.

The browser never runs these per sample (the worklet decodes and encodes); CPython tests, the local
server and tools use them. Codes follow ITU-T G.711 with the usual bit inversions (µ-law: all bits;
A-law: even bits, ``0x55``), so silence is ``0xFF`` in µ-law and ``0xD5`` in A-law.
"""

from __future__ import annotations

from array import array

__all__ = [
    "ULAW_SILENCE",
    "ALAW_SILENCE",
    "ulaw_to_linear",
    "alaw_to_linear",
    "linear_to_ulaw",
    "linear_to_alaw",
    "decode_ulaw",
    "decode_alaw",
    "encode_ulaw",
    "encode_alaw",
]

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
_SEGMENTS = 8


def ulaw_to_linear(code: int) -> int:
    """The 16-bit sample a µ-law byte stands for."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return _ULAW_BIAS - t if u & 0x80 else t - _ULAW_BIAS


def alaw_to_linear(code: int) -> int:
    """The 16-bit sample an A-law byte stands for."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    segment = (a & 0x70) >> 4
    t = t + 8 if segment == 0 else (t + 0x108) << (segment - 1)
    return t if a & 0x80 else -t


def linear_to_ulaw(sample: int) -> int:
    """The µ-law byte for a 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    s = min(-sample if sign else sample, _ULAW_CLIP) + _ULAW_BIAS
    exponent = max(s.bit_length() - 8, 0)
    return ~(sign | (exponent << 4) | ((s >> (exponent + 3)) & 0x0F)) & 0xFF


def linear_to_alaw(sample: int) -> int:
    """The A-law byte for a 16-bit sample."""
    v, mask = sample >> 3, 0xD5
    if v < 0:
        v, mask = -v - 1, 0x55
    segment = 0
    while segment < _SEGMENTS and v > (0x20 << segment) - 1:
        segment += 1
    if segment >= _SEGMENTS:
        return 0x7F ^ mask
    return ((segment << 4) | ((v >> (1 if segment < 2 else segment)) & 0x0F)) ^ mask


_ULAW_TABLE = array("h", (ulaw_to_linear(c) for c in range(256)))
_ALAW_TABLE = array("h", (alaw_to_linear(c) for c in range(256)))


def _decode(data: bytes | bytearray | memoryview, table: array[int]) -> bytes:
    out = array("h", (table[b] for b in bytes(data)))
    return _little_endian(out)


def _little_endian(samples: array[int]) -> bytes:
    import sys

    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def decode_ulaw(data: bytes | bytearray | memoryview) -> bytes:
    """µ-law bytes to PCM16 little-endian bytes."""
    return _decode(data, _ULAW_TABLE)


def decode_alaw(data: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes to PCM16 little-endian bytes."""
    return _decode(data, _ALAW_TABLE)


def _samples(pcm16: bytes | bytearray | memoryview) -> array[int]:
    import sys

    raw = bytes(pcm16)
    if len(raw) % 2:
        raise ValueError("PCM16 data must have an even number of bytes")
    samples = array("h", raw)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def encode_ulaw(pcm16: bytes | bytearray | memoryview) -> bytes:
    """PCM16 little-endian bytes to µ-law bytes."""
    return bytes(linear_to_ulaw(s) for s in _samples(pcm16))


def encode_alaw(pcm16: bytes | bytearray | memoryview) -> bytes:
    """PCM16 little-endian bytes to A-law bytes."""
    return bytes(linear_to_alaw(s) for s in _samples(pcm16))
