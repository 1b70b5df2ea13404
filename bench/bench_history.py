"""The session history's cost per server event, as the conversation grows: 100, 1,000 and 10,000 items.

    ./build.sh bench            (or: .venv/bin/python bench/bench_history.py; CPython, no browser)

A turn is the mix a spoken exchange with a tool sends through the history: a user item with its
transcription deltas, a function call with argument deltas and its output, an assistant reply with
transcript deltas and audio chunks, the item done events, then the deletion of the oldest items, so the
history holds the same number of items before and after the turn. Each event is applied as the session
applies it, followed by the read the session makes for its ``history_updated`` event: ``items`` (the
tuple), and ``snapshot`` where the history has one (the sequence that costs O(blocks) to take).

Prints microseconds per event (median over rounds, min, max, spread) for each size, and the ratio of
10,000 items to 100 items, taken within each round (sizes interleave, so both sides share the load).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

from _harness import ROOT, load_report, spread_percent, summary

sys.path.insert(0, str(ROOT / "src"))
from pyodide_realtime import _history  # noqa: E402

SIZES = (100, 1_000, 10_000)
ROUNDS = 9
TURNS_PER_ROUND = 100
#: Goal of issue #16: the cost per event at 10,000 items within this factor of the cost at 100.
FLATNESS_GOAL = 2.0
DELTAS = 10

Event = tuple[str, dict[str, Any], frozenset[str]]
PLACED = frozenset({"item", "previous_item_id"})


def message(item_id: str, role: str, text: str) -> dict[str, Any]:
    part = {"type": "input_text", "text": text} if role == "user" else {"type": "output_audio", "transcript": text}
    return {"id": item_id, "type": "message", "role": role, "content": [part], "status": "completed"}


def turn(n: int, previous: str, oldest: list[str]) -> tuple[list[Event | tuple[str, str, float]], str]:
    """The events of turn ``n`` after item ``previous``; it deletes as many of ``oldest`` as it adds."""
    user, call, output, reply = f"u{n}", f"fc{n}", f"out{n}", f"a{n}"
    events: list[Event | tuple[str, str, float]] = [
        ("conversation.item.added", {"item": {**message(user, "user", ""), "content": [{"type": "input_audio"}]},
                                     "previous_item_id": previous}, PLACED),
    ]
    events += [("conversation.item.input_audio_transcription.delta", {"item_id": user, "delta": "word "}, frozenset())] * 4
    events.append(("conversation.item.input_audio_transcription.completed", {"item_id": user, "transcript": "what time is it"},
                   frozenset()))
    events.append(("conversation.item.added", {"item": {"id": call, "type": "function_call", "call_id": f"c{n}", "name": "now",
                                                        "arguments": ""}, "previous_item_id": user}, PLACED))
    events += [("response.function_call_arguments.delta", {"item_id": call, "call_id": f"c{n}", "delta": "{}"}, frozenset())] * 3
    events.append(("conversation.item.added", {"item": {"id": output, "type": "function_call_output", "call_id": f"c{n}",
                                                        "output": "noon"}, "previous_item_id": call}, PLACED))
    events.append(("response.output_item.added", {"item": {**message(reply, "assistant", ""), "status": "in_progress"}}, frozenset()))
    events.append(("conversation.item.added", {"item": {**message(reply, "assistant", ""), "status": "in_progress"},
                                               "previous_item_id": output}, PLACED))
    for _ in range(DELTAS):
        events.append(("audio", reply, 100.0))
        events.append(("response.output_audio_transcript.delta", {"item_id": reply, "delta": "It is noon "}, frozenset()))
    events.append(("conversation.item.done", {"item": message(reply, "assistant", "It is noon " * DELTAS)}, frozenset()))
    # Three items were added (the output folds into its call): three of the oldest go.
    events += [("conversation.item.deleted", {"item_id": oldest.pop(0)}, frozenset()) for _ in range(3)]
    oldest += [user, call, reply]
    return events, reply


def filled(size: int) -> tuple[Any, list[str]]:
    """A history of ``size`` messages, and their ids, oldest first."""
    _history.MAX_HISTORY_ITEMS = max(getattr(_history, "MAX_HISTORY_ITEMS", 0), 2 * max(SIZES))
    history = _history.History()
    ids = [f"m{i}" for i in range(size)]
    for i, item_id in enumerate(ids):
        history.receive("conversation.item.added",
                        {"item": message(item_id, "user" if i % 2 == 0 else "assistant", f"message {i}"),
                         "previous_item_id": ids[i - 1] if i else None}, PLACED)
    assert len(history.items) == size
    return history, ids


def measure(size: int, read: Callable[[Any], object]) -> float:
    """Microseconds per event over one round of turns at ``size`` items."""
    history, oldest = filled(size)
    previous, script = oldest[-1], []
    for n in range(TURNS_PER_ROUND):
        events, previous = turn(n, previous, oldest)
        script.extend(events)
    gc.collect()
    receive, audio = history.receive, history.audio
    started = time.perf_counter()
    for kind, event, fields in script:
        if kind == "audio":
            audio(event, fields)
        else:
            receive(kind, event, fields)
        read(history)
    elapsed = time.perf_counter() - started
    assert len(history.items) == size, "the turns must leave the history at its size"
    return 1e6 * elapsed / len(script)


def main() -> int:
    reads: dict[str, Callable[[Any], object]] = {"receive + items": lambda h: h.items}
    if hasattr(_history.History, "snapshot"):
        reads["receive + snapshot"] = lambda h: h.snapshot
    load_before = load_report()
    results: dict[str, dict[int, list[float]]] = {name: {size: [] for size in SIZES} for name in reads}
    for _ in range(ROUNDS):
        for name, read in reads.items():
            for size in SIZES:
                results[name][size].append(measure(size, read))
    print(f"history cost per event, {TURNS_PER_ROUND} turns of {len(turn(0, 'x', list('abc'))[0])} events x {ROUNDS} rounds")
    print(f"machine: {load_before} at the start, {load_report()} at the end")
    print(f"{'read after each event':<22}{'items':>8}{'us/event':>10}{'min':>8}{'max':>8}{'spread':>8}")
    medians = {}
    for name, by_size in results.items():
        for size, values in by_size.items():
            med, lo, hi = summary(values)
            print(f"{name:<22}{size:>8,}{med:>10.2f}{lo:>8.2f}{hi:>8.2f}{spread_percent(values):>7.0f}%")
        ratios = [big / small for big, small in zip(by_size[SIZES[-1]], by_size[SIZES[0]], strict=True)]
        medians[name], r_lo, r_hi = summary(ratios)
        print(f"{name:<22}{f'{SIZES[-1]:,} / {SIZES[0]:,} items':>26} = {medians[name]:.2f} (rounds {r_lo:.2f}-{r_hi:.2f})")
    best = min(medians, key=medians.__getitem__)
    verdict = "meets" if medians[best] <= FLATNESS_GOAL else "MISSES"
    print(f"{best}: {verdict} the goal, flat within {FLATNESS_GOAL}x from {SIZES[0]:,} to {SIZES[-1]:,} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
