"""The chain a user relies on: local Pyodide, our lock, our wheel, pydantic, micropip — all offline, in
Chromium, Firefox and WebKit. Written with pytest-pyodide's ``run_in_pyodide``: each test's body runs in
the engine's Pyodide (``selenium``: one per module and engine, conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_pyodide import run_in_pyodide

ROOT = Path(__file__).resolve().parents[2]


@run_in_pyodide(packages=["pyodide-realtime"])
def test_package_loads_by_name_and_validates_with_pydantic(selenium: Any) -> None:
    import pydantic
    import pytest

    import pyodide_realtime
    from pyodide_realtime import SessionConfig

    config = SessionConfig.model_validate({"instructions": "Be brief.", "temperature": 0.7})
    assert pyodide_realtime.__version__ and pydantic.VERSION.startswith("2.")
    assert config.instructions == "Be brief."
    with pytest.raises(pydantic.ValidationError):
        SessionConfig.model_validate({"temperature": "hot"})


def test_no_request_left_loopback(selenium: Any) -> None:
    # Every resource the page fetched so far (Pyodide, stdlib, wheels, lock) came from 127.0.0.1.
    selenium.load_package(["pyodide-realtime", "pydantic"])
    urls = selenium.run_js("return performance.getEntriesByType('resource').map((e) => e.name).concat([location.href]);")
    assert any(u.endswith(".whl") for u in urls), urls
    assert any("pydantic_core" in u for u in urls), urls
    outside = [u for u in urls if not u.startswith(("http://127.0.0.1:", "blob:", "data:"))]
    assert outside == []


@run_in_pyodide
async def _micropip_install(selenium: Any, wheels: list[str]) -> list[str]:
    import pyodide_js

    await pyodide_js.loadPackage("micropip")
    import micropip

    for wheel in wheels:
        await micropip.install(wheel)
    import tblib

    import pyodide_realtime

    assert pyodide_realtime.__version__ and tblib.__name__ == "tblib"
    return sorted(micropip.list())


def test_micropip_installs_wheels_by_url(selenium: Any) -> None:
    # Ours and one wheel no lock entry is loaded for, by URL, as the README shows.
    lock = json.loads((ROOT / "dist/pyodide/pyodide-lock.json").read_text())
    ours = lock["packages"]["pyodide-realtime"]["file_name"]
    installed = _micropip_install(selenium, [f"./pyodide/{ours}", "./pyodide/tblib-3.2.2-py3-none-any.whl"])
    assert "pyodide-realtime" in installed or "pyodide_realtime" in installed
    assert "tblib" in installed


@run_in_pyodide(packages=["pyodide-realtime"])
def test_the_dist_ships_bytecode_that_the_page_uses(selenium: Any) -> None:
    # build.sh precompiles the stdlib zip and the start-up wheels inside Pyodide (tools/precompile.py):
    # pyc-only modules load from .pyc; ours keeps its sources and its bytecode is found in __pycache__.
    import importlib.util
    import json.decoder
    import os

    import pydantic.main

    import pyodide_realtime.transport

    ours = pyodide_realtime.transport.__spec__
    assert str(json.decoder.__spec__.origin).endswith("json/decoder.pyc")
    assert str(pydantic.main.__spec__.origin).endswith("pydantic/main.pyc")
    assert str(ours.origin).endswith("transport.py")
    assert ours.cached == importlib.util.cache_from_source(ours.origin) and os.path.exists(ours.cached)
