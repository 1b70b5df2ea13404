"""The README's voice example (an agent with a tool) runs as written, against the local server.

``VOICE_EXAMPLE`` is the text the README shows; once README.md carries it between
``<!-- readme-voice-example -->`` and the closing fence, this test reads it from there instead.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest

try:  # the server's own distribution, once it is split out
    from pyodide_realtime_server import RealtimeServer  # type: ignore[import-not-found]
except ImportError:
    from pyodide_realtime.server import RealtimeServer

README = Path(__file__).resolve().parents[2] / "README.md"
MAX_EXAMPLE_LINES = 15
POLL_S = 0.02
ANSWER_POLLS = 500
EXAMPLE_TIMEOUT_S = 5.0

VOICE_EXAMPLE = '''\
from pyodide_realtime import RealtimeAgent, RealtimeSession, function_tool

@function_tool
def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"Sunny in {location}"

agent = RealtimeAgent(name="Assistant", instructions="Be brief.", tools=[get_weather])
session = RealtimeSession(agent, url=realtime_url)  # in a page: speakers and microphone too
await session.connect(api_key=mint_key)  # a key, or a function that mints one
session.send_message("What's the weather in Paris?")
async for event in session:
    if event.type == "history_updated" and event.item.type == "message" and event.item.status == "completed":
        print(f"{event.item.role}: {event.item.text}")  # a reply cut short shows only what was heard
'''


def voice_example() -> str:
    match = re.search(r"<!-- readme-voice-example -->\n```python\n(.*?)```", README.read_text(), re.S)
    return match.group(1) if match else VOICE_EXAMPLE


def test_the_example_is_short() -> None:
    assert len([line for line in voice_example().splitlines() if line.strip()]) <= MAX_EXAMPLE_LINES


@pytest.mark.asyncio
async def test_the_voice_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    source = "async def example(realtime_url, mint_key):\n" + textwrap.indent(voice_example(), "    ")
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md (voice example)", "exec"), namespace)
    printed = ""
    async with RealtimeServer(pace=0, speech="tones") as server:
        # The example's loop runs as long as the connection: stop the server once the model answered.
        example = asyncio.ensure_future(namespace["example"](server.ws_url, server.mint_key))  # type: ignore[operator]
        for _ in range(ANSWER_POLLS):
            await asyncio.sleep(POLL_S)
            printed += capsys.readouterr().out
            if "assistant: " in printed or example.done():
                break
    await asyncio.wait_for(example, EXAMPLE_TIMEOUT_S)  # the loop ended with the connection, no error
    printed += capsys.readouterr().out
    assert printed.splitlines() == ["user: What's the weather in Paris?", "assistant: The get_weather tool says: Sunny in Paris"]
