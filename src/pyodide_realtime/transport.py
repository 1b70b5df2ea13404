"""``OpenAIRealtimeWebSocket``: the public transport, a thin shell around the protocol core.

The core (``_core.RealtimeProtocol``) decides everything about the protocol, barge-in included, and
leaves hints; this class acts on them. It owns the clock, the audio devices, the listeners and the
send context (``_send_context``: every app call runs the core, then sends what it made and delivers
what it emitted); connecting and reconnecting live in ``_connect``. Backends: your
``create_websocket``, else the page's WebSocket in Pyodide, else the ``websockets`` library.

What the transport guards, whatever the app or the peer does: the key travels only over ``wss://``
(or ``ws://`` to this machine; ``allow_insecure_transport=True`` opts out) and never reaches a log,
a message or a repr; incoming messages are bounded (``max_message_bytes``: over it, close 1009);
microphone audio is dropped, not piled up, on a slow uplink (``audio_dropped``); every close is
reported with its code in words; ``reconnect=`` (off by default) comes back after a drop.

Extension points kept from the seed: override ``_on_audio(event)`` to handle audio yourself,
``_interrupt(elapsed_ms, cancel_ongoing_response)`` to compute interruptions differently (e.g. from a
phone line's playback marks), ``_cancel_response()`` to change how a response is cancelled, and
``_now_ms()`` for the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from ._connect import (
    RECONNECT_CLOSE_CODES,
    WEBSOCKET_ENDPOINT,
    ApiKey,
    Connection,
    ConnectionState,
    Endpoint,
    ReconnectPolicy,
    SocketListener,
    positive_bytes,
)
from ._core import BargeIn, HeardMs, RealtimeProtocol
from ._emitter import EventEmitter, Listenable
from ._interfaces import (
    MAX_BUFFERED_AUDIO_BYTES,
    MAX_MESSAGE_BYTES,
    OPEN_TIMEOUT_S,
    AudioInput,
    AudioOutput,
    FinishesItems,
    SocketFactory,
)
from ._playback import PlaybackPort, TakesReceivedCount
from ._send_context import SendContext, sends
from .config import SessionConfig
from .dialects import DialectSpec, get_dialect
from .errors import ConfigurationError, ConnectionClosedError, RealtimeError, UnsupportedError
from .events import AudioDropped, ConnectionStatus, ErrorEvent, Reconnected, ReconnectFailed, Reconnecting, TransportAudio

__all__ = [
    "OpenAIRealtimeWebSocket",
    "ConnectionState",
    "ApiKey",
    "ReconnectPolicy",
    "ReconnectFailed",
    "AudioDropped",
    "Reconnecting",
    "Reconnected",
    "RECONNECT_CLOSE_CODES",
]


class _TransportShell(Listenable):
    """What both transports are: one protocol core, its send context, the listeners, the audio devices
    and the connection (``_connect``). Each transport adds its backend (an :class:`Endpoint`) and how
    it interrupts and mutes."""

    def __init__(
        self,
        *,
        url: str | None,
        model: str | None,
        api_key: ApiKey | None,
        use_insecure_api_key: bool,
        dialect: str,
        create_websocket: SocketFactory | None,
        allow_insecure_transport: bool,
        max_message_bytes: int | None,
        max_buffered_audio_bytes: int,
        reconnect: ReconnectPolicy | bool | None,
        endpoint: Endpoint,
    ) -> None:
        self._dialect: DialectSpec = get_dialect(dialect)
        self._max_buffered_audio_bytes: int = positive_bytes("max_buffered_audio_bytes", max_buffered_audio_bytes)
        self._core = RealtimeProtocol(self._dialect, model=model)
        self._emitter = EventEmitter(self._on_listener_error)
        self._core.wanted = self._emitter.wanted
        self._sending = SendContext(self._core, self._act_and_flush)
        self._link = Connection(
            self._core,
            self._emitter,
            receive=self._socket_message,
            flush=self._flush,
            report=self._report,
            dialect=self._dialect,
            url=url,
            api_key=api_key,
            use_insecure_api_key=use_insecure_api_key,
            allow_insecure_transport=bool(allow_insecure_transport),
            create_websocket=create_websocket,
            max_message_bytes=max_message_bytes,
            reconnect=reconnect,
            endpoint=endpoint,
        )
        self._player: AudioOutput | None = None
        self._finish: Callable[[str, int], Any] | None = None  # the player's finish(), if it has one
        self._tell_received: Callable[[str, int, float], Any] | None = None  # its audio_received(), if any
        self._microphone: AudioInput | None = None

    # State ---------------------------------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        """``disconnected``, ``connecting`` or ``connected`` (the core's status: kept in one place)."""
        return self._core.status

    @property
    def connection_state(self) -> ConnectionState:
        """The status and the socket, together."""
        return ConnectionState(self._core.status, self._link.socket)

    @property
    def reconnecting(self) -> bool:
        """True from an unexpected close until a reconnect succeeds or gives up (``reconnect=`` on)."""
        return self._link.reconnecting

    @property
    def muted(self) -> bool | None:
        """The microphone's muted flag, or None when no microphone is attached."""
        return None if self._microphone is None else bool(self._microphone.muted)

    @property
    def current_model(self) -> str:
        """The model of the current connection, or of the next ``connect()``."""
        return self._core.model

    @current_model.setter
    def current_model(self, model: str) -> None:
        self._core.change_model(model)

    @property
    def dialect(self) -> str:
        """``ga`` or ``beta``."""
        return self._dialect.name

    @property
    def protocol(self) -> RealtimeProtocol:
        """The protocol core (read its state; drive it only through this transport)."""
        return self._core

    # Connecting ----------------------------------------------------------------------------------
    async def connect(
        self,
        api_key: ApiKey | None = None,
        model: str | None = None,
        url: str | None = None,
        call_id: str | None = None,
        initial_session_config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = OPEN_TIMEOUT_S,
    ) -> None:
        """Open the connection and send the session config (``session.update``); returns once the
        socket is open.

        Raises ConfigurationError, before any socket, for a URL that may not carry the key (see the
        constructor), a bad key, or a session config that cannot be sent. Raises
        ConnectionFailedError if the socket fails, closes before it opens, or is not open within
        ``timeout`` seconds (None: wait as long as the socket does), or if ``close()`` is called
        meanwhile. InvalidStateError unless disconnected. A failed ``connect`` changes nothing: the
        model, key and URL given here are kept only once the socket is open.
        """
        await self._link.connect(api_key, model, url, call_id, initial_session_config, timeout)

    def close(self) -> None:
        """Close the connection (sends a close frame, 1000), abandon the one being opened (its
        ``connect`` raises ConnectionFailedError) and stop any reconnect. Idempotent; never raises."""
        self._link.close()

    # Sending -------------------------------------------------------------------------------------
    # Each method runs the core's method of the same name in the send context (see _send_context):
    # a call that does not fit the state raises before anything is sent.
    send_event = sends(RealtimeProtocol.send_event)
    commit_audio = sends(RealtimeProtocol.commit_audio)
    clear_audio = sends(RealtimeProtocol.clear_audio)
    send_message = sends(RealtimeProtocol.send_message)
    add_image = sends(RealtimeProtocol.add_image)
    update_session_config = sends(RealtimeProtocol.update_session_config)
    send_function_call_output = sends(RealtimeProtocol.send_function_call_output)
    send_mcp_response = sends(RealtimeProtocol.send_mcp_response)
    request_response = sends(RealtimeProtocol.request_response)
    delete_item = sends(RealtimeProtocol.delete_item)
    retrieve_item = sends(RealtimeProtocol.retrieve_item)
    truncate_item = sends(RealtimeProtocol.truncate_item)
    reset_history = sends(RealtimeProtocol.reset_history)

    def send_audio(self, pcm: bytes | bytearray | memoryview, commit: bool = False) -> None:
        """Send ``input_audio_buffer.append`` (PCM16 24 kHz mono, or the session's input format), then
        ``input_audio_buffer.commit`` if ``commit``. Ignored unless connected.

        On a slow uplink (more than ``max_buffered_audio_bytes`` waiting in the socket's send buffer)
        the audio is dropped, not queued, with an ``audio_dropped`` event (:class:`AudioDropped`); a
        ``commit`` is still sent. Never raises for a full buffer."""
        buffered = self._link.backlog() if self._core.status == "connected" else 0
        if buffered > self._max_buffered_audio_bytes:
            reason = (f"{buffered} bytes wait in the socket's send buffer, more than max_buffered_audio_bytes "
                      f"({self._max_buffered_audio_bytes}): the uplink is slower than the audio")
            self._emitter.emit("audio_dropped", AudioDropped(memoryview(pcm).nbytes, buffered, reason))
            if not commit:
                return
            pcm = b""  # the commit still goes
        with self._sending() as core:
            core.send_audio(pcm, commit)

    def cancel_response(self) -> None:
        """Send ``response.cancel`` if a response is running and no cancel was sent for it yet (through
        the ``_cancel_response`` hook). Does nothing while disconnected; never raises."""
        self._cancel_response()

    def interrupt(self, cancel_ongoing_response: bool = True) -> None:
        """Stop the model: send ``response.cancel`` (if asked and a response runs) and a
        ``conversation.item.truncate`` where the user stopped hearing its audio. Does nothing unless
        connected; never raises."""
        if self._core.status == "connected":
            self._interrupt(None, cancel_ongoing_response)

    # Audio devices -------------------------------------------------------------------------------
    def attach_audio_output(self, player: AudioOutput | None) -> None:
        """Play received audio on ``player`` (None: detach); it also tells interruptions how much was
        heard. Sends nothing; ConfigurationError for an object that is not an AudioOutput."""
        if player is not None and not isinstance(player, AudioOutput):
            raise ConfigurationError("the audio output must have play(), heard_ms() and stop() (see AudioOutput)")
        self._player = player
        self._finish = player.finish if isinstance(player, FinishesItems) else None
        self._tell_received = player.audio_received if isinstance(player, TakesReceivedCount) else None
        self._core.attach_playback(None if player is None else PlaybackPort.of(player))

    def attach_microphone(self, mic: AudioInput | None) -> None:
        """Let ``mute()``/``muted`` control ``mic`` (None: detach). Sends nothing; ConfigurationError
        for an object that is not an AudioInput."""
        if mic is not None and not isinstance(mic, AudioInput):
            raise ConfigurationError("the microphone must have a 'muted' property (see AudioInput)")
        self._microphone = mic

    def mute(self, muted: bool) -> None:
        """Mute or unmute the attached microphone (sends nothing). UnsupportedError without one."""
        if self._microphone is None:
            raise UnsupportedError(
                "mute() needs a microphone: attach_microphone(mic) first, or stop calling send_audio() yourself"
            )
        self._microphone.muted = bool(muted)

    # Extension points ----------------------------------------------------------------------------
    def _now_ms(self) -> float:
        return time.monotonic() * 1000.0

    def _on_audio(self, event: TransportAudio) -> None:
        """Feed the attached player, then emit ``audio``. Override to handle audio yourself."""
        if self._player is not None:
            try:
                self._player.play(
                    event.data,
                    item_id=event.item_id,
                    content_index=event.content_index,
                    audio_format=event.audio_format,  # the response's own format, else the session's
                )
                if self._tell_received is not None:  # the core's count: the player never counts again
                    self._tell_received(event.item_id, event.content_index, event.received_ms)
            except Exception as exc:
                self._report(exc)
        self._emitter.emit("audio", event)

    def _interrupt(self, elapsed_ms: HeardMs, cancel_ongoing_response: bool = True) -> None:
        """Cancel (if asked) and truncate at ``elapsed_ms`` heard (a number, a per-item function, or
        None for what the attached player reports, else the wall clock since the first audio). The
        core decides when the player is stopped: it says so, and the send context stops it."""
        with self._sending() as core:
            if cancel_ongoing_response:
                self._cancel_response()
            core.interrupt(self._now_ms(), elapsed_ms, cancel=False)

    def _cancel_response(self) -> None:
        """Send ``response.cancel`` if a response is running and not already being cancelled."""
        with self._sending() as core:
            core.cancel_response()

    # Plumbing ------------------------------------------------------------------------------------
    def _socket_message(self, listener: SocketListener, data: str | bytes | bytearray | memoryview) -> None:
        if self._link.listener is not listener:
            return
        core = self._core
        core.receive(data, now_ms=self._now_ms)  # the clock: read only by a frame that needs the time
        if not core.has_output:  # half of a reply's events make nothing (text deltas nobody listens to)
            return
        self._flush()
        barge_in = core.barge_in_expected()
        if barge_in is not None:  # after the speech_started listeners ran, as in the seed
            self._barge_in(barge_in)

    def _barge_in(self, hint: BargeIn) -> None:
        """The user spoke over the model: interrupt where the player stopped."""
        self._interrupt(None, hint.cancel_response)

    def _act_and_flush(self) -> None:
        """The end of a send context: act on the core's playback hint, then flush."""
        if self._core.playback_stop_expected():
            self._stop_player()
            self._core.playback_stopped(self._now_ms())
        self._flush()

    def _flush(self) -> None:
        """Send what the core produced, then deliver what it emitted (in that order)."""
        core = self._core
        frames = core.data_to_send()
        if frames:
            socket = self._link.socket
            if socket is None:
                self._report(ConnectionClosedError(f"{len(frames)} event(s) not sent: the transport is disconnected"))
            else:
                try:
                    for text in frames:
                        socket.send(text)
                except Exception as exc:
                    self._report(exc if isinstance(exc, RealtimeError) else ConnectionClosedError(f"send failed: {exc}"))
        for name, payload in core.events_received():
            if name == "audio":
                self._on_audio(payload)
                continue
            if name == "audio_done" and self._finish is not None:
                # The player can then say when the item finished playing: such an item is never cut.
                self._call_player(self._finish, payload.item_id, payload.content_index)
            self._emitter.emit(name, payload)

    def _stop_player(self) -> None:
        if self._player is not None:
            self._call_player(self._player.stop)

    def _call_player(self, method: Callable[..., Any], *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:
            self._report(exc)

    def _report(self, error: BaseException) -> None:
        self._emitter.emit("error", ErrorEvent(error))

    def _on_listener_error(self, name: str, error: BaseException) -> None:
        if name != "error":  # an error listener that raises must not loop
            self._emitter.emit("error", ErrorEvent(error))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._dialect.name} model={self._core.model!r} status={self._core.status}>"

    async def __aenter__(self) -> Self:
        """``async with``: sends nothing, never raises; the transport is closed at the end."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Calls :meth:`close` (sends the close frame); never raises."""
        self.close()



class OpenAIRealtimeWebSocket(_TransportShell):
    """A Realtime API connection over a WebSocket (see the module docstring)."""

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        api_key: ApiKey | None = None,
        use_insecure_api_key: bool = False,
        dialect: str = "ga",
        create_websocket: SocketFactory | None = None,
        *,
        allow_insecure_transport: bool = False,
        max_message_bytes: int | None = MAX_MESSAGE_BYTES,
        max_buffered_audio_bytes: int = MAX_BUFFERED_AUDIO_BYTES,
        reconnect: ReconnectPolicy | bool | None = False,
    ) -> None:
        """Nothing is opened here; ``connect()`` does that. Raises ConfigurationError for a bad option.

        ``url``: the Realtime endpoint (default: the API's, with the model); it must be ``wss://``, or
        ``ws://`` to this machine, unless ``allow_insecure_transport=True``. ``api_key``: a key or a
        function (sync or async) called at each ``connect()`` (and each reconnect).
        ``max_message_bytes``: the largest incoming message accepted (a bigger one closes the socket
        with 1009 and an ``error`` event; None: no bound). ``max_buffered_audio_bytes``: above this
        many bytes waiting in the socket's send buffer, ``send_audio`` drops audio (``audio_dropped``).
        ``reconnect``: True or a :class:`ReconnectPolicy` to reconnect after an unexpected close.
        """
        super().__init__(
            url=url,
            model=model,
            api_key=api_key,
            use_insecure_api_key=use_insecure_api_key,
            dialect=dialect,
            create_websocket=create_websocket,
            allow_insecure_transport=bool(allow_insecure_transport),
            max_message_bytes=max_message_bytes,
            max_buffered_audio_bytes=max_buffered_audio_bytes,
            reconnect=reconnect,
            endpoint=WEBSOCKET_ENDPOINT,
        )
