"""The README's page blocks (tools/readme_blocks.py: ``<!-- test: page -->``) load as written, offline.

Each block is saved as a page in a folder the local server serves with the dist mounted as
``./build.sh demo`` mounts it (``./pyodide/``, ``./pyscript/``), then opened in headless Chromium.
A PyScript page must finish every script (``py:all-done``) with no error shown; a plain page must go
quiet (no request for half a second) with no uncaught error and no console error. No request may leave
127.0.0.1. A config that falls back to PyScript's CDN interpreter fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines import start_realtime_server
from readme_blocks import Block, of_kind

from chromium import CHROMIUM, DEFAULT_FLAGS

ROOT = Path(__file__).resolve().parents[2]
DONE_TIMEOUT_MS = 60_000
DONE_PROBE = "addEventListener('py:all-done', () => { window.pyAllDone = true; });"
#: After a plain page went quiet: time for the last Python statements to run and report an error.
SETTLE_MS = 1000


def as_document(block: Block) -> str:
    code = block.code
    return code if code.lstrip().lower().startswith("<!doctype") else f"<!doctype html>\n<meta charset=\"utf-8\">\n{code}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[tuple[Block, str]]]]:
    web = tmp_path_factory.mktemp("readme-pages")
    named = []
    for index, block in enumerate(of_kind("page")):
        name = f"readme-{index}.html"
        (web / name).write_text(as_document(block))
        named.append((block, name))
    server = start_realtime_server(
        host="127.0.0.1", port=0, web_root=str(web),
        mounts={"/pyodide": ROOT / "dist" / "pyodide", "/pyscript": ROOT / "dist" / "pyscript"},
    )
    try:
        yield server, named
    finally:
        server.stop()


def test_the_readme_pages_load_offline_without_an_error(pages: tuple[Any, list[tuple[Block, str]]]) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    server, named = pages
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=DEFAULT_FLAGS)
        try:
            for block, name in named:
                page = browser.new_page()
                page.add_init_script(DONE_PROBE)
                requests: list[str] = []
                failures: list[str] = []
                page.on("request", lambda request, seen=requests: seen.append(request.url))
                page.on("pageerror", lambda error, seen=failures: seen.append(str(error)))
                # A failed fetch is named by its URL (the console only says "Failed to load resource"); the
                # browser's own favicon request is not the page's.
                page.on("response", lambda r, seen=failures: seen.append(f"HTTP {r.status} {r.url}")
                        if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
                page.on("console", lambda m, seen=failures: seen.append(m.text)
                        if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
                page.goto(f"{server.url.rstrip('/')}/{name}")
                if 'type="py"' in block.code:
                    try:
                        page.wait_for_function("window.pyAllDone || document.querySelector('.py-error')",
                                               timeout=DONE_TIMEOUT_MS)
                    except PlaywrightTimeout:
                        outside = [u for u in requests if not u.startswith("http://127.0.0.1:")]
                        pytest.fail(f"{block.where()}: PyScript never finished (requests outside: {outside})")
                    failures += page.eval_on_selector_all(".py-error", "nodes => nodes.map((n) => n.textContent)")
                else:
                    page.wait_for_load_state("networkidle", timeout=DONE_TIMEOUT_MS)
                    page.wait_for_timeout(SETTLE_MS)
                assert failures == [], f"{block.where()}: {failures}"
                outside = [u for u in requests if not u.startswith(("http://127.0.0.1:", "blob:", "data:"))]
                assert outside == [], f"{block.where()} fetched from the network: {outside}"
                assert any(u.endswith("pyodide_realtime-0.1.0-py3-none-any.whl") for u in requests), block.where()
                page.close()
        finally:
            browser.close()
