"""``Microphone``: getUserMedia to chunks of PCM16 24 kHz (or G.711 8 kHz), ready for ``send_audio``.

Capture runs at the device's rate; the AudioWorklet low-passes, resamples and encodes, and posts one
transferred buffer per chunk, so Python sees one call per chunk (20 to 100 ms), never per sample.

Muting keeps the chunks coming but fills them with silence: the server's voice activity detection
then still hears the end of a turn, and the stream's timing stays intact.

In a Web Worker the microphone and its worklet live on the page (see ``_shim``); the chunks come to the
worker over their own ``MessagePort``, never through the page's event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._interfaces import FORMAT_RATES, AudioFormat
from ..errors import ConfigurationError, RealtimeError, UnsupportedError
from ._context import RESUME_TIMEOUT_S, PlayerWatch, cancels_any_rate, resume_context
from ._shim import js_object, load_shim, page_link, require_web_audio
from .player import check_format

__all__ = ["Microphone", "MIN_CHUNK_MS", "MAX_CHUNK_MS", "media_error"]

logger = logging.getLogger(__name__)

MIN_CHUNK_MS = 20
MAX_CHUNK_MS = 100
DEFAULT_CHUNK_MS = 40
#: Chunks kept for an ``async for`` reader that falls behind; older ones are dropped (and counted).
MAX_QUEUED_CHUNKS = 250
MS_PER_SECOND = 1000

ChunkCallback = Callable[[bytes], Any]


def media_error(name: str, message: str = "") -> RealtimeError:
    """The package error for a getUserMedia failure, by the DOMException's ``name``.

    It says what the person must do, not which call to make again: it reaches ``Microphone.start``'s,
    ``start_voice``'s and a session's callers alike (a session says its own way to ask again).
    """
    if name in ("NotAllowedError", "PermissionDeniedError", "SecurityError"):
        return UnsupportedError(
            "microphone access was denied: allow the microphone for this page (the browser's site "
            "settings, or the permission prompt), then ask for it again"
        )
    if name in ("NotFoundError", "DevicesNotFoundError"):
        return UnsupportedError("no microphone was found: connect one (or enable it in the system settings), then ask for it again")
    if name in ("NotReadableError", "TrackStartError", "AbortError"):
        return UnsupportedError(
            "the microphone could not be opened (another application may be using it): free it, then ask for it again"
        )
    if name in ("OverconstrainedError", "ConstraintNotSatisfiedError"):
        return ConfigurationError(
            "no microphone matches the requested settings (device_id?): pass device_id=None or an id from "
            "navigator.mediaDevices.enumerateDevices()"
        )
    if name == "InsecureContextError":
        return UnsupportedError(
            "the microphone needs a secure page: serve it over https:// or from http://localhost / http://127.0.0.1"
        )
    detail = f": {message}" if message else ""
    return UnsupportedError(f"the microphone could not be started ({name}{detail})")


def _check_chunk_ms(chunk_ms: float) -> float:
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, (int, float)) or not MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS:
        raise ConfigurationError(
            f"chunk_ms must be from {MIN_CHUNK_MS} to {MAX_CHUNK_MS} milliseconds, not {chunk_ms!r}: shorter chunks "
            "cost a message each, longer ones delay the server's voice detection"
        )
    return float(chunk_ms)


class Microphone:
    """The page's microphone as a stream of audio chunks; an ``AudioInput``.

    ``on_chunk(data: bytes)`` (sync or async) gets each chunk; without it, read them with
    ``async for chunk in mic``. ``await mic.start()`` asks for the microphone, ``mic.stop()`` releases it.
    """

    def __init__(
        self,
        on_chunk: ChunkCallback | None = None,
        *,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        audio_format: AudioFormat = "pcm16",
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        device_id: str | None = None,
        muted: bool = False,
    ) -> None:
        self.chunk_ms = _check_chunk_ms(chunk_ms)
        self.audio_format = check_format(audio_format)
        self.sample_rate = FORMAT_RATES[audio_format]
        #: Samples per chunk at ``sample_rate``; bytes are twice this for PCM16.
        self.chunk_samples = round(self.chunk_ms * self.sample_rate / MS_PER_SECOND)
        self.on_chunk = on_chunk
        self._constraints: dict[str, Any] = {
            "channelCount": 1,
            "echoCancellation": echo_cancellation,
            "noiseSuppression": noise_suppression,
            "autoGainControl": auto_gain_control,
        }
        if device_id is not None:
            self._constraints["deviceId"] = {"exact": device_id}
        self._muted = muted
        self._handle: Any = None
        self._context: Any = None
        self._owns_context = False
        self._proxy: Any = None
        self._player_watch: PlayerWatch | None = None
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Chunks dropped because an ``async for`` reader fell more than MAX_QUEUED_CHUNKS behind.
        self.dropped_chunks = 0
        #: Chunks delivered since ``start``.
        self.chunks = 0
        #: The capture context's rate (the device's), known after ``start``.
        self.device_rate: int | None = None

    @classmethod
    async def create(cls, on_chunk: ChunkCallback | None = None, **options: Any) -> Microphone:
        """``Microphone(on_chunk, **options)``, started."""
        mic = cls(on_chunk, **options)
        await mic.start()
        return mic

    @property
    def running(self) -> bool:
        return self._handle is not None

    @property
    def muted(self) -> bool:
        """While True, chunks keep coming but hold silence."""
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = bool(value)
        if self._handle is not None:
            self._handle.setMuted(self._muted)

    async def start(self, context: Any = None) -> None:
        """Ask for the microphone and start delivering chunks. ``context``: an AudioContext to share
        (on the page's main thread only)."""
        if self._handle is not None:
            return
        where = require_web_audio("Microphone")
        import js
        from pyodide.ffi import JsException, create_proxy

        if where == "worker":
            if context is not None:
                raise ConfigurationError("in a Web Worker the AudioContext lives on the page: call start() without one")
            link = await page_link("Microphone")
            self._proxy = create_proxy(self._on_js_chunk)
            self.chunks = 0
            try:
                self._handle = await link.openCapture(
                    js_object(self._constraints), self.audio_format, self.chunk_samples, self._muted, self._proxy
                )
            except JsException as exc:
                self.stop()
                name, message = _js_error_name(exc)
                raise media_error(name, message) from None
            except BaseException:
                self.stop()
                raise
            self.device_rate = int(self._handle.sampleRate)
            return

        shim, url = await load_shim()
        try:
            opened = await shim.openMicrophone(js_object(self._constraints))
        except JsException as exc:
            name, message = _js_error_name(exc)
            raise media_error(name, message) from None
        stream = opened.stream
        # From here on the microphone is live: whatever fails (even making the context) must release it.
        try:
            rate = int(opened.rate)
            self._owns_context = context is None
            if context is None:
                options: dict[str, str | int] = {"latencyHint": "interactive"}
                if rate > 0:
                    options["sampleRate"] = rate  # capture at the device's rate (Firefox insists)
                context = js.AudioContext.new(js_object(options))
            self._context = context
            self.device_rate = int(context.sampleRate)
            self._proxy = create_proxy(self._on_js_chunk)
            self.chunks = 0
            self._handle = await shim.createCapture(
                context, url, stream, None, self.audio_format, self.chunk_samples, self._muted, self._proxy
            )
            await resume_context(
                context, RESUME_TIMEOUT_S, "the microphone's AudioContext is suspended: call start() from a click handler"
            )
            self._player_watch = self._watch_players(shim, context, rate)
        except BaseException:
            for track in stream.getTracks():
                track.stop()
            self.stop()
            raise

    def _watch_players(self, shim: Any, context: Any, track_rate: int) -> PlayerWatch | None:
        """Where the canceller hears only some rates (Firefox): warn of every page player it will not
        hear (``EchoCancellationWarning``), now and as they are made."""
        import js

        user_agent = str(js.navigator.userAgent)
        if not self._constraints["echoCancellation"] or cancels_any_rate(user_agent):
            return None
        if self._owns_context and track_rate <= 0:
            rate = int(context.sampleRate)  # made with no sampleRate: the rate the microphone runs at
        else:  # the caller's context, of any rate: ask a default one
            probe = js.AudioContext.new()
            rate = int(probe.sampleRate)
            probe.close()
        return PlayerWatch(shim, user_agent, rate)

    def stop(self) -> None:
        """Release the microphone, the nodes, the proxy and (if made here) the context; ends ``async for``."""
        if self._player_watch is not None:
            self._player_watch.close()
            self._player_watch = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._proxy is not None:
            self._proxy.destroy()
            self._proxy = None
        if self._owns_context and self._context is not None and str(self._context.state) != "closed":
            self._context.close()
        self._context = None
        self._wake()

    close = stop

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            if self._queue:
                yield self._queue.popleft()
                continue
            if self._handle is None:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def __repr__(self) -> str:
        state = "running" if self._handle is not None else "stopped"
        return f"<Microphone {state}, {self.audio_format} {self.chunk_ms:g} ms chunks, muted={self._muted}>"

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _on_js_chunk(self, u8: Any) -> None:
        data: bytes = u8.to_bytes()
        self.chunks += 1
        callback = self.on_chunk
        if callback is None:
            if len(self._queue) >= MAX_QUEUED_CHUNKS:
                self._queue.popleft()
                self.dropped_chunks += 1
            self._queue.append(data)
            self._wake()
            return
        try:
            result = callback(data)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
        except Exception:
            logger.exception("the microphone's on_chunk callback raised")

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("the microphone's on_chunk callback raised", exc_info=task.exception())


def _js_error_name(exc: BaseException) -> tuple[str, str]:
    """The JS error's ``name`` and message, from a pyodide JsException."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if not isinstance(name, str):
        text = str(exc)
        name, _, message = text.partition(":")
    return str(name).strip(), str(message or "").strip()
