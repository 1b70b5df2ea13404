"""The ``alone`` mark (tests/conftest.py): under pytest-xdist, no other test runs beside a test that has it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
