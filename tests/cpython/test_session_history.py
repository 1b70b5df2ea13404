"""The history on its own (sans-I/O: server events in, items out): trimming to what was heard, aliases, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from pyodide_realtime import AssistantMessageItem, RealtimeToolCallItem
from pyodide_realtime._history import MAX_HISTORY_ITEMS, History, heard_text

TEXT = "The weather in Paris is sunny today"


@pytest.mark.parametrize(
    ("heard_ms", "expected"),
    [
        (0, ""),
        (1, ""),  # a few ms of the first word is not the word
        (250, "The weather"),  # 250/1000 of 35 characters is 8.75: nearer the end of "weather" than its start
        (500, "The weather in Paris"),
        (990, TEXT),
        (1000, TEXT),
        (5000, TEXT),
    ],
)
def test_heard_text_is_proportional_and_snaps_to_the_nearest_word(heard_ms: float, expected: str) -> None:
    assert heard_text(TEXT, heard_ms, 1000) == expected


def test_heard_text_without_audio_or_transcript_is_empty() -> None:
    assert heard_text(TEXT, 100, 0) == "" and heard_text("", 100, 1000) == ""


def added(item: dict[str, Any], previous: str | None) -> tuple[str, dict[str, Any], frozenset[str]]:
    return "conversation.item.added", {"item": item, "previous_item_id": previous}, frozenset({"item", "previous_item_id"})


def test_late_deltas_of_an_interrupted_reply_stay_unheard() -> None:
    history = History()
    history.receive(*added({"id": "m", "type": "message", "role": "assistant", "content": []}, None))
    history.audio("m", 1000)
    history.receive("response.output_audio_transcript.delta", {"item_id": "m", "delta": "The weather in Paris"})
    history.interrupted("m", 500)
    history.receive("response.output_audio_transcript.delta", {"item_id": "m", "delta": " is sunny today"})
    # The server's copy after the truncation is shorter: what was heard stays this history's call.
    history.receive(
        "conversation.item.retrieved",
        {"item": {"id": "m", "type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "The"}]}},
    )
    item = history.get("m")
    assert isinstance(item, AssistantMessageItem)
    assert (item.text, item.unheard_text, item.heard_ms) == ("The weather in Paris", "is sunny today", 500)


def test_an_item_after_a_function_output_lands_after_its_call_and_the_output_folds_in() -> None:
    history = History()
    history.receive(*added({"id": "fc", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}, None))
    history.receive(*added({"id": "out", "type": "function_call_output", "call_id": "c1", "output": "42"}, "fc"))
    history.receive(
        *added(
            {"id": "m", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 42"}]}, "out"
        )
    )
    call, reply = history.items
    assert isinstance(call, RealtimeToolCallItem) and call.output == "42" and call.status == "completed"
    assert reply.previous_item_id == "fc"
    assert history.receive("conversation.item.deleted", {"item_id": "out"}) == []  # the call stays
    assert len(history.items) == 2


def test_the_history_keeps_only_the_newest_items() -> None:
    history = History()
    for n in range(MAX_HISTORY_ITEMS + 5):
        history.receive(
            *added(
                {"id": f"i{n}", "type": "message", "role": "user", "content": [{"type": "input_text", "text": str(n)}]},
                f"i{n - 1}" if n else None,
            )
        )
    items = history.items
    assert len(items) == MAX_HISTORY_ITEMS and items[0].item_id == "i5" and items[-1].item_id == f"i{MAX_HISTORY_ITEMS + 4}"


def test_malformed_events_change_nothing() -> None:
    history = History()
    for kind, event in [
        ("conversation.item.added", {"item": "not a dict"}),
        ("conversation.item.added", {"item": {"type": "message"}}),  # no id
        ("conversation.item.added", {"item": {"id": "z", "type": "reasoning"}}),  # a type it does not show
        ("response.output_audio_transcript.delta", {"item_id": 3, "delta": "x"}),
        ("conversation.item.deleted", {"item_id": "nothing"}),
    ]:
        assert history.receive(kind, event) == []
    assert history.items == ()
