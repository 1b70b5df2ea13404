"""A scripted WebSocket server on loopback, in a thread, for tests that need exact control of the peer.

The local Realtime server (``pyodide_realtime.server``) plays the model; this one plays a socket that
misbehaves on cue. The path picks the behaviour:

- ``/echo``: selects ``realtime``, echoes every text frame, records what it received.
- ``/no-protocol``: completes the handshake without selecting a subprotocol (browsers must fail).
- ``/slow``: holds the HTTP handshake for ``SLOW_HANDSHAKE_S`` (to close a socket while it connects).
- ``/frames``: selects ``realtime``, sends ``FRAMES`` (malformed JSON, binary, no type, ...), then
  only records what it receives.
- ``/reject``: answers HTTP 401 with the Realtime API's error body.

Every handshake's path and headers are kept in ``requests``; every received frame in ``received``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

SLOW_HANDSHAKE_S = 3.0
FRAMES: list[str | bytes] = [
    "this is not json",
    "[1, 2, 3]",
    json.dumps({"no_type": True}),
    b"\x00\x01binary",
    json.dumps({"type": "some.future_event", "payload": {"x": 1}}),
    json.dumps({"type": "session.created", "event_id": "evt_1", "session": {"id": "sess_1", "model": "m"}}),
]
UNAUTHORIZED_BODY = json.dumps(
    {"error": {"type": "invalid_request_error", "code": "invalid_api_key", "message": "Incorrect API key provided.", "param": None}}
)


@dataclass
class ScriptedServer:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> ScriptedServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.run(self._main(ready))

        self._thread = threading.Thread(target=run, name="scripted-ws", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the scripted WebSocket server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def reset(self) -> None:
        self.requests.clear()
        self.received.clear()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=None,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await self._stop.wait()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append({"path": request.path, "headers": dict(request.headers.raw_items())})
        if request.path.startswith("/slow"):
            await asyncio.sleep(SLOW_HANDSHAKE_S)
        if request.path.startswith("/reject"):
            headers = Headers([("Content-Type", "application/json")])
            return Response(401, "Unauthorized", headers, UNAUTHORIZED_BODY.encode())
        return None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> str | None:
        if connection.request is not None and connection.request.path.startswith("/no-protocol"):
            return None
        return "realtime" if "realtime" in subprotocols else None

    async def _handle(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        if path.startswith("/frames"):
            for frame in FRAMES:
                await connection.send(frame)
        try:
            async for message in connection:
                if isinstance(message, str):
                    self.received.append(message)
                    if message == '{"type":"test.close_me"}':
                        await connection.close(4000, "asked to close")
                        return
                    if not path.startswith("/frames"):  # /frames: the frames above are all the client gets
                        await connection.send(message)
        except Exception:  # a client that vanished mid-frame is part of what these tests do
            pass
