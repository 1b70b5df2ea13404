"""Client events: their schemas per dialect, the check of an event against them, and encoding.

Every frame the core sends is encoded here, before any state changes, so an event JSON cannot carry
is refused with a ConfigurationError and leaves nothing half done. ``send_event`` checks the app's own
events against :data:`CLIENT_EVENT_FIELDS` first: an unknown type or a misspelled field is refused
with the nearest known name, instead of going to the server silently. The tables follow the official
``openai`` SDK's ``RealtimeClientEvent`` types (GA: ``openai.types.realtime``, beta:
``openai.types.beta.realtime``); tests/cpython/test_client_events.py compares them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["encode_event", "validate_client_event", "CLIENT_EVENT_FIELDS", "MAX_SENT_MESSAGE_BYTES"]

_BASE = ("type", "event_id")
_COMMON_EVENTS: dict[str, tuple[str, ...]] = {
    "session.update": ("session",),
    "input_audio_buffer.append": ("audio",),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "output_audio_buffer.clear": (),
    "conversation.item.create": ("item", "previous_item_id"),
    "conversation.item.retrieve": ("item_id",),
    "conversation.item.truncate": ("item_id", "content_index", "audio_end_ms"),
    "conversation.item.delete": ("item_id",),
    "response.create": ("response",),
    "response.cancel": ("response_id",),
}
#: Client event type -> its fields, per dialect.
CLIENT_EVENT_FIELDS: dict[str, dict[str, frozenset[str]]] = {
    "ga": {name: frozenset((*_BASE, *fields)) for name, fields in _COMMON_EVENTS.items()},
    "beta": {
        **{name: frozenset((*_BASE, *fields)) for name, fields in _COMMON_EVENTS.items()},
        "transcription_session.update": frozenset((*_BASE, "session")),
    },
}
#: The parameters of ``response.create`` (its ``response`` object), per dialect.
RESPONSE_FIELDS: dict[str, frozenset[str]] = {
    "ga": frozenset({"audio", "conversation", "input", "instructions", "max_output_tokens", "metadata",
                     "output_modalities", "parallel_tool_calls", "prompt", "reasoning", "tool_choice", "tools"}),
    "beta": frozenset({"conversation", "input", "instructions", "max_response_output_tokens", "metadata", "modalities",
                       "output_audio_format", "temperature", "tool_choice", "tools", "voice"}),
}
_ITEM_COMMON = ("id", "type", "object", "status")
#: The fields of an item in ``conversation.item.create``: by item type in GA, one flat set in beta.
GA_ITEM_FIELDS: dict[str, frozenset[str]] = {
    "message": frozenset((*_ITEM_COMMON, "role", "content")),
    "function_call": frozenset((*_ITEM_COMMON, "name", "call_id", "arguments")),
    "function_call_output": frozenset((*_ITEM_COMMON, "call_id", "output")),
    "mcp_approval_response": frozenset(("id", "type", "approval_request_id", "approve", "reason")),
    "mcp_list_tools": frozenset(("id", "type", "server_label", "tools")),
    "mcp_call": frozenset(("id", "type", "server_label", "name", "arguments", "approval_request_id", "output", "error")),
    "mcp_approval_request": frozenset(("id", "type", "server_label", "name", "arguments")),
}
BETA_ITEM_FIELDS = frozenset((*_ITEM_COMMON, "role", "content", "name", "call_id", "arguments", "output"))
#: The session of ``session.update``, per dialect (GA nests audio: its parts are checked too).
SESSION_FIELDS: dict[str, frozenset[str]] = {
    "ga": frozenset({"type", "model", "instructions", "output_modalities", "audio", "include", "max_output_tokens",
                     "parallel_tool_calls", "prompt", "reasoning", "tool_choice", "tools", "tracing", "truncation"}),
    "beta": frozenset({"client_secret", "input_audio_format", "input_audio_noise_reduction", "input_audio_transcription",
                       "instructions", "max_response_output_tokens", "modalities", "model", "output_audio_format", "speed",
                       "temperature", "tool_choice", "tools", "tracing", "turn_detection", "voice"}),
}
TRANSCRIPTION_SESSION_FIELDS = frozenset({"client_secret", "include", "input_audio_format", "input_audio_noise_reduction",
                                          "input_audio_transcription", "modalities", "turn_detection"})
#: The first segment of every Realtime event type, client and server.
_API_NAMESPACES = frozenset({"session", "transcription_session", "input_audio_buffer", "output_audio_buffer", "conversation",
                             "response", "rate_limits", "mcp_list_tools", "error"})
_GA_AUDIO_FIELDS = {"input": frozenset({"format", "transcription", "noise_reduction", "turn_detection"}),
                    "output": frozenset({"format", "voice", "speed"})}


def _nearest(name: str, known: frozenset[str] | dict[str, Any]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else f"known: {', '.join(sorted(known))}"


def _check(given: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for key in given:
        if key not in known:
            raise ConfigurationError(f"{where} has no field {key!r}: {_nearest(str(key), known)}")


def _api_like(kind: str, events: dict[str, frozenset[str]]) -> bool:
    """Whether ``kind`` claims to be a Realtime API event: in one of its namespaces, or one typo away."""
    return kind.split(".", 1)[0] in _API_NAMESPACES or bool(difflib.get_close_matches(kind, list(events), n=1, cutoff=0.8))


def validate_client_event(event: Mapping[str, Any], dialect: str) -> None:
    """ConfigurationError if ``event`` is not a client event of ``dialect`` (``"ga"``/``"beta"``): an
    unknown type of the API's namespaces (``session.``, ``conversation.``, ``response.``...) or one
    typo away from a known type, or a field (also inside its item, response or session) the API does
    not have; the message names the nearest known one. A type outside the API's namespaces (say
    ``test.close`` for a local test server) is a custom server's and passes unchecked. Values are
    not checked here (the server says what it refuses)."""
    kind = event.get("type")
    events = CLIENT_EVENT_FIELDS[dialect]
    if kind not in events:
        if isinstance(kind, str) and not _api_like(kind, events):
            return
        raise ConfigurationError(f"unknown client event type {kind!r} in the {dialect} API: {_nearest(str(kind), events)}")
    _check(event, events[kind], kind)
    if kind == "response.create" and isinstance(event.get("response"), Mapping):
        _check(event["response"], RESPONSE_FIELDS[dialect], "response.create's response")
    elif kind == "conversation.item.create" and isinstance(event.get("item"), Mapping):
        item = event["item"]
        if dialect == "beta":
            _check(item, BETA_ITEM_FIELDS, "a conversation item")
        elif item.get("type") in GA_ITEM_FIELDS:
            _check(item, GA_ITEM_FIELDS[item["type"]], f"a {item['type']} item")
        else:
            raise ConfigurationError(
                f"unknown item type {item.get('type')!r}: {_nearest(str(item.get('type')), GA_ITEM_FIELDS)}")
    elif kind == "session.update" and isinstance(event.get("session"), Mapping):
        session = event["session"]
        _check(session, SESSION_FIELDS[dialect], "session.update's session")
        audio = session.get("audio")
        if dialect == "ga" and isinstance(audio, Mapping):
            _check(audio, frozenset(_GA_AUDIO_FIELDS), "session.update's session.audio")
            for side, known in _GA_AUDIO_FIELDS.items():
                if isinstance(audio.get(side), Mapping):
                    _check(audio[side], known, f"session.update's session.audio.{side}")
    elif kind == "transcription_session.update" and isinstance(event.get("session"), Mapping):
        _check(event["session"], TRANSCRIPTION_SESSION_FIELDS, "transcription_session.update's session")


#: The largest client event sent, in bytes of UTF-8 JSON: what the local Realtime server (standing in
#: for the API) accepts; a bigger frame would close the connection with 1009, losing the session.
MAX_SENT_MESSAGE_BYTES = 21 * 1024 * 1024
#: UTF-8 takes at most this many bytes per character: shorter texts need no byte count.
_MAX_UTF8_BYTES_PER_CHAR = 4


def encode_event(event: Mapping[str, Any]) -> str:
    """``event`` as a text frame, or ConfigurationError (callers encode before they change any state):
    for what JSON cannot carry, and for a frame over :data:`MAX_SENT_MESSAGE_BYTES`."""
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and the server would refuse the whole frame.
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError(f"the event cannot be sent as JSON: {exc}") from None
    if len(text) * _MAX_UTF8_BYTES_PER_CHAR > MAX_SENT_MESSAGE_BYTES:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_SENT_MESSAGE_BYTES:
            raise ConfigurationError(
                f"the {event.get('type')!r} event is {size} bytes as JSON, over the {MAX_SENT_MESSAGE_BYTES}-byte "
                "limit of one Realtime client event (the server would close the connection): send less in it, "
                "e.g. a shorter function call output"
            )
    return text
