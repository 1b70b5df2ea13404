"""``RealtimeServer``: the Starlette app served by uvicorn, and its lifecycle in a loop or a thread.

Routes:

- ``POST /v1/realtime/client_secrets``: mint an ephemeral key (here, or at OpenAI with a real key).
- ``/v1/realtime`` (WebSocket): a Realtime session with the simulated model. Test hook:
  ``?_select_protocol=none`` completes the handshake without selecting a subprotocol. A POST of an
  SDP offer there is the beta WebRTC endpoint (beta events).
- ``POST /v1/realtime/calls``: the same session over WebRTC (``_webrtc``): the body is the SDP
  offer, the answer is the SDP answer. 501 without the optional aiortc.
- ``GET /demo-config.json``: where the demo page should connect (this server, or OpenAI when the
  mint endpoint hands out real keys).
- Only with ``test_endpoints``: ``GET /_test/state`` (alias ``/_test/log``), what the server saw, and
  ``POST /_test/reset``; both refuse requests from other origins.
- ``GET`` / ``HEAD`` anything else: static files from the mounts, then the web root.

HTTP parsing, WebSocket framing, subprotocol selection, message size limits (1009) and invalid
UTF-8 (1007) are uvicorn's and the ``websockets`` library's; static files are Starlette's.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pyodide_realtime.dialects import BETA, GA, INSECURE_KEY_SUBPROTOCOL_PREFIX, REALTIME_SUBPROTOCOL, Dialect

from . import _recognizer, _redaction
from ._conversation import Conversation, Schedule
from ._errors import ClientEventError, PortInUseError, SdpRefused
from ._guard import HEADER_TIMEOUT_S, MAX_CONNECTIONS_PER_CLIENT, ConnectionGuard
from ._keys import DEFAULT_KEY_TTL_S, MAX_KEY_TTL_S, MIN_KEY_TTL_S, KeyStore, Opener, UpstreamMinter
from ._listener import Listener
from ._memory import RELEASE_AFTER_CHARS, release_free_memory
from ._peer import Peer, PeerLike
from ._schema import validate_client_event
from ._session_state import SessionState
from ._speech import SpeechEngine, Synthesizer
from ._state import ConnectionRecord, ServerState
from ._static import Site

if TYPE_CHECKING:
    from ._webrtc import Call, CallDesk

DEFAULT_PACE = 4.0
REALTIME_PATH = "/v1/realtime"
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
CALLS_PATH = "/v1/realtime/calls"
# A browser's offer is a few kB; an offer with every codec and candidate stays well under this.
MAX_SDP_BYTES = 64 * 1024
MAX_CALLS = 16
DATA_CHANNEL_TIMEOUT_S = 10.0  # from the answer: ICE, DTLS and SCTP on loopback take well under a second
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location"}
CALL_REQUEST_HEADERS = "Authorization, Content-Type, OpenAI-Beta, X-OpenAI-Agents-SDK"
# A preflight's list of header names is echoed back only if it is that and short.
_HEADER_NAMES = re.compile(r"^[A-Za-z0-9-]{1,64}(?:\s*,\s*[A-Za-z0-9-]{1,64}){0,15}$")
WEBRTC_MISSING = (
    "This server has no WebRTC stack (aiortc is not installed): pip install 'pyodide-realtime-server[webrtc]' "
    "(or ./build.sh setup in a checkout), then restart it."
)
DEMO_CONFIG_PATH = "/demo-config.json"
OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
SELECT_PROTOCOL_HOOK = "_select_protocol"
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
START_TIMEOUT_S = 15.0
SHUTDOWN_GRACE_S = 2
# The API takes up to 15 MiB of audio in one append event (base64: 4/3 of it, plus the JSON around).
MAX_MESSAGE_BYTES = 21 * 1024 * 1024
# A mint request is a small JSON object.
MAX_BODY_BYTES = 64 * 1024
MAX_DRAINED_BYTES = 1024 * 1024
# A Host header is echoed into the demo's WebSocket URL only if it is a plain host[:port].
_HOST_HEADER = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
# Status -> the API's error code, for errors Starlette raises (404 from static files, 405...).
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}

logger = logging.getLogger("pyodide_realtime_server")


def error_body(message: str, code: str | None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": None}}


def error_response(status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, code or _HTTP_CODES.get(status)), status, headers=dict(headers or {}))


class BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


async def _bounded_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen <= limit:
            body.extend(chunk)
        elif seen > MAX_DRAINED_BYTES:
            break
    if seen > limit:
        # Read (and dropped) up to MAX_DRAINED_BYTES first: answering while the client still sends
        # makes its TCP stack reset the connection, and it would never see the 413.
        raise BadRequest(413, f"The request body is larger than {limit} bytes.")
    return bytes(body)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await _bounded_body(request, MAX_BODY_BYTES)
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise BadRequest(400, "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "The request body must be a JSON object.")
    return payload


def _load_webrtc() -> ModuleType | None:
    """The WebRTC module, or None when its optional stack (aiortc, av) is not installed."""
    try:
        from . import _webrtc
    except ImportError as exc:
        logger.info("WebRTC calls are off: %s", exc)
        return None
    return _webrtc


class _EmbeddedServer(uvicorn.Server):
    """uvicorn, minus its signal handlers: the server runs inside tests' loops and threads."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class RealtimeServer:
    """The local stand-in for the OpenAI Realtime API. Use ``async with`` or ``start_in_thread``.

    ``api_key`` (a regular OpenAI key) switches the mint endpoint to minting real keys at OpenAI,
    only for requests whose ``Origin`` is a page of this server (or in ``allowed_origins``); the
    local WebSocket endpoint keeps working with locally minted keys. The Origin check stops other
    sites' pages, not programs (they may send any Origin): with a key, listen on loopback only.
    ``test_endpoints`` adds ``/_test/state`` and ``/_test/reset``. ``keep_log`` keeps what each
    connection sent and was answered (bounded), and closed connections, for tests to read; without
    it ``state`` lists only open connections and logs nothing. A client address may hold
    ``max_connections_per_client`` connections at once, and each request's header must be complete
    within ``header_timeout_s`` (``_guard``). ``clock`` tells the keys' lifetimes (``time.time``).
    ``isolate`` serves every file cross-origin isolated (``_static``), not only ``worker.html``.
    ``schedule`` replaces the loop's
    ``call_later`` for the idle timeout and a call's data-channel deadline (tests fire them
    themselves). WebRTC calls (with aiortc installed): at most ``max_calls`` at once, each closed if
    its data channel is not open ``data_channel_timeout_s`` after the answer.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        web_root: str | Path | None = None,
        mounts: Mapping[str, str | Path] | None = None,
        pace: float = DEFAULT_PACE,
        key_ttl_s: float = DEFAULT_KEY_TTL_S,
        accept_any_key: bool = False,
        speech: SpeechEngine = "auto",
        api_key: str | None = None,
        upstream_url: str | None = None,
        upstream_opener: Opener | None = None,
        allowed_origins: Sequence[str] = (),
        test_endpoints: bool = False,
        keep_log: bool = True,
        schedule: Schedule | None = None,
        max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
        isolate: bool = False,
        max_calls: int = MAX_CALLS,
        data_channel_timeout_s: float = DATA_CHANNEL_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.pace = pace
        self.schedule = schedule
        self.web_root = Path(web_root) if web_root is not None else None
        self.mounts = {prefix.rstrip("/"): Path(folder) for prefix, folder in (mounts or {}).items()}
        self.keys = KeyStore(key_ttl_s, accept_any_key=accept_any_key, clock=clock)
        self.synthesizer = Synthesizer(speech)
        upstream_kwargs: dict[str, Any] = {"opener": upstream_opener}
        if upstream_url:
            upstream_kwargs["url"] = upstream_url
        self.upstream = UpstreamMinter(api_key, **upstream_kwargs) if api_key else None
        self.extra_origins = tuple(origin.rstrip("/") for origin in allowed_origins)
        self.test_endpoints = test_endpoints
        self.keep_log = keep_log
        self.isolate = isolate
        self.guard = ConnectionGuard(max_per_client=max_connections_per_client, header_timeout_s=header_timeout_s)
        self.state = ServerState()
        # What the simulated model hears; None without the optional pocketsphinx.
        self.listener = Listener() if _recognizer.available() else None
        # WebRTC calls, if aiortc is installed (optional: without it POST /v1/realtime/calls says so).
        webrtc = _load_webrtc()
        self.calls: CallDesk | None = (
            webrtc.CallDesk(max_calls=max_calls, open_timeout_s=data_channel_timeout_s, schedule=schedule) if webrtc else None
        )
        self.app = Starlette(
            routes=self._routes(), exception_handlers={HTTPException: self._http_error, BadRequest: self._bad_request}
        )
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._connection_count = 0

    def __repr__(self) -> str:
        return f"RealtimeServer(url={self.url!r}, upstream={'on' if self.upstream else 'off'})"

    # -- lifecycle ---------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {self.port} on {self.host} is already in use: stop the other server, or pick another "
                    "port with --port N (--port 0 picks a free one)"
                ) from None
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> RealtimeServer:
        sock = self._bind()
        # websockets (through uvicorn) logs every handshake header at DEBUG, Authorization included.
        _redaction.install()
        http_protocol, ws_protocol = self.guard.protocols()
        config = uvicorn.Config(
            self.app,
            http=http_protocol,  # h11, with the guard's header deadline and per-client cap
            ws=ws_protocol,  # websockets (sans-I/O)
            ws_max_size=MAX_MESSAGE_BYTES,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = _EmbeddedServer(config)
        self._serving = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="uvicorn")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise RuntimeError("the local Realtime server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Realtime server did not start within {START_TIMEOUT_S} s")
            await asyncio.sleep(0.01)
        logger.info("%s", self.synthesizer.describe())
        # ICE is on 127.0.0.1 only (_loopback), whatever --host says: a call needs a peer on this machine.
        logger.info("WebRTC calls: %s", f"on at {CALLS_PATH} (ICE on 127.0.0.1 only)" if self.calls is not None else WEBRTC_MISSING)
        logger.info("key minting: %s", "at OpenAI (a regular key is configured)" if self.upstream else "local (offline)")
        return self

    async def stop(self) -> None:
        if self._server is None or self._serving is None:
            return
        if self.calls is not None:
            await self.calls.close_all()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._serving, SHUTDOWN_GRACE_S + START_TIMEOUT_S)
        self._server = self._serving = None
        if self.listener is not None:
            await self.listener.close()

    async def wait_stopped(self) -> None:
        """Until the server stops serving (raises what stopped it, if it failed)."""
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._url_host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}{REALTIME_PATH}"

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def mint_key(self, session: dict[str, Any] | None = None, ttl_s: float | None = None) -> str:
        """A local ephemeral key for one connection (never an upstream one)."""
        if session:
            self._validate_session(session)
        self.state.keys_minted += 1
        return self.keys.mint(session, ttl_s).value

    # -- HTTP --------------------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(CLIENT_SECRETS_PATH, self._only(("POST",), self._mint), methods=ANY_METHOD),
            Route(DEMO_CONFIG_PATH, self._only(("GET", "HEAD"), self._demo_config), methods=ANY_METHOD),
            Route(CALLS_PATH, self._calls_endpoint, methods=ANY_METHOD),
            Route(REALTIME_PATH, self._realtime_http, methods=ANY_METHOD),
            WebSocketRoute(REALTIME_PATH, self._realtime),
            WebSocketRoute("/{path:path}", self._no_websocket_here),
        ]
        if self.test_endpoints:
            routes += [
                Route("/_test/state", self._only(("GET",), self._test_state), methods=ANY_METHOD),
                Route("/_test/log", self._only(("GET",), self._test_state), methods=ANY_METHOD),
                Route("/_test/reset", self._only(("POST",), self._test_reset), methods=ANY_METHOD),
            ]
        for prefix, folder in self.mounts.items():
            routes.append(Mount(prefix, Site(directory=folder, isolate=self.isolate)))
        if self.web_root is not None:
            routes.append(Mount("/", Site(directory=self.web_root, isolate=self.isolate)))
        return routes

    @staticmethod
    def _only(methods: tuple[str, ...], endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` for ``methods``, 405 for the rest (a route that only lists its methods would
        let the static mount at "/" answer 404 for the others)."""

        async def guarded(request: Request) -> Response:
            if request.method not in methods:
                return error_response(405, f"{request.method} is not allowed here.", headers={"Allow": ", ".join(methods)})
            return await endpoint(request)

        return guarded

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        messages = {404: f"Nothing at {request.url.path}.", 405: f"{request.method} is not allowed here."}
        return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)), headers=exc.headers)

    async def _bad_request(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadRequest)
        return error_response(exc.status, str(exc), exc.code)

    async def _upgrade_required(self, request: Request) -> Response:
        return error_response(426, "This endpoint speaks WebSocket: connect with a WebSocket client.", "upgrade_required")

    async def _demo_config(self, request: Request) -> Response:
        """Where the demo connects: OpenAI when keys are minted there (local keys would not work
        there, nor OpenAI's here), else this server, named as the browser named it."""
        if self.upstream is not None:
            config = {"realtime_url": OPENAI_REALTIME_URL, "mode": "openai"}
        else:
            host = request.headers.get("Host") or ""
            if not _HOST_HEADER.match(host):
                host = f"{self._url_host}:{self.port}"
            config = {"realtime_url": f"ws://{host}{REALTIME_PATH}", "mode": "local"}
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    def _own_origins(self) -> set[str]:
        return {f"http://{name}:{self.port}" for name in (*LOOPBACK_NAMES, self._url_host)}

    def _origin_allowed(self, origin: str) -> bool:
        # What must be refused is another site's page spending the key from a visitor's browser.
        return origin.rstrip("/") in self._own_origins() or origin.rstrip("/") in self.extra_origins

    def _own_hosts(self) -> set[str]:
        """The ``Host`` headers that name this server: a loopback name or the bound host, with the port."""
        names = {name.lower() for name in (*LOOPBACK_NAMES, self._url_host)}
        return {f"{name}:{self.port}" for name in names} | (names if self.port == 80 else set())

    def _same_origin_only(self, request: Request) -> None:
        """Test endpoints answer programs (no Origin) and this server's own pages, nobody else: a
        page elsewhere must not reset or read the state through a visitor's browser. A same-origin
        GET carries no Origin, so the Host is checked too: a page whose name was rebound to this
        machine (DNS rebinding) sends its own name, not one of this server's."""
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if (origin is not None and origin.rstrip("/") not in self._own_origins()) or fetch_site in ("cross-site", "same-site"):
            raise BadRequest(403, "The test endpoints only answer this server's own pages.", "forbidden_origin")
        if (request.headers.get("Host") or "").lower() not in self._own_hosts():
            raise BadRequest(
                403, "The test endpoints only answer requests naming this server (a loopback name or its host) with its port.", "forbidden_host"
            )

    async def _test_state(self, request: Request) -> Response:
        self._same_origin_only(request)
        return JSONResponse(self.state.snapshot(), headers={"Cache-Control": "no-store"})

    async def _test_reset(self, request: Request) -> Response:
        self._same_origin_only(request)
        self.state.reset()
        return JSONResponse({"ok": True})

    def _validate_session(self, session: Any) -> dict[str, Any]:
        if not isinstance(session, dict):
            raise BadRequest(400, "'session' must be an object")
        try:
            validate_client_event("ga", {"type": "session.update", "session": session})
            SessionState(None, "ga").seed(session)
        except ClientEventError as exc:
            raise BadRequest(400, exc.message, exc.code) from None
        return session

    async def _mint(self, request: Request) -> Response:
        origin = request.headers.get("Origin")
        if origin is None and self.upstream is not None:
            # Browsers always send Origin on POST, so this request comes from a program. This (and the
            # Origin check below) only keeps other sites' pages in visitors' browsers from spending the
            # key: a program can send any Origin it likes, so neither is access control. Whoever can
            # reach this server can mint real keys; the command line therefore refuses a non-loopback
            # --host with a real key unless --allow-remote-minting is given.
            # Offline keys only open this server, so programs (tests) may still mint those.
            return error_response(
                403,
                "Real OpenAI keys are only minted for pages served by this server, and this request has no "
                "Origin header (browsers always send one). Open the demo page in a browser, or mint keys "
                "at OpenAI with your own key.",
                "forbidden_origin",
            )
        if origin is not None and not self._origin_allowed(origin):
            return error_response(
                403, "Keys are only minted for pages served by this server (the request's Origin is foreign).", "forbidden_origin"
            )
        payload = await _json_body(request)
        session = payload.get("session")
        if session is not None:
            self._validate_session(session)
        if self.upstream is not None:
            answer = await asyncio.to_thread(
                self.upstream.mint, {key: payload[key] for key in ("session", "expires_after") if key in payload}
            )
            return Response(answer.body, answer.status, media_type="application/json")
        ttl_s: float | None = None
        expires_after = payload.get("expires_after")
        if isinstance(expires_after, dict) and "seconds" in expires_after:
            seconds = expires_after["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_KEY_TTL_S <= seconds <= MAX_KEY_TTL_S:
                raise BadRequest(400, f"'expires_after.seconds' must be an integer from {MIN_KEY_TTL_S} to {MAX_KEY_TTL_S}")
            ttl_s = seconds
        key = self.keys.mint(session, ttl_s)
        self.state.keys_minted += 1
        rendered = SessionState(None, "ga").seed(session).render()
        return JSONResponse({"value": key.value, "expires_at": int(key.expires_at), "session": rendered})

    # -- WebSocket ---------------------------------------------------------------------------

    async def _no_websocket_here(self, websocket: WebSocket) -> None:
        await self._refuse(websocket, 404, "not_found", f"No WebSocket endpoint at {websocket.url.path}; use {REALTIME_PATH}.")

    async def _refuse(self, websocket: WebSocket, status: int, code: str, message: str) -> None:
        if self.keep_log:
            self.state.rejected.append({"path": websocket.url.path, "status": status, "code": code, "message": message})
        body = error_body(message, code)
        body["error"]["event_id"] = None
        await websocket.send_denial_response(JSONResponse(body, status))

    async def _realtime(self, websocket: WebSocket) -> None:
        offered: list[str] = list(websocket.scope.get("subprotocols") or [])
        key = next((token[len(INSECURE_KEY_SUBPROTOCOL_PREFIX) :] for token in offered if token.startswith(INSECURE_KEY_SUBPROTOCOL_PREFIX)), None)
        authorization = websocket.headers.get("Authorization") or ""
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        check = self.keys.check(key)
        if not check.ok:
            await self._refuse(websocket, 401, "invalid_api_key", check.message)
            return
        assert key is not None
        # Claimed before the first await: a second handshake with the same key, checked while this
        # one is being accepted, must already find it used.
        self.keys.claim(key)
        select_none = websocket.query_params.get(SELECT_PROTOCOL_HOOK) == "none"
        subprotocol = REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered and not select_none else None
        try:
            await websocket.accept(subprotocol=subprotocol)
        except (WebSocketDisconnect, OSError, RuntimeError):
            self.keys.release(key)  # the handshake failed after all: the key opened nothing
            return
        beta_header = dict(BETA.extra_headers)["OpenAI-Beta"]
        beta = any(token in offered for token in BETA.extra_subprotocols) or (
            (websocket.headers.get("OpenAI-Beta") or "").replace(" ", "").lower() == beta_header
        )
        dialect: Dialect = BETA.name if beta else GA.name
        peer = Peer(websocket)
        record, conversation = self._open_conversation(
            peer,
            dialect=dialect,
            model=websocket.query_params.get("model"),
            path=websocket.url.path,
            subprotocol=subprotocol,
            key=key,
            session=check.session,
        )
        try:
            await conversation.run()
        except Exception:
            # The API never drops a connection over one event; if the simulation breaks anyway, the
            # client hears 1011 (internal error) and the log says why.
            logger.exception("the simulated model crashed on connection %s", record.id)
            with contextlib.suppress(Exception):
                await websocket.close(code=1011, reason="internal error in the simulated model")
            record.close_code = 1011
        finally:
            self._close_conversation(record, conversation, peer)

    def _open_conversation(
        self,
        peer: PeerLike,
        *,
        dialect: Dialect,
        model: str | None,
        path: str,
        subprotocol: str | None,
        key: str,
        session: dict[str, Any] | None,
        audio_track: bool = False,
    ) -> tuple[ConnectionRecord, Conversation]:
        """A logged connection's record and its conversation (WebSocket and WebRTC alike)."""
        self._connection_count += 1
        record = ConnectionRecord(
            id=f"conn_{self._connection_count}",
            dialect=dialect,
            model=model or "",
            path=path,
            subprotocol=subprotocol,
            auth="ephemeral" if key.startswith("ek_") else "regular",
            logged=self.keep_log,
        )
        self.state.connections.append(record)
        conversation = Conversation(
            peer,
            record,
            dialect=dialect,
            model=model,
            initial_session=session,
            synthesizer=self.synthesizer,
            pace=self.pace,
            schedule=self.schedule,
            listener=self.listener,
            audio_track=audio_track,
        )
        record.model = conversation.session.model
        return record, conversation

    def _close_conversation(self, record: ConnectionRecord, conversation: Conversation, peer: PeerLike) -> None:
        record.closed_at = time.time()
        if record.close_code is None:
            record.close_code = peer.close_code
        conversation.release()
        if not self.keep_log and record in self.state.connections:
            self.state.connections.remove(record)  # only open connections are listed
        if peer.received_chars >= RELEASE_AFTER_CHARS:
            # Once this handler's frame (the conversation, the last message) is gone too.
            asyncio.get_running_loop().call_soon(release_free_memory)

    # -- WebRTC ------------------------------------------------------------------------------

    def _forget_call(self, key: str, records: dict[str, ConnectionRecord]) -> None:
        """An offer that opened nothing: its key may open another, and no connection is listed."""
        self.keys.release(key)
        record = records.get("record")
        if record is not None and record in self.state.connections:
            self.state.connections.remove(record)

    async def _realtime_http(self, request: Request) -> Response:
        """``/v1/realtime`` over plain HTTP: the beta WebRTC endpoint (POST an SDP offer), else 426."""
        if request.method == "OPTIONS":
            return _preflight(request)
        if request.method == "POST" and _is_sdp(request):
            return await self._call(request, BETA.name)
        return await self._upgrade_required(request)

    async def _calls_endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return _preflight(request)
        if request.method != "POST":
            return error_response(405, f"{request.method} is not allowed here.", headers={"Allow": "POST, OPTIONS", **CORS_HEADERS})
        return await self._call(request, GA.name)

    async def _call(self, request: Request, dialect: Dialect) -> Response:
        """Answer an SDP offer: 201, the answer SDP, and the call's ``Location``; as the API does.

        Any page may call, as at the API (CORS, with ``Location`` readable): the key is what admits a
        call, and keys are minted only for this server's own pages.
        """
        try:
            response = await self._answer_call(request, dialect)
        except BadRequest as exc:
            response = error_response(exc.status, str(exc), exc.code)
        if response.status_code >= 400 and self.keep_log:
            error = json.loads(bytes(response.body))["error"]
            self.state.rejected.append({"path": request.url.path, "status": response.status_code, "code": error["code"], "message": error["message"]})
        response.headers.update(CORS_HEADERS)
        return response

    async def _answer_call(self, request: Request, dialect: Dialect) -> Response:
        if self.calls is None:
            return error_response(501, WEBRTC_MISSING, "webrtc_unavailable")
        authorization = request.headers.get("Authorization") or ""
        key = authorization[len("bearer ") :].strip() if authorization.lower().startswith("bearer ") else None
        check = self.keys.check(key)
        if not check.ok:
            return error_response(401, check.message, "invalid_api_key")
        assert key is not None
        if not _is_sdp(request):
            return error_response(
                415, "Send the SDP offer as the request body with 'Content-Type: application/sdp'.", "unsupported_media_type"
            )
        offer = _sdp_problem_or_text(await _bounded_body(request, MAX_SDP_BYTES))
        if self.calls.full:
            return error_response(
                429, f"This server holds at most {self.calls.max_calls} calls at once: hang up one first.", "too_many_calls"
            )
        self.keys.claim(key)
        records: dict[str, ConnectionRecord] = {}

        def conversation_for(peer: PeerLike) -> Conversation:
            record, conversation = self._open_conversation(
                peer,
                dialect=dialect,
                model=request.query_params.get("model"),
                path=request.url.path,
                subprotocol=None,
                key=key,
                session=check.session,
                audio_track=True,
            )
            records["record"] = record
            return conversation

        def closed(call: Call) -> None:
            if "record" in records:
                self._close_conversation(records["record"], call.conversation, call.peer)

        try:
            call_id, answer = await self.calls.answer(offer, conversation_for, closed)
        except SdpRefused as exc:
            self._forget_call(key, records)  # the offer opened nothing
            raise BadRequest(400, str(exc), "invalid_offer") from None
        except Exception:
            self._forget_call(key, records)
            logger.exception("answering a WebRTC offer failed")
            raise BadRequest(500, "The server failed to answer the offer; see its log. Try again with a new offer.", "server_error") from None
        return Response(answer, 201, media_type="application/sdp", headers={"Location": f"{CALLS_PATH}/{call_id}"})


def _preflight(request: Request) -> Response:
    """A browser's CORS preflight of a call: POST with the key and the SDP's content type."""
    wanted = request.headers.get("Access-Control-Request-Headers") or ""
    allowed = wanted if _HEADER_NAMES.match(wanted) else CALL_REQUEST_HEADERS
    headers = {**CORS_HEADERS, "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": allowed, "Access-Control-Max-Age": "600"}
    return Response(status_code=204, headers=headers)


def _is_sdp(request: Request) -> bool:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/sdp"


def _sdp_problem_or_text(body: bytes) -> str:
    """The offer as text, or 400 with what is wrong with it (the rest is aiortc's to judge)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "The SDP offer is not UTF-8 text.", "invalid_offer") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "v=0":
        raise BadRequest(
            400,
            "The request body is not an SDP offer (it must start with 'v=0'): send the peer connection's offer.sdp.",
            "invalid_offer",
        )
    media = [line.split()[0] for line in lines if line.startswith("m=")]
    if "m=audio" not in media:
        raise BadRequest(
            400, "The SDP offer has no audio: add the microphone's track before creating the offer.", "invalid_offer"
        )
    if "m=application" not in media:
        raise BadRequest(
            400,
            "The SDP offer has no data channel: create the 'oai-events' data channel before creating the offer.",
            "invalid_offer",
        )
    return text


class ServerThread:
    """A ``RealtimeServer`` on its own event loop in a daemon thread, for synchronous fixtures."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.server: RealtimeServer | None = None

    def start(self) -> ServerThread:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                self.server = await RealtimeServer(**self._options).start()
            except BaseException as exc:  # handed to the starting thread, which raises it
                self._error = exc
                ready.set()
                return
            ready.set()
            try:
                await self._stopped.wait()
            finally:
                await self.server.stop()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="realtime-server", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError(f"the local Realtime server did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            raise self._error
        return self

    def _call(self, function: Any, *args: Any) -> Any:
        """Run ``function`` on the server's loop (its state is only touched from there)."""
        assert self._loop is not None

        async def call() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(START_TIMEOUT_S)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def ws_url(self) -> str:
        assert self.server is not None
        return self.server.ws_url

    def mint_key(self, session: dict[str, Any] | None = None, ttl_s: float | None = None) -> str:
        assert self.server is not None
        return str(self._call(self.server.mint_key, session, ttl_s))

    def state(self) -> dict[str, Any]:
        assert self.server is not None
        snapshot: dict[str, Any] = self._call(self.server.state.snapshot)
        return snapshot

    def reset(self) -> None:
        assert self.server is not None
        self._call(self.server.state.reset)

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be gone already
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_in_thread(**options: Any) -> ServerThread:
    """Start a ``RealtimeServer`` (same options) in a thread; ``.url``, ``.ws_url``, ``.stop()``.

    A test helper: the test endpoints are on unless ``test_endpoints=False``.
    """
    options.setdefault("test_endpoints", True)
    return ServerThread(**options).start()
