"""Every event the local server emits, in full conversations of both dialects, checked against the
official ``openai`` SDK's server event types (strictly: right JSON types, no unknown fields).

Conversations: text, audio with server VAD and transcription, a function call round trip, cancel and
truncate, G.711 output, rejected events, item order (``previous_item_id``, ``"root"``), a hosted MCP
tool with approval (GA only: beta has no MCP), and a transcription session.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import typing
from typing import Any

import pytest
from openai.types.beta.realtime import realtime_server_event as beta_events
from openai.types.realtime import realtime_server_event as ga_events
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect

from pyodide_realtime.dialects import get_dialect
from pyodide_realtime_server import RealtimeServer

EVENT_TIMEOUT_S = 30.0  # only a guard against a hang: each wait ends on an event
PCM16_RATE = 24000
# Fields the real API sends in a session that the SDK's session types do not declare.
UNDECLARED_SESSION_FIELDS = {"id", "object", "expires_at"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def _types(union: Any) -> dict[str, type[BaseModel]]:
    table: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(typing.get_args(union)[0]):
        table[typing.get_args(member.model_fields["type"].annotation)[0]] = member
    return table


SERVER_EVENTS = {"ga": _types(ga_events.RealtimeServerEvent), "beta": _types(beta_events.RealtimeServerEvent)}


def _extras(value: Any, path: str) -> list[str]:
    """Fields the SDK's models do not declare, anywhere in ``value``."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in value.model_extra or {}:
            if not (path.endswith("session") and name in UNDECLARED_SESSION_FIELDS):
                found.append(f"{path}.{name}")
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _extras(item, f"{path}[{index}]")
    return found


def conformance_failures(dialect: str, events: list[dict[str, Any]]) -> list[str]:
    failures: list[str] = []
    for event in events:
        model = SERVER_EVENTS[dialect].get(event["type"])
        if model is None:
            failures.append(f"{event['type']}: not a {dialect} server event")
            continue
        try:
            parsed = model.model_validate(event, strict=True)
        except ValidationError as exc:
            failures.append(f"{event['type']}: {exc.errors(include_url=False)}")
            continue
        failures += [f"{event['type']}: undeclared {extra}" for extra in _extras(parsed, "")]
    return failures


class Recorder:
    """A client that keeps every server event it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            event = json.loads(await asyncio.wait_for(self.ws.recv(), EVENT_TIMEOUT_S))
            self.events.append(event)
            if event["type"] == kind:
                return event

    async def speak(self, loud_ms: int, quiet_ms: int, rng: random.Random) -> None:
        for loud, ms in ((True, loud_ms), (False, quiet_ms)):
            for _ in range(ms // 100):
                samples = [rng.randint(-20000, 20000) if loud else 0 for _ in range(PCM16_RATE // 10)]
                audio = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
                await self.send("input_audio_buffer.append", audio=base64.b64encode(audio).decode())


async def _open(server: RealtimeServer, dialect: str) -> Recorder:
    protocols = ["realtime", f"openai-insecure-api-key.{server.mint_key()}"]
    if dialect == "beta":
        protocols.append("openai-beta.realtime-v1")
    recorder = Recorder(await connect(server.ws_url, subprotocols=protocols))
    await recorder.expect("session.created")
    return recorder


def _session(dialect: str, **ga: Any) -> dict[str, Any]:
    """A session.update body in the dialect's shape, from GA-named settings."""
    if dialect == "ga":
        return {"type": "realtime", **ga}
    flat: dict[str, Any] = {}
    for key, value in ga.items():
        if key == "audio":
            flat.update({"output_audio_format": "g711_ulaw"} if value.get("output", {}).get("format") else {})
            if "transcription" in value.get("input", {}):
                flat["input_audio_transcription"] = value["input"]["transcription"]
        elif key == "output_modalities":
            flat["modalities"] = ["text"] if value == ["text"] else ["audio", "text"]
        else:
            flat[key] = value
    return flat


async def _conversation(server: RealtimeServer, dialect: str) -> list[dict[str, Any]]:
    rng = random.Random(5)
    client = await _open(server, dialect)
    async with client.ws:
        # Text, with a tool the model calls, then the call's output read back.
        await client.send("session.update", session=_session(dialect, tools=[WEATHER_TOOL], output_modalities=["text"]))
        await client.expect("session.updated")
        message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]}
        await client.send("conversation.item.create", item=message)
        await client.send("response.create")
        done = await client.expect("response.done")
        call = done["response"]["output"][0]
        assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"location": "Paris"}
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}
        await client.send("conversation.item.create", item=output)
        await client.send("response.create")
        await client.expect("response.done")
        # Item order: first of all ("root"), then after a given item.
        first = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}
        await client.send("conversation.item.create", previous_item_id="root", item=first)
        created = await client.expect(get_dialect(dialect).wire.item_created)
        assert created["previous_item_id"] is None
        await client.send("conversation.item.retrieve", item_id=created["item"]["id"])
        await client.expect("conversation.item.retrieved")
        await client.send("conversation.item.delete", item_id=created["item"]["id"])
        await client.expect("conversation.item.deleted")
        # Audio with VAD and transcription, in G.711; then cancel and truncate a spoken reply.
        await client.send(
            "session.update",
            session=_session(
                dialect,
                output_modalities=["audio"],
                tools=[],
                audio={"input": {"transcription": {"model": "whisper-1"}}, "output": {"format": {"type": "audio/pcmu"}}},
            ),
        )
        await client.expect("session.updated")
        await client.speak(400, 800, rng)
        await client.expect("input_audio_buffer.speech_stopped")
        await client.expect("response.done")
        while not any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in client.events):
            await client.expect("conversation.item.input_audio_transcription.completed")
        await client.send("conversation.item.create", item={**message, "content": [{"type": "input_text", "text": "talk"}]})
        await client.send("response.create")
        delta = await client.expect(get_dialect(dialect).wire.audio_delta)
        await client.send("response.cancel")
        await client.expect("response.done")
        await client.send("conversation.item.truncate", item_id=delta["item_id"], content_index=0, audio_end_ms=10)
        await client.expect("conversation.item.truncated")
        # Manual commit and clear.
        await client.send("input_audio_buffer.append", audio=base64.b64encode(bytes(1600)).decode())
        await client.send("input_audio_buffer.clear")
        await client.expect("input_audio_buffer.cleared")
        # Errors, each answered with an error event.
        await client.send("session.update", event_id="bad1", session={"bogus": 1})
        error = await client.expect("error")
        assert error["error"]["event_id"] == "bad1"
        await client.send("input_audio_buffer.commit", event_id="bad2")
        await client.expect("error")
    return client.events


async def _mcp_conversation(server: RealtimeServer) -> list[dict[str, Any]]:
    client = await _open(server, "ga")
    async with client.ws:
        mcp = {"type": "mcp", "server_label": "dice", "server_url": "https://example.test/mcp", "require_approval": "always"}
        await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"], "tools": [mcp]})
        listed = await client.expect("mcp_list_tools.completed")
        await client.send(
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "roll dice with 20 sides"}]},
        )
        await client.send("response.create")
        done = await client.expect("response.done")
        request = done["response"]["output"][0]
        assert request["type"] == "mcp_approval_request" and request["name"] == "roll_dice"
        # The SDK type requires the client to name the answer item (id).
        answer = {"type": "mcp_approval_response", "id": "approval_1", "approval_request_id": request["id"], "approve": True}
        await client.send("conversation.item.create", item=answer)
        await client.send("response.create")
        done = await client.expect("response.done")
        called = done["response"]["output"][0]
        assert called["type"] == "mcp_call", called
        assert (called["output"], called["approval_request_id"]) == ("4", request["id"])
        # The same response goes on: the model reads the tool's answer.
        assert done["response"]["output"][1]["content"][0]["text"] == "The roll_dice tool says: 4"
        said = [e for e in client.events if e["type"] == "response.output_text.delta" and e["response_id"] == done["response"]["id"]]
        assert {e["output_index"] for e in said} == {1}
        assert listed["item_id"] in [e["item"]["id"] for e in client.events if e["type"] == "conversation.item.added"]
    return client.events


async def _transcription_session(server: RealtimeServer) -> list[dict[str, Any]]:
    rng = random.Random(9)
    client = await _open(server, "ga")
    async with client.ws:
        session = {"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
        await client.send("session.update", session=session)
        updated = await client.expect("session.updated")
        assert updated["session"]["type"] == "transcription"
        await client.speak(400, 800, rng)
        await client.expect("conversation.item.input_audio_transcription.completed")
        await client.send("response.create", event_id="no")
        assert (await client.expect("error"))["error"]["event_id"] == "no"
        assert not any(e["type"].startswith("response.") for e in client.events)
    return client.events


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_every_event_of_a_full_conversation_conforms_to_the_sdk_types(dialect: str) -> None:
    async with RealtimeServer(pace=0, speech="tones") as server:
        events = await _conversation(server, dialect)
        if dialect == "ga":
            events += await _mcp_conversation(server)
            events += await _transcription_session(server)
    kinds = {event["type"] for event in events}
    assert len(events) > 80 and len(kinds) > 25, sorted(kinds)
    assert conformance_failures(dialect, events) == []


def test_the_check_catches_what_the_issue_found() -> None:
    # The defects the issue lists, as the old server sent them: each must fail the check.
    part = {"type": "output_audio", "transcript": ""}
    added = {"type": "response.content_part.added", "event_id": "e", "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0, "part": part}
    completed = {"type": "conversation.item.input_audio_transcription.completed", "event_id": "e", "item_id": "i", "content_index": 0, "transcript": "x"}
    echoed = {"type": "session.updated", "event_id": "e", "session": {"type": "realtime", "instructions": 42}}
    for event in (added, completed, echoed):
        assert conformance_failures("ga", [event]), event
    assert conformance_failures("ga", [{**added, "part": {"type": "audio", "transcript": "", "extra": 1}}])


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_every_event_the_transport_sends_passes_the_schema(dialect: str) -> None:
    # The server checks each client event against the SDK's types: a conversation through our own
    # transport (session, text, a tool call and its output, audio, an interruption) must leave no error.
    from pyodide_realtime import OpenAIRealtimeWebSocket

    session = {"instructions": "Be brief.", "tools": [WEATHER_TOOL], "turn_detection": None}
    async with RealtimeServer(pace=4, speech="tones") as server:
        transport = OpenAIRealtimeWebSocket(dialect=dialect)
        await transport.connect(api_key=server.mint_key(), url=server.ws_url, initial_session_config=session)
        try:
            calls: list[Any] = []
            transport.on("function_call", calls.append)
            transport.send_message("What's the weather in Paris?")
            async with asyncio.timeout(EVENT_TIMEOUT_S):
                while not calls:
                    await asyncio.sleep(0.01)
            audio_seen = asyncio.Event()
            transport.on("audio", lambda _: audio_seen.set())
            transport.send_function_call_output(calls[0], "Sunny")
            await asyncio.wait_for(audio_seen.wait(), EVENT_TIMEOUT_S)
            transport.interrupt()
            transport.send_audio(bytes(4800), commit=True)
            transport.update_session_config({"instructions": "Be briefer."})
            record = server.state.connections[0]
            async with asyncio.timeout(EVENT_TIMEOUT_S):  # until the server has handled the last event
                while not any((event.get("session") or {}).get("instructions") == "Be briefer." for event in record.received):
                    await asyncio.sleep(0.01)
        finally:
            transport.close()
        kinds = set(record.received_types)
        assert {"session.update", "conversation.item.create", "response.create", "input_audio_buffer.append"} <= kinds, kinds
        assert list(record.errors) == []
