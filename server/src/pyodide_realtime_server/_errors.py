"""The server's errors: what a client did wrong (answered as an ``error`` event), and start-up failures."""

from __future__ import annotations

from typing import Any


class RealtimeServerError(Exception):
    """The base of the server's own failures (not a client's mistake)."""


class PortInUseError(RealtimeServerError):
    """The port asked for is taken; the message says what to do, in one line."""


# A message may quote what the client sent and a param may name a key it made up: either may be
# megabytes long, and errors are sent back and logged.
MAX_MESSAGE_CHARS = 1000
MAX_PARAM_CHARS = 200


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters in all)"


class ClientEventError(Exception):
    """A client event the real API would refuse; becomes an ``error`` event naming its event_id."""

    def __init__(self, code: str, message: str, param: str | None = None, type_: str = "invalid_request_error") -> None:
        message = _cut(message, MAX_MESSAGE_CHARS)
        param = None if param is None else _cut(param, MAX_PARAM_CHARS)
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type_

    def as_error(self, event_id: str | None) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message, "param": self.param, "event_id": event_id}


class SdpRefused(Exception):
    """An SDP offer the WebRTC stack cannot answer; the message says why, and is sent to the client
    (cut, as it may quote the offer)."""

    def __init__(self, message: str) -> None:
        super().__init__(_cut(message, MAX_MESSAGE_CHARS))
