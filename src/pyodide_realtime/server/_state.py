"""What the server saw, kept for tests: every connection's client events, truncations and errors.

Served as JSON at ``GET /_test/state`` (browser and end-to-end tests) and readable in-process.
Audio payloads are replaced by their size so that the log stays small.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

ELIDED_FIELDS = ("audio", "delta")


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
    received: list[dict[str, Any]] = field(default_factory=list)
    sent_types: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    truncations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def received_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.received]


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
            "connections": [asdict(connection) for connection in self.connections],
            "truncations": self.truncations,
            "rejected": list(self.rejected),
            "keys_minted": self.keys_minted,
        }
