"""A small event emitter: named listeners (sync or async) and per-consumer async iterators.

A listener's exception never reaches the code that emitted (the transport is in the middle of a state
change then): it is logged and handed to ``on_listener_error``. Async listeners run as tasks on the
running loop; their exceptions are reported the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .events import TransportEvent

__all__ = ["WANT_ALL", "EventEmitter", "EventStream", "Handler", "Listenable"]

logger = logging.getLogger("pyodide_realtime")

#: A listener gets one argument, the event's payload; it may return an awaitable.
Handler = Callable[[Any], Any]

#: In :attr:`EventEmitter.wanted` when an iterator takes every event.
WANT_ALL = "**"


class _Listener:
    __slots__ = ("handler", "once")

    def __init__(self, handler: Handler, once: bool) -> None:
        self.handler = handler
        self.once = once


class EventStream(AsyncIterator[TransportEvent]):
    """Every event emitted after its creation (optionally only some names), until the emitter closes it.

    Unbounded but private to one consumer; dropping it (or ``aclose()``) unsubscribes it.
    """

    def __init__(self, names: frozenset[str] | None) -> None:
        self._names = names
        self._queue: deque[TransportEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _push(self, event: TransportEvent) -> None:
        if self._closed or (self._names is not None and event.name not in self._names):
            return
        self._queue.append(event)
        self._wake()

    def _close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> TransportEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Stop receiving; events already queued are dropped."""
        self._queue.clear()
        self._close()


class EventEmitter:
    def __init__(self, on_listener_error: Callable[[str, BaseException], None] | None = None) -> None:
        # Tuples, replaced on every change: ``emit`` walks them as they are (a listener added or
        # removed meanwhile changes the next emit, not this one) with no copy per event.
        self._listeners: dict[str, tuple[_Listener, ...]] = {}
        # Weak references in a plain list: an abandoned iterator is collected, and ``emit`` tests
        # for "no iterator" with a list's truthiness (a WeakSet's ``len`` is Python code, per event).
        self._streams: list[weakref.ref[EventStream]] = []
        self._tasks: set[asyncio.Future[Any]] = set()  # kept alive until done
        self._on_listener_error = on_listener_error
        #: The names someone listens to or iterates over (:data:`WANT_ALL`: everything). A producer
        #: may skip making an event nobody wants; the set is updated in place, and may hold names
        #: nobody wants any more (a superset is safe), never miss one.
        self.wanted: set[str] = set()

    def _update_wanted(self) -> None:
        names = {name for name, listeners in self._listeners.items() if listeners}
        for ref in self._streams:
            stream = ref()
            if stream is not None and not stream._closed:
                names |= {WANT_ALL} if stream._names is None else stream._names
        self.wanted.clear()
        self.wanted.update(names)

    def on(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` on every ``name`` event; returns a function that unsubscribes it."""
        return self._add(name, handler, once=False)

    def once(self, name: str, handler: Handler) -> Callable[[], None]:
        """Like :meth:`on`, for the next ``name`` event only."""
        return self._add(name, handler, once=True)

    def off(self, name: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` from ``name`` (every listener of ``name`` if ``handler`` is None)."""
        if handler is None:
            self._listeners.pop(name, None)
        else:
            listeners = self._listeners.get(name) or ()
            for i, listener in enumerate(listeners):
                if listener.handler == handler:
                    self._listeners[name] = listeners[:i] + listeners[i + 1 :]
                    break
        self._update_wanted()

    def listener_count(self, name: str) -> int:
        return len(self._listeners.get(name, ()))

    def events(self, *names: str) -> EventStream:
        """An async iterator of emitted events (of ``names`` only, if given), from now on."""
        stream = EventStream(frozenset(names) if names else None)
        self._streams.append(weakref.ref(stream))
        self._update_wanted()
        return stream

    def close_streams(self) -> None:
        """End every iterator (after it yields what it has queued)."""
        streams, self._streams = self._streams, []
        for ref in streams:
            stream = ref()
            if stream is not None:
                stream._close()
        self._update_wanted()

    def emit(self, name: str, payload: Any = None) -> None:
        """Deliver to listeners and iterators; never raises because of a listener."""
        if self._streams:
            event = TransportEvent(name, payload)
            for ref in tuple(self._streams):
                stream = ref()
                if stream is None:
                    self._streams.remove(ref)
                else:
                    stream._push(event)
        listeners = self._listeners.get(name)
        if not listeners:
            return
        for listener in listeners:
            if listener.once:
                self._remove(name, listener)
            try:
                result = listener.handler(payload)
            except Exception as exc:  # a listener's bug must not break the transport's state change
                self._report(name, exc)
                continue
            if result is not None and inspect.isawaitable(result):  # skip the ABC check for sync handlers
                self._schedule(name, result)

    # Internals ---------------------------------------------------------------------------------------
    def _add(self, name: str, handler: Handler, *, once: bool) -> Callable[[], None]:
        if not callable(handler):
            from .errors import ConfigurationError

            raise ConfigurationError(f"the listener for {name!r} must be callable, got {type(handler).__name__}")
        listener = _Listener(handler, once)
        self._listeners[name] = (*self._listeners.get(name, ()), listener)
        self.wanted.add(name)
        return lambda: self._remove(name, listener)

    def _remove(self, name: str, listener: _Listener) -> None:
        listeners = self._listeners.get(name)
        if listeners and listener in listeners:
            i = listeners.index(listener)
            self._listeners[name] = listeners = listeners[:i] + listeners[i + 1 :]
            if not listeners:
                self._update_wanted()

    def _schedule(self, name: str, awaitable: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            self._report(name, RuntimeError(f"async listener for {name!r} needs a running event loop"))
            return
        task = loop.create_task(_await(awaitable)) if not asyncio.isfuture(awaitable) else awaitable
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(name, t))

    def _task_done(self, name: str, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._report(name, exc)

    def _report(self, name: str, exc: BaseException) -> None:
        logger.error("a listener for %r raised", name, exc_info=(type(exc), exc, exc.__traceback__))
        if self._on_listener_error is None:
            return
        try:
            self._on_listener_error(name, exc)
        except Exception:  # the reporter itself failed (e.g. an error listener raised): logged above
            logger.exception("reporting a listener error failed")


async def _await(awaitable: Any) -> Any:
    return await awaitable


class Listenable:
    """The listener methods of a transport, on its ``_emitter`` (every transport has the same)."""

    _emitter: EventEmitter

    def on(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(payload)`` for every ``name`` event; returns an unsubscribe function.
        Sends nothing; ConfigurationError if ``handler`` is not callable."""
        return self._emitter.on(name, handler)

    def once(self, name: str, handler: Handler) -> Callable[[], None]:
        """Like :meth:`on`, for the next ``name`` event only. Sends nothing; ConfigurationError if
        ``handler`` is not callable."""
        return self._emitter.once(name, handler)

    def off(self, name: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every listener) from ``name``. Sends nothing; never raises."""
        self._emitter.off(name, handler)

    def events(self, *names: str) -> EventStream:
        """Async iterator of every emitted event (or only ``names``) as ``TransportEvent(name, data)``.

        It ends when the transport disconnects (after yielding ``disconnected``), unless a reconnect
        follows: then it goes on with the new connection's events. Sends nothing; never raises.
        """
        return self._emitter.events(*names)
