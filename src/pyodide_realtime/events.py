"""Events: what the server sends (pydantic models) and what the transport emits (small frozen classes).

Server events are parsed by :func:`parse_server_event` with one ``TypeAdapter.validate_json`` over a
discriminated union of the known types of both dialects, with :class:`GenericServerEvent` for any
other type. Every model is frozen and keeps every field the server sent (``extra="allow"``), so a
newer API field is never lost. Audio deltas are decoded from base64 by pydantic itself while it parses
the JSON: in Pyodide that is the fastest path there is (notes/performance.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

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
    "Usage",
    "ConnectionChange",
    "ErrorEvent",
    "ConnectionStatus",
]


# Server events ------------------------------------------------------------------------------------
class ServerEventBase(BaseModel):
    """Every server event: frozen, and every field kept (read unknown ones from ``model_extra``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: Any = None
    event_id: str | None = None

    _as_text = field_validator("type", "code", "message", "event_id", mode="before")(_text_or_none)


class ServerErrorEvent(ServerEventBase):
    type: Literal["error"]
    error: ErrorDetail = ErrorDetail()

    @field_validator("error", mode="before")
    @classmethod
    def _any_error(cls, value: Any) -> Any:
        # ``"error": "boom"`` (or any non-object) is still an error: its text becomes the message.
        if value is None:
            return {}
        return value if isinstance(value, Mapping) else {"message": _text_or_none(value)}


class SessionEvent(ServerEventBase):
    type: Literal["session.created", "session.updated"]
    session: dict[str, Any] = {}


class ResponseEvent(ServerEventBase):
    type: Literal["response.created", "response.done"]
    response: dict[str, Any] = {}


class ResponseAudioDelta(ServerEventBase):
    """``delta`` is the decoded audio (``bytes``), decoded from base64 by pydantic during the parse."""

    model_config = ConfigDict(frozen=True, extra="allow", val_json_bytes="base64", ser_json_bytes="base64")

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


class ResponseTextDelta(ServerEventBase):
    """A text delta: model text, the transcript of model audio, or of the user's audio."""

    type: Literal[
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
        "conversation.item.input_audio_transcription.delta",
        "response.function_call_arguments.delta",
    ]
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0
    delta: str = ""


class ConversationItemEvent(ServerEventBase):
    type: Literal[
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.retrieved",
    ]
    previous_item_id: str | None = None
    item: dict[str, Any] = {}


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


class OutputItemEvent(ServerEventBase):
    type: Literal["response.output_item.added", "response.output_item.done"]
    response_id: str = ""
    output_index: int = 0
    item: dict[str, Any] = {}


class SpeechStarted(ServerEventBase):
    type: Literal["input_audio_buffer.speech_started"]
    audio_start_ms: int = 0
    item_id: str = ""


_KNOWN_MODELS: tuple[type[ServerEventBase], ...] = (
    ServerErrorEvent,
    SessionEvent,
    ResponseEvent,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseTextDelta,
    ConversationItemEvent,
    ConversationItemDeleted,
    ConversationItemTruncated,
    InputAudioTranscriptionCompleted,
    OutputItemEvent,
    SpeechStarted,
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

_SERVER_EVENT: TypeAdapter[ServerEventBase] = TypeAdapter(ServerEvent)
_GENERIC: TypeAdapter[GenericServerEvent] = TypeAdapter(GenericServerEvent)
# The validators' own methods: TypeAdapter.validate_json is a Python wrapper that costs about a
# microsecond per call in Pyodide, on every server event.
_validate_known = _SERVER_EVENT.validator.validate_json
_validate_generic = _GENERIC.validator.validate_json


def parse_server_event(data: str | bytes | bytearray | memoryview) -> ServerEventBase | None:
    """Parse one text frame; None (never an exception) if it is not a JSON object with a string ``type``.

    A known type whose fields do not fit its model (say an audio delta with no ``delta``) comes back
    as a :class:`MalformedServerEvent` that keeps the frame and what did not fit. A string with an
    escaped lone surrogate (``"\\ud800"``, which strict JSON parsers refuse) is parsed with U+FFFD in
    its place rather than dropped.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    return _parse(data, mend=True)


def _parse(data: str | bytes | bytearray, *, mend: bool) -> ServerEventBase | None:
    try:
        event: ServerEventBase = _validate_known(data)
        return event
    except ValidationError as exc:
        failure = exc
    try:
        generic: GenericServerEvent = _validate_generic(data)
    except ValidationError:
        return _parse_replacing_surrogates(data) if mend else None
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
# Immutable records. The ones made for every delta (audio, transcripts, text) are NamedTuples: a
# frozen dataclass sets each field through object.__setattr__, about 1 us per event in Pyodide.
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
    audio_format: str = "pcm16"


@dataclass(frozen=True, slots=True)
class AudioDone:
    """``audio_done``: the server finished sending audio for this item (it may still be playing)."""

    response_id: str
    item_id: str
    content_index: int


@dataclass(frozen=True, slots=True)
class AudioInterrupted:
    """``audio_interrupted``: stop playback now. ``truncated`` lists (item_id, content_index, audio_end_ms)."""

    truncated: tuple[tuple[str, int, int], ...] = ()


class TranscriptDelta(NamedTuple):
    """``audio_transcript_delta``: text of the model's speech, as it arrives."""

    delta: str
    item_id: str
    response_id: str


class OutputTextDelta(NamedTuple):
    """``output_text_delta``: model text output, as it arrives."""

    delta: str
    item_id: str
    response_id: str


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


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    """``item_deleted``."""

    item_id: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """``function_call``: the model wants a tool run; answer with ``send_function_call_output``."""

    id: str
    call_id: str
    name: str
    arguments: str
    response_id: str = ""
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, Any] = field(default_factory=dict, compare=False)
    output_tokens_details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """``turn_started``: the server created a response (``provider_data`` is its ``response.created``)."""

    response_id: str
    provider_data: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class TurnDone:
    """``turn_done``: a response finished (completed, cancelled, failed: see ``status``)."""

    response_id: str
    status: str | None
    output: tuple[Any, ...]
    usage: Usage


@dataclass(frozen=True, slots=True)
class ResponseCut:
    """``response_cut``: the connection closed while this response ran; no ``response.done`` will
    come. A ``turn_done`` with status ``"cut"`` follows, so nobody waits for it."""

    response_id: str


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """``connection_change`` (and ``connected``/``disconnected``)."""

    status: ConnectionStatus


@dataclass(frozen=True, slots=True)
class ErrorEvent:
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
