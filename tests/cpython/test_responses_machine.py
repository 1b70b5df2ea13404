"""The response sequencing state machine (_responses.py), transition by transition."""

from __future__ import annotations

import json

import pytest

from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime._responses import (
    ACTIVE_RESPONSE_ERROR,
    TRANSITIONS,
    ResponseSequencer,
    ResponseState,
    Trigger,
)
from pyodide_realtime.errors import ConfigurationError

IDLE, REQUESTED, RUNNING, CANCELLING = ResponseState


def test_every_state_has_a_row_and_every_close_goes_idle() -> None:
    assert set(TRANSITIONS) == set(ResponseState)
    assert all(row[Trigger.CLOSED] is IDLE for row in TRANSITIONS.values())
    assert all(row.get(Trigger.DONE, IDLE) is IDLE for row in TRANSITIONS.values())


def at(state: ResponseState) -> ResponseSequencer:
    machine = ResponseSequencer()
    if state is not IDLE:
        assert machine.request({"type": "response.create"}, manual=False)
    if state in (RUNNING, CANCELLING):
        machine.created("resp_1")
    if state is CANCELLING:
        assert machine.cancel()
    assert machine.state is state
    return machine


@pytest.mark.parametrize("state", list(ResponseState))
def test_a_server_trigger_the_table_does_not_list_changes_nothing_and_never_raises(state: ResponseState) -> None:
    for trigger, call in ((Trigger.DONE, lambda m: m.done()), (Trigger.CREATED, lambda m: m.created("r"))):
        machine = at(state)
        call(machine)
        assert machine.state is TRANSITIONS[state].get(trigger, state)


@pytest.mark.parametrize("state", [REQUESTED, RUNNING, CANCELLING])
def test_a_create_is_held_unless_idle_and_released_when_done(state: ResponseState) -> None:
    machine = at(state)
    assert machine.request({"type": "response.create", "response": {"instructions": "a"}}, manual=True) == []
    assert machine.request({"type": "response.create"}, manual=False) == []
    assert machine.request({"type": "response.create"}, manual=False) == []  # collapses into the one before
    assert machine.held == 2
    (frame,) = machine.done()
    assert json.loads(frame)["response"] == {"instructions": "a"} and machine.state is REQUESTED and machine.held == 1


def test_a_cancel_is_sent_once_per_running_response() -> None:
    machine = at(RUNNING)
    assert machine.cancel() and not machine.cancel() and machine.state is CANCELLING
    machine.created("resp_2")  # a new response: the cancel was for the one before
    assert machine.cancel()
    assert not at(IDLE).cancel() and at(IDLE).cancel(explicit=True)


def test_a_crossed_create_is_sent_again_after_the_servers_response() -> None:
    machine = ResponseSequencer()
    (frame,) = machine.request({"type": "response.create"}, manual=False)
    event_id = json.loads(frame)["event_id"]
    machine.created("server_vad_response")  # the server's own response started first
    handled, frames = machine.server_error(ACTIVE_RESPONSE_ERROR, event_id, "already active")
    assert handled and frames == [] and machine.held == 1 and machine.state is RUNNING
    (again,) = machine.done()
    assert json.loads(again)["event_id"] == event_id


def test_an_error_about_our_create_frees_the_slot() -> None:
    machine = ResponseSequencer()
    (frame,) = machine.request({"type": "response.create"}, manual=False)
    machine.request({"type": "response.create", "response": {}}, manual=True)
    handled, frames = machine.server_error("invalid_value", json.loads(frame)["event_id"], "bad")
    assert not handled and len(frames) == 1 and machine.state is REQUESTED


def test_closed_reports_the_cut_response_and_forgets_everything() -> None:
    machine = at(RUNNING)
    machine.request({"type": "response.create"}, manual=False)
    assert machine.closed() == "resp_1" and machine.state is IDLE and machine.held == 0
    assert at(REQUESTED).closed() is None and at(IDLE).closed() is None


def test_a_create_json_cannot_carry_is_refused_before_any_change() -> None:
    machine = at(RUNNING)
    with pytest.raises(ConfigurationError):
        machine.request({"type": "response.create", "response": {"x": {1}}}, manual=True)
    assert machine.held == 0


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_a_response_done_before_its_created_does_not_block_later_creates(dialect: str) -> None:
    # A proxy reordered the two: the late response.created must not start a response nothing will end.
    core = RealtimeProtocol(dialect)
    core.connection_opening()
    core.connection_opened(None)
    core.send_message("hi")
    core.data_to_send()
    core.events_received()
    core.receive(json.dumps({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}))
    core.receive(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
    assert core.response_state == "idle"
    assert [name for name, _ in core.events_received() if name.startswith("turn_")] == ["turn_done"]
    core.request_response()
    assert [json.loads(f)["type"] for f in core.data_to_send()] == ["response.create"]
    # A response.created without an id, or for another response, still starts one.
    core.receive(json.dumps({"type": "response.created", "response": {"id": "resp_2"}}))
    assert core.response_state == "running"
