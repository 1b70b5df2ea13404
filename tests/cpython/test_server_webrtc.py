"""The local server over WebRTC: a real aiortc peer (``webrtc_peer``) on loopback against
``POST /v1/realtime/calls``, with the conversation of the WebSocket path.

Every event the server sends on the data channel is checked against the ``openai`` SDK's types.
Tests wait on events (the channel's, the remote track's frames), never on wall time.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import aioice.ice
import aioice.stun
import pytest
import pytest_asyncio
from aiortc import RTCPeerConnection, RTCSessionDescription
from test_server_conformance import conformance_failures
from test_server_speech import QUESTION, WEATHER_TOOL, ManualTimers, _spoken
from webrtc_peer import LOUD_RMS, TIMEOUT_S, Answer, Microphone, WebRtcClient, post, request

from pyodide_realtime_server import RealtimeServer, _audio, _loopback
from pyodide_realtime_server._speech import TONE_GAP_MS
from pyodide_realtime_server._webrtc import MAX_CHANNEL_MESSAGE_BYTES

HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}
# The simulated model repeats what it is told: a long question, a reply of seconds.
LONG_QUESTION = {
    "type": "message",
    "role": "user",
    "content": [{"type": "input_text", "text": "Please tell me a long story about " + "a very long road and " * 12 + "the end"}],
}
FRAME_MS = 20
HEARD_BEFORE_CLEAR = 10  # frames of the reply heard before the client clears the buffer
SILENT_FRAMES_AFTER = 20


def calls_url(server: RealtimeServer) -> str:
    return f"{server.url}v1/realtime/calls"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones") as running:
        yield running


@pytest_asyncio.fixture
async def client(server: RealtimeServer) -> AsyncIterator[WebRtcClient]:
    peer = WebRtcClient()
    try:
        await peer.connect(calls_url(server), server.mint_key())
        yield peer
    finally:
        await peer.close()


def sent_types(client: WebRtcClient) -> list[str]:
    return [event["type"] for event in client.events]


def reply_ms(client: WebRtcClient) -> int:
    """The reply's whole audio, as the usage of its response.done counts it (10 tokens a second)."""
    done = next(e for e in client.events if e["type"] == "response.done")
    return int(done["response"]["usage"]["output_token_details"]["audio_tokens"] * 100)


@pytest.mark.asyncio
async def test_the_data_channel_opens_and_says_session_created(server: RealtimeServer, client: WebRtcClient) -> None:
    created = await client.next("session.created")
    assert created["session"]["type"] == "realtime"
    assert client.location is not None and client.location.startswith("/v1/realtime/calls/rtc_")
    assert list(server.calls.calls) == [client.location.rsplit("/", 1)[1]]  # type: ignore[union-attr]
    assert conformance_failures("ga", client.events) == []


@pytest.mark.asyncio
async def test_a_text_reply_is_heard_on_the_remote_track(client: WebRtcClient) -> None:
    await client.next("session.created")
    client.send({"type": "conversation.item.create", "item": HELLO})
    client.send({"type": "response.create"})
    started = await client.next("output_audio_buffer.started")
    done = await client.next("response.done")
    stopped = await client.next("output_audio_buffer.stopped")
    assert started["response_id"] == stopped["response_id"] == done["response"]["id"]
    await client.speaker.wait_for(lambda speaker: speaker.loud_frames() > 0)
    types = sent_types(client)
    # As the API over WebRTC: the voice is on the track, the transcript on the channel.
    assert "response.output_audio.delta" not in types and "response.output_audio_transcript.delta" in types
    assert types.index("response.content_part.added") < types.index("output_audio_buffer.started")
    assert types.index("response.done") < types.index("output_audio_buffer.stopped")
    assert conformance_failures("ga", client.events) == []


@pytest.mark.asyncio
async def test_clearing_the_output_buffer_cuts_the_voice_where_the_track_was(server: RealtimeServer, client: WebRtcClient) -> None:
    await client.next("session.created")
    (call,) = server.calls.calls.values()  # type: ignore[union-attr]
    client.send({"type": "conversation.item.create", "item": LONG_QUESTION})
    client.send({"type": "response.create"})
    await client.next("output_audio_buffer.started")
    await client.speaker.wait_for(lambda speaker: speaker.loud_frames() >= HEARD_BEFORE_CLEAR)
    client.send({"type": "output_audio_buffer.clear"})
    truncated = await client.next("conversation.item.truncated")
    cleared = await client.next("output_audio_buffer.cleared")
    sent_ms = call.conversation.output.sent_samples / 24  # type: ignore[union-attr]
    heard_at_clear = len(client.speaker.frames)
    # What was in flight arrives; then only silence.
    await client.speaker.wait_for(lambda speaker: len(speaker.frames) >= heard_at_clear + SILENT_FRAMES_AFTER)
    frames = client.speaker.frames
    loud = [index for index, (_, rms) in enumerate(frames) if rms >= LOUD_RMS]
    assert all(rms < LOUD_RMS for _, rms in frames[loud[-1] + 1 :]) and len(frames) - loud[-1] > SILENT_FRAMES_AFTER // 2
    done = next(e for e in client.events if e["type"] == "response.done")
    assert cleared["response_id"] == done["response"]["id"]
    assert truncated["item_id"] == done["response"]["output"][0]["id"] and truncated["content_index"] == 0
    # Cut at the audio the track sent (not the seconds generated at once), within a 20 ms frame...
    assert abs(truncated["audio_end_ms"] - sent_ms) <= FRAME_MS and truncated["audio_end_ms"] < reply_ms(client) / 2
    # ...and that is what this peer heard: its voice from the first beep to the last stays within it
    # (the cut may fall in a gap between two beeps).
    heard_ms = (loud[-1] - loud[0] + 1) * FRAME_MS
    assert truncated["audio_end_ms"] - TONE_GAP_MS - 2 * FRAME_MS <= heard_ms <= truncated["audio_end_ms"] + FRAME_MS, (truncated, heard_ms)
    types = sent_types(client)
    assert types.index("conversation.item.truncated") < types.index("output_audio_buffer.cleared")
    assert "output_audio_buffer.stopped" not in types
    assert conformance_failures("ga", client.events) == []


@pytest.mark.asyncio
async def test_a_spoken_question_on_the_microphone_track_ends_in_the_tool_call(client: WebRtcClient) -> None:
    await client.next("session.created")
    session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}, "tools": [WEATHER_TOOL]}
    client.send({"type": "session.update", "session": session})
    await client.next("session.updated")
    client.microphone.say(_audio.samples_from_pcm16(_spoken(QUESTION, "pcm16")))
    await client.next("input_audio_buffer.speech_started")
    await client.next("input_audio_buffer.speech_stopped")
    done = await client.next("response.done")
    call = done["response"]["output"][0]
    assert (call["type"], call["name"]) == ("function_call", "get_weather")
    transcribed = next(e for e in client.events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert "weather" in transcribed["transcript"].lower().split()
    assert conformance_failures("ga", client.events) == []


@pytest.mark.asyncio
async def test_speaking_over_the_reply_stops_the_voice_and_truncates_it(client: WebRtcClient) -> None:
    await client.next("session.created")
    client.send({"type": "conversation.item.create", "item": LONG_QUESTION})
    client.send({"type": "response.create"})
    await client.next("output_audio_buffer.started")
    await client.speaker.wait_for(lambda speaker: speaker.loud_frames() >= HEARD_BEFORE_CLEAR)
    client.microphone.say(_audio.samples_from_pcm16(_spoken("Stop, please.", "pcm16")))
    started = await client.next("input_audio_buffer.speech_started")
    truncated = await client.next("conversation.item.truncated")
    await client.next("output_audio_buffer.cleared")
    types = sent_types(client)
    assert types.index("input_audio_buffer.speech_started") < types.index("conversation.item.truncated")
    assert 0 < truncated["audio_end_ms"] < reply_ms(client) / 2 and started["audio_start_ms"] >= 0
    assert conformance_failures("ga", client.events) == []


async def _offer(*, audio: bool = True, channel: bool = True) -> str:
    """An aiortc peer's offer (and the peer closed again): with or without its microphone and channel."""
    peer = RTCPeerConnection(_loopback.configuration())
    try:
        if audio:
            peer.addTrack(Microphone())
        if channel:
            peer.createDataChannel("oai-events")
        await peer.setLocalDescription(await peer.createOffer())
        return str(peer.localDescription.sdp)
    finally:
        await peer.close()


def _error(answer: Answer, status: int, code: str, words: str) -> None:
    assert answer.status == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and words in error["message"], error


@pytest.mark.asyncio
async def test_a_refused_key_is_401_and_opens_nothing(server: RealtimeServer) -> None:
    _loopback.install()
    offer = await _offer()
    url = calls_url(server)
    _error(await post(url, None, offer), 401, "invalid_api_key", "didn't provide an API key")
    _error(await post(url, "ek_unknown", offer), 401, "invalid_api_key", "Incorrect API key")
    key = server.mint_key()
    assert (await post(url, key, offer)).status == 201
    _error(await post(url, key, await _offer()), 401, "invalid_api_key", "already used")
    clock = [1000.0]
    async with RealtimeServer(pace=0, speech="tones", clock=lambda: clock[0], key_ttl_s=10) as other:
        expired = other.mint_key()
        clock[0] += 11
        _error(await post(calls_url(other), expired, await _offer()), 401, "invalid_api_key", "expired")
        assert not other.calls.calls  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_an_offer_the_server_cannot_use_is_400_and_keeps_the_key(server: RealtimeServer) -> None:
    _loopback.install()
    url = calls_url(server)
    key = server.mint_key()
    _error(await post(url, key, "hello"), 400, "invalid_offer", "must start with 'v=0'")
    _error(await post(url, key, b"v=0\r\n\xff\xfe"), 400, "invalid_offer", "not UTF-8")
    _error(await post(url, key, await _offer(audio=False)), 400, "invalid_offer", "no audio")
    _error(await post(url, key, await _offer(channel=False)), 400, "invalid_offer", "no data channel")
    broken = "\r\n".join(line for line in (await _offer()).splitlines() if not line.startswith("a=fingerprint"))
    _error(await post(url, key, broken), 400, "invalid_offer", "could not be used")
    assert not server.calls.calls  # type: ignore[union-attr]
    assert (await post(url, key, await _offer())).status == 201  # the key opened nothing before


@pytest.mark.asyncio
async def test_the_wrong_content_type_is_415_an_oversized_offer_413(server: RealtimeServer) -> None:
    _loopback.install()
    url = calls_url(server)
    key = server.mint_key()
    offer = await _offer()
    _error(await post(url, key, offer, "application/json"), 415, "unsupported_media_type", "application/sdp")
    _error(await post(url, key, offer + "a=x-padding:" + "x" * 70_000 + "\r\n"), 413, "payload_too_large", "larger than")
    assert (await post(url, key, offer)).status == 201


@pytest.mark.asyncio
async def test_calls_beyond_the_cap_are_429() -> None:
    async with RealtimeServer(pace=0, speech="tones", max_calls=1) as server:
        first = WebRtcClient()
        try:
            await first.connect(calls_url(server), server.mint_key())
            _error(await post(calls_url(server), server.mint_key(), await _offer()), 429, "too_many_calls", "at most 1 calls")
        finally:
            await first.close()


@pytest.mark.asyncio
async def test_a_data_channel_that_never_opens_is_closed_at_the_deadline() -> None:
    timers = ManualTimers()
    async with RealtimeServer(pace=0, speech="tones", schedule=timers.schedule, data_channel_timeout_s=7.5) as server:
        _loopback.install()
        answer = await post(calls_url(server), server.mint_key(), await _offer())  # never completed: no ICE
        assert answer.status == 201
        (call,) = server.calls.calls.values()  # type: ignore[union-attr]
        assert timers.fire() == [7.5]
        await asyncio.wait_for(call.closed.wait(), TIMEOUT_S)
        assert not server.calls.calls and call.pc.connectionState == "closed"  # type: ignore[union-attr]
        assert server.state.connections[-1].closed_at is not None


@pytest.mark.asyncio
async def test_the_deadline_leaves_an_open_call_alone() -> None:
    timers = ManualTimers()
    async with RealtimeServer(pace=0, speech="tones", schedule=timers.schedule) as server:
        client = WebRtcClient()
        try:
            await client.connect(calls_url(server), server.mint_key())
            await client.next("session.created")
            timers.fire()
            client.send({"type": "conversation.item.create", "item": HELLO})
            await client.next("conversation.item.done")
            assert len(server.calls.calls) == 1  # type: ignore[union-attr]
        finally:
            await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["peer connection closed", "data channel closed"])
async def test_a_peer_that_goes_away_releases_the_call(server: RealtimeServer, client: WebRtcClient, how: str) -> None:
    await client.next("session.created")
    (call,) = server.calls.calls.values()  # type: ignore[union-attr]
    client.send({"type": "conversation.item.create", "item": LONG_QUESTION})
    client.send({"type": "response.create"})
    await client.next("output_audio_buffer.started")  # mid-reply: the track and the stream are busy
    if how == "peer connection closed":
        await client.pc.close()
    else:
        client.channel.close()
    await asyncio.wait_for(call.closed.wait(), TIMEOUT_S)
    assert not server.calls.calls  # type: ignore[union-attr]
    assert call.pc.connectionState == "closed" and call.track.readyState == "ended"
    assert not call._tasks or all(task.done() for task in call._tasks)
    assert call.conversation.active is None and not call.conversation.items
    assert server.state.connections[-1].closed_at is not None


@pytest.mark.asyncio
async def test_the_beta_endpoint_answers_an_offer_with_beta_events(server: RealtimeServer) -> None:
    client = WebRtcClient()
    try:
        await client.connect(f"{server.url}v1/realtime?model=gpt-4o-realtime-preview", server.mint_key())
        created = await client.next("session.created")
        assert created["session"]["model"] == "gpt-4o-realtime-preview"
        client.send({"type": "conversation.item.create", "item": HELLO})
        client.send({"type": "response.create"})
        await client.next("output_audio_buffer.stopped")
        assert "response.audio_transcript.delta" in sent_types(client)
        assert conformance_failures("beta", client.events) == []
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_without_aiortc_the_server_starts_and_the_endpoint_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyodide_realtime_server

    monkeypatch.setitem(sys.modules, "aiortc", None)  # import aiortc -> ImportError
    monkeypatch.delitem(sys.modules, "pyodide_realtime_server._webrtc")
    monkeypatch.delattr(pyodide_realtime_server, "_webrtc")
    async with RealtimeServer(pace=0, speech="tones") as server:
        assert server.calls is None
        answer = await post(calls_url(server), server.mint_key(), "v=0\r\n")
        _error(answer, 501, "webrtc_unavailable", "pip install 'pyodide-realtime-server[webrtc]'")
        assert "\n" not in answer.json()["error"]["message"]
        assert (await post(f"{server.url}v1/realtime", server.mint_key(), "v=0\r\n")).status == 501


@pytest.mark.asyncio
async def test_client_events_on_the_channel_are_checked_as_on_the_websocket(client: WebRtcClient) -> None:
    await client.next("session.created")
    client.channel.send("{not json")
    assert (await client.next("error"))["error"]["code"] == "invalid_json"
    client.send({"type": "session.update", "event_id": "evt_1", "session": {"type": "realtime", "bogus": 1}})
    error = (await client.next("error"))["error"]
    assert error["event_id"] == "evt_1" and error["param"] == "session.bogus"
    client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    await client.next("response.done")
    assert conformance_failures("ga", client.events) == []


@pytest.mark.asyncio
async def test_a_channel_message_over_the_bound_ends_the_call(server: RealtimeServer, client: WebRtcClient) -> None:
    await client.next("session.created")
    (call,) = server.calls.calls.values()  # type: ignore[union-attr]
    # A conforming peer keeps to the max-message-size of the answer; this one is made not to.
    client.pc.sctp._remote_max_message_size = 0  # type: ignore[union-attr]
    client.channel.send("x" * (MAX_CHANNEL_MESSAGE_BYTES + 1))
    await asyncio.wait_for(call.closed.wait(), TIMEOUT_S)
    assert call.peer.close_code == 1009 and not server.calls.calls  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_peer_that_vanishes_without_a_word_is_released_when_its_consent_expires(
    server: RealtimeServer, client: WebRtcClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.next("session.created")
    (call,) = server.calls.calls.values()  # type: ignore[union-attr]
    # ICE consent freshness (RFC 7675) finds a silent peer: 6 checks in a row unanswered. aioice spaces
    # them 5 s apart with a 0.5 s timeout (about 30 s in all); closer here, once the call is up.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.2)
    (transceiver,) = client.pc.getTransceivers()
    for protocol in transceiver.receiver.transport.transport.iceGatherer._connection._protocols:
        protocol.transport.close()  # the client's sockets are gone: no DTLS close, no SCTP abort, nothing
    await asyncio.wait_for(call.closed.wait(), TIMEOUT_S)
    assert not server.calls.calls and call.pc.connectionState == "closed"  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_page_of_another_origin_may_call_as_at_the_api(server: RealtimeServer) -> None:
    _loopback.install()
    url = calls_url(server)
    preflight = await asyncio.to_thread(
        request,
        url,
        None,
        {"Origin": "http://127.0.0.1:1", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"},
        "OPTIONS",
    )
    assert preflight.status == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    answer = await post(url, server.mint_key(), await _offer())
    assert answer.status == 201 and answer.headers["access-control-expose-headers"] == "Location"
    refused = await post(url, None, await _offer())
    assert refused.status == 401 and refused.headers["access-control-allow-origin"] == "*"  # the page can read why


@pytest.mark.asyncio
async def test_the_minted_keys_session_applies_to_the_call(server: RealtimeServer) -> None:
    client = WebRtcClient()
    try:
        key = server.mint_key({"type": "realtime", "instructions": "Be brief.", "tools": [WEATHER_TOOL]})
        await client.connect(calls_url(server), key)
        session = (await client.next("session.created"))["session"]
        assert session["instructions"] == "Be brief." and [tool["name"] for tool in session["tools"]] == ["get_weather"]
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_stopping_the_server_hangs_up_its_calls() -> None:
    server = await RealtimeServer(pace=0, speech="tones").start()
    client = WebRtcClient()
    try:
        await client.connect(calls_url(server), server.mint_key())
        await client.next("session.created")
        (call,) = server.calls.calls.values()  # type: ignore[union-attr]
        await server.stop()
        assert call.closed.is_set() and not server.calls.calls  # type: ignore[union-attr]
        await asyncio.wait_for(client.closed.wait(), TIMEOUT_S)  # the peer hears it
    finally:
        await client.close()
        await server.stop()


@pytest.mark.asyncio
async def test_an_offer_without_candidates_connects_from_the_peers_checks(server: RealtimeServer) -> None:
    """As a browser posts it (right after setLocalDescription, before gathering): the server learns
    the peer's address from its connectivity checks (peer-reflexive), on 127.0.0.1."""
    client = WebRtcClient()
    try:
        offer = await client.offer()
        bare = "\r\n".join(line for line in offer.splitlines() if not line.startswith(("a=candidate", "a=end-of-candidates")))
        answer = await post(calls_url(server), server.mint_key(), bare + "\r\n")
        assert answer.status == 201, answer.text
        await client.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await client.next("session.created")
        (call,) = server.calls.calls.values()  # type: ignore[union-attr]
        (transceiver,) = call.pc.getTransceivers()
        pair = transceiver.receiver.transport.transport.iceGatherer._connection._nominated[1]
        assert (pair.local_candidate.host, pair.remote_candidate.host, pair.remote_candidate.type) == ("127.0.0.1", "127.0.0.1", "prflx")
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_refused_offers_are_logged_as_refusals_not_as_connections(server: RealtimeServer) -> None:
    _loopback.install()
    key = server.mint_key()
    await post(calls_url(server), key, await _offer(channel=False))
    broken = "\r\n".join(line for line in (await _offer()).splitlines() if not line.startswith("a=fingerprint"))
    await post(calls_url(server), key, broken)
    await post(calls_url(server), None, "v=0\r\n")
    assert not server.state.connections
    assert [(r["status"], r["code"]) for r in server.state.rejected] == [(400, "invalid_offer"), (400, "invalid_offer"), (401, "invalid_api_key")]
