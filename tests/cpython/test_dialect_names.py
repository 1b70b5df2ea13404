"""Each dialect's renamed server events and content parts, written once on its spec, are the names the
official SDK's models use (GA) and the names the core reads."""

from __future__ import annotations

import json
import typing

import pytest
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime.dialects import BETA, DIALECTS, GA
from pyodide_realtime.events import KNOWN_SERVER_EVENT_TYPES


def _sdk_types() -> set[str]:
    found: set[str] = set()
    for model in typing.get_args(typing.get_args(RealtimeServerEvent)[0]):
        found.update(typing.get_args(model.model_fields["type"].annotation))
    return found


def test_every_renamed_event_is_one_the_client_models_and_ga_names_are_the_sdks() -> None:
    events = ("audio_delta", "audio_done", "transcript_delta", "transcript_done", "text_delta", "text_done", "item_created")
    sdk = _sdk_types()
    for dialect in DIALECTS:
        for field in events:
            assert getattr(dialect.wire, field) in KNOWN_SERVER_EVENT_TYPES, (dialect.name, field)
    assert {getattr(GA.wire, field) for field in events} <= sdk
    assert all(getattr(GA.wire, f) != getattr(BETA.wire, f) for f in (*events, "audio_content", "text_content"))


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("kind", ["transcript_delta", "text_delta"])
def test_the_core_reads_each_dialects_text_deltas_by_the_specs_names(dialect: typing.Any, kind: str) -> None:
    core = RealtimeProtocol(dialect)
    core.connection_opening()
    core.connection_opened(None)
    core.events_received()
    core.receive(json.dumps({"type": getattr(dialect.wire, kind), "response_id": "r", "item_id": "i",
                             "output_index": 0, "content_index": 0, "delta": "hi"}))
    expected = "audio_transcript_delta" if kind == "transcript_delta" else "output_text_delta"
    assert [name for name, _ in core.events_received()][-1] == expected
