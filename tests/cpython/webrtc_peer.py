"""A real aiortc client peer for the local server's WebRTC endpoint, as a browser would be one.

It offers the microphone (``Microphone``: silence, or the samples it is told to say, in real time)
and the ``oai-events`` data channel, posts the offer as the JS transport does, and records what
comes back: every server event (``events``, and ``next`` to wait for one) and every frame of the
model's voice (``Speaker``). Everything is waited on through events and queues, never on time.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time
import urllib.error
import urllib.request
from array import array
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from pyodide_realtime_server import _loopback
from pyodide_realtime_server._audio import PCM16_RATE, samples_from_pcm16

TIMEOUT_S = 60.0  # only a guard against a hang (shared, loaded machine)
FRAME_SAMPLES = PCM16_RATE // 50  # 20 ms
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


class Microphone(MediaStreamTrack):
    """20 ms frames in real time: what ``say`` queued, then silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = array("h")
        self._start: float | None = None
        self._pts = 0
        self.said = asyncio.Event()  # set once everything queued has gone out

    def say(self, samples: array[int]) -> None:
        self._pending.extend(samples)
        self.said.clear()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._pts / PCM16_RATE - time.monotonic()))
        chunk = self._pending[:FRAME_SAMPLES]
        del self._pending[:FRAME_SAMPLES]
        if not self._pending:
            self.said.set()
        chunk.extend(array("h", bytes(2 * (FRAME_SAMPLES - len(chunk)))))
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk.tobytes())
        frame.sample_rate = PCM16_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, PCM16_RATE)
        self._pts += FRAME_SAMPLES
        return frame


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
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.location: str | None = None
        self.channel.on("open", self.opened.set)
        self.channel.on("close", self.closed.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.pc.addTrack(self.microphone)

    def _on_message(self, message: str | bytes) -> None:
        event = json.loads(message)
        self.events.append(event)
        self._inbox.put_nowait(event)

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
        while True:
            event = await asyncio.wait_for(self._inbox.get(), TIMEOUT_S)
            if event["type"] == kind:
                return event

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
