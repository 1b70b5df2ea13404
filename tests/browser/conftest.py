"""Browser tests: pytest-pyodide drives Debian's headless Chromium (selenium + chromedriver).

``./build.sh test`` passes ``--runtime chrome --dist-dir dist/pyodide``; pytest-pyodide serves that folder
itself, and our ``pyodide-lock.json`` makes every package load from it. A module that needs more Chrome
flags (a fake microphone file, say) adds them with ``get_global_config().set_flags`` in a module-scoped
autouse fixture (the browser of a module starts after its autouse fixtures) and restores them after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_pyodide import get_global_config

from chromium import DEFAULT_FLAGS

ROOT = Path(__file__).resolve().parents[2]

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
