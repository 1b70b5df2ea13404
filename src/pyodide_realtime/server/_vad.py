"""Server VAD for the simulated model: loudness (RMS) per 20 ms frame against the session's threshold.

The real API runs a voice model and its ``threshold`` is a probability in 0..1; here the same number
scales a loudness: a frame counts as speech when ``rms / RMS_AT_FULL_CONFIDENCE >= threshold``. With
the default 0.5 that is an RMS of 1000 (about -30 dBFS): speech and test noise bursts pass, room
hiss and silence do not.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from ._audio import rms

FRAME_MS = 20
RMS_AT_FULL_CONFIDENCE = 2000.0


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int


VadEvent = SpeechStarted | SpeechStopped


class EnergyVad:
    """Feed samples as they arrive; get speech start/stop events with session-relative times.

    Times count every sample fed since the session began (as the real API's ``audio_start_ms`` does),
    so ``reset`` after a buffer clear forgets a turn in progress but keeps the clock.
    """

    def __init__(self, *, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self.speaking = False
        self._rate = 0
        self._pending = array("h")
        self._position_ms = 0
        self._silence_ms = 0

    def reset(self) -> None:
        self.speaking = False
        self._silence_ms = 0
        self._pending = array("h")

    def feed(self, samples: array[int], rate: int) -> list[VadEvent]:
        if rate != self._rate:  # a format change mid-session: start framing afresh
            self._rate, self._pending = rate, array("h")
        self._pending.extend(samples)
        frame = rate * FRAME_MS // 1000
        events: list[VadEvent] = []
        start = 0
        while len(self._pending) - start >= frame:
            loud = rms(self._pending, start, start + frame) / RMS_AT_FULL_CONFIDENCE >= self.threshold
            start += frame
            frame_start_ms = self._position_ms
            self._position_ms += FRAME_MS
            if loud:
                self._silence_ms = 0
                if not self.speaking:
                    self.speaking = True
                    events.append(SpeechStarted(max(0, frame_start_ms - self.prefix_padding_ms)))
            elif self.speaking:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= self.silence_duration_ms:
                    self.speaking = False
                    self._silence_ms = 0
                    events.append(SpeechStopped(self._position_ms))
        del self._pending[:start]
        return events
