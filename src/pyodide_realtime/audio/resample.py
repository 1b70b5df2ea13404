"""Resampling as the worklet does it, in plain Python: the reference its output is checked against.

``LinearResampler`` is linear interpolation whose phase survives chunk boundaries. The phase is an
integer (output position times the output rate), so there is no drift and the frame count does not
depend on how the stream is chunked: N input samples give ``floor(N * out_rate / in_rate)`` frames.
Output k sits at input position ``((k + 1) * in_rate - out_rate) / out_rate``; position -1 is the
previous chunk's last sample (0 before the first chunk), so an item starts from silence.

Before decimating (the microphone path) the worklet low-passes with ``lowpass_cascade``: two RBJ
biquads forming a 4th-order Butterworth at 40% of the output rate, against aliasing. Playback only
upsamples (8 or 24 kHz to the device rate) and skips the filter: linear interpolation leaves faint
images above the source's Nyquist frequency, which is acceptable for speech.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "LinearResampler",
    "Biquad",
    "lowpass_cascade",
    "resampled_length",
    "BUTTERWORTH_Q",
    "CUTOFF_OF_OUTPUT_RATE",
]

#: The Q of each biquad of a 4th-order Butterworth low-pass.
BUTTERWORTH_Q = (0.5411961, 1.3065630)
#: The capture low-pass cutoff as a fraction of the output rate (below its Nyquist frequency, 0.5).
CUTOFF_OF_OUTPUT_RATE = 0.4


def resampled_length(n_in: int, in_rate: int, out_rate: int) -> int:
    """Frames that ``n_in`` input samples become, however they are chunked."""
    return n_in * out_rate // in_rate


class LinearResampler:
    """Streaming linear interpolation from ``in_rate`` to ``out_rate`` (positive integers, in Hz)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate = in_rate
        self.out_rate = out_rate
        # The next output's position in this chunk, times out_rate; -out_rate means "x[-1]".
        self._num = in_rate - out_rate
        self._prev = 0.0

    def process(self, chunk: Sequence[float]) -> list[float]:
        n = len(chunk)
        out: list[float] = []
        limit = (n - 1) * self.out_rate
        num = self._num
        while num <= limit:
            idx, rest = divmod(num, self.out_rate)
            a = self._prev if idx < 0 else chunk[idx]
            out.append(a if rest == 0 else a + (chunk[idx + 1] - a) * (rest / self.out_rate))
            num += self.in_rate
        if n:
            self._num = num - n * self.out_rate
            self._prev = chunk[-1]
        return out


class Biquad:
    """An RBJ-cookbook low-pass biquad (transposed direct form II), stateful across chunks."""

    def __init__(self, rate: float, cutoff: float, q: float) -> None:
        w = 2 * math.pi * cutoff / rate
        cos, alpha = math.cos(w), math.sin(w) / (2 * q)
        a0 = 1 + alpha
        self.b0 = self.b2 = (1 - cos) / 2 / a0
        self.b1 = (1 - cos) / a0
        self.a1 = -2 * cos / a0
        self.a2 = (1 - alpha) / a0
        self._z1 = self._z2 = 0.0

    def process(self, chunk: Sequence[float]) -> list[float]:
        out = []
        for x in chunk:
            y = self.b0 * x + self._z1
            self._z1 = self.b1 * x - self.a1 * y + self._z2
            self._z2 = self.b2 * x - self.a2 * y
            out.append(y)
        return out


def lowpass_cascade(in_rate: int, out_rate: int) -> list[Biquad]:
    """The capture path's anti-alias filter for ``in_rate`` to ``out_rate`` (none when upsampling)."""
    if out_rate >= in_rate:
        return []
    return [Biquad(in_rate, CUTOFF_OF_OUTPUT_RATE * out_rate, q) for q in BUTTERWORTH_Q]
