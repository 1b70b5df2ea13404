"""Browser tests: pytest-pyodide drives Debian's headless Chromium (selenium + chromedriver).

``./build.sh test`` passes ``--runtime chrome --dist-dir dist/pyodide``; pytest-pyodide serves that folder
itself, and our ``pyodide-lock.json`` makes every package load from it. A module that needs more Chrome
flags (a fake microphone file, say) adds them with ``get_global_config().set_flags`` in a module-scoped
autouse fixture (the browser of a module starts after its autouse fixtures) and restores them after.

Tests that run in every engine (Chromium, Firefox, WebKit) take the ``page`` fixture instead: one page
per engine and module (tests/browser/engines.py), Pyodide and our package loaded, served with the dist
by ``engine_server``; ``engine`` tells what differs between engines (the microphone's tone, say).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_pyodide import get_global_config

from chromium import DEFAULT_FLAGS
from engines import ENGINES

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PAGES = Path(__file__).resolve().parent / "pages"

# set_flags replaces the whole list: DEFAULT_FLAGS keeps pytest-pyodide's own --expose-gc.
get_global_config().set_flags("chrome", list(DEFAULT_FLAGS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def realtime_server() -> Iterator[object]:
    """The local Realtime server on loopback, in a thread, for the module's browser tests."""
    from pyodide_realtime_server import start_in_thread

    # speech="tones": the same audio with or without espeak-ng; pace 4: faster than real time, as
    # the real API streams, yet slow enough to interrupt a reply midway.
    server = start_in_thread(host="127.0.0.1", port=0, web_root=str(ROOT / "web"), speech="tones", pace=4.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def engine_server() -> Iterator[Any]:
    """The local Realtime server serving tests/browser/pages/ and the dist at /pyodide, for the engines."""
    from engines import start_realtime_server

    server = start_realtime_server(
        host="127.0.0.1", port=0, web_root=str(ENGINE_PAGES), mounts={"/pyodide": ROOT / "dist" / "pyodide"},
        speech="tones", pace=4.0,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One started browser engine per module and engine name (tests/browser/engines.py)."""
    from engines import open_engine

    with open_engine(request.param, tmp_path_factory.mktemp(request.param)) as started:
        yield started


@pytest.fixture(scope="module")
def page(engine: Any, engine_server: Any) -> Any:
    """A page of ``engine`` with Pyodide and our package loaded: ``run_python``, ``eval_js``, ``click``."""
    return engine.open(f"{engine_server.url.rstrip('/')}/engine.html")
