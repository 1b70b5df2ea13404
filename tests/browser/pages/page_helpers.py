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


async def retire_context(context: object) -> None:
    """A test's own AudioContext, done with: closed, or in WebKit suspended, as the library does with its
    players' (the shim's ``KEEPS_CONTEXTS``: WebKit's web process can crash on that close, docs/engines.md)."""
    from pyodide_realtime.audio._shim import load_shim

    shim, _ = await load_shim()
    if shim.KEEPS_CONTEXTS:
        await context.suspend()  # type: ignore[attr-defined]
    else:
        await context.close()  # type: ignore[attr-defined]
