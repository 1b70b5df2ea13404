"""The simulated model's voice: espeak-ng when installed, else a tone pattern that is clearly not speech.

Audio is made once per text at 24 kHz and cached, then encoded per wire format (also cached), so a
test suite that asks for the same reply many times pays for synthesis once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import subprocess
from array import array
from typing import Literal

from ._audio import PCM16_RATE, encode_for_wire, resample_linear, samples_from_pcm16

SpeechEngine = Literal["auto", "espeak", "tones"]

ESPEAK_TIMEOUT_S = 20.0
ESPEAK_WORDS_PER_MINUTE = 185
# The tone fallback: one beep per word, alternating pitch, so a listener hears "something is talking".
TONE_WORD_MS = 160
TONE_GAP_MS = 60
TONE_PITCHES_HZ = (440.0, 660.0)
TONE_AMPLITUDE = 0.3 * 32767
TONE_FADE_MS = 8  # a short fade in and out, or every beep clicks
MIN_REPLY_MS = 300

logger = logging.getLogger("pyodide_realtime_server")


def _wav_payload(wav: bytes) -> tuple[int, bytes]:
    """Sample rate and PCM bytes of espeak-ng's WAV. On stdout its sizes are placeholders: use the rest."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not produce a WAV file")
    rate = int.from_bytes(wav[24:28], "little")
    data_at = wav.find(b"data", 12)
    if data_at < 0:
        raise ValueError("espeak-ng's WAV has no data chunk")
    return rate, wav[data_at + 8 :]


def tone_pattern(text: str) -> array[int]:
    """One short beep per word at 24 kHz: the fallback when no speech synthesizer is installed."""
    words = max(1, len(text.split()))
    per_ms = PCM16_RATE // 1000
    beep = TONE_WORD_MS * per_ms
    fade = TONE_FADE_MS * per_ms
    out = array("h")
    for word in range(words):
        pitch = TONE_PITCHES_HZ[word % len(TONE_PITCHES_HZ)]
        for i in range(beep):
            envelope = min(1.0, i / fade, (beep - i) / fade)
            out.append(int(TONE_AMPLITUDE * envelope * math.sin(2 * math.pi * pitch * i / PCM16_RATE)))
        out.extend([0] * (TONE_GAP_MS * per_ms))
    return out


class Synthesizer:
    """Text -> audio in a wire format, cached. ``engine`` "auto" picks espeak-ng when it is on PATH."""

    def __init__(self, engine: SpeechEngine = "auto") -> None:
        espeak = shutil.which("espeak-ng")
        if engine == "espeak" and espeak is None:
            raise RuntimeError("espeak-ng is not installed; install it (apt-get install espeak-ng) or use engine 'tones'")
        self._espeak = espeak if engine in ("auto", "espeak") else None
        self._pcm: dict[str, array[int]] = {}
        self._encoded: dict[tuple[str, str], bytes] = {}

    @property
    def engine(self) -> str:
        return "espeak-ng" if self._espeak else "tones"

    def describe(self) -> str:
        if self._espeak:
            return f"speech: espeak-ng ({self._espeak}), resampled to {PCM16_RATE} Hz"
        return "speech: espeak-ng not used; replies are a synthetic tone pattern (one beep per word)"

    async def audio(self, text: str, format_name: str) -> bytes:
        """``text`` spoken, in ``format_name`` ("pcm16", "g711_ulaw" or "g711_alaw")."""
        key = (text, format_name)
        if key not in self._encoded:
            samples = await self._samples(text)
            self._encoded[key] = await asyncio.to_thread(encode_for_wire, samples, format_name)
        return self._encoded[key]

    async def _samples(self, text: str) -> array[int]:
        if text not in self._pcm:
            samples = await asyncio.to_thread(self._speak, text) if self._espeak else tone_pattern(text)
            minimum = MIN_REPLY_MS * PCM16_RATE // 1000
            if len(samples) < minimum:  # an empty text still gets a short, silent turn
                samples.extend([0] * (minimum - len(samples)))
            self._pcm[text] = samples
        return self._pcm[text]

    def _speak(self, text: str) -> array[int]:
        assert self._espeak is not None
        try:
            done = subprocess.run(
                [self._espeak, "--stdout", "-s", str(ESPEAK_WORDS_PER_MINUTE), "--", text],
                capture_output=True,
                timeout=ESPEAK_TIMEOUT_S,
                check=True,
            )
            rate, payload = _wav_payload(done.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            logger.warning("espeak-ng failed (%s); using the tone pattern for this reply", exc)
            return tone_pattern(text)
        return resample_linear(samples_from_pcm16(payload), rate, PCM16_RATE)
