"""The history's order (sans-I/O): inserts in the middle, deletes, moves, items that come out of order,
the cap, and the snapshots a session hands out, checked against a plain list that does the same."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyodide_realtime import AssistantMessageItem, RealtimeToolCallItem, UserMessageItem, _history_order
from pyodide_realtime._history import History
from pyodide_realtime._history_order import BLOCK_ITEMS
from pyodide_realtime.items import HistoryItems


def added(item_id: str, previous: str | None, kind: str = "user") -> tuple[str, dict[str, Any], frozenset[str]]:
    if kind == "call":
        item = {"id": item_id, "type": "function_call", "call_id": f"c_{item_id}", "name": "f", "arguments": "{}"}
    else:
        part = {"type": "input_text", "text": item_id} if kind == "user" else {"type": "output_text", "text": item_id}
        item = {"id": item_id, "type": "message", "role": kind, "content": [part]}
    return "conversation.item.added", {"item": item, "previous_item_id": previous}, frozenset({"item", "previous_item_id"})


def ids(history: History) -> list[str]:
    return [item.item_id for item in history.items]


def assert_consistent(history: History) -> None:
    """Each item names the one before it; the snapshot, the tuple and indexing agree."""
    items = history.items
    assert [item.previous_item_id for item in items] == [None, *(item.item_id for item in items)][: len(items)]
    snapshot = history.snapshot
    assert snapshot == items and tuple(snapshot) == items and len(snapshot) == len(items) == len(history)
    assert [snapshot[i] for i in range(-len(items), len(items))] == [*items, *items]
    assert list(reversed(snapshot)) == list(reversed(items))


def test_an_item_inserted_in_the_middle_relinks_both_neighbours() -> None:
    history = History()
    for n, previous in [("a", None), ("b", "a"), ("c", "b")]:
        history.receive(*added(n, previous))
    (change,) = history.receive(*added("x", "a"))
    assert change.added and change.item.previous_item_id == "a"  # reported where it stands, not at the end
    assert ids(history) == ["a", "x", "b", "c"]
    assert history.get("b").previous_item_id == "x"  # type: ignore[union-attr]
    history.receive(*added("first", None))
    assert ids(history) == ["first", "a", "x", "b", "c"]
    assert_consistent(history)


def test_a_deleted_item_joins_its_neighbours() -> None:
    history = History()
    for n, previous in [("a", None), ("b", "a"), ("c", "b")]:
        history.receive(*added(n, previous))
    history.receive("conversation.item.deleted", {"item_id": "b"})
    assert ids(history) == ["a", "c"] and history.get("c").previous_item_id == "a"  # type: ignore[union-attr]
    history.receive("conversation.item.deleted", {"item_id": "a"})
    assert history.get("c").previous_item_id is None  # type: ignore[union-attr]
    assert_consistent(history)


def test_an_item_that_comes_before_its_predecessor_moves_after_it_when_it_comes() -> None:
    history = History()
    history.receive(*added("a", None))
    history.receive(*added("c", "b"))  # b is not known yet: c waits at the end
    history.receive(*added("d", "c"))
    assert ids(history) == ["a", "c", "d"]
    history.receive(*added("b", "a"))
    assert ids(history) == ["a", "b", "c", "d"]
    assert_consistent(history)


def test_an_item_placed_after_a_function_output_that_comes_later_lands_after_the_call() -> None:
    history = History()
    history.receive(*added("u", None))
    history.receive(*added("fc", "u", "call"))
    history.receive(*added("reply", "out", "assistant"))  # the output's own event is late
    history.receive(*added("u2", "fc"))
    history.receive("conversation.item.added", {"item": {"id": "out", "type": "function_call_output", "call_id": "c_fc",
                                                         "output": "42"}, "previous_item_id": "u2"},
                    frozenset({"item", "previous_item_id"}))
    assert ids(history) == ["u", "fc", "u2", "reply"]  # the output stands after u2, and the reply after the output
    assert_consistent(history)


def test_a_truncation_and_deltas_change_an_item_in_place() -> None:
    history = History()
    for n, previous in [("u", None), ("a", "u"), ("u2", "a")]:
        history.receive(*added(n, previous, "assistant" if n == "a" else "user"))
    before = history.snapshot
    history.audio("a", 1000)
    history.receive("response.output_audio_transcript.delta", {"item_id": "a", "delta": " and more"})
    history.receive("conversation.item.truncated", {"item_id": "a", "content_index": 0, "audio_end_ms": 0})
    assert ids(history) == ["u", "a", "u2"]
    reply = history.snapshot[1]
    assert isinstance(reply, AssistantMessageItem) and reply.heard_ms == 0 and reply.text == ""
    assert isinstance(before[1], AssistantMessageItem) and before[1].heard_ms is None  # an earlier snapshot stays as it was
    assert_consistent(history)


def test_a_call_output_finds_its_call_among_many_items_even_when_its_call_id_came_late() -> None:
    history = History()
    history.receive("response.function_call_arguments.delta", {"item_id": "fc", "delta": "{"})  # no call_id yet
    history.receive(*added("fc", None, "call"))
    for n in range(3 * BLOCK_ITEMS):
        history.receive(*added(f"m{n}", f"m{n - 1}" if n else "fc"))
    history.call_output("c_fc", "done")
    call = history.get("fc")
    assert isinstance(call, RealtimeToolCallItem) and call.output == "done" and call.status == "completed"
    assert history.call_output("", "x") == []  # the call_id it had before is not its any more


def test_the_oldest_items_go_past_the_cap_and_the_new_first_one_follows_nothing() -> None:
    history = History(max_items=3)
    for n in range(5):
        changes = history.receive(*added(f"i{n}", f"i{n - 1}" if n else None))
    assert [c.item.item_id for c in changes if c.removed] == ["i1"]
    assert ids(history) == ["i2", "i3", "i4"] and history.items[0].previous_item_id is None
    assert_consistent(history)


def test_history_items_is_an_immutable_sequence_equal_to_its_tuple() -> None:
    a, b, c = (UserMessageItem(n) for n in "abc")
    items = HistoryItems(((a,), (), (b, c)))
    assert items == (a, b, c) and (a, b, c) == items and items != [a, b, c] and items != (a, b)
    assert hash(items) == hash((a, b, c)) and repr(items) == repr((a, b, c))
    assert items[1] is b and items[-1] is c and items[-3] is a and items[1:] == (b, c) and items + (a,) == (a, b, c, a)
    assert items.index(c) == 2 and b in items and list(reversed(items)) == [c, b, a]
    for bad in (3, -4):
        with pytest.raises(IndexError, match="out of range"):
            items[bad]
    assert HistoryItems() == () and len(HistoryItems()) == 0


# Against a plain list: every placement, delete and delta, in blocks of 4 that split and merge all the time.
OPS = st.lists(
    st.tuples(st.sampled_from(["append", "insert", "first", "delete", "delta", "early"]), st.integers(0, 10_000)),
    min_size=60,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_the_order_matches_a_plain_list(ops: list[tuple[str, int]]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_history_order, "BLOCK_ITEMS", 4)
        check_against_a_list(ops, History(max_items=40))


def check_against_a_list(ops: list[tuple[str, int]], history: History) -> None:
    model: list[str] = []
    waiting: dict[str, str] = {}  # id -> the unknown id it was placed after (the model's own bookkeeping)
    for n, (op, pick) in enumerate(ops):
        new, chosen = f"i{n}", model[pick % len(model)] if model else None
        if op == "delete" and chosen is not None:
            history.receive("conversation.item.deleted", {"item_id": chosen})
            model.remove(chosen)
            waiting.pop(chosen, None)
            continue
        if op == "delta" and chosen is not None:
            history.receive("conversation.item.input_audio_transcription.delta", {"item_id": chosen, "delta": "x"})
            continue
        if op == "early":  # placed after an item that comes two steps later (if it ever does)
            previous: str | None = f"i{n + 2}"
        elif op == "first" or not model:
            previous = None
        else:
            previous = model[-1] if op == "append" else chosen
        history.receive(*added(new, previous))
        if len(model) == history.max_items:  # the oldest goes before the new item is placed (even first)
            waiting.pop(model.pop(0), None)
        if previous is None:
            model.insert(0, new)
        elif previous in model:
            model.insert(model.index(previous) + 1, new)
        else:
            model.append(new)
            waiting[new] = previous
        for item_id, after in list(waiting.items()):
            if after == new and item_id in model:
                del waiting[item_id]
                model.remove(item_id)
                model.insert(model.index(new) + 1, item_id)
        assert ids(history) == model
        if n % 50 == 0:
            assert_consistent(history)
    assert_consistent(history)
