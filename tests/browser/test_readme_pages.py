"""The README's browser blocks (``<!-- test: browser -->``) run as written in a page, and its page
blocks (``<!-- test: page -->``) load as written, offline, in Chromium, Firefox and WebKit
(tools/readme_blocks.py).

Each block is saved as a page in a folder the local server serves with the dist mounted as
``./build.sh demo`` mounts it (``./pyodide/``, ``./pyscript/``). The harness puts one classic script
before the block (the block itself is unchanged) that records uncaught errors and PyScript's
``py:all-done``. A PyScript page must finish every script with no error shown; a plain page must fetch
our wheel and go quiet with no uncaught error. No request may leave 127.0.0.1: a config that falls
back to PyScript's CDN interpreter fails here (PyScript itself shows nothing then).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import Engine, Page, start_realtime_server
from readme_blocks import Block, of_kind

ROOT = Path(__file__).resolve().parents[2]
WHEEL = "pyodide_realtime-0.1.0-py3-none-any.whl"
DONE_TIMEOUT_MS = 60_000
#: A plain page is done when no new resource came for this long after our wheel.
QUIET_MS = 1500
PROBE = """<script>
window.readmeErrors = [];
addEventListener("error", (e) => readmeErrors.push(String(e.message || e.error)));
addEventListener("unhandledrejection", (e) => readmeErrors.push(String(e.reason)));
addEventListener("py:all-done", () => { window.pyAllDone = true; });
</script>
"""
WAIT_PYSCRIPT = f"""
const limit = Date.now() + {DONE_TIMEOUT_MS};
while (!window.pyAllDone && !document.querySelector(".py-error") && Date.now() < limit)
  await new Promise((r) => setTimeout(r, 100));
return {{done: !!window.pyAllDone}};
"""
WAIT_PLAIN = f"""
const limit = Date.now() + {DONE_TIMEOUT_MS};
const count = () => performance.getEntriesByType("resource").length;
let seen = -1, quietSince = Date.now();
while (Date.now() < limit && window.readmeErrors.length === 0) {{
  const wheel = performance.getEntriesByType("resource").some((e) => e.name.endsWith({json.dumps(WHEEL)}));
  if (count() !== seen) {{ seen = count(); quietSince = Date.now(); }}
  else if (wheel && Date.now() - quietSince > {QUIET_MS}) break;
  await new Promise((r) => setTimeout(r, 100));
}}
return {{done: true}};
"""
RESULTS = """
return {
  errors: window.readmeErrors.concat([...document.querySelectorAll(".py-error")].map((n) => n.textContent)),
  urls: performance.getEntriesByType("resource").map((e) => e.name).concat([location.href]),
};
"""


@pytest.fixture(scope="module")
def readme_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[tuple[Block, str]]]]:
    web = tmp_path_factory.mktemp("readme-pages")
    named = []
    for index, block in enumerate(of_kind("page")):
        name = f"readme-{index}.html"
        (web / name).write_text(f"<!doctype html>\n<meta charset=\"utf-8\">\n<link rel=\"icon\" href=\"data:,\">\n{PROBE}{block.code}")
        named.append((block, name))
    server = start_realtime_server(
        host="127.0.0.1", port=0, web_root=str(web),
        mounts={"/pyodide": ROOT / "dist" / "pyodide", "/pyscript": ROOT / "dist" / "pyscript"},
    )
    try:
        yield server, named
    finally:
        server.stop()


def test_the_readme_browser_blocks_run_as_written(page: Page) -> None:
    # In order, in the page's one namespace, as a reader pastes them; the key block gets the key and
    # the URL from the page's own server. The player needs a user gesture in WebKit.
    page.click()
    page.run_python("import io, sys\n_readme_stdout, sys.stdout = sys.stdout, io.StringIO()")
    try:
        for block in of_kind("browser"):
            try:
                page.run_python(block.code)
            except Exception as exc:
                pytest.fail(f"{block.where()} failed in {page.engine}: {exc}")
    finally:
        printed = page.run_python("import sys\n_printed, sys.stdout = sys.stdout.getvalue(), _readme_stdout\n_printed")
    assert "error:" not in printed


def test_the_readme_pages_load_offline_without_an_error(
    engine: Engine, readme_pages: tuple[Any, list[tuple[Block, str]]]
) -> None:
    server, named = readme_pages
    for block, name in named:
        page = engine.open(f"{server.url.rstrip('/')}/{name}", wait_for_pyodide=False)
        pyscript = 'type="py"' in block.code
        try:
            done = page.eval_js(WAIT_PYSCRIPT if pyscript else WAIT_PLAIN)["done"]
            result = page.eval_js(RESULTS)
        finally:
            page.close()
        outside = [u for u in result["urls"] if not u.startswith(("http://127.0.0.1:", "blob:", "data:"))]
        assert outside == [], f"{block.where()} fetched from the network in {engine.name}: {outside}"
        assert result["errors"] == [], f"{block.where()} in {engine.name}: {result['errors']}"
        assert done, f"{block.where()}: PyScript never finished in {engine.name}"
        assert any(u.endswith(WHEEL) for u in result["urls"]), f"{block.where()} never loaded our wheel"
