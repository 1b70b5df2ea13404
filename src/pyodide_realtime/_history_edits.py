"""The items an app puts into the conversation: user messages, function-call answers, and the plan of
``reset_history`` (what to delete and re-create so that the server's conversation matches a list).

Pure functions from the app's arguments to client event dicts; the protocol core encodes and sends
them. Each raises :class:`ConfigurationError` for an argument it cannot turn into an event, before the
core sends anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigurationError
from .events import FunctionCall, ItemUpdate

__all__ = ["user_message_item", "call_fields", "plan_reset_history"]

logger = logging.getLogger("pyodide_realtime")

#: ``previous_item_id`` that places a created item at the start of the conversation.
CONVERSATION_ROOT = "root"
_MCP_HISTORY_TYPES = frozenset({"mcp_call", "mcp_tool_call", "mcp_approval_request"})
#: Content of the model's audio: the API cannot create it (GA calls it output_audio, beta audio).
_AUDIO_PART_TYPES = frozenset({"output_audio", "audio"})


def _content_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "input_text", "text": part}
    if not isinstance(part, Mapping):
        raise ConfigurationError(f"message content must be strings or dicts, not {type(part).__name__}")
    copy: dict[str, Any] = {str(key): value for key, value in part.items()}
    if copy.get("type") == "input_image" and "image_url" not in copy and "image" in copy:
        # The JS SDK's user-input shape says "image"; the wire says "image_url".
        copy["image_url"] = copy.pop("image")
    return copy


def user_message_item(message: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``message`` item of ``send_message(message)``: text, or a message dict with content parts."""
    if isinstance(message, str):
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": message}]}
    if not isinstance(message, Mapping):
        raise ConfigurationError("send_message() takes a string or a message dict with 'content'")
    content = message.get("content")
    parts = [content] if isinstance(content, (str, Mapping)) else list(content or [])
    if not parts:
        raise ConfigurationError("a message needs content, e.g. {'content': [{'type': 'input_text', 'text': 'hi'}]}")
    return {**dict(message), "type": message.get("type", "message"), "role": message.get("role", "user"),
            "content": [_content_part(p) for p in parts]}


def call_fields(call: FunctionCall | Mapping[str, Any]) -> tuple[str, str, str | None, str | None, str | None]:
    """``(call_id, item_id, name, arguments, previous_item_id)`` of a ``function_call`` event or dict."""
    if isinstance(call, FunctionCall):
        return call.call_id, call.id, call.name, call.arguments, call.previous_item_id
    if isinstance(call, Mapping):
        call_id = call.get("call_id") or call.get("callId")
        if isinstance(call_id, str) and call_id:
            return (call_id, str(call.get("id") or call.get("item_id") or ""), call.get("name"),
                    call.get("arguments"), call.get("previous_item_id"))
    raise ConfigurationError("send_function_call_output() needs the FunctionCall event (or a dict with 'call_id')")


def _history_item(item: ItemUpdate | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, ItemUpdate):
        return {"item_id": item.item_id, "type": item.type, "role": item.role, "content": list(item.content),
                "status": item.status}
    if isinstance(item, Mapping):
        item_id = item.get("item_id") or item.get("itemId") or item.get("id")
        if isinstance(item_id, str) and item_id:
            return {"item_id": item_id, "type": item.get("type", "message"), "role": item.get("role"),
                    "content": list(item.get("content") or []), "status": item.get("status")}
    raise ConfigurationError("history items must be ItemUpdate events or dicts with an 'item_id'")


def plan_reset_history(
    old_items: Iterable[ItemUpdate | Mapping[str, Any]], new_items: Iterable[ItemUpdate | Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The client events that turn the conversation ``old_items`` into ``new_items`` (JS 0.20's way):
    deletes first, then creates in the new order, each placed with ``previous_item_id`` while it must
    land before an item the server keeps (see ``RealtimeProtocol.reset_history``)."""
    old = [_history_item(item) for item in old_items]
    new = [_history_item(item) for item in new_items]
    old_by_id = {item["item_id"]: item for item in old}
    new_ids = {item["item_id"] for item in new}
    removals = [item["item_id"] for item in old if item["item_id"] not in new_ids]
    pending = [item for item in new if item["item_id"] not in old_by_id or old_by_id[item["item_id"]] != item]
    for item in pending:
        replaced = old_by_id.get(item["item_id"])
        if item["type"] in _MCP_HISTORY_TYPES or (replaced is not None and replaced["type"] in _MCP_HISTORY_TYPES):
            raise ConfigurationError(
                f"MCP items cannot be added or changed by reset_history() (item {item['item_id']!r}): leave them "
                "unchanged, or remove them from the history")
        if item["role"] == "assistant" and any(
            isinstance(part, Mapping) and part.get("type") in _AUDIO_PART_TYPES for part in item["content"]
        ):
            raise ConfigurationError(
                f"the assistant audio item {item['item_id']!r} cannot be replayed through the Realtime API: give "
                "its transcript as {'type': 'output_text', 'text': ...} content, or remove the item")
    pending_ids = {item["item_id"] for item in pending}
    events: list[dict[str, Any]] = [{"type": "conversation.item.delete", "item_id": i}
                                    for i in dict.fromkeys([*removals, *(i for i in pending_ids if i in old_by_id)])]
    # Only a create that must land before an item the server keeps names an anchor; past the last
    # such item a plain append is right.
    last_kept = max((index for index, item in enumerate(new) if item["item_id"] not in pending_ids), default=-1)
    previous = CONVERSATION_ROOT
    for index, item in enumerate(new):
        item_id = item["item_id"]
        if item_id not in pending_ids:
            previous = item_id
            continue
        if item["type"] != "message":
            logger.warning("reset_history: %s items cannot be re-created; skipped %s", item["type"], item_id)
            continue
        entry: dict[str, Any] = {"type": "message", "role": item["role"], "content": item["content"], "id": item_id}
        if item["role"] != "system" and item.get("status"):
            entry["status"] = item["status"]
        placement = {"previous_item_id": previous} if index < last_kept else {}
        events.append({"type": "conversation.item.create", **placement, "item": entry})
        previous = item_id
    return events
