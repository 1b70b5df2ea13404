"""Server VAD for the simulated model: WebRTC's voice activity detector (``webrtcvad-wheels``).

The detector judges 20 ms frames of 8 kHz speech; 24 kHz PCM16 is decimated to 8 kHz first. The
session's ``threshold`` (a probability in 0..1 in the API) picks the detector's aggressiveness:
0-0.25 -> mode 0 (lets the most through as speech) ... 0.75-1 -> mode 3 (the strictest).
``prefix_padding_ms`` moves the reported start back, ``silence_duration_ms`` of unvoiced frames ends
a turn.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import webrtcvad

from ._audio import G711_RATE, PCM16_RATE, decimate_by_3, pcm16_from_samples

FRAME_MS = 20
DETECTOR_RATE = G711_RATE
FRAME_SAMPLES = DETECTOR_RATE * FRAME_MS // 1000
STRICTEST_MODE = 3


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int


VadEvent = SpeechStarted | SpeechStopped


def mode_for(threshold: float) -> int:
    return min(STRICTEST_MODE, int(threshold * (STRICTEST_MODE + 1)))


class SpeechDetector:
    """Feed samples as they arrive; get speech start/stop events with session-relative times.

    Times count every sample fed since the session began (as the real API's ``audio_start_ms`` does),
    so ``reset`` after a buffer clear forgets a turn in progress but keeps the clock.
    """

    def __init__(self, *, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self._vad = webrtcvad.Vad(mode_for(threshold))
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self.speaking = False
        self._pending = array("h")
        self._leftover = array("h")  # 24 kHz samples not yet a multiple of 3
        self._position_ms = 0
        self._silence_ms = 0

    @property
    def position_ms(self) -> int:
        """Audio judged since the session began, in ms (the clock of audio_start_ms/audio_end_ms)."""
        return self._position_ms

    def configure(self, *, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self._vad.set_mode(mode_for(threshold))
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms

    def reset(self) -> None:
        self.speaking = False
        self._silence_ms = 0
        self._pending = array("h")
        self._leftover = array("h")

    def feed(self, samples: array[int], rate: int) -> list[VadEvent]:
        if rate == PCM16_RATE:
            self._leftover.extend(samples)
            usable = len(self._leftover) - len(self._leftover) % 3
            self._pending.extend(decimate_by_3(self._leftover[:usable]))
            del self._leftover[:usable]
        else:
            self._pending.extend(samples)
        events: list[VadEvent] = []
        start = 0
        while len(self._pending) - start >= FRAME_SAMPLES:
            frame = pcm16_from_samples(self._pending[start : start + FRAME_SAMPLES])
            voiced = self._vad.is_speech(frame, DETECTOR_RATE)
            start += FRAME_SAMPLES
            frame_start_ms = self._position_ms
            self._position_ms += FRAME_MS
            if voiced:
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
