"""``OpenAIRealtimeWebRTC`` without a browser: the shell around the core, over an in-memory peer
(``create_peer=``), and the words of the browser backend's failures. The browser itself (the peer
connection, the microphone track, the local server's aiortc peer) is in tests/browser/test_webrtc.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from pyodide_realtime import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionFailedError,
    ErrorEvent,
    OpenAIRealtimeWebRTC,
    OpenAIRealtimeWebSocket,
    RealtimeAgent,
    RealtimeSession,
    ReconnectPolicy,
    UnsupportedError,
)
from pyodide_realtime._browser_peer import BrowserPeer, PeerMedia
from pyodide_realtime._interfaces import SocketHandler, SocketRequest
from pyodide_realtime.events import OutputAudioBufferEvent
from pyodide_realtime.items import AssistantMessageItem

KEY = "ek_test_webrtc_key_0123456789"


class FakePeer:
    """A peer connection as the transport sees it; the test plays the server."""

    def __init__(self, request: SocketRequest, handler: SocketHandler, media: PeerMedia) -> None:
        self.request, self.handler, self.media = request, handler, media
        self.sent: list[dict[str, Any]] = []
        self.muted: list[bool] = []
        self.closed = False

    # what the transport calls
    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    def set_muted(self, muted: bool) -> None:
        self.muted.append(muted)

    @property
    def call_id(self) -> str:
        return "rtc_call_1"

    # what the test does
    def open(self) -> None:
        self.handler.on_open("")

    def server(self, **event: Any) -> None:
        self.handler.on_message(json.dumps(event))

    def types(self) -> list[str]:
        return [e["type"] for e in self.sent]


class Peers:
    """The ``create_peer`` hook: makes FakePeers, opened at once unless ``auto_open`` is False."""

    def __init__(self, auto_open: bool = True) -> None:
        self.made: list[FakePeer] = []
        self.auto_open = auto_open

    def __call__(self, request: SocketRequest, handler: SocketHandler, media: PeerMedia) -> FakePeer:
        peer = FakePeer(request, handler, media)
        self.made.append(peer)
        if self.auto_open:
            asyncio.get_running_loop().call_soon(peer.open)
        return peer

    @property
    def last(self) -> FakePeer:
        return self.made[-1]


def errors_of(transport: OpenAIRealtimeWebRTC) -> list[BaseException]:
    got: list[BaseException] = []
    transport.on("error", lambda e: got.append(e.exception if isinstance(e, ErrorEvent) else e))
    return got


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0)


# Where it runs -----------------------------------------------------------------------------------------
def test_in_cpython_without_a_peer_factory_it_says_why_and_what_to_use() -> None:
    with pytest.raises(UnsupportedError, match="RTCPeerConnection.*CPython.*OpenAIRealtimeWebSocket"):
        OpenAIRealtimeWebRTC()


def test_a_session_chooses_its_transport_by_name() -> None:
    agent = RealtimeAgent(name="a", instructions="x")
    assert isinstance(RealtimeSession(agent).transport, OpenAIRealtimeWebSocket)
    assert isinstance(RealtimeSession(agent, transport="websocket").transport, OpenAIRealtimeWebSocket)
    with pytest.raises(UnsupportedError, match="RTCPeerConnection"):
        RealtimeSession(agent, transport="webrtc")  # CPython: no peer connection to make
    with pytest.raises(ConfigurationError, match="'websocket', 'webrtc'"):
        RealtimeSession(agent, transport="carrier-pigeon")  # type: ignore[arg-type]
    given = OpenAIRealtimeWebRTC(create_peer=Peers())
    assert RealtimeSession(agent, transport=given).transport is given


# Where the offer goes ----------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("dialect", "url"),
    [("ga", "https://api.openai.com/v1/realtime/calls"),
     ("beta", "https://api.openai.com/v1/realtime?model=gpt-4o-realtime-preview")],
)
async def test_the_offer_goes_to_the_dialects_endpoint_with_the_key_as_a_bearer(dialect: str, url: str) -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, dialect=dialect, create_peer=peers)
    await transport.connect()
    request = peers.last.request
    assert request.url == url
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY in request.secrets and KEY not in repr(request) and KEY not in repr(transport)
    assert peers.last.types()[0] == "session.update"  # the config rides the data channel once it opens
    assert transport.call_id == "rtc_call_1"
    transport.close()
    assert peers.last.closed and transport.status == "disconnected"


@pytest.mark.parametrize(
    ("url", "words"),
    [("wss://api.openai.com/v1/realtime", "starts with https://"),
     ("http://example.com/v1/realtime/calls", "refusing http://"),
     ("https://user:pw@example.com/calls", "credentials")],
)
def test_a_url_the_key_may_not_travel_to_is_refused_before_anything_opens(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        OpenAIRealtimeWebRTC(url=url, create_peer=Peers())


@pytest.mark.asyncio
async def test_a_call_id_is_refused_with_what_to_do_instead() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    with pytest.raises(ConfigurationError, match="call_id joins a call over a WebSocket"):
        await transport.connect(call_id="rtc_123")
    assert peers.made == [] and transport.status == "disconnected"


@pytest.mark.asyncio
async def test_the_microphone_constraints_and_device_reach_the_peer() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers, device_id="mic-2", noise_suppression=False)
    await transport.connect()
    assert peers.last.media.constraints == {
        "channelCount": 1, "echoCancellation": True, "noiseSuppression": False, "autoGainControl": True,
        "deviceId": {"exact": "mic-2"},
    }
    assert peers.last.media.microphone is True


# Interruption, barge-in, mute --------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_interrupt_cancels_a_running_response_and_clears_the_servers_output_buffer() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    await transport.connect()
    peer = peers.last
    peer.sent.clear()
    transport.interrupt()  # nothing runs: only the buffer is cleared (as the JS transport does)
    assert peer.types() == ["output_audio_buffer.clear"]
    peer.sent.clear()
    peer.server(type="response.created", event_id="e1", response={"id": "resp_1", "object": "realtime.response",
                                                                  "status": "in_progress", "output": []})
    transport.interrupt()
    assert peer.types() == ["response.cancel", "output_audio_buffer.clear"]
    assert not any(e["type"] == "conversation.item.truncate" for e in peer.sent)  # the server truncates


@pytest.mark.asyncio
async def test_the_server_stops_its_own_audio_on_barge_in_so_the_client_sends_nothing() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    await transport.connect()
    peer = peers.last
    peer.server(type="response.created", event_id="e1", response={"id": "resp_1", "object": "realtime.response",
                                                                  "status": "in_progress", "output": []})
    peer.sent.clear()
    heard: list[Any] = []
    transport.on("input_audio_buffer.speech_started", heard.append)
    peer.server(type="input_audio_buffer.speech_started", event_id="e2", audio_start_ms=100, item_id="item_u")
    assert heard and peer.sent == []


@pytest.mark.asyncio
async def test_output_audio_buffer_events_are_typed() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    got: list[Any] = []
    for name in ("output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared"):
        transport.on(name, got.append)
    await transport.connect()
    for name in ("started", "stopped", "cleared"):
        peers.last.server(type=f"output_audio_buffer.{name}", event_id=f"e_{name}", response_id="resp_1")
    assert [type(e) for e in got] == [OutputAudioBufferEvent] * 3
    assert [e.type for e in got] == ["output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared"]
    assert {e.response_id for e in got} == {"resp_1"}


@pytest.mark.asyncio
async def test_mute_disables_the_track_now_and_on_the_next_connection() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    transport.mute(True)  # before any connection: kept for it
    assert transport.muted is True
    await transport.connect()
    assert peers.last.media.muted is True
    peers.last.sent.clear()
    transport.mute(False)
    assert peers.last.muted == [False] and transport.muted is False
    assert peers.last.sent == []  # muting sends nothing


# Endings ------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_data_channel_that_never_opens_fails_connect_at_the_deadline_and_closes_the_peer() -> None:
    peers = Peers(auto_open=False)
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    with pytest.raises(ConnectionFailedError, match="did not open within 0.05 s .*data channel never opened") as caught:
        await transport.connect(timeout=0.05)
    assert KEY not in str(caught.value)
    assert peers.last.closed and transport.status == "disconnected"
    peers.auto_open = True
    await transport.connect()  # nothing was left half-open: a retry works
    assert transport.status == "connected"


@pytest.mark.asyncio
async def test_a_refused_key_fails_connect_and_is_never_retried() -> None:
    peers = Peers(auto_open=False)
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    pending = asyncio.ensure_future(transport.connect())
    await until(lambda: bool(peers.made))
    peers.last.handler.on_error(ConnectionFailedError("refused (HTTP 401)", http_status=401))
    with pytest.raises(ConnectionFailedError) as caught:
        await pending
    assert caught.value.http_status == 401
    assert peers.last.closed and transport.status == "disconnected"


@pytest.mark.asyncio
async def test_a_peer_that_drops_is_reported_in_words_and_reconnected_when_asked() -> None:
    peers = Peers()
    policy = ReconnectPolicy(initial_delay_s=0, jitter=0)
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers, reconnect=policy)
    errors = errors_of(transport)
    reconnected: list[Any] = []
    transport.on("reconnected", reconnected.append)
    await transport.connect()
    first = peers.last
    first.handler.on_close(1006, "ICE failed: no network path to the peer works any more")
    (error,) = errors
    assert isinstance(error, ConnectionClosedError) and error.code == 1006
    assert "closed unexpectedly" in str(error) and "ICE failed" in str(error) and "reconnecting" in str(error)
    assert first.closed
    await until(lambda: bool(reconnected))
    assert len(peers.made) == 2 and transport.status == "connected"
    assert peers.last.types()[0] == "session.update"


# The history, trimmed at the server's truncation ---------------------------------------------------------
@pytest.mark.asyncio
async def test_the_servers_truncation_trims_the_history_though_no_audio_was_counted() -> None:
    peers = Peers()
    transport = OpenAIRealtimeWebRTC(api_key=KEY, create_peer=peers)
    session = RealtimeSession(RealtimeAgent(name="a", instructions="x"), transport=transport, audio=True)
    errors: list[Any] = []
    session.on("error", errors.append)
    await session.connect(api_key=KEY)
    # The transport plays and captures itself: the session starts no player and no microphone.
    assert session.voice is None and errors == []
    peer = peers.last
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    item = {"id": "item_a", "object": "realtime.item", "type": "message", "role": "assistant", "status": "in_progress",
            "content": [{"type": "output_audio", "transcript": ""}]}
    peer.server(type="conversation.item.added", event_id="e1", previous_item_id=None, item=item)
    peer.server(type="response.output_audio_transcript.delta", event_id="e2", response_id="resp_1", item_id="item_a",
                output_index=0, content_index=0, delta=words)
    spoken_ms = len(words) / 0.015  # the whole reply, at the speaking pace the history assumes
    peer.server(type="conversation.item.truncated", event_id="e3", item_id="item_a", content_index=0,
                audio_end_ms=int(spoken_ms / 3))
    (heard,) = [i for i in session.history if isinstance(i, AssistantMessageItem)]
    assert heard.heard_ms == int(spoken_ms / 3)
    assert heard.text and words.startswith(heard.text) and len(heard.text) < len(words) / 2  # about a third
    assert heard.unheard_text and (heard.text + " " + heard.unheard_text) == words
    session.close()


# The browser backend's words ------------------------------------------------------------------------------
def words_of(kind: str, name: str, message: str, status: int = 0, opened: bool = False) -> Exception:
    peer = BrowserPeer.__new__(BrowserPeer)  # its words need no page: only what it was told
    peer._url, peer._secrets, peer._opened = "http://127.0.0.1:8000/v1/realtime/calls", (KEY,), opened
    return peer._words(kind, name, message, status)


def test_a_refused_key_says_so_and_never_repeats_it() -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "invalid_request_error"}})
    error = words_of("http", "Unauthorized", body, 401)
    assert isinstance(error, ConnectionFailedError) and error.http_status == 401
    assert "refused the key (HTTP 401" in str(error) and "mint a fresh ephemeral key" in str(error)
    assert KEY not in str(error) and KEY[:12] not in str(error)


def test_a_refused_offer_quotes_the_servers_message() -> None:
    body = json.dumps({"error": {"message": "The offer has no audio media section.", "type": "invalid_request_error"}})
    error = words_of("http", "Bad Request", body, 400)
    assert isinstance(error, ConnectionFailedError) and error.http_status == 400
    assert "refused the WebRTC offer (HTTP 400): The offer has no audio media section." in str(error)
    long = words_of("http", "Bad Gateway", "<html>" + "x" * 5000 + "</html>", 502)
    assert len(str(long)) < 500  # a whole page is not quoted


def test_the_other_failures_in_words() -> None:
    assert "could not be posted" in str(words_of("fetch", "TypeError", "Failed to fetch"))
    assert "refused the SDP answer" in str(words_of("sdp", "OperationError", "Failed to parse SessionDescription"))
    mic = words_of("media", "NotAllowedError", "Permission denied")
    assert isinstance(mic, UnsupportedError) and "microphone access was denied" in str(mic)
    dropped = words_of("datachannel", "OperationError", "User-Initiated Abort", opened=True)
    assert isinstance(dropped, ConnectionClosedError) and dropped.code == 1006  # reconnect applies
    early = words_of("datachannel", "OperationError", "")
    assert isinstance(early, ConnectionFailedError)
