"""Browser tests: every test runs in Chromium, Firefox and WebKit (engines.py).

Each engine starts once per session (``started_engine``, parametrized: pytest runs all of one engine's
tests before the next engine's); ``engine`` hands it to a module, WebKit with a web process of the
module's own (a new driver session), and a new one after a crash. Every page of a module is served by
``engine_server`` (the local Realtime server, with the local dist at /pyodide). Two ways to run code in a page:
- ``@run_in_pyodide`` (pytest-pyodide) with the ``selenium`` fixture: one Pyodide per module and engine,
  booted by pytest-pyodide's runner for that engine (``engines.pyodide_runner``). The way to write a test
  that only runs Python in Pyodide.
- the page API (``page``: one per module and engine, Pyodide and our package loaded; ``in_page`` functions,
  ``eval_js``, ``click``): for what ``run_in_pyodide`` cannot express (docs/engines.md says what).
A module uses one of the two (WebKit has one window). A module's tests share its page, so a test cleans
up what it starts (players, sockets). ``engine`` tells what differs between engines (the microphone's
tone, say; docs/engines.md).

Timing is not asserted: what a busy machine makes late (a round trip to the audio thread, a stop that
landed after its promise, capture behind real time) is reported as a figure with ``timing_figure`` (tests/conftest.py), and
pytest prints the figures at the end of the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import ENGINES, Engine, Page

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PAGES = Path(__file__).resolve().parent / "pages"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def engine_server() -> Iterator[Any]:
    """The local Realtime server serving tests/browser/pages/ and the dist at /pyodide, for the engines.

    speech="tones": the same audio with or without espeak-ng; pace 4: faster than real time, as the
    real API streams, yet slow enough to interrupt a reply midway.
    """
    from engines import start_realtime_server

    server = start_realtime_server(
        host="127.0.0.1", port=0, web_root=str(ENGINE_PAGES), mounts={"/pyodide": ROOT / "dist" / "pyodide"},
        speech="tones", pace=4.0,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=ENGINES)
def started_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One started browser engine per engine name, for the whole session (tests/browser/engines.py)."""
    from engines import open_engine

    with open_engine(request.param, tmp_path_factory.mktemp(request.param)) as started:
        yield started


@pytest.fixture(scope="module")
def engine(started_engine: Engine) -> Engine:
    """The session's engine, with a web process of the module's own in WebKit: WebKitGTK keeps every
    AudioWorklet thread it ever started until its web process ends, and one such long-lived process
    crashed (docs/engines.md). A new driver session there costs a MiniBrowser start (3 s at a load of 25)."""
    started_engine.renew(if_used=True)
    return started_engine


#: WebKit: a module's page loads again in a new web process once this many tests ran on it. WebKitGTK frees
#: no audio thread of a web process before it ends (docs/engines.md), and the WebKit failures of recent
#: full runs came 14 to 22 audio tests into one process: an audio thread that stalled for over a second
#: (twice in one CI run), a web process that crashed, one whose audio threads spun until it hung.
WEBKIT_TESTS_PER_WEB_PROCESS = 8


@pytest.fixture(autouse=True)
def _a_crash_costs_one_test(request: pytest.FixtureRequest) -> None:
    """WebKit: after a test that crashed the web process (it failed, saying so), the module's page and
    runner load again in a new session, so that the module's next tests run. Nothing is retried. A page
    that ran WEBKIT_TESTS_PER_WEB_PROCESS tests loads again in a new session too."""
    if "engine" not in request.fixturenames:
        return
    engine: Engine = request.getfixturevalue("engine")
    if not engine.crashed:
        if engine.name == "webkit" and "page" in request.fixturenames:
            page: Page = request.getfixturevalue("page")
            if page.tests_run >= WEBKIT_TESTS_PER_WEB_PROCESS:
                engine.reopen(page)  # the fresh page's count starts at 0
            page.tests_run += 1
        return
    if "page" in request.fixturenames:
        engine.reopen(request.getfixturevalue("page"))
    if "selenium" in request.fixturenames:
        engine.renew()
        request.getfixturevalue("selenium").boot()


@pytest.fixture(scope="module")
def selenium(engine: Engine, engine_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """pytest-pyodide's runner on a page of ``engine``: the first argument of a ``@run_in_pyodide`` test.
    Pyodide boots once per module and engine; closed after the module's last test of that engine."""
    from engines import pyodide_runner

    runner = pyodide_runner(engine, engine_server.url, request.config.option.dist_dir)
    try:
        yield runner
    finally:
        runner.quit()


@pytest.fixture(scope="module")
def page(engine: Engine, engine_server: Any) -> Iterator[Page]:
    """A page of ``engine`` with Pyodide and our package loaded: ``run_python``, ``eval_js``, ``click``,
    and ``in_page`` functions. One per module; closed after the module's last test of that engine."""
    with _engine_page(engine, engine_server) as opened:
        if engine.autoplay_needs_gesture and not engine.gesture_expires:
            opened.click()  # a person has clicked the page: from then on it may play (Firefox)
        yield opened


@pytest.fixture
def unclicked_page(engine: Engine, engine_server: Any) -> Iterator[Page]:
    """A page of the test's own that nobody has clicked yet (autoplay policies). Not in a module that
    uses ``page``: WebKit has one window, and this page would replace that one."""
    with _engine_page(engine, engine_server) as opened:
        yield opened


@contextlib.contextmanager
def _engine_page(engine: Engine, server: Any) -> Iterator[Page]:
    opened = engine.open(f"{server.url.rstrip('/')}/engine.html")
    try:
        yield opened
    finally:
        opened.close()
