"""Helpers for the test functions that run in the engine page (``engines.in_page``): engine.html puts
this file beside them, so each is written once rather than in every function's standalone source."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Keep(logging.Handler):
    def __init__(self, messages: list[str]) -> None:
        super().__init__()
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def kept_logs(name: str = "pyodide_realtime") -> Iterator[list[str]]:
    """The messages logged under logger ``name`` inside the block, in a list that fills as they come."""
    messages: list[str] = []
    handler = _Keep(messages)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def closes_rendered_contexts() -> bool:
    """False in WebKit, whose web process can crash when an AudioContext whose worklet rendered is closed
    (docs/engines.md): the library keeps its players' contexts there, and so do the tests."""
    import re

    import js

    agent = str(js.navigator.userAgent)
    return not (re.search("AppleWebKit", agent) and not re.search("Chrome|Chromium|Edg|Firefox", agent))


async def retire_context(context: object) -> None:
    """A test's own AudioContext, done with: closed, or in WebKit suspended (``closes_rendered_contexts``)."""
    if closes_rendered_contexts():
        await context.close()  # type: ignore[attr-defined]
    else:
        await context.suspend()  # type: ignore[attr-defined]
