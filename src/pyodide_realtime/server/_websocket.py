"""A WebSocket connection over asyncio streams, driven by websockets' sans-I/O ``ServerProtocol``.

Our HTTP front end has already read the upgrade request; its raw bytes are fed to the protocol
object, which validates the handshake, frames messages, answers pings and runs the closing
handshake. ``send`` is synchronous (it only queues bytes on the transport) so that a burst of events
goes out in order from any task; ``drain`` is the await point for back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # audio appends are base64 and can be large
READ_CHUNK_BYTES = 64 * 1024

SubprotocolSelector = Callable[[Sequence[str]], str | None]


class ServerWebSocket:
    def __init__(self, protocol: ServerProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._protocol = protocol
        self._reader = reader
        self._writer = writer
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._fragment_is_text = False
        self.subprotocol: str | None = None
        self.close_code: int | None = None

    @classmethod
    def start_handshake(
        cls, raw_head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, select: SubprotocolSelector
    ) -> tuple[ServerWebSocket, Request | None]:
        """Parse the upgrade request. The caller then calls ``reject`` or ``accept``."""

        def choose(_protocol: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
            chosen = select(offered)
            return Subprotocol(chosen) if chosen is not None else None

        protocol = ServerProtocol(select_subprotocol=choose, max_size=MAX_MESSAGE_BYTES)
        protocol.receive_data(raw_head)
        requests = [event for event in protocol.events_received() if isinstance(event, Request)]
        socket = cls(protocol, reader, writer)
        socket._flush()
        return socket, (requests[0] if requests else None)

    async def reject(self, status: int, reason: str, body: bytes, content_type: str = "application/json") -> None:
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")])
        self._protocol.send_response(Response(status, reason, headers, body))
        self._flush()
        await self.drain()
        self._writer.close()

    async def accept(self, request: Request) -> bool:
        """Complete the handshake; False (and the connection closed) if websockets found it invalid."""
        response = self._protocol.accept(request)
        self._protocol.send_response(response)
        self._flush()
        await self.drain()
        if response.status_code != 101:
            self._writer.close()
            return False
        self.subprotocol = response.headers.get("Sec-WebSocket-Protocol")
        return True

    @property
    def open(self) -> bool:
        return self._protocol.state is State.OPEN

    def send(self, text: str) -> None:
        """Queue a text frame; silently dropped once the connection is closing (the peer is gone)."""
        if self._protocol.state is not State.OPEN:
            return
        self._protocol.send_text(text.encode())
        self._flush()

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush()

    async def recv(self) -> str | bytes | None:
        """The next whole message, or None once the connection is closed."""
        while not self._messages:
            if self._protocol.state is State.CLOSED:
                return None
            try:
                data = await self._reader.read(READ_CHUNK_BYTES)
            except ConnectionError:
                data = b""
            if data:
                self._protocol.receive_data(data)
            else:
                self._protocol.receive_eof()
            self._flush()
            self._take_events()
            if not data:
                break
        return self._messages.popleft() if self._messages else None

    def _take_events(self) -> None:
        for frame in self._protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self._fragments = [bytes(frame.data)]
                self._fragment_is_text = frame.opcode is Opcode.TEXT
            elif frame.opcode is Opcode.CONT:
                self._fragments.append(bytes(frame.data))
            elif frame.opcode is Opcode.CLOSE:
                self.close_code = self._protocol.close_code
                continue
            else:
                continue  # pings are answered by the protocol object itself
            if frame.fin:
                payload = b"".join(self._fragments)
                self._fragments = []
                self._messages.append(payload.decode() if self._fragment_is_text else payload)

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._writer.write(data)
            else:  # end of stream: the closing handshake is over (or the handshake failed)
                self._writer.close()
