"""The items of a session's history: what was said, heard, called and answered, in the server's order.

Items are immutable snapshots; the session replaces an item when it changes (a delta arrived, the reply
was interrupted) and emits ``history_updated``. ``text`` is what an app shows: for the model's speech it
is the part the user heard (``heard_ms`` is set once a reply was interrupted; ``unheard_text`` keeps the
rest, never spoken aloud).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, SupportsIndex, Union, overload

__all__ = [
    "UserMessageItem",
    "AssistantMessageItem",
    "SystemMessageItem",
    "RealtimeToolCallItem",
    "RealtimeMCPListToolsItem",
    "RealtimeMCPCallItem",
    "RealtimeMCPApprovalRequestItem",
    "RealtimeItem",
    "HistoryItems",
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
    """A function call and, once it ran, its ``output`` (the server holds that as an item of its own,
    ``output_item_id``, once it announced it)."""

    item_id: str
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str | None = None
    status: ItemStatus = None
    previous_item_id: str | None = None
    output_item_id: str | None = None
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


class HistoryItems(Sequence[RealtimeItem]):
    """The items of a history at one moment, in the server's order: an immutable sequence, equal to the
    tuple of the same items (``tuple(items)`` gives one).

    Made of the history's blocks of items (a tuple each), so taking one after a change costs a tuple per
    block that changed and one per block in all, not one per item: a session can hand a fresh one to every
    ``history_updated`` event of a long conversation.
    """

    __slots__ = ("_blocks", "_length", "_starts")

    def __init__(self, blocks: tuple[tuple[RealtimeItem, ...], ...] = (), length: int | None = None) -> None:
        self._blocks = blocks
        self._length = sum(map(len, blocks)) if length is None else length  # the history knows it
        self._starts: list[int] | None = None  # index of each block's first item, for indexing

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[RealtimeItem]:
        return itertools.chain.from_iterable(self._blocks)

    def __reversed__(self) -> Iterator[RealtimeItem]:
        return itertools.chain.from_iterable(map(reversed, reversed(self._blocks)))

    @overload
    def __getitem__(self, index: SupportsIndex) -> RealtimeItem: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[RealtimeItem, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> RealtimeItem | tuple[RealtimeItem, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        position = operator.index(index)
        if position < 0:
            position += self._length
        if not 0 <= position < self._length:
            raise IndexError(f"history index {operator.index(index)} out of range ({self._length} items)")
        if position == self._length - 1:  # the newest item: what a session reads most
            return self._blocks[-1][-1]
        if self._starts is None:
            self._starts = list(itertools.accumulate(map(len, self._blocks[:-1]), initial=0))
        block = bisect.bisect_right(self._starts, position) - 1
        return self._blocks[block][position - self._starts[block]]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (HistoryItems, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: tuple[RealtimeItem, ...]) -> tuple[RealtimeItem, ...]:
        return (*self, *other) if isinstance(other, (HistoryItems, tuple)) else NotImplemented

    def __repr__(self) -> str:
        return repr(tuple(self))
