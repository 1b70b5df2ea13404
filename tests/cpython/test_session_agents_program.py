"""A program written for ``openai-agents``' ``agents.realtime`` runs here with only its import lines changed.

``AGENTS_PROGRAM`` below is written against ``agents`` (0.2x): a runner with a run config, a context
object, a tool that takes the context, ``(ctx, agent)`` instructions, a tool that needs approval, a
handoff with ``on_handoff``, and an event loop that reads ``event.audio.data`` and the history's items.
The test swaps its two import lines for ours and runs it against the local server.
"""

from __future__ import annotations

import asyncio
import sys
import types
import warnings
from typing import Any

import pytest

from pyodide_realtime_server import RealtimeServer

AGENTS_IMPORTS = """\
from agents import RunContextWrapper, function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner, realtime_handoff
"""
OUR_IMPORT = "from pyodide_realtime import RealtimeAgent, RealtimeRunner, RunContextWrapper, function_tool, realtime_handoff\n"

AGENTS_PROGRAM = (
    AGENTS_IMPORTS
    + '''
from dataclasses import dataclass, field


@dataclass
class Customer:
    name: str
    refunds: list = field(default_factory=list)
    handoffs: int = 0


@function_tool
def get_weather(ctx: RunContextWrapper[Customer], location: str) -> str:
    """Get the weather in a city."""
    return f"Sunny in {location} for {ctx.context.name}"


@function_tool(needs_approval=True)
async def refund(ctx: RunContextWrapper[Customer], order: str) -> str:
    """Refund an order.

    Args:
        order: The order number.
    """
    ctx.context.refunds.append(order)
    return f"refunded {order}"


async def billing_instructions(ctx: RunContextWrapper[Customer], agent: RealtimeAgent) -> str:
    return f"You are {agent.name}. You handle refunds for {ctx.context.name}."


def count_handoff(ctx: RunContextWrapper[Customer]) -> None:
    ctx.context.handoffs += 1


billing = RealtimeAgent(name="Billing", instructions=billing_instructions, tools=[refund])
front_desk = RealtimeAgent(
    name="Front desk",
    instructions="You greet callers and answer questions about the weather.",
    tools=[get_weather],
    handoffs=[realtime_handoff(billing, on_handoff=count_handoff)],
)


async def main(url: str, api_key: str) -> dict:
    customer = Customer(name="Ada")
    runner = RealtimeRunner(front_desk, config={"model_settings": {"voice": "marin"}})
    session = await runner.run(context=customer, model_config={"url": url, "api_key": api_key})
    said = ["What's the weather in Paris?", "please call transfer_to_billing", "please call refund"]
    audio_bytes, approvals, replies, agents_seen = 0, [], set(), []
    async with session:
        await session.send_message(said.pop(0))
        async for event in session:
            if event.type == "audio":
                audio_bytes += len(event.audio.data)
            elif event.type == "agent_start":
                agents_seen.append(event.agent.name)
            elif event.type == "tool_approval_required":
                approvals.append((event.tool.name, event.arguments))
                await session.approve_tool_call(event.call_id)
            elif event.type == "history_updated":
                done = {i.item_id for i in event.history if i.type == "message" and i.role == "assistant" and i.status == "completed"}
                if len(done) > len(replies):
                    replies = done
                    if not said:
                        break
                    await session.send_message(said.pop(0))
            elif event.type == "error":
                raise RuntimeError(event.error)
    return {
        "customer": customer,
        "audio_bytes": audio_bytes,
        "approvals": approvals,
        "agents_seen": agents_seen,
        "history": event.history,
        "usage": event.info.context.usage,
    }
'''
)
PROGRAM_TIMEOUT_S = 20.0


def ported() -> str:
    assert AGENTS_PROGRAM.startswith(AGENTS_IMPORTS)
    return AGENTS_PROGRAM.replace(AGENTS_IMPORTS, OUR_IMPORT, 1)


def test_only_the_import_lines_differ() -> None:
    before, after = AGENTS_PROGRAM.splitlines(), ported().splitlines()
    changed = [line for line in after if line not in before]
    assert changed == [OUR_IMPORT.strip()] and len(before) - len(after) == 1


@pytest.mark.asyncio
async def test_a_program_written_for_agents_realtime_runs_with_its_imports_changed() -> None:
    module = types.ModuleType("agents_program")  # a real module: the program's dataclass needs one
    sys.modules[module.__name__] = module
    exec(compile(ported(), "agents_program.py", "exec"), module.__dict__)
    namespace: dict[str, Any] = module.__dict__
    async with RealtimeServer(pace=0, speech="tones") as server:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "coroutine was never awaited", no other warning
            result = await asyncio.wait_for(namespace["main"](server.ws_url, server.mint_key()), PROGRAM_TIMEOUT_S)
        updates = [e for c in server.state.connections for e in c.received if e["type"] == "session.update"]
    customer = result["customer"]
    assert (customer.refunds, customer.handoffs) == (["example"], 1)
    assert result["approvals"] == [("refund", '{"order": "example"}')]
    assert result["audio_bytes"] > 0
    assert "Billing" in result["agents_seen"]
    texts = [item.text for item in result["history"] if item.type == "message" and item.role == "assistant"]
    assert texts == [
        "The get_weather tool says: Sunny in Paris for Ada",
        'The transfer_to_billing tool says: {"assistant": "Billing"}',
        "The refund tool says: refunded example",
    ]
    # The (ctx, agent) instructions saw the context; the run config's model settings reached the server.
    instructions = [u["session"]["instructions"] for u in updates if "instructions" in u["session"]]
    assert instructions[-1] == "You are Billing. You handle refunds for Ada."
    assert updates[0]["session"]["audio"]["output"]["voice"] == "marin"
    assert result["usage"].requests >= 6
