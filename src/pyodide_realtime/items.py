"""The items of a session's history: what was said, heard, called and answered, in the server's order.

Items are immutable snapshots; the session replaces an item when it changes (a delta arrived, the reply
was interrupted) and emits ``history_updated``. ``text`` is what an app shows: for the model's speech it
is the part the user heard (``heard_ms`` is set once a reply was interrupted; ``unheard_text`` keeps the
rest, never spoken aloud).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "UserMessageItem",
    "AssistantMessageItem",
    "SystemMessageItem",
    "RealtimeToolCallItem",
    "RealtimeMCPListToolsItem",
    "RealtimeMCPCallItem",
    "RealtimeMCPApprovalRequestItem",
    "RealtimeItem",
]

#: A reply cut this close to the end of its audio was heard in full (player positions are rounded).
HEARD_TO_THE_END_SLACK_MS = 50.0

ItemStatus = Literal["in_progress", "completed", "incomplete"] | None


@dataclass(frozen=True, slots=True)
class UserMessageItem:
    """The user's message: typed ``text``, or the transcript of their speech (``audio=True``).

    ``transcribing`` is True while transcription deltas are still coming.
    """

    item_id: str
    text: str = ""
    audio: bool = False
    transcribing: bool = False
    status: ItemStatus = None
    previous_item_id: str | None = None
    content: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    type: Literal["message"] = "message"
    role: Literal["user"] = "user"


@dataclass(frozen=True, slots=True)
class AssistantMessageItem:
    """The model's reply. ``text`` is what was heard (all of it unless interrupted); ``audio_ms`` the
    audio received; after an interruption ``heard_ms`` is how much was played and ``unheard_text`` the
    transcript the user never heard (empty ``text`` for a reply cut at 0 ms)."""

    item_id: str
    text: str = ""
    audio: bool = False
    status: ItemStatus = None
    previous_item_id: str | None = None
    audio_ms: float = 0.0
    heard_ms: float | None = None
    unheard_text: str = ""
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"

    @property
    def interrupted(self) -> bool:
        """Cut before its end: part of what was received was never heard (the last few ms do not count)."""
        if self.heard_ms is None:
            return False
        return self.heard_ms < self.audio_ms - HEARD_TO_THE_END_SLACK_MS or bool(self.unheard_text)


@dataclass(frozen=True, slots=True)
class SystemMessageItem:
    item_id: str
    text: str = ""
    status: ItemStatus = None
    previous_item_id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["system"] = "system"


@dataclass(frozen=True, slots=True)
class RealtimeToolCallItem:
    """A function call and, once it ran, its ``output``."""

    item_id: str
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str | None = None
    status: ItemStatus = None
    previous_item_id: str | None = None
    type: Literal["function_call"] = "function_call"


@dataclass(frozen=True, slots=True)
class RealtimeMCPListToolsItem:
    """A hosted MCP server's tool list (``tools``: the server's dicts with ``name``, ``description``...)."""

    item_id: str
    server_label: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    previous_item_id: str | None = None
    type: Literal["mcp_list_tools"] = "mcp_list_tools"


@dataclass(frozen=True, slots=True)
class RealtimeMCPCallItem:
    """A call of a hosted MCP tool, made by the server; ``output`` or ``error`` once it finished."""

    item_id: str
    server_label: str = ""
    name: str = ""
    arguments: str = ""
    output: str | None = None
    error: Any = None
    status: ItemStatus = None
    approval_request_id: str | None = None
    previous_item_id: str | None = None
    type: Literal["mcp_call"] = "mcp_call"


@dataclass(frozen=True, slots=True)
class RealtimeMCPApprovalRequestItem:
    """The server asks whether it may call a hosted MCP tool; ``approved`` once answered."""

    item_id: str
    server_label: str = ""
    name: str = ""
    arguments: str = ""
    approved: bool | None = None
    previous_item_id: str | None = None
    type: Literal["mcp_approval_request"] = "mcp_approval_request"


RealtimeItem = Union[
    UserMessageItem,
    AssistantMessageItem,
    SystemMessageItem,
    RealtimeToolCallItem,
    RealtimeMCPListToolsItem,
    RealtimeMCPCallItem,
    RealtimeMCPApprovalRequestItem,
]
