"""The one error tree of pyodide-realtime.

::

    RealtimeError                      base of everything this package raises on purpose
    ├── UserError                      you called the API wrongly; the message says what to do
    │   ├── ConfigurationError (ValueError)   a bad argument, key, URL or session config
    │   ├── InvalidStateError (RuntimeError)  the call does not fit the connection's state
    │   └── UnsupportedError (RuntimeError)   not possible here (e.g. Web Audio in a Web Worker)
    └── RemoteError                    the server or the network failed us
        ├── ConnectionFailedError           the socket could not be opened or closed before open
        ├── ConnectionClosedError           the socket closed while a call needed it
        └── ServerError                     the server sent an ``error`` event

User errors never change the transport's state; remote errors leave it ``disconnected`` and ready for a
new ``connect``. Secrets (API keys) never appear in any message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RealtimeError",
    "UserError",
    "ConfigurationError",
    "InvalidStateError",
    "UnsupportedError",
    "RemoteError",
    "ConnectionFailedError",
    "ConnectionClosedError",
    "ServerError",
]


class RealtimeError(Exception):
    """Base class of every error this package raises on purpose."""


class UserError(RealtimeError):
    """The caller used the API wrongly. Nothing was sent and no state changed."""


class ConfigurationError(UserError, ValueError):
    """A bad argument, key, URL or session configuration."""


class InvalidStateError(UserError, RuntimeError):
    """The call does not fit the current connection state (e.g. ``connect`` twice)."""


class UnsupportedError(UserError, RuntimeError):
    """The feature cannot work in this environment (e.g. no Web Audio in a Web Worker)."""


class RemoteError(RealtimeError):
    """The server or the network failed."""


class ConnectionFailedError(RemoteError, ConnectionError):
    """The WebSocket could not be opened, or it closed before it opened.

    ``http_status`` is the HTTP status of a refused handshake (401/403: the key was refused) when the
    backend can see it (the CPython backend can; a browser hides it).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.http_status = http_status


class ConnectionClosedError(RemoteError, ConnectionError):
    """The WebSocket closed while an operation needed it."""

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ServerError(RemoteError):
    """The server answered with an ``error`` event.

    ``error`` holds the server's error object (``type``, ``code``, ``message``, ``param``,
    ``event_id``) as a dict.
    """

    def __init__(self, message: str, *, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = dict(error or {})

    @property
    def code(self) -> str | None:
        return self.error.get("code")

    @property
    def event_id(self) -> str | None:
        return self.error.get("event_id")
