"""A scripted WebSocket server on loopback, in a thread, for tests that need exact control of the peer.

The local Realtime server (``pyodide_realtime.server``) plays the model; this one plays a socket that
misbehaves on cue. The path picks the behaviour:

- ``/echo``: selects ``realtime``, echoes every text frame, records what it received. A
  ``{"type": "test.say", "event": {...}}`` frame is answered with ``event`` alone: a test scripts the
  server's side with server events the client's ``send_event`` would (rightly) refuse to send as its own.
- ``/no-protocol``: completes the handshake without selecting a subprotocol (browsers must fail).
- ``/slow``: holds the HTTP handshake for ``SLOW_HANDSHAKE_S`` (to close a socket while it connects).
- ``/frames``: selects ``realtime``, sends ``FRAMES`` (malformed JSON, binary, no type, ...), then
  only records what it receives.
- ``/reject``: answers HTTP 401 with the Realtime API's error body.
- ``/sized``: selects ``realtime``; a ``{"type": "test.size", "n": N, "char": C}`` frame is answered
  with a valid event of exactly N bytes of UTF-8 (padded with C); a ``test.drop`` frame cuts the TCP
  connection without a close frame. The close code the client sent is kept in ``closes``.

Every handshake's path and headers are kept in ``requests``; every received frame in ``received``.

``LoopbackPeer`` is the same idea inside the test's own event loop (CPython tests): a Realtime peer
whose reactions the test writes (``on_open``, ``on_event``), that can refuse handshakes and drop
connections, and that records every client event, handshake and close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
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


def _unwrap_say(message: str) -> str:
    """The ``event`` of a ``test.say`` frame, as its own frame; any other frame as it came."""
    if '"test.say"' not in message:  # cheap: most frames are not
        return message
    frame = json.loads(message)
    return json.dumps(frame["event"]) if frame.get("type") == "test.say" else message


@dataclass
class ScriptedServer:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
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
        self.closes.clear()

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
        if path.startswith("/sized"):
            await self._sized(connection)
            return
        try:
            async for message in connection:
                if isinstance(message, str):
                    self.received.append(message)
                    if message == '{"type":"test.close_me"}':
                        await connection.close(4000, "asked to close")
                        return
                    if not path.startswith("/frames"):  # /frames: the frames above are all the client gets
                        await connection.send(_unwrap_say(message))
        except Exception:  # a client that vanished mid-frame is part of what these tests do
            pass


    async def _sized(self, connection: ServerConnection) -> None:
        try:
            async for message in connection:
                self.received.append(str(message))
                event = json.loads(message)
                if event.get("type") == "test.size":
                    await connection.send(event_of_size(int(event["n"]), str(event.get("char", "x"))))
                elif event.get("type") == "test.drop":
                    connection.transport.abort()
                    return
        except ConnectionClosed:
            pass
        finally:
            await connection.wait_closed()
            self.closes.append(connection.close_code)


def event_of_size(size: int, char: str = "x") -> str:
    """A valid server event of exactly ``size`` bytes of UTF-8, padded with ``char`` (any width)."""
    head = json.dumps({"type": "x.padding", "pad": ""})
    room = size - len(head)
    width = len(char.encode())
    pad = char * (room // width) + "x" * (room % width)
    return head[:-2] + pad + head[-2:]


#: The peer's own log records (a server necessarily sees the key it is sent): tests can tell them apart.
PEER_LOGGER = "tests.loopback_peer"


class LoopbackPeer:
    """A Realtime peer on loopback in the running event loop; ``async with LoopbackPeer() as peer``."""

    def __init__(self, recv_buffer_bytes: int | None = None, compression: str | None = None) -> None:
        #: A small kernel receive buffer (set before accept, so no autotuning) makes a peer that stops
        #: reading push back on the client within kilobytes: a slow uplink.
        self.recv_buffer_bytes = recv_buffer_bytes
        #: None, as the Realtime API (and a deflated stream of silence would never fill a buffer);
        #: "deflate" to send compressed frames (a small frame that inflates to a huge message).
        self.compression = compression
        self.port = 0
        self.received: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.closes: list[tuple[int | None, str]] = []
        self.connections: list[ServerConnection] = []
        #: An HTTP status to refuse the next handshakes with (None: accept).
        self.refuse_status: int | None = None
        #: Called with each new connection after ``session.created``.
        self.on_open: Callable[[ServerConnection], Awaitable[None]] | None = None
        #: Called with each client event (already recorded in ``received``).
        self.on_event: Callable[[ServerConnection, dict[str, Any]], Awaitable[None]] | None = None
        self._server: Server | None = None

    def url(self, path: str = "/realtime") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def types(self) -> list[str]:
        return [e.get("type", "") for e in self.received]

    async def __aenter__(self) -> LoopbackPeer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.recv_buffer_bytes is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer_bytes)
        listener.bind(("127.0.0.1", 0))
        self._server = await serve(
            self._handle, sock=listener, process_request=self._process_request, max_size=None,
            compression=self.compression,
            logger=logging.getLogger(PEER_LOGGER),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self.drop()  # a deaf connection would hold the server's close for its close timeout
        self._server.close()
        await self._server.wait_closed()

    def drop(self) -> None:
        """Cut every live connection without a close frame (what a dead network looks like: 1006)."""
        for connection in self.connections:
            connection.transport.abort()

    def stop_reading(self) -> None:
        """Stop reading from every live connection: alive but deaf (no pong, a full uplink)."""
        for connection in self.connections:
            connection.transport.pause_reading()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.refuse_status is not None:
            headers = Headers([("Content-Type", "application/json")])
            return Response(self.refuse_status, "Refused", headers, UNAUTHORIZED_BODY.encode())
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        try:
            await ws.send(json.dumps({"type": "session.created", "session": {"id": f"sess_{len(self.connections)}"}}))
            if self.on_open is not None:
                await self.on_open(ws)
            async for message in ws:
                event = json.loads(message)
                self.received.append(event)
                if self.on_event is not None:
                    await self.on_event(ws, event)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closes.append((ws.close_code, ws.close_reason or ""))


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the event loop run until ``predicate()`` holds (a peer's or transport's state), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)
