"""The seams between the transport and its I/O parts: sockets, audio output, microphone.

The transport only talks to these protocols, so a browser backend, a CPython backend, a user's own
socket, the Web Audio player or a test double can stand behind them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

#: The audio formats the Realtime API speaks, named once for both dialects.
AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
#: Sample rate of each format, in Hz: PCM16 is 16-bit mono at 24 kHz, G.711 one byte a sample at 8 kHz.
FORMAT_RATES: dict[str, int] = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}
_BYTES_PER_SAMPLE = {"pcm16": 2, "g711_ulaw": 1, "g711_alaw": 1}


def bytes_per_ms(audio_format: str) -> int:
    """Bytes of audio per millisecond in ``audio_format`` (48 for PCM16, 8 for G.711)."""
    return FORMAT_RATES[audio_format] * _BYTES_PER_SAMPLE[audio_format] // 1000


#: The WebSocket close code of an orderly close (RFC 6455); any other code means something went wrong.
NORMAL_CLOSURE = 1000
#: How long a WebSocket may take to open before ``connect`` gives up, in seconds.
OPEN_TIMEOUT_S = 20.0


def safe_url(url: str) -> str:
    """``url`` without its query: a ``call_id`` (or anything else a user put there) stays out of errors."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class SocketRequest:
    """Everything a backend needs to open the Realtime WebSocket.

    Browsers authenticate with ``subprotocols``; server-side backends send ``headers``. The key is
    kept out of ``repr`` so that it never reaches a log.
    """

    url: str
    subprotocols: tuple[str, ...] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


class SocketHandler(Protocol):
    """What a backend calls, always from the thread that runs the event loop.

    ``on_message`` gets a text frame's JSON as ``str`` or as UTF-8 ``bytes``/``bytearray``/
    ``memoryview``; a buffer is only valid during the call (backends reuse it), so the handler must
    parse it before returning. A binary frame is reported by size through ``on_binary``.
    """

    def on_open(self, protocol: str) -> None: ...
    def on_message(self, data: str | bytes | bytearray | memoryview) -> None: ...
    def on_binary(self, size: int) -> None: ...
    def on_error(self, error: BaseException) -> None: ...
    def on_close(self, code: int, reason: str) -> None: ...


class RealtimeSocket(Protocol):
    """An open (or opening) WebSocket as the transport sees it."""

    def send(self, text: str) -> None: ...
    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None: ...


#: ``create_websocket`` hook: open a socket for ``request`` and report to ``handler``. It returns at
#: once; the handler hears ``on_open`` or ``on_error``/``on_close`` later.
SocketFactory = Callable[[SocketRequest, SocketHandler], RealtimeSocket]


@runtime_checkable
class AudioOutput(Protocol):
    """Where model audio goes, and what it says back about what was heard (``AudioPlayer``)."""

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: AudioFormat) -> None:
        """Queue ``data`` (raw audio in ``audio_format``) for the given item."""

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        """Milliseconds of that item actually rendered to the speakers, or None if unknown."""

    def stop(self) -> None:
        """Stop at once and drop everything queued (an interruption)."""


@runtime_checkable
class AudioInput(Protocol):
    """A microphone the transport can mute (``Microphone``)."""

    @property
    def muted(self) -> bool: ...

    @muted.setter
    def muted(self, value: bool) -> None: ...
