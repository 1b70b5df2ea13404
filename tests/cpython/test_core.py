"""The sans-I/O protocol core, driven with plain strings; each behaviour for both dialects."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pyodide_realtime._core import CUT_STATUS, MAX_AUDIO_APPEND_BYTES, BargeIn, PlaybackPort, RealtimeProtocol
from pyodide_realtime.dialects import get_dialect
from pyodide_realtime.errors import ConfigurationError, InvalidStateError, ServerError
from pyodide_realtime.events import (
    AudioInterrupted,
    ConnectionChange,
    ErrorEvent,
    FunctionCall,
    GenericServerEvent,
    ItemUpdate,
    ResponseCut,
    TransportAudio,
    TurnDone,
    Usage,
)

DIALECTS = ["ga", "beta"]
PCM16_100MS = 4800  # bytes of 24 kHz PCM16 in 100 ms
G711_100MS = 800


#: What each dialect calls the server events these tests send: its spec's names.
WIRE = {name: get_dialect(name).wire for name in DIALECTS}


# Helpers -------------------------------------------------------------------------------------------
def ev(**fields: Any) -> str:
    return json.dumps(fields)


def opened(dialect: str, config: dict[str, Any] | None = None, model: str = "test-model") -> RealtimeProtocol:
    core = RealtimeProtocol(dialect, model=model)
    core.connection_opening()
    core.connection_opened(config)
    core.data_to_send()
    core.events_received()
    return core


def sent(core: RealtimeProtocol) -> list[dict[str, Any]]:
    return [json.loads(text) for text in core.data_to_send()]


def sent_types(core: RealtimeProtocol) -> list[str]:
    return [e["type"] for e in sent(core)]


def names(core: RealtimeProtocol) -> list[str]:
    return [name for name, _ in core.events_received()]


def payloads(core: RealtimeProtocol, name: str) -> list[Any]:
    return [payload for n, payload in core.events_received() if n == name]


def audio_delta(dialect: str, nbytes: int = PCM16_100MS, item: str = "item_1", ci: int = 0, resp: str = "resp_1") -> str:
    data = bytes(i % 251 for i in range(nbytes))
    return ev(type=WIRE[dialect].audio_delta, event_id="e", response_id=resp, item_id=item, output_index=0,
              content_index=ci, delta=base64.b64encode(data).decode())


def audio_done(dialect: str, item: str = "item_1", ci: int = 0, resp: str = "resp_1") -> str:
    return ev(type=WIRE[dialect].audio_done, response_id=resp, item_id=item, output_index=0, content_index=ci)


def response_created(resp: str = "resp_1") -> str:
    return ev(type="response.created", response={"id": resp, "status": "in_progress"})


def response_done(resp: str = "resp_1", usage: dict[str, Any] | None = None, status: str = "completed") -> str:
    return ev(type="response.done", response={"id": resp, "status": status, "output": [{"id": "item_1"}], "usage": usage})


def speaking(dialect: str, core: RealtimeProtocol, *, received_ms: int = 200, t0: float = 1000.0, item: str = "item_1") -> None:
    """A running response whose first audio arrived at t0, ``received_ms`` of it so far."""
    core.receive(response_created())
    for i in range(received_ms // 100):
        core.receive(audio_delta(dialect, item=item), now_ms=t0 + i)
    core.data_to_send()
    core.events_received()


# Connection milestones and the session --------------------------------------------------------------
@pytest.mark.parametrize(
    "dialect, expected",
    [
        (
            "ga",
            {
                "type": "realtime",
                "model": "test-model",
                "output_modalities": ["audio"],
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "noise_reduction": None,
                        "turn_detection": {"type": "server_vad", "interrupt_response": False},
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
                },
            },
        ),
        (
            "beta",
            {
                "model": "test-model",
                "modalities": ["text", "audio"],
                "voice": "marin",
                "speed": 1.0,
                "instructions": "Be brief.",
                "input_audio_format": "pcm16",
                "output_audio_format": "g711_ulaw",
                "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
                "input_audio_noise_reduction": None,
                "turn_detection": {"type": "server_vad", "interrupt_response": False},
            },
        ),
    ],
)
def test_open_sends_the_merged_session_with_the_model(dialect: str, expected: dict[str, Any]) -> None:
    core = RealtimeProtocol(dialect, model="test-model")
    core.connection_opening()
    assert names(core) == ["connection_change"]
    core.connection_opened(
        {
            "instructions": "Be brief.",
            "voice": "marin",
            "output_audio_format": "g711_ulaw",
            "turn_detection": {"type": "server_vad", "interrupt_response": False},
            "tracing": None,
        }
    )
    (update,) = sent(core)
    assert update["type"] == "session.update"
    assert update["session"] == expected  # tracing is not in it: it goes after session.created
    assert [(n, p) for n, p in core.events_received()] == [
        ("connection_change", ConnectionChange("connected")),
        ("connected", ConnectionChange("connected")),
    ]
    assert core.status == "connected"
    assert core.output_audio_format == "g711_ulaw"


@pytest.mark.parametrize(
    "dialect, configured, expected",
    [
        ("ga", {}, {"type": "realtime", "tracing": "auto"}),
        ("ga", {"tracing": None}, {"type": "realtime", "tracing": None}),
        ("ga", {"tracing": {"workflow_name": "w"}}, {"type": "realtime", "tracing": {"workflow_name": "w"}}),
        ("beta", {}, {"tracing": "auto"}),
        ("beta", {"tracing": None}, {"tracing": None}),
        ("beta", {"tracing": "auto"}, {"tracing": "auto"}),
    ],
)
def test_tracing_is_set_after_session_created(dialect: str, configured: dict[str, Any], expected: dict[str, Any]) -> None:
    core = opened(dialect, configured)
    core.receive(ev(type="session.created", session={"id": "sess_1"}))
    assert sent(core) == [{"type": "session.update", "session": expected}]


def test_a_tracing_config_the_server_already_has_differently_is_not_resent() -> None:
    core = opened("ga", {"tracing": {"workflow_name": "mine"}})
    core.receive(ev(type="session.created", session={"tracing": {"workflow_name": "theirs"}}))
    assert sent(core) == []


def voice_of(dialect: str, session: dict[str, Any]) -> Any:
    return session.get("audio", {}).get("output", {}).get("voice") if dialect == "ga" else session.get("voice")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_update_session_config_merges_with_what_was_set_before_and_resends_the_voice_only_when_named(dialect: str) -> None:
    core = opened(dialect, {"voice": "marin", "instructions": "one", "speed": 1.5})
    core.update_session_config({"instructions": "two", "max_response_output_tokens": 0})
    (update,) = sent(core)
    session = update["session"]
    # Once the model has spoken the server refuses any voice in session.update (cannot_update_voice).
    assert voice_of(dialect, session) is None
    assert session["instructions"] == "two"
    assert session["max_output_tokens" if dialect == "ga" else "max_response_output_tokens"] == 0
    assert (session["audio"]["output"]["speed"] if dialect == "ga" else session["speed"]) == 1.5
    assert core.session_config.voice == "marin"
    core.update_session_config({"voice": "cedar"})
    assert voice_of(dialect, sent(core)[0]["session"]) == "cedar"
    core.update_session_config({"instructions": "three"})
    assert voice_of(dialect, sent(core)[0]["session"]) is None
    assert core.session_config.voice == "cedar"


def test_temperature_is_sent_in_beta_and_refused_in_ga_without_changing_anything() -> None:
    beta = opened("beta")
    beta.update_session_config({"temperature": 0})
    assert sent(beta)[0]["session"]["temperature"] == 0
    core = opened("ga", {"instructions": "one"})
    with pytest.raises(ConfigurationError, match="temperature is a beta-only"):
        core.update_session_config({"temperature": 0.6, "instructions": "two"})
    assert core.session_config.instructions == "one" and core.session_config.temperature is None
    assert core.data_to_send() == []
    fresh = RealtimeProtocol("ga")
    fresh.connection_opening()
    fresh.events_received()
    with pytest.raises(ConfigurationError, match="temperature"):
        fresh.connection_opened({"temperature": 0.6})
    assert fresh.status == "connecting" and fresh.data_to_send() == [] and fresh.events_received() == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_close_resets_and_emits_and_stale_frames_are_ignored(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core)
    core.connection_closed()
    # The response it cut is reported (#9.6), so a turn_done loop does not wait for its response.done.
    events = core.events_received()
    assert [n for n, _ in events] == ["response_cut", "turn_done", "connection_change", "disconnected"]
    assert events[0][1] == ResponseCut("resp_1") and events[1][1] == TurnDone("resp_1", CUT_STATUS, (), Usage())
    assert core.status == "disconnected" and core.current_item is None and not core.response_running
    assert core.receive(audio_delta(dialect)) is None
    assert core.events_received() == []
    core.connection_closed()  # idempotent
    assert core.events_received() == []


# Misuse ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send_message("hi"),
        lambda c: c.request_response(),
        lambda c: c.update_session_config({"voice": "x"}),
        lambda c: c.send_event({"type": "response.cancel"}),
        lambda c: c.send_function_call_output({"call_id": "c"}, "out"),
        lambda c: c.reset_history([], []),
        lambda c: c.add_image("data:image/png;base64,AAAA"),
    ],
)
def test_calls_that_need_a_connection_raise_naming_call_and_state(call: Any) -> None:
    core = RealtimeProtocol("ga")
    with pytest.raises(InvalidStateError, match="disconnected") as info:
        call(core)
    assert "()" in str(info.value) and "connect()" in str(info.value)
    assert core.data_to_send() == [] and core.events_received() == []


def test_opening_twice_is_a_state_error() -> None:
    core = opened("ga")
    with pytest.raises(InvalidStateError, match=r"connection_opening\(\).*connected"):
        core.connection_opening()


@pytest.mark.parametrize("bad", [{}, {"type": 3}, "response.create", None])
def test_send_event_needs_a_dict_with_a_type(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="'type'"):
        opened("ga").send_event(bad)


def test_send_event_refuses_what_json_cannot_carry() -> None:
    core = opened("ga")
    with pytest.raises(ConfigurationError, match="JSON"):
        core.send_event({"type": "x", "data": object()})


def test_calls_json_cannot_carry_change_no_state() -> None:
    # errors.py: a user error changes nothing. Each of these used to leave the core stuck or half done.
    core = opened("ga", {"instructions": "one"})
    with pytest.raises(ConfigurationError, match="JSON"):
        core.request_response({"metadata": {"x": {1}}})
    core.request_response()  # not held behind a create that was never sent
    assert sent_types(core) == ["response.create"]
    core.receive(response_created())
    core.events_received()
    with pytest.raises(ConfigurationError, match="JSON"):
        core.request_response({"metadata": {"x": {1}}})  # held: refused now, not when released
    assert core.held_response_creates == 0
    with pytest.raises(ConfigurationError, match="JSON"):
        core.send_event({"type": "response.cancel", "response_id": {1}})
    assert core.cancel_response() is True  # the cancel flag was not set by the refused one
    with pytest.raises(ConfigurationError, match="JSON"):
        core.update_session_config({"instructions": "two", "tools": [{"type": "function", "x": {1}}]})
    assert core.session_config.instructions == "one" and core.session_config.tools is None
    with pytest.raises(ConfigurationError, match="JSON"):
        core.reset_history([{"item_id": "gone"}], [{"item_id": "new", "role": "user", "content": [{"x": {1}}]}])
    with pytest.raises(ConfigurationError, match="JSON"):
        core.send_function_call_output({"call_id": "c"}, {1})
    assert sent_types(core) == ["response.cancel"] and core.events_received() == []


# What is emitted for server events --------------------------------------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("frame", ["not json", "[1, 2]", '{"no_type": 1}', '{"type": 5}', ""])
def test_malformed_frames_are_ignored(dialect: str, frame: str) -> None:
    core = opened(dialect)
    assert core.receive(frame) is None
    assert core.events_received() == [] and core.data_to_send() == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_event_reaches_star_and_its_own_name(dialect: str) -> None:
    core = opened(dialect)
    core.receive(ev(type="some.future_event", payload={"x": 1}))
    core.receive(ev(type="input_audio_buffer.committed", item_id="i"))
    emitted = core.events_received()
    assert [n for n, _ in emitted] == ["*", "some.future_event", "*", "input_audio_buffer.committed", "audio_committed"]
    future = emitted[0][1]
    assert isinstance(future, GenericServerEvent) and future.model_extra == {"payload": {"x": 1}}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_server_errors_are_emitted_as_error(dialect: str) -> None:
    core = opened(dialect)
    core.receive(ev(type="error", event_id="e1", error={"type": "invalid_request_error", "code": "bad", "message": "m"}))
    emitted = core.events_received()
    assert [n for n, _ in emitted] == ["*", "error"]
    error = emitted[1][1]
    assert isinstance(error, ErrorEvent) and error.error.error.code == "bad"
    exc = error.exception
    assert isinstance(exc, ServerError) and str(exc) == "m" and exc.code == "bad" and exc.event_id is None


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "fmt, nbytes, expected_ms", [("pcm16", PCM16_100MS, 100.0), ("g711_ulaw", G711_100MS, 100.0), ("g711_alaw", 80, 10.0)]
)
def test_audio_deltas_are_emitted_decoded_and_measured(dialect: str, fmt: str, nbytes: int, expected_ms: float) -> None:
    core = opened(dialect, {"output_audio_format": fmt})
    core.receive(audio_delta(dialect, nbytes=nbytes, item="item_7", ci=1, resp="resp_9"), now_ms=500.0)
    emitted = core.events_received()
    assert [n for n, _ in emitted] == ["*", WIRE[dialect].audio_delta, "audio"]
    audio = emitted[2][1]
    assert isinstance(audio, TransportAudio)
    assert audio == TransportAudio(bytes(i % 251 for i in range(nbytes)), "resp_9", "item_7", 1, fmt, expected_ms)
    assert core.audio_received_ms == expected_ms
    assert core.current_item == ("item_7", 1)
    assert core.first_audio_ms == 500.0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_clock_given_to_receive_is_read_only_when_a_new_items_audio_starts(dialect: str) -> None:
    core = opened(dialect)
    reads: list[float] = []

    def clock() -> float:
        reads.append(1000.0 + 10 * len(reads))
        return reads[-1]

    core.receive(response_created(), now_ms=clock)
    for _ in range(3):
        core.receive(audio_delta(dialect, item="item_1"), now_ms=clock)
    core.receive(ev(type=WIRE[dialect].transcript_delta, response_id="resp_1", item_id="item_1", delta="hi"), now_ms=clock)
    assert reads == [1000.0]  # the first audio of item_1 only
    assert core.first_audio_ms == 1000.0 and core.audio_received_ms == 300.0
    core.receive(audio_done(dialect, item="item_1"), now_ms=clock)
    core.receive(audio_delta(dialect, item="item_2"), now_ms=clock)
    assert reads == [1000.0, 1010.0]  # item_2's first audio: it was read, and what it said is used
    assert core.current_item == ("item_2", 0) and core.audio_received_ms == 400.0


@pytest.mark.parametrize(
    "dialect, session",
    [("ga", {"audio": {"output": {"format": {"type": "audio/pcma"}}}}), ("beta", {"output_audio_format": "g711_alaw"})],
)
def test_the_servers_session_decides_the_audio_format(dialect: str, session: dict[str, Any]) -> None:
    core = opened(dialect)  # configured pcm16 by default
    core.receive(ev(type="session.updated", session=session))
    core.receive(audio_delta(dialect, nbytes=G711_100MS))
    assert core.output_audio_format == "g711_alaw"
    assert core.audio_received_ms == 100.0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_deltas_and_done_events_map_to_transport_events(dialect: str) -> None:
    spec = WIRE[dialect]
    core = opened(dialect)
    core.receive(ev(type=spec.transcript_delta, response_id="r", item_id="i", delta="hel"))
    core.receive(ev(type=spec.text_delta, response_id="r", item_id="i", delta="lo"))
    core.receive(audio_done(dialect, item="i", resp="r"))
    emitted = [(n, p) for n, p in core.events_received() if n not in ("*",) and not n.startswith("response.")]
    assert [n for n, _ in emitted] == ["audio_transcript_delta", "output_text_delta", "audio_done"]
    assert emitted[0][1].delta == "hel" and emitted[0][1].item_id == "i" and emitted[0][1].response_id == "r"
    assert emitted[1][1].delta == "lo"
    assert emitted[2][1].item_id == "i"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_other_dialects_names_do_not_drive_the_audio_path_twice(dialect: str) -> None:
    # The beta name sent to a GA client (or the reverse) is still audio: both names are modelled.
    other = WIRE["beta" if dialect == "ga" else "ga"]
    core = opened(dialect)
    core.receive(ev(type=other.audio_delta, response_id="r", item_id="i", delta=base64.b64encode(b"\0\0").decode()))
    assert names(core).count("audio") == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_items_functions_and_deletions(dialect: str) -> None:
    core = opened(dialect)
    message = {"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    added = get_dialect(dialect).wire.item_created
    core.receive(ev(type=added, previous_item_id="msg_0", item=message))
    core.receive(ev(type="conversation.item.retrieved", item={**message, "status": "completed"}))
    core.receive(ev(type="response.output_item.done", response_id="r",
                    item={"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                          "name": "weather", "arguments": '{"city":"Oslo"}'}))
    core.receive(ev(type="conversation.item.deleted", item_id="msg_1"))
    emitted = [(n, p) for n, p in core.events_received() if n in ("item_update", "function_call", "item_deleted")]
    assert [n for n, _ in emitted] == ["item_update", "item_update", "item_update", "function_call", "item_deleted"]
    first = emitted[0][1]
    assert isinstance(first, ItemUpdate)
    assert (first.item_id, first.role, first.previous_item_id) == ("msg_1", "user", "msg_0")
    assert first.status == ("in_progress" if dialect == "ga" else "completed")
    assert first.content == ({"type": "input_text", "text": "hi"},)
    assert emitted[1][1].status == "completed" and emitted[1][1].previous_item_id is None
    assert emitted[2][1].type == "function_call" and emitted[2][1].status == "in_progress"
    assert emitted[3][1] == FunctionCall(id="fc_1", call_id="call_1", name="weather", arguments='{"city":"Oslo"}', response_id="r")
    assert emitted[4][1].item_id == "msg_1"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("event", ["conversation.item.truncated", "conversation.item.input_audio_transcription.completed"])
def test_changed_items_are_retrieved(dialect: str, event: str) -> None:
    core = opened(dialect)
    core.receive(ev(type=event, item_id="item_3", content_index=0, audio_end_ms=10, transcript="t"))
    assert sent(core) == [{"type": "conversation.item.retrieve", "item_id": "item_3"}]


@pytest.mark.parametrize(
    "dialect, usage, details",
    [
        ("ga", {"input_tokens": 5, "output_tokens": 7, "input_token_details": {"audio_tokens": 3}}, {"audio_tokens": 3}),
        ("beta", {"input_tokens": 5, "output_tokens": 7, "input_tokens_details": {"audio_tokens": 3}}, {"audio_tokens": 3}),
        ("ga", None, {}),
    ],
)
def test_turns_and_usage(dialect: str, usage: dict[str, Any] | None, details: dict[str, Any]) -> None:
    core = opened(dialect)
    core.receive(response_created("resp_5"))
    started = payloads(core, "turn_started")
    assert started[0].response_id == "resp_5" and started[0].provider_data["type"] == "response.created"
    core.receive(response_done("resp_5", usage))
    emitted = dict(core.events_received()[2:])
    expected = Usage(5, 7, 12, details) if usage else Usage()
    assert emitted["usage_update"] == expected and emitted["usage_update"].input_tokens_details == details
    done = emitted["turn_done"]
    assert isinstance(done, TurnDone) and done.response_id == "resp_5" and done.status == "completed"
    assert done.output == ({"id": "item_1"},)


# Interruption -------------------------------------------------------------------------------------------
def truncates(events: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(e["item_id"], e["content_index"], e["audio_end_ms"]) for e in events if e["type"] == "conversation.item.truncate"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "now_ms, heard_ms, expected_end",
    [
        (1050.7, None, 50),  # wall clock since the first audio, floored to an integer
        (1000.0 + 199.99, None, 199),
        (9000.0, None, 200),  # clamped to the audio received
        (900.0, None, 0),  # a clock before the first audio: clamped up to 0
        (1150.0, 80.9, 80),  # what the player says was heard wins over the clock
        (1150.0, 10_000.0, 200),
        (1150.0, lambda item, ci: 123.4 if (item, ci) == ("item_1", 0) else None, 123),
        (1150.0, lambda item, ci: None, 150),  # the player does not know: fall back to the clock
    ],
)
def test_interrupt_truncates_where_the_user_stopped_hearing(dialect: str, now_ms: float, heard_ms: Any, expected_end: int) -> None:
    core = opened(dialect)
    speaking(dialect, core, received_ms=200, t0=1000.0)
    assert core.interrupt(now_ms, heard_ms) is True
    out = sent(core)
    assert [e["type"] for e in out] == ["response.cancel", "conversation.item.truncate"]
    assert truncates(out) == [("item_1", 0, expected_end)]
    assert isinstance(out[1]["audio_end_ms"], int)
    emitted = core.events_received()
    assert emitted == [("audio_interrupted", AudioInterrupted((("item_1", 0, expected_end),)))]
    assert core.current_item is None and core.first_audio_ms is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_audio_that_finished_playing_is_never_truncated(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core, received_ms=200, t0=1000.0)
    core.receive(audio_done(dialect))
    core.receive(response_done())
    core.data_to_send(), core.events_received()
    assert core.interrupt(1300.0) is False  # 300 ms after the first audio: all 200 ms played
    assert sent(core) == [] and core.events_received() == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_audio_still_playing_after_response_done_is_truncated_without_a_cancel(dialect: str) -> None:
    # Audio arrives faster than real time: the response is done while the speaker still talks.
    core = opened(dialect)
    speaking(dialect, core, received_ms=500, t0=1000.0)
    core.receive(audio_done(dialect))
    core.receive(response_done())
    core.data_to_send(), core.events_received()
    assert core.interrupt(1120.0) is True
    out = sent(core)
    assert [e["type"] for e in out] == ["conversation.item.truncate"]  # nothing to cancel
    assert truncates(out) == [("item_1", 0, 120)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_player_that_heard_everything_means_no_truncate(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core, received_ms=300, t0=1000.0)
    core.receive(audio_done(dialect))
    core.receive(response_done())
    core.data_to_send(), core.events_received()
    assert core.interrupt(1001.0, lambda item, ci: 300.0) is False
    assert sent(core) == []


def interrupt_response_session(dialect: str, value: bool) -> dict[str, Any]:
    detection = {"type": "server_vad", "interrupt_response": value}
    return {"audio": {"input": {"turn_detection": detection}}} if dialect == "ga" else {"turn_detection": detection}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "configured, reported, expect_cancel",
    [
        (None, None, True),  # unknown: the client cancels, as the seed does
        (True, None, False),  # the server cancels by itself: a client cancel would fail
        (False, None, True),
        (None, True, False),  # what the server reports wins
        (True, False, True),
    ],
)
def test_speech_started_interrupts_and_cancels_only_when_the_server_will_not(
    dialect: str, configured: bool | None, reported: bool | None, expect_cancel: bool
) -> None:
    config = {} if configured is None else {"turn_detection": {"type": "server_vad", "interrupt_response": configured}}
    core = opened(dialect, config)
    if reported is not None:
        core.receive(ev(type="session.updated", session=interrupt_response_session(dialect, reported)))
    speaking(dialect, core, received_ms=200, t0=1000.0)
    core.receive(ev(type="input_audio_buffer.speech_started", audio_start_ms=10, item_id="user_1"), now_ms=1075.0)
    assert sent(core) == []  # the core decides and hints; the I/O layer interrupts once listeners ran
    hint = core.barge_in_expected()
    assert hint == BargeIn(cancel_response=expect_cancel)
    assert core.barge_in_expected() is None  # handed over once
    core.interrupt(1075.0, cancel=hint.cancel_response)
    expected = (["response.cancel"] if expect_cancel else []) + ["conversation.item.truncate"]
    out = sent(core)
    assert [e["type"] for e in out] == expected
    assert truncates(out) == [("item_1", 0, 75)]
    assert "audio_interrupted" in names(core)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_speech_started_with_nothing_playing_sends_nothing(dialect: str) -> None:
    core = opened(dialect)
    core.receive(ev(type="input_audio_buffer.speech_started"), now_ms=5.0)
    assert sent(core) == []
    assert "audio_interrupted" not in names(core)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_barge_in_measures_through_the_attached_playback_port(dialect: str) -> None:
    core = opened(dialect)
    core.attach_playback(PlaybackPort(lambda item, ci: 42.0))
    speaking(dialect, core, received_ms=200, t0=1000.0)
    core.receive(ev(type="input_audio_buffer.speech_started"), now_ms=1199.0)
    hint = core.barge_in_expected()
    assert hint is not None
    core.interrupt(1199.0, cancel=hint.cancel_response)
    assert truncates(sent(core)) == [("item_1", 0, 42)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_speech_started_only_hints_and_a_close_drops_the_hint(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core)
    core.receive(ev(type="input_audio_buffer.speech_started"), now_ms=1050.0)
    assert sent(core) == []
    assert core.current_item == ("item_1", 0)
    core.connection_closed()
    assert core.barge_in_expected() is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_state_is_per_item_and_a_new_item_restarts_the_clock(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core, received_ms=200, t0=1000.0)
    core.receive(audio_done(dialect))
    core.receive(response_done())
    # A second reply, long after the first finished playing.
    core.receive(response_created("resp_2"))
    core.receive(audio_delta(dialect, item="item_2", resp="resp_2"), now_ms=5000.0)
    assert core.current_item == ("item_2", 0) and core.first_audio_ms == 5000.0 and core.audio_received_ms == 100.0
    core.data_to_send(), core.events_received()
    core.interrupt(5030.0)
    assert truncates(sent(core)) == [("item_2", 0, 30)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_queued_items_are_truncated_at_what_was_heard_of_each(dialect: str) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.receive(audio_delta(dialect, nbytes=3 * PCM16_100MS, item="a"), now_ms=1000.0)
    core.receive(audio_done(dialect, item="a"))
    core.receive(audio_delta(dialect, nbytes=2 * PCM16_100MS, item="b"), now_ms=1010.0)
    core.data_to_send(), core.events_received()
    # 350 ms in: all of a (300 ms) played, 50 ms of b.
    core.interrupt(1350.0)
    assert truncates(sent(core)) == [("b", 0, 50)]
    # The same with b not reached yet: a is cut, b is cut at 0 (it was never heard).
    core.receive(audio_delta(dialect, nbytes=3 * PCM16_100MS, item="c"), now_ms=2000.0)
    core.receive(audio_delta(dialect, nbytes=PCM16_100MS, item="d"), now_ms=2001.0)
    core.data_to_send(), core.events_received()
    core.interrupt(2100.0)
    assert truncates(sent(core)) == [("c", 0, 100), ("d", 0, 0)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_player_not_the_wall_clock_decides_when_an_item_finished_playing(dialect: str) -> None:
    # Playback lags arrival: by the wall clock item a (300 ms, arrived at t=1000) ended at 1300, but
    # the player has rendered only 100 ms of it when b starts arriving at 1400.
    heard = {("a", 0): 100.0, ("b", 0): 0.0}
    player = lambda item, ci: heard.get((item, ci))  # noqa: E731
    core = opened(dialect)
    core.receive(response_created())
    core.receive(audio_delta(dialect, nbytes=3 * PCM16_100MS, item="a"), now_ms=1000.0, heard_ms=player)
    core.receive(audio_done(dialect, item="a"))
    core.receive(audio_delta(dialect, item="b"), now_ms=1400.0, heard_ms=player)
    core.data_to_send(), core.events_received()
    core.interrupt(1450.0, player)
    assert truncates(sent(core)) == [("a", 0, 100), ("b", 0, 0)]
    # Once the player has heard all of a, it is forgotten when the next item starts.
    core.receive(response_done(status="cancelled"))
    core.receive(response_created("resp_2"))
    heard.update({("c", 0): 300.0, ("d", 0): 0.0})
    core.receive(audio_delta(dialect, nbytes=3 * PCM16_100MS, item="c", resp="resp_2"), now_ms=2000.0, heard_ms=player)
    core.receive(audio_done(dialect, item="c", resp="resp_2"))
    core.receive(audio_delta(dialect, item="d", resp="resp_2"), now_ms=2010.0, heard_ms=player)
    assert core.current_item == ("d", 0) and core.audio_received_ms == 100.0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_late_audio_of_a_truncated_item_is_dropped(dialect: str) -> None:
    core = opened(dialect)
    speaking(dialect, core)
    core.interrupt(1050.0)
    core.data_to_send(), core.events_received()
    core.receive(audio_delta(dialect), now_ms=1060.0)  # in flight before the server saw the cancel
    assert "audio" not in names(core)
    assert core.current_item is None
    core.receive(response_done(status="cancelled"))
    core.receive(response_created("resp_2"))
    core.receive(audio_delta(dialect, item="item_9", resp="resp_2"), now_ms=2000.0)
    assert "audio" in names(core)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_cancel_only_while_a_response_runs_and_only_once(dialect: str) -> None:
    core = opened(dialect)
    assert core.cancel_response() is False
    core.receive(response_created())
    assert core.cancel_response() is True
    assert core.cancel_response() is False
    core.send_event({"type": "response.cancel"})  # a manual second cancel is swallowed too
    assert sent_types(core) == ["response.cancel"]
    core.receive(response_done(status="cancelled"))
    core.receive(response_created("resp_2"))
    core.interrupt(0.0)
    assert sent_types(core) == ["response.cancel"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_cancel_that_crossed_the_end_of_its_response_is_no_error(dialect: str) -> None:
    # Interrupt pressed as the server sent the last of the reply: the server answers our cancel with
    # response_cancel_not_active. That is no fault to report (the demo showed a red banner for it).
    core = opened(dialect)
    core.receive(response_created())
    core.data_to_send(), core.events_received()
    assert core.cancel_response() is True
    (cancel,) = sent(core)
    assert cancel["type"] == "response.cancel" and cancel["response_id"] == "resp_1"  # never a newer response
    core.receive(response_done(status="completed"))
    core.receive(ev(type="error", event_id="evt_9", error={"type": "invalid_request_error", "code": "response_cancel_not_active",
                                                            "message": "no active response", "event_id": cancel["event_id"]}))
    assert "error" not in names(core)
    # The app's own cancel still hears the answer to it.
    core.send_event({"type": "response.cancel", "event_id": "mine"})
    core.data_to_send()
    core.receive(ev(type="error", event_id="evt_10", error={"type": "invalid_request_error", "code": "response_cancel_not_active",
                                                             "message": "no active response", "event_id": "mine"}))
    assert names(core) == ["*", "error"]


def test_interrupt_while_disconnected_does_nothing() -> None:
    core = RealtimeProtocol("ga")
    assert core.interrupt(10.0) is False
    assert core.data_to_send() == []


# response.create sequencing ----------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
def test_response_create_is_tagged_and_sent_when_idle(dialect: str) -> None:
    core = opened(dialect)
    core.send_message("hi")
    out = sent(core)
    assert [e["type"] for e in out] == ["conversation.item.create", "response.create"]
    assert out[1]["event_id"].startswith("pyrt_response_create_")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_response_create_is_held_while_a_response_runs_coalesced_and_released_on_done(dialect: str) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.send_message("one")
    core.send_message("two")
    core.request_response()
    assert sent_types(core) == ["conversation.item.create", "conversation.item.create"]
    assert core.held_response_creates == 1
    core.receive(response_done())
    out = sent(core)
    assert [e["type"] for e in out] == ["response.create"]
    assert core.held_response_creates == 0
    # The released create is now in flight: another request waits for it.
    core.request_response()
    assert sent(core) == []
    core.receive(response_created("resp_2"))
    assert sent(core) == []
    core.receive(response_done("resp_2"))
    assert sent_types(core) == ["response.create"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_requests_with_parameters_are_each_kept_in_order(dialect: str) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.request_response()
    core.request_response({"instructions": "A"})
    core.request_response()
    core.request_response()
    core.send_event({"type": "response.create", "event_id": "mine", "response": {"instructions": "B"}})
    assert sent(core) == []
    released = []
    for i in range(5):
        core.receive(response_done(f"resp_{i}"))
        out = sent(core)
        if not out:
            break
        released.append(out[0])
        core.receive(response_created(f"resp_{i + 1}"))
    assert [e.get("response") for e in released] == [None, {"instructions": "A"}, None, {"instructions": "B"}]
    assert released[3]["event_id"] == "mine"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_an_error_naming_the_create_in_flight_frees_the_slot(dialect: str) -> None:
    core = opened(dialect)
    core.request_response()
    event_id = sent(core)[0]["event_id"]
    core.request_response({"instructions": "next"})
    assert sent(core) == []
    core.receive(ev(type="error", error={"type": "invalid_request_error", "code": "x", "event_id": "someone_else"}))
    assert sent(core) == []
    core.receive(ev(type="error", error={"type": "invalid_request_error", "code": "x", "event_id": event_id}))
    out = sent(core)
    assert [e.get("response") for e in out] == [{"instructions": "next"}]
    assert out[0]["event_id"] != event_id


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_create_refused_because_a_server_response_crossed_it_is_sent_again_after_that_one(dialect: str) -> None:
    core = opened(dialect)
    core.send_message("hello")
    event_id = sent(core)[1]["event_id"]
    core.receive(response_created("resp_vad"))  # server VAD started a response before ours arrived
    core.events_received()
    refused = {"type": "invalid_request_error", "code": "conversation_already_has_active_response",
               "message": "Conversation already has an active response in progress: resp_vad.", "event_id": event_id}
    core.receive(ev(type="error", error=refused))
    assert sent(core) == [] and core.held_response_creates == 1
    assert "error" not in names(core)  # handled: only "*" shows it
    core.receive(response_done("resp_vad"))
    (again,) = sent(core)
    assert again["type"] == "response.create" and again["event_id"] == event_id
    # The same error naming an event that is not ours is still an error.
    core.receive(response_created("resp_2"))
    core.events_received()
    core.receive(ev(type="error", error={**refused, "event_id": "someone_else"}))
    assert "error" in names(core) and sent(core) == []


def test_an_untagged_error_about_response_create_frees_the_slot_too() -> None:
    core = opened("ga")
    core.request_response()
    core.data_to_send()
    core.request_response({"instructions": "x"})
    core.receive(ev(type="error", error={"code": "conversation_already_has_active_response_create", "message": "m"}))
    assert sent_types(core) == ["response.create"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_trigger_response_false_sends_only_the_item(dialect: str) -> None:
    core = opened(dialect)
    core.send_message("quiet", trigger_response=False)
    core.send_message({"content": "quiet too"}, None, False)
    assert sent_types(core) == ["conversation.item.create", "conversation.item.create"]


# App calls ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "message, expected_content",
    [
        ("hello", [{"type": "input_text", "text": "hello"}]),
        ({"content": "plain"}, [{"type": "input_text", "text": "plain"}]),
        (
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "see"},
                                                             {"type": "input_image", "image": "data:image/png;base64,AA"}]},
            [{"type": "input_text", "text": "see"}, {"type": "input_image", "image_url": "data:image/png;base64,AA"}],
        ),
    ],
)
def test_send_message_builds_a_user_message(dialect: str, message: Any, expected_content: list[dict[str, Any]]) -> None:
    core = opened(dialect)
    if dialect == "beta" and any(part["type"] == "input_image" for part in expected_content):
        with pytest.raises(ConfigurationError, match="dialect='ga'"):  # the beta API has no image input
            core.send_message(message, {"event_id": "custom"})
        assert sent(core) == []
        return
    core.send_message(message, {"event_id": "custom"})
    create = sent(core)[0]
    assert create["event_id"] == "custom"
    assert create["item"]["type"] == "message" and create["item"]["role"] == "user"
    assert create["item"]["content"] == expected_content


@pytest.mark.parametrize("bad", [{"content": []}, 42, {"content": [7]}])
def test_send_message_refuses_what_is_not_a_message(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        opened("ga").send_message(bad)


def test_add_image_is_refused_in_the_beta_dialect_before_anything_is_sent() -> None:
    core = opened("beta")
    with pytest.raises(ConfigurationError, match="beta dialect has no image input.*dialect='ga'"):
        core.add_image("https://example.com/cat.png")
    assert sent(core) == [] and core.response_state == "idle"


def test_add_image_sends_an_input_image() -> None:
    core = opened("ga")
    core.add_image("https://example.com/cat.png", False)
    assert sent_types(core) == ["conversation.item.create"]
    core.add_image("https://example.com/cat.png")
    out = sent(core)
    assert out[0]["item"]["content"] == [{"type": "input_image", "image_url": "https://example.com/cat.png"}]
    assert out[1]["type"] == "response.create"
    with pytest.raises(ConfigurationError):
        core.add_image("")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "call", [FunctionCall(id="fc_1", call_id="call_1", name="f", arguments="{}"), {"call_id": "call_1", "id": "fc_1"}]
)
def test_function_call_output(dialect: str, call: Any) -> None:
    core = opened(dialect)
    core.send_function_call_output(call, {"temp": 3})
    out = sent(core)
    assert out[0] == {"type": "conversation.item.create",
                      "item": {"type": "function_call_output", "output": '{"temp": 3}', "call_id": "call_1"}}
    assert out[1]["type"] == "response.create"
    (update,) = payloads(core, "item_update")
    assert (update.item_id, update.status, update.output) == ("fc_1", "completed", '{"temp": 3}')
    core.send_function_call_output(call, "x", start_response=False)
    assert sent_types(core) == ["conversation.item.create"]
    with pytest.raises(ConfigurationError, match="call_id"):
        core.send_function_call_output({"id": "no call id"}, "x")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_send_audio_base64_in_bounded_chunks(dialect: str) -> None:
    core = opened(dialect)
    pcm = bytes(i % 256 for i in range(MAX_AUDIO_APPEND_BYTES * 2 + 10))
    core.send_audio(pcm, commit=True)
    out = sent(core)
    assert [e["type"] for e in out] == ["input_audio_buffer.append"] * 3 + ["input_audio_buffer.commit"]
    chunks = [base64.b64decode(e["audio"]) for e in out[:3]]
    assert [len(c) for c in chunks] == [MAX_AUDIO_APPEND_BYTES, MAX_AUDIO_APPEND_BYTES, 10]
    assert b"".join(chunks) == pcm
    core.send_audio(memoryview(b"\x01\x02"))
    assert [base64.b64decode(e["audio"]) for e in sent(core)] == [b"\x01\x02"]
    core.send_audio(b"", commit=True)
    assert sent_types(core) == ["input_audio_buffer.commit"]


def test_send_audio_is_ignored_unless_connected() -> None:
    core = RealtimeProtocol("ga")
    core.send_audio(b"\0" * 100, commit=True)
    core.connection_opening()
    core.send_audio(b"\0" * 100)
    assert core.data_to_send() == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reset_history_deletes_changed_and_removed_items_and_recreates_messages(dialect: str) -> None:
    core = opened(dialect)
    def msg(item_id: str, text: str, role: str = "user", status: str | None = "completed") -> dict[str, Any]:
        return {"item_id": item_id, "type": "message", "role": role, "status": status,
                "content": [{"type": "input_text", "text": text}]}
    old = [msg("a", "keep"), msg("b", "gone"), msg("c", "before"), ItemUpdate("f", "function_call", status="completed")]
    new = [msg("a", "keep"), msg("c", "after"), msg("d", "new", role="system"), ItemUpdate("f", "function_call", status="completed")]
    core.reset_history(old, new)
    out = sent(core)
    # As the JS transport (0.20): creates in the new order, each placed after the item before it,
    # so the edited "c" keeps its place instead of moving to the end.
    assert [(e["type"], e.get("item_id") or e["item"]["id"], e.get("previous_item_id")) for e in out] == [
        ("conversation.item.delete", "b", None),
        ("conversation.item.delete", "c", None),
        ("conversation.item.create", "c", "a"),
        ("conversation.item.create", "d", "c"),
    ]
    assert "status" not in out[3]["item"]  # system messages carry no status
    assert out[2]["item"] == {"type": "message", "role": "user", "id": "c", "status": "completed",
                              "content": [{"type": "input_text", "text": "after"}]}
    with pytest.raises(ConfigurationError):
        core.reset_history([{"no": "id"}], [])


def test_star_and_per_type_events_are_made_only_when_wanted() -> None:
    core = opened("ga")
    core.wanted = set()  # nobody listens to anything
    core.receive(response_created())
    core.receive(audio_delta("ga"))
    # Behaviour events are always made (the I/O layer acts on some); notifications only on demand.
    assert names(core) == ["turn_started", "audio"]
    core.wanted = {"response.output_audio.delta"}
    core.receive(audio_delta("ga"))
    assert names(core) == ["response.output_audio.delta", "audio"]
    core.wanted = {"*"}
    core.receive(audio_delta("ga"))
    assert names(core) == ["*", "audio"]
    core.wanted = {"**"}  # an iterator that takes everything
    core.receive(audio_delta("ga"))
    assert names(core) == ["*", "response.output_audio.delta", "audio"]
    core.receive(ev(type="error", error={"message": "x"}))
    assert names(core)[:2] == ["*", "error"]



def test_the_model_changes_only_between_connections() -> None:
    core = RealtimeProtocol("ga", model="first")
    core.change_model("second")
    core.connection_opening()
    with pytest.raises(InvalidStateError, match="model cannot change while the transport is connecting: close"):
        core.change_model("third")
    core.connection_opened(None)
    assert json.loads(core.data_to_send()[0])["session"]["model"] == "second"
    with pytest.raises(InvalidStateError, match="connected"):
        core.change_model("third")
    assert core.model == "second"  # nothing changed
    core.connection_closed()
    core.change_model("third")
    assert core.model == "third"

@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_text_deltas_are_made_only_when_wanted(dialect: str) -> None:
    """Half of a reply's events are text deltas: nobody listening, no record is made for them."""
    core = opened(dialect)
    wire = get_dialect(dialect).wire
    deltas = [ev(type=wire.transcript_delta, response_id="r", item_id="i", output_index=0, content_index=0, delta="a"),
              ev(type=wire.text_delta, response_id="r", item_id="i", output_index=0, content_index=0, delta="b"),
              ev(type="conversation.item.input_audio_transcription.delta", item_id="u", content_index=0, delta="c")]
    made = ["audio_transcript_delta", "output_text_delta", "input_audio_transcription_delta"]

    def receive_all() -> list[str]:
        for text in deltas:
            core.receive(text)
        return [name for name in names(core) if name in made]  # not ``*`` and the server's types

    core.wanted = {"audio"}
    assert receive_all() == []
    core.wanted = {"output_text_delta"}
    assert receive_all() == ["output_text_delta"]
    for wanted in ({"**"}, None, set(made)):
        core.wanted = wanted
        assert receive_all() == made

# Malformed frames (#9.1, #9.2): nothing escapes, the state still advances --------------------------------
BAD_VALUES: list[Any] = ["12", 1e999, float("nan"), -5, True, {"x": 1}, [1, 2], None, "\u0000", 2**70]


def bad_usages() -> list[Any]:
    usages: list[Any] = ["tokens", 7, [], None]
    for value in BAD_VALUES:
        usages.append({"input_tokens": value, "output_tokens": 3})
        usages.append({"input_tokens": 1, "output_tokens": value, "total_tokens": value})
        usages.append({"input_token_details": value, "output_token_details": value})
        usages.append({"input_tokens_details": value, "output_tokens_details": value})
    return usages


def frame(fields: dict[str, Any]) -> str:
    # allow_nan: 1e999 and NaN travel as the JSON literals Infinity and NaN, as a hostile peer sends them.
    return json.dumps(fields, allow_nan=True)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("usage", bad_usages(), ids=repr)
def test_a_response_done_with_any_usage_ends_the_response_and_releases_the_queue(dialect: str, usage: Any) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.request_response()  # held behind the running response
    assert core.held_response_creates == 1
    core.events_received()
    core.receive(frame({"type": "response.done", "response": {"id": "resp_1", "status": "completed", "usage": usage}}))
    events = core.events_received()
    done = [p for n, p in events if n == "turn_done"]
    assert len(done) == 1 and done[0].response_id == "resp_1"
    assert [p for n, p in events if n == "usage_update"] == [done[0].usage]
    assert all(isinstance(v, int) and v >= 0 for v in (done[0].usage.input_tokens, done[0].usage.output_tokens))
    assert sent_types(core) == ["response.create"] and core.held_response_creates == 0 and not core.response_running


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("response", [
    "not an object", 12, None, [], {"id": 5, "status": 7, "output": "none", "usage": 3},
    {"id": "resp_1", "output": {"a": 1}}, {"id": "resp_1", "output": 1e999}, {"id": ["x"], "output": [None, 1, "x"]},
], ids=repr)
def test_a_response_done_of_any_shape_ends_the_response(dialect: str, response: Any) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.send_message("hi")  # its response.create is held
    assert sent_types(core) == ["conversation.item.create"]
    core.events_received()
    event = core.receive(frame({"type": "response.done", "response": response}))
    assert event is not None
    events = core.events_received()
    assert [n for n, _ in events].count("turn_done") == 1 and [n for n, _ in events].count("usage_update") == 1
    assert isinstance(dict(events)["turn_done"].output, tuple)
    assert sent_types(core) == ["response.create"]
    assert not core.response_running and core.held_response_creates == 0
    # Whatever did not fit is an ``error`` event that says so, never an exception.
    for name, payload in events:
        if name == "error":
            assert isinstance(payload, ErrorEvent) and "response.done" in str(payload.exception)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_malformed_known_event_is_an_error_event_keeping_the_frame_and_the_problem(dialect: str) -> None:
    core = opened(dialect)
    text = frame({"type": WIRE[dialect].audio_delta, "item_id": 12, "delta": "AAAA"})
    core.receive(text)
    events = core.events_received()
    assert [n for n, _ in events] == ["*", "error"]  # not under its own type: its listeners could not read it
    error = events[1][1]
    assert isinstance(error, ErrorEvent) and error.error.raw == text and "item_id" in error.error.problem
    exception = error.exception
    assert isinstance(exception, ServerError) and exception.code == "malformed_event"
    assert "item_id" in str(exception) and WIRE[dialect].audio_delta in str(exception)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("error", ["boom", {"code": 429, "message": "slow down"}, {"message": ["a", "b"]}, 7, None],
                         ids=repr)
def test_error_listeners_always_get_an_error_event(dialect: str, error: Any) -> None:
    core = opened(dialect)
    core.receive(frame({"type": "error", "error": error}))
    (payload,) = payloads(core, "error")
    assert isinstance(payload, ErrorEvent) and isinstance(payload.exception, ServerError)
    if error == "boom":
        assert str(payload.exception) == "boom"
    if isinstance(error, dict) and error.get("code") == 429:
        assert payload.exception.code == "429" and str(payload.exception) == "slow down"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_text_delta_with_a_lone_surrogate_arrives_with_a_replacement_character(dialect: str) -> None:
    core = opened(dialect)
    core.receive('{"type": "%s", "item_id": "i", "response_id": "r", "delta": "a\\ud800b\\ud83d\\ude00"}'
                 % WIRE[dialect].text_delta)
    (delta,) = payloads(core, "output_text_delta")
    assert delta.delta == "a\ufffdb\U0001F600"


# Finished audio is never cut (#9.7) -------------------------------------------------------------------
class FinishingPlayer:
    """An AudioOutput double with ``finished``: what a player reports after its last frame rendered."""

    def __init__(self, heard: dict[tuple[str, int], float], finished: set[tuple[str, int]]) -> None:
        self.heard, self.done = heard, finished

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: str) -> None: ...
    def stop(self) -> None: ...

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        return self.heard.get((item_id, content_index))

    def finished(self, item_id: str, content_index: int) -> bool:
        return (item_id, content_index) in self.done


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("attached", [True, False], ids=["attached", "passed"])
def test_an_item_the_player_says_finished_is_never_truncated_whatever_it_reports_heard(dialect: str, attached: bool) -> None:
    core = opened(dialect)
    core.receive(response_created())
    for item in ("item_1", "item_2"):
        core.receive(audio_delta(dialect, item=item), now_ms=1000.0)
        core.receive(audio_delta(dialect, item=item), now_ms=1000.0)
        core.receive(audio_done(dialect, item=item))
    # item_1 played to its end but, resampled at another rate, counts 150 ms heard of 200 ms received.
    player = FinishingPlayer({("item_1", 0): 150.0, ("item_2", 0): 40.0}, {("item_1", 0)})
    core.events_received()
    if attached:
        core.attach_playback(PlaybackPort.of(player))
    assert core.interrupt(1100.0, None if attached else player)
    assert [f["item_id"] for f in sent(core) if f["type"] == "conversation.item.truncate"] == ["item_2"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_without_finished_audio_heard_to_within_resampling_rounding_of_its_end_is_not_truncated(dialect: str) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.receive(audio_delta(dialect, nbytes=143174), now_ms=0.0)  # 2982.79 ms of PCM16
    core.receive(audio_done(dialect))
    core.receive(response_done())
    sent(core)
    # The demo's case: 2982 ms heard of 2982.8 ms received. It played to its end.
    assert not core.interrupt(5000.0, lambda item_id, content_index: 2982.0)
    assert "conversation.item.truncate" not in sent_types(core)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_response_with_its_own_audio_format_is_measured_and_played_in_it(dialect: str) -> None:
    core = opened(dialect)  # the session says pcm16
    response = ({"id": "resp_1", "audio": {"output": {"format": {"type": "audio/pcmu"}}}} if dialect == "ga"
                else {"id": "resp_1", "output_audio_format": "g711_ulaw"})
    core.receive(ev(type="response.created", response=response))
    core.receive(audio_delta(dialect, nbytes=8000), now_ms=0.0)  # 8,000 bytes of pcmu: one second
    (audio,) = payloads(core, "audio")
    assert audio.audio_format == "g711_ulaw" and core.audio_received_ms == 1000.0
    core.interrupt(250.0)
    (truncate,) = [f for f in sent(core) if f["type"] == "conversation.item.truncate"]
    assert truncate["audio_end_ms"] == 250
    # The next response, without its own format, is in the session's.
    core.receive(response_done())
    core.receive(response_created("resp_2"))
    core.receive(audio_delta(dialect, nbytes=4800, item="item_2", resp="resp_2"), now_ms=300.0)
    (audio,) = payloads(core, "audio")
    assert audio.audio_format == "pcm16"


# Response sequencing: a closed connection reports the response it cut (#9.6) ------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_close_with_no_response_running_reports_no_cut(dialect: str) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.receive(response_done())
    core.events_received()
    core.connection_closed()
    assert names(core) == ["connection_change", "disconnected"]


def history_message(item_id: str, text: str, role: str = "user", part: str = "input_text") -> dict[str, Any]:
    return {"item_id": item_id, "type": "message", "role": role, "status": "completed",
            "content": [{"type": part, "text": text} if part != "output_audio" else {"type": part, "transcript": text}]}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reset_history_places_inserted_items_and_appends_past_the_last_kept_one(dialect: str) -> None:
    core = opened(dialect)
    a, b = history_message("a", "one"), history_message("b", "two")
    first, tail = history_message("x0", "first"), history_message("z", "tail")
    middle = history_message("m", "middle")
    core.reset_history([a, b], [first, a, middle, b, tail])
    assert [(e["item"]["id"], e.get("previous_item_id")) for e in sent(core)] == [("x0", "root"), ("m", "a"), ("z", None)]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("part", ["output_audio", "audio"])
def test_reset_history_refuses_an_assistant_audio_item_it_cannot_replay_before_sending_anything(dialect: str, part: str) -> None:
    core = opened(dialect)
    spoken = history_message("s", "Hello!", role="assistant", part=part)
    with pytest.raises(ConfigurationError, match="cannot be replayed.*output_text"):
        core.reset_history([history_message("gone", "x")], [spoken])
    assert core.data_to_send() == []  # nothing deleted before the refusal: the item is not lost
    # As text it is replayed.
    core.reset_history([], [history_message("s", "Hello!", role="assistant", part="output_text")])
    assert sent_types(core) == ["conversation.item.create"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reset_history_refuses_to_add_or_change_mcp_items_but_may_remove_them(dialect: str) -> None:
    core = opened(dialect)
    call = {"item_id": "mcp_1", "type": "mcp_call", "content": []}
    with pytest.raises(ConfigurationError, match="MCP items"):
        core.reset_history([], [call])
    with pytest.raises(ConfigurationError, match="MCP items"):
        core.reset_history([call], [history_message("mcp_1", "now a message")])
    assert core.data_to_send() == []
    core.reset_history([call], [])
    assert sent(core) == [{"type": "conversation.item.delete", "item_id": "mcp_1"}]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_format_a_response_create_asked_for_holds_when_response_created_does_not_echo_it(dialect: str) -> None:
    core = opened(dialect)
    asked = {"audio": {"output": {"format": {"type": "audio/pcmu"}}}} if dialect == "ga" else {"output_audio_format": "g711_ulaw"}
    core.request_response(asked)
    core.receive(response_created())  # echoes no format
    core.receive(audio_delta(dialect, nbytes=8000), now_ms=0.0)
    (audio,) = payloads(core, "audio")
    assert audio.audio_format == "g711_ulaw" and core.audio_received_ms == 1000.0
    # A response the server started by itself (server VAD) is in the session's format.
    core.receive(response_done())
    core.receive(response_created("resp_2"))
    core.receive(audio_delta(dialect, nbytes=4800, item="item_2", resp="resp_2"), now_ms=2000.0)
    (audio,) = payloads(core, "audio")
    assert audio.audio_format == "pcm16"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_servers_copy_of_a_function_call_item_does_not_erase_its_output(dialect: str) -> None:
    core = opened(dialect)
    call = {"id": "fc_1", "type": "function_call", "status": "completed", "name": "f", "call_id": "c1", "arguments": "{}"}
    core.receive(ev(type="response.output_item.done", response_id="r", output_index=0, item=call))
    (function_call,) = payloads(core, "function_call")
    core.send_function_call_output(function_call, "42", start_response=False)
    core.receive(ev(type="conversation.item.done", previous_item_id=None, item=call))
    updates = payloads(core, "item_update")
    assert [(u.item_id, u.output) for u in updates] == [("fc_1", "42")]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("cut", [30, 60, 80])
def test_a_response_done_cut_short_still_ends_the_response_and_is_reported(dialect: str, cut: int) -> None:
    core = opened(dialect)
    core.receive(response_created())
    core.request_response()  # held
    core.events_received()
    text = response_done(usage={"input_tokens": 12, "output_tokens": 3})[:cut]
    core.receive(text)
    events = core.events_received()
    assert [n for n, _ in events] == ["*", "error", "usage_update", "turn_done"]
    assert "not valid JSON" in str(events[1][1].exception) and events[1][1].error.raw == text
    assert sent_types(core) == ["response.create"] and not core.response_running


@pytest.mark.parametrize("dialect", DIALECTS)
def test_has_output_says_whether_a_frame_made_anything_to_send_deliver_or_act_on(dialect: str) -> None:
    core = opened(dialect)
    core.wanted = {"audio"}  # nobody listens to transcripts
    assert not core.has_output
    core.receive(ev(type=WIRE[dialect].transcript_delta, response_id="resp_1", item_id="item_1", delta="word "))
    assert not core.has_output and core.events_received() == []
    core.receive(audio_delta(dialect), now_ms=1000.0)
    assert core.has_output
    core.events_received()
    assert not core.has_output
    core.receive(ev(type="input_audio_buffer.speech_started", item_id="u1", audio_start_ms=0))
    core.events_received()  # the hint is output too, after its event was delivered
    assert core.has_output and core.barge_in_expected() is not None and not core.has_output
    core.receive(ev(type="session.created", session={}))  # sends the tracing update
    assert core.has_output and core.data_to_send() and not core.has_output


@pytest.mark.parametrize("dialect", DIALECTS)
def test_done_audio_piling_up_ahead_of_the_wall_clock_is_still_cut_where_heard(dialect: str) -> None:
    # No player: the wall clock says what was heard. Audio arrives far faster than it plays, so done
    # items pile up; audio.done and response.done only mark the items still arriving, and each item
    # keeps its place in the queue.
    core = opened(dialect)
    for n in range(30):
        core.receive(response_created(f"r{n}"))
        core.receive(audio_delta(dialect, item=f"i{n}", resp=f"r{n}"), now_ms=1000.0 + n)
        core.receive(audio_done(dialect, item=f"i{n}", resp=f"r{n}"))
        core.receive(response_done(f"r{n}"))
    core.receive(response_created("last"))
    core.receive(audio_delta(dialect, item="last", resp="last"), now_ms=1040.0)
    core.receive(audio_done(dialect, item="last", resp="last"))  # done arriving, not playing: still cut
    core.data_to_send(), core.events_received()
    # 1,050 ms after the first audio: 10 items of 100 ms played, 50 ms of the 11th, none of the rest.
    core.interrupt(2050.0)
    assert truncates(sent(core)) == [("i10", 0, 50)] + [(f"i{n}", 0, 0) for n in range(11, 30)] + [("last", 0, 0)]
