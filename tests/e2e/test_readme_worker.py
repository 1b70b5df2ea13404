"""The README's worker blocks (``<!-- test: worker -->``) run as written in a PyScript worker.

The blocks, in order, make one ``<script type="py" worker>`` of a page that the local server serves
cross-origin isolated (``isolate=True``, the command line's ``--isolate``), with the dist mounted as
``./build.sh demo`` mounts it; after them, a few lines of the test check what they made (a key that opens
a connection, the Realtime URL) and write it into the page (its errors reach only the console). The same blocks with ``page_url(...)`` taken
out must fail there with the browser's "Failed to parse URL": the worker's own address is a ``blob:`` one,
which is what the README's worker form is for.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyodide_realtime_server import start_in_thread
from readme_blocks import of_kind

ROOT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT_MS = 120_000  # Pyodide starts inside the worker: seconds, far more on a busy machine
CONFIG = json.dumps({"interpreter": "./pyodide/pyodide.mjs", "packages": ["pyodide-realtime"], "packages_cache": "passthrough"})
#: Runs after the blocks, in their namespace: what they made, written into the page for the test.
CHECK = """
import json as _json
from pyscript import window as _window
from pyodide_realtime import OpenAIRealtimeWebSocket as _Transport

_transport = _Transport(url=realtime_url)
await _transport.connect(api_key=ephemeral_key, initial_session_config={"modalities": ["text"]})
_status = _transport.status
_transport.close()
_window.document.body.dataset.result = _json.dumps(
    {"realtime_url": realtime_url, "keys": [ephemeral_key[:3], (await mint_key())[:3]], "status": _status}
)
"""
PAGE_URL_CALL = re.compile(r"page_url\((\"[^\"]*\")\)")


def worker_page(code: str, check: str = CHECK) -> str:
    """A page whose one PyScript worker runs ``code``, then ``check``."""
    return ('<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n'
            '<script type="module" src="./pyscript/core.js"></script>\n'
            f"<script type=\"py\" worker config='{CONFIG}'>\n{code}\n{check}\n</script>\n")


@contextlib.contextmanager
def isolated_server(web: Path) -> Iterator[Any]:
    """The local server on ``web``, every page cross-origin isolated, the dist mounted as the demo's."""
    server = start_in_thread(
        web_root=web, isolate=True, mounts={"/pyodide": ROOT / "dist" / "pyodide", "/pyscript": ROOT / "dist" / "pyscript"}
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def readme_worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    blocks = of_kind("worker")
    assert blocks, "the README lost its worker block"
    code = "\n".join(block.code for block in blocks)
    web: Path = tmp_path_factory.mktemp("readme-worker")
    (web / "readme-worker.html").write_text(worker_page(code))
    without = PAGE_URL_CALL.sub(r"\1", code)
    assert "page_url(" not in without.replace("import page_url", "")
    (web / "without-page-url.html").write_text(worker_page(without))
    with isolated_server(web) as server:
        yield server


POLL_MS = 100


def run_page(browser: Any, url: str) -> tuple[dict[str, Any] | None, str]:
    """What the worker wrote into the page, or the errors it logged (a worker's Python error reaches
    nothing but the console: Playwright reports a worker's console messages with the page's)."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(url)
        assert page.evaluate("crossOriginIsolated") is True  # the server's --isolate: PyScript's window works
        result = None
        for _ in range(BOOT_TIMEOUT_MS // POLL_MS):  # Playwright's events arrive during the waits
            result = page.evaluate("document.body.dataset.result")
            if result or errors:
                break
            page.wait_for_timeout(POLL_MS)
        return (json.loads(result) if result else None), "\n".join(errors)
    finally:
        page.close()


def test_the_readme_worker_blocks_run_as_written_in_a_pyscript_worker(browser_mic_denied: Any, readme_worker_server: Any) -> None:
    server = readme_worker_server
    result, error = run_page(browser_mic_denied, server.url + "readme-worker.html")
    assert error == "" and result is not None, error[-1500:]
    assert result == {"realtime_url": server.ws_url, "keys": ["ek_", "ek_"], "status": "connected"}
    connection = server.state()["connections"][-1]
    assert connection["auth"] == "ephemeral"  # the key minted in the worker opened it


def test_without_page_url_the_blocks_fail_in_the_worker(browser_mic_denied: Any, readme_worker_server: Any) -> None:
    result, error = run_page(browser_mic_denied, readme_worker_server.url + "without-page-url.html")
    assert result is None
    assert "Failed to parse URL" in error, error[-1500:]
