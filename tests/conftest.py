"""Shared by every test: import the package from src/ (no install step between an edit and a test run),
keep hypothesis's caches out of the work tree (in .cache/, with the build's other caches), run the folders
in an order that works in one process (``RUN_ORDER``), keep a test marked ``alone`` from sharing the
machine with another test, and print the timing figures tests report."""

import asyncio
import fcntl
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))  # chromium.py: the browser flags every test shares
#: Hypothesis writes its unicode tables (and, unless told otherwise, its example database) to
#: ``./.hypothesis`` by default: here instead.
HYPOTHESIS_HOME = ROOT / ".cache" / "hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_HOME)


#: The order the folders run in. Playwright's sync API (tests/e2e, and the Chromium engine of
#: tests/browser) leaves its event loop set as the thread's running loop between two of its calls, and
#: ``asyncio.run`` (so every CPython test with a loop of its own) refuses to start under it: the tests that
#: drive Playwright come last. Under pytest-xdist each worker takes whole files in this order
#: (``--dist loadfile --no-loadscope-reorder``, build.sh), so no worker goes back from them either.
RUN_ORDER = ("tests/cpython/", "tests/pyodide/", "tests/browser/", "tests/e2e/")


#: The slowest files of the last folder, started first: a worker that takes one of them near the end of
#: the run would go on alone for a minute (a fresh clone: test_worker.py 62 s and test_demo.py 50 s of
#: the e2e folder's 162 s; alphabetically test_worker.py came last and ran alone for most of its time).
SLOW_FIRST = ("tests/e2e/test_worker.py", "tests/e2e/test_demo.py")


def _rank(item: pytest.Item) -> int:
    path = item.path.relative_to(ROOT).as_posix()
    return next((i for i, folder in enumerate(RUN_ORDER) if path.startswith(folder)), len(RUN_ORDER))


def _order(item: pytest.Item) -> tuple[int, int]:
    path = item.path.relative_to(ROOT).as_posix()
    return _rank(item), SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)


@pytest.hookimpl(trylast=True)  # after pytest has grouped the browser tests by engine: a stable sort keeps that
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _rank(item) < RUN_ORDER.index("tests/browser/") and asyncio._get_running_loop() is not None:
        pytest.fail(
            f"{item.nodeid} starts under another test's running event loop (Playwright's sync API left it): "
            "run the tests in the order of tests/conftest.py's RUN_ORDER (build.sh does)",
            pytrace=False,
        )


#: What the tests reported with ``timing_figure``, as (test id, what, value). Each figure travels on its
#: test's report (``user_properties``), so pytest-xdist's workers hand theirs to the process that prints.
_FIGURES: list[tuple[str, str, str]] = []
_FIGURE = "timing figure"


@pytest.fixture
def timing_figure(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``timing_figure(what, value)``: a timing of this test, printed at the end of the run, not asserted."""
    return lambda what, value: request.node.user_properties.append((_FIGURE, (what, value)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # the last report of a test: it carries every figure the test gave
        _FIGURES.extend((report.nodeid, *figure) for name, figure in report.user_properties if name == _FIGURE)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("timing figures (reported, not asserted: they move with the machine's load)")
        for nodeid, what, value in _FIGURES:
            terminalreporter.write_line(f"{nodeid.rsplit('::', 1)[-1]}: {what}: {value}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """Under pytest-xdist, a test marked ``alone`` runs while no other worker runs a test, its fixtures' set-up
    and teardown included (a page's Pyodide boot is the busiest moment of a browser test): what it measures
    (a real-time echo canceller, test_echo.py) fails on a busy machine, which is no fault of ours. Every
    other test holds a shared lock, an ``alone`` test the exclusive one; taking the gate first keeps a
    waiting ``alone`` test from being starved by a stream of shared holders.

    POSIX record locks (``lockf``), not ``flock``: a process forked during a test (pytest-pyodide's web
    server is a ``multiprocessing`` child that lives for the whole session) would share a ``flock`` and
    hold it for good, and the next ``alone`` test would wait forever; a record lock stays with its process."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    if run is None:
        return (yield)
    alone = item.get_closest_marker("alone") is not None
    folder = Path(tempfile.gettempdir())
    # "a+": a shared record lock needs a file open for reading, an exclusive one for writing.
    with open(folder / f"pytest-{run}.gate", "a+") as gate, open(folder / f"pytest-{run}.lock", "a+") as lock:
        fcntl.lockf(gate, fcntl.LOCK_EX)
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.lockf(gate, fcntl.LOCK_UN)
        return (yield)  # closing the files releases what is still held
