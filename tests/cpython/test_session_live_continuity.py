"""A session whose connection is lost comes back with the conversation as heard, on the local server.

The connection runs through a TCP relay on loopback; the relay cuts it (no close frame, as a lost
network does), the transport reconnects (``ReconnectPolicy``) to a fresh server session, and the
session restores its history there: the user's text, and the reply cut to what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import pytest

from pyodide_realtime import AssistantMessageItem, OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession
from pyodide_realtime.testing import ScriptedPlayer
from pyodide_realtime.transport import ReconnectPolicy
from pyodide_realtime_server import RealtimeServer

#: A guard against a hang only: every wait ends on an event long before it.
EVENT_TIMEOUT_S = 10.0


class Relay:
    """Forwards loopback TCP connections to ``target``; :meth:`cut` aborts every one (no close frame)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.clients: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.append(writer)
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    def cut(self) -> None:
        for writer in self.clients:
            writer.transport.abort()
        self.clients.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def first(session: RealtimeSession, predicate: Any) -> Any:
    async def scan() -> Any:
        async for event in session:
            if predicate(event):
                return event
        raise AssertionError("the session ended first")

    return await asyncio.wait_for(scan(), EVENT_TIMEOUT_S)


@pytest.mark.asyncio
async def test_a_lost_connection_comes_back_with_the_conversation_as_heard() -> None:
    async with RealtimeServer(pace=0, speech="tones") as server:
        upstream = urlsplit(server.ws_url)
        relay = Relay(upstream.hostname or "127.0.0.1", upstream.port or 80)
        port = await relay.start()
        transport = OpenAIRealtimeWebSocket(
            url=f"ws://127.0.0.1:{port}{upstream.path}", reconnect=ReconnectPolicy(initial_delay_s=0, jitter=0)
        )
        player = ScriptedPlayer()
        transport.attach_audio_output(player)
        session = RealtimeSession(RealtimeAgent(name="Assistant"), transport=transport)
        try:
            await session.connect(api_key=lambda: server.mint_key())
            session.send_message("Say something long please")
            await first(session, lambda e: e.type == "agent_end")
            reply = session.history[-1]
            assert isinstance(reply, AssistantMessageItem) and reply.audio_ms > 0 and reply.text
            # The user heard the first quarter, then spoke over it.
            player.heard[reply.item_id] = reply.audio_ms / 4
            session.interrupt()
            await first(session, lambda e: e.type == "history_updated" and getattr(e.item, "heard_ms", None) is not None)
            cut = session.history[-1]
            assert isinstance(cut, AssistantMessageItem) and cut.unheard_text and cut.text
            assert cut.text != reply.text and reply.text.startswith(cut.text.rstrip())

            restored = asyncio.get_running_loop().create_future()

            def on_event(event: Any) -> None:
                data = event.model_dump()
                if data["type"] == "conversation.item.added" and len(server.state.connections) == 2 and not restored.done():
                    if data["item"].get("role") == "assistant":
                        restored.set_result(data)

            transport.on("*", on_event)
            relay.cut()
            await asyncio.wait_for(restored, EVENT_TIMEOUT_S)
        finally:
            session.close()
            await relay.close()
        first_session, second_session = server.state.connections
        created = [e["item"] for e in second_session.received if e["type"] == "conversation.item.create"]
        said = [(item["role"], [part.get("text") or part.get("transcript") for part in item["content"]]) for item in created]
        assert said == [("user", ["Say something long please"]), ("assistant", [cut.text])]
        assert list(second_session.errors) == [] and first_session.dialect == second_session.dialect
