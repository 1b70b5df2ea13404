"""Start-up from a Pyodide memory snapshot in Chromium, against the normal start-up in the same run.

    ./build.sh bench            (or: .venv/bin/python bench/bench_snapshot.py after ./build.sh dist)

First ``tools/make_snapshot.py`` makes, in a headless Chromium page, a snapshot of Pyodide with pydantic
and our package installed and imported (into .cache/bench/snapshot; docs/snapshots.md says how and why:
a snapshot made under Node 20 does not fit Chromium). Then, served offline from loopback, each round opens two fresh browser contexts (empty HTTP cache: a first visit)
and measures, from the moment the page starts loading Pyodide until our transport is usable (imported,
one ``OpenAIRealtimeWebSocket()`` made, one server event parsed):
- normal: ``loadPyodide`` + ``loadPackage("pyodide-realtime")`` + the imports;
- snapshot: ``loadPyodideFromSnapshot`` (fetch the snapshot, pydantic_core's ``.so`` and the
  pure-Python wheels, restore) + the same code, whose imports are already done.
Rounds alternate the two, so the ratio snapshot / normal is taken within a round. Then one more
restored page makes a real connection to the local Realtime server and completes a turn. The sizes
printed are what each path downloads beyond Pyodide's own files (both fetch pyodide.asm.wasm and the
standard library). If the snapshot cannot be made or restored, the error is printed and nothing else.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

from _harness import ROOT, browser, column, load_report, realtime_server, static_server, summary
from _harness import row as harness_row
from make_snapshot import CHECK, CONVERSE, make_in_chromium, prepare  # tools/, on sys.path through _harness

BENCH = ROOT / "bench"
DIST = ROOT / "dist" / "pyodide"
SNAPSHOT = ROOT / ".cache" / "bench" / "snapshot"
ROUNDS = 5
MB = 1_000_000

NORMAL_JS = """async ([indexURL, check]) => {
    const t0 = performance.now();
    const { loadPyodide } = await import(indexURL + "pyodide.mjs");
    const pyodide = await loadPyodide({ indexURL });
    const boot = performance.now() - t0;
    await pyodide.loadPackage(["pyodide-realtime"], { messageCallback: () => {} });
    const loaded = performance.now() - t0;
    const check_ = pyodide.runPython(check);
    const total = performance.now() - t0;
    return { total, boot, load: loaded - boot, imports: total - loaded, check: check_,
             memory: pyodide._module.HEAP8.length };
}"""

SNAPSHOT_JS = """async ([indexURL, snapshotURL, check]) => {
    const t0 = performance.now();
    const { loadPyodideFromSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    const pyodide = await loadPyodideFromSnapshot({ indexURL, snapshotURL });
    const restored = performance.now() - t0;
    const check_ = pyodide.runPython(check);
    const fetched = performance.getEntriesByName(new URL(snapshotURL + "pyodide.snapshot", location.href).href)[0];
    return { total: performance.now() - t0, restored, fetched: fetched.responseEnd - t0, check: check_,
             memory: pyodide._module.HEAP8.length };
}"""

LIVE_JS = """async ([indexURL, snapshotURL, wsURL, key, code]) => {
    const { loadPyodideFromSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    const pyodide = await loadPyodideFromSnapshot({ indexURL, snapshotURL });
    pyodide.globals.set("ws_url", wsURL);
    pyodide.globals.set("key", key);
    return (await pyodide.runPythonAsync(code)).toJs();
}"""


def in_fresh_context(chromium: Any, base: str, script: str, args: list[str]) -> Any:
    """What ``script`` returns in a page of a fresh context (empty cache)."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{base}/bench/startup.html")
        return page.evaluate(script, args)
    finally:
        context.close()


def row(label: str, values: list[float]) -> str:
    return harness_row(label, values, 50)


def sizes(manifest: dict[str, Any]) -> list[str]:
    """What each path downloads beyond Pyodide's own files: raw, and gzipped as a server would send it."""

    def raw_and_gzip(paths: list[Path]) -> str:
        raw = sum(p.stat().st_size for p in paths)
        packed = sum(len(gzip.compress(p.read_bytes(), compresslevel=6)) for p in paths)
        return f"{raw / MB:.1f} MB ({packed / MB:.1f} MB gzipped)"

    wheels = [DIST / w["file"] for w in manifest["wheels"]]
    snapshot = SNAPSHOT / manifest["snapshot"]
    libraries = [SNAPSHOT / lib["file"] for lib in manifest["libraries"]]
    on_path = [DIST / w["file"] for w in manifest["wheels"] if w["on_path"]]
    return [
        f"normal path: {len(wheels)} wheels, {raw_and_gzip(wheels)}",
        f"snapshot path: {snapshot.name} {raw_and_gzip([snapshot])}, "
        f"{', '.join(p.name for p in libraries)} {raw_and_gzip(libraries)}, "
        f"{len(on_path)} pure-Python wheels {raw_and_gzip(on_path)}",
    ]


def main() -> int:
    try:
        prepare(DIST, SNAPSHOT, "pyodide-realtime")
    except (OSError, KeyError, ValueError) as error:
        print(f"error: the snapshot folder could not be prepared (tools/make_snapshot.py): {error!r}")
        return 0  # an experimental path: reported, it does not fail the other benchmarks
    manifest = json.loads((SNAPSHOT / "manifest.json").read_text())
    mounts = {"/pyodide/": DIST, "/snapshot/": SNAPSHOT, "/bench/": BENCH}
    normal: list[dict[str, Any]] = []
    restored: list[dict[str, Any]] = []
    with browser() as chromium:
        with static_server(mounts) as base:
            index, snapshot_url = f"{base}/pyodide/", f"{base}/snapshot/"
            try:
                made = make_in_chromium(chromium, index, snapshot_url, SNAPSHOT)
            except RuntimeError as error:
                print(f"error: the snapshot could not be made or restored:\n{str(error)[-2000:]}")
                return 0
            load_before = load_report()
            try:
                for _ in range(ROUNDS):
                    normal.append(in_fresh_context(chromium, base, NORMAL_JS, [index, CHECK]))
                    restored.append(in_fresh_context(chromium, base, SNAPSHOT_JS, [index, snapshot_url, CHECK]))
                with realtime_server() as server:
                    live = in_fresh_context(chromium, base, LIVE_JS,
                                            [index, snapshot_url, server.ws_url, server.mint_key(), CONVERSE])
            except Exception as error:  # Playwright's Error: a restore or the check failed in the page
                print(f"error: a restore in Chromium failed:\n{str(error)[-2000:]}")
                return 0

    ratios = [s["total"] / n["total"] for s, n in zip(restored, normal, strict=True)]
    print(f"start-up from a memory snapshot in headless Chromium, {ROUNDS} rounds, each path in a fresh context "
          "(empty cache), served from loopback: median, min, max in ms")
    print(f"machine: {load_before} at the start, {load_report()} at the end")
    print(f"{'from loading Pyodide to our transport usable':<50}{'median':>8}{'min':>8}{'max':>8}")
    print(row("normal: loadPyodide + loadPackage + imports", column(normal, "total")))
    print(row("  of which loadPyodide", column(normal, "boot")))
    print(row("  of which loadPackage pyodide-realtime", column(normal, "load")))
    print(row("  of which the imports (and the check)", column(normal, "imports")))
    print(row("snapshot: loadPyodideFromSnapshot + same code", column(restored, "total")))
    print(row("  of which the snapshot's download ends at", column(restored, "fetched")))
    med, lo, hi = summary(ratios)
    print(f"snapshot / normal, per round: x{med:.2f} (x{lo:.2f}-x{hi:.2f})")
    print(f"check in both paths: normal {normal[0]['check']!r}; restored {restored[0]['check']!r}")
    print(f"wasm memory once usable: normal {normal[0]['memory'] / MB:.1f} MB, restored {restored[0]['memory'] / MB:.1f} MB")
    status, count, types, _ = live
    print(f"a restored page against the local Realtime server: turn {status} after {count} events ({', '.join(types)})")
    for line in sizes(manifest):
        print(line)
    print(f"making the snapshot in Chromium (boot, install, import, warm up, snapshot): {made['make_ms']:,.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
