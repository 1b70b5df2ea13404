"""The README's first usage example runs as written, against the local server (CPython backend)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pyodide_realtime_server import RealtimeServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    match = re.search(r"<!-- readme-example -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "the README lost its tested example"
    return match.group(1)


@pytest.mark.asyncio
async def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    async with RealtimeServer(pace=0, speech="tones") as server:
        source = "async def example(realtime_url, ephemeral_key):\n" + textwrap.indent(readme_example(), "    ")
        namespace: dict[str, object] = {}
        exec(compile(source, str(README), "exec"), namespace)
        await namespace["example"](server.ws_url, server.mint_key())  # type: ignore[operator]
    printed = capsys.readouterr().out
    assert printed.startswith("You said: Hello!")
    assert "output_tokens=" in printed
    assert "error:" not in printed
