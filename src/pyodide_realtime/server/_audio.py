"""Audio arithmetic the simulated model needs: formats, G.711 codecs, resampling, loudness.

Pure Python on ``array('h')``: the server must not depend on numpy, and ``audioop`` is gone from
Python 3.13. The G.711 codecs follow the ITU-T G.711 segment algorithms (the same results as the
classic Sun reference implementation), so any standard decoder plays what we send.
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass

PCM16_RATE = 24_000
G711_RATE = 8_000
PCM16_SAMPLE_BYTES = 2


@dataclass(frozen=True)
class WireFormat:
    """One of the Realtime API's audio formats, by its internal name."""

    name: str  # "pcm16" | "g711_ulaw" | "g711_alaw" (the beta names, used internally)
    rate: int
    bytes_per_sample: int

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.bytes_per_sample / 1000


FORMATS: dict[str, WireFormat] = {
    "pcm16": WireFormat("pcm16", PCM16_RATE, PCM16_SAMPLE_BYTES),
    "g711_ulaw": WireFormat("g711_ulaw", G711_RATE, 1),
    "g711_alaw": WireFormat("g711_alaw", G711_RATE, 1),
}

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # in 14-bit units
_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for index, end in enumerate(ends):
        if value <= end:
            return index
    return len(ends)


def _ulaw_encode_sample(sample: int) -> int:
    value = sample >> 2  # G.711 mu-law works on 14-bit samples
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(value, _ULAW_SEGMENT_ENDS)
    if seg >= len(_ULAW_SEGMENT_ENDS):
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def _alaw_encode_sample(sample: int) -> int:
    value = sample >> 3  # G.711 A-law works on 13-bit samples
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    seg = _segment(value, _ALAW_SEGMENT_ENDS)
    if seg >= len(_ALAW_SEGMENT_ENDS):
        return 0x7F ^ mask
    shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((value >> shift) & 0x0F)) ^ mask


def _ulaw_decode_byte(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return _ULAW_BIAS - magnitude if code & 0x80 else magnitude - _ULAW_BIAS


def _alaw_decode_byte(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (seg - 1)
    return magnitude if code & 0x80 else -magnitude


# Tables: one lookup per sample instead of the segment search (16-bit input -> one byte).
_ULAW_ENCODE = bytes(_ulaw_encode_sample(s - 65536 if s >= 32768 else s) for s in range(65536))
_ALAW_ENCODE = bytes(_alaw_encode_sample(s - 65536 if s >= 32768 else s) for s in range(65536))
_ULAW_DECODE = array("h", (_ulaw_decode_byte(c) for c in range(256)))
_ALAW_DECODE = array("h", (_alaw_decode_byte(c) for c in range(256)))


def samples_from_pcm16(data: bytes) -> array[int]:
    """Little-endian PCM16 bytes as samples (a trailing odd byte is dropped)."""
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % PCM16_SAMPLE_BYTES])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def pcm16_from_samples(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def ulaw_encode(samples: array[int]) -> bytes:
    return bytes(_ULAW_ENCODE[s & 0xFFFF] for s in samples)


def alaw_encode(samples: array[int]) -> bytes:
    return bytes(_ALAW_ENCODE[s & 0xFFFF] for s in samples)


def ulaw_decode(data: bytes) -> array[int]:
    return array("h", (_ULAW_DECODE[c] for c in data))


def alaw_decode(data: bytes) -> array[int]:
    return array("h", (_ALAW_DECODE[c] for c in data))


def resample_linear(samples: array[int], from_rate: int, to_rate: int) -> array[int]:
    """Linear interpolation: enough for speech going up in rate (22.05 -> 24 kHz)."""
    if from_rate == to_rate or not samples:
        return array("h", samples)
    count = int(len(samples) * to_rate / from_rate)
    step = from_rate / to_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * count))
    for i in range(count):
        position = i * step
        j = int(position)
        if j >= last:
            out[i] = samples[last]
            continue
        frac = position - j
        out[i] = int(samples[j] + (samples[j + 1] - samples[j]) * frac)
    return out


def decimate_by_3(samples: array[int]) -> array[int]:
    """24 kHz -> 8 kHz. Averaging three samples is a crude low-pass, good enough for a simulation."""
    usable = len(samples) - len(samples) % 3
    return array("h", ((samples[i] + samples[i + 1] + samples[i + 2]) // 3 for i in range(0, usable, 3)))


def encode_for_wire(pcm24k: array[int], format_name: str) -> bytes:
    """24 kHz samples in the named wire format (PCM16 24 kHz, or G.711 at 8 kHz)."""
    if format_name == "pcm16":
        return pcm16_from_samples(pcm24k)
    narrow = decimate_by_3(pcm24k)
    return ulaw_encode(narrow) if format_name == "g711_ulaw" else alaw_encode(narrow)


def decode_from_wire(data: bytes, format_name: str) -> array[int]:
    """Wire bytes as samples at the format's own rate."""
    if format_name == "g711_ulaw":
        return ulaw_decode(data)
    if format_name == "g711_alaw":
        return alaw_decode(data)
    return samples_from_pcm16(data)


def rms(samples: array[int], start: int = 0, stop: int | None = None) -> float:
    stop = len(samples) if stop is None else stop
    count = stop - start
    if count <= 0:
        return 0.0
    total = 0
    for i in range(start, stop):
        s = samples[i]
        total += s * s
    return math.sqrt(total / count)
