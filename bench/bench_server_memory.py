"""The local server's resident memory before, during and after 100 events that each carry a 15 MB string
one level down or more, as anyone who reaches the server (and mints a key) can send them.

    ./build.sh bench            (or: .venv/bin/python bench/bench_server_memory.py)

The server runs as the command line runs it (``python -m pyodide_realtime_server``), once as a demo
server (no test endpoints: no event log) and once with ``--test-endpoints`` (a bounded event log).
One connection sends, in turn: a valid ``session.update`` whose ``instructions`` are the string, a
refused ``session.update`` holding it under an unknown key two levels down, and a
``conversation.item.create`` whose ``input_text`` is the string. Resident memory (``VmRSS``) is read
before the connection, when the server has answered all 100 events (the connection still open), and
after the close (once a second connection has made a round trip, so the first one's clean-up has run).
The goal: after the close within 10 MB of before. Each figure is a median over fresh server processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("PYRT_BENCH_EVENTS", "100"))
STRING_BYTES = 15 * 1024 * 1024
ROUNDS = int(os.environ.get("PYRT_BENCH_ROUNDS", "3"))
GOAL_MB = 10.0
TIMEOUT_S = 600.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _events(big: str) -> list[str]:
    kinds = [
        {"type": "session.update", "session": {"type": "realtime", "instructions": big}},
        {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"unknown": big}}}},
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": big}]},
        },
    ]
    return [json.dumps(kinds[n % len(kinds)]) for n in range(EVENTS)]


def _mint(url: str) -> str:
    request = urllib.request.Request(url + "v1/realtime/client_secrets", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["value"])


async def _open(url: str) -> ClientConnection:
    ws_url = url.replace("http://", "ws://") + "v1/realtime"
    ws = await connect(ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{_mint(url)}"], max_size=None, ping_interval=None)
    await ws.recv()
    return ws


async def _round_trip(ws: ClientConnection, tag: str) -> None:
    """Every earlier event answered: the answer to a retrieve of an unknown item, by its event_id."""
    await ws.send(json.dumps({"type": "conversation.item.retrieve", "event_id": tag, "item_id": "none"}))
    needle = f'"event_id": "{tag}"'.encode()
    while True:
        message = await ws.recv(decode=False)  # the echoes of 15 MB strings: left undecoded
        if len(message) < 100_000 and needle in message and json.loads(message)["type"] == "error":
            return


async def _round(extra: list[str], events: list[str]) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "server" / "src")])}
    env.pop("OPENAI_API_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "pyodide_realtime_server", "--port", "0", "--speech", "tones", "--offline", "--pace", "0", *extra],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        warm = await _open(url)  # one connection first: what any server holds once it has served
        await _round_trip(warm, "warm")
        await warm.close()
        before = rss_mb(server.pid)
        ws = await _open(url)
        for n, event in enumerate(events):
            # One at a time: queued behind megabytes of events, the keepalive pong would come too late.
            await ws.send(event)
            await asyncio.wait_for(_round_trip(ws, f"e{n}"), TIMEOUT_S)
        during = rss_mb(server.pid)
        await ws.close()
        after_ws = await _open(url)
        await _round_trip(after_ws, "after")
        await after_ws.close()
        after = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return before, during, after


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} MB (min {min(values):.1f}, max {max(values):.1f}, spread {max(values) - min(values):.1f})"


async def main() -> int:
    events = _events("x" * STRING_BYTES)
    one, _, _ = os.getloadavg()
    print(f"{EVENTS} events with a {STRING_BYTES // 2**20} MB nested string, {ROUNDS} fresh servers each, load {one:.2f}")
    status = 0
    for label, extra in (("demo server (no event log)", []), ("--test-endpoints (bounded log)", ["--test-endpoints"])):
        rounds = [await _round(extra, events) for _ in range(ROUNDS)]
        before, during, after = ([r[i] for r in rounds] for i in range(3))
        kept = [a - b for b, a in zip(before, after, strict=True)]
        print(f"\n{label}")
        print(f"  before:              {_summary(before)}")
        print(f"  during (all answered): {_summary(during)}")
        print(f"  after the close:     {_summary(after)}")
        print(f"  kept after - before: {_summary(kept)}  (goal: <= {GOAL_MB:.0f} MB)")
        print(f"  during / before:     x{statistics.median(d / b for b, d in zip(before, during, strict=True)):.2f}")
        if statistics.median(kept) > GOAL_MB:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
