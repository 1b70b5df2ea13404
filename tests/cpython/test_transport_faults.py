"""Faults a peer or a network inflicts, through the CPython backend against a real loopback peer:
oversized messages, silent and stalled endings, close codes, a slow uplink, sends on a dead socket."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection

from pyodide_realtime import (
    ConfigurationError,
    ConnectionClosedError,
    ErrorEvent,
    OpenAIRealtimeWebSocket,
    SocketRequest,
    _cpython_socket,
)
from pyodide_realtime._cpython_socket import create_cpython_socket
from pyodide_realtime._interfaces import MAX_BUFFERED_AUDIO_BYTES, MAX_MESSAGE_BYTES, describe_close
from pyodide_realtime.transport import AudioDropped
from scripted_server import LoopbackPeer, until

KEY = "sk-test-faults"


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[LoopbackPeer]:
    async with LoopbackPeer() as loopback:
        yield loopback



def errors_of(transport: OpenAIRealtimeWebSocket) -> list[BaseException]:
    got: list[BaseException] = []
    transport.on("error", lambda e: got.append(e.exception if isinstance(e, ErrorEvent) else e))
    return got


def event_of_size(size: int) -> str:
    """A valid server event of exactly ``size`` bytes of UTF-8."""
    head = json.dumps({"type": "x.padding", "pad": ""})
    return head[:-2] + "x" * (size - len(head)) + head[-2:]


# Oversized messages ------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_message_over_the_bound_closes_with_1009_and_a_clear_error(peer: LoopbackPeer) -> None:
    async def on_event(ws: ServerConnection, event: dict[str, Any]) -> None:
        if event["type"] == "test.size":
            await ws.send(event_of_size(event["n"]))

    peer.on_event = on_event
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY, max_message_bytes=1000)
    errors = errors_of(transport)
    seen: list[str] = []
    transport.on("x.padding", lambda e: seen.append(e.type))
    await transport.connect()
    transport.send_event({"type": "test.size", "n": 1000})  # exactly at the bound: read
    await until(lambda: seen == ["x.padding"])
    transport.send_event({"type": "test.size", "n": 1001})
    await until(lambda: transport.status == "disconnected")
    (error,) = errors
    assert isinstance(error, ConnectionClosedError) and error.code == 1009
    assert "more than 1000 bytes" in str(error) and "max_message_bytes" in str(error)
    assert seen == ["x.padding"]
    await until(lambda: bool(peer.closes))
    assert peer.closes[0][0] == 1009  # the peer was told why


@pytest.mark.asyncio
async def test_the_default_bound_refuses_a_hostile_frame_without_reading_it(peer: LoopbackPeer) -> None:
    async def on_open(ws: ServerConnection) -> None:
        await ws.send(event_of_size(4 * 1024 * 1024))  # a big real event (a long retrieved item): read
        await ws.send(event_of_size(MAX_MESSAGE_BYTES + 1))

    peer.on_open = on_open
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
    errors = errors_of(transport)
    sizes: list[int] = []
    transport.on("x.padding", lambda e: sizes.append(len(e.pad)))
    await transport.connect()
    await until(lambda: transport.status == "disconnected")
    assert len(sizes) == 1 and sizes[0] > 4_000_000
    assert [getattr(e, "code", None) for e in errors] == [1009]


@pytest.mark.asyncio
async def test_a_compressed_frame_is_bounded_by_what_it_inflates_to() -> None:
    async with LoopbackPeer(compression="deflate") as peer:
        async def on_open(ws: ServerConnection) -> None:
            await ws.send(event_of_size(MAX_MESSAGE_BYTES + 1))  # a deflate bomb: ~17 MB of "x", ~17 KB on the wire

        peer.on_open = on_open
        transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
        errors = errors_of(transport)
        await transport.connect()
        await until(lambda: transport.status == "disconnected")
        assert [getattr(e, "code", None) for e in errors] == [1009]
        assert peer.connections[0].protocol.extensions  # permessage-deflate was on


@pytest.mark.parametrize("bad", [0, -1, 1.5, "16MB", True])
def test_a_bad_bound_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_message_bytes"):
        OpenAIRealtimeWebSocket(max_message_bytes=bad)
    with pytest.raises(ConfigurationError, match="max_buffered_audio_bytes"):
        OpenAIRealtimeWebSocket(max_buffered_audio_bytes=bad)


# Endings that said nothing ----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_normal_close_in_the_middle_of_a_response_reports_the_cut_response(peer: LoopbackPeer) -> None:
    async def on_event(ws: ServerConnection, event: dict[str, Any]) -> None:
        if event["type"] == "response.create":
            await ws.send(json.dumps({"type": "response.created", "response": {"id": "r1"}}))
            await ws.send(json.dumps({"type": "response.output_text.delta", "response_id": "r1", "item_id": "i1",
                                      "output_index": 0, "content_index": 0, "delta": "half a sen"}))
            await ws.close(1000, "")
        elif event["type"] == "test.close":
            await ws.close(1000, "done")

    peer.on_event = on_event
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
    errors = errors_of(transport)
    await transport.connect()
    transport.send_message("hi")
    await until(lambda: transport.status == "disconnected")
    (error,) = errors
    assert isinstance(error, ConnectionClosedError) and error.code == 1000
    assert "middle of a response" in str(error) and "cut" in str(error) and "normal closure" in str(error)

    errors.clear()
    await transport.connect()
    transport.send_event({"type": "test.close"})  # a normal close with no response running: nothing wrong
    await until(lambda: transport.status == "disconnected")
    assert errors == []


@pytest.mark.asyncio
async def test_a_stalled_peer_is_reported_as_a_keepalive_timeout(peer: LoopbackPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cpython_socket, "PING_INTERVAL_S", 0.1)
    monkeypatch.setattr(_cpython_socket, "PING_TIMEOUT_S", 0.3)
    monkeypatch.setattr(_cpython_socket, "CLOSE_TIMEOUT_S", 0.2)

    async def stall(ws: ServerConnection) -> None:
        ws.transport.pause_reading()  # alive, but deaf: no pong will come

    peer.on_open = stall
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
    errors = errors_of(transport)
    await transport.connect()
    started = time.monotonic()
    await until(lambda: transport.status == "disconnected")
    assert time.monotonic() - started < 3
    (error,) = errors
    assert isinstance(error, ConnectionClosedError)
    assert "no pong" in str(error) and "within 0.3 s" in str(error) and "keepalive" in str(error)
    assert "1006" not in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("code, words", [(1011, "internal error on the server"), (1008, "policy violation"),
                                         (4001, "application-defined"), (1013, "try again later")])
async def test_close_codes_come_with_words(peer: LoopbackPeer, code: int, words: str) -> None:
    async def on_event(ws: ServerConnection, event: dict[str, Any]) -> None:
        if event["type"] == "test.close":
            await ws.close(code, "because")

    peer.on_event = on_event
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
    errors = errors_of(transport)
    await transport.connect()
    transport.send_event({"type": "test.close"})
    await until(lambda: transport.status == "disconnected")
    (error,) = errors
    assert f"code {code} ({words}), because" in str(error)
    assert isinstance(error, ConnectionClosedError) and (error.code, error.reason) == (code, "because")


@pytest.mark.asyncio
async def test_a_dropped_connection_says_so(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY)
    errors = errors_of(transport)
    await transport.connect()
    peer.drop()
    await until(lambda: transport.status == "disconnected")
    (error,) = errors
    assert "code 1006 (abnormal closure: the connection dropped without a close frame" in str(error)
    # A sentence a person can read: no parentheses inside parentheses.
    depth = max_depth = 0
    for char in str(error):
        depth += {"(": 1, ")": -1}.get(char, 0)
        max_depth = max(max_depth, depth)
    assert max_depth == 1, str(error)


def test_describe_close() -> None:
    assert describe_close(1000) == "code 1000 (normal closure)"
    assert describe_close(1012, "restarting") == "code 1012 (service restart), restarting"
    assert describe_close(2999) == "code 2999 (unknown code)"
    assert describe_close(None) == "no close code"


# Sends on a dead socket -------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_send_on_a_closed_socket_raises_connection_closed_error(peer: LoopbackPeer) -> None:
    class Handler:
        def __init__(self) -> None:
            self.opened, self.closed = asyncio.Event(), asyncio.Event()

        def on_open(self, protocol: str) -> None:
            self.opened.set()

        def on_message(self, data: Any) -> None: ...
        def on_binary(self, size: int) -> None: ...
        def on_error(self, error: BaseException) -> None: ...

        def on_close(self, code: int, reason: str) -> None:
            self.closed.set()

    handler = Handler()
    socket = create_cpython_socket(SocketRequest(peer.url(), (), {"Authorization": f"Bearer {KEY}"}), handler)
    await asyncio.wait_for(handler.opened.wait(), 5)
    socket.close()
    with pytest.raises(ConnectionClosedError, match="closed"):
        socket.send("{}")
    await asyncio.wait_for(handler.closed.wait(), 5)
    with pytest.raises(ConnectionClosedError, match="closed"):
        socket.send("{}")


# A slow uplink ----------------------------------------------------------------------------------------
AUDIO_100MS_BYTES = 4800  # PCM16 24 kHz mono
# 2.5 minutes of audio: more than the kernel's send buffer (up to 4 MB) holds once the peer stops reading.
CHUNKS = 1500


@pytest.mark.asyncio
async def test_a_slow_uplink_drops_microphone_audio_instead_of_piling_it_up() -> None:
    async with LoopbackPeer(recv_buffer_bytes=4096) as peer:
        await slow_uplink(peer)


async def slow_uplink(peer: LoopbackPeer) -> None:
    async def deaf(ws: ServerConnection) -> None:
        ws.transport.pause_reading()  # the uplink stops draining (kernel buffers fill, then ours)

    peer.on_open = deaf
    cap = 64 * 1024
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=KEY, max_buffered_audio_bytes=cap)
    dropped: list[AudioDropped] = []
    transport.on("audio_dropped", dropped.append)
    await transport.connect()
    socket = transport.connection_state.websocket
    peak = 0
    for _ in range(CHUNKS):
        transport.send_audio(os.urandom(AUDIO_100MS_BYTES))  # noise: no compression could hide it
        peak = max(peak, socket.buffered_amount)  # type: ignore[union-attr]
        await asyncio.sleep(0)
    assert dropped, "no audio was dropped: the uplink never filled"
    assert all(d.bytes == AUDIO_100MS_BYTES and d.buffered_amount > cap for d in dropped)
    assert "max_buffered_audio_bytes" in dropped[0].reason
    # Bounded: at most one chunk (as base64 JSON) past the cap, whatever was offered.
    one_frame = AUDIO_100MS_BYTES * 4 // 3 + 100
    assert peak <= cap + one_frame, (peak, cap)
    sent_chunks = CHUNKS - len(dropped)
    assert sent_chunks * AUDIO_100MS_BYTES < 20 * 1024 * 1024  # the rest was refused, not queued
    transport.send_audio(b"", commit=True)  # a commit still goes out (after what is queued)
    transport.close()


def test_the_default_uplink_cap_holds_seconds_of_audio_not_minutes() -> None:
    per_second = 48_000 * 4 // 3  # PCM16 24 kHz as base64
    assert 2 * per_second < MAX_BUFFERED_AUDIO_BYTES < 10 * per_second
