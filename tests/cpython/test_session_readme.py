"""The README's voice example (an agent with a tool) is short, and runs as written against the local
server printing the conversation (``test_readme.py`` runs it too, with the README's other blocks)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from pyodide_realtime_server import RealtimeServer
from readme_blocks import of_kind

MAX_EXAMPLE_LINES = 16
EXAMPLE_TIMEOUT_S = 10.0


def voice_example() -> str:
    """The README's agent example: its one CPython block that makes a RealtimeSession."""
    (block,) = [b for b in of_kind("cpython") if "RealtimeSession(agent, url=" in b.code]
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


@pytest.mark.asyncio
async def test_the_voice_example_prints_each_finished_item_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spoken user turn changes with every transcription delta: the loop prints it once, when complete.
    import pyodide_realtime
    from pyodide_realtime.testing import RealtimeStep, ScriptedRealtimeTransport, spoken_reply

    spoken = {"id": "u2", "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
    turn: list[dict[str, object]] = [{"type": "conversation.item.added", "item": spoken}]
    turn += [
        {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u2", "content_index": 0, "delta": d}
        for d in ("And ", "in ", "Oslo?")
    ]
    turn.append(
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u2", "content_index": 0, "transcript": "And in Oslo?"}
    )
    real = pyodide_realtime.RealtimeSession

    def scripted(agent: object, **_connection: object) -> object:  # the example's url and key: a script instead
        steps = [RealtimeStep("response.create", emit=[*turn, *spoken_reply("Sunny in both.")])]
        return real(agent, transport=ScriptedRealtimeTransport(steps))  # type: ignore[arg-type]

    monkeypatch.setattr(pyodide_realtime, "RealtimeSession", scripted)
    source = "async def example(realtime_url, mint_key):\n" + textwrap.indent(voice_example(), "    ")
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md (voice example)", "exec"), namespace)
    await asyncio.wait_for(namespace["example"]("unused", None), EXAMPLE_TIMEOUT_S)  # type: ignore[operator]
    assert capsys.readouterr().out.splitlines() == [
        "user: What's the weather in Paris?",
        "user: And in Oslo?",
        "assistant: Sunny in both.",
    ]
