"""Every code block of the README runs as written (tools/readme_blocks.py says where each one runs).

Here: that every block is marked, the Python blocks marked ``cpython`` (in order, one namespace,
against the local server), and the ``shell`` blocks (every ``./build.sh`` command exists, every flag of
a ``python -m`` line is one its --help lists). The ``browser`` and ``page`` blocks run in the browser
suite (tests/browser/test_readme_pages.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyodide_realtime_server import RealtimeServer
from readme_blocks import README, Block, of_kind, problems

ROOT = Path(__file__).resolve().parents[2]


def test_every_block_says_where_it_runs() -> None:
    assert problems() == []


@pytest.mark.asyncio
async def test_the_python_blocks_run_in_cpython(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = of_kind("cpython")
    assert blocks, "the README lost its CPython example"
    async with RealtimeServer(pace=0, speech="tones") as server:
        async def mint_key() -> str:  # what the README's browser block defines with the page's server
            return server.mint_key()

        namespace: dict[str, object] = {
            "realtime_url": server.ws_url, "ephemeral_key": server.mint_key(), "mint_key": mint_key,
        }
        for block in blocks:
            # Top-level await, as in a page: each block runs as the body of a coroutine that shares
            # the namespace (names it assigns are copied back for the next block).
            body = block.code + "\n__names__.update({k: v for k, v in locals().items() if k != '__names__'})\n"
            source = "async def __block__(__names__):\n" + textwrap.indent(body, "    ")
            exec(compile(source, f"{README}:{block.line}", "exec"), namespace)
            runner = namespace.pop("__block__")
            await runner(namespace)  # type: ignore[operator]
            namespace.update(namespace.pop("__names__", {}))  # type: ignore[arg-type]
    printed = capsys.readouterr().out
    assert printed.strip(), "the examples print what they received"
    assert "error:" not in printed


def build_commands() -> set[str]:
    usage = subprocess.run([str(ROOT / "build.sh"), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\./build\.sh (\w+)", usage))


def module_help(module: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, f"python -m {module} --help failed: {result.stderr}"
    return result.stdout


def check_command(line: str, block: Block, commands: set[str]) -> None:
    words = shlex.split(line, comments=True)
    if not words:
        return
    if words[0] == "./build.sh":
        assert len(words) > 1 and words[1] in commands, f"{block.where()}: `{line}` is not a build.sh command"
    elif words[:2] == ["python", "-m"]:
        known = module_help(words[2])
        for flag in (w.split("=")[0] for w in words[3:] if w.startswith("--")):
            assert flag in known, f"{block.where()}: {words[2]} has no {flag} (its --help: {known})"
    else:
        pytest.fail(f"{block.where()}: no check knows `{words[0]}`: use ./build.sh or python -m, or teach this test")


def test_the_shell_blocks_name_real_commands_and_flags() -> None:
    blocks = of_kind("shell")
    commands = build_commands()
    for block in blocks:
        for line in block.code.splitlines():
            check_command(line, block, commands)


def test_the_checks_catch_what_they_should() -> None:
    # The marker rules and the command check fail on the faults they are there for.
    text = "text\n```python\nprint(1)\n```\n<!-- test: shell -->\n```bash\n./build.sh nope\n```\n<script type=\"py\">\n"
    found = problems(text)
    assert any("no <!-- test: ... --> marker" in p for p in found)
    assert any("outside a page block" in p for p in found)
    block = of_kind("shell", text)[0]
    with pytest.raises(AssertionError, match="not a build.sh command"):
        check_command(block.code.strip(), block, build_commands())


def test_the_pyscript_default_the_readme_names_is_the_one_pyscript_ships() -> None:
    # "without "interpreter", PyScript 0.7.31 takes Pyodide 314.0.2 from the jsDelivr CDN": both
    # versions come from node_modules, so a PyScript upgrade that changes them fails here.
    claim = re.search(r"PyScript (\d+\.\d+\.\d+) takes Pyodide (\d+\.\d+\.\d+) from the jsDelivr CDN",
                      " ".join(README.read_text().split()))
    assert claim, "the README no longer says which Pyodide PyScript's default interpreter is"
    core = ROOT / "node_modules" / "@pyscript" / "core"
    shipped = json.loads((core / "package.json").read_text())["version"]
    defaults = set()
    for bundle in (core / "dist").glob("core-*.js"):
        defaults |= set(re.findall(r'\(e="(\d+\.\d+\.\d+)"\)=>`https://cdn\.jsdelivr\.net/pyodide/v', bundle.read_text()))
    assert (claim.group(1), {claim.group(2)}) == (shipped, defaults)


def test_the_worker_host_lines_are_the_ones_the_worker_test_runs() -> None:
    from pyodide_realtime.audio import HOST_SNIPPET

    (block,) = of_kind("worker-host")
    assert block.code.strip() == HOST_SNIPPET.strip()
