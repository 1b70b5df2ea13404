"""The demo in a worker against the demo on the page: CPU while idle, and Interrupt's click to truncate.

    ./build.sh bench            (or: .venv/bin/python bench/bench_worker_demo.py after ./build.sh dist)

For each page (``/`` first: the reference, then ``/worker.html``), in its own headless Chromium whose
fake microphone plays silence: the CPU the whole browser uses (Chromium's own per-process counters,
``SystemInfo.getProcessInfo``) over WINDOWS windows of WINDOW_S, once the page is ready (before Connect)
and once connected (the microphone live, nothing said); one window in each of SPOKEN_REPLIES replies to
a typed message while it plays; then PRESSES presses of Interrupt, each in a
reply to a typed message, timed from the click (marked on the page) to the truncate frame leaving the
browser (Playwright's view of the page's and its worker's WebSockets).

Goals (issue 21): the worker page idle before Connect at most 5% of a core, connected no more than ``/``;
click to truncate at most 150 ms at the median and 300 ms at worst over 10 presses.
"""

from __future__ import annotations

import statistics
import sys
import time
import wave
from pathlib import Path
from typing import Any

from _harness import ROOT, load_report, spread_percent, summary

from chromium import CHROMIUM, DEFAULT_FLAGS  # tools/, on the path once _harness is imported

sys.path[:0] = [str(ROOT / "server" / "src"), str(ROOT / "tests" / "e2e")]

from demo_page import CLICK_MARKS, SentFrames  # noqa: E402  (tests/e2e: the test's way of timing a press)

PAGES = ("index.html", "worker.html")
WINDOWS = 5
WINDOW_S = 2.0
PRESSES = 10
SPOKEN_REPLIES = 3
HEARD_BEFORE_PRESS_MS = 500
SERVER_PACE = 2.0  # as the e2e tests: the server streams faster than real time, as the real API does
TIMEOUT_MS = 90_000
MESSAGE = "Please read this back slowly: one two three four five six seven eight nine ten, and then pineapple"
GOAL_IDLE_PERCENT = 5.0
GOAL_MEDIAN_MS = 150.0
GOAL_WORST_MS = 300.0
SILENCE = ROOT / ".cache" / "bench" / "silence-48k.wav"


def silence_wav() -> Path:
    """Five seconds of silence, 48 kHz mono: the fake microphone's input (its default beeps would talk)."""
    if not SILENCE.is_file():
        SILENCE.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(SILENCE), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(48000)
            out.writeframes(bytes(2 * 48000 * 5))
    return SILENCE


def cpu_seconds(cdp: Any) -> float:
    """CPU time of every process of the browser, in seconds."""
    return sum(float(p["cpuTime"]) for p in cdp.send("SystemInfo.getProcessInfo")["processInfo"])


def cpu_percent(cdp: Any, windows: int = WINDOWS) -> list[float]:
    """Percent of one core, per window."""
    shares = []
    for _ in range(windows):
        before, start = cpu_seconds(cdp), time.monotonic()
        time.sleep(WINDOW_S)
        shares.append(100 * (cpu_seconds(cdp) - before) / (time.monotonic() - start))
    return shares


def ask(page: Any, nth: int) -> str:
    """Type MESSAGE and wait for its reply's bubble (the nth); returns its item id."""
    page.fill("#message", MESSAGE)
    page.press("#message", "Enter")
    reply = page.locator("#transcript li.turn.assistant").nth(nth)
    reply.wait_for(timeout=TIMEOUT_MS)
    return str(reply.get_attribute("id")).removeprefix("item-")


def measure(playwright: Any, server: Any, path: str) -> dict[str, list[float]]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*DEFAULT_FLAGS, f"--use-file-for-fake-audio-capture={silence_wav()}"]
    )
    try:
        cdp = browser.new_browser_cdp_session()
        page = browser.new_page()
        page.add_init_script(CLICK_MARKS)
        sent = SentFrames(page)
        page.goto(server.url + path)
        page.wait_for_selector('#status[data-status="disconnected"]', timeout=TIMEOUT_MS)
        idle = cpu_percent(cdp)
        page.click("#connect")
        page.wait_for_selector('#voice-state[data-state="listening"]', timeout=TIMEOUT_MS)
        connected = cpu_percent(cdp)
        speaking = []
        for reply in range(SPOKEN_REPLIES):  # one window inside each reply (6.5 s of speech)
            ask(page, reply)
            page.wait_for_selector('#voice-state[data-state="speaking"]', timeout=TIMEOUT_MS)
            speaking += cpu_percent(cdp, 1)
            page.wait_for_selector('#voice-state[data-state="listening"]', timeout=TIMEOUT_MS)
        latencies = []
        for press in range(PRESSES):
            item_id = ask(page, SPOKEN_REPLIES + press)
            page.wait_for_function(
                "([id, ms]) => +document.getElementById('item-' + id).dataset.heardMs >= ms",
                arg=[item_id, HEARD_BEFORE_PRESS_MS], timeout=TIMEOUT_MS,
            )
            latencies.append(sent.press_interrupt(page))
            page.wait_for_selector('#voice-state:not([data-state="speaking"])', timeout=TIMEOUT_MS)
        return {"idle": idle, "connected": connected, "speaking": speaking, "press": latencies}
    finally:
        browser.close()


def line(label: str, values: list[float], unit: str, reference: list[float] | None = None) -> str:
    med, lo, hi = summary(values)
    text = f"  {label:<34}{med:>8.1f}{lo:>8.1f}{hi:>8.1f} {unit:<3} spread {spread_percent(values):>4.0f}%"
    if reference is not None and statistics.median(reference) > 0:
        text += f"   x{med / statistics.median(reference):.2f} of /"
    return text


def main() -> None:
    from playwright.sync_api import sync_playwright

    from pyodide_realtime_server import start_in_thread

    print(load_report())
    server = start_in_thread(
        web_root=ROOT / "web", mounts={"/pyodide": ROOT / "dist" / "pyodide", "/pyscript": ROOT / "dist" / "pyscript"},
        pace=SERVER_PACE,
    )
    try:
        with sync_playwright() as playwright:
            results = {path: measure(playwright, server, path) for path in PAGES}
    finally:
        server.stop()
    reference = results[PAGES[0]]
    print(f"  {'':<34}{'median':>8}{'min':>8}{'max':>8}   (CPU: % of one core, whole browser, {WINDOWS} x {WINDOW_S:g} s)")
    for path, figures in results.items():
        first = path == PAGES[0]
        print(f"/{path}")
        print(line("CPU, ready, before Connect", figures["idle"], "%", None if first else reference["idle"]))
        print(line("CPU, connected, silent microphone", figures["connected"], "%", None if first else reference["connected"]))
        print(line("CPU, a reply playing", figures["speaking"], "%", None if first else reference["speaking"]))
        print(line(f"Interrupt: click to truncate ({PRESSES})", figures["press"], "ms", None if first else reference["press"]))
    worker = results["worker.html"]
    checks = [
        (f"worker idle <= {GOAL_IDLE_PERCENT:g}% of a core", statistics.median(worker["idle"]) <= GOAL_IDLE_PERCENT),
        ("worker connected <= /", statistics.median(worker["connected"]) <= statistics.median(reference["connected"])),
        (f"worker press median <= {GOAL_MEDIAN_MS:g} ms", statistics.median(worker["press"]) <= GOAL_MEDIAN_MS),
        (f"worker press worst <= {GOAL_WORST_MS:g} ms", max(worker["press"]) <= GOAL_WORST_MS),
    ]
    print("goals (issue 21): " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))


if __name__ == "__main__":
    main()
