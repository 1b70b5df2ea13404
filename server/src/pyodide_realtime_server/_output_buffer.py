"""The reply's speech on its way out over WebRTC: queued, cut into 20 ms frames, counted as sent.

Over WebRTC the API does not send the model's audio as events: it plays it on an audio track, and
tells the client with ``output_audio_buffer.started`` / ``stopped`` / ``cleared`` where the buffer
is. This holds that buffer, without I/O or clock: the track (``_webrtc``) asks for the next frame
every 20 ms of real time and hands it to the encoder, so what ``next_frame`` returned is what was
sent. An interruption cuts the queue and says how much of the item was sent (``Cut``): the server
truncates the item there, as the API does over WebRTC.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ._audio import PCM16_RATE, PCM16_SAMPLE_BYTES

FRAME_MS = 20
FRAME_SAMPLES = PCM16_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * PCM16_SAMPLE_BYTES
SAMPLES_PER_MS = PCM16_RATE // 1000
SILENCE = bytes(FRAME_BYTES)


@dataclass(frozen=True)
class Cut:
    """Where an interruption cut a reply: ``audio_end_ms`` of the item's audio had been sent."""

    response_id: str
    item_id: str
    audio_end_ms: int


@dataclass
class _Segment:
    response_id: str
    item_id: str
    pcm: bytearray  # 24 kHz PCM16 not yet sent


class OutputAudioBuffer:
    """Queue the reply's 24 kHz PCM16 with ``push``; ``finish`` says a response has no more.

    ``on_started(response_id)`` runs when a response's first frame goes out, ``on_stopped`` once its
    last frame has gone and it is finished (or another response's audio follows).
    """

    def __init__(self, on_started: Callable[[str], None], on_stopped: Callable[[str], None]) -> None:
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._queue: deque[_Segment] = deque()
        self._finished: set[str] = set()
        self._playing: str | None = None  # the response whose audio is going out (started, not stopped)
        self._item: tuple[str, str] | None = None  # (response_id, item_id) whose audio went out last
        self._item_sent_samples = 0
        self.last_response_id: str | None = None
        self.sent_samples = 0  # the reply's audio sent, all responses together (not the silence)

    @property
    def playing(self) -> str | None:
        return self._playing

    def push(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if self._queue and (self._queue[-1].response_id, self._queue[-1].item_id) == (response_id, item_id):
            self._queue[-1].pcm.extend(pcm)
        else:
            self._queue.append(_Segment(response_id, item_id, bytearray(pcm)))

    def finish(self, response_id: str) -> None:
        """``response_id`` will push no more audio: once its queue has gone out, it has stopped."""
        if self._playing == response_id or any(s.response_id == response_id for s in self._queue):
            self._finished.add(response_id)

    def next_frame(self) -> bytes:
        """The next 20 ms to send: the head of the queue (padded with silence at an item's end) or silence."""
        if not self._queue:
            if self._playing is not None and self._playing in self._finished:
                self._stop()
            return SILENCE
        head = self._queue[0]
        if self._playing != head.response_id:
            if self._playing is not None:
                self._stop()
            self._playing = self.last_response_id = head.response_id
            self._on_started(head.response_id)
        if self._item != (head.response_id, head.item_id):
            self._item = (head.response_id, head.item_id)
            self._item_sent_samples = 0
        chunk = bytes(head.pcm[:FRAME_BYTES])
        del head.pcm[:FRAME_BYTES]
        if not head.pcm:
            self._queue.popleft()
        samples = len(chunk) // PCM16_SAMPLE_BYTES
        self._item_sent_samples += samples
        self.sent_samples += samples
        return chunk + SILENCE[len(chunk) :]

    def clear(self) -> Cut | None:
        """Drop what has not gone out. The item that was going out, and how much of it went, if any."""
        pending = self._queue[0] if self._queue else None
        self._queue.clear()
        cut: Cut | None = None
        if pending is not None and self._item != (pending.response_id, pending.item_id):
            cut = Cut(pending.response_id, pending.item_id, 0)  # queued, nothing of it sent yet
        elif self._item is not None and (pending is not None or self._playing == self._item[0]):
            cut = Cut(self._item[0], self._item[1], self._item_sent_samples // SAMPLES_PER_MS)
        if cut is not None:
            self.last_response_id = cut.response_id
        self._playing = None
        self._finished.clear()
        return cut

    def _stop(self) -> None:
        stopped, self._playing = self._playing, None
        assert stopped is not None
        self._finished.discard(stopped)
        self._on_stopped(stopped)
