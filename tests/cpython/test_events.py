"""Server events: one validate_json over a discriminated union, every field kept, None for garbage."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pydantic
import pytest

from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime.events import (
    ConversationItemDeleted,
    ConversationItemEvent,
    ConversationItemTruncated,
    GenericServerEvent,
    InputAudioTranscriptionCompleted,
    ItemDeleted,
    ItemUpdate,
    MalformedServerEvent,
    OutputItemEvent,
    RateLimitsUpdated,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseEvent,
    ResponseTextDelta,
    ServerErrorEvent,
    SessionEvent,
    SpeechStarted,
    TransportAudio,
    TransportEvent,
    parse_server_event,
)

AUDIO = bytes(range(256)) * 20


@pytest.mark.parametrize(
    "fields, model",
    [
        ({"type": "error", "error": {"type": "invalid_request_error", "code": "c", "message": "m", "param": None, "event_id": "e"}},
         ServerErrorEvent),
        ({"type": "session.created", "session": {"id": "s"}}, SessionEvent),
        ({"type": "session.updated", "session": {"id": "s"}}, SessionEvent),
        ({"type": "response.created", "response": {"id": "r"}}, ResponseEvent),
        ({"type": "response.done", "response": {"id": "r", "usage": {}}}, ResponseEvent),
        ({"type": "response.output_audio.done", "item_id": "i"}, ResponseAudioDone),
        ({"type": "response.audio.done", "item_id": "i"}, ResponseAudioDone),
        ({"type": "response.output_audio_transcript.delta", "delta": "d"}, ResponseTextDelta),
        ({"type": "response.audio_transcript.delta", "delta": "d"}, ResponseTextDelta),
        ({"type": "response.output_text.delta", "delta": "d"}, ResponseTextDelta),
        ({"type": "response.text.delta", "delta": "d"}, ResponseTextDelta),
        ({"type": "conversation.item.added", "item": {"id": "i"}}, ConversationItemEvent),
        ({"type": "conversation.item.done", "item": {"id": "i"}}, ConversationItemEvent),
        ({"type": "conversation.item.created", "item": {"id": "i"}}, ConversationItemEvent),
        ({"type": "conversation.item.retrieved", "item": {"id": "i"}}, ConversationItemEvent),
        ({"type": "conversation.item.deleted", "item_id": "i"}, ConversationItemDeleted),
        ({"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": 5}, ConversationItemTruncated),
        ({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i", "transcript": "t"},
         InputAudioTranscriptionCompleted),
        ({"type": "response.output_item.added", "item": {"type": "message"}}, OutputItemEvent),
        ({"type": "response.output_item.done", "item": {"type": "function_call"}}, OutputItemEvent),
        ({"type": "input_audio_buffer.speech_started", "audio_start_ms": 3}, SpeechStarted),
        ({"type": "rate_limits.updated", "rate_limits": []}, RateLimitsUpdated),
        ({"type": "some.future_event", "payload": []}, GenericServerEvent),
    ],
)
def test_known_types_of_both_dialects_get_their_model_and_keep_every_field(fields: dict[str, Any], model: type) -> None:
    fields = {**fields, "event_id": "evt_1", "brand_new_field": {"nested": [1, 2]}}
    event = parse_server_event(json.dumps(fields))
    assert type(event) is model
    assert event.type == fields["type"] and event.event_id == "evt_1"
    assert event.model_extra["brand_new_field"] == {"nested": [1, 2]}


@pytest.mark.parametrize("name", ["response.output_audio.delta", "response.audio.delta"])
@pytest.mark.parametrize("wrap", [str, lambda s: s.encode(), lambda s: bytearray(s.encode()), lambda s: memoryview(s.encode())])
def test_audio_deltas_are_decoded_by_pydantic_from_any_buffer(name: str, wrap: Any) -> None:
    text = json.dumps({"type": name, "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 2,
                       "delta": base64.b64encode(AUDIO).decode()})
    event = parse_server_event(wrap(text))
    assert isinstance(event, ResponseAudioDelta)
    assert event.delta == AUDIO and isinstance(event.delta, bytes)
    assert (event.response_id, event.item_id, event.content_index) == ("r", "i", 2)


@pytest.mark.parametrize(
    "frame",
    ["", "not json", "[1, 2, 3]", '"a string"', "42", "null", '{"no_type": true}', '{"type": 7}', '{"type": null}', b"\xff\xfe",
     '{"type": "x"', memoryview(b"{}")],
)
def test_garbage_is_none_never_an_exception(frame: Any) -> None:
    assert parse_server_event(frame) is None


def test_unknown_types_keep_every_field() -> None:
    event = parse_server_event('{"type": "output_audio_buffer.future", "event_id": "e", "response_id": "r", "n": [1, {"a": null}]}')
    assert isinstance(event, GenericServerEvent)
    assert event.model_dump() == {"type": "output_audio_buffer.future", "event_id": "e", "response_id": "r", "n": [1, {"a": None}]}


def test_a_known_type_that_does_not_fit_its_model_is_a_malformed_event() -> None:
    text = '{"type": "response.output_audio.delta", "item_id": "i", "delta": "%%% not base64"}'
    event = parse_server_event(text)
    assert isinstance(event, MalformedServerEvent) and event.data["delta"] == "%%% not base64"
    assert event.raw == text and event.problem.startswith("delta: ") and "base64" in event.problem


@pytest.mark.parametrize("wrap", [str, lambda s: s.encode()])
def test_a_text_delta_reads_null_as_empty_and_refuses_what_is_not_a_string(wrap: Any) -> None:
    def parse(delta: str) -> Any:
        return parse_server_event(wrap('{"type": "response.output_text.delta", "item_id": "i", %s}' % delta))

    for given, read in (('"delta": null', ""), ('"delta": "word "', "word "), ('"delta": ""', ""), ("\"n\": 1", "")):
        event = parse(given)
        assert type(event) is ResponseTextDelta and event.delta == read and type(event.delta) is str
    assert "delta" in parse('"delta": null').model_fields_set and parse('"delta": null').model_dump()["delta"] == ""
    for wrong in ('"delta": 5', '"delta": true', '"delta": ["a"]', '"delta": {"a": 1}'):
        event = parse(wrong)
        assert isinstance(event, MalformedServerEvent) and event.problem == "delta: Input should be a valid string"
    assert ResponseTextDelta.model_validate({"type": "response.text.delta", "delta": None}).delta == ""


def _python_validators(schema: Any) -> list[str]:
    """The Python functions a pydantic-core schema calls (``function-*`` schemas), anywhere inside it."""
    found = []
    if isinstance(schema, dict):
        if str(schema.get("type", "")).startswith("function-"):
            found.append(str(schema["type"]))
        for value in schema.values():
            found += _python_validators(value)
    elif isinstance(schema, list):
        for value in schema:
            found += _python_validators(value)
    return found


@pytest.mark.parametrize("model", [ResponseTextDelta, ResponseAudioDelta])
def test_the_models_of_the_events_a_reply_streams_call_no_python_while_they_validate(model: type[pydantic.BaseModel]) -> None:
    # Half of a reply's events are text deltas, half audio deltas: in Pyodide a Python validator called
    # from pydantic-core per event costs about as much as the rest of the transport's work on it.
    parse_server_event('{"type": "response.output_text.delta", "delta": "x"}')  # the models are built by now
    assert _python_validators(model.__pydantic_core_schema__) == []


def test_events_are_frozen() -> None:
    event = parse_server_event('{"type": "response.created", "response": {"id": "r"}}')
    with pytest.raises(pydantic.ValidationError):
        event.type = "other"  # type: ignore[misc]
    # Records are NamedTuples, or frozen dataclasses when they carry a server dict: all refuse assignment.
    audio = TransportAudio(b"x", "r", "i", 0)
    with pytest.raises(AttributeError):
        audio.data = b"y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        TransportEvent("a", 1).name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ItemDeleted("i").item_id = "j"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ItemUpdate("i", "message").status = "completed"  # type: ignore[misc]


def test_error_details_are_typed() -> None:
    event = parse_server_event('{"type": "error", "error": {"code": "response_cancel_not_active", "param": {"x": 1}}}')
    assert isinstance(event, ServerErrorEvent)
    assert event.error.code == "response_cancel_not_active" and event.error.param == {"x": 1} and event.error.event_id is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\ud800", None),  # a raw lone surrogate in the str itself (not an escape): not JSON either
        ('{"type": "x.y", "a": "\ud800b"}', "\ufffdb"),  # in a value: mended, as an escaped one is
        ('{"type": "x.y", "a": "\ud83d\ude00\udc00"}', "\U0001f600\ufffd"),  # a pair kept, the lone half mended
        ('{"type": "x.\ud800"}', None),
    ],
)
def test_a_str_with_a_raw_lone_surrogate_is_mended_or_ignored_never_raised(text: str, expected: str | None) -> None:
    event = parse_server_event(text)
    if expected is None:
        assert event is None or event.type == "x.\ufffd"
    else:
        assert event is not None and event.model_extra == {"a": expected}
    core = RealtimeProtocol("ga")
    core.connection_opening()
    core.connection_opened(None)
    core.receive(text)  # never raises (its docstring's promise)
