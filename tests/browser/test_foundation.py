"""The chain a user relies on: local Pyodide, our lock, our wheel, pydantic, micropip — all offline."""

from __future__ import annotations

from pytest_pyodide import run_in_pyodide


@run_in_pyodide(packages=["pyodide-realtime"])
def test_package_loads_by_name_and_validates_with_pydantic(selenium):
    import pydantic

    import pyodide_realtime
    from pyodide_realtime import SessionConfig

    assert pydantic.VERSION.startswith("2.")
    config = SessionConfig.model_validate({"instructions": "Be brief.", "temperature": 0.7})
    assert config.instructions == "Be brief."
    with __import__("pytest").raises(pydantic.ValidationError):
        SessionConfig.model_validate({"temperature": "hot"})
    assert pyodide_realtime.__version__


def test_no_request_left_loopback(selenium):
    # Every resource the page fetched so far (Pyodide, stdlib, wheels, lock) came from 127.0.0.1.
    selenium.run_js(
        """
        await pyodide.loadPackage(["pyodide-realtime", "pydantic"]);
        """
    )
    urls = selenium.run_js(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);"
    )
    assert any(u.endswith(".whl") for u in urls), urls
    assert any("pydantic_core" in u for u in urls), urls
    outside = [u for u in urls if not u.startswith(("http://127.0.0.1:", "http://localhost:", "blob:", "data:"))]
    assert outside == []


def test_micropip_installs_our_wheel_by_url(selenium):
    import json
    from pathlib import Path

    lock = json.loads((Path(__file__).resolve().parents[2] / "dist/pyodide/pyodide-lock.json").read_text())
    wheel = lock["packages"]["pyodide-realtime"]["file_name"]
    selenium.run_js(
        f"""
        await pyodide.loadPackage("micropip");
        await pyodide.runPythonAsync(`
import micropip
await micropip.install("./{wheel}")
import pyodide_realtime
assert pyodide_realtime.__version__
`);
        """
    )
    installed = selenium.run("import micropip; sorted(micropip.list())")
    assert "pyodide-realtime" in installed or "pyodide_realtime" in installed


@run_in_pyodide(packages=["pyodide-realtime"])
def test_the_dist_ships_bytecode_that_the_page_uses(selenium):
    # build.sh precompiles the stdlib zip and the start-up wheels inside Pyodide (tools/precompile.py):
    # pyc-only modules load from .pyc; ours keeps its sources and its bytecode is found in __pycache__.
    import importlib.util
    import json.decoder
    import os

    import pydantic.main

    import pyodide_realtime.transport

    assert json.decoder.__spec__.origin.endswith("json/decoder.pyc"), json.decoder.__spec__.origin
    assert pydantic.main.__spec__.origin.endswith("pydantic/main.pyc"), pydantic.main.__spec__.origin
    ours = pyodide_realtime.transport.__spec__
    assert ours.origin.endswith("transport.py")
    assert os.path.exists(ours.cached) and ours.cached == importlib.util.cache_from_source(ours.origin)
