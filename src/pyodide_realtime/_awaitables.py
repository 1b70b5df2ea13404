"""What the session's methods return where ``openai-agents`` has coroutines: awaitable, and harmless unawaited.

The work is done (or started) when the method is called. A coroutine that nobody awaits would warn
("never awaited") and do nothing; these objects do the same thing awaited or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

__all__ = ["Done", "DONE", "Running"]


class Done:
    """Already finished: ``await`` returns None at once."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator: `await` takes it, and returns at its first step

    def __repr__(self) -> str:
        return "<done>"


DONE = Done()


class Running:
    """Work running as a task: ``await`` waits for it and raises what it raised. Unawaited, a failure
    is still reported (``on_error``) and never an "exception was never retrieved" warning."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, None]:
        yield from self._task.__await__()

    def done(self) -> bool:
        return self._task.done()

    def __repr__(self) -> str:
        return f"<{'done' if self._task.done() else 'running'}>"
