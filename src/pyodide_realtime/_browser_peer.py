"""The browser's WebRTC backend: an ``RTCPeerConnection`` and its ``oai-events`` data channel, driven
from Pyodide, seen by the transport as a socket (``send``/``close``, and ``on_open``/``on_message``/
``on_error``/``on_close`` on its handler).

The page does the media (``_webrtc_shim.js``): the microphone is a track, the model's voice the remote
track. Here JS failures become this package's errors, in words, at the boundary: a refused key (HTTP
401/403), an offer the server refuses (its own message), an answer the browser refuses, a microphone
that cannot open (``media_error``), ICE that fails, a data channel that closes. No message repeats the
key. Every ``create_proxy`` is owned by a registry and destroyed once the peer is closed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ._browser_socket import ProxyOwner, _js_object, _ProxyRegistry, shim_function
from ._interfaces import ABNORMAL_CLOSURE, SocketHandler, SocketRequest, redact, safe_url
from .errors import ConnectionClosedError, ConnectionFailedError, RealtimeError, UnsupportedError

__all__ = ["PeerMedia", "BrowserPeer", "create_browser_peer", "AUTH_REFUSED_STATUSES", "MAX_DETAIL_CHARS"]

logger = logging.getLogger("pyodide_realtime")

#: A server's error body is quoted up to this many characters (it may be a whole HTML page).
MAX_DETAIL_CHARS = 300
#: The statuses of a refused key.
AUTH_REFUSED_STATUSES = frozenset({401, 403})

@dataclass(frozen=True)
class PeerMedia:
    """What a peer connection needs besides the request: the microphone and the audio element.

    ``constraints``: getUserMedia's audio constraints (the ``Microphone``'s). ``microphone=False``: listen
    only. ``media_stream``/``audio_element``: the app's own (a JS MediaStream / HTMLAudioElement; the
    stream is never stopped here).
    """

    constraints: dict[str, Any] = field(default_factory=dict)
    microphone: bool = True
    muted: bool = False
    media_stream: Any = field(default=None, repr=False)
    audio_element: Any = field(default=None, repr=False)


def _server_detail(text: str, secrets: tuple[str, ...]) -> str:
    """The server's error message: its JSON ``error.message`` if it has one, else its text, short and
    with every secret out."""
    message = text
    try:
        body = json.loads(text)
        inner = body.get("error") if isinstance(body, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            message = inner["message"]
        elif isinstance(inner, str):
            message = inner
    except ValueError:
        pass
    message = " ".join(message.split())
    if len(message) > MAX_DETAIL_CHARS:
        message = message[:MAX_DETAIL_CHARS] + "..."
    return redact(message, secrets)


class BrowserPeer(ProxyOwner):
    """One peer connection and the proxies it needs. Made by :func:`create_browser_peer`."""

    def __init__(self, request: SocketRequest, handler: SocketHandler, media: PeerMedia) -> None:
        from pyodide.ffi import JsException, to_js

        self._handler = handler
        self._url = safe_url(request.url)
        self._secrets = request.secrets
        self._max_bytes = request.max_message_bytes
        self._proxies = _ProxyRegistry()
        self._opened = False
        self.closed = False
        callbacks = to_js(
            {
                "open": self._proxies.proxy(self._on_open),
                "message": self._proxies.proxy(self._on_message),
                "binary": self._proxies.proxy(self._on_binary),
                "error": self._proxies.proxy(self._on_error),
                "close": self._proxies.proxy(self._on_close),
            },
            dict_converter=_js_object,
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() != "user-agent"}  # the browser sets its own
        options = {
            "url": request.url,
            "headers": headers,
            "constraints": media.constraints,
            "microphone": media.microphone,
            "muted": media.muted,
        }
        js_options = to_js(options, dict_converter=_js_object)
        js_options.mediaStream = media.media_stream
        js_options.audioElement = media.audio_element
        try:
            self._js = shim_function("_webrtc_shim.js")(js_options, callbacks)
        except JsException as exc:
            self._release()
            name = getattr(exc, "name", "")
            raise UnsupportedError(
                f"this browser could not make an RTCPeerConnection ({name or 'error'}): use the WebSocket transport "
                "(RealtimeSession(agent, transport='websocket'))"
            ) from None

    # Called from JS: a handler's exception is logged here, never thrown into the page's event loop.
    def _on_open(self) -> None:
        self._opened = True
        try:
            self._handler.on_open("")
        except Exception:
            logger.exception("the peer handler raised on open")

    def _on_message(self, text: str) -> None:
        text = str(text)
        if self._max_bytes is not None and len(text) > self._max_bytes // 4 and len(text.encode()) > self._max_bytes:
            self._fail(
                ConnectionClosedError(
                    f"the server at {self._url} sent a message over the transport's max_message_bytes "
                    f"({self._max_bytes}); the connection was closed",
                    code=ABNORMAL_CLOSURE,
                    reason="message too big",
                )
            )
            return
        try:
            self._handler.on_message(text)
        except Exception:
            logger.exception("the peer handler raised on a message")

    def _on_binary(self, size: int) -> None:
        try:
            self._handler.on_binary(int(size))
        except Exception:
            logger.exception("the peer handler raised on a binary message")

    def _on_error(self, kind: str, name: str, message: str, status: int) -> None:
        self._release_soon()
        error = self._words(str(kind), str(name), str(message), int(status))
        try:
            self._handler.on_error(error)
        except Exception:
            logger.exception("the peer handler raised on error")

    def _on_close(self, why: str) -> None:
        self._release_soon()
        try:
            self._handler.on_close(ABNORMAL_CLOSURE, str(why))
        except Exception:
            logger.exception("the peer handler raised on close")

    def _fail(self, error: RealtimeError) -> None:
        self.close()
        try:
            self._handler.on_error(error)
        except Exception:
            logger.exception("the peer handler raised on error")

    def _words(self, kind: str, name: str, message: str, status: int) -> RealtimeError:
        """A JS failure in this package's words (the message never holds the key)."""
        if kind == "media":
            from .audio.microphone import media_error

            return media_error(name, redact(message, self._secrets))
        if kind == "http":
            detail = _server_detail(message, self._secrets)
            if status in AUTH_REFUSED_STATUSES:
                return ConnectionFailedError(
                    f"the server at {self._url} refused the key (HTTP {status}: {detail or 'unauthorized'}): mint a "
                    "fresh ephemeral key (they expire within minutes) and connect again",
                    http_status=status,
                )
            return ConnectionFailedError(
                f"the server at {self._url} refused the WebRTC offer (HTTP {status}): {detail or name}",
                http_status=status,
            )
        if kind == "fetch":
            return ConnectionFailedError(
                f"the WebRTC offer could not be posted to {self._url} ({name}: {redact(message, self._secrets)}): "
                "check the network and the URL"
            )
        if kind == "sdp":
            return ConnectionFailedError(
                f"the browser refused the SDP answer from {self._url} ({name}: {redact(message, self._secrets)}): "
                "the endpoint did not answer with a WebRTC session description"
            )
        if kind == "datachannel" and self._opened:
            # After open, a dropped peer: reported as a dropped WebSocket is (1006), so reconnect applies.
            return ConnectionClosedError(
                f"the connection closed unexpectedly: the data channel failed ({name}: {message or 'the peer dropped'})",
                code=ABNORMAL_CLOSURE,
                reason="data channel error",
            )
        detail = f"{name}: {message}" if message else name
        return ConnectionFailedError(f"the WebRTC connection to {self._url} failed ({redact(detail, self._secrets)})")

    # The socket protocol, as the transport sees it ---------------------------------------------------
    def send(self, text: str) -> None:
        """Send on the data channel; ConnectionClosedError once the peer is closed."""
        if self.closed:
            raise ConnectionClosedError(f"the WebRTC connection to {self._url} is closed")
        self._js.send(text)

    @property
    def buffered_amount(self) -> int:
        """The data channel's ``bufferedAmount``."""
        return 0 if self.closed else int(self._js.bufferedAmount())

    def set_muted(self, muted: bool) -> None:
        """Enable or disable the microphone's track (a disabled track sends silence)."""
        if not self.closed:
            self._js.setMuted(bool(muted))

    @property
    def track_enabled(self) -> bool | None:
        """The microphone track's ``enabled`` (None before it is added, or without one)."""
        if self.closed:
            return None
        value = self._js.trackEnabled()
        return None if value is None else bool(value)

    @property
    def call_id(self) -> str | None:
        """The call's id, from the answer's ``Location`` (GA), once answered."""
        if self.closed:
            return None
        value = self._js.callId()
        return None if value is None else str(value)

    async def bytes_sent(self) -> tuple[int, int]:
        """Bytes sent so far (the browser's getStats): the microphone's audio, the data channel's events."""
        if self.closed:
            return (0, 0)
        audio, events = (await self._js.bytesSent()).to_py()
        return int(audio), int(events)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the data channel and the peer connection, stop the microphone tracks it opened."""
        if not self.closed:
            self._js.close()
            self._release_soon()


def create_browser_peer(request: SocketRequest, handler: SocketHandler, media: PeerMedia) -> BrowserPeer:
    """The default ``create_peer`` in a page."""
    return BrowserPeer(request, handler, media)
