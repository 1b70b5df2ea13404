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


@pytest.mark.parametrize("kind", ["function_call", "mcp_approval_request"])
def test_an_item_after_answers_given_out_of_order_lands_after_the_last_of_them(kind: str) -> None:
    """Two calls (or approval requests) answered B first, then A: the server's order is u1, A, B, B_out, A_out,
    and a reply after A_out belongs after B, not after A (where A_out's call is)."""

    def asked(item_id: str) -> dict[str, Any]:
        if kind == "function_call":
            return {"id": item_id, "type": "function_call", "call_id": f"c{item_id}", "name": "f", "arguments": "{}"}
        return {"id": item_id, "type": "mcp_approval_request", "server_label": "s", "name": "f", "arguments": "{}"}

    def answer(item_id: str, asked_id: str) -> dict[str, Any]:
        if kind == "function_call":
            return {"id": item_id, "type": "function_call_output", "call_id": f"c{asked_id}", "output": asked_id}
        return {"id": item_id, "type": "mcp_approval_response", "approval_request_id": asked_id, "approve": True}

    def reply(item_id: str) -> dict[str, Any]:
        return {"id": item_id, "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": item_id}]}

    history = History()
    history.receive(*added({"id": "u1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}, None))
    history.receive(*added(asked("A"), "u1"))
    history.receive(*added(asked("B"), "A"))
    for answer_id, asked_id, previous in [("B_out", "B", "B"), ("A_out", "A", "B_out")]:
        history.receive(*added(answer(answer_id, asked_id), previous))
        # The item's done event does not place it: it leaves the answer where the added event put it.
        history.receive("conversation.item.done", {"item": answer(answer_id, asked_id)})
    history.receive(*added(reply("M"), "A_out"))
    history.receive(*added(reply("M2"), "M"))
    items = history.items
    assert [item.item_id for item in items] == ["u1", "A", "B", "M", "M2"]
    assert [item.previous_item_id for item in items] == [None, "u1", "A", "B", "M"]
    if kind == "function_call":
        assert [getattr(item, "output", None) for item in items[1:3]] == ["A", "B"]
    else:
        assert [getattr(item, "approved", None) for item in items[1:3]] == [True, True]


def test_the_answers_aliases_go_with_the_items_they_stand_for() -> None:
    history = History()
    previous = None
    for n in range(2 * MAX_HISTORY_ITEMS):  # a call, its output, a reply: two items and one alias a round
        history.receive(*added({"id": f"fc{n}", "type": "function_call", "call_id": f"c{n}", "name": "f"}, previous))
        history.receive(*added({"id": f"out{n}", "type": "function_call_output", "call_id": f"c{n}", "output": "1"}, f"fc{n}"))
        reply = {"id": f"m{n}", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "1"}]}
        history.receive(*added(reply, f"out{n}"))
        previous = f"m{n}"
    live = {item.item_id for item in history.items}
    calls = {item_id for item_id in live if item_id.startswith("fc")}
    assert len(live) == MAX_HISTORY_ITEMS
    assert [item.item_id for item in history.items][-3:] == [f"m{n - 1}", f"fc{n}", f"m{n}"]
    # One alias per answered call still held; none for the calls the cap evicted.
    assert set(history._aliases.values()) == calls and len(history._aliases) == len(calls)
    history.receive("conversation.item.deleted", {"item_id": f"fc{n}"})  # a deleted call takes its answer's alias
    assert f"out{n}" not in history._aliases and len(history._aliases) == len(calls) - 1
    history.receive("conversation.item.deleted", {"item_id": f"out{n - 1}"})  # a deleted answer, its own
    assert f"out{n - 1}" not in history._aliases and len(history._aliases) == len(calls) - 2
