"""The README's voice example (an agent with a tool) is short, and runs as written against the local
server printing the conversation (``test_readme.py`` runs it too, with the README's other blocks)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from pyodide_realtime_server import RealtimeServer
from readme_blocks import of_kind

MAX_EXAMPLE_LINES = 15
EXAMPLE_TIMEOUT_S = 10.0


def voice_example() -> str:
    """The README's agent example: its one CPython block that makes a RealtimeSession."""
    (block,) = [b for b in of_kind("cpython") if "RealtimeSession(" in b.code]
    return block.code


def test_the_example_is_short() -> None:
    assert len([line for line in voice_example().splitlines() if line.strip()]) <= MAX_EXAMPLE_LINES


@pytest.mark.asyncio
async def test_the_voice_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    source = "async def example(realtime_url, mint_key):\n" + textwrap.indent(voice_example(), "    ")
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md (voice example)", "exec"), namespace)
    async with RealtimeServer(pace=0, speech="tones") as server:
        # It ends by itself: its loop stops at the model's answer, and `async with` closes the session.
        await asyncio.wait_for(namespace["example"](server.ws_url, server.mint_key), EXAMPLE_TIMEOUT_S)  # type: ignore[operator]
    assert capsys.readouterr().out.splitlines() == [
        "user: What's the weather in Paris?",
        "assistant: The get_weather tool says: Sunny in Paris",
    ]
