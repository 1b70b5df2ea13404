"""The session's unread events: what ``async for event in session`` reads, bounded by count and by audio bytes.

Listeners get every event as it happens; this queue only keeps events for loops that read later. A
loop that stops reading (or never starts) must not hold the whole conversation's audio: past
``max_bytes`` of audio, new audio events are dropped first (they already played); past
``max_events``, the oldest event. Each drop is counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["EventQueue"]

_E = TypeVar("_E")


class EventQueue(Generic[_E]):
    """Events for any number of ``async for`` loops (each event goes to one of them), until ``end()``."""

    def __init__(self, max_events: int, max_bytes: int, weight: Callable[[_E], int]) -> None:
        self._events: deque[_E] = deque()
        self._weight = weight
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._bytes = 0
        self._waiters: set[asyncio.Future[None]] = set()  # one per loop waiting
        self.ended = False
        #: Events dropped unread.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def waiting(self) -> int:
        """How many loops wait for an event now."""
        return len(self._waiters)

    def put(self, event: _E) -> None:
        weight = self._weight(event)
        if weight and self._bytes + weight > self._max_bytes:
            self.dropped += 1
            return
        if len(self._events) >= self._max_events:
            self._bytes -= self._weight(self._events.popleft())
            self.dropped += 1
        self._events.append(event)
        self._bytes += weight
        self._wake()

    async def get(self) -> _E:
        """The next event; StopAsyncIteration once ended and empty."""
        while not self._events:
            if self.ended:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            try:
                await waiter
            finally:
                self._waiters.discard(waiter)
        event = self._events.popleft()
        self._bytes -= self._weight(event)
        return event

    def end(self) -> None:
        """Loops end once the events queued now are read."""
        self.ended = True
        self._wake()

    def reopen(self) -> None:
        self.ended = False

    def _wake(self) -> None:
        """Wake every waiting loop: one takes the event, the others wait again (or end, once ended)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
