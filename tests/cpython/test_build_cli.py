"""build.sh's command line: help is a success, an unknown command is named and fails with usage status 2."""

from __future__ import annotations

import subprocess
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
