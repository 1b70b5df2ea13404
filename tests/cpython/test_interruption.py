"""Interruption end to end through the transport, in CPython: an in-memory socket, a fake playback port
that plays on a virtual clock, no browser and no wall clock.

What is pinned here: who stops the player and when (before the measure for a player that stops where
it says it was heard, after it otherwise), where the truncation lands, that a reply heard to its end is
never cut, that a reply in its own audio format is measured in that format, and that a barge-in by
speech cancels only when the server will not. The browser suites keep what only Web Audio shows.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from pyodide_realtime import AudioInterrupted, OpenAIRealtimeWebSocket, SocketRequest
from pyodide_realtime._interfaces import SocketHandler, bytes_per_ms
from pyodide_realtime.dialects import get_dialect

KEY = "sk-test-interrupt-0123456789"
MS = 1.0


class Clock:
    """Virtual milliseconds: only the test moves them."""

    def __init__(self) -> None:
        self.now = 10_000.0


class VirtualTransport(OpenAIRealtimeWebSocket):
    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._clock = clock

    def _now_ms(self) -> float:
        return self._clock.now


class MemorySocket:
    """A socket whose peer is the test: ``sent`` holds what the transport sent, ``handler`` hears the peer."""

    def __init__(self, handler: SocketHandler) -> None:
        self.handler = handler
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    def types(self) -> list[str]:
        return [e["type"] for e in self.sent]

    def server(self, **event: Any) -> None:
        self.handler.on_message(json.dumps(event))


class PlaybackDouble:
    """A player on the virtual clock: each item plays after the one before it, in real time.

    ``stops_where_heard``: after ``stop()`` every item's position freezes where its sound stopped, and
    the stop itself lands ``stop_lag_ms`` later (the audio thread renders ahead), as AudioPlayer's does.
    Without it, positions are only meaningful until the stop (the seed's kind of output).
    """

    def __init__(self, clock: Clock, *, stops_where_heard: bool, stop_lag_ms: float = 0.0, has_finished: bool = True) -> None:
        self.clock = clock
        self.stops_where_heard = stops_where_heard
        self.stop_lag_ms = stop_lag_ms
        self.started_at: float | None = None
        self.items: list[tuple[str, int, float]] = []  # (item, content index, ms queued)
        self.finished_items: set[tuple[str, int]] = set()
        self.stopped_at: float | None = None
        self.calls: list[str] = []
        self.told: list[tuple[str, int, float]] = []  # the core's count, as the transport hands it on
        if not has_finished:
            self.finished = None  # type: ignore[assignment]

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: str) -> None:
        self.calls.append("play")
        if self.started_at is None:
            self.started_at = self.clock.now
        ms = len(data) / bytes_per_ms(audio_format)
        if self.items and self.items[-1][:2] == (item_id, content_index):
            self.items[-1] = (item_id, content_index, self.items[-1][2] + ms)
        else:
            self.items.append((item_id, content_index, ms))

    def _played_ms(self) -> float:
        if self.started_at is None:
            return 0.0
        until = self.clock.now if self.stopped_at is None else self.stopped_at
        return max(until - self.started_at, 0.0)

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        self.calls.append("heard_ms")
        return self._position(item_id, content_index)

    def _position(self, item_id: str, content_index: int) -> float | None:
        offset, played = 0.0, self._played_ms()
        for item, index, ms in self.items:
            if (item, index) == (item_id, content_index):
                return min(max(played - offset, 0.0), ms)
            offset += ms
        return None

    def audio_received(self, item_id: str, content_index: int, received_ms: float) -> None:
        self.told.append((item_id, content_index, received_ms))

    def finish(self, item_id: str, content_index: int) -> None:
        self.finished_items.add((item_id, content_index))

    def finished(self, item_id: str, content_index: int) -> bool:
        heard = self._position(item_id, content_index)
        total = next((ms for item, index, ms in self.items if (item, index) == (item_id, content_index)), None)
        return (item_id, content_index) in self.finished_items and heard is not None and heard >= (total or 0.0)

    def stop(self) -> None:
        self.calls.append("stop")
        self.stopped_at = self.clock.now + self.stop_lag_ms


async def connected(clock: Clock, player: PlaybackDouble | None = None, *, dialect: str = "ga",
                    interrupt_response: bool | None = None) -> tuple[VirtualTransport, MemorySocket, list[tuple[str, Any]]]:
    sockets: list[MemorySocket] = []

    def factory(request: SocketRequest, handler: SocketHandler) -> MemorySocket:
        sockets.append(MemorySocket(handler))
        return sockets[-1]

    transport = VirtualTransport(clock, url="wss://realtime.test/v1", api_key=KEY, dialect=dialect, create_websocket=factory)
    if player is not None:
        transport.attach_audio_output(player)
    got: list[tuple[str, Any]] = []
    for name in ("audio_interrupted", "speech_started", "error", "turn_done"):
        transport.on(name, lambda payload, name=name: got.append((name, payload)))
    config = None if interrupt_response is None else {"turn_detection": {"type": "server_vad", "interrupt_response": interrupt_response}}
    connecting = asyncio.ensure_future(transport.connect(initial_session_config=config))
    await asyncio.sleep(0)  # the attempt reaches the factory: no time passes on the virtual clock
    (socket,) = sockets
    socket.handler.on_open("realtime")
    await connecting
    socket.sent.clear()
    return transport, socket, got


def audio(socket: MemorySocket, dialect: str, *, item: str, ms: float, bpm: int = 48, response: str = "resp_1") -> None:
    socket.server(type=get_dialect(dialect).wire.audio_delta, response_id=response, item_id=item, output_index=0, content_index=0,
                  delta=base64.b64encode(bytes(int(ms * bpm))).decode())


def audio_done(socket: MemorySocket, dialect: str, *, item: str, response: str = "resp_1") -> None:
    socket.server(type=get_dialect(dialect).wire.audio_done, response_id=response, item_id=item, output_index=0, content_index=0)


def truncations(socket: MemorySocket) -> list[tuple[str, int]]:
    return [(e["item_id"], e["audio_end_ms"]) for e in socket.sent if e["type"] == "conversation.item.truncate"]


DIALECTS = ["ga", "beta"]


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("by", ["app", "speech"])
@pytest.mark.parametrize("stops_where_heard", [True, False], ids=["stops-where-heard", "measured-first"])
async def test_an_interruption_cuts_where_the_sound_stopped(dialect: str, by: str, stops_where_heard: bool) -> None:
    clock = Clock()
    player = PlaybackDouble(clock, stops_where_heard=stops_where_heard, stop_lag_ms=12.0)
    transport, socket, got = await connected(clock, player, dialect=dialect)
    socket.server(type="response.created", response={"id": "resp_1"})
    for _ in range(5):  # 500 ms arrive at once: faster than real time, as the API sends them
        audio(socket, dialect, item="item_1", ms=100)
    clock.now += 230.0
    player.calls.clear()
    if by == "app":
        transport.interrupt()
    else:
        socket.server(type="input_audio_buffer.speech_started", audio_start_ms=5, item_id="user_1")
    if stops_where_heard:  # stopped first: the truncation is where the sound stopped, lag included
        assert player.calls == ["stop", "heard_ms"]
        expected = 242
    else:  # the seed's order: measured, then stopped (the sound ran on past the truncation)
        assert player.calls == ["heard_ms", "stop"]
        expected = 230
    assert socket.types() == ["response.cancel", "conversation.item.truncate"]
    assert truncations(socket) == [("item_1", expected)]
    assert [p for n, p in got if n == "audio_interrupted"] == [AudioInterrupted((("item_1", 0, expected),))]
    # Late audio of the cut item is never played.
    played = len(player.items)
    audio(socket, dialect, item="item_1", ms=100)
    assert len(player.items) == played and player.items[0][2] == 500.0
    assert [n for n, _ in got if n == "error"] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("interrupt_response", [True, False, None])
async def test_a_barge_in_by_speech_cancels_only_when_the_server_will_not(interrupt_response: bool | None) -> None:
    clock = Clock()
    player = PlaybackDouble(clock, stops_where_heard=True)
    transport, socket, got = await connected(clock, player, interrupt_response=interrupt_response)
    socket.server(type="response.created", response={"id": "resp_1"})
    audio(socket, "ga", item="item_1", ms=300)
    clock.now += 120.0
    seen: list[tuple[str, ...]] = []
    # The speech_started listeners run before the interruption (the seed's order): nothing sent yet.
    transport.on("speech_started", lambda _event: seen.append(tuple(socket.types())))
    socket.server(type="input_audio_buffer.speech_started", audio_start_ms=5, item_id="user_1")
    assert seen == [()]
    cancel = ["response.cancel"] if interrupt_response is not True else []
    assert socket.types() == [*cancel, "conversation.item.truncate"]
    assert truncations(socket) == [("item_1", 120)]


def interrupt(transport: VirtualTransport, socket: MemorySocket, by: str) -> None:
    if by == "app":
        transport.interrupt()
    else:
        socket.server(type="input_audio_buffer.speech_started", audio_start_ms=5, item_id="user_1")


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("by", ["app", "speech"])
@pytest.mark.parametrize("stops_where_heard", [True, False], ids=["stops-where-heard", "measured-first"])
@pytest.mark.parametrize("has_finished", [True, False], ids=["finished()", "heard-to-its-end"])
async def test_a_reply_heard_to_its_end_is_not_cut_and_the_next_one_is(
    dialect: str, by: str, stops_where_heard: bool, has_finished: bool
) -> None:
    clock = Clock()
    player = PlaybackDouble(clock, stops_where_heard=stops_where_heard, has_finished=has_finished)
    transport, socket, got = await connected(clock, player, dialect=dialect)
    socket.server(type="response.created", response={"id": "resp_1"})
    audio(socket, dialect, item="item_1", ms=200)
    audio_done(socket, dialect, item="item_1")
    socket.server(type="response.done", response={"id": "resp_1", "status": "completed"})
    assert player.finished_items == {("item_1", 0)}  # the transport told the player the item is done
    clock.now += 250.0  # all 200 ms played
    interrupt(transport, socket, by)
    assert socket.sent == []  # nothing to cancel, nothing to cut
    # A player that says what finished is not even stopped; one that stops where heard but cannot say
    # is stopped to measure; one measured first is stopped only once something was cut.
    assert player.calls.count("stop") == (1 if stops_where_heard and not has_finished else 0)
    player.stopped_at = None
    # The next reply, still playing, is cut where it was heard.
    socket.server(type="response.created", response={"id": "resp_2"})
    audio(socket, dialect, item="item_2", ms=300, response="resp_2")
    clock.now += 40.0  # item_2 starts after item_1's 200 ms: 90 ms of it heard by now
    interrupt(transport, socket, by)
    assert truncations(socket) == [("item_2", 90)]
    assert [p for n, p in got if n == "audio_interrupted"] == [AudioInterrupted((("item_2", 0, 90),))]


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("by", ["app", "speech"])
@pytest.mark.parametrize("stops_where_heard", [True, False], ids=["stops-where-heard", "measured-first"])
async def test_a_reply_in_its_own_audio_format_is_played_measured_and_clamped_in_it(
    dialect: str, by: str, stops_where_heard: bool
) -> None:
    clock = Clock()
    player = PlaybackDouble(clock, stops_where_heard=stops_where_heard)
    transport, socket, _got = await connected(clock, player, dialect=dialect)  # the session says pcm16
    own = {"audio": {"output": {"format": {"type": "audio/pcmu"}}}} if dialect == "ga" else {"output_audio_format": "g711_ulaw"}
    socket.server(type="response.created", response={"id": "resp_1", **own})
    audio(socket, dialect, item="item_1", ms=150, bpm=bytes_per_ms("g711_ulaw"))  # 1,200 bytes: 150 ms of G.711
    assert transport.protocol.audio_received_ms == 150.0
    clock.now += 400.0  # the clock ran past the audio received: the cut is clamped to it
    player.stopped_at = clock.now + 1000.0  # an output that says it played further than it was given
    player.started_at = clock.now - 1000.0
    interrupt(transport, socket, by)
    assert truncations(socket) == [("item_1", 150)]
    clock.now += 1.0
    socket.server(type="response.created", response={"id": "resp_2"})  # the session's format again
    audio(socket, dialect, item="item_2", ms=100, bpm=bytes_per_ms("pcm16"), response="resp_2")
    assert transport.protocol.audio_received_ms == 100.0
    assert player.told == [("item_1", 0, 150.0), ("item_2", 0, 100.0)]  # the core's count, each in its format


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_player_is_told_the_cores_count_of_audio_received(dialect: str) -> None:
    """Received audio is counted once, in the core: the player gets that count after each chunk (what a
    finished item reports as heard), so the two can never disagree."""
    clock = Clock()
    player = PlaybackDouble(clock, stops_where_heard=True)
    transport, socket, _got = await connected(clock, player, dialect=dialect)
    seen: list[float] = []
    transport.on("audio", lambda event: seen.append(event.received_ms))
    socket.server(type="response.created", response={"id": "resp_1"})
    for ms in (100, 33.3, 0.5):  # 4,800, 1,598 and 24 bytes: ms that are not whole
        audio(socket, dialect, item="item_1", ms=ms)
    socket.server(type="response.created", response={"id": "resp_2"})
    audio(socket, dialect, item="item_2", ms=20, response="resp_2")
    assert [ms for *_, ms in player.told] == seen == [100.0, 133.29166666666666, 133.79166666666666, 20.0]
    assert [key for *key, _ in player.told] == [["item_1", 0]] * 3 + [["item_2", 0]]
    assert transport.protocol.audio_received_ms == 133.79166666666666 + 20.0
    transport.attach_audio_output(None)
    audio(socket, dialect, item="item_2", ms=10, response="resp_2")
    assert len(player.told) == 4  # a detached player hears nothing more


@pytest.mark.asyncio
async def test_without_a_player_the_wall_clock_estimate_is_the_virtual_clock() -> None:
    clock = Clock()
    transport, socket, _got = await connected(clock)
    socket.server(type="response.created", response={"id": "resp_1"})
    audio(socket, "ga", item="item_1", ms=300)
    clock.now += 75.5
    transport.interrupt()
    assert socket.types() == ["response.cancel", "conversation.item.truncate"]
    assert truncations(socket) == [("item_1", 75)]


@pytest.mark.asyncio
async def test_an_overridden_interrupt_hook_gets_the_barge_in_and_its_cancel_decision() -> None:
    clock = Clock()
    calls: list[tuple[Any, bool]] = []

    class Hooked(VirtualTransport):
        def _interrupt(self, elapsed_ms: Any, cancel_ongoing_response: bool = True) -> None:
            calls.append((elapsed_ms, cancel_ongoing_response))
            super()._interrupt(42, cancel_ongoing_response)

    sockets: list[MemorySocket] = []
    transport = Hooked(clock, url="wss://realtime.test/v1", api_key=KEY,
                       create_websocket=lambda request, handler: sockets.append(MemorySocket(handler)) or sockets[-1])
    connecting = asyncio.ensure_future(transport.connect(
        initial_session_config={"turn_detection": {"type": "server_vad", "interrupt_response": True}}))
    await asyncio.sleep(0)
    sockets[0].handler.on_open("realtime")
    await connecting
    socket = sockets[0]
    socket.sent.clear()
    socket.server(type="response.created", response={"id": "resp_1"})
    audio(socket, "ga", item="item_1", ms=300)
    socket.server(type="input_audio_buffer.speech_started", audio_start_ms=5, item_id="user_1")
    assert calls == [(None, False)]  # the core decided: the server cancels by itself
    assert socket.types() == ["conversation.item.truncate"] and truncations(socket) == [("item_1", 42)]
