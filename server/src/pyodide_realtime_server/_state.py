"""What the server saw, kept for tests: each connection's latest client events, truncations and errors.

Served as JSON at ``GET /_test/state`` (browser and end-to-end tests) and readable in-process.
Audio payloads are replaced by their size, and each connection keeps only its latest events (a
microphone appends about 25 times a second, so a long demo session would otherwise grow without
limit); the snapshot counts what was left out.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

ELIDED_FIELDS = ("audio", "delta")
# Per connection and direction. Far more than any test reads; a few hundred kB at most.
MAX_LOGGED_EVENTS = 2000
# Errors and truncations per connection, and closed connections kept: everything here is bounded,
# so 100k bad events (or a long-running demo) cannot grow the server.
MAX_LOGGED_ERRORS = 200
MAX_LOGGED_TRUNCATIONS = 200
MAX_CONNECTION_RECORDS = 100
MAX_REJECTED_RECORDS = 100
# A logged event is cut to this much JSON (a 15 MB append event must not stay in memory).
MAX_LOGGED_VALUE_CHARS = 2000


def elide_audio(event: dict[str, Any]) -> dict[str, Any]:
    """The event as logged: audio replaced by its size, any other long string cut short."""
    logged: dict[str, Any] = {}
    for key, value in event.items():
        if key in ELIDED_FIELDS and isinstance(value, str):
            logged[key] = f"<{len(value)} base64 chars>"
        elif isinstance(value, str) and len(value) > MAX_LOGGED_VALUE_CHARS:
            logged[key] = value[:MAX_LOGGED_VALUE_CHARS] + f"... <{len(value)} chars>"
        else:
            logged[key] = value
    return logged


@dataclass
class ConnectionRecord:
    id: str
    dialect: str
    model: str
    path: str
    subprotocol: str | None
    auth: str  # "ephemeral" or "regular" (--accept-any-key)
    opened_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    close_code: int | None = None
    # The latest client events (oldest first) and server event types; ``*_left_out`` counts older ones.
    received: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_EVENTS))
    received_left_out: int = 0
    sent_types: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_EVENTS))
    sent_left_out: int = 0
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_ERRORS))
    errors_left_out: int = 0
    truncations: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_TRUNCATIONS))

    @property
    def received_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.received]

    def log_received(self, event: dict[str, Any]) -> None:
        if len(self.received) == self.received.maxlen:
            self.received_left_out += 1
        self.received.append(elide_audio(event))

    def log_error(self, error: dict[str, Any]) -> None:
        if len(self.errors) == self.errors.maxlen:
            self.errors_left_out += 1
        self.errors.append(error)

    def log_sent(self, event_type: str) -> None:
        if len(self.sent_types) == self.sent_types.maxlen:
            self.sent_left_out += 1
        self.sent_types.append(event_type)

    def snapshot(self) -> dict[str, Any]:
        data = asdict(self)  # a deep copy: ServerThread hands it to another thread
        data["received"] = list(data["received"])
        data["sent_types"] = list(data["sent_types"])
        data["errors"] = list(data["errors"])
        data["truncations"] = list(data["truncations"])
        return data


@dataclass
class ServerState:
    connections: deque[ConnectionRecord] = field(default_factory=lambda: deque(maxlen=MAX_CONNECTION_RECORDS))
    # Refused handshakes: path, status, message.
    rejected: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_REJECTED_RECORDS))
    keys_minted: int = 0

    @property
    def truncations(self) -> list[dict[str, Any]]:
        return [truncation for connection in self.connections for truncation in connection.truncations]

    def reset(self) -> None:
        self.connections.clear()
        self.rejected.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": [connection.snapshot() for connection in self.connections],
            "truncations": self.truncations,
            "rejected": list(self.rejected),
            "keys_minted": self.keys_minted,
        }
