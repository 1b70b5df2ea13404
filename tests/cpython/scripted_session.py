"""Helpers for session tests on ``pyodide_realtime.testing``'s scripted transport (no server, no clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pyodide_realtime import RealtimeAgent, RealtimeSession
from pyodide_realtime.testing import RealtimeStep, ScriptedRealtimeTransport

#: A guard against a hang only: every wait below ends on an event long before it.
EVENT_TIMEOUT_S = 5.0


async def scripted_session(
    agent: RealtimeAgent[Any], *steps: RealtimeStep, transport: ScriptedRealtimeTransport | None = None, **options: Any
) -> tuple[RealtimeSession, ScriptedRealtimeTransport]:
    transport = transport or ScriptedRealtimeTransport(steps)
    session = RealtimeSession(agent, transport=transport, **options)
    await session.connect()
    return session, transport


async def until(session: RealtimeSession, predicate: Callable[[Any], bool], seen: list[Any] | None = None) -> Any:
    """The first event (read with ``async for``) that satisfies ``predicate``; ``seen`` keeps all read."""

    async def scan() -> Any:
        async for event in session:
            if seen is not None:
                seen.append(event)
            if predicate(event):
                return event
        raise AssertionError("the session ended first")

    return await asyncio.wait_for(scan(), EVENT_TIMEOUT_S)


def of_type(kind: str) -> Callable[[Any], bool]:
    return lambda event: event.type == kind


def sent_items(transport: ScriptedRealtimeTransport, item_type: str) -> list[dict[str, Any]]:
    """The items of the ``conversation.item.create`` events sent, of one type."""
    return [
        event["item"]
        for event in transport.sent
        if event["type"] == "conversation.item.create" and event["item"].get("type") == item_type
    ]


async def settled(condition: Callable[[], bool]) -> None:
    """Wait, loop turn by loop turn (no clock), until ``condition()`` holds (a task's work is done)."""

    async def turns() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(turns(), EVENT_TIMEOUT_S)
