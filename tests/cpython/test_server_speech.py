"""The simulated model acting on speech: espeak-ng's voice through the server's VAD and recognizer ends
in the tool call a typed question would get; transcription events carry what was heard; the idle
timeout prompts a silent user."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from array import array
from collections.abc import Callable
from typing import Any

import pytest
from test_server_conformance import conformance_failures
from websockets.asyncio.client import ClientConnection, connect

from pyodide_realtime_server import RealtimeServer, _audio
from pyodide_realtime_server._speech import _wav_payload

TIMEOUT_S = 10.0
CHUNK_MS = 100
QUESTION = "What is the weather in Paris?"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def _spoken(text: str, audio_format: str) -> bytes:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is a dev dependency: ./build.sh setup installs it"
    rate, payload = _wav_payload(subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout)
    samples = _audio.resample_linear(_audio.samples_from_pcm16(payload), rate, _audio.PCM16_RATE)
    silence = array("h", bytes(2 * _audio.PCM16_RATE // 2))  # 500 ms before and 1 s after
    return _audio.encode_for_wire(silence + samples + silence + silence, audio_format)


async def _next(ws: ClientConnection, kind: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        seen.append(event)
        if event["type"] == kind:
            return event


async def _say(ws: ClientConnection, audio: bytes, bytes_per_ms: int) -> None:
    step = bytes_per_ms * CHUNK_MS
    for start in range(0, len(audio), step):
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio[start : start + step]).decode()}))


@pytest.mark.asyncio
@pytest.mark.parametrize(("dialect", "audio_format"), [("ga", "pcm16"), ("beta", "g711_ulaw")])
async def test_a_spoken_weather_question_ends_in_a_get_weather_call(dialect: str, audio_format: str) -> None:
    async with RealtimeServer(pace=0, speech="tones") as server:
        protocols = ["realtime", f"openai-insecure-api-key.{server.mint_key()}"]
        if dialect == "beta":
            protocols.append("openai-beta.realtime-v1")
            session: dict[str, Any] = {
                "input_audio_format": audio_format,
                "input_audio_transcription": {"model": "whisper-1"},
                "tools": [WEATHER_TOOL],
            }
        else:
            session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}, "tools": [WEATHER_TOOL]}
        async with connect(server.ws_url, subprotocols=protocols) as ws:
            seen: list[dict[str, Any]] = []
            await _next(ws, "session.created", seen)
            await ws.send(json.dumps({"type": "session.update", "session": session}))
            await _next(ws, "session.updated", seen)
            await _say(ws, _spoken(QUESTION, audio_format), 48 if audio_format == "pcm16" else 8)
            done = await _next(ws, "response.done", seen)
            while not any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in seen):
                await _next(ws, "conversation.item.input_audio_transcription.completed", seen)
    call = done["response"]["output"][0]
    assert (call["type"], call["name"]) == ("function_call", "get_weather")
    transcribed = next(e for e in seen if e["type"] == "conversation.item.input_audio_transcription.completed")
    deltas = "".join(e["delta"] for e in seen if e["type"] == "conversation.item.input_audio_transcription.delta")
    assert "weather" in transcribed["transcript"].lower().split() and deltas == transcribed["transcript"]
    assert conformance_failures(dialect, seen) == []


class _Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """The server's timers, fired when the test says: no test waits for wall time to pass."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], _Timer]] = []

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer()
        self.pending.append((delay_s, callback, timer))
        return timer

    def fire(self) -> list[float]:
        """Run every timer not cancelled; the delays they were set for."""
        due = [(delay, callback) for delay, callback, timer in self.pending if not timer.cancelled]
        self.pending.clear()
        for _, callback in due:
            callback()
        return [delay for delay, _ in due]


async def _reply_then(server: RealtimeServer, turn: dict[str, Any], seen: list[dict[str, Any]]) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{server.mint_key()}"])
    await _next(ws, "session.created", seen)
    session = {"type": "realtime", "output_modalities": ["text"], "audio": {"input": {"turn_detection": turn}}}
    await ws.send(json.dumps({"type": "session.update", "session": session}))
    await _next(ws, "session.updated", seen)
    await ws.send(json.dumps({"type": "response.create"}))
    await _next(ws, "response.done", seen)
    return ws


@pytest.mark.asyncio
async def test_idle_timeout_prompts_a_silent_user() -> None:
    timers = ManualTimers()
    turn = {"type": "server_vad", "idle_timeout_ms": 5000}
    async with RealtimeServer(pace=20, speech="tones", schedule=timers.schedule) as server:
        seen: list[dict[str, Any]] = []
        async with await _reply_then(server, turn, seen) as ws:
            # The timer runs in the server's simulated time: 5 s of silence at pace 20 (the reply was text).
            assert timers.fire() == [5000 / 20 / 1000]
            triggered = await _next(ws, "input_audio_buffer.timeout_triggered", seen)
            committed = await _next(ws, "input_audio_buffer.committed", seen)
            await _next(ws, "response.done", seen)
        assert committed["item_id"] == triggered["item_id"] and conformance_failures("ga", seen) == []
        # A user who acts in time is not prompted: acting disarms the timer.
        seen = []
        async with await _reply_then(server, turn, seen) as ws:
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await _next(ws, "input_audio_buffer.cleared", seen)
            assert timers.fire() == []
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await _next(ws, "input_audio_buffer.cleared", seen)
    assert not any(e["type"] == "input_audio_buffer.timeout_triggered" for e in seen)
