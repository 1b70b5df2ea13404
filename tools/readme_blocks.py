"""The README's code blocks, each with where it runs: the tests run every one of them as written.

A fenced block is preceded by a marker that names where it runs (one or more of these words):

    <!-- test: cpython -->      Python, run in CPython against the local server
    <!-- test: browser -->      Python, run in a page of each browser engine (tests/browser/test_readme_pages.py)
    <!-- test: shell -->        commands: each ``./build.sh X`` must be a build.sh command, and each
                                ``python -m MODULE --flag`` must be a flag the module's --help lists
    <!-- test: page -->         an HTML page (PyScript, say), served beside the dist and loaded in each engine
    <!-- test: backend -->      a Python module for the user's own server: tests/cpython/test_server_sdk.py
                                runs it with the local server standing in for the API
    <!-- test: worker-host -->  the page's lines for a plain Pyodide worker: pyodide_realtime.audio's
                                HOST_SNIPPET as written (tests/e2e/test_worker.py runs it in a page)
    <!-- test: worker -->       Python, run in a PyScript worker of a cross-origin isolated page served
                                by the local server (tests/e2e/test_readme_worker.py)

Python blocks run in order in one namespace per place, top-level ``await`` allowed; ``realtime_url``,
``ephemeral_key`` and ``mint_key`` (an async function that mints a fresh key) are given in CPython (a
browser block gets them from the page's server, as the README shows). A block without a marker, or a ``<script type="py">`` outside a page block, fails
``tests/cpython/test_readme.py``: nothing in the README goes untested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
KINDS = frozenset({"cpython", "browser", "shell", "page", "backend", "worker-host", "worker"})
_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\s*$", re.S | re.M)
_MARKER = re.compile(r"<!-- test: ([\w -]+) -->\s*$")
#: The marker the README used before this module: its block runs in CPython.
_LEGACY_MARKER = "<!-- readme-example -->"
_PY_SCRIPT = re.compile(r"<script[^>]*type=[\"']py[\"']")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    kinds: frozenset[str]

    def where(self) -> str:
        return f"README.md line {self.line} (```{self.language})"


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order, with the places its marker names (empty: none)."""
    text = README.read_text() if text is None else text
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        kinds = frozenset(marker.group(1).split()) if marker else frozenset()
        if before.strip() == _LEGACY_MARKER:
            kinds = frozenset({"cpython"})
        found.append(Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1, kinds))
    return found


def of_kind(kind: str, text: str | None = None) -> list[Block]:
    return [b for b in blocks(text) if kind in b.kinds]


def problems(text: str | None = None) -> list[str]:
    """What keeps the README from being tested whole: unmarked blocks, unknown places, stray PyScript tags."""
    text = README.read_text() if text is None else text
    found = []
    for block in blocks(text):
        if not block.kinds:
            found.append(f"{block.where()} has no <!-- test: ... --> marker: say where it runs ({', '.join(sorted(KINDS))})")
        elif unknown := block.kinds - KINDS:
            found.append(f"{block.where()} names unknown places {sorted(unknown)}")
    outside = _FENCE.sub("", text)
    for match in _PY_SCRIPT.finditer(outside):
        line = text.count("\n", 0, text.find(match.group(0))) + 1
        found.append(f"README.md line {line}: a <script type=\"py\"> outside a page block is never run: make it a page block")
    return found
