"""The session's defences, each against the finding that showed it was needed (scripted transport: no server, no clock)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from scripted_session import of_type, scripted_session, sent_items, settled, until

from pyodide_realtime import (
    RealtimeAgent,
    ReconnectPolicy,
    function_tool,
    output_guardrail,
    realtime_handoff,
)
from pyodide_realtime.session import MAX_QUEUED_BYTES
from pyodide_realtime.testing import (
    RealtimeStep,
    ScriptedPlayer,
    ScriptedRealtimeTransport,
    function_calls,
    server_error,
    spoken_reply,
)

#: A short hook deadline for the tests of hooks that never answer (the test waits on the event it causes).
HOOK_DEADLINE_S = 0.05


def never() -> asyncio.Future[Any]:
    """Something that never completes (a hung service)."""
    return asyncio.get_running_loop().create_future()


@pytest.mark.asyncio
async def test_a_duplicate_call_id_is_refused_and_the_call_the_user_saw_is_the_one_that_runs() -> None:
    paid: list[int] = []

    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        paid.append(amount)
        return f"paid {amount}"

    calls = function_calls([("pay", {"amount": 1}, "dup"), ("pay", {"amount": 1000}, "dup")])
    session, transport = await scripted_session(
        RealtimeAgent(name="A", tools=[pay]),
        RealtimeStep("response.create", emit=calls),
        RealtimeStep("response.create", emit=spoken_reply("Paid one.")),
    )
    session.send_message("pay")
    seen: list[Any] = []
    await until(session, lambda e: {"tool_approval_required", "error"} <= {x.type for x in seen}, seen)
    asked = next(e for e in seen if e.type == "tool_approval_required")
    error = next(e for e in seen if e.type == "error")
    assert json.loads(asked.arguments) == {"amount": 1} and session.pending_approvals == ("dup",)
    assert (error.origin, error.call_id) == ("tool", "dup") and "reused call_id" in error.message
    assert [e.type for e in seen].count("tool_approval_required") == 1
    session.approve_tool_call("dup")
    await until(session, lambda e: e.type == "history_updated" and getattr(e.item, "text", "") == "Paid one.")
    assert paid == [1]  # the call the user approved; the other never ran
    outputs = [item["output"] for item in sent_items(transport, "function_call_output")]
    assert outputs[0].startswith("Error: call_id 'dup' is already used") and outputs[1] == "paid 1"
    assert transport.remaining_steps == 0  # the conversation went on
    session.close()


@pytest.mark.asyncio
async def test_one_guardrail_run_at_a_time_per_reply_and_the_latest_text_is_judged_next() -> None:
    running, judged = [0], []
    gate = asyncio.Event()

    @output_guardrail
    async def slow_check(agent: RealtimeAgent[Any], text: str) -> bool:
        running[0] += 1
        judged.append((text, running[0]))
        await gate.wait()
        running[0] -= 1
        return False

    words = " ".join(f"word{n:03d}" for n in range(300))  # 2,400 characters: 24 checks at 100 each, unthrottled
    reply = spoken_reply(words, response_id="r1", item_id="m1")
    session, transport = await scripted_session(
        RealtimeAgent(name="A", output_guardrails=[slow_check]), RealtimeStep("response.create", emit=reply)
    )
    session.send_message("talk")
    await until(session, of_type("agent_end"))
    assert len(judged) == 1 and running[0] == 1  # the first run still holds; the others did not start
    gate.set()
    await settled(lambda: not running[0] and len(judged) >= 2)
    assert [concurrent for _text, concurrent in judged] == [1, 1]
    assert judged[-1][0] == words  # the latest text, the whole reply: the ones between were skipped
    session.close()


@pytest.mark.asyncio
async def test_every_user_hook_has_a_deadline() -> None:
    async def hung_approval(arguments: dict[str, Any]) -> bool:
        return bool(await never())

    @function_tool(needs_approval=hung_approval)
    def pay(amount: int) -> str:
        return "paid"

    async def hung_instructions(ctx: Any, agent: RealtimeAgent[Any]) -> str:
        return str(await never())

    async def hung_on_handoff(ctx: Any) -> None:
        await never()

    @output_guardrail
    async def hung_guardrail(agent: RealtimeAgent[Any], text: str) -> bool:
        return bool(await never())

    slow_agent = RealtimeAgent(name="Slow", instructions=hung_instructions)
    picky = RealtimeAgent(name="Picky")
    agent = RealtimeAgent(
        name="A",
        tools=[pay],
        handoffs=[slow_agent, realtime_handoff(picky, on_handoff=hung_on_handoff)],
        output_guardrails=[hung_guardrail],
    )
    calls = function_calls([("pay", {"amount": 1}, "c1"), ("transfer_to_slow", {}, "c2"), ("transfer_to_picky", {}, "c3")])
    session, transport = await scripted_session(
        agent,
        RealtimeStep("response.create", emit=calls),
        RealtimeStep("response.create", emit=spoken_reply("Done.")),
        hook_timeout=HOOK_DEADLINE_S,
    )
    session.send_message("go")
    errors: list[Any] = []
    while len(errors) < 4:
        errors.append(await until(session, of_type("error")))
    for hook in ("guardrail hung_guardrail", "needs_approval of pay", "on_handoff of transfer_to_picky", "the instructions of Slow"):
        assert sum(f"{hook} did not answer within 0.05 s" in error.message for error in errors) == 1, hook
    outputs = {item["call_id"]: item["output"] for item in sent_items(transport, "function_call_output")}
    assert all("did not answer within 0.05 s" in outputs[c] for c in ("c1", "c2", "c3"))
    assert session.agent is agent and transport.remaining_steps == 0  # no handoff half-made; the model went on
    session.close()


@pytest.mark.asyncio
async def test_close_returns_though_a_tool_ignores_its_cancellation() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    @function_tool
    async def stubborn() -> str:
        started.set()
        while True:
            try:
                await release.wait()
                return "late"
            except asyncio.CancelledError:
                cancelled.set()  # and keeps going: a tool that swallows its cancellation

    session, transport = await scripted_session(
        RealtimeAgent(name="A", tools=[stubborn]), RealtimeStep("response.create", emit=function_calls([("stubborn", {}, "c1")]))
    )
    session.send_message("go")
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(session.close(), 5)  # returns: it does not wait for the tool
    assert transport.status == "disconnected"
    await asyncio.wait_for(cancelled.wait(), 5)
    release.set()
    await settled(lambda: not session._tasks)  # the stubborn tool has finished
    assert sent_items(transport, "function_call_output") == []  # the late output goes nowhere


@pytest.mark.asyncio
async def test_unread_audio_is_bounded_and_what_was_dropped_is_counted() -> None:
    delta_bytes = 192_000  # 4 s of PCM16 each; 100 of them are 19.2 MB, more than twice the bound
    reply = spoken_reply("A long story.", audio_ms=delta_bytes // 48 * 100, chunks=100)
    session, transport = await scripted_session(RealtimeAgent(name="A"), RealtimeStep("response.create", emit=reply))
    heard: list[int] = []
    session.on("audio", lambda e: heard.append(len(e.data)))  # listeners still get every event
    session.send_message("tell me a long story")
    await transport.idle()
    assert len(heard) == 100
    queued_audio = 0
    while session._queue:
        event = await session.__anext__()
        if event.type == "audio":
            queued_audio += len(event.data)
    assert queued_audio <= MAX_QUEUED_BYTES
    assert session.dropped_events >= 100 - MAX_QUEUED_BYTES // delta_bytes
    session.close()


@pytest.mark.asyncio
async def test_unread_events_past_the_count_bound_drop_the_oldest() -> None:
    session, transport = await scripted_session(RealtimeAgent(name="A"), max_queued_events=10)
    transport.emit(*[{"type": "input_audio_buffer.timeout_triggered", "item_id": f"i{n}"} for n in range(30)])
    kept = [await session.__anext__() for _ in range(len(session._queue))]
    assert len(kept) == 10 and session.dropped_events > 0
    assert kept[-1].type == "input_audio_timeout_triggered"
    session.close()


@pytest.mark.asyncio
async def test_a_key_quoted_by_a_server_error_reaches_no_session_event_or_record(caplog: pytest.LogCaptureFixture) -> None:
    key = "ek_68af3d2c9b1e4f0a8c7d6e5f"
    session, transport = await scripted_session(RealtimeAgent(name="A"))
    seen: list[Any] = []
    with caplog.at_level(logging.DEBUG):
        transport.emit(server_error(f"Incorrect API key provided: {key}. You can find your key at ...", code="invalid_api_key"))
        error = await until(session, of_type("error"), seen)
    assert "invalid_api_key" in error.message and key not in error.message
    session_records = [r.getMessage() for r in caplog.records if r.pathname.endswith("session.py")]
    assert session_records and not any(key in text for text in session_records)
    assert not any(key in repr(getattr(e, "data", "")) for e in seen)  # no raw_model_event of the error either
    session.close()


@pytest.mark.asyncio
async def test_a_tripped_guardrail_tells_the_model_once_the_cut_reply_is_done() -> None:
    @output_guardrail(name="no_secrets")
    def no_secrets(agent: RealtimeAgent[Any], text: str) -> bool:
        return "password" in text

    reply = spoken_reply("The password is swordfish and more words follow here.", response_id="r1", item_id="m1")
    open_part = reply[: next(i for i, e in enumerate(reply) if e["type"] == "response.output_audio.done")]
    session, transport = await scripted_session(
        RealtimeAgent(name="A", output_guardrails=[no_secrets]),
        RealtimeStep("response.create", emit=open_part),  # the reply is still running when it trips
        guardrail_debounce_chars=10,
    )
    player = ScriptedPlayer()
    player.heard["m1"] = 40.0
    transport.attach_audio_output(player)
    session.send_message("what is the password?")
    tripped = await until(session, of_type("guardrail_tripped"))
    assert tripped.guardrail_results[0].guardrail is no_secrets and tripped.item_id == "m1"
    await transport.idle()
    assert "response.cancel" in transport.sent_types()
    assert not sent_items(transport, "message")[1:]  # nothing said yet: the cancelled reply is not done
    transport.add_steps(RealtimeStep({"type": "conversation.item.create"}, emit=[]))
    transport.emit({"type": "response.done", "response": {"id": "r1", "status": "cancelled", "output": []}})
    await transport.idle()
    feedback = sent_items(transport, "message")[1:]
    assert [part["text"] for item in feedback for part in item["content"]] == ["guardrail triggered: no_secrets"]
    kinds = transport.sent_types()
    assert kinds.index("response.cancel") < len(kinds) - 1 - kinds[::-1].index("conversation.item.create")
    session.close()


@pytest.mark.asyncio
async def test_after_a_reconnect_the_conversation_as_heard_goes_back_to_the_server() -> None:
    for opted_in in (True, False):
        restored: list[tuple[tuple[Any, ...], list[Any]]] = []
        transport = ScriptedRealtimeTransport(
            [RealtimeStep("response.create", emit=spoken_reply("Hello."))],
            reconnect=ReconnectPolicy(initial_delay_s=0, jitter=0),
        )
        transport.reset_history = lambda old, new, into=restored: into.append((tuple(old), list(new)))  # type: ignore[method-assign]
        session, _ = await scripted_session(
            RealtimeAgent(name="A"), transport=transport, restore_history_on_reconnect=opted_in
        )
        session.send_message("Hi")
        await until(session, of_type("agent_end"))
        history = list(session.history)
        assert [item.role for item in history] == ["user", "assistant"]  # type: ignore[union-attr]
        reconnected = asyncio.get_running_loop().create_future()
        transport.on("reconnected", lambda r, done=reconnected: done.done() or done.set_result(r))
        transport.drop(1012, "service restart")
        await asyncio.wait_for(reconnected, 5)
        assert transport.connections == 2
        assert restored == ([((), history)] if opted_in else [])
        session.close()


@pytest.mark.asyncio
async def test_update_history_sends_the_change_through_reset_history() -> None:
    session, transport = await scripted_session(
        RealtimeAgent(name="A"), RealtimeStep("response.create", emit=spoken_reply("Hello."))
    )
    calls: list[tuple[tuple[Any, ...], list[Any]]] = []
    transport.reset_history = lambda old, new: calls.append((tuple(old), list(new)))  # type: ignore[method-assign]
    session.send_message("Hi")
    await until(session, of_type("agent_end"))
    before = session.history
    await session.update_history(lambda items: items[:1])
    session.update_history([])
    assert calls == [(before, [before[0]]), (before, [])]
    with pytest.raises(Exception, match="list of history items"):
        session.update_history("nonsense")  # type: ignore[arg-type]
    session.close()
