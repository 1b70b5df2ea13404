"""The one connection as the simulated model sees it: ``send`` queues, ``drain`` writes.

``PeerLike`` is all the conversation uses; ``Peer`` is a WebSocket's, ``_webrtc.ChannelPeer`` the
WebRTC data channel's.

The model decides synchronously (a barge-in must send the cancel events before the next client
event is read), so sending is split: ``send`` queues a text frame at once and ``drain`` (awaited by
whoever may have queued) writes the queue in order under a lock, as the socket lets it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


class PeerLike(Protocol):
    close_code: int | None
    received_chars: int

    def send(self, text: str) -> None: ...

    async def drain(self) -> None: ...

    async def recv(self) -> str | bytes | None: ...


class Peer:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._outbox: deque[str] = deque()
        self._lock = asyncio.Lock()
        self.close_code: int | None = None
        self.received_chars = 0  # all messages' sizes, added up

    def send(self, text: str) -> None:
        self._outbox.append(text)

    async def drain(self) -> None:
        async with self._lock:
            while self._outbox:
                text = self._outbox.popleft()
                if self.close_code is not None or self._websocket.application_state != WebSocketState.CONNECTED:
                    self._outbox.clear()  # nobody is listening any more
                    return
                try:
                    await self._websocket.send_text(text)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    self._outbox.clear()
                    return

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the peer has closed (``close_code`` says how)."""
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.close_code = int(message.get("code") or 1005)
            return None
        text: str | None = message.get("text")
        if text is not None:
            self.received_chars += len(text)
            return text
        data: bytes = message.get("bytes") or b""
        self.received_chars += len(data)
        return data
