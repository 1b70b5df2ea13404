"""Continuity: ``reset_history`` takes the session's own history items, planned per dialect and checked
against the official SDK's client event types, then restored into a fresh session of the local server."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from openai.types.beta.realtime.realtime_client_event import RealtimeClientEvent as BetaClientEvent
from openai.types.realtime.realtime_client_event import RealtimeClientEvent as GAClientEvent
from pydantic import TypeAdapter

from pyodide_realtime import (
    AssistantMessageItem,
    ConfigurationError,
    OpenAIRealtimeWebSocket,
    RealtimeMCPCallItem,
    RealtimeToolCallItem,
    SystemMessageItem,
    UserMessageItem,
)
from pyodide_realtime._client_events import validate_client_event
from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime._history import History
from pyodide_realtime._history_edits import MAX_ITEM_ID_CHARS, plan_reset_history
from pyodide_realtime.dialects import DIALECTS
from pyodide_realtime_server import RealtimeServer

SDK = {"ga": TypeAdapter(GAClientEvent), "beta": TypeAdapter(BetaClientEvent)}
PLACED = frozenset({"item", "previous_item_id"})
EVENT_TIMEOUT_S = 10.0
#: What each dialect calls the event of an item added to the conversation.
ITEM_CREATED = frozenset(d.wire.item_created for d in DIALECTS)


def conversation() -> History:
    """A history as a session kept it: typed text, a spoken turn (transcribed), a tool call answered, and a
    spoken reply the user cut after 1 s of 3 s."""
    history = History()

    def added(item: dict[str, Any], previous: str | None) -> None:
        history.receive("conversation.item.added", {"item": item, "previous_item_id": previous}, PLACED)

    added({"id": "item_u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi there"}]}, None)
    added({"id": "item_u2", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]},
          "item_u1")
    history.receive("conversation.item.input_audio_transcription.completed",
                    {"item_id": "item_u2", "transcript": "What's the weather in Paris?"})
    added({"id": "item_fc", "type": "function_call", "call_id": "call_1", "name": "get_weather",
           "arguments": '{"city": "Paris"}'}, "item_u2")
    history.call_output("call_1", "Sunny in Paris")  # the session ran the tool
    added({"id": "item_out", "type": "function_call_output", "call_id": "call_1", "output": "Sunny in Paris"}, "item_fc")
    added({"id": "item_a1", "type": "message", "role": "assistant", "content": [], "status": "in_progress"}, "item_out")
    history.audio("item_a1", 3000)
    history.receive("response.output_audio_transcript.delta",
                    {"item_id": "item_a1", "delta": "It is sunny in Paris today, with a light breeze from the west"})
    history.interrupted("item_a1", 1000)
    return history


def valid(event: dict[str, Any], dialect: str) -> None:
    SDK[dialect].validate_python(event)
    validate_client_event(event, dialect)


def test_the_history_knows_the_id_of_the_output_the_server_holds() -> None:
    call = conversation().get("item_fc")
    assert isinstance(call, RealtimeToolCallItem) and (call.output, call.output_item_id) == ("Sunny in Paris", "item_out")


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_a_sessions_history_is_planned_as_what_was_said_and_heard(dialect: str) -> None:
    items = conversation().items
    reply = items[-1]
    assert isinstance(reply, AssistantMessageItem) and reply.interrupted and reply.unheard_text
    events = plan_reset_history((), items, dialect)
    for event in events:
        valid(event, dialect)
    text = "output_text" if dialect == "ga" else "text"
    assert [event["item"] for event in events] == [
        {"id": "item_u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi there"}]},
        # The spoken turn as its transcript: the API would not hear an input_audio part with no audio.
        {"id": "item_u2", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]},
        {"id": "item_fc", "type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}', "status": "completed"},
        {"id": "item_out", "type": "function_call_output", "call_id": "call_1", "output": "Sunny in Paris"},
        # The reply as far as it was heard, never what was cut.
        {"id": "item_a1", "type": "message", "role": "assistant", "status": "in_progress",
         "content": [{"type": text, "text": reply.text}]},
    ]
    assert reply.text == "It is sunny in Paris" and all("previous_item_id" not in event for event in events)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_the_protocol_takes_session_items_it_used_to_refuse(dialect: str) -> None:
    core = RealtimeProtocol(dialect)
    core.connection_opening()
    core.connection_opened(None)
    core.data_to_send()
    core.reset_history((), conversation().items)
    assert [json.loads(frame)["item"]["id"] for frame in core.data_to_send()] == [
        "item_u1", "item_u2", "item_fc", "item_out", "item_a1"]


def test_an_edit_of_the_sessions_history_deletes_both_items_of_a_call_and_keeps_an_edited_items_place() -> None:
    old = conversation().items
    edited = UserMessageItem("item_u2", "What's the weather in Lyon?", audio=True)
    new = [old[0], edited, old[-1]]  # the call (and its output) gone, the spoken turn edited
    events = plan_reset_history(old, new)
    assert [(e["type"], e.get("item_id") or e["item"]["id"], e.get("previous_item_id")) for e in events] == [
        ("conversation.item.delete", "item_fc", None),
        ("conversation.item.delete", "item_out", None),
        ("conversation.item.delete", "item_u2", None),
        ("conversation.item.create", "item_u2", "item_u1"),  # before the reply, which the server keeps
    ]
    assert plan_reset_history(old, old) == []


def test_an_output_without_the_servers_id_gets_one_the_api_takes() -> None:
    call = RealtimeToolCallItem("item_" + "f" * 40, "call_9", "f", "{}", output="ok")
    (_, output) = plan_reset_history((), [call])
    assert output["item"]["id"].startswith("out_") and len(output["item"]["id"]) == MAX_ITEM_ID_CHARS
    valid(output, "ga")


def test_what_holds_nothing_to_restore_is_skipped_with_a_warning_and_kept_where_the_server_has_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unheard = AssistantMessageItem("item_a", "", audio=True, audio_ms=800, heard_ms=0, unheard_text="Well")
    untranscribed = UserMessageItem("item_u", "", audio=True, content=({"type": "input_audio"},))
    with caplog.at_level(logging.WARNING, "pyodide_realtime"):
        assert plan_reset_history((), [untranscribed, unheard, SystemMessageItem("item_s", "Be brief.")]) == [
            {"type": "conversation.item.create",
             "item": {"id": "item_s", "type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be brief."}]}}
        ]
    assert "item_u not restored: its speech was not transcribed" in caplog.text
    assert "item_a not restored: nothing of it was heard" in caplog.text
    # Where the server holds it (its audio too), an edit that cannot carry it leaves it there.
    held = {"item_id": "item_u", "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    assert plan_reset_history([held], [untranscribed]) == []


def test_what_a_dialect_cannot_carry_is_refused_before_anything_is_planned() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    shown = UserMessageItem("item_i", "What is this?", content=({"type": "input_text", "text": "What is this?"}, image))
    (event,) = plan_reset_history((), [shown], "ga")
    assert event["item"]["content"] == [{"type": "input_text", "text": "What is this?"}, image]
    valid(event, "ga")
    with pytest.raises(ConfigurationError, match="beta dialect cannot carry.*dialect='ga'"):
        plan_reset_history([{"item_id": "gone"}], [shown], "beta")
    with pytest.raises(ConfigurationError, match="MCP items"):
        plan_reset_history((), [RealtimeMCPCallItem("item_m", "server", "tool")])
    with pytest.raises(ConfigurationError, match="no call_id or name"):
        plan_reset_history((), [RealtimeToolCallItem("item_f", output="1")])
    with pytest.raises(ConfigurationError, match="session's items"):
        plan_reset_history((), [42])  # type: ignore[list-item]


def test_a_dicts_assistant_text_goes_by_the_dialects_name() -> None:
    said = {"item_id": "item_a", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}
    (event,) = plan_reset_history((), [said], "beta")
    assert event["item"]["content"] == [{"type": "text", "text": "Hello"}]
    valid(event, "beta")


def test_a_function_call_and_its_output_given_as_dicts_are_created_too() -> None:
    call = {"item_id": "item_f", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    output = {"item_id": "item_o", "type": "function_call_output", "call_id": "call_1", "output": "1"}
    events = plan_reset_history((), [call, output])
    assert [event["item"] for event in events] == [
        {"id": "item_f", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"id": "item_o", "type": "function_call_output", "call_id": "call_1", "output": "1"},
    ]
    for event in events:
        valid(event, "ga")
    with pytest.raises(ConfigurationError, match="needs call_id and name"):
        plan_reset_history((), [{"item_id": "item_f", "type": "function_call", "arguments": "{}"}])


# Against the local server -------------------------------------------------------------------------


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones", test_endpoints=True) as running:
        yield running


def state_page(server: RealtimeServer) -> dict[str, Any]:
    """What the server saw, from its ``/_test/state`` page (a blocking read: call it in a thread)."""
    with urllib.request.urlopen(server.url.rstrip("/") + "/_test/state", timeout=EVENT_TIMEOUT_S) as response:  # noqa: S310 - loopback
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_a_fresh_server_session_gets_the_conversation_back_in_order(server: RealtimeServer, dialect: str) -> None:
    items = conversation().items
    transport = OpenAIRealtimeWebSocket(url=server.ws_url, dialect=dialect)
    announced: list[dict[str, Any]] = []
    last_added, failed = asyncio.Event(), asyncio.Event()

    def on_event(event: Any) -> None:
        data = event.model_dump()
        if data["type"] in ITEM_CREATED:
            announced.append(data)
            if data["item"]["id"] == "item_a1":
                last_added.set()
        elif data["type"] == "error":
            failed.set()

    transport.on("*", on_event)
    await transport.connect(api_key=server.mint_key())
    try:
        transport.reset_history((), items)  # planned in the connection's own dialect
        done, _ = await asyncio.wait([asyncio.ensure_future(last_added.wait()), asyncio.ensure_future(failed.wait())],
                                     timeout=EVENT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        assert done and not failed.is_set(), "the server refused an item"
        state = await asyncio.to_thread(state_page, server)
    finally:
        transport.close()
    (connection,) = state["connections"]
    assert connection["dialect"] == dialect and connection["errors"] == []
    created = [event["item"] for event in connection["received"] if event["type"] == "conversation.item.create"]
    text = "output_text" if dialect == "ga" else "text"
    assert [(item["id"], item.get("content") or item.get("output") or item.get("arguments")) for item in created] == [
        ("item_u1", [{"type": "input_text", "text": "Hi there"}]),
        ("item_u2", [{"type": "input_text", "text": "What's the weather in Paris?"}]),
        ("item_fc", '{"city": "Paris"}'),
        ("item_out", "Sunny in Paris"),
        ("item_a1", [{"type": text, "text": "It is sunny in Paris"}]),
    ]
    # The server's conversation holds them in that order: each one after the one before it.
    assert [(event["item"]["id"], event["previous_item_id"]) for event in announced] == [
        ("item_u1", None), ("item_u2", "item_u1"), ("item_fc", "item_u2"), ("item_out", "item_fc"), ("item_a1", "item_out")]
