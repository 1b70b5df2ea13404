"""Mutated client events of every type, in both dialects, against a real server over loopback.

The API keeps a connection open whatever JSON event it gets (it answers with an ``error`` event),
so every close here is a defect, and so is a ``server_error`` (a handler's own failure). The suite
runs ``PYRT_SERVER_FUZZ_EVENTS`` events (default 3,000); a campaign is the same test with more
(``PYRT_SERVER_FUZZ_EVENTS=50000``). The seed is fresh each run and printed on failure;
``PYRT_SERVER_FUZZ_SEED`` replays one.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import random
import secrets
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pyodide_realtime_server import RealtimeServer
from pyodide_realtime_server._schema import client_event_types

FUZZ_EVENTS = int(os.environ.get("PYRT_SERVER_FUZZ_EVENTS", "3000"))
EVENTS_PER_CONNECTION = 250
CONCURRENT_CONNECTIONS = 4
SETTLE_TIMEOUT_S = 60.0
SENTINEL = "fuzz-sentinel"

_AUDIO = base64.b64encode(bytes(range(256)) * 10).decode()
_FUNCTION = {"type": "function", "name": "get_weather", "description": "w", "parameters": {"type": "object", "properties": {}}}
_MESSAGE = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello weather"}]}
SEEDS: dict[str, list[dict[str, Any]]] = {
    "ga": [
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "be brief",
                "output_modalities": ["audio"],
                "tools": [_FUNCTION],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-transcribe"},
                        "turn_detection": {"type": "server_vad", "threshold": 0.5, "idle_timeout_ms": 5000},
                        "noise_reduction": {"type": "near_field"},
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
                },
            },
        },
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}}},
        {"type": "input_audio_buffer.append", "audio": _AUDIO},
        {"type": "input_audio_buffer.commit"},
        {"type": "input_audio_buffer.clear"},
        {"type": "conversation.item.create", "previous_item_id": "root", "item": _MESSAGE},
        {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"}},
        {"type": "conversation.item.retrieve", "item_id": "item_1"},
        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 10},
        {"type": "conversation.item.delete", "item_id": "item_1"},
        {"type": "response.create", "response": {"output_modalities": ["text"], "instructions": "x", "tools": [_FUNCTION]}},
        {"type": "response.create", "response": {"conversation": "none", "input": [_MESSAGE], "metadata": {"k": "v"}}},
        {"type": "response.cancel"},
        {"type": "output_audio_buffer.clear"},
    ],
    "beta": [
        {
            "type": "session.update",
            "session": {
                "modalities": ["audio", "text"],
                "voice": "verse",
                "input_audio_format": "g711_alaw",
                "input_audio_transcription": {"model": "whisper-1"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
                "tools": [_FUNCTION],
                "temperature": 0.8,
            },
        },
        {"type": "input_audio_buffer.append", "audio": _AUDIO},
        {"type": "input_audio_buffer.commit"},
        {"type": "conversation.item.create", "item": _MESSAGE},
        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 0},
        {"type": "response.create", "response": {"modalities": ["text"], "voice": "ash", "max_response_output_tokens": 50}},
        {"type": "response.cancel", "response_id": "resp_1"},
    ],
}
_ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 10**30, 1e308, "", "é", "\u0000", "\ud800", "ü" * 300, "x" * 5000,
    "AAé=", "====", [], {}, [None], {"type": None}, {"type": {}}, {"": ""}, [[[[[[[[[[[]]]]]]]]]]],
    {"type": "audio/pcm"}, {"type": "server_vad"}, {"type": "function"}, "inf", "root", "item_1",
]  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _odd(rnd: random.Random, types: list[str]) -> Any:
    roll = rnd.random()
    if roll < 0.1:
        return rnd.choice(types)
    if roll < 0.2:
        value: Any = copy.deepcopy(rnd.choice(_ODD_VALUES))  # a shared one, mutated later, grew run after run
        for _ in range(rnd.randrange(1, 40)):
            value = rnd.choice(([value], {"k": value}, {"type": value}))
        return value
    return copy.deepcopy(rnd.choice(_ODD_VALUES))


def mutate(rnd: random.Random, event: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """``event`` with one to four changes at random places: a value replaced, a key dropped or added."""
    event = copy.deepcopy(event)
    for _ in range(rnd.randrange(1, 5)):
        path = rnd.choice(_paths(event))
        if not path:
            event[rnd.choice(["extra", "type", "event_id", "session", "item", "response"])] = _odd(rnd, types)
            continue
        parent: Any = event
        for step in path[:-1]:
            parent = parent[step]
        roll = rnd.random()
        if roll < 0.6:
            parent[path[-1]] = _odd(rnd, types)
        elif roll < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rnd.choice(["unknown", "type", "id", "format", "voice", "model"])] = _odd(rnd, types)
    return event


def _events(rnd: random.Random, dialect: str, count: int) -> list[dict[str, Any]]:
    types = sorted(client_event_types(dialect))  # type: ignore[arg-type]
    seeds = SEEDS[dialect]
    out = []
    for n in range(count):
        event = copy.deepcopy(rnd.choice(seeds))
        if rnd.random() < 0.85:
            event = mutate(rnd, event, types)
        if isinstance(event, dict) and rnd.random() < 0.5:
            event["event_id"] = f"e{n}"
        out.append(event)
    return out


async def _connection(srv: RealtimeServer, rnd: random.Random, findings: Counter[str], examples: list[str]) -> None:
    dialect = rnd.choice(["ga", "beta"])
    extra = ["openai-beta.realtime-v1"] if dialect == "beta" else []
    events = _events(rnd, dialect, EVENTS_PER_CONNECTION)
    ws: ClientConnection
    async with connect(
        srv.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{srv.mint_key()}", *extra], max_size=None
    ) as ws:
        async def read() -> None:
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "error":
                    if event["error"]["type"] == "server_error":
                        findings["server_error"] += 1
                        examples.append(json.dumps(event)[:300])
                    if event["error"].get("event_id") == SENTINEL:
                        return

        reader = asyncio.ensure_future(read())
        try:
            for event in events:
                await ws.send(json.dumps(event))
                findings["sent"] += 1
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "event_id": SENTINEL, "item_id": "no_such_item"}))
            await asyncio.wait_for(reader, SETTLE_TIMEOUT_S)
        except ConnectionClosed as closed:
            findings[f"close {closed.rcvd.code if closed.rcvd else None}"] += 1
            examples.append(f"closed after {findings['sent']} events: {closed}")
        finally:
            reader.cancel()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            findings["close"] += 1
            examples.append(repr(reader.exception()))


@pytest.mark.asyncio
async def test_mutated_client_events_never_close_the_connection_nor_crash_a_handler() -> None:
    seed = int(os.environ.get("PYRT_SERVER_FUZZ_SEED") or secrets.randbits(32))
    rnd = random.Random(seed)
    findings: Counter[str] = Counter()
    examples: list[str] = []
    async with RealtimeServer(pace=0, speech="tones") as srv:
        connections = [random.Random(rnd.randrange(2**32)) for _ in range(max(1, FUZZ_EVENTS // EVENTS_PER_CONNECTION))]
        for start in range(0, len(connections), CONCURRENT_CONNECTIONS):
            batch = connections[start : start + CONCURRENT_CONNECTIONS]
            await asyncio.gather(*(_connection(srv, r, findings, examples) for r in batch))
    print(f"server fuzz: seed {seed}, {findings['sent']} events over {len(connections)} connections: {dict(findings)}")
    assert findings["sent"] >= FUZZ_EVENTS - EVENTS_PER_CONNECTION
    bad = {kind: count for kind, count in findings.items() if kind != "sent"}
    assert not bad, f"seed {seed} (PYRT_SERVER_FUZZ_SEED={seed} replays it): {bad}; first: {examples[:5]}"
