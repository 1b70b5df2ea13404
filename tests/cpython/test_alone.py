"""The ``alone`` mark (tests/conftest.py): under pytest-xdist, no other test runs beside a test that has it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CONFTEST = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("root_conftest", {str(ROOT / "tests" / "conftest.py")!r})
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)
pytest_runtest_protocol = root_conftest.pytest_runtest_protocol
"""
#: Two workers start one test each. The ``alone`` test watches, for up to 3 s, for the other inside its body;
#: the other waits, for up to 3 s, for the ``alone`` test to be running: without the lock they meet at once.
_TESTS = """
import time
from pathlib import Path

import pytest

def _wait(found, seconds=3.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if found():
            return True
        time.sleep(0.02)
    return False

@pytest.mark.alone
def test_alone():
    Path("alone-running").touch()
    try:
        assert not _wait(lambda: list(Path().glob("inside-*"))), "another test ran beside the alone one"
    finally:
        Path("alone-running").unlink()

def test_other():
    inside = Path("inside-1")
    inside.touch()
    try:
        _wait(Path("alone-running").exists)
    finally:
        inside.unlink()
"""


def test_no_other_test_runs_beside_one_marked_alone(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    alone: runs alone\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "load", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert "2 passed" in run.stdout, run.stdout + run.stderr


#: One worker: the first test forks a child that outlives it (as pytest-pyodide's web server does) and waits,
#: for up to 20 s, for the ``alone`` test to run; the child writes down whether it saw it. A lock the child
#: had inherited from the first test would keep the ``alone`` test out until the child ended.
_FORK_TESTS = """
import os
import time
from pathlib import Path

import pytest

def test_a_child_outlives_this_test():
    if os.fork() == 0:
        end, seen = time.monotonic() + 20, False
        while time.monotonic() < end and not seen:
            seen = Path("alone-ran").exists()
            time.sleep(0.02)
        Path("child-result.tmp").write_text("saw the alone test" if seen else "the alone test never ran")
        Path("child-result.tmp").rename("child-result")
        os._exit(0)

@pytest.mark.alone
def test_alone_after_it():
    Path("alone-ran").touch()
"""


def test_a_child_forked_in_a_test_does_not_keep_an_alone_test_out(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_FORK_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    alone: runs alone\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert "2 passed" in run.stdout, run.stdout + run.stderr
    result = tmp_path / "child-result"
    for _ in range(3000):  # the child ends within its 20 s once it has seen the test, or not
        if result.exists():
            break
        time.sleep(0.01)
    assert result.read_text() == "saw the alone test"
