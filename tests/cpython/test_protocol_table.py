"""The whole server protocol, one row per event type of each dialect: the typed class, the events
the transport derives from it, and what the core sends back. The samples are checked against the
official ``openai`` SDK's models first, so each row is a real shape."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from openai.types.beta.realtime.realtime_server_event import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime.realtime_server_event import RealtimeServerEvent as GAServerEvent
from pydantic import TypeAdapter
from realtime_samples import ITEMS, beta_samples, ga_samples

from pyodide_realtime import events as E
from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime.dialects import get_dialect

SAMPLES = {"ga": ga_samples(), "beta": beta_samples()}
SDK_UNION = {"ga": GAServerEvent, "beta": BetaServerEvent}
SAMPLE_STATE = ["response.created", "response.output_audio.delta"]  # a response running with audio

# type -> (typed class, derived events emitted besides '*' and the type itself, frames sent back)
TABLE: dict[str, tuple[type[E.ServerEventBase], list[str], list[str]]] = {
    "error": (E.ServerErrorEvent, [], []),  # emitted once, under "error", as an ErrorEvent
    "session.created": (E.SessionEvent, [], ["session.update"]),  # tracing, once the session exists
    "session.updated": (E.SessionEvent, [], []),
    "transcription_session.updated": (E.TranscriptionSessionUpdated, [], []),
    "conversation.created": (E.ConversationCreated, [], []),
    "conversation.item.created": (E.ConversationItemEvent, ["item_update"], []),
    "conversation.item.added": (E.ConversationItemEvent, ["item_update"], []),
    "conversation.item.done": (E.ConversationItemEvent, ["item_update"], []),
    "conversation.item.retrieved": (E.ConversationItemEvent, ["item_update"], []),
    "conversation.item.deleted": (E.ConversationItemDeleted, ["item_deleted"], []),
    "conversation.item.truncated": (E.ConversationItemTruncated, [], ["conversation.item.retrieve"]),
    "conversation.item.input_audio_transcription.completed": (
        E.InputAudioTranscriptionCompleted, ["input_audio_transcription_completed"], ["conversation.item.retrieve"]),
    "conversation.item.input_audio_transcription.delta": (E.ResponseTextDelta, ["input_audio_transcription_delta"], []),
    "conversation.item.input_audio_transcription.failed": (
        E.InputAudioTranscriptionFailed, ["input_audio_transcription_failed"], []),
    "conversation.item.input_audio_transcription.segment": (E.InputAudioTranscriptionSegment, [], []),
    "input_audio_buffer.committed": (E.InputAudioBufferCommitted, ["audio_committed"], []),
    "input_audio_buffer.cleared": (E.InputAudioBufferCleared, [], []),
    # Talking over the model: the core hints a barge-in; acted on, it cuts the audio that was playing
    # (and sends no cancel: VAD's interrupt_response says the server cancels).
    "input_audio_buffer.speech_started": (
        E.SpeechStarted, ["speech_started", "audio_interrupted"], ["conversation.item.truncate"]),
    "input_audio_buffer.speech_stopped": (E.SpeechStopped, ["speech_stopped"], []),
    "input_audio_buffer.timeout_triggered": (E.InputAudioTimeoutTriggered, ["input_audio_timeout"], []),
    "input_audio_buffer.dtmf_event_received": (E.DtmfEventReceived, [], []),
    "output_audio_buffer.started": (E.OutputAudioBufferEvent, [], []),
    "output_audio_buffer.stopped": (E.OutputAudioBufferEvent, [], []),
    "output_audio_buffer.cleared": (E.OutputAudioBufferEvent, [], []),
    "rate_limits.updated": (E.RateLimitsUpdated, ["rate_limits_updated"], []),
    "response.created": (E.ResponseEvent, ["turn_started"], []),
    "response.done": (E.ResponseEvent, ["usage_update", "turn_done"], []),
    "response.output_item.added": (E.OutputItemEvent, ["item_update"], []),
    "response.output_item.done": (E.OutputItemEvent, ["item_update"], []),
    "response.content_part.added": (E.ContentPartEvent, [], []),
    "response.content_part.done": (E.ContentPartEvent, [], []),
    "response.output_audio.delta": (E.ResponseAudioDelta, ["audio"], []),
    "response.audio.delta": (E.ResponseAudioDelta, ["audio"], []),
    "response.output_audio.done": (E.ResponseAudioDone, ["audio_done"], []),
    "response.audio.done": (E.ResponseAudioDone, ["audio_done"], []),
    "response.output_audio_transcript.delta": (E.ResponseTextDelta, ["audio_transcript_delta"], []),
    "response.audio_transcript.delta": (E.ResponseTextDelta, ["audio_transcript_delta"], []),
    "response.output_audio_transcript.done": (E.ResponseTranscriptDone, [], []),
    "response.audio_transcript.done": (E.ResponseTranscriptDone, [], []),
    "response.output_text.delta": (E.ResponseTextDelta, ["output_text_delta"], []),
    "response.text.delta": (E.ResponseTextDelta, ["output_text_delta"], []),
    "response.output_text.done": (E.ResponseTextDone, [], []),
    "response.text.done": (E.ResponseTextDone, [], []),
    "response.function_call_arguments.delta": (E.ResponseTextDelta, [], []),
    "response.function_call_arguments.done": (E.FunctionCallArgumentsDone, [], []),
    "response.mcp_call_arguments.delta": (E.ResponseTextDelta, [], []),
    "response.mcp_call_arguments.done": (E.McpCallArgumentsDone, [], []),
    # The JS transport fetches an MCP call and a tool list under way: so do we.
    "response.mcp_call.in_progress": (E.McpCallEvent, [], ["conversation.item.retrieve"]),
    "response.mcp_call.completed": (E.McpCallEvent, [], []),
    "response.mcp_call.failed": (E.McpCallEvent, [], []),
    "mcp_list_tools.in_progress": (E.McpListToolsEvent, [], ["conversation.item.retrieve"]),
    "mcp_list_tools.completed": (E.McpListToolsEvent, [], []),
    "mcp_list_tools.failed": (E.McpListToolsEvent, [], []),
}


def sdk_types(union: Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def test_the_table_and_the_samples_cover_every_type_of_the_official_sdk() -> None:
    assert len(sdk_types(GAServerEvent)) == 46
    assert sdk_types(GAServerEvent) | sdk_types(BetaServerEvent) == set(TABLE) == E.KNOWN_SERVER_EVENT_TYPES
    for dialect, union in SDK_UNION.items():
        assert set(SAMPLES[dialect]) == sdk_types(union)


ROWS = [(dialect, name) for dialect in ("ga", "beta") for name in sorted(SAMPLES[dialect])]


@pytest.mark.parametrize("dialect, name", ROWS, ids=[f"{d}:{n}" for d, n in ROWS])
def test_each_event_type_is_typed_derives_its_events_and_answers(dialect: str, name: str) -> None:
    sample = SAMPLES[dialect][name]
    TypeAdapter(SDK_UNION[dialect]).validate_python(sample)  # a real shape, by the official models
    model, derived, answers = TABLE[name]
    core = RealtimeProtocol(dialect, model="m")
    core.connection_opening()
    core.connection_opened({"turn_detection": {"type": "server_vad", "interrupt_response": True}})
    audio = get_dialect(dialect).wire.audio_delta
    for earlier in ("response.created", audio):
        core.receive(json.dumps(SAMPLES[dialect][earlier]), now_ms=0.0)
    core.data_to_send()
    core.events_received()
    event = core.receive(json.dumps(sample), now_ms=50.0)
    barge_in = core.barge_in_expected()
    if barge_in is not None:  # the core's hint, acted on as the I/O layer does
        core.interrupt(50.0, cancel=barge_in.cancel_response)
    assert type(event) is model
    assert event.model_extra is not None and event.type == name
    received = core.events_received()
    assert [n for n, _ in received] == ["*", name, *derived]
    assert all(isinstance(p, E.ErrorEvent) for n, p in received if n == "error")
    assert [json.loads(f)["type"] for f in core.data_to_send()] == answers


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_every_field_the_server_sent_is_kept_in_the_typed_event(dialect: str) -> None:
    for name, sample in SAMPLES[dialect].items():
        event = E.parse_server_event(json.dumps({**sample, "future_field": [1]}))
        assert event is not None and event.model_extra is not None and event.model_extra["future_field"] == [1], name
        dumped = event.model_dump(mode="json", exclude_unset=True)
        if name.endswith("audio.delta"):
            continue  # the delta is decoded to bytes
        for key, value in sample.items():
            assert dumped[key] == value, (name, key)


# Items -------------------------------------------------------------------------------------------
ITEM_CLASSES = {
    "message": E.MessageItem, "function_call": E.FunctionCallItem, "function_call_output": E.FunctionCallOutputItem,
    "mcp_list_tools": E.McpListToolsItem, "mcp_approval_request": E.McpApprovalRequestItem,
    "mcp_approval_response": E.McpApprovalResponseItem, "mcp_call": E.McpCallItem,
}


@pytest.mark.parametrize("kind", sorted(ITEMS))
def test_items_are_typed_by_their_type_and_keep_their_fields(kind: str) -> None:
    for name in ("conversation.item.added", "conversation.item.done", "response.output_item.done"):
        frame = {"type": name, "response_id": "r", "output_index": 0, "item": {**ITEMS[kind], "x_new": 1}}
        event = E.parse_server_event(json.dumps(frame))
        assert isinstance(event, (E.ConversationItemEvent, E.OutputItemEvent))
        assert type(event.item) is ITEM_CLASSES[kind] and event.item["x_new"] == 1 and event.item.get("id") == ITEMS[kind]["id"]
        assert event.item.to_dict() == {**ITEMS[kind], "x_new": 1}


def test_an_item_of_a_new_type_is_generic_not_malformed() -> None:
    event = E.parse_server_event('{"type": "conversation.item.done", "item": {"type": "web_search_call", "id": "w", "q": 1}}')
    assert isinstance(event, E.ConversationItemEvent) and type(event.item) is E.GenericItem and event.item["q"] == 1


def test_responses_and_sessions_are_typed() -> None:
    done = E.parse_server_event(json.dumps(SAMPLES["ga"]["response.done"]))
    assert isinstance(done, E.ResponseEvent) and isinstance(done.response, E.Response)
    assert done.response.usage is not None and done.response.usage.output_tokens == 150
    assert type(done.response.output[0]) is E.MessageItem and done.response["status"] == "completed"
    created = E.parse_server_event(json.dumps(SAMPLES["beta"]["session.created"]))
    assert isinstance(created, E.SessionEvent) and created.session.model == "gpt-4o-realtime-preview"
    assert created.session["output_audio_format"] == "pcm16"


# Derived events, what they carry ---------------------------------------------------------------------
def opened(dialect: str = "ga") -> RealtimeProtocol:
    core = RealtimeProtocol(dialect, model="m")
    core.connection_opening()
    core.connection_opened(None)
    core.data_to_send()
    core.events_received()
    return core


def derived(core: RealtimeProtocol, frame: dict[str, Any]) -> list[tuple[str, Any]]:
    core.receive(json.dumps(frame))
    return [(n, p) for n, p in core.events_received() if n != "*" and n != frame["type"]]


def test_user_transcription_speech_commit_timeout_and_rate_limits_carry_their_fields() -> None:
    core, s = opened(), SAMPLES["ga"]
    assert derived(core, s["conversation.item.input_audio_transcription.delta"]) == [
        ("input_audio_transcription_delta", E.InputTranscriptDelta("item_u1", 0, "Hi"))]
    assert derived(core, s["conversation.item.input_audio_transcription.completed"]) == [
        ("input_audio_transcription_completed", E.InputTranscriptCompleted("item_u1", 0, "Hi."))]
    ((name, failed),) = derived(core, s["conversation.item.input_audio_transcription.failed"])
    assert failed == E.InputTranscriptFailed("item_u1", 0) and failed.error["code"] == "audio_unintelligible"
    assert derived(core, s["input_audio_buffer.speech_stopped"]) == [("speech_stopped", E.InputSpeechStopped("item_u1", 2000))]
    assert derived(core, s["input_audio_buffer.committed"]) == [("audio_committed", E.AudioCommitted("item_u1", "item_a0"))]
    assert derived(core, s["input_audio_buffer.timeout_triggered"]) == [
        ("input_audio_timeout", E.InputAudioTimeout("item_u2", 13216, 19232))]
    ((name, limits),) = derived(core, s["rate_limits.updated"])
    assert name == "rate_limits_updated" and [r["name"] for r in limits.rate_limits] == ["requests", "tokens"]


def test_mcp_items_become_item_updates_and_the_js_transports_mcp_events() -> None:
    core = opened()
    listed = derived(core, {"type": "conversation.item.done", "item": ITEMS["mcp_list_tools"]})
    assert listed == [("mcp_tools_listed", E.McpToolsListed("docs", tuple(ITEMS["mcp_list_tools"]["tools"]), "item_m1"))]
    assert derived(core, {"type": "conversation.item.added", "item": ITEMS["mcp_list_tools"]}) == []
    request = derived(core, {"type": "conversation.item.done", "item": ITEMS["mcp_approval_request"]})
    assert [n for n, _ in request] == ["item_update", "mcp_approval_request"]
    assert request[1][1] == E.McpApprovalRequest("item_m2", "docs", "search", '{"q": "realtime"}')
    call = derived(core, {"type": "conversation.item.done", "item": ITEMS["mcp_call"]})
    assert [n for n, _ in call] == ["item_update", "mcp_tool_call_completed"]
    assert call[0][1].status == "completed" and call[1][1].output == "3 results"
    added = derived(core, {"type": "response.output_item.added", "response_id": "r", "output_index": 1, "item": ITEMS["mcp_call"]})
    assert [(n, p.type, p.status) for n, p in added] == [("item_update", "mcp_call", "in_progress")]
    for kind in ("function_call_output", "mcp_approval_response"):
        ((name, update),) = derived(core, {"type": "conversation.item.created", "item": ITEMS[kind]})
        assert name == "item_update" and update.type == kind and update.raw == ITEMS[kind]
