"""The local server under a flood of bad client events: memory kept, state size, time per event.

    ./build.sh bench            (or: .venv/bin/python bench/bench_server.py)

One connection sends 100,000 invalid ``session.update`` events (each answered with an ``error``), then
closes. Prints the process's resident memory before, at the end of the flood and after the close
(the issue measured +61 MB kept by the old server, and a 41 MB ``/_test/state``), the size of the
test state, and the server's time per event: rejected and valid events, with the JSON round trip
alone (``json.loads`` + ``json.dumps`` of the same events) as the reference measured in the same run.
Then the event loop's longest stall while an utterance is recognized: in the worker process (what
the server does) against the same recognition in a thread (the reference: PocketSphinx holds the GIL).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "server" / "src")]

from websockets.asyncio.client import connect  # noqa: E402

from pyodide_realtime_server import RealtimeServer  # noqa: E402
from pyodide_realtime_server._schema import validate_client_event  # noqa: E402

BAD_EVENTS = 100_000
WINDOW = 500  # events in flight before reading their answers
ROUNDS = 5
TIMED_EVENTS = 2_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def flood(server: RealtimeServer) -> None:
    async with connect(server.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{server.mint_key()}"]) as ws:
        await ws.recv()
        for start in range(0, BAD_EVENTS, WINDOW):
            for index in range(start, min(start + WINDOW, BAD_EVENTS)):
                await ws.send(json.dumps({"type": "session.update", "event_id": f"e{index}", "session": {"bogus": index}}))
            for _ in range(start, min(start + WINDOW, BAD_EVENTS)):
                await ws.recv()
        print(f"at the end of the flood: {rss_mb():7.1f} MB resident")


def per_event_us(events: list[str], work: object) -> tuple[float, float]:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for text in events:
            work(text)  # type: ignore[operator]
        rounds.append((time.perf_counter() - started) / len(events) * 1e6)
    return statistics.median(rounds), statistics.stdev(rounds)


def timing() -> None:
    bad = [json.dumps({"type": "session.update", "session": {"bogus": i}}) for i in range(TIMED_EVENTS)]
    good = [
        json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": f"Be brief {i}.", "tools": []}})
        for i in range(TIMED_EVENTS)
    ]

    def round_trip(text: str) -> None:
        json.dumps(json.loads(text))

    def validate(text: str) -> None:
        try:
            validate_client_event("ga", json.loads(text))
        except Exception:
            pass

    reference, reference_spread = per_event_us(bad, round_trip)
    print(f"reference (JSON round trip): {reference:6.1f} us/event (sd {reference_spread:.1f})")
    for name, events in (("rejected event", bad), ("valid event", good)):
        median, spread = per_event_us(events, validate)
        print(f"schema check, {name:15s}: {median:6.1f} us/event (sd {spread:.1f}), {median / reference:4.1f}x the reference")


async def longest_stall_ms(work: object) -> tuple[float, float]:
    """The event loop's longest stall while ``work()`` is awaited, and how long it took (ms)."""
    worst = 0.0
    done = False

    async def tick() -> None:
        nonlocal worst
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - started - 0.005)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    await work()  # type: ignore[operator]
    took = time.perf_counter() - started
    done = True
    await ticker
    return worst * 1000, took * 1000


async def recognition() -> None:
    import subprocess

    from pyodide_realtime_server import _audio, _recognizer
    from pyodide_realtime_server._listener import Listener
    from pyodide_realtime_server._speech import _wav_payload

    if not _recognizer.available():
        print("recognition: pocketsphinx is not installed")
        return
    wav = subprocess.run(["espeak-ng", "--stdout", "What is the weather in Paris? Hello, can you hear me?"], capture_output=True, check=True)
    rate, payload = _wav_payload(wav.stdout)
    samples = _audio.resample_linear(_audio.samples_from_pcm16(payload), rate, _audio.PCM16_RATE)
    listener = Listener()
    await listener.recognize(samples, _audio.PCM16_RATE, ["get_weather"])  # start the worker
    _recognizer.recognize(samples, _audio.PCM16_RATE, ["get_weather"])  # and the in-process decoders
    apart = [await longest_stall_ms(lambda: listener.recognize(samples, _audio.PCM16_RATE, ["get_weather"])) for _ in range(ROUNDS)]
    threaded = [
        await longest_stall_ms(lambda: asyncio.to_thread(_recognizer.recognize, samples, _audio.PCM16_RATE, ["get_weather"]))
        for _ in range(ROUNDS)
    ]
    await listener.close()
    seconds = len(samples) / _audio.PCM16_RATE
    for name, runs in (("worker process", apart), ("thread (reference)", threaded)):
        stall = statistics.median(r[0] for r in runs)
        took = statistics.median(r[1] for r in runs)
        print(f"recognizing {seconds:.1f} s of speech in a {name:18s}: {took:5.0f} ms, longest loop stall {stall:6.1f} ms")


async def main() -> None:
    async with RealtimeServer(pace=0, speech="tones", test_endpoints=True) as server:
        gc.collect()
        before = rss_mb()
        print(f"before the flood:          {before:7.1f} MB resident")
        started = time.perf_counter()
        await flood(server)
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_mb()
        state = json.dumps(server.state.snapshot())
        record = server.state.connections[0]
        print(f"after the close:           {after:7.1f} MB resident ({after - before:+.1f} MB)")
        print(f"/_test/state:              {len(state) / 1024:7.1f} KB ({len(record.errors)} errors kept, {record.errors_left_out} counted)")
        print(f"throughput:                {BAD_EVENTS / elapsed:7.0f} rejected events/s over one WebSocket")
    timing()
    await recognition()


if __name__ == "__main__":
    asyncio.run(main())
