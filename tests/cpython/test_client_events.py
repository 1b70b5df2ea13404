"""Client events: every one the core can send is valid by the official SDK's types (GA and beta), the
schema tables follow the SDK, and send_event refuses unknown types and misspelled fields by name."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

import pytest
from openai.types.beta.realtime.conversation_item import ConversationItem as BetaItem
from openai.types.beta.realtime.realtime_client_event import RealtimeClientEvent as BetaClientEvent
from openai.types.beta.realtime.response_create_event import Response as BetaResponseParams
from openai.types.beta.realtime.session_update_event import Session as BetaSession
from openai.types.realtime.conversation_item import ConversationItem as GAItem
from openai.types.realtime.realtime_audio_config_input import RealtimeAudioConfigInput
from openai.types.realtime.realtime_audio_config_output import RealtimeAudioConfigOutput
from openai.types.realtime.realtime_client_event import RealtimeClientEvent as GAClientEvent
from openai.types.realtime.realtime_response_create_params import RealtimeResponseCreateParams
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest
from pydantic import BaseModel, TypeAdapter
from realtime_samples import ga_samples

from pyodide_realtime import _client_events as C
from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime.dialects import get_dialect
from pyodide_realtime.errors import ConfigurationError
from pyodide_realtime.events import FunctionCall

SDK = {"ga": GAClientEvent, "beta": BetaClientEvent}


def members(union: Any) -> dict[str, type[BaseModel]]:
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in typing.get_args(typing.get_args(union)[0])}


def fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


# The tables follow the SDK -------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_the_client_event_table_is_the_sdks(dialect: str) -> None:
    sdk = members(SDK[dialect])
    assert {name: fields(model) for name, model in sdk.items()} == C.CLIENT_EVENT_FIELDS[dialect]
    if dialect == "ga":
        assert len(sdk) == 11


def test_the_nested_tables_are_the_sdks() -> None:
    assert C.RESPONSE_FIELDS == {"ga": fields(RealtimeResponseCreateParams), "beta": fields(BetaResponseParams)}
    ga_items = {typing.get_args(m.model_fields["type"].annotation)[0]: fields(m)
                for m in typing.get_args(typing.get_args(GAItem)[0])}
    assert ga_items == C.GA_ITEM_FIELDS and C.BETA_ITEM_FIELDS == fields(BetaItem)
    assert C.SESSION_FIELDS == {"ga": fields(RealtimeSessionCreateRequest), "beta": fields(BetaSession)}
    assert C._GA_AUDIO_FIELDS == {"input": fields(RealtimeAudioConfigInput), "output": fields(RealtimeAudioConfigOutput)}


# Everything the core sends is valid by the SDK -----------------------------------------------------------
def strictly_valid(frame: dict[str, Any], dialect: str) -> None:
    """Valid by the SDK's union, and no field the SDK's model of that type lacks (it allows extras)."""
    model = members(SDK[dialect])[frame["type"]]
    model.model_validate(frame)
    TypeAdapter(SDK[dialect]).validate_python(frame)
    assert set(frame) <= fields(model), frame
    C.validate_client_event(frame, dialect)


def opened(dialect: str, config: dict[str, Any] | None = None) -> RealtimeProtocol:
    core = RealtimeProtocol(dialect, model="gpt-realtime" if dialect == "ga" else "gpt-4o-realtime-preview")
    core.connection_opening()
    core.connection_opened(config)
    return core


CALLS: list[tuple[str, Callable[[RealtimeProtocol], None]]] = [
    ("send_message", lambda core: core.send_message("Hello")),
    ("send_audio", lambda core: core.send_audio(b"\x00\x01" * 10, commit=True)),
    ("commit_audio", lambda core: core.commit_audio()),
    ("clear_audio", lambda core: core.clear_audio()),
    ("request_response", lambda core: core.request_response()),
    ("delete_item", lambda core: core.delete_item("item_1")),
    ("retrieve_item", lambda core: core.retrieve_item("item_1")),
    ("truncate_item", lambda core: core.truncate_item("item_1", 0, 1500)),
    ("send_function_call_output", lambda core: core.send_function_call_output(
        FunctionCall(id="item_f", call_id="call_1", name="get_weather", arguments="{}"), {"temp": 21})),
    ("update_session_config", lambda core: core.update_session_config({"instructions": "Be brief.", "voice": "marin"})),
    ("reset_history", lambda core: core.reset_history(
        [{"item_id": "a", "role": "user", "content": [{"type": "input_text", "text": "x"}]}],
        [{"item_id": "b", "role": "user", "content": [{"type": "input_text", "text": "y"}]},
         {"item_id": "a", "role": "user", "content": [{"type": "input_text", "text": "x2"}]}])),
]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
@pytest.mark.parametrize("name, call", CALLS, ids=[name for name, _ in CALLS])
def test_every_client_event_the_core_sends_is_valid_by_the_official_sdk(
    dialect: str, name: str, call: Callable[[RealtimeProtocol], None]
) -> None:
    core = opened(dialect)
    frames = [json.loads(f) for f in core.data_to_send()]  # the session.update of connect
    call(core)
    frames += [json.loads(f) for f in core.data_to_send()]
    assert len(frames) >= 2
    for frame in frames:
        if frame["type"] == "conversation.item.create" and "id" not in frame["item"]:
            frame = {**frame, "item": {**frame["item"], "id": "item_x"}}  # the SDK types the server's items: id required
        strictly_valid(frame, dialect)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_what_the_core_sends_by_itself_is_valid_too(dialect: str) -> None:
    # Tracing after session.created, a retrieve after a transcript, cancel and truncate on an interrupt.
    core = opened(dialect, {"turn_detection": {"type": "server_vad", "interrupt_response": False}})
    samples = ga_samples()
    audio = get_dialect(dialect).wire.audio_delta
    for name in ("session.created", "response.created", "conversation.item.input_audio_transcription.completed"):
        core.receive(json.dumps(samples[name]))
    core.receive(json.dumps({**samples["response.output_audio.delta"], "type": audio}), now_ms=0.0)
    core.receive(json.dumps(samples["input_audio_buffer.speech_started"]), now_ms=50.0)
    barge_in = core.barge_in_expected()  # the core's hint: act on it as the transport does
    assert barge_in is not None
    core.interrupt(50.0, cancel=barge_in.cancel_response)
    core.cancel_response()  # the sample session has the server cancel by itself: cancel as an app would
    core.connection_closed()
    frames = [json.loads(f) for f in core.data_to_send()]
    assert {"session.update", "conversation.item.retrieve", "response.cancel", "conversation.item.truncate"} <= {
        f["type"] for f in frames}
    for frame in frames:
        strictly_valid(frame, dialect)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_a_session_config_of_every_field_is_a_valid_session_update(dialect: str) -> None:
    common: dict[str, Any] = {
        "instructions": "Be brief.", "voice": "marin", "speed": 1.1, "modalities": ["audio"],
        "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "gpt-4o-transcribe"}, "input_audio_noise_reduction": {"type": "far_field"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "create_response": True, "interrupt_response": True},
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}],
        "tool_choice": "auto", "max_response_output_tokens": 800, "tracing": "auto",
    }
    extra: dict[str, Any] = ({"include": ["item.input_audio_transcription.logprobs"], "prompt": {"id": "pmpt_1"},
                              "truncation": "auto"} if dialect == "ga" else {"temperature": 0.7})
    core = RealtimeProtocol(dialect)
    wire = core.check_session_config({**common, **extra}).to_wire(dialect)
    strictly_valid({"type": "session.update", "session": wire}, dialect)
    if dialect == "ga":
        assert set(wire["audio"]["input"]) <= fields(RealtimeAudioConfigInput)
        assert set(wire["audio"]["output"]) <= fields(RealtimeAudioConfigOutput)


# send_event refuses what the API does not have, by name -------------------------------------------------
@pytest.mark.parametrize(
    "event, message",
    [
        ({"type": "response.cancell"}, "unknown client event type 'response.cancell' in the ga API: did you mean 'response.cancel'?"),
        ({"type": "respone.create"}, "did you mean 'response.create'?"),
        ({"type": "conversation.item.update", "item_id": "i"}, "unknown client event type 'conversation.item.update'"),
        ({"type": "response.cancel", "responseId": "r"}, "response.cancel has no field 'responseId': did you mean 'response_id'?"),
        ({"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end": 5},
         "conversation.item.truncate has no field 'audio_end': did you mean 'audio_end_ms'?"),
        ({"type": "response.create", "response": {"instruction": "x"}},
         "response.create's response has no field 'instruction': did you mean 'instructions'?"),
        ({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "contents": []}},
         "a message item has no field 'contents': did you mean 'content'?"),
        ({"type": "conversation.item.create", "item": {"type": "mesage"}}, "unknown item type 'mesage': did you mean 'message'?"),
        ({"type": "session.update", "session": {"instructons": "x"}},
         "session.update's session has no field 'instructons': did you mean 'instructions'?"),
        ({"type": "session.update", "session": {"audio": {"output": {"voise": "x"}}}},
         "session.update's session.audio.output has no field 'voise': did you mean 'voice'?"),
    ],
)
def test_send_event_refuses_unknown_types_and_fields_naming_the_nearest(event: dict[str, Any], message: str) -> None:
    core = opened("ga")
    core.data_to_send()
    with pytest.raises(ConfigurationError) as refused:
        core.send_event(event)
    assert message in str(refused.value)
    assert core.data_to_send() == []


def test_send_event_knows_each_dialects_names() -> None:
    beta = opened("beta")
    beta.data_to_send()
    beta.send_event({"type": "response.create", "response": {"modalities": ["text"], "temperature": 0.7}})
    with pytest.raises(ConfigurationError, match="did you mean 'output_modalities'"):
        opened("ga").send_event({"type": "response.create", "response": {"modalities": ["text"]}})
    with pytest.raises(ConfigurationError, match="unknown client event type 'transcription_session.update' in the ga API"):
        opened("ga").send_event({"type": "transcription_session.update", "session": {}})


def test_a_custom_servers_own_event_types_pass() -> None:
    # Outside the API's namespaces (a local test server's control messages): not the API's to check.
    core = opened("ga")
    core.data_to_send()
    core.send_event({"type": "test.close", "code": 1000})
    assert [json.loads(f) for f in core.data_to_send()] == [{"type": "test.close", "code": 1000}]


def test_images_are_valid_ga_events() -> None:
    # The beta SDK has no input_image content: the beta dialect refuses images (test_core).
    core = opened("ga")
    core.data_to_send()
    core.send_message({"content": ["Look:", {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]})
    core.add_image("data:image/png;base64,AAAA")
    frames = [json.loads(text) for text in core.data_to_send()]
    assert [f["type"] for f in frames] == ["conversation.item.create", "response.create", "conversation.item.create"]
    for frame in frames:
        if frame["type"] == "conversation.item.create":
            frame["item"]["id"] = "item_x"
        strictly_valid(frame, "ga")
