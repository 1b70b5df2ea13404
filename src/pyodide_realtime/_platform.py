"""Where this interpreter runs: the one place that decides "browser or not"."""

from __future__ import annotations

import sys

__all__ = ["in_browser"]


def in_browser() -> bool:
    """True under Pyodide (the only place the ``js`` module and the page's WebSocket exist)."""
    return sys.platform == "emscripten"
