"""``OpenAIRealtimeWebSocket``: the public transport, wiring the protocol core to a socket backend.

The core (``_core.RealtimeProtocol``) decides everything about the protocol; this class owns the
socket, the clock, the connection attempt, the audio devices and the listeners. Backends: your
``create_websocket``, else the page's WebSocket in Pyodide, else the ``websockets`` library.

Extension points kept from the seed: override ``_on_audio(event)`` to handle audio yourself,
``_interrupt(elapsed_ms, cancel_ongoing_response)`` to compute interruptions differently (e.g. from a
phone line's playback marks), ``_cancel_response()`` to change how a response is cancelled, and
``_now_ms()`` for the clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ._core import HeardMs, RealtimeProtocol
from ._emitter import EventEmitter, EventStream, Handler
from ._interfaces import (
    MAX_MESSAGE_BYTES,
    NORMAL_CLOSURE,
    OPEN_TIMEOUT_S,
    AudioInput,
    AudioOutput,
    RealtimeSocket,
    SocketFactory,
    SocketRequest,
    safe_url,
)
from ._platform import in_browser
from .config import SessionConfig
from .dialects import (
    EPHEMERAL_KEY_PREFIX,
    DialectSpec,
    auth_headers,
    check_url,
    get_dialect,
    realtime_url,
    subprotocols,
    validate_api_key,
)
from .errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionFailedError,
    InvalidStateError,
    RealtimeError,
    UnsupportedError,
)
from .events import ConnectionStatus, ErrorEvent, FunctionCall, ItemUpdate, SpeechStarted, TransportAudio

__all__ = ["OpenAIRealtimeWebSocket", "ConnectionState", "ApiKey"]

logger = logging.getLogger("pyodide_realtime")

#: An API key, or a function (sync or async) that returns one when ``connect`` runs.
ApiKey = str | Callable[[], str | Awaitable[str]]


@dataclass(frozen=True)
class ConnectionState:
    """Status and socket together: ``disconnected`` exactly when there is no socket."""

    status: ConnectionStatus = "disconnected"
    websocket: RealtimeSocket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.status == "disconnected") != (self.websocket is None):
            raise ValueError(f"a {self.status} connection state must {'not ' if self.status == 'disconnected' else ''}have a socket")


@dataclass
class _Attempt:
    """One ``connect`` call in progress, and what to restore if it fails."""

    previous_model: str
    previous_key: ApiKey | None = field(repr=False)
    previous_url: str | None
    previous_default_url: str | None
    session_config: SessionConfig
    opened: asyncio.Future[None]


class _SocketHandler:
    """Hears one socket. The transport ignores it once it is no longer the current handler."""

    def __init__(self, transport: OpenAIRealtimeWebSocket) -> None:
        self._transport = transport
        # on_message: every server event comes through here, so it is a C-level partial rather than
        # a method (that saves a Python frame per event).
        self.on_message = partial(transport._socket_message, self)

    def on_open(self, protocol: str) -> None:
        self._transport._socket_open(self)

    def on_binary(self, size: int) -> None:
        if self._transport._handler is self:
            logger.debug("ignored a binary frame of %d bytes (the Realtime API sends text)", size)

    def on_error(self, error: BaseException) -> None:
        self._transport._socket_error(self, error)

    def on_close(self, code: int, reason: str) -> None:
        self._transport._socket_close(self, code, reason)


class OpenAIRealtimeWebSocket:
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
    ) -> None:
        """Nothing is opened here; ``connect()`` does that.

        ``url``: the Realtime endpoint (default: the API's, with the model); it must be ``wss://``, or
        ``ws://`` to this machine, unless ``allow_insecure_transport=True``. ``api_key``: a key or a
        function (sync or async) called at each ``connect()``. ``max_message_bytes``: the largest
        incoming message accepted (bigger ones close the socket with 1009 and an ``error`` event).
        Raises ConfigurationError for a bad dialect, URL or bound.
        """
        self._dialect: DialectSpec = get_dialect(dialect)
        self._allow_insecure_transport = bool(allow_insecure_transport)
        if url is not None:
            check_url(url, allow_insecure_transport=self._allow_insecure_transport)
        if max_message_bytes is not None and (
            isinstance(max_message_bytes, bool) or not isinstance(max_message_bytes, int) or max_message_bytes <= 0
        ):
            raise ConfigurationError(
                f"max_message_bytes must be a positive number of bytes or None (no bound), not {max_message_bytes!r}"
            )
        self._max_message_bytes = max_message_bytes
        self._core = RealtimeProtocol(self._dialect, model=model)
        self._core.auto_interrupt = not self._interrupt_hooks_overridden()
        self._url = url
        self._default_url = url
        self._api_key = api_key
        self._use_insecure_api_key = use_insecure_api_key
        self._create_websocket = create_websocket
        self._state = ConnectionState()
        self._handler: _SocketHandler | None = None
        self._attempt: _Attempt | None = None
        self._emitter = EventEmitter(self._on_listener_error)
        self._core.wanted = self._emitter.wanted
        self._player: AudioOutput | None = None
        self._heard: HeardMs = None  # _heard_source(), kept: it is passed with every server event
        self._microphone: AudioInput | None = None

    # State ---------------------------------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        return self._state.status

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    @property
    def muted(self) -> bool | None:
        """The microphone's muted flag, or None when no microphone is attached."""
        return None if self._microphone is None else bool(self._microphone.muted)

    @property
    def current_model(self) -> str:
        return self._core.model

    @current_model.setter
    def current_model(self, model: str) -> None:
        if self._state.status != "disconnected":
            raise InvalidStateError(
                f"the model cannot change while the transport is {self._state.status}: close() first"
            )
        self._core.model = model

    @property
    def dialect(self) -> str:
        return self._dialect.name

    @property
    def protocol(self) -> RealtimeProtocol:
        """The protocol core (read its state; drive it only through this transport)."""
        return self._core

    # Listeners -----------------------------------------------------------------------------------
    def on(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` for every ``name`` event; returns an unsubscribe function."""
        return self._emitter.on(name, handler)

    def once(self, name: str, handler: Handler) -> Callable[[], None]:
        return self._emitter.once(name, handler)

    def off(self, name: str, handler: Handler | None = None) -> None:
        self._emitter.off(name, handler)

    def events(self, *names: str) -> EventStream:
        """Async iterator of every emitted event (or only ``names``) as ``TransportEvent(name, data)``.

        It ends when the transport disconnects (after yielding ``disconnected``).
        """
        return self._emitter.events(*names)

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
        """Open the connection and send the session config; returns once the socket is open.

        Raises ConfigurationError, before any socket, if the session config cannot be sent (a field
        the dialect lacks, a value JSON cannot carry). Raises ConnectionFailedError if the socket
        fails, closes before it opens, or is not open within ``timeout`` seconds (None: wait as long
        as the socket does), or if ``close()`` is called meanwhile; the transport is then
        ``disconnected`` and ready for another ``connect``.
        """
        if self._attempt is not None or self._state.status != "disconnected":
            status = "connecting" if self._attempt is not None else self._state.status
            raise InvalidStateError(
                f"connect() cannot run while the transport is {status}: close() first, or await the pending connect()"
            )
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
            raise ConfigurationError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        config = SessionConfig.coerce(initial_session_config)
        self._core.check_session_config(config, model=model)
        attempt = _Attempt(
            previous_model=self._core.model,
            previous_key=self._api_key,
            previous_url=self._url,
            previous_default_url=self._default_url,
            session_config=config,
            opened=asyncio.get_running_loop().create_future(),
        )
        self._attempt = attempt
        try:
            if model:
                self._core.model = model
            key = await self._resolve_key(api_key if api_key is not None else self._api_key, attempt)
            self._check_browser_key(key)
            if api_key is not None:
                self._api_key = api_key
            self._url = check_url(
                realtime_url(
                    self._dialect, model=self._core.model, url=url, call_id=call_id, default_url=self._default_url
                ),
                allow_insecure_transport=self._allow_insecure_transport,
            )
            if url:
                self._default_url = url
            request = SocketRequest(
                url=self._url,
                subprotocols=subprotocols(self._dialect, key),
                headers=auth_headers(self._dialect, key),
                max_message_bytes=self._max_message_bytes,
            )
            factory = self._socket_factory()
            handler = _SocketHandler(self)
            self._handler = handler
            socket = factory(request, handler)
            if attempt.opened.done() or self._handler is not handler:
                # close() (or a failure reported already) while the factory ran.
                socket.close()
                attempt.opened.result()
                raise ConnectionFailedError("the connection failed while it was being opened")
            self._state = ConnectionState("connecting", socket)
            self._core.connection_opening()
            self._flush()
            await self._opened(attempt, timeout)
            if self._handler is not handler or self._state.status != "connected":
                raise ConnectionFailedError("the connection closed while connect() was finishing")
        except BaseException:
            # Whatever failed (or was cancelled), leave the transport as it was, ready for a retry.
            self._restore(attempt)
            self._teardown()
            raise
        finally:
            self._attempt = None

    async def _opened(self, attempt: _Attempt, timeout: float | None) -> None:
        if timeout is None:
            await attempt.opened
            return
        try:
            # shield: on timeout the attempt is failed below rather than cancelled.
            await asyncio.wait_for(asyncio.shield(attempt.opened), timeout)
        except TimeoutError:
            error = ConnectionFailedError(
                f"the WebSocket to {safe_url(self._url or '')} did not open within {timeout:g} s: check the "
                "network and the URL, or pass a longer connect(timeout=...)"
            )
            self._fail_attempt(error)
            raise error from None

    async def _resolve_key(self, api_key: ApiKey | None, attempt: _Attempt) -> str:
        key: object = api_key
        if callable(api_key):
            key = api_key()
            if inspect.isawaitable(key):
                # A close() meanwhile must not wait for a slow key server.
                fetch = asyncio.ensure_future(key)
                either: set[asyncio.Future[Any]] = {fetch, attempt.opened}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    # Also when connect() itself is cancelled: nobody else would stop the fetch.
                    if not fetch.done():
                        fetch.cancel()
                key = fetch.result() if fetch.done() and not fetch.cancelled() else None
        if attempt.opened.done():  # close() was called while the key was being fetched
            attempt.opened.result()
        return validate_api_key(key)

    def _check_browser_key(self, key: str) -> None:
        if in_browser() and not key.startswith(EPHEMERAL_KEY_PREFIX) and not self._use_insecure_api_key:
            raise ConfigurationError(
                "in a browser, connect with an ephemeral client key (it starts with 'ek_'; mint it on your "
                "server with POST /v1/realtime/client_secrets). A regular key would be visible to every "
                "visitor of the page; if you really mean that, pass use_insecure_api_key=True"
            )

    def _socket_factory(self) -> SocketFactory:
        if self._create_websocket is not None:
            return self._create_websocket
        if in_browser():
            from ._browser_socket import create_browser_socket

            return create_browser_socket
        try:
            from ._cpython_socket import create_cpython_socket
        except ImportError:  # pragma: no cover - depends on the environment
            raise UnsupportedError(
                "no WebSocket backend: install 'pyodide-realtime[cpython]' (websockets) or pass create_websocket="
            ) from None
        return create_cpython_socket

    def _restore(self, attempt: _Attempt) -> None:
        self._core.model = attempt.previous_model
        self._api_key = attempt.previous_key
        self._url = attempt.previous_url
        self._default_url = attempt.previous_default_url

    def close(self) -> None:
        """Close the connection (or abandon the one being opened: its ``connect`` raises). Idempotent."""
        self._fail_attempt(ConnectionFailedError("close() was called before the connection opened"))
        self._teardown()
        self._emitter.close_streams()

    def _teardown(self) -> None:
        """Go to ``disconnected``: forget the socket and its handler, then close it."""
        socket = self._state.websocket
        was_disconnected = self._state.status == "disconnected"
        self._handler = None
        self._state = ConnectionState()
        self._core.connection_closed()
        self._flush()
        if not was_disconnected:
            self._emitter.close_streams()
        if socket is not None:
            try:
                socket.close()
            except Exception as exc:
                self._report(exc)

    # Socket callbacks (only from the current handler) --------------------------------------------
    def _socket_open(self, handler: _SocketHandler) -> None:
        if self._handler is not handler or self._state.status != "connecting" or self._state.websocket is None:
            return
        attempt = self._attempt
        try:
            self._core.connection_opened(attempt.session_config if attempt else None)
        except Exception as exc:
            # The backend would only log it, and connect() would wait forever: fail the attempt.
            self._fail_attempt(exc)
            self._report(exc)
            self._teardown()
            return
        self._state = ConnectionState("connected", self._state.websocket)
        self._flush()
        if attempt is not None and not attempt.opened.done():
            attempt.opened.set_result(None)

    def _socket_message(self, handler: _SocketHandler, data: str | bytes | bytearray | memoryview) -> None:
        if self._handler is not handler:
            return
        event = self._core.receive(data, now_ms=self._now_ms(), heard_ms=self._heard)
        self._flush()
        if not self._core.auto_interrupt and isinstance(event, SpeechStarted) and self._handler is handler:
            self.interrupt(cancel_ongoing_response=not self._core.server_cancels_on_speech)

    def _socket_error(self, handler: _SocketHandler, error: BaseException) -> None:
        if self._handler is not handler:
            return
        failure = error if isinstance(error, RealtimeError) else ConnectionFailedError(f"WebSocket error: {error}")
        self._fail_attempt(failure)
        self._report(failure)
        self._teardown()

    def _socket_close(self, handler: _SocketHandler, code: int, reason: str) -> None:
        if self._handler is not handler:
            return
        detail = f"code {code}{', ' + reason if reason else ''}"
        if self._state.status == "connecting":
            self._fail_attempt(
                ConnectionFailedError(f"the WebSocket closed before it opened ({detail})", code=code, reason=reason)
            )
        elif code != NORMAL_CLOSURE:
            # Not asked for by close() (that handler would be gone): tell the error listeners why.
            self._report(
                ConnectionClosedError(
                    f"the connection closed unexpectedly ({detail}); connect() again to go on", code=code, reason=reason
                )
            )
        self._teardown()

    def _fail_attempt(self, error: BaseException) -> None:
        attempt = self._attempt
        if attempt is not None and not attempt.opened.done():
            attempt.opened.set_exception(error)
            # Marked as retrieved: connect() may have been cancelled and nobody else will ask.
            attempt.opened.exception()

    # Sending -------------------------------------------------------------------------------------
    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event (a dict with a ``type``) as JSON."""
        self._core.send_event(event)
        self._flush()

    def send_audio(self, pcm: bytes | bytearray | memoryview, commit: bool = False) -> None:
        """Append input audio (PCM16 24 kHz mono, or the session's input format); ignored unless connected."""
        self._core.send_audio(pcm, commit=commit)
        self._flush()

    def send_message(
        self,
        message: str | Mapping[str, Any],
        other_event_data: Mapping[str, Any] | None = None,
        trigger_response: bool = True,
    ) -> None:
        self._core.send_message(message, other_event_data, trigger_response=trigger_response)
        self._flush()

    def add_image(self, image_url: str, trigger_response: bool = True) -> None:
        self._core.add_image(image_url, trigger_response=trigger_response)
        self._flush()

    def update_session_config(self, config: SessionConfig | Mapping[str, Any]) -> None:
        self._core.update_session_config(config)
        self._flush()

    def send_function_call_output(
        self, call: FunctionCall | Mapping[str, Any], output: Any, start_response: bool = True
    ) -> None:
        self._core.send_function_call_output(call, output, start_response=start_response)
        self._flush()

    def request_response(self, response: Mapping[str, Any] | None = None) -> None:
        """Ask the model to respond (held until a running response finishes)."""
        self._core.request_response(response)
        self._flush()

    def reset_history(
        self, old_items: Iterable[ItemUpdate | Mapping[str, Any]], new_items: Iterable[ItemUpdate | Mapping[str, Any]]
    ) -> None:
        self._core.reset_history(old_items, new_items)
        self._flush()

    def interrupt(self, cancel_ongoing_response: bool = True) -> None:
        """Stop the model: cancel its response and cut its audio where the user stopped hearing it."""
        if self._state.status != "connected":
            return
        self._interrupt(self._heard_source(), cancel_ongoing_response)

    # Audio devices -------------------------------------------------------------------------------
    def attach_audio_output(self, player: AudioOutput | None) -> None:
        """Play received audio on ``player``; it also tells interruptions how much was heard."""
        if player is not None and not isinstance(player, AudioOutput):
            raise ConfigurationError("the audio output must have play(), heard_ms() and stop() (see AudioOutput)")
        self._player = player
        self._heard = self._heard_source()

    def attach_microphone(self, mic: AudioInput | None) -> None:
        """Let ``mute()``/``muted`` control ``mic``."""
        if mic is not None and not isinstance(mic, AudioInput):
            raise ConfigurationError("the microphone must have a 'muted' property (see AudioInput)")
        self._microphone = mic

    def mute(self, muted: bool) -> None:
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
                    audio_format=self._core.output_audio_format,
                )
            except Exception as exc:
                self._report(exc)
        self._emitter.emit("audio", event)

    def _interrupt(self, elapsed_ms: HeardMs, cancel_ongoing_response: bool = True) -> None:
        """Cancel (if asked) and truncate at ``elapsed_ms`` heard (a number, a per-item function, or
        None for the wall clock since the first audio)."""
        if cancel_ongoing_response:
            self._cancel_response()
        self._core.interrupt(self._now_ms(), elapsed_ms, cancel=False)
        self._flush()

    def _cancel_response(self) -> None:
        """Send ``response.cancel`` if a response is running and not already being cancelled."""
        self._core.cancel_response()
        self._flush()

    # Plumbing ------------------------------------------------------------------------------------
    def _interrupt_hooks_overridden(self) -> bool:
        cls = type(self)
        return (
            cls._interrupt is not OpenAIRealtimeWebSocket._interrupt
            or cls._cancel_response is not OpenAIRealtimeWebSocket._cancel_response
        )

    def _heard_source(self) -> HeardMs:
        return self._player.heard_ms if self._player is not None else None

    def _flush(self) -> None:
        """Send what the core produced, then deliver what it emitted (in that order)."""
        frames = self._core.data_to_send()
        socket = self._state.websocket
        if frames:
            if socket is None:
                self._report(ConnectionClosedError(f"{len(frames)} event(s) not sent: the transport is disconnected"))
            else:
                try:
                    for text in frames:
                        socket.send(text)
                except Exception as exc:
                    self._report(exc if isinstance(exc, RealtimeError) else ConnectionClosedError(f"send failed: {exc}"))
        for name, payload in self._core.events_received():
            if name == "audio":
                self._on_audio(payload)
                continue
            if name == "audio_interrupted" and self._player is not None:
                try:
                    self._player.stop()
                except Exception as exc:
                    self._report(exc)
            self._emitter.emit(name, payload)

    def _report(self, error: BaseException) -> None:
        self._emitter.emit("error", ErrorEvent(error))

    def _on_listener_error(self, name: str, error: BaseException) -> None:
        if name != "error":  # an error listener that raises must not loop
            self._emitter.emit("error", ErrorEvent(error))

    def __repr__(self) -> str:
        return f"<OpenAIRealtimeWebSocket {self._dialect.name} model={self._core.model!r} status={self._state.status}>"

    async def __aenter__(self) -> OpenAIRealtimeWebSocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
