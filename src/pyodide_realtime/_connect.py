"""Connecting and reconnecting: one attempt at a time, the socket it opened, and the opt-in reconnect.

:class:`Connection` owns everything about the socket's life: the attempt in progress (its values are
committed only once the socket is open), the socket and the handler that hears it (a stale socket's
callbacks are ignored), the close codes in words, and the reconnect loop. It drives the protocol core's
connection milestones (``connection_opening``/``opened``/``closed``) and hands each text frame to the
transport's receiver; the transport sends and delivers through its own send context.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ._core import RealtimeProtocol
from ._emitter import EventEmitter
from ._interfaces import (
    ABNORMAL_CLOSURE,
    INTERNAL_ERROR,
    KEEPALIVE_TIMEOUT_REASON,
    NORMAL_CLOSURE,
    OPEN_TIMEOUT_S,
    SERVICE_RESTART,
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
from .events import ConnectionStatus, Reconnected, ReconnectFailed, Reconnecting, build_parser

__all__ = [
    "ApiKey",
    "Connection",
    "Endpoint",
    "WEBSOCKET_ENDPOINT",
    "ConnectionState",
    "ReconnectPolicy",
    "RECONNECT_CLOSE_CODES",
    "AUTH_REFUSED_STATUSES",
    "positive_bytes",
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
    It gives up (``reconnect_failed``) after ``max_attempts`` failed attempts in a row; a connection
    that is lost within ``stable_after_s`` of opening counts as one more failure, not as a fresh start
    (a peer that accepts and drops, or stops answering pings, would otherwise be retried forever). And
    it never makes more than ``budget`` attempts in any ``budget_window_s`` seconds.
    """

    max_attempts: int = 5
    initial_delay_s: float = 0.5
    max_delay_s: float = 15.0
    multiplier: float = 2.0
    jitter: float = 0.5
    #: Longer than a keepalive timeout takes to notice a stalled peer (about 50 s).
    stable_after_s: float = 60.0
    budget: int = 20
    budget_window_s: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("max_attempts", "budget"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, not {value!r}")
        for name in ("initial_delay_s", "max_delay_s", "multiplier", "stable_after_s", "budget_window_s"):
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


@dataclass(frozen=True)
class Endpoint:
    """What differs between the transports' connections: the URL each opens and what it checks, the
    backend that opens it (in a page; elsewhere), and what its messages call it."""

    #: What messages call the connection ("the WebSocket to ... did not open").
    name: str
    #: ``check(url, allow_insecure_transport=...)``: the URL, or ConfigurationError.
    check: Callable[..., str]
    #: ``build(dialect, model=, url=, call_id=, default_url=)``: the URL of one connect.
    build: Callable[..., str]
    #: The backend when the transport was given none: ``backend()`` returns a factory, or raises
    #: UnsupportedError saying what to install or where to run.
    backend: Callable[[], SocketFactory]
    #: What a connection that does not open in time most likely lacks, said in its error.
    stalled: str = ""


def _websocket_backend() -> SocketFactory:
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


WEBSOCKET_ENDPOINT = Endpoint("WebSocket", check_url, realtime_url, _websocket_backend)


@dataclass
class _Attempt:
    """One ``connect`` in progress: the values it will commit once its socket is open."""

    model: str
    url: str
    api_key: ApiKey | None = field(repr=False)
    default_url: str | None
    session_config: SessionConfig
    opened: asyncio.Future[None]


#: What the transport does with a text frame of the socket that ``handler`` hears.
Receiver = Callable[["SocketListener", "str | bytes | bytearray | memoryview"], None]


class SocketListener:
    """Hears one socket. The connection ignores it once it is no longer the current listener."""

    def __init__(self, connection: Connection, receive: Receiver) -> None:
        self._connection = connection
        # on_message: every server event comes through here, so it is a C-level partial rather than
        # a method (that saves a Python frame per event).
        self.on_message = partial(receive, self)

    def on_open(self, protocol: str) -> None:
        self._connection._socket_open(self)

    def on_binary(self, size: int) -> None:
        if self._connection.listener is self:
            logger.debug("ignored a binary frame of %d bytes (the Realtime API sends text)", size)

    def on_error(self, error: BaseException) -> None:
        self._connection._socket_error(self, error)

    def on_close(self, code: int, reason: str) -> None:
        self._connection._socket_close(self, code, reason)


class Connection:
    """The socket side of one transport (see the module docstring). ``flush`` sends what the core
    produced and delivers its events; ``report`` emits an ``error``."""

    def __init__(
        self,
        core: RealtimeProtocol,
        emitter: EventEmitter,
        *,
        receive: Receiver,
        flush: Callable[[], None],
        report: Callable[[BaseException], None],
        dialect: DialectSpec,
        url: str | None,
        api_key: ApiKey | None,
        use_insecure_api_key: bool,
        allow_insecure_transport: bool,
        create_websocket: SocketFactory | None,
        max_message_bytes: int | None,
        reconnect: ReconnectPolicy | bool | None,
        endpoint: Endpoint = WEBSOCKET_ENDPOINT,
    ) -> None:
        """Checks the options (ConfigurationError); opens nothing."""
        self._endpoint = endpoint
        if url is not None:
            endpoint.check(url, allow_insecure_transport=allow_insecure_transport)
        if reconnect is True:
            reconnect = ReconnectPolicy()
        if reconnect is not False and reconnect is not None and not isinstance(reconnect, ReconnectPolicy):
            raise ConfigurationError(f"reconnect must be True, False or a ReconnectPolicy, not {reconnect!r}")
        self._core = core
        self._emitter = emitter
        self._receive = receive
        self._flush = flush
        self._report = report
        self._dialect = dialect
        self.url = url
        self._default_url = url
        self._api_key = api_key
        self._use_insecure_api_key = use_insecure_api_key
        self._allow_insecure_transport = allow_insecure_transport
        self._create_websocket = create_websocket
        self._max_message_bytes = None if max_message_bytes is None else positive_bytes("max_message_bytes", max_message_bytes, "None (no bound)")
        self._policy = reconnect or None
        #: The socket (None exactly when disconnected; the status itself lives in the core).
        self.socket: RealtimeSocket | None = None
        #: The listener of the current socket: callbacks of any other are stale.
        self.listener: SocketListener | None = None
        self._attempt: _Attempt | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        #: Failed reconnect attempts in a row (an open that did not last counts): carried over a
        #: connection lost within the policy's stable_after_s.
        self._failures = 0
        self._opened_at = 0.0
        self._attempt_times: deque[float] = deque()  # of reconnect attempts, for the budget

    @property
    def reconnecting(self) -> bool:
        return self._reconnect_task is not None

    def backlog(self) -> int:
        """Bytes waiting in the socket's send buffer: 0 without a socket, or one that does not tell
        (see BufferedSocket)."""
        socket = self.socket
        if not isinstance(socket, BufferedSocket):
            return 0
        try:
            return int(socket.buffered_amount)
        except Exception:  # a socket closing under us: nothing is waiting any more
            return 0

    # Connecting ----------------------------------------------------------------------------------
    async def connect(
        self,
        api_key: ApiKey | None,
        model: str | None,
        url: str | None,
        call_id: str | None,
        initial_session_config: SessionConfig | Mapping[str, Any] | None,
        timeout: float | None,
        *,
        by_app: bool = True,
    ) -> None:
        """Open a socket (``by_app``: the app's ``connect``, else the reconnect loop's attempt)."""
        if by_app and self._reconnect_task is not None:
            raise InvalidStateError("connect() cannot run while the transport is reconnecting: close() first")
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
        endpoint = self._endpoint
        new_url = endpoint.check(
            endpoint.build(self._dialect, model=new_model, url=url, call_id=call_id, default_url=self._default_url),
            allow_insecure_transport=self._allow_insecure_transport,
        )
        attempt = _Attempt(
            model=new_model,
            url=new_url,
            api_key=api_key if api_key is not None else self._api_key,
            default_url=self._default_url if not by_app or not url else url,
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
            self._core.secrets = request.secrets
            factory = self._socket_factory()
            listener = SocketListener(self, self._receive)
            self.listener = listener
            socket = factory(request, listener)
            if attempt.opened.done() or self.listener is not listener:
                # close() (or a failure reported already) while the factory ran.
                socket.close()
                attempt.opened.result()
                raise ConnectionFailedError("the connection failed while it was being opened")
            self.socket = socket
            self._core.connection_opening()
            self._flush()
            build_parser()  # while the browser does the handshake, not at the first frame
            await self._opened(attempt, timeout)
            now: str = self._core.status  # the await may have changed both
            if self.listener is not listener or now != "connected":
                raise ConnectionFailedError("the connection closed while connect() was finishing")
        except BaseException:
            # Whatever failed (or was cancelled): nothing was committed; drop the socket, if any.
            self._teardown()
            raise
        finally:
            self._attempt = None
        if by_app:
            self._failures = 0  # a later drop starts a fresh count

    async def _opened(self, attempt: _Attempt, timeout: float | None) -> None:
        if timeout is None:
            await attempt.opened
            return
        try:
            # shield: on timeout the attempt is failed below rather than cancelled.
            await asyncio.wait_for(asyncio.shield(attempt.opened), timeout)
        except TimeoutError:
            stalled = f" ({self._endpoint.stalled})" if self._endpoint.stalled else ""
            error = ConnectionFailedError(
                f"the {self._endpoint.name} to {safe_url(attempt.url)} did not open within {timeout:g} s{stalled}: "
                "check the network and the URL, or pass a longer connect(timeout=...)"
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
        return self._endpoint.backend()

    # Closing -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the socket (1000), fail the attempt being opened and stop any reconnect."""
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
        self._fail_attempt(ConnectionFailedError("close() was called before the connection opened"))
        self._teardown()
        self._emitter.close_streams()

    def _teardown(self) -> None:
        """Go to ``disconnected``: forget the socket and its listener, then close it."""
        socket = self.socket
        was_disconnected = self._core.status == "disconnected"
        self.listener = None
        self.socket = None
        self._core.connection_closed()
        self._flush()
        if not was_disconnected and self._reconnect_task is None:
            self._emitter.close_streams()
        if socket is not None:
            try:
                socket.close()
            except Exception as exc:
                self._report(exc)

    def _fail_attempt(self, error: BaseException) -> None:
        attempt = self._attempt
        if attempt is not None and not attempt.opened.done():
            attempt.opened.set_exception(error)
            # Marked as retrieved: connect() may have been cancelled and nobody else will ask.
            attempt.opened.exception()

    # Socket callbacks (only from the current listener) -------------------------------------------
    def _socket_open(self, listener: SocketListener) -> None:
        attempt = self._attempt
        if self.listener is not listener or self._core.status != "connecting" or attempt is None:
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
        self._opened_at = asyncio.get_running_loop().time()
        self.url = attempt.url
        self._default_url = attempt.default_url
        self._api_key = attempt.api_key
        self._flush()
        if not attempt.opened.done():
            attempt.opened.set_result(None)

    def _socket_error(self, listener: SocketListener, error: BaseException) -> None:
        if self.listener is not listener:
            return
        failure = error if isinstance(error, RealtimeError) else ConnectionFailedError(f"{self._endpoint.name} error: {error}")
        self._fail_attempt(failure)
        self._report(failure)
        # Worth a reconnect: a peer that stopped answering pings, or a connection that dropped under a
        # send. Not a local send failure (1011 "send failed"), nor a message over the bound (1009).
        retry = isinstance(failure, ConnectionClosedError) and (
            failure.reason == KEEPALIVE_TIMEOUT_REASON or failure.code in (ABNORMAL_CLOSURE, SERVICE_RESTART)
        )
        self._lost(failure, retry)

    def _socket_close(self, listener: SocketListener, code: int, reason: str) -> None:
        if self.listener is not listener:
            return
        detail = describe_close(code, reason)
        error: ConnectionClosedError | None = None
        retry = False
        if self._core.status == "connecting":
            self._fail_attempt(
                ConnectionFailedError(f"the {self._endpoint.name} closed before it opened ({detail})", code=code, reason=reason)
            )
        elif code != NORMAL_CLOSURE:
            # Not asked for by close() (that listener would be gone): tell the error listeners why.
            retry = code in RECONNECT_CLOSE_CODES
            then = "reconnecting" if retry and self._policy else "connect() again to go on"
            error = ConnectionClosedError(f"the connection closed unexpectedly: {detail}; {then}", code=code, reason=reason)
        elif self._core.response_running:
            error = ConnectionClosedError(
                f"the server closed the connection ({detail}) in the middle of a response: the response was cut",
                code=code,
                reason=reason,
            )
        if error is not None:
            self._report(error)
        self._lost(error, retry)

    # Reconnecting --------------------------------------------------------------------------------
    def _lost(self, error: BaseException | None, retry: bool) -> None:
        """The connection is gone: reconnect when that was asked for and fits, then tear down."""
        if retry and self._policy is not None and self._core.status == "connected" and self._reconnect_task is None:
            config = self._core.session_config  # everything configured so far, re-sent on reconnect
            loop = asyncio.get_running_loop()
            if loop.time() - self._opened_at >= self._policy.stable_after_s:
                self._failures = 0  # it lasted: a fresh start
            self._reconnect_task = loop.create_task(self._reconnect(self._policy, config, error))
        self._teardown()

    def _over_budget(self, policy: ReconnectPolicy) -> bool:
        """Count one more attempt, unless ``budget`` were made within the last ``budget_window_s``."""
        now = asyncio.get_running_loop().time()
        while self._attempt_times and now - self._attempt_times[0] > policy.budget_window_s:
            self._attempt_times.popleft()
        if len(self._attempt_times) >= policy.budget:
            return True
        self._attempt_times.append(now)
        return False

    async def _reconnect(self, policy: ReconnectPolicy, config: SessionConfig, cause: BaseException | None) -> None:
        me = asyncio.current_task()
        try:
            for attempt in range(self._failures + 1, policy.max_attempts + 1):
                if self._over_budget(policy):
                    self._give_up(ConnectionFailedError(
                        f"gave up reconnecting: {policy.budget} attempt(s) within {policy.budget_window_s:g} s, the "
                        f"policy's budget; last: {cause}"))
                    return
                self._failures = attempt  # until this connection proves stable
                delay = policy.delay_s(attempt)
                self._emitter.emit("reconnecting", Reconnecting(attempt, delay, cause))
                await asyncio.sleep(delay)
                try:
                    await self.connect(None, None, self.url, None, config, OPEN_TIMEOUT_S, by_app=False)
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
            self._give_up(ConnectionFailedError(
                f"gave up reconnecting after {policy.max_attempts} failed attempt(s) in a row (a connection lost within "
                f"{policy.stable_after_s:g} s of opening counts as failed); last: {cause}"))
        finally:
            if self._reconnect_task is me:
                self._reconnect_task = None
                if self._core.status == "disconnected":
                    self._emitter.close_streams()

    def _give_up(self, error: BaseException) -> None:
        self._report(error)
        self._emitter.emit("reconnect_failed", ReconnectFailed(error))


def positive_bytes(name: str, value: object, alternative: str = "") -> int:
    """``value`` if it is a positive int (a number of bytes), else ConfigurationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        other = f" or {alternative}" if alternative else ""
        raise ConfigurationError(f"{name} must be a positive number of bytes{other}, not {value!r}")
    return value
