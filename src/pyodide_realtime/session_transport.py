"""``SessionTransport``: the part of a transport's public API that :class:`RealtimeSession` uses.

The session is built on this surface only. :class:`~pyodide_realtime.transport.OpenAIRealtimeWebSocket`
has it, and so has :class:`~pyodide_realtime.testing.ScriptedRealtimeTransport` (a real transport
over an in-memory socket, for tests). A class of your own with these methods and events can stand
behind a session too: ``RealtimeSession(agent, transport=yours)``.

The events a session listens to (``transport.on(name, handler)``): ``*`` (every server event,
parsed), ``audio``, ``audio_done``, ``audio_interrupted``, ``function_call``, ``turn_started``,
``turn_done``, ``error``, ``disconnected``, ``reconnected`` and ``reconnect_failed``; their payloads
are the classes of :mod:`pyodide_realtime.events` and :mod:`pyodide_realtime.transport`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["SessionTransport", "SESSION_TRANSPORT_METHODS"]

#: What ``RealtimeSession(transport=...)`` checks an object for before it accepts it.
SESSION_TRANSPORT_METHODS = (
    "on",
    "connect",
    "close",
    "send_event",
    "send_message",
    "send_audio",
    "send_function_call_output",
    "send_mcp_response",
    "request_response",
    "update_session_config",
    "reset_history",
    "interrupt",
    "mute",
)


@runtime_checkable
class SessionTransport(Protocol):
    """What a session needs from its transport (see the module docstring)."""

    @property
    def status(self) -> str:
        """``disconnected``, ``connecting`` or ``connected``."""
        ...

    @property
    def reconnecting(self) -> bool:
        """True between an unexpected close and the end of the reconnect attempts."""
        ...

    def on(self, name: str, handler: Callable[[Any], Any]) -> Callable[[], None]: ...

    async def connect(
        self,
        api_key: Any = None,
        model: str | None = None,
        url: str | None = None,
        call_id: str | None = None,
        initial_session_config: Any = None,
        *,
        timeout: float | None = ...,
    ) -> None: ...

    def close(self) -> None: ...

    def send_event(self, event: Mapping[str, Any]) -> None: ...

    def send_message(self, message: str | Mapping[str, Any], other_event_data: Mapping[str, Any] | None = None) -> None: ...

    def send_audio(self, pcm: bytes | bytearray | memoryview, commit: bool = False) -> None: ...

    def send_function_call_output(self, call: Any, output: Any, start_response: bool = True) -> None: ...

    def send_mcp_response(self, approval_request_id: str, approve: bool, reason: str | None = None) -> None: ...

    def request_response(self, response: Mapping[str, Any] | None = None) -> None: ...

    def update_session_config(self, config: Any) -> None: ...

    def reset_history(self, old_items: Iterable[Any], new_items: Iterable[Any]) -> None: ...

    def interrupt(self, cancel_ongoing_response: bool = True) -> None: ...

    def mute(self, muted: bool) -> None: ...
