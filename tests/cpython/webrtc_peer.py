"""A real aiortc client peer for the local server's WebRTC endpoint, as a browser would be one.

It offers the microphone (``Microphone``: silence, or the samples it is told to say, in real time)
and the ``oai-events`` data channel, posts the offer as the JS transport does, and records what
comes back: every server event (``events``, and ``next`` to wait for one) and every frame of the
model's voice (``Speaker``). Everything is waited on through events and queues, never on time.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.error
import urllib.request
from array import array
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from pyodide_realtime_server import _loopback
from pyodide_realtime_server._audio import pcm16_from_samples, samples_from_pcm16
from pyodide_realtime_server._output_buffer import FRAME_SAMPLES
from pyodide_realtime_server._webrtc import PacedTrack

TIMEOUT_S = 60.0  # only a guard against a hang (shared, loaded machine)
LOUD_RMS = 300.0  # the simulated voice's frames are far louder; Opus' silence is 0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def request(url: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> Answer:
    """One HTTP request, its answer whatever the status (blocking: run it in a thread)."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode())


async def post(url: str, key: str | None, sdp: str | bytes, content_type: str = "application/sdp") -> Answer:
    """POST an offer as the JS transport does (``Authorization: Bearer``, the SDP as the body)."""
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await asyncio.to_thread(request, url, sdp.encode() if isinstance(sdp, str) else sdp, headers)


class Microphone(PacedTrack):
    """20 ms frames in real time (the server's own pacing): what ``say`` queued, then silence."""

    def __init__(self) -> None:
        super().__init__(self._next)
        self._pending = array("h")

    def say(self, samples: array[int]) -> None:
        self._pending.extend(samples)

    def _next(self) -> bytes:
        chunk = self._pending[:FRAME_SAMPLES]
        del self._pending[:FRAME_SAMPLES]
        return pcm16_from_samples(chunk) + bytes(2 * (FRAME_SAMPLES - len(chunk)))


class Speaker:
    """The remote track's frames, each as its duration and loudness."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, float]] = []  # (ms, rms)
        self.changed = asyncio.Condition()
        self.ended = asyncio.Event()

    @property
    def loud_ms(self) -> float:
        return sum(ms for ms, rms in self.frames if rms >= LOUD_RMS)

    def loud_frames(self, start: int = 0) -> int:
        return sum(1 for _, rms in self.frames[start:] if rms >= LOUD_RMS)

    async def wait_for(self, predicate: Any) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self)), TIMEOUT_S)

    async def play(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                samples = samples_from_pcm16(bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)])
                rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
                async with self.changed:
                    self.frames.append((1000 * frame.samples / frame.sample_rate, rms))
                    self.changed.notify_all()
        except MediaStreamError:
            self.ended.set()


class WebRtcClient:
    def __init__(self) -> None:
        _loopback.install()
        self.pc = RTCPeerConnection(_loopback.configuration())
        self.microphone = Microphone()
        self.speaker = Speaker()
        self.channel = self.pc.createDataChannel("oai-events")
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._taken: dict[str, int] = {}  # event type -> how many of them ``next`` has returned
        self._tasks: set[asyncio.Task[None]] = set()
        self.location: str | None = None
        self.channel.on("open", self.opened.set)
        self.channel.on("close", self.closed.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.addTrack(self.microphone)

    def _on_message(self, message: str | bytes) -> None:
        self.events.append(json.loads(message))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.get_running_loop().create_task(self.speaker.play(track))
        self._tasks.add(task)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def connect(self, calls_url: str, key: str) -> None:
        answer = await post(calls_url, key, await self.offer())
        assert answer.status == 201, answer.text
        assert answer.headers["content-type"].startswith("application/sdp")
        self.location = answer.headers["location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
        await asyncio.wait_for(self.opened.wait(), TIMEOUT_S)

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def next(self, kind: str) -> dict[str, Any]:
        """The next event of type ``kind`` (in arrival order, whatever arrived between)."""
        index = self._taken.get(kind, 0)

        def found() -> list[dict[str, Any]]:
            return [event for event in self.events if event["type"] == kind][index:]

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(found), TIMEOUT_S)
        self._taken[kind] = index + 1
        return found()[0]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
