"""Audio in the browser: ``AudioPlayer`` (speakers, with heard-position tracking), ``Microphone``
(capture to PCM16 / G.711 chunks) and ``start_voice`` (both, wired to a transport).

The Web Audio work happens in ``audio_shim.js`` (AudioWorklet); ``g711`` and ``resample`` hold the same
math in plain Python as a reference. Importing this package works in CPython; using the player or the
microphone there raises ``UnsupportedError``. In a Web Worker they work through the page: a PyScript
worker sets that up by itself, a plain worker's page runs ``HOST_SNIPPET``; ``page_url`` resolves
relative URLs against the page there.
"""

from __future__ import annotations

from .._interfaces import FORMAT_RATES, bytes_per_ms
from ._context import EchoCancellationWarning
from ._shim import HOST_SNIPPET, page_url
from .microphone import MAX_CHUNK_MS, MIN_CHUNK_MS, Microphone
from .player import AudioPlayer, EndReason, PlaybackPosition
from .voice import VoiceConversation, start_voice

__all__ = [
    "AudioPlayer",
    "PlaybackPosition",
    "EndReason",
    "FORMAT_RATES",
    "bytes_per_ms",
    "Microphone",
    "MIN_CHUNK_MS",
    "MAX_CHUNK_MS",
    "VoiceConversation",
    "start_voice",
    "page_url",
    "HOST_SNIPPET",
    "EchoCancellationWarning",
]
