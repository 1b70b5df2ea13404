"""``AudioPlayer``: model audio to the speakers, and an exact answer to "how much of item X was heard".

The audio itself never loops through Python: ``play`` hands the bytes to JS in one copy and the
buffer is transferred to the AudioWorklet, which decodes (PCM16, G.711), resamples to the context's
rate, queues gap-free and counts the frames it renders per item. A small JS object beside Python
mirrors that queue (it computes each chunk's frame count itself) and learns from the worklet's
reports how far it played; ``heard_ms`` reads it (one JS call, no Python per report).

Exact interruption: ``heard_ms`` answers with how far the item will have played when a stop sent now
arrives (the audio thread renders ahead in bursts of 10 ms or more, and a message takes a moment), at
most ``STOP_MARGIN_MS`` ahead of the sound (``audio_shim.js``: 30 ms on the page and in a worker of a
cross-origin isolated page, which reads the worklet's position from shared memory; 60 ms in a worker
without, which infers it from the worklet's reports), and ``stop`` makes the worklet play on to exactly
that frame. A stop that lands late anyway is logged as a warning. So the ``audio_end_ms`` of a truncation is where the sound stopped, not an estimate of it.

Items are keyed by ``(item_id, content_index)``. Once stopped, an item stays silent: late deltas of
an interrupted response are dropped. "Heard" means rendered by the worklet; the device plays it
``output_latency_ms`` later (a few ms to a few tens of ms). ``compensate_output_latency=True``
subtracts that from ``heard_ms`` (what has reached the listener's ears by now: for captions); the
audio already in the device's buffer still plays after a stop, so leave it off for interruptions.

In a Web Worker the same class works through the page (see ``_shim``): the worklet lives on the page
and the worker talks to it over its own ``MessagePort``.

``AudioPlayer.create(context)`` also accepts an OfflineAudioContext (deterministic rendering, tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .._interfaces import FORMAT_RATES, AudioFormat
from ..errors import ConfigurationError
from ._context import RESUME_TIMEOUT_S, resume_context
from ._shim import load_shim, page_link, require_web_audio

__all__ = ["AudioPlayer", "PlaybackPosition", "FORMAT_RATES", "EndReason", "check_format"]

logger = logging.getLogger(__name__)

MS_PER_SECOND = 1000.0
MAX_VOLUME = 4.0
#: How long ``query_heard_ms`` waits for the audio thread's answer (a round trip takes a render
#: quantum or two) before it settles for ``heard_ms``: a context closed by its owner never answers.
QUERY_TIMEOUT_S = 1.0

#: The end reasons that mean every frame queued for the item was rendered.
_PLAYED_OUT = ("finished", "next")

#: Why an item's playback ended: all of it played (after ``finish``), the next item took over,
#: or ``stop``/``interrupt`` cut it.
EndReason = Literal["finished", "next", "interrupted"]


@dataclass(frozen=True)
class PlaybackPosition:
    """How much of one item's audio was rendered to the output, in milliseconds."""

    item_id: str
    content_index: int
    heard_ms: float


def _check_volume(volume: float) -> float:
    if not isinstance(volume, (int, float)) or not 0.0 <= volume <= MAX_VOLUME:
        raise ConfigurationError(f"volume must be a number from 0.0 to {MAX_VOLUME} (1.0 = unchanged), not {volume!r}")
    return float(volume)


def check_format(audio_format: str) -> str:
    if audio_format not in FORMAT_RATES:
        raise ConfigurationError(
            f"audio_format must be one of {', '.join(FORMAT_RATES)}, not {audio_format!r}"
        )
    return audio_format


class AudioPlayer:
    """Plays Realtime audio through Web Audio and tracks what was heard; an ``AudioOutput``.

    Create it with ``player = await AudioPlayer.create()`` (on the page's main thread), hand it to
    ``transport.attach_audio_output(player)``, and ``player.close()`` when done.

    ``on_item_started(item_id, content_index)`` fires when an item's first frame is rendered;
    ``on_item_ended(item_id, content_index, heard_ms, reason)`` when its last queued frame was rendered
    and it was finished (``finish``) or followed by another item, or when ``stop`` cut it.

    In a Web Worker it needs the page's helper (``HOST_SNIPPET``); ``context`` must then be None.
    """

    #: After ``stop``, ``heard_ms`` says where each item's sound stopped (see ``AudioOutput``): an
    #: interruption stops the player first, then truncates at exactly that.
    stops_where_heard = True

    def __init__(
        self,
        context: Any,
        handle: Any,
        *,
        on_item_started: Callable[[str, int], Any] | None = None,
        on_item_ended: Callable[[str, int, float, EndReason], Any] | None = None,
        volume: float = 1.0,
        sample_rate: int | None = None,
        compensate_output_latency: bool = False,
    ) -> None:
        # Use ``AudioPlayer.create``: this wires an existing JS ``Player`` handle.
        #: The JS AudioContext (None in a worker: it lives on the page).
        self.context = context
        self._handle = handle
        self._release_context: Any = None  # the shim's releaseContext, for a context this player made
        self._latency_of: Any = None  # the shim's outputLatencyOf (Firefox's outputLatency can freeze the page)
        self._volume = volume
        self.on_item_started = on_item_started
        self.on_item_ended = on_item_ended
        self.sample_rate = int(context.sampleRate) if context is not None else int(sample_rate or 0)
        #: Subtract the device's output latency from ``heard_ms`` (see the module's docstring).
        self.compensate_output_latency = compensate_output_latency
        self._worker_latency_s = 0.0  # in a worker, as the page last reported it
        self._keys: dict[tuple[str, int], int] = {}
        self._items: dict[int, tuple[str, int]] = {}
        self._stopped: set[int] = set()
        #: Keys the worklet knows (a chunk or a finish was posted): only those get an "ended" message.
        self._posted: set[int] = set()
        self._ended: dict[int, asyncio.Future[PlaybackPosition]] = {}
        #: ms of audio received per item, as the transport's protocol core counted it (``audio_received``):
        #: the one count, never summed here again.
        self._received_ms: dict[int, float] = {}
        self._finish_called: set[int] = set()
        self._end_reasons: dict[int, str] = {}
        self._acks: dict[int, asyncio.Future[float]] = {}
        self._next_seq = 0
        self._last_stop: Any = None
        self._current: int | None = None
        self._event_proxy: Any = None
        self._closed = False
        #: Times the queue ran dry in the middle of an item (audio arrived slower than real time).
        self.underruns = 0

    @classmethod
    async def create(
        cls,
        context: Any = None,
        *,
        volume: float = 1.0,
        on_item_started: Callable[[str, int], Any] | None = None,
        on_item_ended: Callable[[str, int, float, EndReason], Any] | None = None,
        compensate_output_latency: bool = False,
    ) -> AudioPlayer:
        """A player on ``context`` (a JS AudioContext), or on a new AudioContext it owns and closes.

        In a Web Worker the context is made on the page (pass no ``context``).
        """
        volume = _check_volume(volume)
        where = require_web_audio("AudioPlayer")
        from pyodide.ffi import create_proxy

        if where == "worker":
            if context is not None:
                raise ConfigurationError("in a Web Worker the AudioContext lives on the page: call AudioPlayer.create() without one")
            link = await page_link("AudioPlayer")
            player = cls(None, None, on_item_started=on_item_started, on_item_ended=on_item_ended,
                         volume=volume, compensate_output_latency=compensate_output_latency)
            player._event_proxy = create_proxy(player._on_event)
            try:
                player._handle = await link.openPlayer(volume, player._event_proxy)
                player.sample_rate = int(player._handle.rate)
                await player.resume(timeout=RESUME_TIMEOUT_S)
            except BaseException:
                player.close()
                raise
            return player

        shim, url = await load_shim()
        owns = context is None
        if owns:
            context = await shim.ownContext()  # in WebKit, one a closed player left (releaseContext says why)
        player = cls(context, None, on_item_started=on_item_started,
                     on_item_ended=on_item_ended, volume=volume, compensate_output_latency=compensate_output_latency)
        if owns:
            player._release_context = shim.releaseContext
        player._latency_of = shim.outputLatencyOf
        player._event_proxy = create_proxy(player._on_event)
        try:
            player._handle = await shim.createPlayer(context, url, volume, player._event_proxy)
            await player.resume(timeout=RESUME_TIMEOUT_S)
        except BaseException:
            player.close()
            raise
        return player

    # -- the AudioOutput protocol ------------------------------------------------------------------

    def play(
        self,
        data: bytes | bytearray | memoryview,
        *,
        item_id: str,
        content_index: int = 0,
        audio_format: AudioFormat = "pcm16",
    ) -> None:
        """Queue raw audio for an item; returns at once. Audio of a stopped item is dropped."""
        self._post(data, item_id, content_index, audio_format, None)

    def heard_ms(self, item_id: str, content_index: int = 0) -> float | None:
        """Milliseconds of the item heard once a stop sent now takes effect (0.0 if queued, not started),
        None if never played. An item that played to its end (``finished``) was heard in full: its
        duration as received (``audio_received``), which the rounding of resampling never shortens;
        fed by hand, without that count, the frames it rendered."""
        key = self._keys.get((item_id, content_index))
        if key is None or self._handle is None:
            return None
        if self._played_out(key) and key in self._received_ms:
            return self._received_ms[key]
        frames = max(int(self._handle.heardFrames(key)), 0)
        if self.compensate_output_latency:
            frames = max(frames - round(self.output_latency_ms * self.sample_rate / MS_PER_SECOND), 0)
        return frames * MS_PER_SECOND / self.sample_rate

    def finished(self, item_id: str, content_index: int = 0) -> bool:
        """True once the item's audio is done (``finish`` was called: no more will be queued) and its
        last frame was rendered. The transport never truncates such an item."""
        key = self._keys.get((item_id, content_index))
        return key is not None and self._played_out(key)

    def audio_received(self, item_id: str, content_index: int, received_ms: float) -> None:
        """The item's audio received so far, this chunk included, in ms of its own format, as the
        transport's protocol core counts it (the transport calls this after each ``play``): what a
        finished item reports as heard. The player never counts the bytes itself."""
        key = self._keys.get((item_id, content_index))
        if key is not None:
            self._received_ms[key] = received_ms

    def stop(self) -> None:
        """Silence within ``STOP_MARGIN_MS`` (exactly where ``heard_ms`` said) and drop everything queued
        (the transport calls this on interruption)."""
        self.interrupt()

    # -- more control --------------------------------------------------------------------------------

    def interrupt(self) -> PlaybackPosition | None:
        """Like ``stop``; returns how much of the item that was sounding had been heard (None: idle)."""
        if self._closed or self._handle is None:
            return None
        current = self._current
        self._stopped.update(self._items)
        #: The JS promise of the worklet's "stopped" answer (its counts, the frame where it landed).
        self._last_stop = self._handle.stop()
        position = None
        if current is not None:  # asked after the stop: where the sound of the item stops
            item_id, content_index = self._items[current]
            position = PlaybackPosition(item_id, content_index, self.heard_ms(item_id, content_index) or 0.0)
        # The worklet reports the end of every item it knows; one it never heard of ends here, unheard.
        for key, future in self._ended.items():
            if key not in self._posted and not future.done():
                future.set_result(PlaybackPosition(*self._items[key], 0.0))
        return position

    def finish(self, item_id: str, content_index: int = 0) -> None:
        """No more audio comes for this item: it ends (``on_item_ended``) once its queue has played."""
        if self._closed or self._handle is None:
            return
        key = self._key(item_id, content_index)
        if key in self._stopped and key not in self._posted:
            return  # stopped before any of its audio came: it already ended, unheard
        self._posted.add(key)
        self._finish_called.add(key)
        self._handle.finish(key)

    async def wait_ended(self, item_id: str, content_index: int = 0) -> PlaybackPosition:
        """Wait until the item's playback ended (see ``on_item_ended``) and return what was heard.

        An item stopped before any of its audio was queued, or still waiting when the player closes,
        ends with what was heard of it by then.
        """
        key = self._key(item_id, content_index)
        future = self._ended.get(key)
        if future is None:
            future = self._ended[key] = asyncio.get_running_loop().create_future()
            if self._closed or (key in self._stopped and key not in self._posted):
                future.set_result(PlaybackPosition(item_id, content_index, 0.0))  # no end will be reported
        return await asyncio.shield(future)

    async def query_heard_ms(
        self, item_id: str, content_index: int = 0, *, timeout: float | None = QUERY_TIMEOUT_S
    ) -> float | None:
        """The exact rendered position, asked from the audio thread (one message round trip).

        Without an answer within ``timeout`` seconds (a context that its owner closed never answers)
        it returns ``heard_ms``, the last position the audio thread reported.
        """
        key = self._keys.get((item_id, content_index))
        if key is None or self._handle is None:
            return None
        try:
            report = await asyncio.wait_for(asyncio.ensure_future(self._handle.query()), timeout)
        except asyncio.TimeoutError:
            logger.warning("the audio thread did not answer within %s s (is the AudioContext closed?)", timeout)
            return self.heard_ms(item_id, content_index)
        if report is None:
            return None
        frames = dict((int(k), int(f)) for k, f in report.frames)
        return frames.get(key, 0) * MS_PER_SECOND / self.sample_rate

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._volume = _check_volume(value)
        if self._handle is not None and not self._closed:
            self._handle.setVolume(self._volume)

    @property
    def output_latency_ms(self) -> float:
        """What the device adds after a frame is rendered, as the browser reports it (``outputLatency``,
        else ``baseLatency``; in a worker, as the page reported it at the last ``resume``). Firefox: its
        ``baseLatency`` (0) only, since reading its ``outputLatency`` while audio plays can freeze the page
        (``audio_shim.js`` says why), so ``compensate_output_latency`` subtracts nothing there."""
        if self.context is None:
            return self._worker_latency_s * MS_PER_SECOND
        if self._latency_of is None:  # a player not made by create()
            return 0.0
        return float(self._latency_of(self.context)) * MS_PER_SECOND

    @property
    def playing(self) -> PlaybackPosition | None:
        """The item now sounding and its position, or None."""
        if self._current is None:
            return None
        item_id, content_index = self._items[self._current]
        return PlaybackPosition(item_id, content_index, self.heard_ms(item_id, content_index) or 0.0)

    async def resume(self, timeout: float | None = None) -> bool:
        """Resume a suspended context (call from a user gesture if autoplay is blocked); True if running."""
        if self.context is None:  # in a worker: the page resumes it
            if self._handle is None:
                return False
            limit_ms = 3_600_000 if timeout is None else timeout * MS_PER_SECOND
            state = str(await self._handle.resume(limit_ms))
            self._worker_latency_s = float(await self._handle.outputLatency() or 0.0)
            if state != "running":
                logger.warning("the page's AudioContext is still suspended (autoplay policy): call "
                               "`await player.resume()` after a click on the page to hear audio")
            return state == "running"
        if hasattr(self.context, "startRendering"):
            return False  # an OfflineAudioContext runs when its owner calls startRendering()
        return await resume_context(
            self.context,
            timeout,
            "the AudioContext is still suspended (autoplay policy): call `await player.resume()` "
            "from a click or key handler to hear audio",
        )

    def close(self) -> None:
        """Disconnect the nodes, release every proxy and close the context if this player made it (in WebKit,
        suspend it for the next player: WebKitGTK can crash on closing it)."""
        if self._closed:
            return
        self._closed = True
        # Whoever waits for an item's end or an ack hears now: nothing more will come.
        for key, ended in self._ended.items():
            if not ended.done():
                ended.set_result(PlaybackPosition(*self._items[key], self.heard_ms(*self._items[key]) or 0.0))
        for ack in self._acks.values():
            if not ack.done():
                ack.set_result(ack.get_loop().time())
        self._acks.clear()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._event_proxy is not None:
            self._event_proxy.destroy()
            self._event_proxy = None
        if self.context is not None and self._release_context is not None:  # set only for a context made here
            self._release_context(self.context)  # closed; in WebKit, suspended and kept for the next player

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.sample_rate} Hz"
        return f"<AudioPlayer {state}, {len(self._keys)} items, volume {self._volume}>"

    # -- internals -----------------------------------------------------------------------------------

    def _key(self, item_id: str, content_index: int) -> int:
        key = self._keys.get((item_id, content_index))
        if key is None:
            key = len(self._keys)
            self._keys[(item_id, content_index)] = key
            self._items[key] = (item_id, content_index)
        return key

    def _post(self, data: Any, item_id: str, content_index: int, audio_format: str, seq: int | None) -> bool:
        """Send the audio to the worklet; False if it was dropped (closed, item stopped, no data)."""
        check_format(audio_format)
        if self._closed or self._handle is None:
            return False
        key = self._key(item_id, content_index)
        if key in self._stopped or not len(data):
            return False
        from pyodide.ffi import to_js

        # One copy into a fresh Uint8Array, whose buffer JS then transfers to the audio thread.
        self._handle.play(key, audio_format, to_js(memoryview(data)), seq)
        self._posted.add(key)
        self._end_reasons.pop(key, None)  # more audio: it has not played out (yet)
        return True

    def _played_out(self, key: int) -> bool:
        return key in self._finish_called and self._end_reasons.get(key) in _PLAYED_OUT

    def _play_acked(self, data: Any, item_id: str, content_index: int, audio_format: str) -> asyncio.Future[float]:
        """Like ``play``; the future resolves (to the loop time) when the worklet has queued the audio,
        at once if the audio was dropped, or when the player closes."""
        seq = self._next_seq
        self._next_seq += 1
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self._post(data, item_id, content_index, audio_format, seq):
            self._acks[seq] = future
        else:
            future.set_result(future.get_loop().time())  # nothing to queue: no ack will come
        return future

    def _on_event(self, message: Any) -> None:
        # Called by the JS Player for every worklet message except progress reports (named fields, as
        # the shim's MESSAGES table lists them).
        try:
            kind = str(message.type)
            if kind == "queued":
                ack = self._acks.pop(int(message.seq), None)
                if ack is not None and not ack.done():
                    ack.set_result(asyncio.get_running_loop().time())
                return
            if kind == "error":
                logger.warning("audio: %s", message.message)
                return
            key = int(message.key)
            item = self._items.get(key)
            if item is None:
                return
            if kind == "started":
                self._current = key
                if self.on_item_started is not None:
                    self.on_item_started(*item)
            elif kind == "underrun":
                self.underruns += 1
            elif kind == "ended":
                if self._current == key:
                    self._current = None
                reason = str(message.reason)
                self._end_reasons[key] = reason
                if self._played_out(key) and key in self._received_ms:
                    heard = self._received_ms[key]
                else:
                    heard = int(message.frames) * MS_PER_SECOND / self.sample_rate
                position = PlaybackPosition(item[0], item[1], heard)
                future = self._ended.get(key)
                if future is None:
                    future = self._ended[key] = asyncio.get_running_loop().create_future()
                if not future.done():
                    future.set_result(position)
                if self.on_item_ended is not None:
                    self.on_item_ended(item[0], item[1], position.heard_ms, reason)  # type: ignore[arg-type]
        except Exception:
            # A listener's bug must not break the audio thread's messages.
            logger.exception("an AudioPlayer callback raised")
