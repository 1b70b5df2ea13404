"""``openai-agents``' calling conventions, on the scripted transport (no server, no clock).

What ``agents.realtime`` publishes (0.2x): ``RealtimeRunner(agent, config=...).run(context=...)``, a
``RunContextWrapper`` with ``.context`` and ``.usage``, tools whose first parameter is the context,
``instructions`` as ``(ctx, agent)``, ``needs_approval`` as ``(ctx, params, call_id)``, ``is_enabled``,
handoffs with ``on_handoff`` and ``input_type``, events with ``info``, ``event.audio.data``, and session
methods that are coroutines there (awaited or not here, never warning).
"""

from __future__ import annotations

import gc
import json
import warnings
from typing import Any

import pytest
from pydantic import BaseModel
from scripted_session import of_type, scripted_session, sent_items, settled, until

from pyodide_realtime import (
    ConfigurationError,
    OpenAIRealtimeWebSocket,
    RealtimeAgent,
    RealtimeRunner,
    RealtimeSession,
    RunContextWrapper,
    ToolContext,
    function_tool,
    output_guardrail,
    realtime_handoff,
)
from pyodide_realtime.testing import RealtimeStep, ScriptedPlayer, ScriptedRealtimeTransport, function_call, spoken_reply


class Deps:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Any] = []


@function_tool
def whoami(ctx: ToolContext[Deps], greeting: str) -> str:
    """Say who the user is."""
    ctx.context.seen.append((ctx.tool_name, ctx.tool_call_id, json.loads(ctx.tool_arguments)))
    return f"{greeting}, {ctx.context.name}"


@pytest.mark.asyncio
async def test_every_coroutine_of_agents_works_awaited_and_not_awaited_without_a_warning() -> None:
    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        return "paid"

    agent = RealtimeAgent(name="A", tools=[pay])
    steps = [RealtimeStep("response.create", emit=function_call("pay", {"amount": 1}, call_id=f"c{n}")) for n in range(2)]
    gc.collect()  # earlier tests' garbage is finalized now: only this test's warnings are caught below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session, transport = await scripted_session(agent, *steps)
        await session.send_message("pay one")  # awaited, as in agents
        await until(session, of_type("tool_approval_required"))
        await session.approve_tool_call("c0")
        await until(session, of_type("tool_approval_required"))  # the model, told "paid", calls again
        session.reject_tool_call("c1")  # not awaited, as code written for this package does
        await session.send_audio(b"\x00\x00" * 240)
        session.send_audio(b"\x00\x00" * 240, commit=True)
        await session.interrupt()
        session.interrupt()
        await session.update_agent(agent.clone(instructions="New."))
        switching = session.update_agent(agent.clone(instructions="Newer."))
        await until(session, lambda e: e.type == "tool_end" and e.call_id == "c1")
        await switching
        await session.close()
        session.close()
        await session.approve_tool_call("c0")  # after close: nothing to answer, as in agents
        del switching
        gc.collect()
    assert [str(w.message) for w in caught] == []
    kinds = transport.sent_types()
    assert kinds.count("input_audio_buffer.append") == 2 and "input_audio_buffer.commit" in kinds
    instructions = [e["session"].get("instructions") for e in transport.sent if e["type"] == "session.update"]
    assert instructions[-2:] == ["New.", "Newer."]
    assert [o["output"] for o in sent_items(transport, "function_call_output")][0] == "paid"


def test_realtime_session_refuses_what_agents_code_would_pass_wrongly() -> None:
    agent = RealtimeAgent(name="A")

    class AgentsModel:  # an openai-agents model object: not a transport here
        pass

    with pytest.raises(ConfigurationError, match="model= takes the model's name"):
        RealtimeSession(model=AgentsModel(), agent=agent)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="RealtimeAgent first"):
        RealtimeSession(AgentsModel())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs an agent"):
        RealtimeSession(model="gpt-realtime")
    with pytest.raises(ConfigurationError, match="playback_tracker"):
        RealtimeSession(agent, model_config={"playback_tracker": object()})
    with pytest.raises(ConfigurationError, match="tool_error_formatter"):
        RealtimeSession(agent, run_config={"tool_error_formatter": str})
    with pytest.raises(ConfigurationError, match="async_tool_calls=False"):
        RealtimeSession(agent, run_config={"async_tool_calls": False})
    with pytest.raises(ConfigurationError, match="both"):
        RealtimeSession(agent, model=ScriptedRealtimeTransport(), transport=ScriptedRealtimeTransport())
    # A transport as model= is taken, as agents takes its model there.
    transport = ScriptedRealtimeTransport()
    assert RealtimeSession(model=transport, agent=agent).transport is transport
    assert isinstance(RealtimeSession(agent, model="gpt-realtime").transport, OpenAIRealtimeWebSocket)


@pytest.mark.asyncio
async def test_the_runner_gives_a_session_that_connects_in_async_with_and_takes_the_run_config() -> None:
    @output_guardrail
    def never(agent: RealtimeAgent[Any], text: str) -> bool:
        return False

    transport = ScriptedRealtimeTransport([RealtimeStep("response.create", emit=spoken_reply("Hello Ada."))])
    runner = RealtimeRunner(
        RealtimeAgent(name="A", instructions="Hi."),
        model=transport,
        config={
            "model_settings": {"voice": "marin", "model_name": "gpt-realtime"},
            "output_guardrails": [never],
            "guardrails_settings": {"debounce_text_length": 5},
            "tracing_disabled": True,
        },
    )
    session = await runner.run(context=Deps("Ada"))
    assert transport.status == "disconnected"
    async with session:
        assert transport.status == "connected" and transport.current_model == "gpt-realtime"
        await session.send_message("Hi")
        reply = await until(
            session, lambda e: e.type == "history_updated" and e.history[-1].role == "assistant" and e.history[-1].status == "completed"
        )
    assert transport.status == "disconnected"
    assert reply.history[-1].text == "Hello Ada." and reply.info.context.context.name == "Ada"
    first = transport.sent[0]["session"]
    assert (first["audio"]["output"]["voice"], first["instructions"]) == ("marin", "Hi.")
    tracing = [e["session"]["tracing"] for e in transport.sent if e["type"] == "session.update" and "tracing" in e["session"]]
    assert tracing == [None]  # tracing_disabled
    assert session._guardrails() == (never,) and session._debounce == 5


@pytest.mark.asyncio
async def test_tools_instructions_and_approvals_get_the_run_context() -> None:
    asked: list[tuple[Any, ...]] = []

    async def ask(ctx: RunContextWrapper[Deps], params: dict[str, Any], call_id: str) -> bool:
        asked.append((ctx.context.name, params, call_id))
        return params["greeting"] == "Hello"

    guarded = function_tool(whoami.func, name_override="guarded", needs_approval=ask)

    def instructions(ctx: RunContextWrapper[Deps], agent: RealtimeAgent[Deps]) -> str:
        return f"You are {agent.name}, talking to {ctx.context.name}."

    deps = Deps("Ada")
    agent = RealtimeAgent(name="Helper", instructions=instructions, tools=[whoami, guarded])
    session, transport = await scripted_session(
        agent,
        RealtimeStep("response.create", emit=function_call("whoami", {"greeting": "Hi"}, call_id="call_1")),
        RealtimeStep("response.create", emit=function_call("guarded", {"greeting": "Hello"}, call_id="call_2")),
        RealtimeStep("response.create", emit=function_call("guarded", {"greeting": "Hey"}, call_id="call_3")),
        context=deps,
    )
    assert transport.sent[0]["session"]["instructions"] == "You are Helper, talking to Ada."
    schema = {t["name"]: t["parameters"] for t in transport.sent[0]["session"]["tools"]}["whoami"]
    assert list(schema["properties"]) == ["greeting"]  # the context is not the model's to fill
    session.send_message("who am I?")  # each output makes the next response.create: the calls chain
    end = await until(session, of_type("tool_end"))
    assert (end.output, end.arguments, end.info.context.context) == ("Hi, Ada", '{"greeting": "Hi"}', deps)
    assert deps.seen == [("whoami", "call_1", {"greeting": "Hi"})]
    approval = await until(session, of_type("tool_approval_required"))
    assert (approval.call_id, approval.tool.name) == ("call_2", "guarded")
    session.approve_tool_call("call_2")
    await until(session, lambda e: e.type == "tool_end" and e.call_id == "call_2")
    assert (await until(session, of_type("tool_end"))).call_id == "call_3"  # no approval needed for "Hey"
    assert asked == [("Ada", {"greeting": "Hello"}, "call_2"), ("Ada", {"greeting": "Hey"}, "call_3")]
    session.close()


@pytest.mark.asyncio
async def test_async_instructions_is_enabled_and_a_handoff_with_input() -> None:
    class Escalation(BaseModel):
        reason: str

    handed: list[tuple[str, str]] = []

    async def on_handoff(ctx: RunContextWrapper[Deps], escalation: Escalation) -> None:
        handed.append((ctx.context.name, escalation.reason))

    async def billing_instructions(ctx: RunContextWrapper[Deps], agent: RealtimeAgent[Deps]) -> str:
        return f"Refunds for {ctx.context.name}."

    def only_for_ada(ctx: RunContextWrapper[Deps], agent: RealtimeAgent[Deps]) -> bool:
        return ctx.context.name == "Ada"

    hidden = function_tool(whoami.func, name_override="hidden", is_enabled=only_for_ada)
    billing = RealtimeAgent(name="Billing", instructions=billing_instructions)
    front = RealtimeAgent(
        name="Front",
        tools=[whoami, hidden],
        handoffs=[realtime_handoff(billing, on_handoff=on_handoff, input_type=Escalation)],
    )
    session, transport = await scripted_session(
        front,
        RealtimeStep("response.create", emit=function_call("hidden", {"greeting": "x"}, call_id="c0")),
        RealtimeStep("response.create", emit=function_call("transfer_to_billing", {"why": 1}, call_id="c1")),
        RealtimeStep("response.create", emit=function_call("transfer_to_billing", {"reason": "refund"}, call_id="c2")),
        context=Deps("Bob"),
    )
    tools = {t["name"]: t for t in transport.sent[0]["session"]["tools"]}
    assert set(tools) == {"whoami", "transfer_to_billing"}  # hidden: not enabled for Bob
    assert tools["transfer_to_billing"]["parameters"]["required"] == ["reason"]
    session.send_message("hidden please")  # each error output makes the next response.create: the model retries
    error = await until(session, of_type("error"))
    assert "no tool named 'hidden'" in error.message
    error = await until(session, of_type("error"))
    assert "invalid input for transfer_to_billing" in error.message and error.call_id == "c1"
    handoff = await until(session, of_type("handoff"))
    assert (handoff.from_agent, handoff.to_agent, session.agent) == (front, billing, billing)
    assert handed == [("Bob", "refund")]
    last = [e["session"] for e in transport.sent if e["type"] == "session.update" and "instructions" in e["session"]][-1]
    assert last["instructions"] == "Refunds for Bob."
    session.close()


@pytest.mark.asyncio
async def test_events_carry_info_audio_and_usage_totals_and_raw_model_events() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5}
    session, transport = await scripted_session(
        RealtimeAgent(name="A"),
        RealtimeStep("response.create", emit=spoken_reply("One.", usage=usage, audio_ms=50, response_id="r1")),
        RealtimeStep("response.create", emit=spoken_reply("Two.", usage=usage, audio_ms=50)),
        context=Deps("Ada"),
    )
    transport.attach_audio_output(ScriptedPlayer())
    session.send_message("one")
    seen: list[Any] = []
    audio = await until(session, of_type("audio"), seen)
    assert (len(audio.audio.data), audio.audio.response_id, audio.data) == (2400, "r1", audio.audio.data)
    await until(session, of_type("agent_end"), seen)
    session.send_message("two")
    end = await until(session, of_type("agent_end"), seen)
    assert end.info.context is session.context_wrapper and end.info.context.context.name == "Ada"
    totals = session.usage
    assert (totals.requests, totals.input_tokens, totals.output_tokens, totals.total_tokens) == (2, 20, 10, 30)
    raw = [e.data.type for e in seen if e.type == "raw_model_event"]
    assert raw.count("response.done") == 2 and "response.output_audio.delta" in raw
    assert all(e.info is session._info for e in seen)
    session.close()


@pytest.mark.asyncio
async def test_agents_that_hand_off_to_each_other_are_built_by_appending_as_in_agents() -> None:
    faq = RealtimeAgent(name="FAQ")
    triage = RealtimeAgent(name="Triage", handoffs=[realtime_handoff(faq, tool_name_override="transfer_to_faq")])
    faq.handoffs.append(realtime_handoff(triage, tool_name_override="transfer_to_triage"))  # agents' example does this
    session, transport = await scripted_session(
        triage,
        RealtimeStep("response.create", emit=function_call("transfer_to_faq", call_id="c1")),
        RealtimeStep("response.create", emit=function_call("transfer_to_triage", call_id="c2")),
    )
    session.send_message("faq please")
    assert (await until(session, of_type("handoff"))).to_agent is faq
    assert (await until(session, of_type("handoff"))).to_agent is triage
    faq.tools.append("not a tool")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a @function_tool"):
        session.update_agent(faq)  # checked when applied: nothing half-switched
    assert session.agent is triage
    await session.close()
    fresh = RealtimeSession(RealtimeAgent(name="B"), transport=ScriptedRealtimeTransport())
    assert await fresh.enter() is fresh and fresh.transport.status == "connected"
    await fresh.close()


@pytest.mark.asyncio
async def test_a_guardrail_written_for_agents_gets_the_context_the_agent_and_the_text() -> None:
    judged: list[tuple[str, str, str]] = []

    @output_guardrail
    async def polite(ctx: RunContextWrapper[Deps], agent: RealtimeAgent[Deps], output: str) -> Any:
        judged.append((ctx.context.name, agent.name, output))
        return False

    session, _ = await scripted_session(
        RealtimeAgent(name="A", output_guardrails=[polite]),
        RealtimeStep("response.create", emit=spoken_reply("Hello there.")),
        context=Deps("Ada"),
    )
    session.send_message("hi")
    await until(session, of_type("agent_end"))
    await settled(lambda: bool(judged))  # the run started at the reply's end, as a task
    assert judged == [("Ada", "A", "Hello there.")]
    session.close()


@pytest.mark.asyncio
async def test_async_with_takes_the_key_from_the_session_then_the_transport_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    keys: list[str] = []

    class Recording(ScriptedRealtimeTransport):
        async def connect(self, api_key: Any = None, *args: Any, **kwargs: Any) -> None:
            keys.append(api_key)
            await super().connect(api_key, *args, **kwargs)

    async with RealtimeSession(RealtimeAgent(name="A"), transport=Recording(), api_key="ek_given"):
        pass
    async with RealtimeSession(RealtimeAgent(name="A"), transport=Recording()):
        pass  # a given transport keeps its own key (here: the scripted one), never the environment's
    assert keys == ["ek_given", None]


@pytest.mark.asyncio
async def test_raw_model_events_can_be_left_out_of_the_stream_as_a_page_does_by_default() -> None:
    session, transport = await scripted_session(
        RealtimeAgent(name="A"), RealtimeStep("response.create", emit=spoken_reply("Hi.")), raw_model_events=False
    )
    session.send_message("hi")
    seen: list[Any] = []
    await until(session, of_type("agent_end"), seen)
    assert seen and not [e for e in seen if e.type == "raw_model_event"]
    heard: list[str] = []
    session.on("raw_model_event", lambda e: heard.append(e.data.type))  # a listener asks for them
    transport.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u9"})
    assert heard == ["input_audio_buffer.speech_started"]
    session.close()
