"""The official ``openai`` SDK against the local server, standing in for the API: its realtime client
holds a conversation with a tool (GA), and the README's ephemeral-key backend mints through it.

The README's "your own key endpoint" block (marked ``backend``) runs here, as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from openai import AsyncOpenAI

from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime_server import RealtimeServer
from readme_blocks import of_kind

TIMEOUT_S = 10.0
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}

def backend_example() -> str:
    """The README's "key endpoint" block, as written."""
    (block,) = of_kind("backend")
    return block.code


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones") as srv:
        yield srv


@pytest.mark.asyncio
async def test_the_official_sdk_holds_a_conversation_with_a_tool(server: RealtimeServer) -> None:
    async with (
        AsyncOpenAI(api_key=server.mint_key(), base_url=server.url + "v1") as client,
        client.realtime.connect(model="gpt-realtime") as connection,
    ):
        await connection.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER_TOOL]})
        await connection.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]}
        )
        await connection.response.create()
        answer = ""
        async with asyncio.timeout(TIMEOUT_S):
            async for event in connection:  # parsed into the SDK's own event models
                assert event.type != "error", event
                if event.type == "response.done" and event.response.output:
                    item = event.response.output[0]
                    if item.type == "function_call":
                        assert (item.name, json.loads(item.arguments or "{}")) == ("get_weather", {"location": "Paris"})
                        await connection.conversation.item.create(
                            item={"type": "function_call_output", "call_id": item.call_id or "", "output": "Sunny, 22 C"}
                        )
                        await connection.response.create()
                    else:
                        break
                elif event.type == "response.output_text.delta":
                    answer += event.delta
    assert answer == "The get_weather tool says: Sunny, 22 C"


@contextlib.asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.asyncio
async def test_the_readme_key_endpoint_mints_through_the_sdk(server: RealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The local server stands in for OpenAI: the SDK's base_url points at it.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-your-regular-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "v1")
    namespace: dict[str, Any] = {}
    exec(compile(backend_example(), "README: the key endpoint", "exec"), namespace)
    try:
        async with _serve(namespace["app"]) as backend:
            request = urllib.request.Request(backend + "/realtime-key", method="POST", data=b"")
            answer = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=TIMEOUT_S).read()))
    finally:
        # The example's client keeps its connection to the API alive: closed on this test's loop, not
        # finalized on a later test's (an unclosed socket's ResourceWarning there).
        await namespace["openai"].close()
    assert answer["value"].startswith("ek_") and answer["expires_at"] > 0
    assert "sk-your-regular-key" not in json.dumps(answer)
    # The page's side: the minted key opens one connection, with the session it was minted for.
    transport = OpenAIRealtimeWebSocket()
    created: list[Any] = []
    transport.on("*", lambda event: created.append(event) if event.type == "session.created" else None)
    await transport.connect(api_key=answer["value"], url=server.ws_url)
    try:
        async with asyncio.timeout(TIMEOUT_S):
            while not created:
                await asyncio.sleep(0.01)
        assert created[0].session["instructions"] == "Be brief."
    finally:
        transport.close()
    assert os.environ["OPENAI_BASE_URL"].startswith("http://127.0.0.1")
