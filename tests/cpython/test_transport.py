"""The whole transport through the CPython backend, against a scripted Realtime peer on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from pyodide_realtime import (
    AudioInterrupted,
    ConfigurationError,
    ConnectionChange,
    ConnectionClosedError,
    ConnectionFailedError,
    ErrorEvent,
    InvalidStateError,
    OpenAIRealtimeWebSocket,
    SessionConfig,
    SocketRequest,
    TransportAudio,
    UnsupportedError,
    __version__,
)
from pyodide_realtime import _connect as transport_module
from pyodide_realtime._cpython_socket import create_cpython_socket
from pyodide_realtime.dialects import BETA, GA

PCM16_100MS = 4800
DELTAS_PER_RESPONSE = 3
SECRET = "sk-test-SECRET-abc123"


class Peer:
    """Plays the Realtime API. Paths: /realtime (the protocol), /slow (handshake waits), /reject (HTTP 401).

    Client events it understands besides the protocol's: ``test.speech`` (answer speech_started),
    ``test.close`` (close 4001), ``test.garbage`` (malformed frames, then ``x.after_garbage``).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, Headers]] = []
        self.received: list[dict[str, Any]] = []
        self.release_slow = asyncio.Event()
        self.hold_responses = False
        self.port = 0
        self._responses = 0

    def url(self, path: str = "/realtime") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def types(self) -> list[str]:
        return [e["type"] for e in self.received]

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append((request.path, request.headers))
        if request.path.startswith("/slow"):
            try:
                await asyncio.wait_for(self.release_slow.wait(), 5)
            except TimeoutError:
                pass
        if request.path.startswith("/reject"):
            body = json.dumps({"error": {"code": "invalid_api_key", "message": f"Incorrect API key provided: {SECRET[:6]}***123."}})
            return Response(401, "Unauthorized", Headers([("Content-Type", "application/json")]), body.encode())
        return None

    async def handle(self, ws: ServerConnection) -> None:
        beta = ws.request is not None and "OpenAI-Beta" in ws.request.headers
        wire = (BETA if beta else GA).wire
        audio_delta, audio_done, transcript_delta = wire.audio_delta, wire.audio_done, wire.transcript_delta
        running: str | None = None
        await ws.send(json.dumps({"type": "session.created", "event_id": "evt_0", "session": {"id": "sess_1"}}))
        async for message in ws:
            event = json.loads(message)
            self.received.append(event)
            kind = event["type"]
            if kind == "session.update":
                await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))
            elif kind == "response.create":
                self._responses += 1
                running = f"resp_{self._responses}"
                item = f"item_{self._responses}"
                # A response with its own audio format echoes it (GA: audio.output.format), as the API does.
                own = {k: v for k, v in (event.get("response") or {}).items() if k in ("audio", "output_audio_format")}
                await ws.send(json.dumps({"type": "response.created", "response": {"id": running, **own}}))
                for i in range(DELTAS_PER_RESPONSE):
                    audio = bytes([i]) * PCM16_100MS
                    await ws.send(json.dumps({"type": audio_delta, "response_id": running, "item_id": item,
                                              "output_index": 0, "content_index": 0, "delta": base64.b64encode(audio).decode()}))
                await ws.send(json.dumps({"type": transcript_delta, "response_id": running, "item_id": item, "delta": "hi"}))
                if not self.hold_responses:
                    await ws.send(json.dumps({"type": audio_done, "response_id": running, "item_id": item, "content_index": 0}))
                    await ws.send(json.dumps({"type": "response.done", "response": {"id": running, "status": "completed",
                                                                                      "usage": {"input_tokens": 1, "output_tokens": 2}}}))
                    running = None
            elif kind == "response.cancel":
                if running is None:
                    await ws.send(json.dumps({"type": "error", "error": {"code": "response_cancel_not_active"}}))
                else:
                    await ws.send(json.dumps({"type": "response.done", "response": {"id": running, "status": "cancelled"}}))
                    running = None
            elif kind == "test.speech":
                await ws.send(json.dumps({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "u1"}))
            elif kind == "test.close":
                await ws.close(4001, "bye")
                return
            elif kind == "test.garbage":
                for frame in ("not json", "[1]", '{"no_type": 1}', b"\x00\x01"):
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "x.after_garbage", "n": 1}))


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Peer]:
    server_peer = Peer()
    async with serve(server_peer.handle, "127.0.0.1", 0, process_request=server_peer.process_request, max_size=None) as server:
        server_peer.port = server.sockets[0].getsockname()[1]
        yield server_peer
        server_peer.release_slow.set()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def record(transport: OpenAIRealtimeWebSocket, *names: str) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    for name in names:
        transport.on(name, lambda payload, name=name: got.append((name, payload)))
    return got


class FakePlayer:
    """An AudioOutput test double: the real one needs Web Audio (tested in the browser suite)."""

    def __init__(self, heard: float | None) -> None:
        self.heard = heard
        self.played: list[tuple[int, str, int, str]] = []
        self.stops = 0

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: str) -> None:
        self.played.append((len(data), item_id, content_index, audio_format))

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        return self.heard

    def stop(self) -> None:
        self.stops += 1


class FakeMic:
    def __init__(self) -> None:
        self.muted = False


@pytest.mark.asyncio
async def test_a_response_in_its_own_audio_format_is_played_in_it(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    player = FakePlayer(heard=None)
    transport.attach_audio_output(player)
    await transport.connect()
    transport.request_response({"audio": {"output": {"format": {"type": "audio/pcmu"}}}})
    await until(lambda: len(player.played) == DELTAS_PER_RESPONSE)
    assert {fmt for *_, fmt in player.played} == {"g711_ulaw"}  # not the session's pcm16
    transport.close()


class FinishingPlayer(FakePlayer):
    """A player that wants to know when an item's audio is done (AudioPlayer does: it decides ``finished``)."""

    def __init__(self) -> None:
        super().__init__(heard=None)
        self.finished_items: list[tuple[str, int]] = []

    def finish(self, item_id: str, content_index: int) -> None:
        self.finished_items.append((item_id, content_index))


@pytest.mark.asyncio
async def test_the_player_is_told_when_an_items_audio_is_done(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    player = FinishingPlayer()
    transport.attach_audio_output(player)
    await transport.connect()
    transport.request_response()
    await until(lambda: player.finished_items == [("item_1", 0)])
    assert len(player.played) == DELTAS_PER_RESPONSE  # after all of its audio
    transport.close()


# Handshake ---------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_connect_sends_header_auth_and_the_session(peer: Peer, dialect: str) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), model="model-1", api_key=SECRET, dialect=dialect)
    changes = record(transport, "connection_change", "connected")
    await transport.connect(initial_session_config={"instructions": "hi", "tracing": None})
    assert transport.status == "connected" and transport.connection_state.websocket is not None
    assert [p for _, p in changes] == [ConnectionChange("connecting"), ConnectionChange("connected"), ConnectionChange("connected")]
    path, headers = peer.requests[0]
    assert path == "/realtime"
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["User-Agent"] == f"pyodide-realtime/{__version__}"
    assert headers["X-OpenAI-Agents-SDK"] == f"openai-agents-sdk.pyodide-realtime-{__version__}"
    assert headers.get("OpenAI-Beta") == ("realtime=v1" if dialect == "beta" else None)
    assert "Sec-WebSocket-Protocol" not in headers  # servers authenticate with headers, not subprotocols
    await until(lambda: len(peer.received) >= 2)
    update, tracing = peer.received[:2]
    assert update["type"] == "session.update" and update["session"]["model"] == "model-1"
    assert update["session"]["instructions"] == "hi"
    assert tracing["session"]["tracing"] is None
    assert SECRET not in repr(transport) and SECRET not in repr(transport.connection_state)
    attempt = transport_module._Attempt(
        model="m", api_key=SECRET, url=peer.url(), default_url=None,
        session_config=SessionConfig(), opened=asyncio.get_running_loop().create_future(),
    )
    assert SECRET not in repr(attempt) and "model='m'" in repr(attempt)
    transport.close()
    assert transport.status == "disconnected"


@pytest.mark.asyncio
async def test_connect_builds_the_event_parser_while_the_socket_opens(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The validators are deferred at import (tests/cpython/test_lazy_import.py): connect builds them
    # once the socket is on its way, before the handshake is awaited, not at the first frame.
    from pyodide_realtime import events

    monkeypatch.setattr(events, "_validators", None)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), model="m", api_key=SECRET)
    seen: list[tuple[str, bool]] = []

    def build() -> Any:
        seen.append((transport.status, transport.connection_state.websocket is not None))
        return events.build_parser()

    monkeypatch.setattr(transport_module, "build_parser", build)
    await transport.connect()
    assert seen == [("connecting", True)] and events._validators is not None
    transport.close()


# A conversation ----------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_an_exchange_with_audio_and_an_interruption(peer: Peer, dialect: str) -> None:
    peer.hold_responses = True
    player = FakePlayer(heard=150.4)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET, dialect=dialect)
    transport.attach_audio_output(player)
    got = record(transport, "audio", "audio_interrupted", "audio_transcript_delta", "turn_started", "turn_done", "error")
    await transport.connect()
    transport.send_message("tell me a story")
    await until(lambda: sum(1 for n, _ in got if n == "audio_transcript_delta") == 1)
    audio = [p for n, p in got if n == "audio"]
    assert len(audio) == DELTAS_PER_RESPONSE
    assert audio[1] == TransportAudio(bytes([1]) * PCM16_100MS, "resp_1", "item_1", 0, "pcm16", 200.0)
    assert player.played == [(PCM16_100MS, "item_1", 0, "pcm16")] * DELTAS_PER_RESPONSE
    transport.interrupt()
    await until(lambda: "turn_done" in [n for n, _ in got])
    assert peer.types()[-2:] == ["response.cancel", "conversation.item.truncate"]
    assert peer.received[-1]["audio_end_ms"] == 150 and peer.received[-1]["item_id"] == "item_1"
    assert player.stops == 1
    assert [p for n, p in got if n == "audio_interrupted"] == [AudioInterrupted((("item_1", 0, 150),))]
    assert [n for n, _ in got if n == "error"] == []  # no response_cancel_not_active
    transport.close()


class CountingClock(OpenAIRealtimeWebSocket):
    reads = 0

    def _now_ms(self) -> float:
        self.reads += 1
        return super()._now_ms()


@pytest.mark.asyncio
async def test_the_clock_is_read_once_per_item_not_once_per_frame(peer: Peer) -> None:
    # In Pyodide a clock read costs about as much as the core's work on an audio delta.
    peer.hold_responses = True
    transport = CountingClock(url=peer.url(), api_key=SECRET)
    got = record(transport, "audio", "audio_transcript_delta")
    await transport.connect()
    before = transport.reads
    transport.send_message("tell me a story")
    await until(lambda: [n for n, _ in got].count("audio_transcript_delta") == 1)
    assert [n for n, _ in got].count("audio") == DELTAS_PER_RESPONSE
    assert transport.reads - before == 1  # the item's first audio delta: when its playback started
    assert transport._core.first_audio_ms is not None
    transport.close()


class StoppingPlayer(FakePlayer):
    """An output like AudioPlayer: stopping it settles what was heard (the sound ran on a little)."""

    def __init__(self, stops_where_heard: bool) -> None:
        super().__init__(heard=150.4)
        self.stops_where_heard = stops_where_heard
        self.calls: list[str] = []

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        self.calls.append("heard_ms")
        return self.heard

    def stop(self) -> None:
        super().stop()
        self.calls.append("stop")
        self.heard = 161.9


@pytest.mark.asyncio
@pytest.mark.parametrize("by", ["app", "speech"])
@pytest.mark.parametrize("stops_where_heard", [True, False])
async def test_an_output_that_stops_where_heard_is_stopped_before_the_truncation_is_measured(
    peer: Peer, by: str, stops_where_heard: bool
) -> None:
    peer.hold_responses = True
    player = StoppingPlayer(stops_where_heard)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    transport.attach_audio_output(player)
    got = record(transport, "audio", "audio_interrupted", "turn_done", "error")
    await transport.connect()
    transport.request_response()
    await until(lambda: len(player.played) == DELTAS_PER_RESPONSE)
    del player.calls[:]
    if by == "app":
        transport.interrupt()
    else:
        transport.send_event({"type": "test.speech"})
    await until(lambda: "turn_done" in [n for n, _ in got])
    truncate = [e for e in peer.received if e["type"] == "conversation.item.truncate"]
    if stops_where_heard:  # stopped once, first: the truncation is where the sound stopped
        assert player.calls == ["stop", "heard_ms"]
        assert [e["audio_end_ms"] for e in truncate] == [161]
    else:  # the seed's order: measured, truncated, then stopped
        assert player.calls == ["heard_ms", "stop"]
        assert [e["audio_end_ms"] for e in truncate] == [150]
    assert [p for n, p in got if n == "audio_interrupted"] == [AudioInterrupted((("item_1", 0, truncate[0]["audio_end_ms"]),))]
    assert [n for n, _ in got if n == "error"] == []
    transport.close()


@pytest.mark.asyncio
async def test_speech_started_interrupts_by_itself_and_create_waits_for_the_running_response(peer: Peer) -> None:
    peer.hold_responses = True
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    got = record(transport, "audio", "audio_interrupted", "turn_done", "error")
    await transport.connect()
    transport.request_response()
    await until(lambda: len([n for n, _ in got if n == "audio"]) == DELTAS_PER_RESPONSE)
    transport.request_response()  # held: a response is running
    transport.send_event({"type": "test.speech"})
    await until(lambda: "turn_done" in [n for n, _ in got])
    await until(lambda: peer.types().count("response.create") == 2)
    types = peer.types()
    assert types[types.index("test.speech") + 1 :][:3] == ["response.cancel", "conversation.item.truncate", "response.create"]
    assert [n for n, _ in got if n == "error"] == []
    transport.close()


@pytest.mark.asyncio
async def test_audio_is_sent_only_while_connected(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    transport.send_audio(b"\0\0" * 10)  # ignored, as the seed does
    await transport.connect()
    transport.send_audio(b"\x01\x02" * 100, commit=True)
    await until(lambda: "input_audio_buffer.commit" in peer.types())
    append = peer.received[peer.types().index("input_audio_buffer.append")]
    assert base64.b64decode(append["audio"]) == b"\x01\x02" * 100
    assert peer.types().count("input_audio_buffer.append") == 1
    transport.close()


@pytest.mark.asyncio
async def test_garbage_frames_are_ignored_and_the_connection_lives_on(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    seen = record(transport, "*", "error")
    await transport.connect()
    transport.send_event({"type": "test.garbage"})
    await until(lambda: any(getattr(p, "type", "") == "x.after_garbage" for _, p in seen))
    assert [n for n, _ in seen if n == "error"] == []
    assert transport.status == "connected"
    transport.close()


# Connection rules ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_connect_twice_is_a_state_error_while_connecting_and_connected(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(api_key=SECRET)
    pending = asyncio.create_task(transport.connect(url=peer.url("/slow")))
    await until(lambda: transport.status == "connecting")
    with pytest.raises(InvalidStateError, match="connecting"):
        await transport.connect(url=peer.url())
    peer.release_slow.set()
    await pending
    with pytest.raises(InvalidStateError, match="connected"):
        await transport.connect(url=peer.url())
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
async def test_close_during_connect_rejects_it_and_a_retry_works(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(model="first", api_key=SECRET)
    iterator = transport.events()
    pending = asyncio.create_task(transport.connect(url=peer.url("/slow"), model="second"))
    await until(lambda: transport.status == "connecting")
    transport.close()
    with pytest.raises(ConnectionFailedError, match="close"):
        await pending
    assert transport.status == "disconnected" and transport.connection_state.websocket is None
    assert transport.current_model == "first"  # the failed attempt's model was rolled back
    seen = [e.name async for e in iterator]
    assert seen == ["connection_change", "connection_change", "disconnected"]
    await transport.connect(url=peer.url())
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
async def test_a_socket_that_does_not_open_in_time_fails_connect_and_a_retry_works(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(api_key=SECRET)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionFailedError, match=r"did not open within 0.2 s") as info:
        await transport.connect(url=peer.url("/slow?call_id=secret-call"), timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2
    assert "/slow" in str(info.value) and "secret-call" not in str(info.value)
    assert transport.status == "disconnected" and transport.connection_state.websocket is None
    for bad in (0, -1, float("nan"), "20"):
        with pytest.raises(ConfigurationError, match="timeout"):
            await transport.connect(url=peer.url(), timeout=bad)  # type: ignore[arg-type]
    await transport.connect(url=peer.url(), timeout=None)
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "config, why",
    [
        ({"tools": [{"type": "function", "name": "f", "parameters": {"enum": {1, 2}}}]}, "JSON"),
        ({"temperature": 0.7}, "temperature is a beta-only"),
        ({"tracing": {"workflow_name": {1}}}, "JSON"),
    ],
)
async def test_a_session_config_that_cannot_be_sent_fails_connect_before_any_socket(
    peer: Peer, config: dict[str, Any], why: str
) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    with pytest.raises(ConfigurationError, match=why):
        await asyncio.wait_for(transport.connect(initial_session_config=config), 2)
    assert peer.requests == [] and transport.status == "disconnected"


@pytest.mark.asyncio
async def test_a_failure_while_the_socket_opens_fails_connect_instead_of_hanging(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: whatever raises inside the open callback (the backends would only log it).
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    errors = record(transport, "error")

    def broken(session_config: Any = None) -> None:
        raise RuntimeError("broken on open")

    monkeypatch.setattr(transport.protocol, "connection_opened", broken)
    with pytest.raises(RuntimeError, match="broken on open"):
        await asyncio.wait_for(transport.connect(), 2)
    assert transport.status == "disconnected" and transport.protocol.status == "disconnected"
    assert [type(p.error) for _, p in errors] == [RuntimeError]
    monkeypatch.undo()
    await transport.connect()
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
async def test_a_refused_handshake_fails_cleanly_without_the_key_and_restores_the_config(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), model="good", api_key=SECRET)
    errors = record(transport, "error")
    with pytest.raises(ConnectionFailedError) as info:
        await transport.connect(url=peer.url("/reject"), model="other", api_key="sk-refused")
    message = str(info.value)
    assert "401" in message and "invalid_api_key" in message and info.value.http_status == 401
    assert SECRET not in message and SECRET[:6] not in message
    assert transport.status == "disconnected" and transport.current_model == "good"
    assert len(errors) == 1 and isinstance(errors[0][1], ErrorEvent)
    assert errors[0][1].exception is errors[0][1].error
    await transport.connect()  # the constructor's URL and key again: nothing of the failed attempt stuck
    assert peer.requests[-1][0] == "/realtime"
    assert peer.requests[-1][1]["Authorization"] == f"Bearer {SECRET}"
    assert transport.current_model == "good"
    transport.close()
    # What a connect gives is kept once it opened: the next connect() uses it.
    await transport.connect(url=peer.url("/realtime?second"), model="other", api_key="sk-second")
    transport.close()
    await transport.connect()
    assert peer.requests[-1][0] == "/realtime?second" and peer.requests[-1][1]["Authorization"] == "Bearer sk-second"
    assert transport.current_model == "other"
    transport.close()


@pytest.mark.asyncio
async def test_the_status_lives_in_the_core(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    seen: list[tuple[str, str, str]] = []
    transport.on("connection_change", lambda change: seen.append((change.status, transport.status, transport.protocol.status)))
    await transport.connect()
    transport.send_event({"type": "test.close"})
    await until(lambda: transport.status == "disconnected")
    assert [s[0] for s in seen] == ["connecting", "connected", "disconnected"]
    assert all(a == b == c for a, b, c in seen)
    assert transport.connection_state.status == transport.protocol.status == "disconnected"


@pytest.mark.asyncio
async def test_close_before_open_rejects_connect() -> None:
    class NeverOpens:
        def __init__(self) -> None:
            self.closed = 0

        def send(self, text: str) -> None:
            raise AssertionError("nothing may be sent before open")

        def close(self, code: int = 1000, reason: str = "") -> None:
            self.closed += 1

    sockets: list[NeverOpens] = []

    def factory(request: SocketRequest, handler: Any) -> NeverOpens:
        asyncio.get_running_loop().call_soon(handler.on_close, 1006, "gone")
        sockets.append(NeverOpens())
        return sockets[-1]

    transport = OpenAIRealtimeWebSocket(url="wss://unused.invalid/", api_key=SECRET, create_websocket=factory)
    with pytest.raises(ConnectionFailedError, match="closed before it opened") as info:
        await transport.connect()
    assert info.value.code == 1006
    assert transport.status == "disconnected"
    assert sockets[0].closed == 1


@pytest.mark.asyncio
async def test_events_of_a_stale_socket_are_ignored(peer: Peer) -> None:
    handlers: list[Any] = []

    def factory(request: SocketRequest, handler: Any) -> Any:
        handlers.append(handler)
        return create_cpython_socket(request, handler)

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET, create_websocket=factory)
    await transport.connect()
    transport.close()
    await transport.connect()
    got = record(transport, "*", "connection_change")
    stale = handlers[0]
    stale.on_message('{"type": "input_audio_buffer.speech_started"}')
    stale.on_error(RuntimeError("old"))
    stale.on_close(1000, "")
    assert got == [] and transport.status == "connected"
    transport.close()


class RecordingHandler:
    """A SocketHandler that records what the backend reports."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Any]] = []
        self.opened, self.closed = asyncio.Event(), asyncio.Event()

    def on_open(self, protocol: str) -> None:
        self.opened.set()

    def on_message(self, data: Any) -> None:
        self.got.append(("message", data))

    def on_binary(self, size: int) -> None:
        self.got.append(("binary", size))

    def on_error(self, error: BaseException) -> None:
        self.got.append(("error", error))

    def on_close(self, code: int, reason: str) -> None:
        self.got.append(("close", code))
        self.closed.set()


@pytest.mark.asyncio
async def test_a_frame_the_backend_cannot_send_is_reported_and_ends_the_connection(peer: Peer) -> None:
    handler = RecordingHandler()
    socket = create_cpython_socket(SocketRequest(peer.url(), (), {"Authorization": f"Bearer {SECRET}"}), handler)
    await asyncio.wait_for(handler.opened.wait(), 2)
    # Not text: websockets refuses it without closing, so the writer task (which nobody awaits) fails
    # while the connection lives on; the frame queued behind it would never be sent.
    socket.send(123)  # type: ignore[arg-type]
    socket.send('{"type":"queued behind it"}')
    await asyncio.wait_for(handler.closed.wait(), 2)
    errors = [e for kind, e in handler.got if kind == "error"]
    assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)
    assert "TypeError" in str(errors[0]) and "2 event(s) were not sent" in str(errors[0])
    assert errors[0].code == 1011
    assert SECRET not in str(errors[0])
    assert handler.got[-1][0] == "close"
    with pytest.raises(ConnectionClosedError):
        socket.send('{"type":"later"}')


@pytest.mark.asyncio
async def test_the_server_closing_disconnects_reports_why_and_ends_iterators(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    await transport.connect()
    errors = record(transport, "error")
    stream = transport.events("connection_change", "disconnected")
    transport.send_event({"type": "test.close"})
    seen = [(e.name, e.data) async for e in stream]
    assert seen == [("connection_change", ConnectionChange("disconnected")), ("disconnected", ConnectionChange("disconnected"))]
    (closed,) = [p.error for _, p in errors]
    assert isinstance(closed, ConnectionClosedError) and (closed.code, closed.reason) == (4001, "bye")
    assert "4001" in str(closed) and "bye" in str(closed)
    assert transport.status == "disconnected"
    with pytest.raises(InvalidStateError, match="disconnected"):
        transport.send_message("anyone?")


# Keys -------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["sk has space", "sk-\u00e9", "sk-new\nline", "", None])
async def test_bad_keys_fail_before_any_socket_without_echoing_the_key(peer: Peer, key: Any) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=key)
    with pytest.raises(ConfigurationError) as info:
        await transport.connect()
    if key:
        assert key not in str(info.value)
    assert peer.requests == [] and transport.status == "disconnected"


@pytest.mark.asyncio
async def test_keys_may_come_from_sync_or_async_functions(peer: Peer) -> None:
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "ek_async"

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=lambda: "ek_sync")
    await transport.connect()
    transport.close()
    await transport.connect(api_key=fetch)
    transport.close()
    assert [h["Authorization"] for _, h in peer.requests] == ["Bearer ek_sync", "Bearer ek_async"]


@pytest.mark.asyncio
async def test_close_while_a_slow_key_function_runs_rejects_connect_at_once(peer: Peer) -> None:
    never = asyncio.Event()

    async def slow_key() -> str:
        await never.wait()
        return "ek_never"

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=slow_key)
    pending = asyncio.create_task(transport.connect())
    await asyncio.sleep(0.01)
    transport.close()
    with pytest.raises(ConnectionFailedError, match="close"):
        await asyncio.wait_for(pending, 1)
    assert peer.requests == [] and transport.status == "disconnected"
    await transport.connect(api_key="ek_now")
    transport.close()


@pytest.mark.asyncio
async def test_cancelling_connect_while_the_key_function_runs_cancels_the_key_function(peer: Peer) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow_key() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "ek_late"

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=slow_key)
    pending = asyncio.create_task(transport.connect())
    await asyncio.wait_for(started.wait(), 1)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await asyncio.wait_for(cancelled.wait(), 1)
    assert transport.status == "disconnected" and peer.requests == []


@pytest.mark.asyncio
async def test_in_a_browser_only_ephemeral_keys_unless_insecure_is_asked_for(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "in_browser", lambda: True)
    refused = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET, create_websocket=create_cpython_socket)
    with pytest.raises(ConfigurationError, match="ephemeral") as info:
        await refused.connect()
    assert SECRET not in str(info.value) and peer.requests == []
    for transport in (
        OpenAIRealtimeWebSocket(url=peer.url(), api_key="ek_123", create_websocket=create_cpython_socket),
        OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET, use_insecure_api_key=True, create_websocket=create_cpython_socket),
    ):
        await transport.connect()
        transport.close()
    assert len(peer.requests) == 2


# Listeners --------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_throwing_listeners_are_reported_and_never_corrupt_state(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    errors = record(transport, "error")
    async_ran = asyncio.Event()

    def broken(_: Any) -> None:
        raise ValueError("sync listener bug")

    async def broken_async(_: Any) -> None:
        async_ran.set()
        raise KeyError("async listener bug")

    def broken_error_listener(_: Any) -> None:
        raise RuntimeError("even the error listener")  # must not loop

    transport.on("connection_change", broken)
    transport.on("connected", broken_async)
    transport.on("audio", broken)
    transport.on("error", broken_error_listener)
    audio = record(transport, "audio", "turn_done")
    await transport.connect()
    assert transport.status == "connected"
    await asyncio.wait_for(async_ran.wait(), 2)
    transport.request_response()
    await until(lambda: any(n == "turn_done" for n, _ in audio))
    assert len([n for n, _ in audio if n == "audio"]) == DELTAS_PER_RESPONSE  # later listeners still ran
    await asyncio.sleep(0)
    kinds = [type(p.error).__name__ for _, p in errors]
    assert kinds.count("ValueError") == 2 + DELTAS_PER_RESPONSE and kinds.count("KeyError") == 1
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
async def test_on_once_off_and_the_iterator(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    calls: list[str] = []
    unsubscribe = transport.on("turn_done", lambda _: calls.append("on"))
    transport.once("turn_done", lambda _: calls.append("once"))
    handler = lambda _: calls.append("off")  # noqa: E731
    transport.on("turn_done", handler)
    transport.off("turn_done", handler)
    stream = transport.events()
    await transport.connect()
    transport.request_response()
    await until(lambda: calls.count("on") == 1)
    unsubscribe()
    # Listeners run in the order they were added: once this one heard the second turn_done, the removed
    # ones would have too.
    second = asyncio.Event()
    transport.on("turn_done", lambda _: second.set())
    transport.request_response()
    await asyncio.wait_for(second.wait(), 10)
    assert calls == ["on", "once"]
    transport.close()
    names = [e.name async for e in stream]
    assert names[:3] == ["connection_change", "connection_change", "connected"]
    assert names.count("audio") == 2 * DELTAS_PER_RESPONSE and names.count("*") >= 10
    assert names[-1] == "disconnected"



@pytest.mark.asyncio
async def test_listeners_added_and_removed_while_connected_get_exactly_their_events(peer: Peer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=SECRET)
    await transport.connect()
    star: list[str] = []
    typed: list[str] = []
    stop_star = transport.on("*", lambda event: star.append(event.type))
    transport.on("response.done", lambda event: typed.append(event.type))
    transport.request_response()
    await until(lambda: "response.done" in typed)
    assert star.count("response.output_audio.delta") == DELTAS_PER_RESPONSE and star[-1] == "response.done"
    stop_star()
    before = len(star)
    transport.request_response()
    await until(lambda: typed.count("response.done") == 2)
    assert len(star) == before  # unsubscribed: nothing more
    transport.close()


# Devices and hooks -------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_mute_needs_a_microphone() -> None:
    transport = OpenAIRealtimeWebSocket()
    assert transport.muted is None
    with pytest.raises(UnsupportedError, match="attach_microphone"):
        transport.mute(True)
    mic = FakeMic()
    transport.attach_microphone(mic)
    transport.mute(True)
    assert mic.muted is True and transport.muted is True
    with pytest.raises(ConfigurationError):
        transport.attach_audio_output(object())  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_an_overridden_interrupt_hook_serves_speech_started(peer: Peer) -> None:
    calls: list[tuple[Any, bool]] = []

    class PhoneLine(OpenAIRealtimeWebSocket):
        def _interrupt(self, elapsed_ms: Any, cancel_ongoing_response: bool = True) -> None:
            calls.append((elapsed_ms, cancel_ongoing_response))
            super()._interrupt(42, cancel_ongoing_response)

    peer.hold_responses = True
    transport = PhoneLine(url=peer.url(), api_key=SECRET)
    await transport.connect()
    transport.request_response()
    await until(lambda: transport.protocol.audio_received_ms == DELTAS_PER_RESPONSE * 100)
    transport.send_event({"type": "test.speech"})
    await until(lambda: "conversation.item.truncate" in peer.types())
    assert calls == [(None, True)]
    assert peer.received[peer.types().index("conversation.item.truncate")]["audio_end_ms"] == 42
    transport.close()


def test_connection_state_cannot_disagree_with_itself() -> None:
    with pytest.raises(ValueError):
        transport_module.ConnectionState("connected", None)
    with pytest.raises(ValueError):
        transport_module.ConnectionState("disconnected", object())  # type: ignore[arg-type]


def test_the_model_cannot_change_while_connected_and_call_id_needs_ga() -> None:
    transport = OpenAIRealtimeWebSocket(model="a", dialect="beta")
    transport.current_model = "b"
    assert transport.current_model == "b"
    with pytest.raises(ConfigurationError, match="dialect"):
        OpenAIRealtimeWebSocket(dialect="v3")


def test_every_public_method_says_what_it_sends_and_what_it_raises() -> None:
    import inspect
    import re

    for name, member in inspect.getmembers(OpenAIRealtimeWebSocket):
        if name.startswith("_") and name not in ("__init__", "__aenter__", "__aexit__"):
            continue
        doc = inspect.getdoc(member) or ""
        assert doc, f"{name} has no docstring"
        if isinstance(member, property):
            continue
        assert re.search(r"\b(send|sends|sent|opened)\b", doc, re.I), f"{name}: what does it send?"
        assert re.search(r"raise|Error\b", doc), f"{name}: what does it raise?"
