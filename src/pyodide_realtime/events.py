"""Events: what the server sends (pydantic models) and what the transport emits (small frozen classes).

Server events are parsed by :func:`parse_server_event` with one ``TypeAdapter.validate_json`` over a
discriminated union of every type of both dialects (the 46 GA types of the official SDK and the 7
beta-only ones), with :class:`GenericServerEvent` for any other type and :class:`MalformedServerEvent`
for a known type whose fields do not fit. Items inside events are typed by their ``type``
(:data:`Item`: message, function_call, function_call_output, the MCP ones, :class:`GenericItem` for a
newer one), as are responses (:class:`Response`) and sessions (:class:`Session`). Every model is frozen
and keeps every field the server sent (``extra="allow"``), so a newer API field is never lost; the
objects inside events also read like the dicts they were (``item["id"]``, ``response.get("status")``).
Audio deltas are decoded from base64 by pydantic itself while it parses the JSON: in Pyodide that is
the fastest path there is (notes/performance.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, from_json
from pydantic_core import core_schema as cs

from ._interfaces import AudioFormat

logger = logging.getLogger("pyodide_realtime")

__all__ = [
    # server events
    "ServerEvent",
    "ServerEventBase",
    "GenericServerEvent",
    "MalformedServerEvent",
    "KNOWN_SERVER_EVENT_TYPES",
    "ErrorDetail",
    "ServerErrorEvent",
    "SessionEvent",
    "ResponseEvent",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseTextDelta",
    "ConversationItemEvent",
    "ConversationItemDeleted",
    "ConversationItemTruncated",
    "InputAudioTranscriptionCompleted",
    "OutputItemEvent",
    "SpeechStarted",
    "SpeechStopped",
    "TranscriptionSessionUpdated",
    "ConversationCreated",
    "ResponseTextDone",
    "ResponseTranscriptDone",
    "ContentPartEvent",
    "FunctionCallArgumentsDone",
    "McpCallArgumentsDone",
    "McpCallEvent",
    "McpListToolsEvent",
    "InputAudioTranscriptionFailed",
    "InputAudioTranscriptionSegment",
    "InputAudioBufferCommitted",
    "InputAudioBufferCleared",
    "InputAudioTimeoutTriggered",
    "DtmfEventReceived",
    "OutputAudioBufferEvent",
    "RateLimitsUpdated",
    # objects inside events
    "Item",
    "ItemBase",
    "MessageItem",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "McpListToolsItem",
    "McpApprovalRequestItem",
    "McpApprovalResponseItem",
    "McpCallItem",
    "GenericItem",
    "Response",
    "ResponseUsage",
    "Session",
    "parse_server_event",
    # transport events
    "TransportEvent",
    "TransportAudio",
    "AudioDone",
    "AudioInterrupted",
    "TranscriptDelta",
    "OutputTextDelta",
    "ItemUpdate",
    "ItemDeleted",
    "FunctionCall",
    "TurnStarted",
    "TurnDone",
    "ResponseCut",
    "InputTranscriptDelta",
    "InputTranscriptCompleted",
    "InputTranscriptFailed",
    "InputSpeechStarted",
    "InputSpeechStopped",
    "AudioCommitted",
    "InputAudioTimeout",
    "RateLimits",
    "McpToolsListed",
    "McpApprovalRequest",
    "McpToolCall",
    "Usage",
    "ConnectionChange",
    "ErrorEvent",
    "AudioDropped",
    "Reconnecting",
    "Reconnected",
    "ReconnectFailed",
    "ConnectionStatus",
    "TransportEventRecord",
    "TRANSPORT_EVENT_RECORDS",
]


# Server events ------------------------------------------------------------------------------------
class ServerEventBase(BaseModel):
    """Every server event: frozen, and every field kept (read unknown ones from ``model_extra``)."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    type: str
    event_id: str | None = None


class GenericServerEvent(ServerEventBase):
    """Any event type this package does not model; still emitted under ``*``."""


class MalformedServerEvent(ServerEventBase):
    """A known event type whose fields do not fit its model (say a ``response.done`` whose token counts
    are strings). ``raw`` is the frame as received, ``problem`` what did not fit, ``data`` the parsed
    object. It reaches ``*`` and ``error`` listeners (as :class:`ErrorEvent`), never the listeners of
    its type, and the core still advances its state as far as the event allows."""

    raw: str
    problem: str
    data: dict[str, Any] = {}

    @property
    def message(self) -> str:
        return f"the server sent a malformed {self.type!r} event ({self.problem})"


def _text_or_none(value: Any) -> Any:
    # An error's code may come as an int, its message as anything: keep it as text, never refuse it.
    return value if value is None or isinstance(value, str) else str(value)


def _error_object(value: Any) -> Any:
    # ``"error": "boom"`` (or any non-object) is still an error: its text becomes the message.
    if value is None:
        return {}
    return value if isinstance(value, Mapping) else {"message": _text_or_none(value)}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: Any = None
    event_id: str | None = None

    _as_text = field_validator("type", "code", "message", "event_id", mode="before")(_text_or_none)


class ServerErrorEvent(ServerEventBase):
    type: Literal["error"]
    error: ErrorDetail = Field(default_factory=ErrorDetail)  # built when missing, not at import

    _any_error = field_validator("error", mode="before")(_error_object)


class _Record(BaseModel):
    """An object inside an event (an item, a response, a session): frozen, every field kept, and
    readable as a dict too (``record["id"]``, ``record.get("status")``), as it was before it was typed."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    def get(self, key: str, default: Any = None) -> Any:
        if key in type(self).model_fields:
            return getattr(self, key)
        return (self.model_extra or {}).get(key, default)

    def __getitem__(self, key: str) -> Any:
        marker = object()
        value = self.get(key, marker)
        if value is marker:
            raise KeyError(key)
        return value

    def to_dict(self) -> dict[str, Any]:
        """The object as the server sent it (fields it left out stay out)."""
        return self.model_dump(exclude_unset=True)


# Items ------------------------------------------------------------------------------------------------
ItemStatus = str


class ItemBase(_Record):
    """A conversation item; ``type`` says which (see :data:`Item`)."""

    type: str = ""
    id: str | None = None
    object: str | None = None
    status: ItemStatus | None = None


class MessageItem(ItemBase):
    type: Literal["message"]
    role: str = ""
    content: list[dict[str, Any]] = []


class FunctionCallItem(ItemBase):
    type: Literal["function_call"]
    name: str = ""
    call_id: str = ""
    arguments: str = ""


class FunctionCallOutputItem(ItemBase):
    type: Literal["function_call_output"]
    call_id: str = ""
    output: str = ""


class McpListToolsItem(ItemBase):
    type: Literal["mcp_list_tools"]
    server_label: str = ""
    tools: list[dict[str, Any]] = []


class McpApprovalRequestItem(ItemBase):
    type: Literal["mcp_approval_request"]
    server_label: str = ""
    name: str = ""
    arguments: str = ""


class McpApprovalResponseItem(ItemBase):
    type: Literal["mcp_approval_response"]
    approval_request_id: str = ""
    approve: bool = False
    reason: str | None = None


class McpCallItem(ItemBase):
    type: Literal["mcp_call", "mcp_tool_call"]
    server_label: str = ""
    name: str = ""
    arguments: str = ""
    approval_request_id: str | None = None
    output: str | None = None
    error: Any = None


class GenericItem(ItemBase):
    """An item of a type this package does not model (a newer API's)."""


_ITEM_MODELS: dict[str, type[ItemBase]] = {
    name: model
    for model in (MessageItem, FunctionCallItem, FunctionCallOutputItem, McpListToolsItem, McpApprovalRequestItem,
                  McpApprovalResponseItem, McpCallItem)
    for name in get_args(model.model_fields["type"].annotation)
}


def _item_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _ITEM_MODELS else "other"


if TYPE_CHECKING:
    Item = ItemBase
else:
    #: Any conversation item, discriminated by its ``type``; an unknown type is a :class:`GenericItem`.
    Item = Annotated[
        Union[tuple(Annotated[model, Tag(name)] for name, model in _ITEM_MODELS.items()) + (Annotated[GenericItem, Tag("other")],)],  # noqa: E501
        Discriminator(_item_tag),
    ]


# Responses and sessions ---------------------------------------------------------------------------
class ResponseUsage(_Record):
    total_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_token_details: dict[str, Any] | None = None
    output_token_details: dict[str, Any] | None = None


class Response(_Record):
    """A response (``response.created``/``response.done``); ``output`` holds typed items."""

    id: str = ""
    object: str | None = None
    status: str | None = None
    status_details: dict[str, Any] | None = None
    output: list[Item] = []
    usage: ResponseUsage | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None  # GA: audio.output.format / voice of this response
    output_audio_format: Any = None  # beta


class Session(_Record):
    """A session as the server reports it, either dialect (GA nests audio, beta is flat)."""

    id: str | None = None
    object: str | None = None
    type: str | None = None
    model: str | None = None
    instructions: str | None = None
    voice: Any = None
    audio: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tracing: Any = None


# Server events by type -------------------------------------------------------------------------------
class SessionEvent(ServerEventBase):
    type: Literal["session.created", "session.updated"]
    session: Session = Field(default_factory=Session)  # built when missing, not at import


class TranscriptionSessionUpdated(ServerEventBase):
    type: Literal["transcription_session.updated"]
    session: dict[str, Any] = {}


class ConversationCreated(ServerEventBase):
    type: Literal["conversation.created"]
    conversation: dict[str, Any] = {}


class ResponseEvent(ServerEventBase):
    type: Literal["response.created", "response.done"]
    response: Response = Field(default_factory=Response)  # built when missing, not at import


class ResponseAudioDelta(ServerEventBase):
    """``delta`` is the decoded audio (``bytes``), decoded from base64 by pydantic during the parse."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True, val_json_bytes="base64", ser_json_bytes="base64")

    type: Literal["response.output_audio.delta", "response.audio.delta"]
    response_id: str = ""
    item_id: str
    output_index: int = 0
    content_index: int = 0
    delta: bytes


class ResponseAudioDone(ServerEventBase):
    type: Literal["response.output_audio.done", "response.audio.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0


class _NoneAsEmpty:
    """``str``, with ``null`` read as ``""``, done by pydantic-core itself: a Python validator would be
    called for every text delta (half of a reply's events), and in Pyodide such a call from
    pydantic-core into Python costs close to a microsecond. A string passes the first choice; ``null`` passes ``none`` and
    then fails ``str``, which gives the default ``""``; anything else fails both, with the message a
    plain ``str`` field gives."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        null_as_empty = cs.chain_schema(
            [cs.none_schema(), cs.with_default_schema(cs.str_schema(), default="", on_error="default")]
        )
        return cs.union_schema([cs.str_schema(), null_as_empty], mode="left_to_right", custom_error_type="string_type")


def _text_or_null(default: str = "") -> Any:
    """A ``str`` field's default, with :class:`_NoneAsEmpty` among its metadata (as ``Annotated`` would
    put it there): the field's annotation stays a plain ``str``, the one the reference shows."""
    info = FieldInfo(default=default)
    info.metadata.append(_NoneAsEmpty())
    return info


class ResponseTextDelta(ServerEventBase):
    """A text delta: model text, the transcript of model audio, or of the user's audio, or the
    arguments of a function or MCP call."""

    type: Literal[
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
        "conversation.item.input_audio_transcription.delta",
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
    ]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0
    delta: str = _text_or_null()


class ResponseTextDone(ServerEventBase):
    type: Literal["response.output_text.done", "response.text.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0
    text: str = ""


class ResponseTranscriptDone(ServerEventBase):
    type: Literal["response.output_audio_transcript.done", "response.audio_transcript.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0
    transcript: str = ""


class ContentPartEvent(ServerEventBase):
    type: Literal["response.content_part.added", "response.content_part.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0
    part: dict[str, Any] = {}


class FunctionCallArgumentsDone(ServerEventBase):
    type: Literal["response.function_call_arguments.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    call_id: str = ""
    name: str | None = None
    arguments: str = ""


class McpCallArgumentsDone(ServerEventBase):
    type: Literal["response.mcp_call_arguments.done"]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    arguments: str = ""


class McpCallEvent(ServerEventBase):
    type: Literal["response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed"]
    item_id: str = ""
    output_index: int = 0


class McpListToolsEvent(ServerEventBase):
    type: Literal["mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_list_tools.failed"]
    item_id: str = ""


class ConversationItemEvent(ServerEventBase):
    type: Literal[
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.retrieved",
    ]
    previous_item_id: str | None = None
    item: Item


class ConversationItemDeleted(ServerEventBase):
    type: Literal["conversation.item.deleted"]
    item_id: str = ""


class ConversationItemTruncated(ServerEventBase):
    type: Literal["conversation.item.truncated"]
    item_id: str = ""
    content_index: int = 0
    audio_end_ms: int = 0


class InputAudioTranscriptionCompleted(ServerEventBase):
    type: Literal["conversation.item.input_audio_transcription.completed"]
    item_id: str = ""
    content_index: int = 0
    transcript: str = ""


class InputAudioTranscriptionFailed(ServerEventBase):
    type: Literal["conversation.item.input_audio_transcription.failed"]
    item_id: str = ""
    content_index: int = 0
    error: ErrorDetail = Field(default_factory=ErrorDetail)  # built when missing, not at import

    _any_error = field_validator("error", mode="before")(_error_object)


class InputAudioTranscriptionSegment(ServerEventBase):
    type: Literal["conversation.item.input_audio_transcription.segment"]
    id: str = ""
    item_id: str = ""
    content_index: int = 0
    text: str = ""
    speaker: str | None = None
    start: float = 0.0
    end: float = 0.0


class OutputItemEvent(ServerEventBase):
    type: Literal["response.output_item.added", "response.output_item.done"]
    response_id: str = ""
    output_index: int = 0
    item: Item


class SpeechStarted(ServerEventBase):
    type: Literal["input_audio_buffer.speech_started"]
    audio_start_ms: int = 0
    item_id: str = ""


class SpeechStopped(ServerEventBase):
    type: Literal["input_audio_buffer.speech_stopped"]
    audio_end_ms: int = 0
    item_id: str = ""


class InputAudioBufferCommitted(ServerEventBase):
    type: Literal["input_audio_buffer.committed"]
    item_id: str = ""
    previous_item_id: str | None = None


class InputAudioBufferCleared(ServerEventBase):
    type: Literal["input_audio_buffer.cleared"]


class InputAudioTimeoutTriggered(ServerEventBase):
    type: Literal["input_audio_buffer.timeout_triggered"]
    item_id: str = ""
    audio_start_ms: int = 0
    audio_end_ms: int = 0


class DtmfEventReceived(ServerEventBase):
    type: Literal["input_audio_buffer.dtmf_event_received"]
    event: str = ""
    received_at: int = 0


class OutputAudioBufferEvent(ServerEventBase):
    """WebRTC/SIP only: the server's own output buffer started, stopped or was cleared."""

    type: Literal["output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared"]
    response_id: str = ""


class RateLimitsUpdated(ServerEventBase):
    type: Literal["rate_limits.updated"]
    rate_limits: list[dict[str, Any]] = []


_KNOWN_MODELS: tuple[type[ServerEventBase], ...] = (
    ServerErrorEvent,
    SessionEvent,
    TranscriptionSessionUpdated,
    ConversationCreated,
    ResponseEvent,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseTextDelta,
    ResponseTextDone,
    ResponseTranscriptDone,
    ContentPartEvent,
    FunctionCallArgumentsDone,
    McpCallArgumentsDone,
    McpCallEvent,
    McpListToolsEvent,
    ConversationItemEvent,
    ConversationItemDeleted,
    ConversationItemTruncated,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionFailed,
    InputAudioTranscriptionSegment,
    OutputItemEvent,
    SpeechStarted,
    SpeechStopped,
    InputAudioBufferCommitted,
    InputAudioBufferCleared,
    InputAudioTimeoutTriggered,
    DtmfEventReceived,
    OutputAudioBufferEvent,
    RateLimitsUpdated,
)
# A plain string discriminator: pydantic-core picks the model from the JSON's ``type`` without calling
# Python (a callable discriminator would get the whole event, delta included, as a Python dict). An
# unknown ``type`` fails fast with ``union_tag_invalid`` and falls back to the generic model.
ServerEvent = Annotated[Union[_KNOWN_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]

#: Every event type modelled here: a frame of one of these types that does not fit its model is a
#: :class:`MalformedServerEvent`, not a generic one.
KNOWN_SERVER_EVENT_TYPES: frozenset[str] = frozenset(
    name for model in _KNOWN_MODELS for name in get_args(model.model_fields["type"].annotation)
)

_Validate = Callable[[str | bytes | bytearray], Any]
#: The known-events and generic validators, once built.
_validators: tuple[_Validate, _Validate] | None = None


def build_parser() -> tuple[_Validate, _Validate]:
    """Build the event validators now, if not built yet (and return them).

    Every model defers its validator (``defer_build``): building them all takes about half of what
    this module would cost at import in a page (some 30 ms), and a page that never connects should not
    pay it. The transport calls this right after it starts opening its socket, so that the build runs
    while the browser does the handshake; the first parsed frame builds them otherwise.
    """
    global _validators
    if _validators is None:
        # The validators' own methods: TypeAdapter.validate_json is a Python wrapper that costs
        # about a microsecond per call in Pyodide, on every server event.
        _validators = (TypeAdapter(ServerEvent).validator.validate_json,
                       TypeAdapter(GenericServerEvent).validator.validate_json)
    return _validators


def parse_server_event(data: str | bytes | bytearray | memoryview) -> ServerEventBase | None:
    """Parse one text frame; None (never an exception) if it is not a JSON object with a string ``type``.

    A known type whose fields do not fit its model (say an audio delta with no ``delta``) comes back
    as a :class:`MalformedServerEvent` that keeps the frame and what did not fit. A string with an
    escaped lone surrogate (``"\\ud800"``, which strict JSON parsers refuse) is parsed with U+FFFD in
    its place rather than dropped.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    validate_known = (_validators or build_parser())[0]
    try:
        try:
            # Every server event passes here: the common case calls the validator in this frame, not
            # through _parse (a Python call less per event, which Pyodide feels).
            event: ServerEventBase = validate_known(data)
            return event
        except ValidationError as exc:
            return _not_known(data, exc, mend=True)
    except TypeError:
        # A str holding a raw lone surrogate (not an escape: it cannot even be encoded as UTF-8, which
        # the parsers refuse with a TypeError): mend it as an escaped one is, then parse.
        if not isinstance(data, str):
            return None
        mended = _replace_lone_surrogates(data)
        logger.warning("a server event had a lone UTF-16 surrogate in a string; it was replaced with U+FFFD")
        return _parse(mended, mend=True) if mended != data else None


def _parse(data: str | bytes | bytearray, *, mend: bool) -> ServerEventBase | None:
    validate_known = (_validators or build_parser())[0]
    try:
        event: ServerEventBase = validate_known(data)
        return event
    except ValidationError as exc:
        return _not_known(data, exc, mend=mend)


def _not_known(data: str | bytes | bytearray, failure: ValidationError, *, mend: bool) -> ServerEventBase | None:
    """A frame no known model took: a generic event, a malformed known one, or (``mend``) one mended."""
    validate_generic = (_validators or build_parser())[1]
    try:
        generic: GenericServerEvent = validate_generic(data)
    except ValidationError:
        if not mend:
            return None
        return _parse_replacing_surrogates(data) or _parse_cut_short(data)
    if generic.type in KNOWN_SERVER_EVENT_TYPES:
        return _malformed(generic, data, failure)
    return generic


#: How many validation problems a malformed event's ``problem`` lists.
_MAX_PROBLEMS = 3


def _malformed(generic: GenericServerEvent, data: str | bytes | bytearray, failure: ValidationError) -> MalformedServerEvent:
    problems = []
    for error in failure.errors(include_url=False, include_input=False)[:_MAX_PROBLEMS]:
        # The first location is the union's tag (the event type): the field path follows it.
        where = ".".join(str(part) for part in error["loc"][1:]) or "event"
        problems.append(f"{where}: {error['msg']}")
    raw = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    fields = dict(generic.model_extra or {})
    return MalformedServerEvent(
        type=generic.type,
        event_id=generic.event_id,
        raw=raw,
        problem="; ".join(problems) or "it does not fit its model",
        data=fields,
    )


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        # Pairs are joined, lone halves become U+FFFD.
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value


def _parse_cut_short(data: str | bytes | bytearray) -> MalformedServerEvent | None:
    """A frame cut short (not valid JSON) whose beginning names a known type: a malformed event, so
    the state still advances (a cut ``response.done`` still ends its response)."""
    try:
        obj = from_json(data, allow_partial=True)
    except ValueError:
        return None
    kind = obj.get("type") if isinstance(obj, dict) else None
    if not isinstance(kind, str) or kind not in KNOWN_SERVER_EVENT_TYPES:
        return None  # not JSON, or no type we know of: nothing to advance
    try:
        from_json(data)
        problem = "it does not fit its model"
    except ValueError as exc:
        problem = f"the frame is not valid JSON ({exc})"
    fields = {key: value for key, value in obj.items() if key not in ("type", "event_id")}
    event_id = obj.get("event_id")
    raw = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    return MalformedServerEvent(type=kind, event_id=event_id if isinstance(event_id, str) else None, raw=raw,
                                problem=problem, data=fields)


def _parse_replacing_surrogates(data: str | bytes | bytearray) -> ServerEventBase | None:
    """The slow path for a frame the strict parser refused: only a lone surrogate is mended."""
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            return None
        mended = json.dumps(_replace_lone_surrogates(obj), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None  # not JSON at all (or nested deeper than anything real)
    event = _parse(mended, mend=False)
    if event is not None:
        logger.warning("a server event had a lone UTF-16 surrogate in a string; it was replaced with U+FFFD")
    return event


# What the transport emits -------------------------------------------------------------------------
# Immutable records, NamedTuples: a frozen dataclass sets each field through object.__setattr__
# (about 1 us per event in Pyodide), and compiling its generated methods costs about 1 ms per class
# at import, five times a NamedTuple's. The few that carry a dict the server sent (``raw``,
# ``provider_data``, token details, an error object) are frozen dataclasses instead, so that the dict
# stays out of ``==`` and ``hash``.
ConnectionStatus = Literal["disconnected", "connecting", "connected"]


class TransportEvent(NamedTuple):
    """One emitted event as ``transport.events()`` yields it: its name and what listeners got."""

    name: str
    data: Any


class TransportAudio(NamedTuple):
    """``audio``: decoded model audio in ``audio_format`` (the response's own, else the session's)."""

    data: bytes
    response_id: str
    item_id: str
    content_index: int
    audio_format: AudioFormat = "pcm16"
    #: ms of this item's audio received so far, this delta included: counted once, in the core, in the
    #: item's own format (what playback and the history measure against).
    received_ms: float = 0.0

    @property
    def event_type(self) -> Literal["audio"]:
        return "audio"


class AudioDone(NamedTuple):
    """``audio_done``: the server finished sending audio for this item (it may still be playing)."""

    response_id: str
    item_id: str
    content_index: int

    @property
    def event_type(self) -> Literal["audio_done"]:
        return "audio_done"


class AudioInterrupted(NamedTuple):
    """``audio_interrupted``: stop playback now. ``truncated`` lists (item_id, content_index, audio_end_ms)."""

    truncated: tuple[tuple[str, int, int], ...] = ()

    @property
    def event_type(self) -> Literal["audio_interrupted"]:
        return "audio_interrupted"


class TranscriptDelta(NamedTuple):
    """``audio_transcript_delta``: text of the model's speech, as it arrives."""

    delta: str
    item_id: str
    response_id: str

    @property
    def event_type(self) -> Literal["audio_transcript_delta"]:
        return "audio_transcript_delta"


class OutputTextDelta(NamedTuple):
    """``output_text_delta``: model text output, as it arrives."""

    delta: str
    item_id: str
    response_id: str

    @property
    def event_type(self) -> Literal["output_text_delta"]:
        return "output_text_delta"


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """``item_update``: a conversation item appeared or changed (``raw`` is the server's item)."""

    item_id: str
    type: str
    role: str | None = None
    status: str | None = None
    content: tuple[Any, ...] = ()
    previous_item_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    call_id: str | None = None
    output: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def event_type(self) -> Literal["item_update"]:
        return "item_update"


class ItemDeleted(NamedTuple):
    """``item_deleted``."""

    item_id: str

    @property
    def event_type(self) -> Literal["item_deleted"]:
        return "item_deleted"


class FunctionCall(NamedTuple):
    """``function_call``: the model wants a tool run; answer with ``send_function_call_output``."""

    id: str
    call_id: str
    name: str
    arguments: str
    response_id: str = ""
    previous_item_id: str | None = None

    @property
    def event_type(self) -> Literal["function_call"]:
        return "function_call"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, Any] = field(default_factory=dict, compare=False)
    output_tokens_details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def event_type(self) -> Literal["usage_update"]:
        return "usage_update"


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """``turn_started``: the server created a response (``provider_data`` is its ``response.created``)."""

    response_id: str
    provider_data: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def event_type(self) -> Literal["turn_started"]:
        return "turn_started"


class TurnDone(NamedTuple):
    """``turn_done``: a response finished (completed, cancelled, failed: see ``status``)."""

    response_id: str
    status: str | None
    output: tuple[Any, ...]
    usage: Usage

    @property
    def event_type(self) -> Literal["turn_done"]:
        return "turn_done"


class InputTranscriptDelta(NamedTuple):
    """``input_audio_transcription_delta``: text of the user's speech, as it arrives."""

    item_id: str
    content_index: int
    delta: str

    @property
    def event_type(self) -> Literal["input_audio_transcription_delta"]:
        return "input_audio_transcription_delta"


class InputTranscriptCompleted(NamedTuple):
    """``input_audio_transcription_completed``: the whole transcript of the user's audio item."""

    item_id: str
    content_index: int
    transcript: str

    @property
    def event_type(self) -> Literal["input_audio_transcription_completed"]:
        return "input_audio_transcription_completed"


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    """``input_audio_transcription_failed``: the user's audio could not be transcribed."""

    item_id: str
    content_index: int
    error: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def event_type(self) -> Literal["input_audio_transcription_failed"]:
        return "input_audio_transcription_failed"


class InputSpeechStarted(NamedTuple):
    """``speech_started``: the server heard the user start speaking (server VAD)."""

    item_id: str
    audio_start_ms: int

    @property
    def event_type(self) -> Literal["speech_started"]:
        return "speech_started"


class InputSpeechStopped(NamedTuple):
    """``speech_stopped``: the server heard the user stop speaking."""

    item_id: str
    audio_end_ms: int

    @property
    def event_type(self) -> Literal["speech_stopped"]:
        return "speech_stopped"


class AudioCommitted(NamedTuple):
    """``audio_committed``: the input audio became the user item ``item_id``."""

    item_id: str
    previous_item_id: str | None = None

    @property
    def event_type(self) -> Literal["audio_committed"]:
        return "audio_committed"


class InputAudioTimeout(NamedTuple):
    """``input_audio_timeout``: the user said nothing for ``idle_timeout_ms`` (turn_detection)."""

    item_id: str
    audio_start_ms: int
    audio_end_ms: int

    @property
    def event_type(self) -> Literal["input_audio_timeout"]:
        return "input_audio_timeout"


class RateLimits(NamedTuple):
    """``rate_limits_updated``: each limit as the server sent it (name, limit, remaining, reset_seconds)."""

    rate_limits: tuple[dict[str, Any], ...]

    @property
    def event_type(self) -> Literal["rate_limits_updated"]:
        return "rate_limits_updated"


class McpToolsListed(NamedTuple):
    """``mcp_tools_listed``: an MCP server's tools, once listed (``conversation.item.done``)."""

    server_label: str
    tools: tuple[dict[str, Any], ...]
    item_id: str = ""

    @property
    def event_type(self) -> Literal["mcp_tools_listed"]:
        return "mcp_tools_listed"


class McpApprovalRequest(NamedTuple):
    """``mcp_approval_request``: the model wants an MCP tool run; answer with ``send_mcp_response``."""

    item_id: str
    server_label: str
    name: str
    arguments: str

    @property
    def event_type(self) -> Literal["mcp_approval_request"]:
        return "mcp_approval_request"


@dataclass(frozen=True, slots=True)
class McpToolCall:
    """``mcp_tool_call_completed``: an MCP tool call finished (``output`` or ``error``)."""

    item_id: str
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: Any = field(default=None, compare=False)

    @property
    def event_type(self) -> Literal["mcp_tool_call_completed"]:
        return "mcp_tool_call_completed"


class ResponseCut(NamedTuple):
    """``response_cut``: the connection closed while this response ran; no ``response.done`` will
    come. A ``turn_done`` with status ``"cut"`` follows, so nobody waits for it."""

    response_id: str

    @property
    def event_type(self) -> Literal["response_cut"]:
        return "response_cut"


class ConnectionChange(NamedTuple):
    """``connection_change`` (and ``connected``/``disconnected``)."""

    status: ConnectionStatus

    @property
    def event_type(self) -> Literal["connection_change"]:
        return "connection_change"


class ErrorEvent(NamedTuple):
    """``error``: a server ``error`` event (a :class:`ServerErrorEvent`) or an exception."""

    error: Any

    @property
    def exception(self) -> BaseException:
        """The error as an exception: itself, or a :class:`ServerError` for a server error event."""
        if isinstance(self.error, BaseException):
            return self.error
        from .errors import ServerError

        if isinstance(self.error, MalformedServerEvent):
            bad = self.error
            return ServerError(
                bad.message,
                error={"type": "malformed_event", "code": "malformed_event", "message": bad.message,
                       "event_id": bad.event_id, "event_type": bad.type, "problem": bad.problem, "raw": bad.raw},
            )
        detail = self.error.error.model_dump() if isinstance(self.error, ServerErrorEvent) else {}
        message = detail.get("message") or detail.get("code") or "the server reported an error"
        return ServerError(str(message), error=detail)

    @property
    def event_type(self) -> Literal["error"]:
        return "error"

class AudioDropped(NamedTuple):
    """``audio_dropped``: microphone audio given to ``send_audio`` was not sent (a slow uplink)."""

    bytes: int
    buffered_amount: int
    reason: str

    @property
    def event_type(self) -> Literal["audio_dropped"]:
        return "audio_dropped"


class Reconnecting(NamedTuple):
    """``reconnecting``: attempt ``attempt`` starts after ``delay_s`` seconds; ``error`` is why."""

    attempt: int
    delay_s: float
    error: BaseException | None

    @property
    def event_type(self) -> Literal["reconnecting"]:
        return "reconnecting"


class Reconnected(NamedTuple):
    """``reconnected``: open again after ``attempts`` attempts, the session config re-sent."""

    attempts: int

    @property
    def event_type(self) -> Literal["reconnected"]:
        return "reconnected"


class ReconnectFailed(NamedTuple):
    """``reconnect_failed``: the reconnect gave up (attempts spent, or the key refused); ``error`` says why.
    The transport stays disconnected: this is the end of the connection, as ``disconnected`` is without
    reconnect."""

    error: BaseException

    @property
    def event_type(self) -> Literal["reconnect_failed"]:
        return "reconnect_failed"


#: Every record the transport emits, as one union tagged by ``event_type`` (``item_update``'s own
#: ``type`` is its item's type, hence the longer name). ``*`` and each server event type carry the
#: server event itself (a :class:`ServerEventBase`, tagged by its ``type``).
TransportEventRecord = Union[
    TransportAudio, AudioDone, AudioInterrupted, TranscriptDelta, OutputTextDelta, ItemUpdate, ItemDeleted,
    FunctionCall, Usage, TurnStarted, TurnDone, InputTranscriptDelta, InputTranscriptCompleted,
    InputTranscriptFailed, InputSpeechStarted, InputSpeechStopped, AudioCommitted, InputAudioTimeout, RateLimits,
    McpToolsListed, McpApprovalRequest, McpToolCall, ResponseCut, ConnectionChange, ErrorEvent, AudioDropped,
    Reconnecting, Reconnected, ReconnectFailed,
]

#: The record each named transport event carries: the one table of names and classes. ``connected``
#: and ``disconnected`` carry a ``connection_change`` record.
TRANSPORT_EVENT_RECORDS: dict[str, type[TransportEventRecord]] = {
    **{record.event_type.fget(None): record for record in get_args(TransportEventRecord)},
    "connected": ConnectionChange,
    "disconnected": ConnectionChange,
}
