"""Slow clients: a deadline for a request's header, and a cap on one client's open connections.

uvicorn never times out an unfinished request header: 400 clients that each sent half a header stayed
open for as long as they liked, and with 256 open files allowed nobody else got in. An ASGI guard
cannot help (the app only sees a request once its header is complete), so the guard sits in the
protocols uvicorn is given: its HTTP/1.1 protocol (h11) closes a connection whose header is not
complete ``header_timeout_s`` after it opened (or after its previous request's answer), and admits at
most ``max_per_client`` open connections from one address, WebSocket sessions included (the
WebSocket protocol a connection is upgraded to gives its place back when it closes). Over the cap a
connection gets a 503 and is closed.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

#: Browsers open about 6 connections per host, plus a WebSocket per session; tests open dozens.
MAX_CONNECTIONS_PER_CLIENT = 64
HEADER_TIMEOUT_S = 10.0


def _over_capacity_answer(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "type": "invalid_request_error",
                "code": "too_many_connections",
                "message": f"This address already has {limit} open connections to this server: close some and try again.",
                "param": None,
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """Open connections by client address, shared by one server's protocol instances."""

    def __init__(self, *, max_per_client: int = MAX_CONNECTIONS_PER_CLIENT, header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
        self.max_per_client = max_per_client
        self.header_timeout_s = header_timeout_s
        self._open: dict[str, set[asyncio.BaseTransport]] = {}

    def admit(self, address: str, transport: asyncio.BaseTransport) -> bool:
        held = self._open.setdefault(address, set())
        if len(held) >= self.max_per_client:
            if not held:
                del self._open[address]
            return False
        held.add(transport)
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        for address, held in list(self._open.items()):
            if transport in held:
                held.discard(transport)
                if not held:
                    del self._open[address]
                return

    def open_connections(self, address: str) -> int:
        return len(self._open.get(address, ()))

    def protocols(self) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
        """uvicorn's h11 and WebSocket protocol classes, bound to this guard (``Config(http=, ws=)``)."""
        guard = self

        class GuardedWebSocket(WebSocketsSansIOProtocol):
            def connection_lost(self, exc: Exception | None) -> None:
                guard.release(self.transport)
                super().connection_lost(exc)

        class GuardedH11(H11Protocol):
            _deadline: asyncio.TimerHandle | None = None

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                address = self.client[0] if self.client else ""
                if not guard.admit(address, transport):
                    transport.write(_over_capacity_answer(guard.max_per_client))
                    transport.close()
                    return
                self._arm()

            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                    self._arm()  # part of a header so far (a keep-alive connection's next request too)
                else:
                    self._disarm()

            def connection_lost(self, exc: Exception | None) -> None:
                self._disarm()
                guard.release(self.transport)
                super().connection_lost(exc)

            def _arm(self) -> None:
                if self._deadline is None:
                    self._deadline = self.loop.call_later(guard.header_timeout_s, self._header_late)

            def _disarm(self) -> None:
                if self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None

            def _header_late(self) -> None:
                self._deadline = None
                if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                    self.transport.close()

        return GuardedH11, GuardedWebSocket
