"""What the browser benchmarks share: a static server on loopback and a headless Chromium page.

The page loads Pyodide and our wheel from dist/ (as a user's page would) and nothing from the network.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

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
def chromium_page(extra_flags: list[str] | None = None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=DEFAULT_FLAGS + (extra_flags or []))
        try:
            page = browser.new_page()
            page.on("console", lambda m: print(f"  [page] {m.text}") if m.type in ("error", "warning") else None)
            yield page
        finally:
            browser.close()


def summary(values: list[float]) -> tuple[float, float, float]:
    """median, min, max."""
    return statistics.median(values), min(values), max(values)
