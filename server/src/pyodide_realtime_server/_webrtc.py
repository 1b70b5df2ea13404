"""Realtime calls over WebRTC (aiortc): the same conversation as the WebSocket's, on other wires.

A call is one ``RTCPeerConnection`` answered on loopback (``_loopback``). Client events arrive as
JSON text on the ``oai-events`` data channel and go through ``Conversation.handle``, as a
WebSocket's messages do; server events go back on it. The microphone is the remote audio track:
aiortc decodes its Opus, and each frame, resampled to 24 kHz mono, takes the path of
``input_audio_buffer.append`` (VAD, buffer, recognizer). The reply's speech is an outgoing track
(``PacedTrack``) that sends 20 ms frames in real time, silence between replies, from the
conversation's ``OutputAudioBuffer``.

Bounded: the calls at once (``CallDesk``), a data-channel message's size, and the time the data
channel has to open. However a call ends (its channel closes: the peer hung up, or went silent and
its ICE consent expired, which aiortc reports as the channel closing; the deadline; the server
stopping), ``Call.close`` releases its tasks, its conversation and its peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from array import array
from collections.abc import Callable
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from . import _loopback
from ._audio import PCM16_RATE, samples_from_pcm16
from ._conversation import Cancellable, Conversation, Schedule
from ._errors import SdpRefused
from ._output_buffer import FRAME_SAMPLES
from ._session_state import new_id

EVENTS_CHANNEL = "oai-events"
# aiortc advertises this as its max-message-size in the answer, so a conforming peer sends no more.
MAX_CHANNEL_MESSAGE_BYTES = 256 * 1024
CLOSE_MESSAGE_TOO_BIG = 1009  # as a WebSocket would close
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001

logger = logging.getLogger("pyodide_realtime_server")


class ChannelPeer:
    """The data channel as the conversation's peer: ``send`` writes at once (aiortc queues it)."""

    def __init__(self) -> None:
        self.channel: RTCDataChannel | None = None
        self.close_code: int | None = None
        self.received_chars = 0
        self._inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()

    def attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.end(CLOSE_NORMAL))

    def _on_message(self, message: str | bytes) -> None:
        size = len(message.encode() if isinstance(message, str) else message)
        if size > MAX_CHANNEL_MESSAGE_BYTES:
            logger.warning("a data-channel message of %d bytes (more than %d): closing the call", size, MAX_CHANNEL_MESSAGE_BYTES)
            self.end(CLOSE_MESSAGE_TOO_BIG)
            return
        self.received_chars += len(message)
        self._inbox.put_nowait(message)

    def end(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
            self._inbox.put_nowait(None)

    def send(self, text: str) -> None:
        if self.close_code is None and self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)

    async def drain(self) -> None:
        return None  # nothing is queued here

    async def recv(self) -> str | bytes | None:
        if self.close_code is not None and self._inbox.empty():
            return None
        return await self._inbox.get()


class PacedTrack(MediaStreamTrack):
    """An audio track of 24 kHz PCM16: ``next_frame()`` (20 ms of it) every 20 ms of real time."""

    kind = "audio"

    def __init__(self, next_frame: Callable[[], bytes]) -> None:
        super().__init__()
        self.next_frame = next_frame
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            # The media clock: a frame is due every 20 ms (the encoder sends what it gets at once).
            due = self._start + self._pts / PCM16_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self.next_frame())
        frame.sample_rate = PCM16_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, PCM16_RATE)
        self._pts += FRAME_SAMPLES
        return frame


def _check_security(offer: SessionDescription) -> None:
    """What aiortc takes in an offer but only fails on later, in its connecting task: every media
    section needs ICE credentials and a DTLS fingerprint."""
    for media in offer.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise SdpRefused(f"The SDP offer could not be used: its m={media.kind} section has no ICE credentials (a=ice-ufrag, a=ice-pwd).")
        if media.dtls is None or not media.dtls.fingerprints:
            raise SdpRefused(f"The SDP offer could not be used: its m={media.kind} section has no DTLS fingerprint (a=fingerprint).")


class Call:
    """One answered offer: its peer connection, data channel, tracks and conversation."""

    def __init__(
        self,
        call_id: str,
        desk: CallDesk,
        make_conversation: Callable[[ChannelPeer], Conversation],
        on_closed: Callable[[Call], None],
    ) -> None:
        self.id = call_id
        self.desk = desk
        self._on_closed = on_closed
        self.pc = RTCPeerConnection(_loopback.configuration())
        self.peer = ChannelPeer()
        self.conversation = make_conversation(self.peer)
        assert self.conversation.output is not None
        self.track = PacedTrack(self.conversation.output.next_frame)  # the model's voice
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadline: Cancellable | None = None
        self._closing = False
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)

    async def answer(self, offer: str) -> str:
        try:
            _check_security(SessionDescription.parse(offer))
            await self.pc.setRemoteDescription(RTCSessionDescription(_loopback.loopback_offer(offer), "offer"))
        except SdpRefused:
            raise
        except Exception as exc:  # aiortc raises ValueError, and others, on an SDP it cannot use
            raise SdpRefused(f"The SDP offer could not be used: {exc or type(exc).__name__}.") from None
        _loopback.refuse_foreign_checks(self.pc)
        self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def start(self, open_timeout_s: float, schedule: Schedule | None) -> None:
        self._deadline = (schedule or asyncio.get_running_loop().call_later)(open_timeout_s, self._open_deadline)
        self._spawn(self._run(), f"call {self.id}")

    def _spawn(self, coroutine: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self.peer.channel is not None:
            channel.close()  # the API speaks on one channel only
            return
        self.peer.attach(channel)
        if self._deadline is not None:
            self._deadline.cancel()
        self.opened.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._listen(track), f"listen {self.id}")

    def _open_deadline(self) -> None:
        self._deadline = None
        if not self.opened.is_set() and not self._closing:
            logger.info("call %s: the data channel did not open in time; closing the peer connection", self.id)
            self._spawn(self.close(), f"close {self.id}")

    async def _run(self) -> None:
        try:
            await self.opened.wait()
            await self.conversation.run()
        except Exception:
            logger.exception("the simulated model crashed on call %s", self.id)
        finally:
            if not self._closing:
                self._spawn(self.close(), f"close {self.id}")

    async def _listen(self, track: MediaStreamTrack) -> None:
        """The microphone: every decoded frame, at 24 kHz mono, into the conversation's audio input."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM16_RATE)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame) or not self.opened.is_set() or self.peer.close_code is not None:
                    continue  # nobody to tell what was heard yet: drop it (and keep aiortc's queue empty)
                pcm = array("h")
                for resampled in resampler.resample(frame):
                    pcm.extend(samples_from_pcm16(bytes(resampled.planes[0])[: resampled.samples * 2]))
                self.conversation.append_track_audio(pcm)
                await self.peer.drain()

    async def close(self) -> None:
        """Release everything the call holds (idempotent)."""
        if self._closing:
            return
        self._closing = True
        if self._deadline is not None:
            self._deadline.cancel()
        self.peer.end(CLOSE_GOING_AWAY)
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self.conversation.release()
        self.track.stop()
        try:
            await self.pc.close()
        finally:
            self.desk.calls.pop(self.id, None)
            self.closed.set()
            self._on_closed(self)


class CallDesk:
    """The calls in progress, at most ``max_calls``."""

    def __init__(self, *, max_calls: int, open_timeout_s: float, schedule: Schedule | None = None) -> None:
        _loopback.install()
        self.max_calls = max_calls
        self.open_timeout_s = open_timeout_s
        self.schedule = schedule
        self.calls: dict[str, Call] = {}

    @property
    def full(self) -> bool:
        return len(self.calls) >= self.max_calls

    async def answer(
        self, offer: str, make_conversation: Callable[[ChannelPeer], Conversation], on_closed: Callable[[Call], None]
    ) -> tuple[str, str]:
        """Answer ``offer``: the call's id and the answer SDP. Raises ``SdpRefused``."""
        call = Call(new_id("rtc"), self, make_conversation, on_closed)
        self.calls[call.id] = call
        try:
            answer = await call.answer(offer)
        except BaseException:
            await call.close()
            raise
        call.start(self.open_timeout_s, self.schedule)
        return call.id, answer

    async def close_all(self) -> None:
        await asyncio.gather(*(call.close() for call in list(self.calls.values())), return_exceptions=True)
