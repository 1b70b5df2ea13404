"""Start-up in Chromium: what the demo pages add on top of Pyodide's own boot, measured in the same run.

    ./build.sh bench            (or: .venv/bin/python bench/bench_startup.py after ./build.sh dist)

Absolute start-up times swing with the machine (a bare boot took 0.7 to 10 s here, with the load), so the
figure that counts is a share: in each round, a bare Pyodide page (bench/startup.html: navigation to
``loadPyodide`` resolved), the plain demo (web/pyodide.html) and the PyScript demo (web/index.html), each
from navigation to "ready" (``#status`` leaves "loading": the Connect button works), one after the other,
each in a fresh browser context (empty cache: a first visit), served by the local Realtime server as
``./build.sh demo`` serves them. A demo's share is (its ready - the round's bare boot) / the bare boot;
the goals (issue 21) are at most 60% for the plain demo and 80% for the PyScript one.

It prints where a demo's time goes (a timeline from the page's resource timing and marks), the Connect
click (at ready: the worst moment, since the demo loads its session layer just after ready) to
"connected" in the plain demo, and the steps a page pays after the boot, one by one on
the bare page: ``loadPackage("pyodide-realtime")`` (our wheel, pydantic and its dependencies from our
lock), ``from pydantic import BaseModel``, our transport's import, the event parser's build (deferred:
``connect()`` runs it while the socket opens), the audio package's import. The same steps run on the dist
as built (precompiled wheels, tools/precompile.py) and on a copy with the wheels as PyPI and
``python -m build`` make them (sources only): the ratio is the precompile's gain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import ROOT, browser, column, load_report, summary
from _harness import row as harness_row

BENCH = ROOT / "bench"
DIST = ROOT / "dist" / "pyodide"
SOURCE_DIST = ROOT / ".cache" / "bench" / "pyodide-source-wheels"
ROUNDS = 5
#: Goals (issue 21): what a demo adds on top of a bare boot, as a share of it.
GOAL_PLAIN_SHARE = 0.60
GOAL_PYSCRIPT_SHARE = 0.80
#: Goals (issue 11), in ms.
GOAL_OURS_MS = 100
GOAL_PYDANTIC_AND_OURS_MS = 300
#: Modules that a text-only page must not pay for.
NOT_AT_START = ("pyodide_realtime.audio", "pyodide_realtime.server", "pyodide_realtime.session")
WIDTH = 50

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

STEPS_JS = """async (imports) => {
    const pyodide = window.pyodide;
    let t = performance.now();
    await pyodide.loadPackage(["pyodide-realtime"], { messageCallback: () => {} });
    const load = performance.now() - t;
    const r = pyodide.runPython(imports).toJs({ dict_converter: Object.fromEntries });
    return { boot: window.readyAt, load, pydantic: r.pydantic, first_model: r.first_model, ours: r.ours, parser: r.parser,
             audio: r.audio, ours_modules: r.ours_modules };
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

#: A page's timeline (ms since navigation) from its resource timing and marks.
TIMELINE_JS = """() => {
    const entries = performance.getEntriesByType("resource");
    const named = (end) => entries.filter((e) => e.name.split("?")[0].endsWith(end));
    const wheels = named(".whl").filter((e) => !e.name.includes("micropip"));
    const at = (end, key) => { const e = named(end)[0]; return e ? e[key] : null; };
    const mark = (name) => { const m = performance.getEntriesByName(name)[0]; return m ? m.startTime : null; };
    return {
        wasm: at("pyodide.asm.wasm", "responseEnd"),
        micropip: (entries.find((e) => e.name.includes("/micropip-")) ?? { startTime: null }).startTime,
        wheels_from: wheels.length ? Math.min(...wheels.map((e) => e.startTime)) : null,
        wheels_to: wheels.length ? Math.max(...wheels.map((e) => e.responseEnd)) : null,
        pyodide_loaded: mark("pyodide-loaded"),
        demo_app: at("demo_app.py", "responseEnd"),
        config_asked: at("demo-config.json", "startTime"),
        ready: window.readyAt,
    };
}"""
TIMELINE = (
    ("wasm", "pyodide.asm.wasm fetched"),
    ("micropip", "micropip asked for (PyScript's default path)"),
    ("wheels_from", "first wheel asked for"),
    ("wheels_to", "last wheel fetched"),
    ("pyodide_loaded", "loadPyodide resolved, packages installed"),
    ("demo_app", "demo_app.py fetched"),
    ("config_asked", "demo_app imported, /demo-config.json asked"),
    ("ready", "ready"),
)


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


@contextmanager
def server(source_dist: Path) -> Iterator[str]:
    """The local Realtime server as ``./build.sh demo`` runs it, plus this folder and the sources' dist."""
    from pyodide_realtime_server import start_in_thread

    running = start_in_thread(
        host="127.0.0.1", port=0, web_root=ROOT / "web", test_endpoints=False,
        mounts={"/pyodide": DIST, "/pyscript": ROOT / "dist" / "pyscript", "/bench": BENCH, "/pyodide-source": source_dist},
    )
    try:
        yield running.url.rstrip("/")
    finally:
        running.stop()


@contextmanager
def fresh_page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def bare_boot(chromium: Any, base: str, folder: str = "pyodide") -> dict[str, Any]:
    """A bare Pyodide page's boot (navigation to loadPyodide resolved), then the steps on it."""
    with fresh_page(chromium) as page:
        page.goto(f"{base}/bench/startup.html?dist={folder}")
        page.wait_for_function("window.readyAt !== undefined", timeout=120_000)
        steps: dict[str, Any] = page.evaluate(STEPS_JS, IMPORTS)
        return steps


def demo(chromium: Any, base: str, page_name: str, connect: bool = False) -> dict[str, Any]:
    """Load to ready of ``page_name`` and its timeline; with ``connect``, also Connect (click) to connected."""
    with fresh_page(chromium) as page:
        page.add_init_script(READY_PROBE)
        page.goto(f"{base}/{page_name}")
        page.wait_for_function("window.readyAt !== undefined", timeout=120_000)
        status = page.evaluate("window.readyStatus")
        if status != "disconnected":
            raise SystemExit(f"error: {page_name} did not get ready (status {status!r})")
        found: dict[str, Any] = page.evaluate(TIMELINE_JS)
        if connect:
            clicked = page.evaluate("performance.now()")
            page.click("#connect")
            page.wait_for_function("document.getElementById('status').dataset.status === 'connected'", timeout=60_000)
            found["connect"] = page.evaluate("performance.now()") - clicked
        return found


def row(label: str, values: list[float]) -> str:
    return harness_row(label, values, WIDTH)


def share_row(label: str, shares: list[float], goal: float) -> str:
    """A share of the bare boot, in percent: median, min, max, and the verdict against ``goal``."""
    med, lo, hi = summary(shares)
    verdict = "meets" if med <= goal else "MISSES"
    return f"{label:<{WIDTH}}{med:>7.0%}{lo:>8.0%}{hi:>8.0%}  <= {goal:.0%}: {verdict}"


def print_timeline(label: str, rounds: list[dict[str, Any]]) -> None:
    print(f"{label}: its timeline, ms since navigation (median, min, max over the rounds)")
    for key, what in TIMELINE:
        values = [r[key] for r in rounds if r.get(key) is not None]
        if len(values) == len(rounds):
            print(row(f"  {what}", values))


def main() -> int:
    source_dist = make_source_dist()
    load_before = load_report()
    bare: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    pyscript: list[dict[str, Any]] = []
    with browser() as chromium, server(source_dist) as base:
        for _ in range(ROUNDS):  # the three pages in turn: the load of the moment weighs on all three alike
            bare.append(bare_boot(chromium, base))
            plain.append(demo(chromium, base, "pyodide.html", connect=True))
            pyscript.append(demo(chromium, base, "index.html"))
        sources = [bare_boot(chromium, base, "pyodide-source") for _ in range(ROUNDS)]

    print(f"start-up in headless Chromium, {ROUNDS} rounds, each page a fresh context (empty cache): median, min, max")
    print(f"machine: {load_before} at the start, {load_report()} at the end")
    print(f"{'page, navigation to ready (ms)':<{WIDTH}}{'median':>8}{'min':>8}{'max':>8}")
    print(row("bare Pyodide page (loadPyodide resolved)", column(bare, "boot")))
    print(row("plain demo (web/pyodide.html)", column(plain, "ready")))
    print(row("PyScript demo (web/index.html)", column(pyscript, "ready")))
    print("what a demo adds on top of the same round's bare boot, as a share of it:")
    plain_shares = [p["ready"] / b["boot"] - 1 for p, b in zip(plain, bare, strict=True)]
    pyscript_shares = [p["ready"] / b["boot"] - 1 for p, b in zip(pyscript, bare, strict=True)]
    print(share_row("  plain demo", plain_shares, GOAL_PLAIN_SHARE))
    print(share_row("  PyScript demo", pyscript_shares, GOAL_PYSCRIPT_SHARE))
    print_timeline("plain demo", plain)
    print_timeline("PyScript demo", pyscript)
    print(row("plain demo, Connect click (at ready) to connected", column(plain, "connect")))
    print(row("plain demo, navigation to connected (the two)", [r["ready"] + r["connect"] for r in plain]))

    print("steps on the bare page, one after the other (ms):")
    print(row("  loadPackage pyodide-realtime (+ pydantic)", column(bare, "load")))
    print(row("  from pydantic import BaseModel", column(bare, "pydantic")))
    print(row("  then: pydantic's first model (deferred imports)", column(bare, "first_model")))
    ours = row("  then: from pyodide_realtime import Open...", column(bare, "ours"))
    print(ours + f"  <= {GOAL_OURS_MS}: " + ("meets" if summary(column(bare, "ours"))[0] <= GOAL_OURS_MS else "MISSES"))
    both = [r["pydantic"] + r["first_model"] + r["ours"] for r in bare]
    verdict = "meets" if summary(both)[0] <= GOAL_PYDANTIC_AND_OURS_MS else "MISSES"
    print(row("  all three: pydantic + our transport", both) + f"  <= {GOAL_PYDANTIC_AND_OURS_MS}: {verdict}")
    print(row("  then: the event parser (connect builds it)", column(bare, "parser")))
    print(row("  then: from pyodide_realtime import start_voice", column(bare, "audio")))
    print("the same with the sources as npm and PyPI ship them (no bytecode), and precompiled / sources:")
    for key, label in (("boot", "Pyodide boot"), ("load", "loadPackage"), ("pydantic", "pydantic"),
                       ("first_model", "pydantic's first model"), ("ours", "our transport"), ("parser", "event parser")):
        ratio = summary(column(bare, key))[0] / summary(column(sources, key))[0]
        print(row(f"  {label}, sources only", column(sources, key)) + f"   x{ratio:.2f}")
    modules = bare[0]["ours_modules"]
    ours_modules = [m for m in modules if m.startswith("pyodide_realtime")]
    print(f"our transport's import loads {len(modules)} modules ({len(ours_modules)} of ours): {', '.join(ours_modules)}")
    eager = [m for m in modules if m.startswith(NOT_AT_START)]
    if eager:
        print(f"error: the transport's import loaded {eager}: they must load when used", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
