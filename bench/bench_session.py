"""What the session layer costs on top of the transport, in CPython, on the scripted transport (no network).

    ./build.sh bench            (or: PYTHONPATH=src .venv/bin/python bench/bench_session.py)

1. Per event: a reply of 1,000 audio deltas (100 ms each) and 1,000 transcript deltas, fed through the
   transport alone (an ``audio`` listener) and through a session on it (history, events, raw events,
   the unread-event queue). Rounds interleave the two; the ratio is taken within each round.
2. Memory held by events nobody reads: 100 audio deltas of 4 s each (19.2 MB of audio) and no
   ``async for``; traced memory held afterwards, against the audio received (the bound:
   ``MAX_QUEUED_BYTES``, 8 MiB, and the raw events' deltas within it).
Prints medians with min, max and spread.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, spread_percent, summary  # noqa: E402

sys.path.insert(0, str(ROOT / "src"))
from pyodide_realtime import RealtimeAgent, RealtimeSession  # noqa: E402
from pyodide_realtime.testing import ScriptedRealtimeTransport  # noqa: E402

ROUNDS = 7
DELTAS = 1000
UNREAD_DELTAS = 100
UNREAD_DELTA_BYTES = 192_000


def reply_frames(deltas: int, delta_bytes: int) -> list[str]:
    base = {"response_id": "r1", "item_id": "m1", "output_index": 0, "content_index": 0}
    audio = base64.b64encode(bytes(delta_bytes)).decode()
    frames = [
        {"type": "response.created", "response": {"id": "r1", "status": "in_progress", "output": []}},
        {"type": "conversation.item.added", "item": {"id": "m1", "type": "message", "role": "assistant", "content": []}},
    ]
    for _ in range(deltas):
        frames.append({"type": "response.output_audio.delta", **base, "delta": audio})
        frames.append({"type": "response.output_audio_transcript.delta", **base, "delta": " word"})
    return [json.dumps(frame) for frame in frames]


async def feed(with_session: bool, frames: list[str]) -> tuple[float, Any]:
    transport = ScriptedRealtimeTransport()
    session = RealtimeSession(RealtimeAgent(name="A"), transport=transport) if with_session else None
    transport.on("audio", lambda event: None)
    await transport.connect()
    await transport.idle()
    handler = transport._socket_now.handler  # type: ignore[union-attr]
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        handler.on_message(frame)
    elapsed = time.perf_counter() - start
    return elapsed / len(frames) * 1e6, session or transport


async def per_event() -> None:
    frames = reply_frames(DELTAS, 4800)
    alone, layered, ratios = [], [], []
    for _ in range(ROUNDS):
        a, t = await feed(False, frames)
        s, session = await feed(True, frames)
        t.close()
        session.close()
        alone.append(a)
        layered.append(s)
        ratios.append(s / a)
    for label, values in (("transport alone", alone), ("with a session", layered)):
        med, lo, hi = summary(values)
        print(f"  {label:<18} {med:7.1f} us/event (min {lo:.1f}, max {hi:.1f}, spread {spread_percent(values):.0f}%)")
    med, lo, hi = summary(ratios)
    print(f"  session / transport x{med:.2f} ({lo:.2f}-{hi:.2f})")


async def unread_memory() -> None:
    frames = reply_frames(UNREAD_DELTAS, UNREAD_DELTA_BYTES)
    held = []
    for _ in range(3):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        _, session = await feed(True, frames)
        gc.collect()
        held.append((tracemalloc.get_traced_memory()[0] - before) / 1e6)
        tracemalloc.stop()
        dropped = session.dropped_events
        session.close()
    received = UNREAD_DELTAS * UNREAD_DELTA_BYTES / 1e6
    med, lo, hi = summary(held)
    print(f"  {UNREAD_DELTAS} unread deltas, {received:.1f} MB of audio: {med:.1f} MB held (min {lo:.1f}, max {hi:.1f}); {dropped} events dropped unread")


async def main() -> None:
    print("per event, a spoken reply (PCM16 100 ms deltas and transcript deltas):")
    await per_event()
    print("memory held by events nobody reads:")
    await unread_memory()


if __name__ == "__main__":
    asyncio.run(main())
