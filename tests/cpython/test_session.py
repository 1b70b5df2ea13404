"""``RealtimeSession`` against the local Realtime server over a real loopback WebSocket (CPython backend).

The server's simulated model calls a tool the user's text names (``please call get_time``), calls
``get_weather`` for "weather", and then speaks "The <tool> tool says: <output>": so each test can
hear what the model was told, errors included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from pyodide_realtime import (
    AssistantMessageItem,
    InvalidStateError,
    OpenAIRealtimeWebSocket,
    RealtimeAgent,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeSession,
    RealtimeSessionEvent,
    RealtimeToolCallItem,
    UserMessageItem,
    function_tool,
    output_guardrail,
)
from pyodide_realtime_server import RealtimeServer

EVENT_TIMEOUT_S = 10.0


class Recorder:
    """Reads ``async for event in session`` and keeps every event it read."""

    def __init__(self, session: RealtimeSession) -> None:
        self.session = session
        self.events: list[RealtimeSessionEvent] = []

    async def until(self, predicate: Callable[[Any], bool], timeout: float = EVENT_TIMEOUT_S) -> Any:
        async def scan() -> Any:
            async for event in self.session:
                self.events.append(event)
                if predicate(event):
                    return event
            raise AssertionError(f"the session ended first; events: {[e.type for e in self.events]}")

        return await asyncio.wait_for(scan(), timeout)

    async def reply(self, starts: str = "") -> AssistantMessageItem:
        """The next completed assistant message (whose text starts with ``starts``)."""

        def done(event: Any) -> bool:
            item = getattr(event, "item", None)
            return (
                event.type == "history_updated"
                and isinstance(item, AssistantMessageItem)
                and item.status in ("completed", "incomplete")
                and item.text.startswith(starts)
            )

        event = await self.until(done)
        return event.item  # type: ignore[no-any-return]

    def of(self, kind: str) -> list[Any]:
        return [event for event in self.events if event.type == kind]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones") as running:
        yield running


async def open_session(server: RealtimeServer, agent: RealtimeAgent, **options: Any) -> tuple[RealtimeSession, Recorder]:
    session = RealtimeSession(agent, transport=OpenAIRealtimeWebSocket(url=server.ws_url), **options)
    await session.connect(api_key=server.mint_key())
    return session, Recorder(session)


async def eventually(condition: Callable[[], bool], timeout: float = EVENT_TIMEOUT_S) -> None:
    """Wait until the server's side shows ``condition`` (it runs in this loop, a few ticks behind)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never became true"
        await asyncio.sleep(0.01)


def received(server: RealtimeServer, kind: str | None = None) -> list[dict[str, Any]]:
    events = [event for connection in server.state.connections for event in connection.received]
    return [event for event in events if kind is None or event.get("type") == kind]


@function_tool
def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"Sunny in {location}"


@function_tool
async def get_time(city: str) -> str:
    """The time in a city."""
    await asyncio.sleep(0.01)
    return "noon"


@pytest.mark.asyncio
async def test_sync_and_async_tools_answer_and_the_model_speaks_their_output(server: RealtimeServer) -> None:
    agent = RealtimeAgent(name="Assistant", instructions="Be brief.", tools=[get_weather, get_time])
    session, events = await open_session(server, agent)
    session.send_message("What's the weather in Paris?")
    assert (await events.reply("The get_weather")).text == "The get_weather tool says: Sunny in Paris"
    session.send_message("please call get_time")
    assert (await events.reply("The get_time")).text == "The get_time tool says: noon"

    kinds = [(type(item).__name__, getattr(item, "output", None)) for item in session.history]
    assert kinds == [
        ("UserMessageItem", None),
        ("RealtimeToolCallItem", "Sunny in Paris"),
        ("AssistantMessageItem", None),
        ("UserMessageItem", None),
        ("RealtimeToolCallItem", "noon"),
        ("AssistantMessageItem", None),
    ]
    assert [e.tool.name for e in events.of("tool_start")] == ["get_weather", "get_time"]
    assert [e.output for e in events.of("tool_end")] == ["Sunny in Paris", "noon"]
    assert not events.of("error")
    # The session sent its agent's config, and one response.create per tool answer (no double reply).
    first_update = received(server, "session.update")[0]["session"]
    assert first_update["instructions"] == "Be brief."
    assert [tool["name"] for tool in first_update["tools"]] == ["get_weather", "get_time"]
    types = [event["type"] for event in received(server)]
    after_outputs = [types[i + 1] for i, t in enumerate(types) if t == "conversation.item.create"]
    assert after_outputs.count("response.create") == 4  # two messages, two tool answers
    session.close()


@pytest.mark.asyncio
async def test_bad_arguments_a_raising_tool_and_a_timeout_are_told_to_the_model(server: RealtimeServer) -> None:
    ran: list[str] = []

    @function_tool
    def get_weather(location: str, days: int) -> str:  # the model never sends "days"
        ran.append(location)
        return "never"

    @function_tool
    def get_news(topic: str) -> str:
        raise ConnectionError("the news service is down")

    @function_tool(timeout=0.05)
    async def get_time(city: str) -> str:
        await asyncio.sleep(10)
        return "never"

    agent = RealtimeAgent(name="Assistant", tools=[get_weather, get_news, get_time])
    session, events = await open_session(server, agent)

    session.send_message("What's the weather in Oslo?")
    reply = await events.reply("The get_weather")
    assert "Error: invalid arguments for get_weather (days: Field required)" in reply.text
    assert ran == []
    session.send_message("please call get_news")
    assert "get_news failed (ConnectionError: the news service is down)" in (await events.reply("The get_news")).text
    session.send_message("please call get_time")
    assert "get_time did not finish within 0.05 s" in (await events.reply("The get_time")).text

    errors = events.of("error")
    assert [(e.origin, e.call_id is not None) for e in errors] == [("tool", True)] * 3
    assert isinstance(errors[1].exception, ConnectionError)
    assert "tool call get_time failed" in errors[2].message
    assert session.transport.status == "connected"
    session.close()


@pytest.mark.asyncio
async def test_a_call_that_fails_around_the_tool_is_still_answered(server: RealtimeServer) -> None:
    # Not the tool's body: its needs_approval raises, or what it awaits is cancelled by someone else.
    # Each call is answered with an error text and the model goes on: never an unanswered call.
    def ask_the_policy_service(arguments: dict[str, object]) -> bool:
        raise RuntimeError("the policy service is down")

    @function_tool(needs_approval=ask_the_policy_service)
    async def get_time(city: str) -> str:
        return "noon"

    @function_tool
    async def get_weather(location: str) -> str:
        shared = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(shared.cancel)  # another task gives up the shared lookup
        return str(await shared)

    session, events = await open_session(server, RealtimeAgent(name="Assistant", tools=[get_time, get_weather]))
    session.send_message("please call get_time")
    reply = await events.reply("The get_time")
    assert reply.text.startswith("The get_time tool says: Error: get_time failed (RuntimeError: the policy service is down)")
    session.send_message("What's the weather in Oslo?")
    reply = await events.reply("The get_weather")
    assert reply.text.startswith("The get_weather tool says: Error: get_weather failed (CancelledError")
    errors = [e for e in events.of("error") if e.origin == "tool"]
    assert len(errors) == 2 and not any("internally" in e.message for e in events.of("error"))
    session.close()


@pytest.mark.asyncio
async def test_a_call_that_needs_approval_waits_for_the_answer(server: RealtimeServer) -> None:
    ran: list[str] = []

    @function_tool(needs_approval=True)
    def get_weather(location: str) -> str:
        ran.append(location)
        return f"Rainy in {location}"

    session, events = await open_session(server, RealtimeAgent(name="Assistant", tools=[get_weather]))
    session.send_message("What's the weather in Rome?")
    request = await events.until(lambda e: e.type == "tool_approval_required")
    assert (request.name, json.loads(request.arguments), request.kind) == ("get_weather", {"location": "Rome"}, "function")
    assert ran == [] and session.pending_approvals == (request.call_id,)
    session.approve_tool_call(request.call_id)
    assert (await events.reply("The get_weather")).text == "The get_weather tool says: Rainy in Rome"
    assert ran == ["Rome"]

    session.send_message("What is the weather in Oslo?")
    request = await events.until(lambda e: e.type == "tool_approval_required")
    session.reject_tool_call(request.call_id, rejection_message="The user said no.")
    assert (await events.reply("The get_weather")).text == "The get_weather tool says: The user said no."
    assert ran == ["Rome"]
    with pytest.raises(InvalidStateError, match="is waiting for approval"):
        session.approve_tool_call(request.call_id)  # answered already

    # always=True: later calls of that tool run without asking.
    session.send_message("What is the weather in Lima?")
    request = await events.until(lambda e: e.type == "tool_approval_required")
    session.approve_tool_call(request.call_id, always=True)
    await events.reply("The get_weather")
    session.send_message("What is the weather in Quito?")
    await events.reply("The get_weather tool says: Rainy in Quito")
    assert ran == ["Rome", "Lima", "Quito"]
    assert not events.of("error")
    session.close()


@pytest.mark.asyncio
async def test_a_hosted_mcp_tool_asks_for_approval_and_answers_in_history(server: RealtimeServer) -> None:
    # The local server simulates a hosted MCP server with a roll_dice tool (it always rolls a 4).
    mcp = {"type": "mcp", "server_label": "dice", "server_url": "https://mcp.example/sse", "require_approval": "always"}
    session, events = await open_session(server, RealtimeAgent(name="Assistant", tools=[mcp]))
    listed = await events.until(lambda e: e.type == "mcp_tools_changed")
    assert {tool["name"] for tool in listed.tools} == {"roll_dice", "echo"}
    session.send_message("Please roll dice with 6 sides")
    request = await events.until(lambda e: e.type == "tool_approval_required")
    assert (request.kind, request.name, request.server_label) == ("mcp", "roll_dice", "dice")
    session.approve_tool_call(request.call_id)
    called = await events.until(
        lambda e: e.type == "history_updated" and isinstance(e.item, RealtimeMCPCallItem) and e.item.output is not None
    )
    assert (called.item.name, called.item.output, called.item.approval_request_id) == ("roll_dice", "4", request.call_id)
    answered = [i for i in session.history if isinstance(i, RealtimeMCPApprovalRequestItem)]
    assert [(i.item_id, i.approved) for i in answered] == [(request.call_id, True)]
    assert not events.of("error") and not received(server, "error")
    # Rejected: no call is made, and the server heard the refusal with its reason.
    session.send_message("Please roll dice again")
    request = await events.until(lambda e: e.type == "tool_approval_required")
    session.reject_tool_call(request.call_id, rejection_message="Not now.")
    await eventually(lambda: any(
        e["item"].get("approval_request_id") == request.call_id and e["item"]["approve"] is False
        for e in received(server, "conversation.item.create")
    ))
    await events.reply()
    calls = [i for i in session.history if isinstance(i, RealtimeMCPCallItem)]
    assert len(calls) == 1 and not events.of("error")
    session.close()


@pytest.mark.asyncio
async def test_a_handoff_switches_instructions_and_tools_in_one_update(server: RealtimeServer) -> None:
    @function_tool
    def refund(order: str) -> str:
        """Refund an order."""
        return f"refunded {order}"

    billing = RealtimeAgent(
        name="Billing", instructions="You handle billing.", tools=[refund], handoff_description="Refunds.", voice="ash"
    )
    front = RealtimeAgent(name="Front desk", instructions="You greet.", tools=[get_weather], handoffs=[billing], voice="marin")
    session, events = await open_session(server, front)
    session.send_message("please call transfer_to_billing")
    handoff = await events.until(lambda e: e.type == "handoff")
    assert (handoff.from_agent, handoff.to_agent, session.agent) == (front, billing, billing)
    assert (await events.reply("The transfer_to_billing")).text == 'The transfer_to_billing tool says: {"assistant": "Billing"}'

    updates = [u for u in received(server, "session.update") if "instructions" in u["session"]][1:]
    assert len(updates) == 1
    assert updates[0]["session"]["instructions"] == "You handle billing."
    assert [tool["name"] for tool in updates[0]["session"]["tools"]] == ["refund"]
    # The model had not spoken yet (its first reply was the call), so the voice could still change.
    assert updates[0]["session"]["audio"]["output"]["voice"] == "ash"

    session.send_message("please call refund")
    assert (await events.reply("The refund")).text == "The refund tool says: refunded example"
    # Once the model has spoken, switching agents keeps the session's voice (the API refuses a change).
    await session.update_agent(front)
    await eventually(lambda: len([u for u in received(server, "session.update") if "instructions" in u["session"]]) == 3)
    last = [u for u in received(server, "session.update") if "instructions" in u["session"]][-1]["session"]
    assert last["instructions"] == "You greet." and "voice" not in last.get("audio", {}).get("output", {})
    assert not events.of("error")
    session.close()


@pytest.mark.asyncio
async def test_a_tripped_output_guardrail_interrupts_the_reply() -> None:
    judged: list[str] = []

    @output_guardrail
    def no_paris(agent: RealtimeAgent, text: str) -> bool:
        judged.append(text)
        return "Paris" in text

    async with RealtimeServer(pace=1, speech="tones") as server:  # real time: the reply takes seconds
        agent = RealtimeAgent(name="Assistant", output_guardrails=[no_paris])
        session, events = await open_session(server, agent, guardrail_debounce_chars=10)
        session.send_message("I want to hear about Paris and many other cities of the world today")
        tripped = await events.until(lambda e: e.type == "guardrail_tripped")
        assert "Paris" in tripped.message and tripped.guardrail_results[0].guardrail is no_paris
        reply = await events.reply("You said")
        assert reply.status == "incomplete"
        assert "response.cancel" in [event["type"] for event in received(server)]
        # Debounced: judged as the transcript grew by 10 characters or more, not on every word.
        assert 1 <= len(judged) < len(reply.text.split()) + len(reply.unheard_text.split())
        # The model is told which guardrail fired, once the cancelled response is done, and answers that.
        told = await events.reply("You said: guardrail triggered")
        assert told.text == "You said: guardrail triggered: no_paris"
        sent = [e["type"] if e["type"] != "conversation.item.create" else e["item"]["content"][0].get("text") for e in received(server)]
        assert sent.index("response.cancel") < sent.index("guardrail triggered: no_paris")
        session.close()


@pytest.mark.asyncio
async def test_an_interrupted_reply_keeps_about_what_was_heard() -> None:
    # Audio arrives 4x faster than it plays (as from the real API): much is received, less is heard.
    async with RealtimeServer(pace=4, speech="tones") as server:
        session, events = await open_session(server, RealtimeAgent(name="Assistant"))
        session.send_message("Tell me a long story about the sea and the wind and the boats that sail on it")
        item_id = (await events.until(lambda e: e.type == "audio")).item_id
        await events.until(lambda e: e.type == "audio" and (session.history[-1].audio_ms or 0) >= 1500)
        session.interrupt()
        interrupted = await events.until(lambda e: e.type == "audio_interrupted")
        await events.until(lambda e: e.type == "agent_end")  # the server has handled the truncation
        reply = next(item for item in session.history if item.item_id == item_id)
        assert isinstance(reply, AssistantMessageItem) and reply.interrupted
        truncation = server.state.truncations[0]
        assert reply.heard_ms == interrupted.heard_ms == truncation["audio_end_ms"] > 0
        full = "You said: Tell me a long story about the sea and the wind and the boats that sail on it"
        assert full.startswith(reply.text) and reply.text and reply.unheard_text
        assert f"{reply.text} {reply.unheard_text}" == full[: len(reply.text) + 1 + len(reply.unheard_text)]
        # Proportional to the audio heard, within a word.
        heard_share = reply.heard_ms / reply.audio_ms
        received_text = len(reply.text) + 1 + len(reply.unheard_text)
        assert abs(len(reply.text) - heard_share * received_text) <= max(len(w) for w in full.split()) + 1
        session.close()


@pytest.mark.asyncio
async def test_spoken_input_shows_its_transcript_and_server_errors_are_one_event_type(server: RealtimeServer) -> None:
    config = {"input_audio_transcription": {"model": "whisper-1"}, "turn_detection": None}
    session, events = await open_session(server, RealtimeAgent(name="Assistant"), config=config)
    session.send_audio(b"\x00\x10" * 24_000, commit=True)  # half a second of quiet sound
    session.transport.request_response()  # no turn detection: the app asks for the reply
    await events.reply()
    user = next(item for item in session.history if isinstance(item, UserMessageItem))
    assert user.audio and not user.transcribing

    session.transport.send_event({"type": "conversation.item.delete", "item_id": "no_such_item"})
    error = await events.until(lambda e: e.type == "error")
    assert error.origin == "server" and "no_such_item" in error.message and "fix the request" in error.message
    assert session.transport.status == "connected"
    session.close()


@pytest.mark.asyncio
async def test_async_with_connects_and_closes_and_iteration_ends(server: RealtimeServer) -> None:
    transport = OpenAIRealtimeWebSocket(url=server.ws_url)
    async with RealtimeSession(RealtimeAgent(name="A"), transport=transport, api_key=server.mint_key()) as session:
        assert transport.status == "connected"
        session.send_message("Hi")
        events = Recorder(session)
        await events.reply("You said: Hi")
    assert transport.status == "disconnected"
    leftover = [event async for event in session]  # ends: the session is closed
    assert all(event.type != "error" for event in leftover)
    with pytest.raises(InvalidStateError, match="closed"):
        await session.connect(api_key="x")
    assert isinstance(session.history[0], UserMessageItem)
    assert isinstance(session.history[-1], AssistantMessageItem)
    assert not isinstance(session.history[0], RealtimeToolCallItem)


@pytest.mark.asyncio
async def test_two_loops_over_one_session_share_its_events_and_both_end_on_close(server: RealtimeServer) -> None:
    session, _ = await open_session(server, RealtimeAgent(name="A"))
    got: list[list[str]] = [[], []]

    async def read(into: list[str]) -> None:
        async for event in session:
            into.append(event.type)

    loops = [asyncio.ensure_future(read(into)) for into in got]
    while session._queue.waiting < 2:  # both loops are waiting (loop turns, no clock)
        await asyncio.sleep(0)
    session.send_message("Hi")
    await eventually(lambda: "agent_end" in got[0] + got[1])
    session.close()
    await asyncio.wait_for(asyncio.gather(*loops), EVENT_TIMEOUT_S)  # neither hangs
    # They share one queue: each event went to one of them, none twice.
    assert (got[0] + got[1]).count("agent_end") == 1


@pytest.mark.asyncio
async def test_a_reply_with_nothing_to_hear_does_not_leave_the_agent_thinking(server: RealtimeServer) -> None:
    session, events = await open_session(server, RealtimeAgent(name="Assistant"), config={"modalities": ["text"]})
    session.send_message("Reply in text")
    assert session.voice_state == "thinking"
    assert (await events.reply("You said: Reply in text")).audio is False
    await events.until(lambda e: e.type == "agent_end")
    assert (session.voice_state, session.last_turn_latency_ms) == ("listening", None)
    session.close()
