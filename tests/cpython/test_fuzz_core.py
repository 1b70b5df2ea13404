"""The project's own fuzzing of the protocol core: mutated real events of both dialects.

Hypothesis mutates one realistic sample of every server event type (realtime_samples.py): values of
the wrong type, keys removed, types swapped, frames cut short, huge and deeply nested values, unicode
edges (lone surrogates, BOM, NUL, RTL marks). For each case: nothing escapes ``receive()``, every
``error`` payload is an ErrorEvent, every frame the core sends back is strict JSON, and a valid
exchange still works afterwards. A separate run checks that memory stays flat.

The normal test run keeps it short: 300 cases of 4 frames, a fixed campaign of 700 frames and a
memory run of 2,500. ``./build.sh fuzz [N]`` runs the campaigns (``PYRT_FUZZ_EXAMPLES``: N cases, 200,000
by default, so 800,000 frames; then the fixed campaign is 7,000 frames and the memory run 20,500).
``python tests/cpython/test_fuzz_core.py N`` prints what the core made of N frames of each mutation (the
README's table). Hypothesis keeps its caches outside the work tree (tests/conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import gc
import json
import logging
import os
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realtime_samples import beta_samples, ga_samples

from pyodide_realtime._core import RealtimeProtocol
from pyodide_realtime.dialects import get_dialect
from pyodide_realtime.events import ErrorEvent

#: Cases per hypothesis test; each case feeds FRAMES_PER_CASE mutated frames. ``./build.sh fuzz`` sets
#: PYRT_FUZZ_EXAMPLES: a campaign, with every figure below scaled up.
SUITE_EXAMPLES = 300
FUZZ_EXAMPLES = int(os.environ.get("PYRT_FUZZ_EXAMPLES", SUITE_EXAMPLES))
CAMPAIGN = FUZZ_EXAMPLES > SUITE_EXAMPLES
FRAMES_PER_CASE = 4
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # a shared machine: time is measured by the benchmarks, not here
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Memory run: frames fed to one long-lived core, and the growth allowed between the warm-up and
#: the end: 50 bytes per frame, so a leak of even 100 bytes per frame exceeds it.
MEMORY_WARMUP_FRAMES = 500
MEMORY_FRAMES = MEMORY_WARMUP_FRAMES + (20_000 if CAMPAIGN else 2_000)
MEMORY_GROWTH_LIMIT = 50 * (MEMORY_FRAMES - MEMORY_WARMUP_FRAMES)
#: Frames per mutation in the fixed campaign (seven mutations).
CAMPAIGN_FRAMES = 1_000 if CAMPAIGN else 100

SAMPLES = {"ga": ga_samples(), "beta": beta_samples()}
ALL_TYPES = sorted({t for samples in SAMPLES.values() for t in samples})
RAW = "__pyrt_raw__"  # a string replaced by raw JSON text after encoding (nesting json.dumps refuses)

UNICODE_EDGES = ["", "\x00", "\ufeff", "\u202e", "\U0001f600", "e\u0301", "\ud800", "\udc00x", "\ud83d", "\uffff",
                 "\u2028", "\\", '"', "\x7f", "\U0010ffff"]
EDGE_VALUES: list[Any] = ["12", "", 1e999, -1e999, float("nan"), -1, 0, 2**64, -(2**63) - 1, True, False, None, {}, [],
                          [None], {"": None}, 0.5, *UNICODE_EDGES]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth if depth % 2 else '{"a":' * depth + "1" + "}" * depth


HUGE: list[str] = ['"' + "x" * 1_000_000 + '"', "[" + ",".join(["1"] * 100_000) + "]", nested(5_000), nested(200)]

leaves = st.one_of(
    st.sampled_from(EDGE_VALUES), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.lists(st.sampled_from(UNICODE_EDGES), max_size=4).map("".join), st.booleans(), st.none(),
)
hostile = st.one_of(
    leaves,
    st.recursive(leaves, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                 max_leaves=8),
    st.sampled_from(ALL_TYPES),  # a known type name where something else was expected
)
#: Raw JSON to splice in, drawn as a number (so a failing case prints short): a nesting depth, or
#: minus one of HUGE.
raw_values = st.one_of(st.integers(1, 3_000), st.integers(-len(HUGE), -1))


def raw_text(spec: int) -> str:
    return nested(spec) if spec > 0 else HUGE[-spec - 1]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def put(event: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> None:
    target = event
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


#: The mutations, by the number ``mutate`` draws (the campaign's table reports by these names).
MUTATIONS = ("wrong value", "key removed", "type swapped", "raw nested/huge JSON", "two wrong values", "cut short",
             "not an event")


def mutate(event: dict[str, Any], rnd: random.Random, value: Any, raw: int, op: int | None = None) -> str:
    """One mutated frame of ``event`` (changed in place): ``value`` or ``raw`` go somewhere."""
    op = rnd.randrange(len(MUTATIONS)) if op is None else op
    where = paths(event)
    path = rnd.choice(where) if where else ("type",)
    if op == 0:
        put(event, path, value)
    elif op == 1:
        put(event, path, None, delete=True)
    elif op == 2:
        event["type"] = rnd.choice(ALL_TYPES)  # every field of another event type
    elif op == 3:
        put(event, path, RAW)
    elif op == 4:
        put(event, path, value)
        other = rnd.choice(where) if where else ("x",)
        with contextlib.suppress(KeyError, IndexError, TypeError):  # the first change may have removed its place
            put(event, other, copy.deepcopy(value))
    text = json.dumps(event, allow_nan=True).replace(json.dumps(RAW), raw_text(raw))
    if op == 5:
        return text[: rnd.randrange(len(text) + 1)]  # cut short
    if op == 6:
        return rnd.choice(["null", "[]", "7", '"response.done"', text + text, text.encode("utf-16")[2:].hex()])
    return text


# Driving the core ------------------------------------------------------------------------------------
def strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"the core sent {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


class Player:
    """A player double that answers what was heard and what finished (both can be anything)."""

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        return 50.0 if item_id.endswith("1") else None

    def finished(self, item_id: str, content_index: int) -> bool:
        return item_id == "item_a1"


def feed(core: RealtimeProtocol, text: str | bytes, now_ms: float, heard: Any) -> list[tuple[str, Any]]:
    core.receive(text, now_ms=now_ms, heard_ms=heard)
    for frame in core.data_to_send():
        strict_json(frame)
    events = core.events_received()
    for name, payload in events:
        if name == "error":
            assert isinstance(payload, ErrorEvent) and isinstance(payload.exception, BaseException)
    return events


def opened(dialect: str) -> RealtimeProtocol:
    core = RealtimeProtocol(dialect, model="fuzz-model")
    core.connection_opening()
    core.connection_opened(None)
    samples = SAMPLES[dialect]
    audio = get_dialect(dialect).wire.audio_delta
    for name in ("session.created", "response.created", audio):
        feed(core, json.dumps(samples[name]), 0.0, None)
    return core


def assert_still_works(core: RealtimeProtocol, dialect: str, now_ms: float) -> None:
    """A valid exchange after the mutated frames: a message, a response with audio, its turn_done."""
    samples = SAMPLES[dialect]
    for _ in range(8):  # end whatever the mutations left running or requested
        if core.response_state == "idle":
            break
        feed(core, json.dumps(samples["response.created"]), now_ms, None)
        feed(core, json.dumps(samples["response.done"]), now_ms, None)
    assert core.response_state == "idle" and core.held_response_creates == 0
    core.send_message("still there?")
    assert [strict_json(f)["type"] for f in core.data_to_send()] == ["conversation.item.create", "response.create"]
    core.events_received()
    created = {**samples["response.created"], "response": {**samples["response.created"]["response"], "id": "resp_ok"}}
    feed(core, json.dumps(created), now_ms, None)
    audio = get_dialect(dialect).wire.audio_delta
    pcm = bytes(range(96))
    delta = {**samples[audio], "response_id": "resp_ok", "item_id": "item_ok", "delta": base64.b64encode(pcm).decode()}
    events = feed(core, json.dumps(delta), now_ms, None)
    assert [p.data for n, p in events if n == "audio"] == [pcm]
    done = {**samples["response.done"], "response": {**samples["response.done"]["response"], "id": "resp_ok"}}
    events = feed(core, json.dumps(done), now_ms, None)
    assert [(p.response_id, p.status) for n, p in events if n == "turn_done"] == [("resp_ok", "completed")]


@FUZZ
@given(
    dialect=st.sampled_from(["ga", "beta"]),
    cases=st.lists(st.tuples(st.sampled_from(ALL_TYPES), hostile, raw_values), min_size=FRAMES_PER_CASE,
                   max_size=FRAMES_PER_CASE),
    rnd=st.randoms(use_true_random=False),
    as_bytes=st.booleans(),
)
def test_mutated_events_never_escape_and_a_valid_exchange_works_afterwards(
    dialect: str, cases: list[tuple[str, Any, int]], rnd: random.Random, as_bytes: bool
) -> None:
    core = opened(dialect)
    samples = SAMPLES[dialect]
    player = Player()
    for i, (name, value, raw) in enumerate(cases):
        event = json.loads(json.dumps(samples.get(name) or samples["error"]))
        text = mutate(event, rnd, value, raw)
        heard = rnd.choice([None, player, player.heard_ms, 120.0])
        payload: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
        feed(core, payload, 100.0 * i, heard)
        if rnd.random() < 0.25:
            # The app interrupts amid the hostile frames: what it sends back is still strict JSON.
            core.interrupt(100.0 * i + 50.0, heard)
            for frame in core.data_to_send():
                strict_json(frame)
    assert_still_works(core, dialect, 1000.0)


def test_memory_stays_flat_over_many_mutated_events(caplog: pytest.LogCaptureFixture) -> None:
    # The log capture would keep every record (a mended surrogate logs a warning): not the core's memory.
    caplog.set_level(logging.ERROR, logger="pyodide_realtime")
    rnd = random.Random(9)
    cores = {dialect: opened(dialect) for dialect in ("ga", "beta")}

    def run(frames: range) -> None:
        for i in frames:
            dialect = "ga" if i % 2 else "beta"
            core = cores[dialect]
            samples = SAMPLES[dialect]
            event = json.loads(json.dumps(samples[rnd.choice(sorted(samples))] if i % 3 else samples["response.done"]))
            raw = rnd.randrange(1, 400)
            feed(core, mutate(event, rnd, rnd.choice(EDGE_VALUES), raw), float(i), rnd.choice([None, 10.0]))
            if i % 500 == 0:
                assert_still_works(core, dialect, float(i))

    run(range(MEMORY_WARMUP_FRAMES))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(range(MEMORY_WARMUP_FRAMES, MEMORY_FRAMES))
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    growth = sum(stat.size_diff for stat in stats)
    print(f"memory growth: {growth} bytes over {MEMORY_FRAMES - MEMORY_WARMUP_FRAMES} frames")
    top = "\n".join(str(stat) for stat in stats[:5])
    assert growth < MEMORY_GROWTH_LIMIT, f"memory grew by {growth} bytes over {MEMORY_FRAMES - MEMORY_WARMUP_FRAMES} frames:\n{top}"


def campaign(frames_per_mutation: int, seed: int = 1) -> dict[str, list[int]]:
    """What the core made of ``frames_per_mutation`` mutated frames of each mutation: per mutation,
    [frames, typed, malformed, generic, ignored, escaped]. Deterministic for a seed."""
    from pyodide_realtime.events import GenericServerEvent, MalformedServerEvent

    rnd = random.Random(seed)
    table: dict[str, list[int]] = {}
    for op, name in enumerate(MUTATIONS):
        counts = table[name] = [0] * 6
        for i in range(frames_per_mutation):
            dialect = "ga" if i % 2 else "beta"
            samples = SAMPLES[dialect]
            core = opened(dialect)
            event = json.loads(json.dumps(samples[rnd.choice(sorted(samples))]))
            text = mutate(event, rnd, rnd.choice(EDGE_VALUES), rnd.choice([rnd.randrange(1, 3_000), -rnd.randrange(1, 5)]), op)
            counts[0] += 1
            try:
                parsed = core.receive(text)
            except Exception:  # noqa: BLE001 - counted: the figure the table exists for
                counts[5] += 1
                continue
            kind = type(parsed)
            counts[2 if kind is MalformedServerEvent else 3 if kind is GenericServerEvent else 4 if parsed is None else 1] += 1
    return table


def test_a_fixed_campaign_of_every_mutation_has_no_escape(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyodide_realtime")
    table = campaign(CAMPAIGN_FRAMES)
    assert {name: counts[5] for name, counts in table.items()} == dict.fromkeys(MUTATIONS, 0)
    # Each mutation reached the core's parse paths it is meant for.
    assert table["type swapped"][2] > 0 and table["cut short"][2] > 0 and table["wrong value"][3] > 0


def test_hypothesis_keeps_its_files_out_of_the_work_tree() -> None:
    from hypothesis.configuration import storage_directory

    root = Path(__file__).resolve().parents[2]
    where = storage_directory("unicode_data", intent_to_write=False).path
    assert root / ".cache" in where.parents, where  # ignored by git, with the build's caches; not ./.hypothesis


def print_campaign(frames_per_mutation: int) -> None:
    """``python tests/cpython/test_fuzz_core.py N``: the table for the README."""
    logging.getLogger("pyodide_realtime").setLevel(logging.ERROR)
    widths = (8, 8, 10, 8, 8, 8)
    print(f"{'mutation':22} {'frames':>8} {'typed':>8} {'malformed':>10} {'generic':>8} {'ignored':>8} {'escaped':>8}")
    table = campaign(frames_per_mutation)
    totals = [sum(column) for column in zip(*table.values(), strict=True)]
    for name, counts in [*table.items(), ("all", totals)]:
        print(f"{name:22} " + " ".join(f"{c:>{w},}" for c, w in zip(counts, widths, strict=True)))


if __name__ == "__main__":
    import sys

    print_campaign(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000)
