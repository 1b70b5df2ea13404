"""WebSocket against WebRTC, in the same run, in Chromium, against the local server (WebRTC: its aiortc
peer on 127.0.0.1).

    ./build.sh bench            (or: .venv/bin/python bench/bench_webrtc.py after ./build.sh dist)

Each round connects a session over each transport in turn (the order alternates) and measures:
- connect: ``session.connect()`` from the call (a click) to its return (socket / data channel open);
- first audio: from ``send_message`` to the reply's first audio reaching the page (WebSocket: the first
  ``audio`` event, as played by the session's player; WebRTC: ``output_audio_buffer.started``, the
  server starting the track);
- uplink while speaking: bytes a second the microphone's audio costs on the wire while it sends
  (WebSocket: the ``input_audio_buffer.append`` frames' bytes; WebRTC: the track's RTP payload, from
  ``getStats``), over ``UPLINK_S`` of the fake microphone's tone;
- interruption to silence: from ``interrupt()`` to the audio stopping (WebSocket: the page's player
  stops in the call; WebRTC: ``output_audio_buffer.cleared``, the server stopping the track).
Prints medians with min, max and spread, and WebRTC's ratio to the WebSocket's within each round.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, chromium_page, load_report, spread_percent, summary  # noqa: E402

ROUNDS = 5
UPLINK_S = 3.0
TRANSPORTS = ("websocket", "webrtc")
PAGES = ROOT / "tests" / "browser" / "pages"

ROUND = """
import asyncio, time
from pyodide_realtime import (AssistantMessageItem, OpenAIRealtimeWebRTC, OpenAIRealtimeWebSocket, RealtimeAgent,
                              RealtimeSession)

KIND, HTTP_URL, WS_URL, KEY, UPLINK_S = {args!r}
out = {{}}
events = {{}}
def mark(name):
    events.setdefault(name, time.monotonic())

async def until(predicate, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("never: " + what)
        await asyncio.sleep(0.005)

if KIND == "webrtc":
    transport = OpenAIRealtimeWebRTC(url=HTTP_URL)
    transport.mute(True)  # the tone would be a turn of its own: it is heard only while measured
else:
    transport = OpenAIRealtimeWebSocket(url=WS_URL)
config = {{"turn_detection": None}}  # the tone is measured as upload, not answered
session = RealtimeSession(RealtimeAgent(name="a", instructions="Be brief."), transport=transport, audio=True,
                          microphone=True, config=config)
transport.on("audio", lambda e: mark("audio"))
transport.on("output_audio_buffer.started", lambda e: mark("started"))
transport.on("output_audio_buffer.cleared", lambda e: mark("cleared"))
t0 = time.monotonic()
await session.connect(api_key=KEY)
out["connect_ms"] = (time.monotonic() - t0) * 1000
if KIND == "websocket":
    session.mute(True)
    sent = [0]
    socket = transport._link.socket
    send = socket.send
    def counting(text):
        if '"input_audio_buffer.append"' in text[:40]:
            sent[0] += len(text.encode())
        send(text)
    socket.send = counting

# Uplink: the microphone's tone for UPLINK_S.
if KIND == "webrtc":
    before, _ = await transport._link.socket.bytes_sent()
session.mute(False)
start = time.monotonic()
await asyncio.sleep(UPLINK_S)
session.mute(True)
elapsed = time.monotonic() - start
if KIND == "webrtc":
    after, _ = await transport._link.socket.bytes_sent()
    out["uplink_bps"] = (after - before) / elapsed
else:
    out["uplink_bps"] = sent[0] / elapsed

# First audio, then an interruption while it plays.
t1 = time.monotonic()
await session.send_message("please tell me about the weather in Paris in every season of the year, one after the other")
first = "audio" if KIND == "websocket" else "started"
await until(lambda: first in events, "the first audio")
out["first_audio_ms"] = (events[first] - t1) * 1000
await asyncio.sleep(0.5)
t2 = time.monotonic()
session.interrupt()
if KIND == "websocket":
    player = session.voice.player
    await until(lambda: player.playing is None, "the player stopped")
    out["interrupt_ms"] = (time.monotonic() - t2) * 1000
else:
    await until(lambda: "cleared" in events, "the server's track stopped")
    out["interrupt_ms"] = (events["cleared"] - t2) * 1000
session.close()
out
"""


def run_round(page: Any, kind: str, server: Any) -> dict[str, float]:
    http_url = f"{server.url.rstrip('/')}/v1/realtime/calls"
    code = ROUND.format(args=(kind, http_url, server.ws_url, server.mint_key(), UPLINK_S))
    result = page.evaluate("async (code) => (await pyodide.runPythonAsync(code)).toJs({dict_converter: Object.fromEntries})", code)
    return {k: float(v) for k, v in result.items()}


def main() -> None:
    from pyodide_realtime_server import start_in_thread

    server = start_in_thread(host="127.0.0.1", port=0, web_root=str(PAGES), mounts={"/pyodide": ROOT / "dist" / "pyodide"},
                             speech="tones")
    rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in TRANSPORTS}
    try:
        with chromium_page() as page:
            page.goto(f"{server.url.rstrip('/')}/engine.html")
            page.wait_for_function("window.pyodideReady === true || window.pyodideError", timeout=120_000)
            for n in range(ROUNDS):
                for kind in TRANSPORTS if n % 2 == 0 else TRANSPORTS[::-1]:
                    rounds[kind].append(run_round(page, kind, server))
    finally:
        server.stop()
    print(f"WebSocket against WebRTC in Chromium, {ROUNDS} rounds; {load_report()}")
    print(f"{'':<40}{'median':>10}{'min':>10}{'max':>10}{'spread':>9}")
    figures = (("connect", "connect_ms", "ms"), ("first audio", "first_audio_ms", "ms"),
               ("uplink while speaking", "uplink_bps", "B/s"), ("interruption to silence", "interrupt_ms", "ms"))
    for label, key, unit in figures:
        for kind in TRANSPORTS:
            values = [r[key] for r in rounds[kind]]
            med, lo, hi = summary(values)
            print(f"{label + ' (' + kind + ')':<40}{med:>10,.0f}{lo:>10,.0f}{hi:>10,.0f}{spread_percent(values):>8.0f}%  {unit}")
        ratios = [rtc[key] / ws[key] for ws, rtc in zip(rounds["websocket"], rounds["webrtc"], strict=True) if ws[key]]
        if ratios:
            print(f"{'  webrtc / websocket':<40}{statistics.median(ratios):>10.2f}{min(ratios):>10.2f}{max(ratios):>10.2f}")


if __name__ == "__main__":
    main()
