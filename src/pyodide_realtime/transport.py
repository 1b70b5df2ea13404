"""``OpenAIRealtimeWebSocket``: the public transport, wiring the protocol core to a socket backend.

The core (``_core.RealtimeProtocol``) decides everything about the protocol; this class owns the
socket, the clock, the connection attempt, the audio devices and the listeners. Backends: your
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

import asyncio
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from ._core import HeardMs, RealtimeProtocol
from ._emitter import EventEmitter, EventStream, Handler
from ._history_edits import HistoryInput
from ._interfaces import (
    ABNORMAL_CLOSURE,
    INTERNAL_ERROR,
    KEEPALIVE_TIMEOUT_REASON,
    MAX_BUFFERED_AUDIO_BYTES,
    MAX_MESSAGE_BYTES,
    NORMAL_CLOSURE,
    OPEN_TIMEOUT_S,
    SERVICE_RESTART,
    AudioInput,
    AudioOutput,
    BufferedSocket,
    RealtimeSocket,
    SocketFactory,
    SocketRequest,
    describe_close,
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
    UserError,
)
from .events import AudioDone, ConnectionStatus, ErrorEvent, FunctionCall, SpeechStarted, TransportAudio, build_parser

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

logger = logging.getLogger("pyodide_realtime")

#: An API key, or a function (sync or async) that returns one when ``connect`` runs.
ApiKey = str | Callable[[], str | Awaitable[str]]

#: Close codes after which an opt-in reconnect is tried: the connection dropped (1006), the server
#: failed or stopped answering pings (1011), or it restarts (1012). Any other code was meant.
RECONNECT_CLOSE_CODES = frozenset({ABNORMAL_CLOSURE, INTERNAL_ERROR, SERVICE_RESTART})
#: HTTP statuses of a refused key: a reconnect stops there (a new attempt would be refused too).
AUTH_REFUSED_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class ConnectionState:
    """Status and socket together: ``disconnected`` exactly when there is no socket."""

    status: ConnectionStatus = "disconnected"
    websocket: RealtimeSocket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.status == "disconnected") != (self.websocket is None):
            raise ValueError(f"a {self.status} connection state must {'not ' if self.status == 'disconnected' else ''}have a socket")


@dataclass(frozen=True)
class ReconnectPolicy:
    """Opt-in reconnect after an unexpected close (:data:`RECONNECT_CLOSE_CODES`, keepalive timeout).

    Attempt ``n`` waits ``min(max_delay_s, initial_delay_s * multiplier ** (n - 1))``, shortened at
    random by up to ``jitter`` of it (so that many clients dropped together do not return together).
    """

    max_attempts: int = 5
    initial_delay_s: float = 0.5
    max_delay_s: float = 15.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an int >= 1, not {self.max_attempts!r}")
        for name in ("initial_delay_s", "max_delay_s", "multiplier"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.multiplier < 1:
            raise ConfigurationError(f"multiplier must be >= 1, not {self.multiplier!r}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be a fraction between 0 and 1, not {self.jitter!r}")

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** min(attempt - 1, 64))
        return base * (1.0 - self.jitter * rand())


class AudioDropped(NamedTuple):
    """``audio_dropped``: microphone audio given to ``send_audio`` was not sent (a slow uplink)."""

    bytes: int
    buffered_amount: int
    reason: str


class Reconnecting(NamedTuple):
    """``reconnecting``: attempt ``attempt`` starts after ``delay_s`` seconds; ``error`` is why."""

    attempt: int
    delay_s: float
    error: BaseException | None


class Reconnected(NamedTuple):
    """``reconnected``: open again after ``attempts`` attempts, the session config re-sent."""

    attempts: int


class ReconnectFailed(NamedTuple):
    """``reconnect_failed``: the reconnect gave up (attempts spent, or the key refused); ``error`` says why.
    The transport stays disconnected: this is the end of the connection, as ``disconnected`` is without
    reconnect."""

    error: BaseException


@dataclass
class _Attempt:
    """One ``connect`` in progress: the values it will commit once its socket is open."""

    model: str
    url: str
    api_key: ApiKey | None = field(repr=False)
    default_url: str | None
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
        self._dialect: DialectSpec = get_dialect(dialect)
        self._allow_insecure_transport = bool(allow_insecure_transport)
        if url is not None:
            check_url(url, allow_insecure_transport=self._allow_insecure_transport)
        self._max_message_bytes = _positive_int_or_none("max_message_bytes", max_message_bytes, allow_none=True)
        self._max_buffered_audio_bytes = _positive_int_or_none(
            "max_buffered_audio_bytes", max_buffered_audio_bytes, allow_none=False
        )
        if reconnect is True:
            reconnect = ReconnectPolicy()
        if reconnect is not False and reconnect is not None and not isinstance(reconnect, ReconnectPolicy):
            raise ConfigurationError(f"reconnect must be True, False or a ReconnectPolicy, not {reconnect!r}")
        self._reconnect_policy: ReconnectPolicy | None = reconnect or None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._core = RealtimeProtocol(self._dialect, model=model)
        # Speech interrupts through interrupt() (after the speech_started listeners, as in the seed):
        # there the player can be stopped before the truncation is measured, and _interrupt overridden.
        self._core.auto_interrupt = False
        self._url = url
        self._default_url = url
        self._api_key = api_key
        self._use_insecure_api_key = use_insecure_api_key
        self._create_websocket = create_websocket
        # The status lives in the core; this is only the socket (None exactly when disconnected).
        self._socket: RealtimeSocket | None = None
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
        """``disconnected``, ``connecting`` or ``connected`` (the core's status: kept in one place)."""
        return self._core.status

    @property
    def connection_state(self) -> ConnectionState:
        """The status and the socket, together."""
        return ConnectionState(self._core.status, self._socket)

    @property
    def reconnecting(self) -> bool:
        """True from an unexpected close until a reconnect succeeds or gives up (``reconnect=`` on)."""
        return self._reconnect_task is not None

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
        if self._core.status != "disconnected":
            raise InvalidStateError(
                f"the model cannot change while the transport is {self._core.status}: close() first"
            )
        self._core.model = model

    @property
    def dialect(self) -> str:
        """``ga`` or ``beta``."""
        return self._dialect.name

    @property
    def protocol(self) -> RealtimeProtocol:
        """The protocol core (read its state; drive it only through this transport)."""
        return self._core

    # Listeners -----------------------------------------------------------------------------------
    def on(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` for every ``name`` event; returns an unsubscribe function.
        Sends nothing; ConfigurationError if ``handler`` is not callable."""
        return self._emitter.on(name, handler)

    def once(self, name: str, handler: Handler) -> Callable[[], None]:
        """Like :meth:`on`, for the next ``name`` event only. Sends nothing; ConfigurationError if
        ``handler`` is not callable."""
        return self._emitter.once(name, handler)

    def off(self, name: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every listener) from ``name``. Sends nothing; never raises."""
        self._emitter.off(name, handler)

    def events(self, *names: str) -> EventStream:
        """Async iterator of every emitted event (or only ``names``) as ``TransportEvent(name, data)``.

        It ends when the transport disconnects (after yielding ``disconnected``), unless a reconnect
        follows: then it goes on with the new connection's events. Sends nothing; never raises.
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
        """Open the connection and send the session config (``session.update``); returns once the
        socket is open.

        Raises ConfigurationError, before any socket, for a URL that may not carry the key (see the
        constructor), a bad key, or a session config that cannot be sent. Raises
        ConnectionFailedError if the socket fails, closes before it opens, or is not open within
        ``timeout`` seconds (None: wait as long as the socket does), or if ``close()`` is called
        meanwhile. InvalidStateError unless disconnected. A failed ``connect`` changes nothing: the
        model, key and URL given here are kept only once the socket is open.
        """
        if self._reconnect_task is not None:
            raise InvalidStateError("connect() cannot run while the transport is reconnecting: close() first")
        await self._connect(api_key, model, url, call_id, initial_session_config, timeout)

    async def _connect(
        self,
        api_key: ApiKey | None,
        model: str | None,
        url: str | None,
        call_id: str | None,
        initial_session_config: SessionConfig | Mapping[str, Any] | None,
        timeout: float | None,
        *,
        keep_default_url: bool = False,
    ) -> None:
        if self._attempt is not None or self._core.status != "disconnected":
            status = "connecting" if self._attempt is not None else self._core.status
            raise InvalidStateError(
                f"connect() cannot run while the transport is {status}: close() first, or await the pending connect()"
            )
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
            raise ConfigurationError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        # Every new value is a local until the socket opens (then _socket_open commits them).
        config = SessionConfig.coerce(initial_session_config)
        new_model = model or self._core.model
        self._core.check_session_config(config, model=new_model)
        new_url = check_url(
            realtime_url(self._dialect, model=new_model, url=url, call_id=call_id, default_url=self._default_url),
            allow_insecure_transport=self._allow_insecure_transport,
        )
        attempt = _Attempt(
            model=new_model,
            url=new_url,
            api_key=api_key if api_key is not None else self._api_key,
            default_url=self._default_url if keep_default_url or not url else url,
            session_config=config,
            opened=asyncio.get_running_loop().create_future(),
        )
        self._attempt = attempt
        try:
            key = await self._resolve_key(attempt.api_key, attempt)
            self._check_browser_key(key)
            request = SocketRequest(
                url=new_url,
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
            self._socket = socket
            self._core.connection_opening()
            self._flush()
            build_parser()  # while the browser does the handshake, not at the first frame
            await self._opened(attempt, timeout)
            if self._handler is not handler or self.status != "connected":  # the await may have changed both
                raise ConnectionFailedError("the connection closed while connect() was finishing")
        except BaseException:
            # Whatever failed (or was cancelled): nothing was committed; drop the socket, if any.
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
                f"the WebSocket to {safe_url(attempt.url)} did not open within {timeout:g} s: check the "
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

    def close(self) -> None:
        """Close the connection (sends a close frame, 1000), abandon the one being opened (its
        ``connect`` raises ConnectionFailedError) and stop any reconnect. Idempotent; never raises."""
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
        self._fail_attempt(ConnectionFailedError("close() was called before the connection opened"))
        self._teardown()
        self._emitter.close_streams()

    def _teardown(self) -> None:
        """Go to ``disconnected``: forget the socket and its handler, then close it."""
        socket = self._socket
        was_disconnected = self._core.status == "disconnected"
        self._handler = None
        self._socket = None
        self._core.connection_closed()
        self._flush()
        if not was_disconnected and self._reconnect_task is None:
            self._emitter.close_streams()
        if socket is not None:
            try:
                socket.close()
            except Exception as exc:
                self._report(exc)

    # Socket callbacks (only from the current handler) --------------------------------------------
    def _socket_open(self, handler: _SocketHandler) -> None:
        attempt = self._attempt
        if self._handler is not handler or self._core.status != "connecting" or attempt is None:
            return
        previous_model = self._core.model
        try:
            self._core.model = attempt.model  # connection_opened sends it with the session config
            self._core.connection_opened(attempt.session_config)
        except Exception as exc:
            # The backend would only log it, and connect() would wait forever: fail the attempt.
            self._core.model = previous_model
            self._fail_attempt(exc)
            self._report(exc)
            self._teardown()
            return
        # Open: the attempt's values become the transport's.
        self._url = attempt.url
        self._default_url = attempt.default_url
        self._api_key = attempt.api_key
        self._flush()
        if not attempt.opened.done():
            attempt.opened.set_result(None)

    def _socket_message(self, handler: _SocketHandler, data: str | bytes | bytearray | memoryview) -> None:
        if self._handler is not handler:
            return
        event = self._core.receive(data, now_ms=self._now_ms(), heard_ms=self._heard)
        self._flush()
        if isinstance(event, SpeechStarted) and self._handler is handler:
            self.interrupt(cancel_ongoing_response=not self._core.server_cancels_on_speech)

    def _socket_error(self, handler: _SocketHandler, error: BaseException) -> None:
        if self._handler is not handler:
            return
        failure = error if isinstance(error, RealtimeError) else ConnectionFailedError(f"WebSocket error: {error}")
        self._fail_attempt(failure)
        self._report(failure)
        # Worth a reconnect: a peer that stopped answering pings, or a connection that dropped under a
        # send. Not a local send failure (1011 "send failed"), nor a message over the bound (1009).
        retry = isinstance(failure, ConnectionClosedError) and (
            failure.reason == KEEPALIVE_TIMEOUT_REASON or failure.code in (ABNORMAL_CLOSURE, SERVICE_RESTART)
        )
        self._lost(failure, retry)

    def _socket_close(self, handler: _SocketHandler, code: int, reason: str) -> None:
        if self._handler is not handler:
            return
        detail = describe_close(code, reason)
        error: ConnectionClosedError | None = None
        retry = False
        if self._core.status == "connecting":
            self._fail_attempt(
                ConnectionFailedError(f"the WebSocket closed before it opened ({detail})", code=code, reason=reason)
            )
        elif code != NORMAL_CLOSURE:
            # Not asked for by close() (that handler would be gone): tell the error listeners why.
            retry = code in RECONNECT_CLOSE_CODES
            then = "reconnecting" if retry and self._reconnect_policy else "connect() again to go on"
            error = ConnectionClosedError(f"the connection closed unexpectedly ({detail}); {then}", code=code, reason=reason)
        elif self._core.response_running:
            error = ConnectionClosedError(
                f"the server closed the connection ({detail}) in the middle of a response: the response was cut",
                code=code,
                reason=reason,
            )
        if error is not None:
            self._report(error)
        self._lost(error, retry)

    def _lost(self, error: BaseException | None, retry: bool) -> None:
        """The connection is gone: reconnect when that was asked for and fits, then tear down."""
        if (
            retry
            and self._reconnect_policy is not None
            and self._core.status == "connected"
            and self._reconnect_task is None
        ):
            config = self._core.session_config  # everything configured so far, re-sent on reconnect
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect(config, error))
        self._teardown()

    async def _reconnect(self, config: SessionConfig, cause: BaseException | None) -> None:
        policy = self._reconnect_policy
        assert policy is not None
        me = asyncio.current_task()
        try:
            for attempt in range(1, policy.max_attempts + 1):
                delay = policy.delay_s(attempt)
                self._emitter.emit("reconnecting", Reconnecting(attempt, delay, cause))
                await asyncio.sleep(delay)
                try:
                    await self._connect(None, None, self._url, None, config, OPEN_TIMEOUT_S, keep_default_url=True)
                except ConnectionFailedError as exc:
                    cause = exc
                    if exc.http_status in AUTH_REFUSED_STATUSES:
                        self._give_up(
                            ConnectionFailedError(
                                f"not reconnecting: the server refused the key (HTTP {exc.http_status})",
                                http_status=exc.http_status,
                            )
                        )
                        return
                    continue
                except UserError as exc:  # a key or config this transport refuses: another try would too
                    self._give_up(exc)
                    return
                except Exception as exc:  # the api_key function's own failure (its key server is down?)
                    cause = exc
                    self._report(exc)
                    continue
                self._emitter.emit("reconnected", Reconnected(attempt))
                return
            self._give_up(
                ConnectionFailedError(f"gave up reconnecting after {policy.max_attempts} attempt(s); last: {cause}")
            )
        finally:
            if self._reconnect_task is me:
                self._reconnect_task = None
                if self._core.status == "disconnected":
                    self._emitter.close_streams()

    def _give_up(self, error: BaseException) -> None:
        self._report(error)
        self._emitter.emit("reconnect_failed", ReconnectFailed(error))

    def _fail_attempt(self, error: BaseException) -> None:
        attempt = self._attempt
        if attempt is not None and not attempt.opened.done():
            attempt.opened.set_exception(error)
            # Marked as retrieved: connect() may have been cancelled and nobody else will ask.
            attempt.opened.exception()

    # Sending -------------------------------------------------------------------------------------
    # Each method hands its events to the core, then sends what the core produced. A call that does
    # not fit the state raises InvalidStateError before anything is sent (unless it says otherwise).
    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event (a dict with a ``type``) as JSON; ``response.create`` waits for a
        running response. ConfigurationError for a malformed event, InvalidStateError unless connected."""
        self._core.send_event(event)
        self._flush()

    def send_audio(self, pcm: bytes | bytearray | memoryview, commit: bool = False) -> None:
        """Send ``input_audio_buffer.append`` (PCM16 24 kHz mono, or the session's input format), then
        ``input_audio_buffer.commit`` if ``commit``. Ignored unless connected.

        On a slow uplink (more than ``max_buffered_audio_bytes`` waiting in the socket's send buffer)
        the audio is dropped, not queued, with an ``audio_dropped`` event (:class:`AudioDropped`); a
        ``commit`` is still sent. Never raises for a full buffer."""
        socket = self._socket
        if socket is not None and self._core.status == "connected":
            buffered = _buffered_amount(socket)
            if buffered > self._max_buffered_audio_bytes:
                dropped = memoryview(pcm).nbytes
                self._emitter.emit(
                    "audio_dropped",
                    AudioDropped(
                        dropped,
                        buffered,
                        f"{buffered} bytes wait in the socket's send buffer, more than max_buffered_audio_bytes "
                        f"({self._max_buffered_audio_bytes}): the uplink is slower than the audio",
                    ),
                )
                if commit:
                    self._core.send_audio(b"", commit=True)
                    self._flush()
                return
        self._core.send_audio(pcm, commit=commit)
        self._flush()

    def commit_audio(self) -> None:
        """Send ``input_audio_buffer.commit``: the audio sent so far becomes a user item (push to talk).
        InvalidStateError unless connected."""
        self._core.commit_audio()
        self._flush()

    def clear_audio(self) -> None:
        """Send ``input_audio_buffer.clear``: audio sent and not committed is dropped by the server.
        InvalidStateError unless connected."""
        self._core.clear_audio()
        self._flush()

    def send_message(
        self,
        message: str | Mapping[str, Any],
        other_event_data: Mapping[str, Any] | None = None,
        trigger_response: bool = True,
    ) -> None:
        """Send a user message (text, or a message item) as ``conversation.item.create``, then
        ``response.create`` if ``trigger_response``. ConfigurationError for a malformed message,
        InvalidStateError unless connected."""
        self._core.send_message(message, other_event_data, trigger_response=trigger_response)
        self._flush()

    def add_image(self, image_url: str, trigger_response: bool = True) -> None:
        """Send an image (a URL or data URL) as a user ``conversation.item.create``, then
        ``response.create`` if ``trigger_response``. ConfigurationError for a bad URL,
        InvalidStateError unless connected."""
        self._core.add_image(image_url, trigger_response=trigger_response)
        self._flush()

    def update_session_config(self, config: SessionConfig | Mapping[str, Any]) -> None:
        """Send ``session.update`` with ``config`` (merged into what was configured; re-sent on a
        reconnect). ConfigurationError for a config the dialect cannot carry, InvalidStateError unless
        connected."""
        self._core.update_session_config(config)
        self._flush()

    def send_function_call_output(
        self, call: FunctionCall | Mapping[str, Any], output: Any, start_response: bool = True
    ) -> None:
        """Send a ``function_call_output`` item for ``call``, then ``response.create`` if
        ``start_response``. ConfigurationError for a call without its id, InvalidStateError unless
        connected."""
        self._core.send_function_call_output(call, output, start_response=start_response)
        self._flush()

    def send_mcp_response(self, approval_request_id: str, approve: bool, reason: str | None = None) -> None:
        """Answer an ``mcp_approval_request``: sends ``conversation.item.create`` with an
        ``mcp_approval_response`` item (see ``RealtimeProtocol.send_mcp_response``). ConfigurationError
        for a bad id, approve or reason; InvalidStateError unless connected."""
        self._core.send_mcp_response(approval_request_id, approve, reason)
        self._flush()

    def request_response(self, response: Mapping[str, Any] | None = None) -> None:
        """Send ``response.create`` (held until a running response finishes). ConfigurationError for a
        malformed ``response``, InvalidStateError unless connected."""
        self._core.request_response(response)
        self._flush()

    def cancel_response(self) -> None:
        """Send ``response.cancel`` if a response is running and no cancel was sent for it yet (through
        the ``_cancel_response`` hook). Does nothing while disconnected; never raises."""
        self._cancel_response()

    def delete_item(self, item_id: str) -> None:
        """Send ``conversation.item.delete``. ConfigurationError for a bad id, InvalidStateError unless
        connected."""
        self._core.delete_item(item_id)
        self._flush()

    def retrieve_item(self, item_id: str) -> None:
        """Send ``conversation.item.retrieve``; the item comes back as ``item_update``.
        ConfigurationError for a bad id, InvalidStateError unless connected."""
        self._core.retrieve_item(item_id)
        self._flush()

    def truncate_item(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Send ``conversation.item.truncate``: the item's audio is cut at ``audio_end_ms``.
        ConfigurationError for a bad id, index or position; InvalidStateError unless connected."""
        self._core.truncate_item(item_id, content_index, audio_end_ms)
        self._flush()

    def reset_history(self, old_items: Iterable[HistoryInput], new_items: Iterable[HistoryInput]) -> None:
        """Make the server's conversation ``new_items``: sends the ``conversation.item.delete`` and
        ``conversation.item.create`` events that turn ``old_items`` into it. Items: a session's own
        (``session.history``: after a reconnect, ``reset_history((), session.history)``), ``ItemUpdate``
        events or dicts. ConfigurationError for an item that cannot be created, InvalidStateError unless connected."""
        self._core.reset_history(old_items, new_items)
        self._flush()

    def interrupt(self, cancel_ongoing_response: bool = True) -> None:
        """Stop the model: send ``response.cancel`` (if asked and a response runs) and a
        ``conversation.item.truncate`` where the user stopped hearing its audio. Does nothing unless
        connected; never raises."""
        if self._core.status != "connected":
            return
        self._interrupt(self._heard_source(), cancel_ongoing_response)

    # Audio devices -------------------------------------------------------------------------------
    def attach_audio_output(self, player: AudioOutput | None) -> None:
        """Play received audio on ``player`` (None: detach); it also tells interruptions how much was
        heard. Sends nothing; ConfigurationError for an object that is not an AudioOutput."""
        if player is not None and not isinstance(player, AudioOutput):
            raise ConfigurationError("the audio output must have play(), heard_ms() and stop() (see AudioOutput)")
        self._player = player
        self._heard = self._heard_source()

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
            except Exception as exc:
                self._report(exc)
        self._emitter.emit("audio", event)

    def _interrupt(self, elapsed_ms: HeardMs, cancel_ongoing_response: bool = True) -> None:
        """Cancel (if asked) and truncate at ``elapsed_ms`` heard (a number, a per-item function, or
        None for the wall clock since the first audio)."""
        # A player that stops where it says (AudioPlayer) is stopped first and then asked what was heard:
        # the truncation is then where the sound stopped, however long the sends below take. Any other
        # output is measured first, then stopped if something was cut (the seed's order).
        stop_first = (
            self._player is not None
            and getattr(self._player, "stops_where_heard", False) is True
            and (elapsed_ms is self._player or getattr(elapsed_ms, "__self__", None) is self._player)
            and self._core.current_item is not None  # audio is tracked: there may be something to cut
        )
        if stop_first:
            self._stop_player()
        if cancel_ongoing_response:
            self._cancel_response()
        if self._core.interrupt(self._now_ms(), elapsed_ms, cancel=False) and not stop_first:
            self._stop_player()
        self._flush()

    def _cancel_response(self) -> None:
        """Send ``response.cancel`` if a response is running and not already being cancelled."""
        self._core.cancel_response()
        self._flush()

    # Plumbing ------------------------------------------------------------------------------------
    def _heard_source(self) -> HeardMs:
        return self._player.heard_ms if self._player is not None else None

    def _flush(self) -> None:
        """Send what the core produced, then deliver what it emitted (in that order)."""
        frames = self._core.data_to_send()
        socket = self._socket
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
            if name == "audio_done" and self._player is not None:
                self._finish_player(payload)
            self._emitter.emit(name, payload)

    def _stop_player(self) -> None:
        """Stop the player (an interruption): once per interruption, as a second stop would end the first
        before it landed."""
        if self._player is None:
            return
        try:
            self._player.stop()
        except Exception as exc:
            self._report(exc)

    def _finish_player(self, done: AudioDone) -> None:
        """Tell the player (``finish``, if it has one) that an item's audio is done, so that it can say when
        the item ``finished`` playing: such an item is never truncated."""
        try:
            if callable(finish := getattr(self._player, "finish", None)):
                finish(done.item_id, done.content_index)
        except Exception as exc:
            self._report(exc)

    def _report(self, error: BaseException) -> None:
        self._emitter.emit("error", ErrorEvent(error))

    def _on_listener_error(self, name: str, error: BaseException) -> None:
        if name != "error":  # an error listener that raises must not loop
            self._emitter.emit("error", ErrorEvent(error))

    def __repr__(self) -> str:
        return f"<OpenAIRealtimeWebSocket {self._dialect.name} model={self._core.model!r} status={self._core.status}>"

    async def __aenter__(self) -> OpenAIRealtimeWebSocket:
        """``async with``: sends nothing, never raises; the transport is closed at the end."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Calls :meth:`close` (sends the close frame); never raises."""
        self.close()


def _buffered_amount(socket: RealtimeSocket) -> int:
    """The socket's send backlog in bytes, or 0 for a socket that does not tell (see BufferedSocket)."""
    if not isinstance(socket, BufferedSocket):
        return 0
    try:
        return int(socket.buffered_amount)
    except Exception:  # a socket closing under us: nothing is waiting any more
        return 0


def _positive_int_or_none(name: str, value: object, *, allow_none: bool) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of bytes{' or None (no bound)' if allow_none else ''}, not {value!r}"
        )
    return value
