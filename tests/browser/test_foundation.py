"""The chain a user relies on: local Pyodide, our lock, our wheel, pydantic, micropip — all offline, in
Chromium, Firefox and WebKit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import Page, in_page

# selenium's own WebKitGTK driver still passes the old RemoteConnection argument: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]


@in_page
def _load_and_validate() -> dict[str, object]:
    import pydantic

    import pyodide_realtime
    from pyodide_realtime import SessionConfig

    config = SessionConfig.model_validate({"instructions": "Be brief.", "temperature": 0.7})
    try:
        SessionConfig.model_validate({"temperature": "hot"})
        refused = False
    except pydantic.ValidationError:
        refused = True
    return {"version": pyodide_realtime.__version__, "pydantic": pydantic.VERSION,
            "instructions": config.instructions, "refused": refused}


def test_package_loads_by_name_and_validates_with_pydantic(page: Page) -> None:
    result = _load_and_validate(page)
    assert result["version"] and str(result["pydantic"]).startswith("2.")
    assert result["instructions"] == "Be brief." and result["refused"]


def test_no_request_left_loopback(page: Page) -> None:
    # Every resource the page fetched so far (Pyodide, stdlib, wheels, lock) came from 127.0.0.1.
    page.eval_js('await pyodide.loadPackage(["pyodide-realtime", "pydantic"], { messageCallback: () => {} });')
    urls = page.eval_js("return performance.getEntriesByType('resource').map((e) => e.name).concat([location.href]);")
    assert any(u.endswith(".whl") for u in urls), urls
    assert any("pydantic_core" in u for u in urls), urls
    outside = [u for u in urls if not u.startswith(("http://127.0.0.1:", "blob:", "data:"))]
    assert outside == []


@in_page
async def _micropip_install(wheels: list[str]) -> list[str]:
    import pyodide_js

    await pyodide_js.loadPackage("micropip")
    import micropip

    for wheel in wheels:
        await micropip.install(wheel)
    import tblib

    import pyodide_realtime

    assert pyodide_realtime.__version__ and tblib.__name__ == "tblib"
    return sorted(micropip.list())


def test_micropip_installs_wheels_by_url(page: Page) -> None:
    # Ours (loaded by name already) and one the page has not loaded, by URL, as the README shows.
    lock = json.loads((ROOT / "dist/pyodide/pyodide-lock.json").read_text())
    ours = lock["packages"]["pyodide-realtime"]["file_name"]
    installed = _micropip_install(page, [f"./pyodide/{ours}", "./pyodide/tblib-3.2.2-py3-none-any.whl"])
    assert "pyodide-realtime" in installed or "pyodide_realtime" in installed
    assert "tblib" in installed


@in_page
def _bytecode_origins() -> dict[str, object]:
    import importlib.util
    import json.decoder
    import os

    import pydantic.main

    import pyodide_realtime.transport

    ours = pyodide_realtime.transport.__spec__
    return {
        "json": json.decoder.__spec__.origin, "pydantic": pydantic.main.__spec__.origin, "ours": ours.origin,
        "cached": ours.cached, "cached_exists": os.path.exists(ours.cached),
        "expected_cache": importlib.util.cache_from_source(ours.origin),
    }


def test_the_dist_ships_bytecode_that_the_page_uses(page: Page) -> None:
    # build.sh precompiles the stdlib zip and the start-up wheels inside Pyodide (tools/precompile.py):
    # pyc-only modules load from .pyc; ours keeps its sources and its bytecode is found in __pycache__.
    origins = _bytecode_origins(page)
    assert str(origins["json"]).endswith("json/decoder.pyc"), origins
    assert str(origins["pydantic"]).endswith("pydantic/main.pyc"), origins
    assert str(origins["ours"]).endswith("transport.py")
    assert origins["cached_exists"] and origins["cached"] == origins["expected_cache"], origins
