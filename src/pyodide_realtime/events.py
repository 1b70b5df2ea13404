"""Events: what the server sends (pydantic models) and what the transport emits (small frozen classes).

Server events are parsed by :func:`parse_server_event` with one ``TypeAdapter.validate_json`` over a
discriminated union of the known types of both dialects, with :class:`GenericServerEvent` for any
other type. Every model is frozen and keeps every field the server sent (``extra="allow"``), so a
newer API field is never lost. Audio deltas are decoded from base64 by pydantic itself while it parses
the JSON: in Pyodide that is the fastest path there is (notes/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    # server events
    "ServerEvent",
    "ServerEventBase",
    "GenericServerEvent",
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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: Any = None
    event_id: str | None = None


class ServerErrorEvent(ServerEventBase):
    type: Literal["error"]
    error: ErrorDetail = ErrorDetail()


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

_SERVER_EVENT: TypeAdapter[ServerEventBase] = TypeAdapter(ServerEvent)
_GENERIC: TypeAdapter[GenericServerEvent] = TypeAdapter(GenericServerEvent)
# The validators' own methods: TypeAdapter.validate_json is a Python wrapper that costs about a
# microsecond per call in Pyodide, on every server event.
_validate_known = _SERVER_EVENT.validator.validate_json
_validate_generic = _GENERIC.validator.validate_json


def parse_server_event(data: str | bytes | bytearray | memoryview) -> ServerEventBase | None:
    """Parse one text frame; None (never an exception) if it is not a JSON object with a string ``type``.

    A known type whose fields do not fit its model (say an audio delta with no ``delta``) comes back
    as a :class:`GenericServerEvent`, so it still reaches ``*`` listeners but drives no behaviour.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    try:
        event: ServerEventBase = _validate_known(data)
        return event
    except ValidationError:
        pass
    try:
        generic: GenericServerEvent = _validate_generic(data)
        return generic
    except ValidationError:
        return None


# What the transport emits -------------------------------------------------------------------------
# Immutable records. The ones made for every delta (audio, transcripts, text) are NamedTuples: a
# frozen dataclass sets each field through object.__setattr__, about 1 us per event in Pyodide.
ConnectionStatus = Literal["disconnected", "connecting", "connected"]


class TransportEvent(NamedTuple):
    """One emitted event as ``transport.events()`` yields it: its name and what listeners got."""

    name: str
    data: Any


class TransportAudio(NamedTuple):
    """``audio``: decoded model audio in the session's output format."""

    data: bytes
    response_id: str
    item_id: str
    content_index: int


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

        detail = self.error.error.model_dump() if isinstance(self.error, ServerErrorEvent) else {}
        message = detail.get("message") or detail.get("code") or "the server reported an error"
        return ServerError(str(message), error=detail)
