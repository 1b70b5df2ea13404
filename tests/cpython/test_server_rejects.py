"""Every input the issue found accepted (or crashing), answered as the API answers: an ``error`` event
with its ``code``, ``param`` and the client's ``event_id``, and the connection lives on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from pyodide_realtime_server import RealtimeServer

EVENT_TIMEOUT_S = 5.0


def _ga(**session: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", **session}}


def _beta(**session: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": session}


def _item(**item: Any) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item}


def _user(*content: Any, **extra: Any) -> dict[str, Any]:
    return _item(type="message", role="user", content=list(content), **extra)


# (dialect, event, code, param)
REJECTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("ga", _ga(instructions=42), "invalid_type", "session.instructions"),
    ("ga", _ga(max_output_tokens="lots"), "invalid_value", "session.max_output_tokens"),
    ("ga", _ga(max_output_tokens=0), "integer_below_min_value", "session.max_output_tokens"),
    ("ga", _ga(max_output_tokens=5000), "integer_above_max_value", "session.max_output_tokens"),
    ("ga", _ga(tools="abc"), "invalid_type", "session.tools"),
    ("ga", _ga(tools=[{"type": "bogus"}]), "invalid_value", "session.tools[0].type"),
    ("ga", _ga(tools=[{"type": "function", "name": "f", "parameters": "x"}]), "invalid_type", "session.tools[0].parameters"),
    ("ga", _ga(tool_choice="sometimes"), "invalid_value", "session.tool_choice"),
    ("ga", _ga(audio={"input": {"noise_reduction": "underwater"}}), "invalid_type", "session.audio.input.noise_reduction"),
    (
        "ga",
        _ga(audio={"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eventually"}}}),
        "invalid_value",
        "session.audio.input.turn_detection.eagerness",
    ),
    ("ga", _ga(include=["bogus"]), "invalid_value", "session.include[0]"),
    ("ga", _ga(truncation="sometimes"), "invalid_value", "session.truncation"),
    ("ga", _ga(prompt={"variables": {}}), "missing_required_parameter", "session.prompt.id"),
    ("ga", _ga(audio={"output": {"speed": 5.0}}), "decimal_above_max_value", "session.audio.output.speed"),
    ("ga", _ga(output_modalities=["audio", "text"]), "invalid_value", "session.output_modalities"),
    ("ga", _ga(modalities=["text"]), "unknown_parameter", "session.modalities"),
    ("ga", _ga(model="another-model"), "invalid_value", "session.model"),
    ("ga", _user({"type": "input_text", "text": 5}), "invalid_type", "item.content[0].text"),
    ("ga", _user({"type": "bogus_part"}), "invalid_value", "item.content[0].type"),
    ("ga", _user({"type": "input_text", "text": "hi"}, bogus=1), "unknown_parameter", "item.bogus"),
    ("ga", {"type": "response.create", "response": {"bogus": 1}}, "unknown_parameter", "response.bogus"),
    ("ga", {"type": "response.create", "response": {"output_modalities": [{}]}}, "invalid_value", "response.output_modalities[0]"),
    ("ga", {"type": "response.create", "response": {"conversation": "none", "input": ["x"]}}, "invalid_type", "response.input[0]"),
    ("ga", {"type": "response.create", "response": {"max_output_tokens": 0}}, "integer_below_min_value", "response.max_output_tokens"),
    ("ga", {"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 0}, "invalid_value", "item_id"),
    ("ga", _user({"type": "input_text", "text": "x"}, id="a") | {"previous_item_id": "nope"}, "invalid_value", "previous_item_id"),
    ("ga", {"type": "bogus.event"}, "invalid_value", "type"),
    ("ga", {"type": "output_audio_buffer.clear"}, "invalid_value", "type"),
    ("beta", _beta(temperature=5), "decimal_above_max_value", "session.temperature"),
    ("beta", _beta(modalities=["audio"]), "invalid_value", "session.modalities"),
    ("beta", _beta(speed=5.0), "decimal_above_max_value", "session.speed"),
    ("beta", _beta(output_modalities=["text"]), "unknown_parameter", "session.output_modalities"),
    ("beta", _beta(tools="abc"), "invalid_type", "session.tools"),
]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones") as srv:
        yield srv


async def _open(server: RealtimeServer, dialect: str) -> ClientConnection:
    protocols = ["realtime", f"openai-insecure-api-key.{server.mint_key()}"]
    if dialect == "beta":
        protocols.append("openai-beta.realtime-v1")
    ws = await connect(server.ws_url, subprotocols=protocols)
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def _next(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))
        if event["type"] == kind:
            return event


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_each_rejected_input_gets_the_api_error_and_the_connection_lives_on(server: RealtimeServer, dialect: str) -> None:
    ws = await _open(server, dialect)
    async with ws:
        for index, (case_dialect, event, code, param) in enumerate(REJECTED):
            if case_dialect != dialect:
                continue
            await ws.send(json.dumps({**event, "event_id": f"evt_{index}"}))
            error = (await _next(ws, "error"))["error"]
            got = (error["type"], error["code"], error["param"], error["event_id"])
            assert got == ("invalid_request_error", code, param, f"evt_{index}"), (event, error["message"])
            assert "None" not in error["message"], error["message"]
        # Still alive, and nothing of the refused updates stuck.
        await ws.send(json.dumps(_ga(instructions="ok") if dialect == "ga" else _beta(instructions="ok")))
        updated = (await _next(ws, "session.updated"))["session"]
        assert updated["instructions"] == "ok" and updated["tools"] == []
    assert server.state.connections[0].close_code == 1000


@pytest.mark.asyncio
async def test_frozen_fields_voice_after_the_model_spoke_and_tracing_once_set(server: RealtimeServer) -> None:
    ws = await _open(server, "ga")
    async with ws:
        await ws.send(json.dumps(_ga(tracing="auto", audio={"output": {"voice": "marin"}})))
        await _next(ws, "session.updated")
        await ws.send(json.dumps({"type": "response.create"}))
        await _next(ws, "response.done")
        await ws.send(json.dumps(_ga(audio={"output": {"voice": "verse"}}) | {"event_id": "v"}))
        error = (await _next(ws, "error"))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("cannot_update_voice", "session.audio.output.voice", "v")
        await ws.send(json.dumps(_ga(tracing=None) | {"event_id": "t"}))
        error = (await _next(ws, "error"))["error"]
        assert (error["param"], error["event_id"]) == ("session.tracing", "t")


@pytest.mark.asyncio
async def test_frames_that_crashed_the_old_handler_are_answered(server: RealtimeServer) -> None:
    ws = await _open(server, "ga")
    async with ws:
        await ws.send("[" * 100_000 + "]" * 100_000)  # nested 100k deep
        assert (await _next(ws, "error"))["error"]["code"] == "invalid_json"
        await ws.send(json.dumps(_ga(tools="abc")))
        await _next(ws, "error")
        await ws.send(json.dumps({"type": "response.create"}))  # the refused tools did not stick
        assert (await _next(ws, "response.done"))["response"]["status"] == "completed"
        await ws.send(b"\x00binary")
        assert (await _next(ws, "error"))["error"]["code"] == "invalid_json"


@pytest.mark.asyncio
async def test_item_order_honours_previous_item_id_and_root(server: RealtimeServer) -> None:
    ws = await _open(server, "ga")
    async with ws:
        for name, previous in (("a", None), ("b", None), ("first", "root"), ("middle", "a")):
            event = _user({"type": "input_text", "text": name}, id=name)
            if previous is not None:
                event["previous_item_id"] = previous
            await ws.send(json.dumps(event))
            added = await _next(ws, "conversation.item.added")
            assert added["item"]["id"] == name
            expected_previous = {"a": None, "b": "a", "first": None, "middle": "a"}[name]
            assert added["previous_item_id"] == expected_previous
        await ws.send(json.dumps({"type": "response.create"}))  # the model answers the last item: "b"
        done = await _next(ws, "response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: b"
