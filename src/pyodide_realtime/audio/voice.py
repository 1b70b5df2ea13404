"""``start_voice``: speakers and microphone wired to a transport in one call.

    conversation = await start_voice(transport)   # after (or before) transport.connect(...)
    ...
    conversation.close()

It only uses the transport's public API: ``attach_audio_output``, ``attach_microphone``,
``send_audio`` and ``on("audio_done", ...)`` (which tells the player an item is complete, so that
``on_item_ended`` fires when its last frame has played). Microphone chunks go to ``send_audio`` as
they come (the transport ignores them while it is not connected).

It works the same in a Web Worker (PyScript's ``<script type="py" worker>`` or a plain Pyodide worker):
the player and the microphone then run on the page and talk to the worker over their own ports.
"""

from __future__ import annotations

import logging
from typing import Any

from .._interfaces import AudioFormat
from .microphone import DEFAULT_CHUNK_MS, Microphone
from .player import AudioPlayer

__all__ = ["VoiceConversation", "start_voice"]

logger = logging.getLogger(__name__)


class VoiceConversation:
    """A player and a microphone attached to one transport; ``close()`` releases both."""

    def __init__(
        self,
        transport: Any,
        player: AudioPlayer,
        microphone: Microphone | None,
    ) -> None:
        self.transport = transport
        self.player = player
        self.microphone = microphone

    @property
    def muted(self) -> bool:
        return self.microphone is None or self.microphone.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        if self.microphone is not None:
            self.microphone.muted = value

    def close(self) -> None:
        """Detach from the transport (it stays connected), release the microphone and the player."""
        if self.microphone is not None:
            self.transport.attach_microphone(None)
            self.microphone.stop()
        self.transport.attach_audio_output(None)
        self.player.close()

    def __repr__(self) -> str:
        return f"<VoiceConversation {self.player!r} {self.microphone!r}>"


async def start_voice(
    transport: Any,
    *,
    microphone: bool = True,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    input_format: AudioFormat = "pcm16",
    volume: float = 1.0,
    echo_cancellation: bool = True,
    noise_suppression: bool = True,
    auto_gain_control: bool = True,
    device_id: str | None = None,
) -> VoiceConversation:
    """Create an ``AudioPlayer`` and (unless ``microphone=False``) a ``Microphone``, attach them to
    ``transport`` and pipe the microphone to ``transport.send_audio``.

    ``input_format`` must match the session's input audio format (PCM16 24 kHz by default).
    """

    def send(chunk: bytes) -> None:
        transport.send_audio(chunk)

    mic = None
    if microphone:
        # Validate before anything opens, so a bad argument leaves nothing to clean up.
        mic = Microphone(
            send,
            chunk_ms=chunk_ms,
            audio_format=input_format,
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            auto_gain_control=auto_gain_control,
            device_id=device_id,
        )
    # The microphone first: a page that captures may play audio without a fresh user gesture (WebKit,
    # so Safari on iOS), and the awaits before start_voice (a key, a connect) or the permission prompt
    # may have outlasted the click's few seconds. A player made before it stayed suspended there.
    player = None
    try:
        if mic is not None:
            await mic.start()
        player = await AudioPlayer.create(volume=volume)
        transport.attach_audio_output(player)  # it plays, stops and finishes the player from now on
        if mic is not None:
            transport.attach_microphone(mic)
    except BaseException:
        if mic is not None:
            mic.stop()
        if player is not None:
            player.close()
        raise
    return VoiceConversation(transport, player, mic)
