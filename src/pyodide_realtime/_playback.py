"""Playback state: which model audio was received, how much of it was heard, where to cut it.

Audio plays in arrival order, one (item, content index) segment after another. On an interruption
each segment that had not finished playing is cut at the position heard. That position comes from the
playback port (:class:`PlaybackPort`: the player, handed over once, as ``openai-agents``'
``RealtimePlaybackTracker`` is), or for one call from a number (ms heard from the start of the oldest
tracked audio) or a function; with neither, from the wall clock. An item whose audio finished playing
is never cut: the port says so through ``finished`` when the player has it; without it, an item counts
as finished when it was heard to its end within :data:`END_TOLERANCE_MS`.

This is the one place where received audio is counted (per item, in ms of its own format): each
``audio`` event carries the count so far (``TransportAudio.received_ms``), and the I/O layer hands it
on to a player that takes it (:class:`TakesReceivedCount`) and to the session's history, which never
count the bytes again.

Sans-I/O like the core: time and positions are arguments, and the port is only read, never driven.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from ._interfaces import AudioFormat, ReportsFinished, ReportsHeard, StopsWhereHeard, bytes_per_ms

__all__ = [
    "HeardMs", "HeardFn", "FinishedFn", "NowMs", "Playback", "PlaybackPort", "TakesReceivedCount", "END_TOLERANCE_MS", "HeardSource",
]

HeardFn = Callable[[str, int], "float | None"]
FinishedFn = Callable[[str, int], bool]
#: When a frame arrived, in ms: the time itself, or a function that reads it. A function is called only
#: if the frame needs the time (the first audio of a new item): in Pyodide a clock read costs about as
#: much as the rest of the core's work on an audio delta, and almost no frame needs it.
NowMs = float | Callable[[], float]

#: Without the player's ``finished``: an item heard to within this many ms of its received length
#: counts as played to its end. The player resamples 24 kHz audio to the context rate and counts
#: rendered frames in 128-frame render quanta, so the heard position of a finished item can trail
#: its length by up to one quantum: 128 frames at 44.1 kHz is 2.9 ms (the demo's case: 2982 ms heard
#: of 2982.8 ms received).
END_TOLERANCE_MS = 3.0
#: Items whose audio we already truncated; their late deltas are dropped. Bounded: only the last few
#: matter, as a cancelled response stops within a handful of deltas.
_MAX_TRUNCATED_KEYS = 64
#: Per-response audio formats remembered (a response's own ``audio.output.format``).
_MAX_RESPONSE_FORMATS = 16


@dataclass(frozen=True)
class PlaybackPort:
    """What the core reads of the player: taken from it once, when it is attached.

    ``heard_ms(item_id, content_index)``: ms of the item rendered (None: unknown). ``finished``: its
    last frame was rendered (never cut it). ``stops_where_heard``: ``heard_ms`` keeps answering after a
    stop with where the sound stopped, so an interruption stops first and measures after.
    """

    heard_ms: HeardFn
    finished: FinishedFn | None = None
    stops_where_heard: bool = False

    @classmethod
    def of(cls, output: ReportsHeard) -> PlaybackPort:
        """The port of an AudioOutput (or any object with ``heard_ms``): its optional parts are looked
        up here, once, by their protocols."""
        if isinstance(output, PlaybackPort):
            return output
        return cls(
            output.heard_ms,
            output.finished if isinstance(output, ReportsFinished) else None,
            isinstance(output, StopsWhereHeard) and output.stops_where_heard is True,
        )


@runtime_checkable
class TakesReceivedCount(Protocol):
    """An output told how much of each item's audio was received, as the core counted it (AudioPlayer:
    a finished item was heard in full, its duration as received). The I/O layer calls it after each
    ``play`` with the ``audio`` event's ``received_ms``."""

    def audio_received(self, item_id: str, content_index: int, received_ms: float) -> None: ...


#: Where playback is, for one call: a number (ms heard counted from the start of the oldest audio still
#: tracked: audio that finished playing is forgotten, so with one item playing it is the ms of that item
#: heard, as the reference's ``_interrupt(elapsedTime)`` takes it), a function answering per
#: (item_id, content_index), a port or an object with ``heard_ms``; None: the attached port, else an
#: estimate from the wall clock.
HeardMs = float | int | HeardFn | PlaybackPort | ReportsHeard | None


class HeardSource(NamedTuple):
    position: float | None
    heard: HeardFn | None
    finished: FinishedFn | None
    stops_where_heard: bool


_WALL_CLOCK = HeardSource(None, None, None, False)


def _source(port: PlaybackPort) -> HeardSource:
    return HeardSource(None, port.heard_ms, port.finished, port.stops_where_heard)


@dataclass
class _Segment:
    """The audio of one (item, content index), in arrival order within one playback."""

    item_id: str
    content_index: int
    response_id: str
    audio_format: AudioFormat
    bytes_per_ms: int
    received_ms: float = 0.0
    done: bool = False


class Playback:
    """The received model audio of one connection and what was heard of it."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        #: The segments whose audio is still arriving (not ``done``), oldest first: the only ones
        #: ``audio_done`` and ``response_done`` look at. Done ones stay in ``segments`` until played,
        #: and with no player (the wall clock) they pile up as fast as audio outruns real time.
        self._arriving: list[_Segment] = []
        #: When the oldest tracked audio started arriving (the wall-clock estimate starts there).
        self.first_audio_ms: float | None = None
        self._truncated: deque[tuple[str, int]] = deque(maxlen=_MAX_TRUNCATED_KEYS)
        self._formats: dict[str, AudioFormat] = {}
        self._port: HeardSource = _WALL_CLOCK

    def attach(self, port: PlaybackPort | None) -> None:
        """Read playback positions from ``port`` from now on (None: the wall clock)."""
        self._port = _WALL_CLOCK if port is None else _source(port)

    def source(self, heard: HeardMs) -> HeardSource:
        """Where positions come from for one call: ``heard`` if given, else the attached port."""
        if heard is None:
            return self._port
        if isinstance(heard, (int, float)) and not isinstance(heard, bool):
            return HeardSource(float(heard), None, None, False)
        if isinstance(heard, PlaybackPort):
            return _source(heard)
        if isinstance(heard, ReportsHeard):
            return _source(PlaybackPort.of(heard))
        if callable(heard):
            return HeardSource(None, heard, None, False)
        return _WALL_CLOCK

    # What the core reads ---------------------------------------------------------------------------
    @property
    def received_ms(self) -> float:
        return sum(s.received_ms for s in self.segments)

    @property
    def current_item(self) -> tuple[str, int] | None:
        return (self.segments[-1].item_id, self.segments[-1].content_index) if self.segments else None

    def format_of(self, response_id: str, default: AudioFormat) -> AudioFormat:
        """The audio format of ``response_id``: its own (``response.create`` with
        ``audio.output.format``, echoed in ``response.created``), else the session's ``default``."""
        return self._formats.get(response_id, default)

    # Server events -----------------------------------------------------------------------------
    def response_format(self, response_id: str, audio_format: AudioFormat | None) -> None:
        """``response.created`` named this response's own output format (None: the session's)."""
        if audio_format is None or not response_id:
            return
        if len(self._formats) >= _MAX_RESPONSE_FORMATS:
            self._formats.pop(next(iter(self._formats)))
        self._formats[response_id] = audio_format

    def audio(
        self, item_id: str, content_index: int, response_id: str, nbytes: int, now_ms: NowMs, heard: HeardMs,
        default_format: AudioFormat,
    ) -> _Segment | None:
        """Count a delta of ``nbytes``; returns its segment (format, ms received so far), or None to drop
        it (late audio of an item already cut)."""
        segment = self.segments[-1] if self.segments else None
        if segment is None or segment.item_id != item_id or segment.content_index != content_index:
            if (item_id, content_index) in self._truncated:
                return None  # late audio of an item we already cut: never play it
            if callable(now_ms):
                now_ms = now_ms()
            self._drop_finished(now_ms, self.source(heard))
            if not self.segments:
                self.first_audio_ms = now_ms
            audio_format = self._formats.get(response_id, default_format)
            segment = _Segment(item_id, content_index, response_id, audio_format, bytes_per_ms(audio_format))
            self.segments.append(segment)
            self._arriving.append(segment)
        segment.received_ms += nbytes / segment.bytes_per_ms
        return segment

    def audio_done(self, item_id: str, content_index: int) -> None:
        for segment in self._arriving:
            if segment.item_id == item_id and segment.content_index == content_index:
                segment.done = True
        self._forget_done()

    def response_done(self, response_id: str) -> None:
        """No more audio will come for this response (cancelled ones may never send audio.done)."""
        for segment in self._arriving:
            if segment.response_id == response_id or not response_id:
                segment.done = True
        self._forget_done()
        self._truncated.clear()
        self._formats.pop(response_id, None)

    # Interruption ----------------------------------------------------------------------------------
    def stops_first(self, source: HeardSource) -> bool:
        """Whether an interruption measured from ``source`` must stop the player before measuring: it
        stops where it says it was heard, and some tracked audio may still be cut (not ``finished``)."""
        if not source.stops_where_heard:
            return False
        finished = source.finished
        return any(finished is None or not finished(s.item_id, s.content_index) for s in self.segments)

    def interrupt(self, now_ms: float, source: HeardSource) -> list[tuple[str, int, int]]:
        """Where to cut each segment that had not finished playing: (item_id, content_index,
        audio_end_ms), with ``audio_end_ms`` an int clamped to the audio received. Forgets the
        playback; the cut items' late audio will be dropped."""
        points = self._truncation_points(now_ms, source)
        self.segments = []
        self._arriving = []
        self.first_audio_ms = None
        self._truncated.extend((item_id, content_index) for item_id, content_index, _ in points)
        return points

    def _truncation_points(self, now_ms: float, source: HeardSource) -> list[tuple[str, int, int]]:
        if not self.segments or self.first_audio_ms is None:
            return []
        heard_fn, finished = source.heard, source.finished
        # Playback is sequential: each segment starts playing when the one before it ends.
        position = source.position if source.position is not None else now_ms - self.first_audio_ms
        points: list[tuple[str, int, int]] = []
        offset = 0.0
        for segment in self.segments:
            value = heard_fn(segment.item_id, segment.content_index) if heard_fn is not None else None
            at = position - offset if value is None else value
            offset += segment.received_ms
            if self._played_to_end(segment, at, finished):
                continue
            points.append((segment.item_id, segment.content_index, math.floor(min(max(at, 0.0), segment.received_ms))))
        return points

    @staticmethod
    def _played_to_end(segment: _Segment, heard_ms: float, finished: FinishedFn | None) -> bool:
        if finished is not None:
            return bool(finished(segment.item_id, segment.content_index))
        return segment.done and heard_ms >= segment.received_ms - END_TOLERANCE_MS

    def _forget_done(self) -> None:
        self._arriving = [segment for segment in self._arriving if not segment.done]

    def _drop_finished(self, now_ms: float, source: HeardSource) -> None:
        """Forget audio that finished arriving and finished playing: by what the player says when it
        knows the item (playback may lag arrival by far), else by the wall clock."""
        if not self.segments or self.first_audio_ms is None:
            self.segments = []
            self._arriving = []
            self.first_audio_ms = None
            return
        heard_fn, finished = source.heard, source.finished
        while self.segments and self.first_audio_ms is not None:
            head = self.segments[0]
            if not head.done:
                return
            value = heard_fn(head.item_id, head.content_index) if heard_fn is not None else None
            at = now_ms - self.first_audio_ms if value is None else value
            if not self._played_to_end(head, at, finished):
                return
            self.segments.pop(0)
            # The next segment started playing when this one ended.
            self.first_audio_ms += head.received_ms
        if not self.segments:
            self.first_audio_ms = None

    def reset(self) -> None:
        """A new connection: forget the audio (the attached port stays)."""
        self.segments = []
        self._arriving = []
        self.first_audio_ms = None
        self._truncated.clear()
        self._formats.clear()
