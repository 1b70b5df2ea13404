"""build.sh's command line: help is a success, an unknown command is named and fails with usage status 2;
what its set-up installs works from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[2] / "build.sh"
USAGE_EXIT = 2


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUILD), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args", [(), ("--help",), ("-h",), ("help",)])
def test_help_prints_the_commands_and_succeeds(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "test", "dist", "bench", "lint", "setup", "pytest"):
        assert f"./build.sh {command}" in result.stdout


def test_an_unknown_command_is_named_and_fails() -> None:
    result = run("tset")
    assert result.returncode == USAGE_EXIT
    assert "unknown command: tset" in result.stderr
    assert "./build.sh test" in result.stderr  # the usage follows, on stderr
    assert result.stdout == ""


def test_the_venv_runs_the_server_module_from_anywhere_without_pythonpath(tmp_path: Path) -> None:
    # ./build.sh setup installs the client editable beside the server: `python -m pyodide_realtime_server`
    # imports it, and needs no PYTHONPATH (the demo's command, and the README's).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # Found as the server's own start-up check finds them (importing the app would take seconds).
    probe = ("import importlib.util as u; assert u.find_spec('pyodide_realtime_server');"
             " print(u.find_spec('pyodide_realtime').origin)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    # An editable install of a checkout's src/, not a copy that an edit would not reach.
    assert Path(result.stdout.strip()).parts[-3:] == ("src", "pyodide_realtime", "__init__.py"), result.stdout
