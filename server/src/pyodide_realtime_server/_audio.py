"""Audio arithmetic the simulated model needs: wire formats, resampling, loudness.

The formats, their rates and the G.711 codec are the client's (``pyodide_realtime``): one
vocabulary for both sides. Pure Python on ``array('h')``: no numpy, and ``audioop`` is gone from
Python 3.13.
"""

from __future__ import annotations

import math
import sys
from array import array

from pyodide_realtime._interfaces import FORMAT_RATES
from pyodide_realtime.audio import g711

PCM16_RATE = FORMAT_RATES["pcm16"]
G711_RATE = FORMAT_RATES["g711_ulaw"]
PCM16_SAMPLE_BYTES = 2


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
    narrow = pcm16_from_samples(decimate_by_3(pcm24k))
    return g711.encode_ulaw(narrow) if format_name == "g711_ulaw" else g711.encode_alaw(narrow)


def decode_from_wire(data: bytes, format_name: str) -> array[int]:
    """Wire bytes as samples at the format's own rate."""
    if format_name == "g711_ulaw":
        return samples_from_pcm16(g711.decode_ulaw(data))
    if format_name == "g711_alaw":
        return samples_from_pcm16(g711.decode_alaw(data))
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
