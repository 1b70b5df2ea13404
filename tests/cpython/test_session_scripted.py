"""What the local server cannot produce yet, against a scripted peer: ``tests/scripted_server.py``'s ``/echo``.

The echo server sends back every frame the client sends (a ``test.say`` frame's ``event`` unwrapped),
so a test scripts the server's side by sending the server events it wants through ``transport.send_event`` (a real loopback WebSocket both
ways). Covered here: items inserted in the middle of the history, hosted MCP items and approvals,
transcription deltas of the user's speech, and tool calls of one response running concurrently.
The session's own client events come back too and are ignored, as a client ignores unknown types.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pyodide_realtime import (
    AssistantMessageItem,
    OpenAIRealtimeWebSocket,
    RealtimeAgent,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeMCPListToolsItem,
    RealtimeSession,
    RealtimeToolCallItem,
    UserMessageItem,
    function_tool,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripted_server import ScriptedServer  # noqa: E402

EVENT_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def peer() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def session(peer: ScriptedServer) -> AsyncIterator[RealtimeSession]:
    peer.reset()
    mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse", "require_approval": "always"}
    agent = RealtimeAgent(name="Assistant", tools=[slow_a, slow_b, mcp])
    running = RealtimeSession(agent, transport=OpenAIRealtimeWebSocket(url=peer.url + "/echo"))
    await running.connect(api_key="sk-test-scripted")
    yield running
    running.close()


starts: list[tuple[str, float]] = []


@function_tool
async def slow_a(x: int) -> str:
    starts.append(("a", asyncio.get_running_loop().time()))
    await asyncio.sleep(0.2)
    return "A"


@function_tool
async def slow_b(x: int) -> str:
    starts.append(("b", asyncio.get_running_loop().time()))
    await asyncio.sleep(0.2)
    return "B"


def play(session: RealtimeSession, *events: dict[str, Any]) -> None:
    """The server 'sends' ``events``: the echo peer unwraps each ``test.say`` and sends it back."""
    for event in events:
        session.transport.send_event({"type": "test.say", "event": event})


async def until(session: RealtimeSession, predicate: Callable[[Any], bool]) -> Any:
    async def scan() -> Any:
        async for event in session:
            if predicate(event):
                return event
        raise AssertionError("the session ended first")

    return await asyncio.wait_for(scan(), EVENT_TIMEOUT_S)


def message(item_id: str, role: str, text: str) -> dict[str, Any]:
    kind = "input_text" if role == "user" else "output_text"
    return {"id": item_id, "type": "message", "role": role, "status": "completed", "content": [{"type": kind, "text": text}]}


def sent(peer: ScriptedServer, kind: str) -> list[dict[str, Any]]:
    frames = [json.loads(text) for text in peer.received]
    return [frame for frame in frames if frame.get("type") == kind]


@pytest.mark.asyncio
async def test_history_follows_the_servers_order_with_an_item_inserted_in_the_middle(session: RealtimeSession) -> None:
    play(
        session,
        {"type": "conversation.item.added", "previous_item_id": None, "item": message("a", "user", "first")},
        {"type": "conversation.item.added", "previous_item_id": "a", "item": message("b", "assistant", "second")},
        {"type": "conversation.item.added", "previous_item_id": "b", "item": message("c", "user", "third")},
        # Inserted between a and b (an app added context, say), then the last one deleted.
        {"type": "conversation.item.added", "previous_item_id": "a", "item": message("x", "user", "inserted")},
        {"type": "conversation.item.deleted", "item_id": "c"},
        {"type": "conversation.item.added", "previous_item_id": "b", "item": message("d", "assistant", "fourth")},
    )
    await until(session, lambda e: e.type == "history_added" and e.item.item_id == "d")
    history = session.history
    assert [(item.item_id, item.text) for item in history] == [
        ("a", "first"),
        ("x", "inserted"),
        ("b", "second"),
        ("d", "fourth"),
    ]
    assert [item.previous_item_id for item in history] == [None, "a", "x", "b"]
    assert isinstance(history[2], AssistantMessageItem) and isinstance(history[1], UserMessageItem)


@pytest.mark.asyncio
async def test_the_users_speech_shows_its_transcription_deltas_as_they_come(session: RealtimeSession) -> None:
    item = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    play(session, {"type": "conversation.item.added", "previous_item_id": None, "item": item})
    seen: list[tuple[str, bool]] = []
    session.on("history_updated", lambda e: seen.append((e.history[0].text, e.history[0].transcribing)) if e.history else None)
    for delta in ("What is ", "the weather ", "in Paris?"):
        play(
            session,
            {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u1", "content_index": 0, "delta": delta},
        )
    play(
        session,
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1",
            "content_index": 0,
            "transcript": "What is the weather in Paris?",
        },
    )
    await until(session, lambda e: e.type == "history_updated" and not e.history[0].transcribing and e.history[0].text)
    assert seen[-4:] == [
        ("What is ", True),
        ("What is the weather ", True),
        ("What is the weather in Paris?", True),
        ("What is the weather in Paris?", False),
    ]
    user = session.history[0]
    assert isinstance(user, UserMessageItem) and user.audio

    # A failed transcription ends the 'transcribing' state and says so, as an error of the server's.
    play(session, {"type": "conversation.item.added", "previous_item_id": "u1", "item": {**item, "id": "u2"}})
    play(
        session, {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u2", "content_index": 0, "delta": "Wh"}
    )
    failure = {"type": "conversation.item.input_audio_transcription.failed", "item_id": "u2", "content_index": 0}
    play(session, {**failure, "error": {"type": "transcription_error", "message": "audio unreadable"}})
    error = await until(session, lambda e: e.type == "error")
    assert (error.origin, error.item_id) == ("server", "u2") and "audio unreadable" in error.message
    assert session.history[1].transcribing is False  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_tool_calls_of_one_response_run_concurrently_and_one_response_follows(
    session: RealtimeSession, peer: ScriptedServer
) -> None:
    starts.clear()
    calls = [
        {
            "id": f"fc_{n}",
            "type": "function_call",
            "status": "completed",
            "call_id": f"call_{n}",
            "name": name,
            "arguments": '{"x": 1}',
        }
        for n, name in enumerate(["slow_a", "slow_b"])
    ]
    play(session, {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}})
    for call in calls:
        play(session, {"type": "response.output_item.done", "response_id": "r1", "output_index": 0, "item": call})
    play(session, {"type": "response.done", "response": {"id": "r1", "status": "completed", "output": calls}})
    await until(session, lambda e: e.type == "tool_end" and e.call_id == "call_0")
    await until(session, lambda e: e.type == "tool_end" and e.call_id == "call_1")
    assert sorted(name for name, _ in starts) == ["a", "b"] and abs(starts[0][1] - starts[1][1]) < 0.15  # overlapped

    def frames() -> list[str]:
        return [json.loads(text)["type"] for text in peer.received if "session.update" not in text]

    deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT_S
    while frames().count("response.create") < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    outputs = [f["item"] for f in sent(peer, "conversation.item.create") if f["item"]["type"] == "function_call_output"]
    assert sorted((o["call_id"], o["output"]) for o in outputs) == [("call_0", "A"), ("call_1", "B")]
    # One response.create, after both outputs.
    order = [t for t in frames() if t in ("conversation.item.create", "response.create")]
    assert order == ["conversation.item.create", "conversation.item.create", "response.create"]
    calls_in_history = [item for item in session.history if isinstance(item, RealtimeToolCallItem)]
    assert sorted((c.name, c.output) for c in calls_in_history) == [("slow_a", "A"), ("slow_b", "B")]


@pytest.mark.asyncio
async def test_hosted_mcp_items_and_an_approval_round_trip(session: RealtimeSession, peer: ScriptedServer) -> None:
    tools = [{"name": "search_docs", "description": "Search the docs.", "input_schema": {"type": "object"}}]
    listed = {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "docs", "tools": tools}
    play(session, {"type": "conversation.item.added", "previous_item_id": None, "item": listed})
    changed = await until(session, lambda e: e.type == "mcp_tools_changed")
    assert changed.server_label == "docs" and changed.tools[0]["name"] == "search_docs"

    request = {
        "id": "mcpr_1",
        "type": "mcp_approval_request",
        "server_label": "docs",
        "name": "search_docs",
        "arguments": '{"q": "vad"}',
    }
    play(session, {"type": "conversation.item.added", "previous_item_id": "mcpl_1", "item": request})
    asked = await until(session, lambda e: e.type == "tool_approval_required")
    assert (asked.kind, asked.call_id, asked.name, asked.server_label) == ("mcp", "mcpr_1", "search_docs", "docs")
    assert session.pending_approvals == ("mcpr_1",)
    session.approve_tool_call("mcpr_1")
    answer = {"id": "mcpa_1", "type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True}
    call = {
        "id": "mcp_1",
        "type": "mcp_call",
        "server_label": "docs",
        "name": "search_docs",
        "arguments": '{"q": "vad"}',
        "approval_request_id": "mcpr_1",
        "status": "in_progress",
    }
    play(
        session,
        {"type": "conversation.item.added", "previous_item_id": "mcpr_1", "item": answer},
        {"type": "conversation.item.added", "previous_item_id": "mcpa_1", "item": call},
        {
            "type": "response.output_item.done",
            "response_id": "r2",
            "output_index": 0,
            "item": {**call, "status": "completed", "output": "VAD finds speech."},
        },
    )
    await until(session, lambda e: e.type == "history_updated" and getattr(e.item, "output", None) == "VAD finds speech.")

    answers = [f["item"] for f in sent(peer, "conversation.item.create") if f["item"]["type"] == "mcp_approval_response"]
    assert [{k: v for k, v in a.items() if k != "id"} for a in answers] == [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True}
    ]
    kinds = [type(item) for item in session.history]
    assert kinds == [RealtimeMCPListToolsItem, RealtimeMCPApprovalRequestItem, RealtimeMCPCallItem]
    approval, mcp_call = session.history[1], session.history[2]
    assert isinstance(approval, RealtimeMCPApprovalRequestItem) and approval.approved is True
    assert isinstance(mcp_call, RealtimeMCPCallItem) and mcp_call.status == "completed" and mcp_call.previous_item_id == "mcpr_1"

    # A rejection with a reason; a failed MCP call is an error event of origin "mcp".
    play(session, {"type": "conversation.item.added", "previous_item_id": "mcp_1", "item": {**request, "id": "mcpr_2"}})
    await until(session, lambda e: e.type == "tool_approval_required")
    session.reject_tool_call("mcpr_2", rejection_message="not now")
    play(session, {"type": "response.mcp_call.failed", "item_id": "mcp_9", "output_index": 0})
    error = await until(session, lambda e: e.type == "error")
    assert error.origin == "mcp" and "check the MCP server" in error.message
    answers = [f["item"] for f in sent(peer, "conversation.item.create") if f["item"]["type"] == "mcp_approval_response"]
    assert {k: v for k, v in answers[-1].items() if k != "id"} == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_2",
        "approve": False,
        "reason": "not now",
    }
    assert session.history[-1].approved is False  # type: ignore[union-attr]
    # The agent's hosted tool went to the server as it was given.
    first_update = sent(peer, "session.update")[0]["session"]
    assert {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example/sse",
        "require_approval": "always",
    } in first_update["tools"]
