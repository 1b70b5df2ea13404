"""The local server over WebRTC: a real aiortc peer (``webrtc_peer``) on loopback against
``POST /v1/realtime/calls``, with the conversation of the WebSocket path.

Every event the server sends on the data channel is checked against the ``openai`` SDK's types.
Tests wait on events (the channel's, the remote track's frames), never on wall time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from test_server_conformance import conformance_failures
from webrtc_peer import WebRtcClient

from pyodide_realtime_server import RealtimeServer

HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}


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
