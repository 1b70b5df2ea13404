"""The seams between the transport and its I/O parts: sockets, audio output, microphone.

The transport only talks to these protocols, so a browser backend, a CPython backend, a user's own
socket, the Web Audio player or a test double can stand behind them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
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
#: What browsers report when a socket dies without a close frame; the CPython backend says the same.
ABNORMAL_CLOSURE = 1006
#: Close code for a message over the size bound (RFC 6455).
MESSAGE_TOO_BIG = 1009
#: Close code of a peer that failed (the server's internal error; also websockets' keepalive timeout).
INTERNAL_ERROR = 1011
#: The reason of a connection closed for a missing pong (websockets' words, kept for both backends).
KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
#: Close code of a server that restarts.
SERVICE_RESTART = 1012
#: How long a WebSocket may take to open before ``connect`` gives up, in seconds.
OPEN_TIMEOUT_S = 20.0
#: The largest incoming message accepted, in bytes of UTF-8 JSON. The largest real events are a
#: ``session.created``/``updated`` with long instructions and tools, and a ``conversation.item.retrieved``
#: that carries a user's whole utterance as base64 PCM16 (64 KB a second): 16 MiB fits two minutes of it.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Above this many bytes waiting in the socket's send buffer, ``send_audio`` drops microphone audio
#: rather than piling it up (about 4 s of PCM16 as base64 JSON: a slow uplink, not a jitter).
MAX_BUFFERED_AUDIO_BYTES = 256 * 1024

#: Words for the close codes of RFC 6455 (and the IANA registry) that a Realtime session may meet.
CLOSE_CODE_WORDS: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure: the connection dropped without a close frame, a network or server failure",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension missing",
    1011: "internal error on the server",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def describe_close(code: int | None, reason: str = "") -> str:
    """``code 1011 (internal error on the server), <reason>``: a close code with its meaning."""
    if code is None:
        words = "no close code"
    else:
        meaning = CLOSE_CODE_WORDS.get(code) or ("application-defined" if 3000 <= code <= 4999 else "unknown code")
        words = f"code {code} ({meaning})"
    return f"{words}, {reason}" if reason else words


def safe_url(url: str) -> str:
    """``url`` without its query and any ``user:password@``: what may appear in an error or a log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}{parts.path}"


# API keys by their prefixes (secret, ephemeral, restricted): a server's error text may quote one.
_KEY_LIKE = re.compile(r"\b(?:sk|ek|rk)[-_][^\s\"',]*")
# Where a key travels whatever it looks like: the Authorization header's credentials and the browser's
# key subprotocol (a server logging its handshakes knows no secret to look for, only these places).
_KEY_PLACES = re.compile(r"(?i)(authorization:\s*\S+\s+|openai-insecure-api-key\.)[^\s,\"']+")
REDACTED = "<redacted>"


#: A run of this many characters of a secret counts as a leak: logs cut long texts in the middle
#: (websockets' frame logs keep a frame's last characters), leaving a key's tail.
SECRET_FRAGMENT_CHARS = 8


def _redact_fragments(text: str, secret: str) -> str:
    n = SECRET_FRAGMENT_CHARS
    if len(secret) < n:
        return text.replace(secret, REDACTED)
    windows = {secret[i : i + n] for i in range(len(secret) - n + 1)}
    out: list[str] = []
    last = pos = 0
    while pos <= len(text) - n:
        if text[pos : pos + n] not in windows:
            pos += 1
            continue
        end = pos + n
        while end < len(text) and text[pos : end + 1] in secret:  # the longest run of the secret here
            end += 1
        out += (text[last:pos], REDACTED)
        last = pos = end
    out.append(text[last:])
    return "".join(out)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret (and any run of SECRET_FRAGMENT_CHARS characters of one), anything that
    looks like an API key, and whatever follows ``Authorization: <scheme>`` or the key subprotocol's
    prefix, replaced."""
    text = _KEY_LIKE.sub(REDACTED, _KEY_PLACES.sub(r"\1" + REDACTED, text))
    for secret in secrets:
        if secret:
            text = _redact_fragments(text, secret)
    return text


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger for a library that logs what it sends (``websockets`` logs every handshake header at
    DEBUG, ``Authorization`` included): each message is formatted, then redacted, before it becomes a
    record, so no handler, filter or formatter ever sees a secret."""

    def __init__(self, logger: logging.Logger, secrets: Iterable[str]) -> None:
        super().__init__(logger, None)
        self._secrets = tuple(s for s in secrets if s)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(map(str, (msg, *args)))
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "%s", redact(text, self._secrets), **kwargs)


_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """The same redaction for a logger a library creates itself (uvicorn hands ``websockets`` its
    ``uvicorn.error`` logger, so no adapter can be put in between): attached to that logger, it
    rewrites each record's message, traceback and stack before any handler sees them (a malformed
    handshake's exception quotes the header, key and all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = " ".join(map(str, (record.msg, *(record.args or ()))))
        record.msg, record.args = redact(text), ()
        if record.exc_info:
            # Formatter.format uses exc_text as given once it is set, and exc_info only to make it.
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


@dataclass(frozen=True)
class SocketRequest:
    """Everything a backend needs to open the Realtime WebSocket.

    Browsers authenticate with ``subprotocols``; server-side backends send ``headers``. The key is
    kept out of ``repr`` so that it never reaches a log.
    """

    url: str = field(repr=False)
    subprotocols: tuple[str, ...] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    #: Incoming messages above this many bytes close the socket with 1009 (None: no bound).
    max_message_bytes: int | None = MAX_MESSAGE_BYTES

    def __repr__(self) -> str:
        return f"SocketRequest(url={safe_url(self.url)!r}, max_message_bytes={self.max_message_bytes!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be logged: the key in the Authorization header and the key subprotocol."""
        found = [v.split(" ", 1)[-1] for k, v in self.headers.items() if k.lower() == "authorization"]
        found += [p.split(".", 1)[-1] for p in self.subprotocols if p.startswith("openai-insecure-api-key.")]
        return tuple(s for s in found if s)


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
    """An open (or opening) WebSocket as the transport sees it.

    ``send`` raises :class:`~pyodide_realtime.errors.ConnectionClosedError` once the socket is closed.
    A socket may also have a ``buffered_amount`` property (see ``BufferedSocket``).
    """

    def send(self, text: str) -> None: ...
    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None: ...


@runtime_checkable
class BufferedSocket(Protocol):
    """A socket that tells how much it has accepted but not yet put on the wire (both backends do;
    a ``create_websocket`` socket without it never has microphone audio dropped)."""

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for sending (the browser's ``WebSocket.bufferedAmount``)."""
        ...


#: ``create_websocket`` hook: open a socket for ``request`` and report to ``handler``. It returns at
#: once; the handler hears ``on_open`` or ``on_error``/``on_close`` later.
SocketFactory = Callable[[SocketRequest, SocketHandler], RealtimeSocket]


@runtime_checkable
class AudioOutput(Protocol):
    """Where model audio goes, and what it says back about what was heard (``AudioPlayer``).

    Three more methods are used when an output has them: ``finish(item_id, content_index)`` (the
    transport calls it when the server's audio for the item is done), ``finished(item_id,
    content_index) -> bool`` (its last frame was rendered: the item is never truncated) and
    ``audio_received(item_id, content_index, received_ms)`` (called after each ``play`` with the core's
    count of the item's audio so far, in ms of its own format: an output that needs the figure takes
    it rather than counting bytes again). An output whose ``heard_ms`` keeps answering after
    ``stop()``, with where each item's sound stopped, says so with ``stops_where_heard = True``: an
    interruption then stops it first and truncates at those positions, so the model's transcript ends
    where the user stopped hearing, however late the truncation is sent. Without it, the truncation
    is measured first and the output stopped after.
    """

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: AudioFormat) -> None:
        """Queue ``data`` (raw audio in ``audio_format``) for the given item."""

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        """Milliseconds of that item actually rendered to the speakers, or None if unknown."""

    def stop(self) -> None:
        """Stop at once and drop everything queued (an interruption)."""


@runtime_checkable
class ReportsHeard(Protocol):
    """Anything that says how much of an item was heard: an AudioOutput, or a bare playback tracker."""

    def heard_ms(self, item_id: str, content_index: int) -> float | None: ...


@runtime_checkable
class ReportsFinished(Protocol):
    """An output that knows when an item's last frame was rendered (see :class:`AudioOutput`)."""

    def finished(self, item_id: str, content_index: int) -> bool: ...


@runtime_checkable
class FinishesItems(Protocol):
    """An output told when the server's audio for an item is done (see :class:`AudioOutput`)."""

    def finish(self, item_id: str, content_index: int) -> None: ...


@runtime_checkable
class StopsWhereHeard(Protocol):
    """An output whose ``heard_ms`` keeps answering after ``stop()`` (see :class:`AudioOutput`)."""

    stops_where_heard: bool


@runtime_checkable
class AudioInput(Protocol):
    """A microphone the transport can mute (``Microphone``)."""

    @property
    def muted(self) -> bool: ...

    @muted.setter
    def muted(self, value: bool) -> None: ...
