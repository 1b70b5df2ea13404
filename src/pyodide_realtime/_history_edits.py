"""The items an app puts into the conversation: user messages, function-call answers, and the plan of
``reset_history`` (what to delete and re-create so that the server's conversation matches a list, from
the session's own items too: a spoken reply as the text that was heard, a spoken user turn as its
transcript, a function call and its output as the two items the server holds).

Pure functions from the app's arguments to client event dicts; the protocol core encodes and sends
them. Each raises :class:`ConfigurationError` for an argument it cannot turn into an event, before the
core sends anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Union

from .errors import ConfigurationError
from .events import FunctionCall, ItemUpdate
from .items import (
    AssistantMessageItem,
    RealtimeItem,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeMCPListToolsItem,
    RealtimeToolCallItem,
    SystemMessageItem,
    UserMessageItem,
)

__all__ = ["user_message_item", "call_fields", "plan_reset_history", "HistoryInput"]

#: What ``reset_history`` takes: the session's items, the transport's ``item_update`` events, or dicts.
HistoryInput = Union[RealtimeItem, ItemUpdate, Mapping[str, Any]]
SESSION_ITEM_TYPES = (UserMessageItem, AssistantMessageItem, SystemMessageItem, RealtimeToolCallItem,
                      RealtimeMCPListToolsItem, RealtimeMCPCallItem, RealtimeMCPApprovalRequestItem)

logger = logging.getLogger("pyodide_realtime")

#: ``previous_item_id`` that places a created item at the start of the conversation.
CONVERSATION_ROOT = "root"
_MCP_HISTORY_TYPES = frozenset({"mcp_call", "mcp_tool_call", "mcp_approval_request"})
#: Content of the model's audio: the API cannot create it (GA calls it output_audio, beta audio).
_AUDIO_PART_TYPES = frozenset({"output_audio", "audio"})
#: The model's text, GA's name and beta's: sent under the connection's dialect's name.
_TEXT_PART_TYPES = frozenset({"output_text", "text"})
#: The API's limit on an item id; an output item id made from its call's id stays within it.
MAX_ITEM_ID_CHARS = 32
OUTPUT_ID_PREFIX = "out_"


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


class _Wire(NamedTuple):
    """One server item standing for a history item: ``item`` as ``conversation.item.create`` carries it
    (always with ``id`` and ``type``); ``refusal`` says why it cannot be created (ConfigurationError if it
    must be), ``skip`` why it is not (a warning; an item the server already has stays as it is)."""

    item: dict[str, Any]
    refusal: str | None = None
    skip: str | None = None


def _text_part_type(dialect: str) -> str:
    return "text" if dialect == "beta" else "output_text"


def _output_item_id(call: RealtimeToolCallItem) -> str:
    """The id of the output item of ``call``: the server's, else one made from the call's (as long as the API allows)."""
    return call.output_item_id or OUTPUT_ID_PREFIX + call.item_id[-(MAX_ITEM_ID_CHARS - len(OUTPUT_ID_PREFIX)):]


def _user_content(item: UserMessageItem, dialect: str) -> tuple[list[dict[str, Any]], str | None]:
    """The content that carries ``item`` (its text, or its speech's transcript, where its text or audio
    stood, and its images), and why an image was left out."""
    parts: list[dict[str, Any]] = []
    text_placed, dropped = False, None
    text = [{"type": "input_text", "text": item.text}] if item.text else []
    for part in item.content:
        kind = part.get("type")
        if kind in ("input_text", "input_audio") and not text_placed:
            parts += text
            text_placed = True
        elif kind == "input_image":
            if dialect == "beta":
                raise ConfigurationError(
                    f"the user message {item.item_id!r} has an image, which the beta dialect cannot carry: connect with "
                    "dialect='ga', or remove the image from the item")
            if isinstance(part.get("image_url"), str):
                parts.append({key: part[key] for key in ("type", "image_url", "detail") if part.get(key) is not None})
            else:
                dropped = "the server's copy of its image has no image_url"
    if not text_placed:
        parts += text  # an item the app made, with no content parts
    return parts, dropped


def _from_session_item(item: RealtimeItem, dialect: str) -> list[_Wire]:
    given = getattr(item, "status", None)  # the MCP items have none
    status: dict[str, Any] = {"status": given} if given else {}
    base: dict[str, Any] = {"id": item.item_id, "type": item.type}
    if isinstance(item, UserMessageItem):
        try:
            content, dropped = _user_content(item, dialect)
        except ConfigurationError as refused:
            return [_Wire({**base, "role": "user"}, refusal=str(refused))]
        wire = {**base, "role": "user", "content": content, **status}
        if dropped:
            logger.warning("reset_history: user message %s restored without an image (%s)", item.item_id, dropped)
        if not content:
            return [_Wire(wire, skip="its speech was not transcribed (turn on input audio transcription to restore "
                                     "spoken messages)" if item.audio else "it has no text")]
        return [_Wire(wire)]
    if isinstance(item, AssistantMessageItem):
        # What the user heard of a spoken reply (its text), as text: the API cannot create assistant audio.
        wire = {**base, "role": "assistant", "content": [{"type": _text_part_type(dialect), "text": item.text}], **status}
        return [_Wire(wire, skip=None if item.text else "nothing of it was heard")]
    if isinstance(item, SystemMessageItem):
        return [_Wire({**base, "role": "system", "content": [{"type": "input_text", "text": item.text}]})]
    if isinstance(item, RealtimeToolCallItem):
        call = {**base, "call_id": item.call_id, "name": item.name, "arguments": item.arguments, **status}
        refusal = None if item.call_id and item.name else (
            f"the function call {item.item_id!r} has no call_id or name: it cannot be re-created; remove it")
        wires = [_Wire(call, refusal)]
        if item.output is not None:
            output = {"id": _output_item_id(item), "type": "function_call_output", "call_id": item.call_id,
                      "output": item.output}
            wires.append(_Wire(output, refusal))
        return wires
    return [_Wire(base, refusal=_mcp_refusal(item.item_id))]  # the MCP items


def _mcp_refusal(item_id: str) -> str:
    return (f"MCP items cannot be added or changed by reset_history() (item {item_id!r}): leave them unchanged, "
            "or remove them from the history")


def _from_mapping(item: ItemUpdate | Mapping[str, Any], dialect: str) -> list[_Wire]:
    """A server item as the transport reports it (``ItemUpdate``) or as a dict in the wire's or the JS SDK's shape."""
    if isinstance(item, ItemUpdate):
        fields: Mapping[str, Any] = {"item_id": item.item_id, "type": item.type, "role": item.role,
                                     "content": item.content, "status": item.status, "call_id": item.call_id,
                                     "name": item.name, "arguments": item.arguments, "output": item.output}
    elif isinstance(item, Mapping):
        fields = item
    else:
        raise ConfigurationError(
            "history items must be the session's items (UserMessageItem, AssistantMessageItem, ...), ItemUpdate events "
            f"or dicts with an 'item_id', not {type(item).__name__}")
    item_id = fields.get("item_id") or fields.get("itemId") or fields.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ConfigurationError("history items must be the session's items, ItemUpdate events or dicts with an 'item_id'")
    kind = fields.get("type") or "message"
    base: dict[str, Any] = {"id": item_id, "type": kind}
    if kind in _MCP_HISTORY_TYPES:
        return [_Wire(base, refusal=_mcp_refusal(item_id))]
    if kind in ("function_call", "function_call_output"):
        names = ("call_id", "name", "arguments") if kind == "function_call" else ("call_id", "output")
        wire = {**base, **{name: fields.get(name) for name in names}}
        if fields.get("status"):
            wire["status"] = fields["status"]
        missing = [name for name in names if not isinstance(wire[name], str) or (name in ("call_id", "name") and not wire[name])]
        refusal = f"the {kind} item {item_id!r} needs {' and '.join(missing)} to be re-created" if missing else None
        return [_Wire(wire, refusal)]
    if kind != "message":
        return [_Wire(base, skip=f"{kind} items cannot be re-created")]
    role = fields.get("role")
    content = list(fields.get("content") or [])
    refusal = None
    if role == "assistant":
        if any(isinstance(part, Mapping) and part.get("type") in _AUDIO_PART_TYPES for part in content):
            refusal = (f"the assistant audio item {item_id!r} cannot be replayed through the Realtime API: give its "
                       "transcript as {'type': 'output_text', 'text': ...} content (the beta dialect's 'text' is taken "
                       "too), pass the session's AssistantMessageItem (it holds what was heard), or remove the item")
        else:  # the dialect's name for a text part: GA output_text, beta text
            content = [{**part, "type": _text_part_type(dialect)}
                       if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES else part for part in content]
    elif dialect == "beta" and any(isinstance(part, Mapping) and part.get("type") == "input_image" for part in content):
        refusal = f"the message {item_id!r} has an image, which the beta dialect cannot carry: connect with dialect='ga'"
    wire = {**base, "role": role, "content": content}
    if role != "system" and fields.get("status"):
        wire["status"] = fields["status"]
    return [_Wire(wire, refusal)]


def _wires(items: Iterable[HistoryInput], dialect: str) -> list[_Wire]:
    wires: list[_Wire] = []
    for item in items:
        wires += _from_session_item(item, dialect) if isinstance(item, SESSION_ITEM_TYPES) else _from_mapping(item, dialect)
    return wires


def plan_reset_history(
    old_items: Iterable[HistoryInput], new_items: Iterable[HistoryInput], dialect: str = "ga"
) -> list[dict[str, Any]]:
    """The client events that turn the conversation ``old_items`` into ``new_items`` (JS 0.20's way):
    deletes first, then creates in the new order, each placed with ``previous_item_id`` while it must
    land before an item the server keeps (see ``RealtimeProtocol.reset_history``).

    Items are the session's own (``session.history``), ``ItemUpdate`` events or dicts; give ``old_items``
    and ``new_items`` in the same kind, as one item is compared with the item of the same id. An item
    the session holds as one but the server as two (a function call and its output) is planned as two.
    """
    old, new = _wires(old_items, dialect), _wires(new_items, dialect)
    old_by_id = {wire.item["id"]: wire.item for wire in old}
    new_ids = {wire.item["id"] for wire in new}
    removals = [wire for wire in old if wire.item["id"] not in new_ids]
    pending: list[_Wire] = []
    for wire in new:
        item_id = wire.item["id"]
        replaced = old_by_id.get(item_id)
        if replaced == wire.item:
            continue
        if replaced is not None and replaced["type"] in _MCP_HISTORY_TYPES:
            raise ConfigurationError(_mcp_refusal(item_id))
        if wire.refusal:
            raise ConfigurationError(wire.refusal)
        if wire.skip and replaced is not None:
            continue  # the server's copy stays: this history has nothing better to put there
        pending.append(wire)
    pending_ids = {wire.item["id"] for wire in pending}
    gone = dict.fromkeys([*(wire.item["id"] for wire in removals), *(i for i in old_by_id if i in pending_ids)])
    events: list[dict[str, Any]] = [{"type": "conversation.item.delete", "item_id": i} for i in gone]
    # Only a create that must land before an item the server keeps names an anchor; past the last
    # such item a plain append is right.
    kept = [index for index, wire in enumerate(new) if wire.item["id"] not in pending_ids and wire.item["id"] in old_by_id]
    last_kept = max(kept, default=-1)
    previous = CONVERSATION_ROOT
    for index, wire in enumerate(new):
        item_id = wire.item["id"]
        if item_id not in pending_ids:
            if item_id in old_by_id:
                previous = item_id
            continue
        if wire.skip:
            logger.warning("reset_history: %s not restored: %s", item_id, wire.skip)
            continue
        placement = {"previous_item_id": previous} if index < last_kept else {}
        events.append({"type": "conversation.item.create", **placement, "item": wire.item})
        previous = item_id
    return events
