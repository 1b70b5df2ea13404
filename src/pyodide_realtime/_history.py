"""The conversation as the server holds it, rebuilt from server events (sans-I/O: events in, changes out).

Built from the raw server events (the transport's ``*``) rather than its derived ``item_update``: the
history needs every item type, each delta, and the server's ``previous_item_id`` order. Function call
outputs and MCP approval answers are folded into the call (or request) they answer, as in
``openai-agents``; their ids stay known as aliases of the item before them in the server's order (their call
when that is unknown), so an item placed after an answer lands where the answer stood, even when parallel
calls were answered out of order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._history_order import ItemOrder
from .dialects import DIALECTS
from .items import (
    AssistantMessageItem,
    HistoryItems,
    RealtimeItem,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeMCPListToolsItem,
    RealtimeToolCallItem,
    SystemMessageItem,
    UserMessageItem,
    user_part,
)

__all__ = ["History", "HistoryChange", "heard_text"]

logger = logging.getLogger("pyodide_realtime")

#: The history keeps the newest items only (the server keeps its own); older ones are dropped.
MAX_HISTORY_ITEMS = 1000
#: Items placed after an item not (yet) known, remembered to move them there when it comes.
MAX_WAITING_ITEMS = 100
#: A text (transcript, arguments) stops growing past this many characters.
MAX_ITEM_CHARS = 100_000
#: How fast a reply is spoken, to estimate its length when its audio was not counted here (over WebRTC
#: it plays from a media track; only the server's truncation says where it stopped). About 170 words
#: a minute, the pace of the API's voices and of the local server's.
SPOKEN_CHARS_PER_MS = 0.015
_WIRES = tuple(spec.wire for spec in DIALECTS)  # the names that differ between the dialects, read once
#: Events whose ``previous_item_id`` places the item (``done``/``retrieved`` may omit it: they never move one).
_PLACING = frozenset(wire.item_created for wire in _WIRES)
_ITEM_EVENTS = _PLACING | {
    "conversation.item.done",
    "conversation.item.retrieved",
    "response.output_item.added",
    "response.output_item.done",
}
_ASSISTANT_DELTAS = frozenset(name for wire in _WIRES for name in (wire.transcript_delta, wire.text_delta))
_AUDIO_PARTS = frozenset(wire.audio_content for wire in _WIRES)
_USER_AUDIO_PARTS = frozenset({"input_audio"})
#: The server event types the history reads; everything else is skipped before any parsing.
EVENT_TYPES = (
    _ITEM_EVENTS
    | _ASSISTANT_DELTAS
    | {
        "conversation.item.deleted",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
    }
)


class HistoryChange(NamedTuple):
    """``item`` was added (``added``), changed, or removed (``removed``)."""

    item: RealtimeItem
    added: bool = False
    removed: bool = False


def heard_text(transcript: str, heard_ms: float, audio_ms: float) -> str:
    """About the part of ``transcript`` spoken in the first ``heard_ms`` of ``audio_ms`` of audio.

    Proportional to the audio played, snapped to the nearest word boundary; nothing for 0 ms.
    """
    if heard_ms <= 0 or not transcript or audio_ms <= 0:
        return ""
    if heard_ms >= audio_ms:
        return transcript
    cut = round(len(transcript) * heard_ms / audio_ms)
    before = max(transcript.rfind(" ", 0, cut + 1), 0)  # the start counts as a boundary
    after = transcript.find(" ", cut)
    after = len(transcript) if after < 0 else after
    # The boundary nearer to the proportional cut: a word counts as heard when most of it was.
    end = after if after - cut < cut - before else before
    return transcript[:end].rstrip()


def _text(parts: Any, *keys: str) -> str:
    texts = []
    for part in parts if isinstance(parts, list) else ():
        if isinstance(part, Mapping):
            for key in keys:
                value = part.get(key)
                if isinstance(value, str) and value:
                    texts.append(value)
                    break
    return "".join(texts)


def _part_type(part: Any) -> str | None:
    """A content part's ``type``, or None: a malformed event may carry any JSON there (a list is unhashable)."""
    kind = part.get("type") if isinstance(part, Mapping) else None
    return kind if isinstance(kind, str) else None


def _status(item: Mapping[str, Any]) -> Any:
    status = item.get("status")
    return status if status in ("in_progress", "completed", "incomplete") else None


class History:
    """Ordered items, updated by :meth:`receive`, :meth:`audio`, :meth:`interrupted` and :meth:`call_output`.

    Applying an event costs O(1) amortised (plus O(blocks) at C speed when an item is placed, moved or
    removed), whatever the history's length; :attr:`snapshot` costs O(blocks) after a change, :attr:`items`
    (a tuple) O(items).
    """

    def __init__(self, max_items: int | None = None) -> None:
        #: Older items are dropped past this many (the server keeps its own).
        self.max_items = MAX_HISTORY_ITEMS if max_items is None else max_items
        self._order = ItemOrder()
        # Each item's ``previous_item_id`` is its predecessor in ``_order``: every move relinks its neighbours.
        self._items: dict[str, RealtimeItem] = {}
        self._full: dict[str, str] = {}  # assistant item id -> its whole transcript (heard or not)
        self._calls: dict[str, str] = {}  # call_id -> the id of the newest function call item with it
        # function_call_output / approval response id -> the shown item it stands after in the server's order
        # (its call or request when that is unknown); only ever an id in ``_items``, dropped with it.
        self._aliases: dict[str, str] = {}
        self._aliased_by: dict[str, set[str]] = {}  # the reverse of ``_aliases``
        # item id -> the unknown id it was placed after: it moves there if that item comes (out of order).
        self._waiting: dict[str, str] = {}
        self._snapshot: HistoryItems | None = HistoryItems()
        self._tuple: tuple[RealtimeItem, ...] | None = ()

    @property
    def items(self) -> tuple[RealtimeItem, ...]:
        """Every item, in the server's order (a tuple: O(items) after a change; see :attr:`snapshot`)."""
        if self._tuple is None:
            self._tuple = tuple(self.snapshot)
        return self._tuple

    @property
    def snapshot(self) -> HistoryItems:
        """Every item, in the server's order, as an immutable sequence that costs O(blocks) to take."""
        if self._snapshot is None:
            self._snapshot = self._order.snapshot(self._items)
        return self._snapshot

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str) -> RealtimeItem | None:
        return self._items.get(item_id)

    # Feeding -------------------------------------------------------------------------------------
    def receive(self, kind: str, event: Mapping[str, Any], fields_set: frozenset[str] = frozenset()) -> list[HistoryChange]:
        """Apply one server event (as a dict); ``fields_set`` names the fields the server actually sent."""
        if kind in _ITEM_EVENTS:
            item = event.get("item")
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                return []
            placing = kind in _PLACING and "previous_item_id" in fields_set
            return self._upsert(item, event.get("previous_item_id"), placing=placing)
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            return []
        delta = event.get("delta")
        if kind in _ASSISTANT_DELTAS and isinstance(delta, str):
            return self._assistant_delta(item_id, delta, audio=("audio" in kind))
        if kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            return self._grow(item_id, RealtimeToolCallItem, "arguments", delta, call_id=str(event.get("call_id") or ""))
        if kind == "response.mcp_call_arguments.delta" and isinstance(delta, str):
            return self._grow(item_id, RealtimeMCPCallItem, "arguments", delta)
        if kind == "conversation.item.input_audio_transcription.delta" and isinstance(delta, str):
            return self._grow(item_id, UserMessageItem, "text", delta, audio=True, transcribing=True)
        if kind == "conversation.item.input_audio_transcription.completed":
            return self._set_user_transcript(item_id, str(event.get("transcript") or ""))
        if kind == "conversation.item.input_audio_transcription.failed":
            return self._replace(item_id, UserMessageItem, transcribing=False)
        if kind == "conversation.item.truncated":
            end = event.get("audio_end_ms")
            current = self.get(item_id)
            if isinstance(current, AssistantMessageItem) and current.heard_ms is None and isinstance(end, (int, float)):
                return self.interrupted(item_id, float(end))
            return []
        if kind == "conversation.item.deleted":
            return self._remove(item_id)
        return []

    def audio(self, item_id: str, ms: float) -> list[HistoryChange]:
        """``ms`` more of the item's audio arrived (audio length is what trimming is proportional to)."""
        current = self.get(item_id)
        if isinstance(current, AssistantMessageItem):
            return self._put(dataclasses.replace(current, audio_ms=current.audio_ms + ms, audio=True))
        changes = self._put(AssistantMessageItem(item_id, audio=True, audio_ms=ms, status="in_progress"))
        return changes

    def audio_received(self, item_id: str, received_ms: float) -> list[HistoryChange]:
        """The item's audio received so far is ``received_ms`` (the protocol core's own count, which
        playback measures against too): the history takes it rather than counting the bytes again."""
        current = self.get(item_id)
        if isinstance(current, AssistantMessageItem):
            if current.audio and current.audio_ms == received_ms:
                return []
            return self._put(dataclasses.replace(current, audio_ms=received_ms, audio=True))
        return self._put(AssistantMessageItem(item_id, audio=True, audio_ms=received_ms, status="in_progress"))

    def interrupted(self, item_id: str, heard_ms: float) -> list[HistoryChange]:
        """The reply was cut after ``heard_ms`` of it played: keep as ``text`` about what was heard."""
        current = self.get(item_id)
        if not isinstance(current, AssistantMessageItem):
            current = AssistantMessageItem(item_id, audio=True, status="in_progress")
        return self._put(self._trimmed(dataclasses.replace(current, heard_ms=max(0.0, heard_ms))))

    def call_output(self, call_id: str, output: str) -> list[HistoryChange]:
        call = self._call(call_id)
        if call is None or call.output == output:
            return []
        return self._put(dataclasses.replace(call, output=output, status="completed"))

    def approval(self, request_id: str, approved: bool) -> list[HistoryChange]:
        return self._replace(request_id, RealtimeMCPApprovalRequestItem, approved=approved)

    # Items ---------------------------------------------------------------------------------------
    def _upsert(self, raw: Mapping[str, Any], previous: Any, *, placing: bool) -> list[HistoryChange]:
        item_id = str(raw["id"])
        kind = raw.get("type")
        current = self.get(item_id)
        if kind == "function_call_output":
            call = self._call(str(raw.get("call_id") or ""))
            if call is None:
                return []
            self._alias(item_id, previous if placing else None, call.item_id)
            output = raw.get("output")
            if isinstance(output, str):
                return self._put(dataclasses.replace(call, output=output, status="completed", output_item_id=item_id))
            return self._put(dataclasses.replace(call, output_item_id=item_id))
        if kind == "mcp_approval_response":
            request_id = str(raw.get("approval_request_id") or "")
            if request_id in self._items:
                self._alias(item_id, previous if placing else None, request_id)
                return self.approval(request_id, bool(raw.get("approve")))
            return []
        item = self._convert(raw, current)
        if item is None:
            return []
        changes = self._put(item, arrived=not placing)
        if placing and item_id in self._items:
            if self._place(item_id, previous if isinstance(previous, str) else None):  # report it where it now stands
                placed = self._items[item_id]
                changes = [c._replace(item=placed) if c.item.item_id == item_id and not c.removed else c for c in changes]
            if current is None:
                self._arrived(item_id)
        return changes

    def _alias(self, item_id: str, previous: Any, answered: str) -> None:
        """Stand the answer ``item_id`` for the item before it (``previous`` as resolved), else for ``answered``.

        Not always its call: parallel calls answered out of order (A, B, B's output, A's output) put the next item
        after B, where A's output stands, not after A. An event that does not place the answer keeps its alias.
        """
        anchor = self._aliases.get(previous, previous) if isinstance(previous, str) else None
        if anchor in self._items and anchor != item_id:
            self._set_alias(item_id, anchor)
        elif previous is not None or item_id not in self._aliases:
            self._set_alias(item_id, answered)
        while len(self._aliases) > self.max_items:  # many answers in a row stand for one item: keep the newest
            self._drop_alias(next(iter(self._aliases)))
        self._arrived(item_id)

    def _set_alias(self, item_id: str, target: str) -> None:
        self._drop_alias(item_id)
        self._aliases[item_id] = target
        self._aliased_by.setdefault(target, set()).add(item_id)

    def _drop_alias(self, item_id: str) -> bool:
        target = self._aliases.pop(item_id, None)
        if target is None:
            return False
        answers = self._aliased_by[target]
        answers.discard(item_id)
        if not answers:
            del self._aliased_by[target]
        return True

    def _convert(self, raw: Mapping[str, Any], current: RealtimeItem | None) -> RealtimeItem | None:
        item_id, kind, role, content = str(raw["id"]), raw.get("type"), raw.get("role"), raw.get("content")
        status = _status(raw) or getattr(current, "status", None)
        if kind == "message" and role == "user":
            parts = tuple(dict(p) for p in content if isinstance(p, Mapping)) if isinstance(content, list) else ()
            spoken = any(_part_type(p) in _USER_AUDIO_PARTS for p in parts)
            text = _text(content, "text", "transcript")
            old = current if isinstance(current, UserMessageItem) else None
            if old is not None and not text:
                text = old.text  # the server's copy has no transcript yet; the deltas' text stands
            # A spoken part whose transcript is null: its transcription is still to come.
            pending = any(_part_type(p) == "input_audio" and "transcript" in p and p["transcript"] is None for p in parts)
            transcribing = old.transcribing if old is not None else pending
            return UserMessageItem(item_id, text, spoken or bool(old and old.audio), transcribing, status,
                                   content=tuple(p for p in map(user_part, parts) if p is not None))
        if kind == "message" and role == "assistant":
            old_a = current if isinstance(current, AssistantMessageItem) else AssistantMessageItem(item_id)
            full = _text(content, "transcript", "text")
            if len(full) > len(self._full.get(item_id, "")):
                # The server's copy wins only when it knows more: after a truncation it is cut (by its
                # own estimate), and what was heard is this history's to say.
                self._full[item_id] = full[:MAX_ITEM_CHARS]
            spoken = isinstance(content, list) and any(_part_type(p) in _AUDIO_PARTS for p in content)
            return self._trimmed(dataclasses.replace(old_a, status=status, audio=old_a.audio or spoken))
        if kind == "message" and role == "system":
            return SystemMessageItem(item_id, _text(content, "text"), status)
        if kind == "function_call":
            old_c = current if isinstance(current, RealtimeToolCallItem) else None
            arguments = str(raw.get("arguments") or "") or (old_c.arguments if old_c else "")
            return RealtimeToolCallItem(
                item_id,
                str(raw.get("call_id") or ""),
                str(raw.get("name") or ""),
                arguments,
                old_c.output if old_c else None,
                status if not (old_c and old_c.output is not None) else "completed",
                output_item_id=old_c.output_item_id if old_c else None,
            )
        if kind == "mcp_list_tools":
            tools = raw.get("tools")
            listed = tuple(dict(t) for t in tools if isinstance(t, Mapping)) if isinstance(tools, list) else ()
            return RealtimeMCPListToolsItem(item_id, str(raw.get("server_label") or ""), listed)
        if kind == "mcp_call":
            old_m = current if isinstance(current, RealtimeMCPCallItem) else None
            return RealtimeMCPCallItem(
                item_id,
                str(raw.get("server_label") or ""),
                str(raw.get("name") or ""),
                str(raw.get("arguments") or "") or (old_m.arguments if old_m else ""),
                raw.get("output") if isinstance(raw.get("output"), str) else None,
                raw.get("error"),
                status,
                raw.get("approval_request_id") if isinstance(raw.get("approval_request_id"), str) else None,
            )
        if kind == "mcp_approval_request":
            old_r = current if isinstance(current, RealtimeMCPApprovalRequestItem) else None
            return RealtimeMCPApprovalRequestItem(
                item_id,
                str(raw.get("server_label") or ""),
                str(raw.get("name") or ""),
                str(raw.get("arguments") or ""),
                old_r.approved if old_r else None,
            )
        return None

    def _trimmed(self, item: AssistantMessageItem) -> AssistantMessageItem:
        full = self._full.get(item.item_id, "")
        if item.heard_ms is None:
            return dataclasses.replace(item, text=full, unheard_text="")
        # No audio counted here (a WebRTC track): the transcript's spoken length stands in for it.
        audio_ms = item.audio_ms or len(full) / SPOKEN_CHARS_PER_MS
        heard = heard_text(full, item.heard_ms, audio_ms)
        return dataclasses.replace(item, text=heard, unheard_text=full[len(heard) :].strip())

    def _assistant_delta(self, item_id: str, delta: str, *, audio: bool) -> list[HistoryChange]:
        current = self.get(item_id)
        if not isinstance(current, AssistantMessageItem):
            current = AssistantMessageItem(item_id, status="in_progress")
        full = self._full.get(item_id, "")
        if len(full) >= MAX_ITEM_CHARS:
            return []
        self._full[item_id] = full + delta
        return self._put(self._trimmed(dataclasses.replace(current, audio=current.audio or audio)))

    def _grow(self, item_id: str, kind: type[Any], name: str, delta: str, **defaults: Any) -> list[HistoryChange]:
        current = self.get(item_id)
        if not isinstance(current, kind):
            current = (
                kind(item_id, status="in_progress", **defaults)
                if "status" in kind.__dataclass_fields__
                else kind(item_id, **defaults)
            )
        value = getattr(current, name)
        if len(value) >= MAX_ITEM_CHARS:
            return []
        return self._put(dataclasses.replace(current, **{name: value + delta}, **defaults))

    def _set_user_transcript(self, item_id: str, transcript: str) -> list[HistoryChange]:
        current = self.get(item_id)
        base = current if isinstance(current, UserMessageItem) else UserMessageItem(item_id, audio=True)
        return self._put(dataclasses.replace(base, text=transcript[:MAX_ITEM_CHARS], transcribing=False, audio=True))

    def _replace(self, item_id: str, kind: type[Any], **changes: Any) -> list[HistoryChange]:
        current = self.get(item_id)
        return self._put(dataclasses.replace(current, **changes)) if isinstance(current, kind) else []

    def _call(self, call_id: str) -> RealtimeToolCallItem | None:
        item = self._items.get(self._calls.get(call_id, ""))
        return item if isinstance(item, RealtimeToolCallItem) else None

    # Order ---------------------------------------------------------------------------------------
    def _put(self, item: RealtimeItem, *, arrived: bool = True) -> list[HistoryChange]:
        """Store ``item``: in place of the item with its id, else after the last one (then, if ``arrived``,
        the items waiting for it move after it; a caller that places it first says False, and does that)."""
        current = self._items.get(item.item_id)
        if current is not None:
            item = dataclasses.replace(item, previous_item_id=current.previous_item_id)
            if current == item:
                return []
            self._store(item)
            return [HistoryChange(item)]
        last = self._order.last()
        self._order.insert(item.item_id, last)
        self._store(dataclasses.replace(item, previous_item_id=last))
        changes = [HistoryChange(self._items[item.item_id], added=True)]
        if arrived:
            self._arrived(item.item_id)
        while len(self._order) > self.max_items:
            dropped = self._order.first()
            assert dropped is not None
            changes.append(HistoryChange(self._forget(dropped), removed=True))
        return changes

    def _store(self, item: RealtimeItem) -> None:
        """``item`` replaces the item with its id (already in the order), ``previous_item_id`` included."""
        current = self._items.get(item.item_id)
        self._items[item.item_id] = item
        self._order.touch(item.item_id)
        self._snapshot = self._tuple = None
        if isinstance(item, RealtimeToolCallItem) and not (isinstance(current, RealtimeToolCallItem) and current.call_id == item.call_id):
            if isinstance(current, RealtimeToolCallItem) and self._calls.get(current.call_id) == item.item_id:
                del self._calls[current.call_id]  # its call_id came late (the deltas had none)
            self._calls[item.call_id] = item.item_id

    def _relink(self, item_id: str | None, previous: str | None) -> None:
        """``item_id`` (if any) now follows ``previous``."""
        item = self._items.get(item_id) if item_id is not None else None
        if item is not None and item.previous_item_id != previous:
            self._store(dataclasses.replace(item, previous_item_id=previous))

    def _place(self, item_id: str, previous: str | None) -> bool:
        """Move ``item_id`` right after ``previous`` (None: first); True if it moved.

        An unknown ``previous`` leaves it where it is, until that item comes (items out of order).
        """
        self._waiting.pop(item_id, None)
        if previous is not None:
            previous = self._aliases.get(previous, previous)
            if previous == item_id:
                return False
            if previous not in self._items:
                self._waiting[item_id] = previous
                while len(self._waiting) > MAX_WAITING_ITEMS:
                    del self._waiting[next(iter(self._waiting))]
                return False
        if self._items[item_id].previous_item_id == previous:
            return False
        self._unlink(item_id)
        self._order.insert(item_id, previous)
        self._relink(item_id, previous)
        self._relink(self._order.next(item_id), item_id)
        return True

    def _arrived(self, item_id: str) -> None:
        """``item_id`` (an item or an answer standing for one) is known now: the items waiting for it move after it."""
        if item_id in self._waiting.values():
            for waiting in [key for key, previous in self._waiting.items() if previous == item_id]:
                self._place(waiting, item_id)

    def _unlink(self, item_id: str) -> None:
        """Take ``item_id`` out of the order; the item after it follows the one before it."""
        following = self._order.next(item_id)
        self._order.remove(item_id)
        self._snapshot = self._tuple = None
        self._relink(following, self._items[item_id].previous_item_id)

    def _remove(self, item_id: str) -> list[HistoryChange]:
        if self._drop_alias(item_id):
            return []  # an answer folded into its call: the call stays
        if item_id not in self._items:
            return []
        return [HistoryChange(self._forget(item_id), removed=True)]

    def _forget(self, item_id: str) -> RealtimeItem:
        """Drop ``item_id``, its transcript, and the answers standing for it; the item as it was."""
        self._unlink(item_id)
        item = self._items.pop(item_id)
        self._full.pop(item_id, None)
        self._waiting.pop(item_id, None)
        if isinstance(item, RealtimeToolCallItem) and self._calls.get(item.call_id) == item_id:
            del self._calls[item.call_id]
        for answer in tuple(self._aliased_by.get(item_id, ())):
            self._drop_alias(answer)
        return item
