"""What the browser benchmarks share: a static server on loopback, the local Realtime server, headless
Chromium, and a summary of rounds (median and spread) with the machine's load beside it.

The pages load Pyodide and our wheel from dist/ (as a user's page would) and nothing from the network.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# tools/ for the Chromium flags; src/ for the local server, which imports our package (every bench
# script runs alone too, not only after another one that put src/ on the path).
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "src")]

from chromium import CHROMIUM, DEFAULT_FLAGS  # noqa: E402


class _Handler(SimpleHTTPRequestHandler):
    mounts: dict[str, Path] = {}
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".whl": "application/zip",
    }

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        for prefix, folder in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                target = (folder / path[len(prefix):]).resolve()
                if folder.resolve() in target.parents or target == folder.resolve():
                    return str(target)
        return str(ROOT / "nonexistent")

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def static_server(mounts: dict[str, Path]) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"mounts": mounts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def realtime_server() -> Iterator[Any]:
    """The local Realtime server serving web/ and the dist, as ``./build.sh demo`` runs it."""
    from pyodide_realtime_server import start_in_thread
    server = start_in_thread(
        host="127.0.0.1", port=0, web_root=ROOT / "web",
        mounts={"/pyodide": ROOT / "dist" / "pyodide", "/pyscript": ROOT / "dist" / "pyscript"},
    )
    try:
        yield server
    finally:
        server.stop()


def _print_console(message: Any) -> None:
    if message.type in ("error", "warning"):
        print(f"  [page] {message.text}")


@contextlib.contextmanager
def browser(extra_flags: list[str] | None = None) -> Iterator[Any]:
    """Debian's headless Chromium through Playwright; every page it opens prints its errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=DEFAULT_FLAGS + (extra_flags or []))
        try:
            yield _PrintingBrowser(chromium)
        finally:
            chromium.close()


class _PrintingBrowser:
    """The Playwright browser, with each new context's pages reporting console errors."""

    def __init__(self, chromium: Any) -> None:
        self._chromium = chromium

    def new_context(self) -> Any:
        context = self._chromium.new_context()
        context.on("console", _print_console)
        return context


@contextlib.contextmanager
def chromium_page(extra_flags: list[str] | None = None) -> Iterator[Any]:
    with browser(extra_flags) as chromium:
        yield chromium.new_context().new_page()


def load_report() -> str:
    """The machine's load, printed beside the figures: on a busy machine every time grows."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def summary(values: list[float]) -> tuple[float, float, float]:
    """median, min, max."""
    return statistics.median(values), min(values), max(values)


def row(label: str, values: list[float], width: int, suffix: str = "") -> str:
    """One printed line of a table in ms: ``label`` padded to ``width``, then median, min and max."""
    med, lo, hi = summary(values)
    return f"{label:<{width}}{med:>8,.0f}{lo:>8,.0f}{hi:>8,.0f}{suffix}"


def column(rounds: list[dict[str, Any]], key: str) -> list[float]:
    """Figure ``key`` of every round."""
    return [float(r[key]) for r in rounds]


def spread_percent(values: list[float]) -> float:
    """(max - min) / median, in percent: how far apart the rounds were."""
    med, lo, hi = summary(values)
    return 100 * (hi - lo) / med if med else 0.0
