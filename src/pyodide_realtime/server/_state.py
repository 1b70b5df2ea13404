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


def elide_audio(event: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (f"<{len(value)} base64 chars>" if key in ELIDED_FIELDS and isinstance(value, str) else value)
        for key, value in event.items()
    }


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
    errors: list[dict[str, Any]] = field(default_factory=list)
    truncations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def received_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.received]

    def log_received(self, event: dict[str, Any]) -> None:
        if len(self.received) == self.received.maxlen:
            self.received_left_out += 1
        self.received.append(elide_audio(event))

    def log_sent(self, event_type: str) -> None:
        if len(self.sent_types) == self.sent_types.maxlen:
            self.sent_left_out += 1
        self.sent_types.append(event_type)

    def snapshot(self) -> dict[str, Any]:
        data = asdict(self)  # a deep copy: ServerThread hands it to another thread
        data["received"] = list(data["received"])
        data["sent_types"] = list(data["sent_types"])
        return data


@dataclass
class ServerState:
    connections: list[ConnectionRecord] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # refused handshakes: path, status, message
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
