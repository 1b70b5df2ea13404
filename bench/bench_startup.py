"""Start-up in Chromium: what a page waits for before it can talk, against a bare Pyodide boot.

    ./build.sh bench            (or: .venv/bin/python bench/bench_startup.py after ./build.sh dist)

Each round opens a fresh browser context (empty HTTP cache: a first visit) and measures, in one page:
Pyodide's own boot, ``loadPackage("pyodide-realtime")`` (our wheel, pydantic and its dependencies from
our lock), ``from pydantic import BaseModel``, then our transport's import, then the event parser's
build (deferred: ``connect()`` runs it while the socket opens), then the audio package's import.
The same steps run on the dist as built (precompiled wheels, tools/precompile.py) and on a copy with
the wheels as PyPI and ``python -m build`` make them (sources only): the ratio is the precompile's gain.
Then both demo pages, from navigation start to "ready" (``#status`` leaves "loading": the Connect
button works), served by the local Realtime server as ``./build.sh demo`` serves them; and in the plain
demo, a click on Connect to "connected" (key minted, microphone and audio opened, socket open).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _harness import ROOT, browser, column, load_report, realtime_server, static_server, summary
from _harness import row as harness_row

BENCH = ROOT / "bench"
DIST = ROOT / "dist" / "pyodide"
SOURCE_DIST = ROOT / ".cache" / "bench" / "pyodide-source-wheels"
ROUNDS = 5
#: Goals (issue 11), in ms.
GOAL_OURS_MS = 100
GOAL_PYDANTIC_AND_OURS_MS = 300
GOAL_PLAIN_DEMO_MS = 2500
GOAL_PYSCRIPT_DEMO_MS = 3000
#: Modules that a text-only page must not pay for.
NOT_AT_START = ("pyodide_realtime.audio", "pyodide_realtime.server", "pyodide_realtime.session")

IMPORTS = r"""
import sys, time
def step(stmt):
    before = set(sys.modules)
    t0 = time.perf_counter()
    exec(stmt, {})
    return (time.perf_counter() - t0) * 1000, sorted(set(sys.modules) - before)
pydantic_ms, _ = step("from pydantic import BaseModel")
# pydantic defers most of its imports (fields, types, its plugin loader) to the first model class:
# any pydantic user pays them once. Measured apart, so that "ours" is what our package adds.
first_model_ms, _ = step("from pydantic import BaseModel\nclass First(BaseModel):\n    x: int")
ours_ms, ours_modules = step("from pyodide_realtime import OpenAIRealtimeWebSocket")
# The event models' validators are deferred: connect() builds them while the socket opens.
parser_ms, _ = step("from pyodide_realtime.events import build_parser\nbuild_parser()")
audio_ms, _ = step("from pyodide_realtime import start_voice")
{"pydantic": pydantic_ms, "first_model": first_model_ms, "ours": ours_ms, "parser": parser_ms, "audio": audio_ms,
 "ours_modules": ours_modules}
"""

STEPS_JS = """async ([indexURL, imports]) => {
    const { loadPyodide } = await import(indexURL + "pyodide.mjs");
    let t = performance.now();
    const pyodide = await loadPyodide({ indexURL });
    const boot = performance.now() - t;
    t = performance.now();
    await pyodide.loadPackage(["pyodide-realtime"], { messageCallback: () => {} });
    const load = performance.now() - t;
    const r = pyodide.runPython(imports).toJs({ dict_converter: Object.fromEntries });
    return { boot, load, pydantic: r.pydantic, first_model: r.first_model, ours: r.ours, parser: r.parser, audio: r.audio,
             ours_modules: r.ours_modules };
}"""

#: Records when the demo's #status first leaves "loading" (performance.now(): ms since navigation).
READY_PROBE = """
new MutationObserver((_, observer) => {
    const status = document.getElementById("status");
    if (status && status.dataset.status !== "loading" && window.readyAt === undefined) {
        window.readyAt = performance.now();
        window.readyStatus = status.dataset.status;
        observer.disconnect();
    }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status"], childList: true });
"""


def make_source_dist() -> Path:
    """dist/pyodide with the wheels as downloaded and built, not precompiled, and a lock for them."""
    if SOURCE_DIST.exists():
        shutil.rmtree(SOURCE_DIST)
    shutil.copytree(DIST, SOURCE_DIST, ignore=shutil.ignore_patterns("*.whl", "pyodide-lock.json", "python_stdlib.zip"))
    shutil.copy(ROOT / "node_modules" / "pyodide" / "python_stdlib.zip", SOURCE_DIST)
    for wheel in [*(ROOT / ".cache" / "browser-wheels").glob("*.whl"), *(ROOT / ".cache" / "wheel").glob("*.whl")]:
        shutil.copy(wheel, SOURCE_DIST)
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pyodide_lock.py"), "write", str(SOURCE_DIST),
         "--info-from", str(ROOT / "node_modules" / "pyodide" / "pyodide-lock.json")],
        check=True, capture_output=True,
    )
    return SOURCE_DIST


def measure_steps(chromium: Any, base: str, folder: str) -> list[dict[str, Any]]:
    rounds = []
    for _ in range(ROUNDS):
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.goto(f"{base}/bench/startup.html")
            rounds.append(page.evaluate(STEPS_JS, [f"{base}/{folder}/", IMPORTS]))
        finally:
            context.close()
    return rounds


def measure_demo(chromium: Any, base: str, page_name: str, connects: list[float] | None = None) -> list[float]:
    """Load to ready of ``page_name``, per round; with ``connects``, also Connect (click) to connected."""
    times = []
    for _ in range(ROUNDS):
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.add_init_script(READY_PROBE)
            page.goto(f"{base}/{page_name}")
            page.wait_for_function("window.readyAt !== undefined", timeout=60_000)
            status = page.evaluate("window.readyStatus")
            if status != "disconnected":
                raise SystemExit(f"error: {page_name} did not get ready (status {status!r})")
            times.append(page.evaluate("window.readyAt"))
            if connects is not None:
                clicked = page.evaluate("performance.now()")
                page.click("#connect")
                page.wait_for_function("document.getElementById('status').dataset.status === 'connected'",
                                       timeout=30_000)
                connects.append(page.evaluate("performance.now()") - clicked)
        finally:
            context.close()
    return times


def row(label: str, values: list[float], goal: float | None = None) -> str:
    """A table line, with the verdict against ``goal`` when there is one."""
    verdict = "" if goal is None else f"  <= {goal:,.0f}: " + ("meets" if summary(values)[0] <= goal else "MISSES")
    return harness_row(label, values, 46, verdict)


def main() -> int:
    source_dist = make_source_dist()
    load_before = load_report()
    mounts = {"/pyodide/": DIST, "/pyodide-source/": source_dist, "/bench/": BENCH}
    with browser() as chromium:
        with static_server(mounts) as base:
            built = measure_steps(chromium, base, "pyodide")
            plain = measure_steps(chromium, base, "pyodide-source")
        with realtime_server() as server:
            connects: list[float] = []
            demo_plain = measure_demo(chromium, server.url.rstrip("/"), "pyodide.html", connects)
            demo_pyscript = measure_demo(chromium, server.url.rstrip("/"), "index.html")

    print(f"start-up in headless Chromium, {ROUNDS} rounds, each a fresh context (empty cache): median, min, max in ms")
    print(f"machine: {load_before} at the start, {load_report()} at the end")
    print(f"{'step':<46}{'median':>8}{'min':>8}{'max':>8}")
    print(row("bare Pyodide boot (loadPyodide)", column(built, "boot")))
    print(row("loadPackage pyodide-realtime (+ pydantic)", column(built, "load")))
    print(row("from pydantic import BaseModel", column(built, "pydantic")))
    print(row("then: pydantic's first model (deferred imports)", column(built, "first_model")))
    print(row("then: from pyodide_realtime import Open...", column(built, "ours"), GOAL_OURS_MS))
    both = [r["pydantic"] + r["first_model"] + r["ours"] for r in built]
    print(row("all three: pydantic + our transport", both, GOAL_PYDANTIC_AND_OURS_MS))
    print(row("then: the event parser (connect builds it)", column(built, "parser")))
    print(row("then: from pyodide_realtime import start_voice", column(built, "audio")))
    print(row("plain demo (web/pyodide.html), load to ready", demo_plain, GOAL_PLAIN_DEMO_MS))
    print(row("PyScript demo (web/index.html), load to ready", demo_pyscript, GOAL_PYSCRIPT_DEMO_MS))
    print(row("plain demo, Connect click to connected (voice)", connects))
    print("the same steps with the sources as npm and PyPI ship them (no bytecode), and precompiled / sources:")
    for key, label in (("boot", "Pyodide boot"), ("load", "loadPackage"), ("pydantic", "pydantic"),
                       ("first_model", "pydantic's first model"), ("ours", "our transport"), ("parser", "event parser")):
        ratio = summary(column(built, key))[0] / summary(column(plain, key))[0]
        print(row(f"  {label}, sources only", column(plain, key)) + f"   x{ratio:.2f}")
    modules = built[0]["ours_modules"]
    ours = [m for m in modules if m.startswith("pyodide_realtime")]
    print(f"our transport's import loads {len(modules)} modules ({len(ours)} of ours): {', '.join(ours)}")
    eager = [m for m in modules if m.startswith(NOT_AT_START)]
    if eager:
        print(f"error: the transport's import loaded {eager}: they must load when used", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
