"""``OpenAIRealtimeWebRTC``: the browser's own voice transport, a second thin shell around the same core.

The same protocol core, send context, events and methods as
:class:`~pyodide_realtime.transport.OpenAIRealtimeWebSocket` (they share ``transport._TransportShell``);
what differs is the backend and the audio:

- ``connect`` makes an ``RTCPeerConnection``: the microphone is a track (getUserMedia with the
  ``Microphone``'s constraints and ``device_id``), the model's voice the remote track, played by an
  ``<audio>`` element; the events travel on the ``oai-events`` data channel. The offer goes, with
  ``Authorization: Bearer ek_...`` and ``Content-Type: application/sdp``, to the API's WebRTC endpoint
  (GA: ``POST /v1/realtime/calls``; beta: ``POST /v1/realtime?model=...``).
- Audio is Opus on the media track, never base64 in events: no ``audio`` events arrive, and no
  player is needed (``owns_audio_devices``: a session starts none).
- ``interrupt()`` does what the JS transport does: ``response.cancel`` if a response runs, then
  ``output_audio_buffer.clear``; the server truncates the item where its audio stopped and says so
  with ``conversation.item.truncated`` (the session's history is trimmed from it). When the user speaks
  over the model, the server stops the audio itself: the client sends nothing.
- ``mute()`` disables the microphone's track.

Failures in words, with the WebSocket transport's endings (``connect`` raises, later ones are
``error`` events, the opt-in ``reconnect=``): a refused key (HTTP 401), an offer the server refuses
(its message), a data channel that does not open within ``connect(timeout=...)`` (then the peer
connection is closed and the microphone released), ICE that fails, a data channel that closes.

It runs on a page only: ``RTCPeerConnection`` exists neither in a Web Worker nor in CPython (there,
construction raises UnsupportedError; use :class:`~pyodide_realtime.transport.OpenAIRealtimeWebSocket`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._connect import ApiKey, Endpoint, ReconnectPolicy
from ._core import BargeIn, HeardMs
from ._interfaces import MAX_BUFFERED_AUDIO_BYTES, MAX_MESSAGE_BYTES, SocketFactory, SocketHandler, SocketRequest
from ._platform import in_browser
from .dialects import check_webrtc_url, webrtc_url
from .errors import UnsupportedError
from .transport import _TransportShell

__all__ = ["OpenAIRealtimeWebRTC", "PeerFactory"]

#: ``create_peer`` hook: open a peer connection for ``request`` with ``media`` (a ``PeerMedia``) and
#: report to ``handler`` as a socket does; it returns at once with an object that has ``send``,
#: ``close`` and ``set_muted``.
PeerFactory = Callable[[SocketRequest, SocketHandler, Any], Any]

NO_PEER_CONNECTION = (
    "OpenAIRealtimeWebRTC needs the page's RTCPeerConnection, which {where} has not: {what}"
)


def _check_peer_connection() -> None:
    """UnsupportedError, saying why and what to do, where no RTCPeerConnection can be made."""
    if not in_browser():
        raise UnsupportedError(NO_PEER_CONNECTION.format(
            where="CPython", what="use OpenAIRealtimeWebSocket here (the default transport), or pass create_peer="))
    from .audio._shim import in_worker

    if in_worker():
        raise UnsupportedError(NO_PEER_CONNECTION.format(
            where="a Web Worker",
            what="run the session on the page itself for WebRTC, or keep the WebSocket transport in the worker "
                 "(RealtimeSession(agent, transport='websocket'), the default; its audio is bridged to the page)"))
    import js

    if not hasattr(js, "RTCPeerConnection"):
        raise UnsupportedError(NO_PEER_CONNECTION.format(
            where="this browser", what="use the WebSocket transport (RealtimeSession(agent, transport='websocket'))"))


class OpenAIRealtimeWebRTC(_TransportShell):
    """A Realtime API connection over WebRTC, in a page (see the module docstring)."""

    #: The transport plays the model's voice and captures the microphone itself: a session that
    #: uses it starts no player and no microphone of its own.
    owns_audio_devices = True

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        api_key: ApiKey | None = None,
        use_insecure_api_key: bool = False,
        dialect: str = "ga",
        create_peer: PeerFactory | None = None,
        *,
        microphone: bool = True,
        media_stream: Any = None,
        audio_element: Any = None,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        device_id: str | None = None,
        allow_insecure_transport: bool = False,
        max_message_bytes: int | None = MAX_MESSAGE_BYTES,
        reconnect: ReconnectPolicy | bool | None = False,
    ) -> None:
        """Nothing is opened here; ``connect()`` does that. Raises ConfigurationError for a bad option,
        UnsupportedError where there is no RTCPeerConnection (CPython, a Web Worker) and no ``create_peer``.

        ``url``: where the offer is posted (default: the API's, see the module docstring); ``https://``,
        or ``http://`` to this machine, unless ``allow_insecure_transport=True``. ``microphone=False``:
        listen only. ``media_stream``: your own MediaStream (never stopped here), instead of the
        microphone opened with ``echo_cancellation``, ``noise_suppression``, ``auto_gain_control`` and
        ``device_id``. ``audio_element``: your own ``<audio>`` element for the model's voice.
        ``reconnect`` and ``max_message_bytes`` as for the WebSocket transport.
        """
        if create_peer is None:
            _check_peer_connection()
        self._create_peer: PeerFactory | None = create_peer
        self._constraints: dict[str, Any] = {
            "channelCount": 1,
            "echoCancellation": bool(echo_cancellation),
            "noiseSuppression": bool(noise_suppression),
            "autoGainControl": bool(auto_gain_control),
        }
        if device_id is not None:
            self._constraints["deviceId"] = {"exact": str(device_id)}
        self._with_microphone = bool(microphone)
        self._media_stream = media_stream
        self._audio_element = audio_element
        self._muted = False
        super().__init__(
            url=url,
            model=model,
            api_key=api_key,
            use_insecure_api_key=use_insecure_api_key,
            dialect=dialect,
            create_websocket=None,
            allow_insecure_transport=bool(allow_insecure_transport),
            max_message_bytes=max_message_bytes,
            max_buffered_audio_bytes=MAX_BUFFERED_AUDIO_BYTES,
            reconnect=reconnect,
            endpoint=Endpoint(
                "WebRTC connection",
                check_webrtc_url,
                webrtc_url,
                self._peer_factory,
                stalled="its data channel never opened: no network path to the peer was found",
            ),
        )

    def _peer_factory(self) -> SocketFactory:
        from ._browser_peer import PeerMedia, create_browser_peer

        create = self._create_peer or create_browser_peer
        media = PeerMedia(
            constraints=dict(self._constraints),
            microphone=self._with_microphone,
            muted=self._muted,
            media_stream=self._media_stream,
            audio_element=self._audio_element,
        )
        def open_peer(request: SocketRequest, handler: SocketHandler) -> Any:
            return create(request, handler, media)

        return open_peer

    # State ---------------------------------------------------------------------------------------
    @property
    def muted(self) -> bool:
        """Whether the microphone's track is disabled (``mute``)."""
        return self._muted

    @property
    def call_id(self) -> str | None:
        """The call's id (from the answer's ``Location``, GA), or None."""
        value = getattr(self._link.socket, "call_id", None)
        return value if isinstance(value, str) else None

    # Audio -----------------------------------------------------------------------------------------
    def mute(self, muted: bool) -> None:
        """Disable (or enable again) the microphone's track; kept for the next connection too. Sends
        nothing; never raises."""
        self._muted = bool(muted)
        peer = self._link.socket
        set_muted = getattr(peer, "set_muted", None)
        if set_muted is not None:
            try:
                set_muted(self._muted)
            except Exception as exc:
                self._report(exc)

    # Interruption ------------------------------------------------------------------------------------
    def _interrupt(self, elapsed_ms: HeardMs, cancel_ongoing_response: bool = True) -> None:
        """As the JS transport: cancel the running response (if asked), then clear the server's output
        buffer; the server truncates where its audio stopped (``conversation.item.truncated``)."""
        with self._sending() as core:
            if cancel_ongoing_response:
                self._cancel_response()
            core.send_event({"type": "output_audio_buffer.clear"})

    def _barge_in(self, hint: BargeIn) -> None:
        """The server stops its own audio when the user speaks over it (and truncates): nothing to send."""
