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
# Per connection and direction. Far more than any test reads.
MAX_LOGGED_EVENTS = 2000
# Errors and truncations per connection, and closed connections kept: everything here is bounded,
# so 100k bad events (or a long-running demo) cannot grow the server.
MAX_LOGGED_ERRORS = 200
MAX_LOGGED_TRUNCATIONS = 200
MAX_CONNECTION_RECORDS = 100
MAX_REJECTED_RECORDS = 100
# One logged event (or error) at most, counted in characters of its strings and keys, at every depth:
# a 15 MB string one level down (``session.instructions``) must not stay in memory either.
MAX_LOGGED_EVENT_CHARS = 8000
MAX_LOGGED_VALUE_CHARS = 2000
MAX_LOGGED_DEPTH = 16
LEFT_OUT = "<left out: the logged event's size bound>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... <{len(text)} chars>"


def bounded(value: Any, budget: list[int], depth: int = 0) -> Any:
    """A copy of ``value`` whose strings, keys and containers together stay within ``budget[0]``
    characters (spent as it goes), cut to :data:`MAX_LOGGED_DEPTH` levels."""
    if budget[0] <= 0:
        return LEFT_OUT
    if isinstance(value, str):
        value = _cut(value, min(MAX_LOGGED_VALUE_CHARS, budget[0]))
        budget[0] -= len(value)
        return value
    if isinstance(value, (dict, list)) and depth >= MAX_LOGGED_DEPTH:
        budget[0] -= len(LEFT_OUT)
        return f"<nested deeper than {MAX_LOGGED_DEPTH}>"
    if isinstance(value, dict):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if budget[0] <= 0:
                copied["..."] = f"<{len(value) - len(copied)} more keys>"
                break
            name = _cut(str(key), min(MAX_LOGGED_VALUE_CHARS, budget[0]))
            budget[0] -= len(name)
            copied[name] = bounded(item, budget, depth + 1)
        return copied
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            if budget[0] <= 0:
                items.append(f"<{len(value) - len(items)} more items>")
                break
            items.append(bounded(item, budget, depth + 1))
        return items
    budget[0] -= 8  # a number, a boolean or null
    return value


def elide_audio(event: dict[str, Any]) -> dict[str, Any]:
    """The event as logged: audio replaced by its size, the rest within :data:`MAX_LOGGED_EVENT_CHARS`."""
    shown = {
        key: f"<{len(value)} base64 chars>" if key in ELIDED_FIELDS and isinstance(value, str) else value
        for key, value in event.items()
    }
    logged: dict[str, Any] = bounded(shown, [MAX_LOGGED_EVENT_CHARS])
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
    # False: nothing is logged (a server without test endpoints keeps no event log).
    logged: bool = True

    @property
    def received_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.received]

    def log_received(self, event: dict[str, Any]) -> None:
        if not self.logged:
            return
        if len(self.received) == self.received.maxlen:
            self.received_left_out += 1
        self.received.append(elide_audio(event))

    def log_error(self, error: dict[str, Any]) -> None:
        if not self.logged:
            return
        if len(self.errors) == self.errors.maxlen:
            self.errors_left_out += 1
        self.errors.append(bounded(error, [MAX_LOGGED_EVENT_CHARS]))

    def log_sent(self, event_type: str) -> None:
        if not self.logged:
            return
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
