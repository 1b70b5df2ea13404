"""The same session over both transports, WebSocket and WebRTC, against the local server (its aiortc
peer on 127.0.0.1), in Chromium and Firefox: text, a spoken question that calls a tool, an
interruption (the history trimmed where the audio stopped), and mute. Then WebRTC's bad input: a
refused key, an SDP the server refuses, a data channel that never opens, a peer that drops.

WebKit is not run here: its WebKitGTK MiniBrowser under WebKitWebDriver has no RTCPeerConnection
(docs/engines.md). Every wait is on a state the page reaches (an item in the history, an event), with
a deadline only so that a failure ends.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import Engine, Page, in_page, open_engine

WEBRTC_ENGINES = ("chromium", "firefox")
TRANSPORTS = ("websocket", "webrtc")
#: What the spoken question says (espeak-ng), as the demo's end-to-end test asks it.
SPOKEN_QUESTION = "What is the weather in Paris?"
PCM_RATE_HZ = 24_000


@pytest.fixture(scope="module", params=WEBRTC_ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """This module's own engines (the shared ones' ``page`` fixture uses it): Firefox with its microphone
    granted by permission, which WebRTC needs and which would change the other modules' autoplay policy."""
    with open_engine(request.param, tmp_path_factory.mktemp(f"webrtc-{request.param}"), webrtc=True) as started:
        yield started


@pytest.fixture(scope="module")
def question_pcm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The spoken question as PCM16 24 kHz mono, base64 (what the page plays into its microphone track,
    or sends as the WebSocket transport's microphone would)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise RuntimeError("espeak-ng and sox are needed: ./build.sh setup installs them")
    folder = tmp_path_factory.mktemp("question")
    raw, pcm = folder / "raw.wav", folder / "question.raw"
    subprocess.run([espeak, "-w", str(raw), SPOKEN_QUESTION], check=True)
    subprocess.run([sox, str(raw), "-r", str(PCM_RATE_HZ), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw",
                    str(pcm)], check=True)
    return base64.b64encode(Path(pcm).read_bytes()).decode()


@pytest.fixture
def server(engine_server: Any) -> Any:
    engine_server.reset()
    return engine_server


# The session scenarios, over both transports ---------------------------------------------------------
@in_page
async def _converse(kind, http_url, ws_url, key, scenario, question_b64):
    import asyncio
    import base64

    import js

    from pyodide_realtime import (
        AssistantMessageItem,
        OpenAIRealtimeWebRTC,
        OpenAIRealtimeWebSocket,
        RealtimeAgent,
        RealtimeSession,
        RealtimeToolCallItem,
        UserMessageItem,
        function_tool,
    )

    @function_tool
    def get_weather(location: str) -> dict:
        """The weather at a place."""
        return {"location": location, "forecast": "sunny"}

    async def until(predicate, what, seconds=25):
        deadline = asyncio.get_running_loop().time() + seconds
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"never: {what}; history: {session.history!r}")
            await asyncio.sleep(0.02)

    pcm = base64.b64decode(question_b64) if question_b64 else b""
    stream = context = None
    speaking = scenario in ("question", "mute")
    if kind == "webrtc":
        if scenario == "question":  # the question, played into the microphone track
            context = js.AudioContext.new()
            await context.resume()
            from array import array

            ints = memoryview(pcm).cast("h")
            floats = array("f", (s / 32768 for s in ints))
            samples = js.Float32Array.new(len(floats))
            samples.assign(floats)
            buffer = context.createBuffer(1, len(ints), 24000)
            buffer.copyToChannel(samples, 0)
            source = context.createBufferSource()
            source.buffer = buffer
            destination = context.createMediaStreamDestination()
            source.connect(destination)
            # A microphone never stops sending; a Web Audio stream whose sources ended does (Chromium
            # sends no more packets), and the server's VAD would never hear the silence after the question.
            silence = context.createConstantSource()
            silence.offset.value = 0
            silence.connect(destination)
            silence.start()
            stream = destination.stream
        transport = OpenAIRealtimeWebRTC(url=http_url, microphone=speaking, media_stream=stream)
        if scenario == "mute":
            transport.mute(True)  # from the start: the track is added disabled
    else:
        transport = OpenAIRealtimeWebSocket(url=ws_url)
    agent = RealtimeAgent(name="assistant", instructions="Be brief.", tools=[get_weather])
    session = RealtimeSession(agent, transport=transport, audio=(kind == "websocket" and scenario != "question"),
                              microphone=(scenario == "mute"))
    events = []
    transport.on("*", lambda e: events.append(e.type))
    await session.connect(api_key=key)
    result = {"kind": type(transport).__name__}
    try:
        if scenario == "text":
            await session.send_message("hello there")
            await until(lambda: any(isinstance(i, AssistantMessageItem) and "You said: hello there" in i.text
                                    and i.status == "completed" for i in session.history), "the reply")
        elif scenario == "question":
            if kind == "webrtc":
                source.start()
            else:  # as the WebSocket transport's microphone sends it: chunks, then a second of silence
                chunk = 24000 * 2 // 25
                for at in range(0, len(pcm), chunk):
                    session.send_audio(pcm[at : at + chunk])
                    await asyncio.sleep(0)
                session.send_audio(bytes(24000 * 2))
            await until(lambda: any(isinstance(i, RealtimeToolCallItem) and i.output is not None for i in session.history),
                        "the tool's answer")
            await until(lambda: any(isinstance(i, AssistantMessageItem) and "get_weather tool says" in i.text
                                    for i in session.history), "the reply with the tool's answer")
            (call,) = [i for i in session.history if isinstance(i, RealtimeToolCallItem)]
            result["call"] = (call.name, call.output)
            result["heard"] = [i.text for i in session.history if isinstance(i, UserMessageItem)]
        elif scenario == "interrupt":
            await session.send_message("please tell me everything you know about the weather in Paris in the spring, "
                                       "in the summer, in the autumn and in the winter, one season after the other")
            if kind == "webrtc":
                await until(lambda: "output_audio_buffer.started" in events, "the reply's audio on the track")
            else:
                await until(lambda: session.voice.player.playing is not None and session.voice.player.playing.heard_ms > 0,
                            "the reply heard")
            await until(lambda: any(isinstance(i, AssistantMessageItem) and len(i.text) > 40 for i in session.history),
                        "some of the transcript")
            session.interrupt()
            await until(lambda: any(isinstance(i, AssistantMessageItem) and i.heard_ms is not None for i in session.history),
                        "the history trimmed")
            await until(lambda: "conversation.item.truncated" in events, "the server's truncation")
            if kind == "webrtc":
                await until(lambda: "output_audio_buffer.cleared" in events, "the server's track stopped")
            (reply,) = [i for i in session.history if isinstance(i, AssistantMessageItem)]
            result["reply"] = (reply.text, reply.unheard_text, reply.heard_ms)
            result["events"] = [e for e in events if e.startswith(("output_audio_buffer", "conversation.item.truncated"))]
        elif scenario == "mute":
            session.mute(True)  # WebSocket: as soon as its microphone is there (WebRTC: from the start)
            if kind == "webrtc":
                result["track_enabled"] = transport._link.socket.track_enabled
            else:
                result["track_enabled"] = not session.voice.microphone.muted

            async def reply_to(text):
                await session.send_message(text)  # a muted session still talks
                await until(lambda: any(isinstance(i, AssistantMessageItem) and f"You said: {text}" in i.text
                                        and i.status == "completed" for i in session.history), f"the reply to {text!r}")

            def count(name):
                return events.count(f"input_audio_buffer.{name}")

            # What the microphone sent before the mute (a WebSocket's first chunks, which the server may
            # take for speech and answer instead of the text) is heard and answered first.
            await session.send_message("hello there")
            await until(lambda: any(isinstance(i, AssistantMessageItem) and i.status == "completed" for i in session.history),
                        "a first reply")
            await until(lambda: count("speech_started") == count("speech_stopped")
                        and events.count("response.created") == events.count("response.done"), "quiet")
            before = count("speech_started")
            await reply_to("hello again")  # a while of the microphone's tone, muted
            result["speech_while_muted"] = count("speech_started") - before
            session.mute(False)  # the tone is heard again
            await until(lambda: count("speech_started") > before, "speech after unmuting")
            result["muted_after"] = transport.muted
        result["status"] = transport.status
    finally:
        session.close()
        if context is not None:
            await context.close()
    result["closed"] = transport.status
    return result


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_text(page: Page, server: Any, kind: str) -> None:
    result = _converse(page, kind, f"{server.url.rstrip('/')}/v1/realtime/calls", server.ws_url, server.mint_key(), "text", "")
    assert result["kind"] == {"websocket": "OpenAIRealtimeWebSocket", "webrtc": "OpenAIRealtimeWebRTC"}[kind]
    assert result["status"] == "connected" and result["closed"] == "disconnected"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_spoken_question_calls_the_tool(page: Page, server: Any, kind: str, question_pcm: str) -> None:
    result = _converse(page, kind, f"{server.url.rstrip('/')}/v1/realtime/calls", server.ws_url, server.mint_key(),
                       "question", question_pcm)
    name, output = result["call"]
    assert name == "get_weather" and '"forecast":"sunny"' in output.replace(" ", "")
    assert any("weather" in heard for heard in result["heard"])  # what the server heard
    if kind == "webrtc":  # the question went up as a track, never as events
        received = [e["type"] for c in server.state()["connections"] for e in c["received"]]
        assert "input_audio_buffer.append" not in received


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_an_interruption_trims_the_history_where_the_audio_stopped(page: Page, server: Any, kind: str) -> None:
    result = _converse(page, kind, f"{server.url.rstrip('/')}/v1/realtime/calls", server.ws_url, server.mint_key(),
                       "interrupt", "")
    text, unheard, heard_ms = result["reply"]
    assert heard_ms > 0 and unheard  # cut: what was not heard is kept apart
    assert "conversation.item.truncated" in result["events"]
    (truncation,) = server.state()["truncations"]
    assert truncation["audio_end_ms"] == heard_ms
    if kind == "webrtc":  # the server truncated, at the clear the client sent
        assert "output_audio_buffer.cleared" in result["events"]
        received = [e["type"] for c in server.state()["connections"] for e in c["received"]]
        assert "output_audio_buffer.clear" in received and "conversation.item.truncate" not in received


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_mute_silences_the_microphone(page: Page, server: Any, kind: str) -> None:
    result = _converse(page, kind, f"{server.url.rstrip('/')}/v1/realtime/calls", server.ws_url, server.mint_key(),
                       "mute", "")
    assert result["track_enabled"] is False
    assert result["speech_while_muted"] == 0
    assert result["muted_after"] is False


# WebRTC's bad input ------------------------------------------------------------------------------------
@in_page
async def _failing_connect(http_url, key, fault, timeout):
    import asyncio

    import js
    from pyodide.code import run_js

    from pyodide_realtime import OpenAIRealtimeWebRTC, RealtimeError

    # Faults the page cannot cause by itself, put between it and the server: the offer or the
    # answer, changed on the way (window.fetch wrapped for this call only).
    run_js("""
    (fault) => {
      const original = window.fetch;
      window.__restoreFetch = () => { window.fetch = original; };
      window.__tracks = [];
      const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      window.__restoreGum = () => { navigator.mediaDevices.getUserMedia = gum; };
      navigator.mediaDevices.getUserMedia = async (c) => {
        const s = await gum(c);
        window.__tracks.push(...s.getTracks());
        return s;
      };
      window.fetch = async (url, init) => {
        if (fault === "garbled-offer") {
          init = Object.assign({}, init, { body: "v=0\\r\\nthis is not a session description\\r\\n" });
        }
        const response = await original(url, init);
        if (fault !== "dead-answer") return response;
        // Every candidate of the answer moved to a port nobody listens on: ICE finds no path.
        const sdp = (await response.text()).replace(/^(a=candidate:\\S+ \\d+ \\S+ \\d+ \\S+ )\\d+/gm, "$19");
        return new Response(sdp, { status: response.status, headers: response.headers });
      };
    }
    """)(fault)
    transport = OpenAIRealtimeWebRTC(url=http_url)
    result = {}
    try:
        await transport.connect(api_key=key, timeout=timeout)
        result["error"] = None
    except RealtimeError as exc:
        result["error"] = (type(exc).__name__, str(exc), getattr(exc, "http_status", None))
    finally:
        js.window.__restoreFetch()
        js.window.__restoreGum()
    result["status"] = transport.status
    result["tracks"] = [str(t.readyState) for t in js.window.__tracks]
    await asyncio.sleep(0)  # the proxies go once the failing callback returned
    return result


def test_a_refused_key_says_so_without_the_key(page: Page, server: Any) -> None:
    key = "ek_not_minted_here_0123456789"
    result = _failing_connect(page, f"{server.url.rstrip('/')}/v1/realtime/calls", key, "none", 30)
    name, message, status = result["error"]
    assert name == "ConnectionFailedError" and status == 401
    assert "refused the key (HTTP 401" in message and key not in message
    assert result["status"] == "disconnected" and result["tracks"] and set(result["tracks"]) == {"ended"}


def test_an_offer_the_server_refuses_is_reported_with_its_message(page: Page, server: Any) -> None:
    result = _failing_connect(page, f"{server.url.rstrip('/')}/v1/realtime/calls", server.mint_key(), "garbled-offer", 30)
    name, message, status = result["error"]
    assert name == "ConnectionFailedError" and status == 400
    assert "refused the WebRTC offer (HTTP 400): The SDP offer" in message  # the server's own words
    assert result["status"] == "disconnected" and set(result["tracks"]) == {"ended"}


def test_a_data_channel_that_never_opens_fails_at_the_deadline_leaving_nothing_open(page: Page, server: Any) -> None:
    result = _failing_connect(page, f"{server.url.rstrip('/')}/v1/realtime/calls", server.mint_key(), "dead-answer", 3)
    name, message, _ = result["error"]
    assert name == "ConnectionFailedError"
    assert "did not open within 3 s" in message and "data channel never opened" in message
    assert result["status"] == "disconnected" and set(result["tracks"]) == {"ended"}  # the microphone released


@in_page
async def _connect_and_keep(http_url, key):
    import builtins

    from pyodide_realtime import ErrorEvent, OpenAIRealtimeWebRTC

    transport = OpenAIRealtimeWebRTC(url=http_url, microphone=False)
    errors = []
    transport.on("error", lambda e: errors.append(e.exception if isinstance(e, ErrorEvent) else e))
    await transport.connect(api_key=key)
    builtins._kept_transport = (transport, errors)  # for the next call, once the host hung up
    return transport.status


@in_page
async def _wait_for_the_end():
    import asyncio
    import builtins

    transport, errors = builtins._kept_transport
    del builtins._kept_transport
    deadline = asyncio.get_running_loop().time() + 60
    while transport.status != "disconnected":
        if asyncio.get_running_loop().time() > deadline:
            transport.close()
            raise AssertionError("the dropped peer was never noticed")
        await asyncio.sleep(0.02)
    return [(type(e).__name__, str(e), getattr(e, "code", None)) for e in errors]


def test_a_peer_that_drops_is_reported_in_words(page: Page, server: Any) -> None:
    assert _connect_and_keep(page, f"{server.url.rstrip('/')}/v1/realtime/calls", server.mint_key()) == "connected"

    def hang_up() -> None:  # the server's side of every call goes, as a crashed or restarted peer's would
        import asyncio

        for call in list(server.server.calls.calls.values()):
            asyncio.ensure_future(call.close())

    server._call(hang_up)
    errors = _wait_for_the_end(page)
    ((name, message, code),) = errors
    assert name == "ConnectionClosedError" and code == 1006
    assert "closed unexpectedly" in message and ("data channel" in message or "ICE" in message)
