"""The local server's WebRTC calls: how long a call takes to answer and open, and to go quiet.

    ./build.sh bench            (or: .venv/bin/python bench/bench_server_webrtc.py)

A real aiortc peer (tests/cpython/webrtc_peer.py) on loopback, ROUNDS calls in a row. Per call: the
POST of the offer until the 201 answer (the server's ICE gathering on 127.0.0.1 included), the answer
until the data channel is open (ICE checks, DTLS, SCTP), and until ``session.created``; the same
``session.created`` over the WebSocket (connect to first event) is the reference, measured in the same
run. Then, mid-reply, ``output_audio_buffer.clear`` until ``output_audio_buffer.cleared`` arrives and
until the remote track is silent. Medians with their spread (min-max); the machine is shared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "server" / "src"), str(ROOT / "tests" / "cpython")]

from aiortc import RTCSessionDescription  # noqa: E402
from webrtc_peer import LOUD_RMS, WebRtcClient, post  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from pyodide_realtime_server import RealtimeServer  # noqa: E402

ROUNDS = 15
QUESTION = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Tell me " + "a long story " * 10}]}


def summary(name: str, values_ms: list[float], reference_ms: float | None = None) -> None:
    median = statistics.median(values_ms)
    ratio = f"  x{median / reference_ms:5.1f} the WebSocket's" if reference_ms else ""
    print(f"{name:<44} median {median:7.1f} ms  (min {min(values_ms):6.1f}, max {max(values_ms):6.1f}){ratio}")


async def one_call(server: RealtimeServer) -> tuple[float, float, float, float, float]:
    client = WebRtcClient()
    try:
        offer = await client.offer()
        started = time.perf_counter()
        answer = await post(f"{server.url}v1/realtime/calls", server.mint_key(), offer)
        answered = time.perf_counter()
        await client.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await client.opened.wait()
        opened = time.perf_counter()
        await client.next("session.created")
        created = time.perf_counter()
        client.send({"type": "conversation.item.create", "item": QUESTION})
        client.send({"type": "response.create"})
        await client.next("output_audio_buffer.started")
        await client.speaker.wait_for(lambda speaker: speaker.loud_frames() >= 5)
        clear_at = time.perf_counter()
        heard = len(client.speaker.frames)
        client.send({"type": "output_audio_buffer.clear"})
        await client.next("output_audio_buffer.cleared")
        cleared = time.perf_counter()
        # Silent from here on: the first frame after which 10 frames in a row are silent.
        await client.speaker.wait_for(lambda s: len(s.frames) > heard + 10 and all(rms < LOUD_RMS for _, rms in s.frames[-10:]))
        frames = client.speaker.frames
        last_loud = max(i for i, (_, rms) in enumerate(frames) if rms >= LOUD_RMS)
        quiet_ms = (last_loud + 1 - heard) * 20.0  # frames still heard after the clear was sent
        return (answered - started) * 1000, (opened - answered) * 1000, (created - started) * 1000, (cleared - clear_at) * 1000, quiet_ms
    finally:
        await client.close()


async def websocket_session_created(server: RealtimeServer) -> float:
    started = time.perf_counter()
    async with connect(server.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{server.mint_key()}"]) as ws:
        await ws.recv()
        return (time.perf_counter() - started) * 1000


async def main() -> None:
    print(f"WebRTC calls on loopback, {ROUNDS} rounds (load average {os.getloadavg()[0]:.2f})")
    async with RealtimeServer(pace=0, speech="tones") as server:
        await one_call(server)  # warm-up: imports, codecs, the first certificate
        calls = [await one_call(server) for _ in range(ROUNDS)]
        websocket = [await websocket_session_created(server) for _ in range(ROUNDS)]
    reference = statistics.median(websocket)
    summary("offer POSTed -> 201 answer", [c[0] for c in calls])
    summary("answer -> data channel open", [c[1] for c in calls])
    summary("offer POSTed -> session.created", [c[2] for c in calls], reference)
    summary("WebSocket connect -> session.created (reference)", websocket)
    summary("output_audio_buffer.clear -> .cleared", [c[3] for c in calls])
    summary("voice heard after the clear (frames x 20 ms)", [c[4] for c in calls])


if __name__ == "__main__":
    asyncio.run(main())
