"""The transport's send context: run calls into the protocol core, then send and deliver what they made.

In the manner of websockets' ``send_context``: every app call that changes the protocol's state runs
inside ``with transport._sending() as core:``. The core validates and queues (a call that raises has
queued nothing); when the outermost context exits, the I/O layer acts on the core's hints, sends its
frames and delivers its events, in that order. Contexts nest: an interruption that also cancels (the
``_cancel_response`` hook) goes out as one flush, so the player is stopped before anything is sent.

:func:`sends` makes a transport method out of a core method of the same signature: the public,
JS-compatible names stay on the transport, written once each, with the core's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from ._core import RealtimeProtocol

__all__ = ["SendContext", "Sender", "sends"]

P = ParamSpec("P")
R = TypeVar("R")


class Sender(Protocol):
    """What :func:`sends` needs of the transport."""

    def _sending(self) -> AbstractContextManager[RealtimeProtocol]: ...


class SendContext:
    """The nesting depth of one transport's send contexts; ``flush`` runs when the outermost exits."""

    __slots__ = ("_core", "_flush", "_depth")

    def __init__(self, core: RealtimeProtocol, flush: Callable[[], None]) -> None:
        self._core = core
        self._flush = flush
        self._depth = 0

    @contextmanager
    def __call__(self) -> Iterator[RealtimeProtocol]:
        self._depth += 1
        try:
            yield self._core
        finally:
            # Also after an error: what the core queued before it (an outer call's frames) is valid.
            self._depth -= 1
            if self._depth == 0:
                self._flush()


class sends(Generic[P, R]):  # noqa: N801 - used like a decorator
    """``send_message = sends(RealtimeProtocol.send_message)``: the transport method calls the core's
    inside the send context."""

    def __init__(self, method: Callable[Concatenate[RealtimeProtocol, P], R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self._name = method.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, transport: None, owner: type) -> sends[P, R]: ...
    @overload
    def __get__(self, transport: Sender, owner: type) -> Callable[P, R]: ...
    def __get__(self, transport: Sender | None, owner: type) -> Any:
        if transport is None:
            return self
        method = self._method

        def send(*args: P.args, **kwargs: P.kwargs) -> R:
            with transport._sending() as core:
                return method(core, *args, **kwargs)

        send.__name__ = send.__qualname__ = self._name
        send.__doc__ = self.__doc__
        return send
