"""What the local server cannot produce yet, on ``pyodide_realtime.testing``'s scripted transport.

The real transport, over an in-memory socket: a test delivers the server events it wants
(``transport.emit``) or scripts them as answers to the client's events (``RealtimeStep``), with no
server and no clock. Covered here: items inserted in the middle of the history, hosted MCP items and
approvals, transcription deltas of the user's speech, tool calls of one response running
concurrently, a reply cut at 0 ms, and the voice state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from scripted_session import scripted_session, sent_items, until

from pyodide_realtime import (
    AssistantMessageItem,
    RealtimeAgent,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeMCPListToolsItem,
    RealtimeSession,
    RealtimeToolCallItem,
    UserMessageItem,
    function_tool,
)
from pyodide_realtime.testing import RealtimeStep, ScriptedPlayer, ScriptedRealtimeTransport, function_calls, spoken_reply


@pytest_asyncio.fixture
async def session() -> AsyncIterator[RealtimeSession]:
    mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse", "require_approval": "always"}
    # The tests deliver every server event themselves: the client's items are not echoed.
    running, _ = await scripted_session(
        RealtimeAgent(name="Assistant", tools=[mcp]), transport=ScriptedRealtimeTransport(echo_items=False)
    )
    yield running
    running.close()


def play(session: RealtimeSession, *events: dict[str, Any]) -> None:
    """The server sends ``events``."""
    session.transport.emit(*events)


def message(item_id: str, role: str, text: str) -> dict[str, Any]:
    kind = "input_text" if role == "user" else "output_text"
    return {"id": item_id, "type": "message", "role": role, "status": "completed", "content": [{"type": kind, "text": text}]}


def sent(session: RealtimeSession, kind: str) -> list[dict[str, Any]]:
    return [event for event in session.transport.sent if event.get("type") == kind]


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
async def test_tool_calls_of_one_response_run_concurrently_and_one_response_follows() -> None:
    # Each tool waits until both have started: run one after the other, they would wait forever.
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def gated(name: str, other: str) -> Any:
        async def tool(x: int) -> str:
            started[name].set()
            await started[other].wait()
            return name.upper()

        return function_tool(tool, name_override=f"slow_{name}")

    calls = function_calls([("slow_a", {"x": 1}, "call_0"), ("slow_b", {"x": 1}, "call_1")])
    session, transport = await scripted_session(
        RealtimeAgent(name="Assistant", tools=[gated("a", "b"), gated("b", "a")]),
        RealtimeStep("response.create", emit=calls),
        RealtimeStep("response.create", emit=spoken_reply("A and B.")),
    )
    session.send_message("both")
    await until(session, lambda e: e.type == "history_updated" and getattr(e.item, "text", "") == "A and B.")
    outputs = sent_items(transport, "function_call_output")
    assert sorted((o["call_id"], o["output"]) for o in outputs) == [("call_0", "A"), ("call_1", "B")]
    # One response.create, after both outputs.
    order = [t for t in transport.sent_types() if t in ("conversation.item.create", "response.create")]
    assert order == ["conversation.item.create", "response.create", "conversation.item.create", "conversation.item.create", "response.create"]
    calls_in_history = [item for item in session.history if isinstance(item, RealtimeToolCallItem)]
    assert sorted((c.name, c.output) for c in calls_in_history) == [("slow_a", "A"), ("slow_b", "B")]
    session.close()


@pytest.mark.asyncio
async def test_a_reply_cut_at_zero_ms_keeps_no_text() -> None:
    # The player says nothing of the reply was heard; the whole transcript received stays unheard.
    reply = spoken_reply("You said: Say something long please", response_id="r1", item_id="m1")
    open_part = reply[: next(i for i, e in enumerate(reply) if e["type"] == "response.output_audio.done")]
    truncated = {"type": "conversation.item.truncated", "item_id": "m1", "content_index": 0, "audio_end_ms": 0}
    cancelled = {"type": "response.done", "response": {"id": "r1", "status": "cancelled", "output": []}}
    session, transport = await scripted_session(
        RealtimeAgent(name="Assistant"),
        RealtimeStep("response.create", emit=open_part),
        RealtimeStep("response.cancel", emit=[cancelled]),
        RealtimeStep({"type": "conversation.item.truncate", "item_id": "m1", "audio_end_ms": 0}, emit=[truncated]),
    )
    player = ScriptedPlayer()
    player.heard["m1"] = 0.0
    transport.attach_audio_output(player)
    session.send_message("Say something long please")
    await until(session, lambda e: e.type == "history_updated" and getattr(e.item, "text", "").endswith("please"))
    session.interrupt()
    interrupted = await until(session, lambda e: e.type == "audio_interrupted")
    assert interrupted.heard_ms == 0
    await until(session, lambda e: e.type == "agent_end")
    await transport.idle()
    item = session.history[-1]
    assert isinstance(item, AssistantMessageItem)
    assert (item.text, item.heard_ms, item.unheard_text) == ("", 0, "You said: Say something long please")
    assert transport.remaining_steps == 0 and player.stops == 1
    session.close()


@pytest.mark.asyncio
async def test_hosted_mcp_items_and_an_approval_round_trip(session: RealtimeSession) -> None:
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

    answers = [f["item"] for f in sent(session, "conversation.item.create") if f["item"]["type"] == "mcp_approval_response"]
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
    answers = [f["item"] for f in sent(session, "conversation.item.create") if f["item"]["type"] == "mcp_approval_response"]
    assert {k: v for k, v in answers[-1].items() if k != "id"} == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_2",
        "approve": False,
        "reason": "not now",
    }
    assert session.history[-1].approved is False  # type: ignore[union-attr]
    # The agent's hosted tool went to the server as it was given.
    first_update = sent(session, "session.update")[0]["session"]
    assert {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example/sse",
        "require_approval": "always",
    } in first_update["tools"]


@pytest.mark.asyncio
async def test_voice_state_and_the_last_turns_latency_without_a_player() -> None:
    session, transport = await scripted_session(
        RealtimeAgent(name="Assistant"), RealtimeStep("response.create", emit=spoken_reply("Hello there."))
    )
    assert (session.voice_state, session.last_turn_latency_ms, session.input_level) == ("listening", None, 0.0)
    states: list[str] = []
    session.on("audio", lambda _audio: states.append(session.voice_state))
    session.send_message("Hello there")
    assert session.voice_state == "thinking"
    await until(session, lambda e: e.type == "agent_end")
    assert states == ["speaking"]
    # Measured from the message to the first audio received (no player); its speed is a benchmark's matter.
    assert session.last_turn_latency_ms is not None and session.last_turn_latency_ms >= 0
    assert session.voice_state == "listening"
    session.close()
    assert session.voice_state == "off"
