"""The WebRTC side of a conversation without a track or a clock: the output buffer's frames,
started/stopped and cuts; the microphone track's audio into a full input buffer."""

from __future__ import annotations

import json
from array import array
from typing import Any

import pytest

from pyodide_realtime_server import _conversation
from pyodide_realtime_server._conversation import Conversation
from pyodide_realtime_server._output_buffer import FRAME_BYTES, SILENCE, Cut, OutputAudioBuffer
from pyodide_realtime_server._speech import Synthesizer
from pyodide_realtime_server._state import ConnectionRecord

MS = 48  # bytes of 24 kHz PCM16 per millisecond


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.buffer = OutputAudioBuffer(lambda r: self.seen.append(("started", r)), lambda r: self.seen.append(("stopped", r)))


def test_frames_go_out_in_order_padded_at_the_end_then_silence() -> None:
    events = Events()
    buffer = events.buffer
    assert buffer.next_frame() == SILENCE and events.seen == []
    buffer.push("resp_1", "item_1", b"\x01" * (50 * MS))  # 2.5 frames
    frames = [buffer.next_frame() for _ in range(4)]
    assert frames[0] == frames[1] == b"\x01" * FRAME_BYTES
    assert frames[2] == b"\x01" * (10 * MS) + bytes(10 * MS) and frames[3] == SILENCE
    assert events.seen == [("started", "resp_1")]  # not finished: more may come
    buffer.finish("resp_1")
    assert buffer.next_frame() == SILENCE and events.seen == [("started", "resp_1"), ("stopped", "resp_1")]
    assert buffer.sent_samples == 50 * 24 and buffer.playing is None


def test_stopped_waits_for_the_last_frame_of_a_finished_response() -> None:
    events = Events()
    events.buffer.push("resp_1", "item_1", bytes(40 * MS))
    events.buffer.finish("resp_1")
    events.buffer.next_frame()
    assert events.seen == [("started", "resp_1")]
    events.buffer.next_frame()
    events.buffer.next_frame()
    assert events.seen == [("started", "resp_1"), ("stopped", "resp_1")]


def test_the_next_response_stops_the_one_before() -> None:
    events = Events()
    events.buffer.push("resp_1", "item_1", bytes(20 * MS))
    events.buffer.push("resp_2", "item_2", bytes(20 * MS))
    events.buffer.next_frame()
    events.buffer.next_frame()
    assert events.seen == [("started", "resp_1"), ("stopped", "resp_1"), ("started", "resp_2")]


def test_clear_cuts_at_what_went_out() -> None:
    events = Events()
    buffer = events.buffer
    buffer.push("resp_1", "item_1", bytes(1000 * MS))
    for _ in range(7):
        buffer.next_frame()
    assert buffer.clear() == Cut("resp_1", "item_1", 140)
    assert buffer.next_frame() == SILENCE and buffer.playing is None
    assert buffer.clear() is None  # nothing was going out any more
    assert buffer.last_response_id == "resp_1"
    assert events.seen == [("started", "resp_1")]  # a cut response is cleared, not stopped


def test_clear_of_audio_not_yet_sent_cuts_at_zero_and_after_the_end_cuts_nothing() -> None:
    buffer = Events().buffer
    buffer.push("resp_1", "item_1", bytes(100 * MS))
    assert buffer.clear() == Cut("resp_1", "item_1", 0)
    buffer.push("resp_2", "item_2", bytes(20 * MS))
    buffer.finish("resp_2")
    buffer.next_frame()
    buffer.next_frame()  # stopped
    assert buffer.clear() is None


def test_an_underrun_mid_reply_is_silence_and_the_cut_still_counts_what_went_out() -> None:
    events = Events()
    buffer = events.buffer
    buffer.push("resp_1", "item_1", bytes(20 * MS))
    buffer.next_frame()
    assert buffer.next_frame() == SILENCE and events.seen == [("started", "resp_1")]
    assert buffer.clear() == Cut("resp_1", "item_1", 20)


class Peer:
    """The conversation's peer, in memory."""

    def __init__(self) -> None:
        self.close_code: int | None = None
        self.received_chars = 0
        self.sent: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def drain(self) -> None:
        return None

    async def recv(self) -> str | bytes | None:
        return None


@pytest.mark.asyncio
async def test_a_full_input_buffer_fed_by_the_track_is_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_conversation, "MAX_INPUT_BUFFER_MS", 100)
    peer = Peer()
    record = ConnectionRecord("conn_x", "ga", "m", "/v1/realtime/calls", None, "ephemeral")
    session = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    conversation = Conversation(
        peer, record, dialect="ga", model=None, initial_session=session, synthesizer=Synthesizer("tones"), pace=0, audio_track=True
    )
    frame = array("h", bytes(2 * 480))  # 20 ms
    for _ in range(50):  # one second of microphone: 100 ms fit
        conversation.append_track_audio(frame)
    assert [event["error"]["code"] for event in peer.sent] == ["input_audio_buffer_full"]
    conversation.handle(json.dumps({"type": "input_audio_buffer.clear"}))
    for _ in range(50):
        conversation.append_track_audio(frame)
    assert [event["type"] for event in peer.sent] == ["error", "input_audio_buffer.cleared", "error"]
    conversation.release()
