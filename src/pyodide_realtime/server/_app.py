"""``RealtimeServer``: the HTTP front end, the mint endpoint, the WebSocket endpoint, the test hooks.

Routes:

- ``POST /v1/realtime/client_secrets``: mint an ephemeral key (here, or at OpenAI with a real key).
- ``GET /v1/realtime...`` with ``Upgrade: websocket``: a Realtime session with the simulated model.
  Test hook: ``?_select_protocol=none`` completes the handshake without selecting a subprotocol.
- ``GET /demo-config.json``: where the demo page should connect (this server, or OpenAI when the
  mint endpoint hands out real keys).
- ``GET /_test/state`` (alias ``/_test/log``): what the server saw, as JSON; ``POST /_test/reset``.
- ``GET`` / ``HEAD`` anything else: static files from the mounts, then the web root.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from ._dialect import DEFAULT_MODEL, ClientEventError, Dialect, SessionConfig, seed_session
from ._http import BadRequest, HttpRequest, HttpResponse, StaticSite, read_request, write_response
from ._keys import DEFAULT_KEY_TTL_S, MAX_KEY_TTL_S, MIN_KEY_TTL_S, KeyStore, Opener, UpstreamMinter
from ._session import RealtimeSession, close_quietly
from ._speech import SpeechEngine, Synthesizer
from ._state import ConnectionRecord, ServerState
from ._websocket import ServerWebSocket

DEFAULT_PACE = 4.0
KEEP_ALIVE_IDLE_S = 30.0
REALTIME_PATH = "/v1/realtime"
DEMO_CONFIG_PATH = "/demo-config.json"
OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
# A Host header is echoed into the demo's WebSocket URL only if it is a plain host[:port].
_HOST_HEADER = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
REALTIME_SUBPROTOCOL = "realtime"
SELECT_PROTOCOL_HOOK = "_select_protocol"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
START_TIMEOUT_S = 15.0

logger = logging.getLogger("pyodide_realtime.server")


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    try:
        payload = json.loads(request.body)
    except ValueError:
        raise BadRequest(400, "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "the request body must be a JSON object")
    return payload


class RealtimeServer:
    """The local stand-in for the OpenAI Realtime API. Use ``async with`` or ``start_in_thread``.

    ``api_key`` (a regular OpenAI key) switches the mint endpoint to minting real keys at OpenAI,
    only for requests whose ``Origin`` is a page of this server (or in ``allowed_origins``); the
    local WebSocket endpoint keeps working with locally minted keys.
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
    ) -> None:
        self.host = host
        self.port = port
        self.pace = pace
        self.site = StaticSite(Path(web_root) if web_root is not None else None, {k: Path(v) for k, v in (mounts or {}).items()})
        self.keys = KeyStore(key_ttl_s, accept_any_key=accept_any_key)
        self.synthesizer = Synthesizer(speech)
        upstream_kwargs: dict[str, Any] = {"opener": upstream_opener}
        if upstream_url:
            upstream_kwargs["url"] = upstream_url
        self.upstream = UpstreamMinter(api_key, **upstream_kwargs) if api_key else None
        self.extra_origins = tuple(origin.rstrip("/") for origin in allowed_origins)
        self.state = ServerState()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connection_count = 0

    def __repr__(self) -> str:
        return f"RealtimeServer(url={self.url!r}, upstream={'on' if self.upstream else 'off'})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> RealtimeServer:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port, limit=64 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("%s", self.synthesizer.describe())
        logger.info("key minting: %s", "at OpenAI (a regular key is configured)" if self.upstream else "local (offline)")
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

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

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(read_request(reader), KEEP_ALIVE_IDLE_S)
                except BadRequest as exc:
                    await write_response(writer, HttpResponse.error(exc.status, str(exc)), keep_alive=False)
                    break
                if request is None:
                    break
                if request.is_websocket_upgrade:
                    await self._serve_websocket(request, reader, writer)
                    return
                response = await self._route(request)
                await write_response(writer, response, keep_alive=request.keep_alive, head_only=request.method == "HEAD")
                if not request.keep_alive:
                    break
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        try:
            if path == CLIENT_SECRETS_PATH:
                if request.method != "POST":
                    return HttpResponse(405, b"", {"Allow": "POST"})
                return await self._mint(request)
            if path == DEMO_CONFIG_PATH and request.method in ("GET", "HEAD"):
                return HttpResponse.json(200, self._demo_config(request), {"Cache-Control": "no-store"})
            if path in ("/_test/state", "/_test/log"):
                return HttpResponse.json(200, self.state.snapshot())
            if path == "/_test/reset" and request.method == "POST":
                self.state.reset()
                return HttpResponse.json(200, {"ok": True})
            if path.startswith(REALTIME_PATH):
                return HttpResponse.error(
                    426, "This endpoint speaks WebSocket: connect with a WebSocket client.", code="upgrade_required"
                )
            if request.method not in ("GET", "HEAD"):
                return HttpResponse(405, b"", {"Allow": "GET, HEAD"})
            return self.site.respond(path)
        except BadRequest as exc:
            return HttpResponse.error(exc.status, str(exc))

    def _demo_config(self, request: HttpRequest) -> dict[str, str]:
        """Where the demo connects: OpenAI when keys are minted there (local keys would not work
        there, nor OpenAI's here), else this server, named as the browser named it."""
        if self.upstream is not None:
            return {"realtime_url": OPENAI_REALTIME_URL, "mode": "openai"}
        host = request.header("Host") or ""
        if not _HOST_HEADER.match(host):
            host = f"{self._url_host}:{self.port}"
        return {"realtime_url": f"ws://{host}{REALTIME_PATH}", "mode": "local"}

    def _origin_allowed(self, origin: str) -> bool:
        # What must be refused is another site's page spending the key from a visitor's browser.
        own = {f"http://{name}:{self.port}" for name in (*LOOPBACK_NAMES, self._url_host)}
        return origin.rstrip("/") in own or origin.rstrip("/") in self.extra_origins

    def _validate_session(self, session: Any) -> dict[str, Any]:
        if not isinstance(session, dict):
            raise BadRequest(400, "'session' must be an object")
        try:
            seed_session(SessionConfig(DEFAULT_MODEL, "ga"), session)
        except ClientEventError as exc:
            raise BadRequest(400, exc.message) from None
        return session

    async def _mint(self, request: HttpRequest) -> HttpResponse:
        origin = request.header("Origin")
        if origin is None and self.upstream is not None:
            # Browsers always send Origin on POST, so this request comes from a program, perhaps from
            # anywhere on the network (--host 0.0.0.0): it gets no real key billed to the operator.
            # Offline keys only open this server, so programs (tests) may still mint those.
            return HttpResponse.error(
                403,
                "Real OpenAI keys are only minted for pages served by this server, and this request has no "
                "Origin header (browsers always send one). Open the demo page in a browser, or mint keys "
                "at OpenAI with your own key.",
                code="forbidden_origin",
            )
        if origin is not None and not self._origin_allowed(origin):
            return HttpResponse.error(
                403,
                "Keys are only minted for pages served by this server (the request's Origin is foreign).",
                code="forbidden_origin",
            )
        payload = _json_body(request)
        session = payload.get("session")
        if session is not None:
            self._validate_session(session)
        if self.upstream is not None:
            answer = await asyncio.to_thread(
                self.upstream.mint, {key: payload[key] for key in ("session", "expires_after") if key in payload}
            )
            return HttpResponse(answer.status, answer.body, {"Content-Type": "application/json"})
        ttl_s: float | None = None
        expires_after = payload.get("expires_after")
        if isinstance(expires_after, dict) and "seconds" in expires_after:
            seconds = expires_after["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_KEY_TTL_S <= seconds <= MAX_KEY_TTL_S:
                raise BadRequest(400, f"'expires_after.seconds' must be an integer from {MIN_KEY_TTL_S} to {MAX_KEY_TTL_S}")
            ttl_s = seconds
        key = self.keys.mint(session, ttl_s)
        self.state.keys_minted += 1
        config = SessionConfig((session or {}).get("model", DEFAULT_MODEL), "ga")
        seed_session(config, session)
        rendered = config.render()
        rendered["expires_at"] = int(key.expires_at)
        return HttpResponse.json(200, {"value": key.value, "expires_at": int(key.expires_at), "session": rendered})

    # -- WebSocket ---------------------------------------------------------------------------

    async def _serve_websocket(self, request: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        query = request.query
        offered = [
            token.strip() for value in (request.header("Sec-WebSocket-Protocol") or "").split(",") if (token := value.strip())
        ]

        def select(protocols: Sequence[str]) -> str | None:
            if query.get(SELECT_PROTOCOL_HOOK) == "none":
                return None
            return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in protocols else None

        socket, ws_request = ServerWebSocket.start_handshake(request.raw_head, reader, writer, select)
        if ws_request is None or not request.path.startswith(REALTIME_PATH):
            await self._refuse(
                socket, request, 404, "not_found", f"No WebSocket endpoint at {request.path}; use {REALTIME_PATH}."
            )
            return
        key = next((token[len(KEY_SUBPROTOCOL_PREFIX) :] for token in offered if token.startswith(KEY_SUBPROTOCOL_PREFIX)), None)
        authorization = request.header("Authorization") or ""
        if key is None and authorization.lower().startswith("bearer "):
            key = authorization[len("bearer ") :].strip()
        check = self.keys.check(key)
        if not check.ok:
            await self._refuse(socket, request, 401, "invalid_api_key", check.message)
            return
        assert key is not None
        # Claimed before the first await: a second handshake with the same key, checked while this
        # one is being accepted, must already find it used.
        self.keys.claim(key)
        accepted = False
        try:
            accepted = await socket.accept(ws_request)
        finally:
            if not accepted:
                self.keys.release(key)
        if not accepted:
            return
        beta = BETA_SUBPROTOCOL in offered or (request.header("OpenAI-Beta") or "").replace(" ", "").lower() == "realtime=v1"
        dialect: Dialect = "beta" if beta else "ga"
        self._connection_count += 1
        record = ConnectionRecord(
            id=f"conn_{self._connection_count}",
            dialect=dialect,
            model=query.get("model") or DEFAULT_MODEL,
            path=request.path,
            subprotocol=socket.subprotocol,
            auth="ephemeral" if key.startswith("ek_") else "regular",
        )
        self.state.connections.append(record)
        session = RealtimeSession(
            socket,
            record,
            dialect=dialect,
            model=record.model,
            initial_session=check.session,
            synthesizer=self.synthesizer,
            pace=self.pace,
        )
        try:
            await session.run()
        finally:
            record.closed_at = time.time()
            await close_quietly(socket)

    async def _refuse(self, socket: ServerWebSocket, request: HttpRequest, status: int, code: str, message: str) -> None:
        self.state.rejected.append({"path": request.path, "status": status, "code": code, "message": message})
        body = json.dumps(
            {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": None, "event_id": None}}
        )
        reason = {401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        await socket.reject(status, reason, body.encode())


class ServerThread:
    """A ``RealtimeServer`` on its own event loop in a daemon thread, for synchronous fixtures."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None
        self.server: RealtimeServer | None = None

    def start(self) -> ServerThread:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                self.server = await RealtimeServer(**self._options).start()
            except Exception as exc:  # handed to the starting thread, which raises it
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
    """Start a ``RealtimeServer`` (same options) in a thread; ``.url``, ``.ws_url``, ``.stop()``."""
    return ServerThread(**options).start()
