"""Per-event cost of the transport in Chromium, against the JS reference measured in the same page.

    ./build.sh bench            (or: .venv/bin/python bench/bench_transport.py after ./build.sh dist)
    .venv/bin/python bench/bench_transport.py --dist DIR   (another build's dist/pyodide)
    .venv/bin/python bench/bench_transport.py --compare DIR [--rounds N]
        (one more segment, "compared": our transport from another build's dist/pyodide, in a second
        Pyodide in the same page, so two builds are timed in the same rounds, under the same load)

Segments, each fed the same 4,080-message mix (notes/performance.md) through the same fake WebSocket:
- reference: @openai/agents-realtime 0.20.0's OpenAIRealtimeWebSocket with an `audio` listener;
- js-floor: JSON.parse + base64 decode + switch, the least any transport does;
- pyodide-realtime: our transport (browser backend, bulk byte crossing, pydantic parsing) with an
  `audio` listener;
- naive-python: a Python listener that takes each `event.data` as a str, then parses it with our
  events module (what a straightforward port would do).
Prints microseconds per event (median of the rounds, min, max, and the spread (max - min) / median),
events per second, and each segment's ratio to the reference. Rounds interleave the segments, so a
ratio is taken within each round (the same machine load on both sides) and its median and range are
printed: on a busy machine the microseconds grow, the ratios move much less.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _harness import ROOT, chromium_page, load_report, spread_percent, static_server, summary

BENCH = ROOT / "bench"
CACHE = ROOT / ".cache" / "bench"
ROUNDS = 9
TARGET_RATIO = 0.6

SETUP_OURS = """
import js
from pyodide.ffi import create_proxy
from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime.events import parse_server_event

audio_seen = [0]
def on_audio(event):
    audio_seen[0] += len(event.data)

transport = OpenAIRealtimeWebSocket()
transport.on("audio", on_audio)
await transport.connect(api_key="ek_bench", model="gpt-realtime")

# The naive crossing: a str per message.
naive_socket = js.bench.FakeWebSocket.new("ws://naive", [])
naive_audio_seen = [0]
def naive_listener(event):
    parsed = parse_server_event(event.data)
    if parsed is not None and parsed.type == "response.output_audio.delta":
        naive_audio_seen[0] += len(parsed.delta)
naive_proxy = create_proxy(naive_listener)
naive_socket.addEventListener("message", naive_proxy)
"""


def bundle_reference() -> Path:
    """npm ci in bench/ and an esbuild bundle of the reference, when its inputs changed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / "reference.js"
    lock = BENCH / "package-lock.json"
    if not (BENCH / "node_modules" / ".bin" / "esbuild").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, check=True,
                       stdout=subprocess.DEVNULL)  # its "added N packages" is not a figure
    if not out.exists() or out.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [str(BENCH / "node_modules/.bin/esbuild"), "reference-entry.mjs", "--bundle", "--format=iife",
             "--global-name=AgentsRealtime", "--platform=browser", f"--outfile={out}", "--log-level=error"],
            cwd=BENCH, check=True,
        )
    return out


USAGE = """usage: bench_transport.py [--dist DIR] [--compare DIR] [--rounds N]
  DIR: a dist/pyodide with our wheel and its lock (--dist: the build measured; --compare: another one,
  measured in the same rounds as a "compared" segment)"""


def main(argv: list[str]) -> int:
    dist = ROOT / "dist" / "pyodide"
    compare: Path | None = None
    rounds = ROUNDS
    args = list(argv)
    try:
        while args:
            flag, value = args.pop(0), args.pop(0)
            if flag == "--dist":
                dist = Path(value).resolve()
            elif flag == "--compare":
                compare = Path(value).resolve()
            elif flag == "--rounds" and int(value) > 0:
                rounds = int(value)
            else:
                raise ValueError(flag)
    except (IndexError, ValueError):
        print(USAGE, file=sys.stderr)
        return 2
    bundle_reference()
    load_before = load_report()
    mounts = {"/pyodide/": dist, "/bench/": BENCH, "/bench-cache/": CACHE}
    if compare is not None:
        mounts["/pyodide-compare/"] = compare
    with static_server(mounts) as base, chromium_page() as page:
        page.goto(f"{base}/bench/transport.html" + ("?compare" if compare is not None else ""))
        page.wait_for_function("window.benchReady === true", timeout=120_000)
        results = page.evaluate(
            """async ([setup, rounds]) => {
                const messages = bench.makeMessages();
                let audioBytesRef = 0, audioBytesFloor = 0;
                const ref = await bench.referenceSocket((e) => { audioBytesRef += e.data.byteLength; });
                const floor = bench.floorSocket((bytes) => { audioBytesFloor += bytes.byteLength; });
                const RealWebSocket = globalThis.WebSocket;
                // Our transport's socket, in each Pyodide: the first one it opens.
                const oursIn = async (py) => {
                    let socket = null;
                    globalThis.WebSocket = class extends bench.FakeWebSocket {
                        constructor(...args) { super(...args); socket ??= this; }
                    };
                    try { await py.runPythonAsync(setup); } finally { globalThis.WebSocket = RealWebSocket; }
                    return socket;
                };
                const ours = await oursIn(pyodide);
                const naive = pyodide.globals.get("naive_socket");
                const segments = {"reference": ref, "js-floor": floor, "pyodide-realtime": ours, "naive-python": naive};
                const other = globalThis.pyodideCompare;
                if (other) segments["compared"] = await oursIn(other);
                const timings = await bench.runSegments(segments, messages, rounds);
                const seen = pyodide.globals.get("audio_seen").toJs()[0];
                const naiveSeen = pyodide.globals.get("naive_audio_seen").toJs()[0];
                const comparedSeen = other ? other.globals.get("audio_seen").toJs()[0] : -1;
                return {timings, count: messages.length, audioBytesRef, audioBytesFloor, audioBytesOurs: seen,
                        audioBytesNaive: naiveSeen, audioBytesCompared: comparedSeen};
            }""",
            [SETUP_OURS, rounds],
        )
    timings = results["timings"]
    reference = timings["reference"]
    print(f"transport cost per server event, {results['count']} events x {rounds} rounds, headless Chromium ({dist})")
    if compare is not None:
        print(f"compared: our transport from {compare}, in a second Pyodide in the same page")
    print(f"machine: {load_before} at the start, {load_report()} at the end")
    print(f"{'segment':<18}{'us/event':>10}{'min':>8}{'max':>8}{'spread':>8}{'events/s':>11}{'x reference':>13}{'range':>13}")
    ratios = {}
    for name, values in timings.items():
        med, lo, hi = summary(values)
        ratios[name] = [v / r for v, r in zip(values, reference, strict=True)]  # within each round
        r_med, r_lo, r_hi = summary(ratios[name])
        print(f"{name:<18}{med:>10.1f}{lo:>8.1f}{hi:>8.1f}{spread_percent(values):>7.0f}%{1e6 / med:>11,.0f}"
              f"{r_med:>13.2f}{f'{r_lo:.2f}-{r_hi:.2f}':>13}")
    ours, ours_lo, ours_hi = summary(ratios["pyodide-realtime"])
    verdict = "meets" if ours <= TARGET_RATIO else "MISSES"
    print(f"pyodide-realtime / reference = {ours:.2f} (rounds {ours_lo:.2f}-{ours_hi:.2f}; {verdict} the {TARGET_RATIO}x target)")
    if compare is not None:
        # Per round: this build's time over the compared build's (under 1: this build is faster).
        versus = [v / c for v, c in zip(timings["pyodide-realtime"], timings["compared"], strict=True)]
        v_med, v_lo, v_hi = summary(versus)
        print(f"pyodide-realtime / compared = {v_med:.3f} (rounds {v_lo:.3f}-{v_hi:.3f})")
    audio = [results[k] for k in ("audioBytesRef", "audioBytesFloor", "audioBytesOurs", "audioBytesNaive")]
    if compare is not None:
        audio.append(results["audioBytesCompared"])
    if 0 in audio:
        print("error: an audio listener saw no audio: the segments did not do the same work", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
