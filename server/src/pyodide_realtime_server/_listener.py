"""Speech recognition in a process of its own: ``Listener`` (server side) and the worker's loop.

PocketSphinx holds the GIL while it decodes: in a thread, a 3 s utterance stalled the server's event
loop, so every connection's audio, for half a second (measured). The worker is a plain child
process (``python -m pyodide_realtime_server._listener``), not ``multiprocessing``, whose spawn
re-imports the embedding program's ``__main__``. One worker per server, started on first use;
requests go one at a time over its pipes:

    request:  one JSON line {"rate": 24000, "tools": [...], "bytes": N}, then N bytes of PCM16 LE
    answer:   one JSON line {"text": "..."} (or {"error": "..."})

One worker serves every connection, so no client may hold it: each request hears at most
``max_audio_ms`` of audio (the start of the turn, where the words are) and gets ``timeout_s`` of the
worker (past that the worker is killed and the next request starts a new one), and the queue is
served round-robin by client (the client served longest ago goes first), so one client's backlog
waits behind another's single request.

The worker ends with the server: ``close`` stops it, and the worker itself asks the kernel to kill
it when its parent dies (a server killed by a signal runs no clean-up), and stops at the end of its
input. It starts with a minimal environment: no API key or other secret of the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
from array import array
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from . import _recognizer
from ._audio import pcm16_from_samples, samples_from_pcm16

STOP_TIMEOUT_S = 2.0
MAX_LINE_BYTES = 64 * 1024
#: The audio one request may make the worker decode, and the time it may take. A turn's words come
#: first; a buffer committed after minutes of noise must not hold the worker for minutes.
MAX_RECOGNIZED_MS = 15_000
RECOGNITION_TIMEOUT_S = 30.0
#: What the worker keeps of the server's environment: enough to run Python, no secrets.
WORKER_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "LD_LIBRARY_PATH")
PARENT_PID_VARIABLE = "PYRT_LISTENER_PARENT"
_PR_SET_PDEATHSIG = 1


class RecognizerError(Exception):
    """The worker failed, died or ran out of time; the next request starts a new one."""


@dataclass
class _Request:
    header: bytes
    pcm: bytes
    answer: asyncio.Future[str] = field(repr=False)


def worker_environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in WORKER_ENVIRONMENT if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    return env


class Listener:
    """The server's side of the worker. ``command`` replaces the worker (tests give a stand-in)."""

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        max_audio_ms: int = MAX_RECOGNIZED_MS,
        timeout_s: float = RECOGNITION_TIMEOUT_S,
    ) -> None:
        self._command = list(command) if command is not None else [sys.executable, "-m", __name__]
        self.max_audio_ms = max_audio_ms
        self.timeout_s = timeout_s
        self._process: asyncio.subprocess.Process | None = None
        # Waiting requests by client, and when each client was last served (a ticket number).
        self._queues: dict[Hashable, deque[_Request]] = {}
        self._served: dict[Hashable, int] = {}
        self._tickets = 0
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def recognize(self, samples: array[int], rate: int, tool_names: Iterable[str], *, client: Hashable = None) -> str:
        """The words in ``samples`` (PCM16 at ``rate``), served in turn with other ``client``s' requests."""
        pcm = pcm16_from_samples(samples[: self.max_audio_ms * rate // 1000])
        header = json.dumps({"rate": rate, "tools": list(tool_names), "bytes": len(pcm)}).encode() + b"\n"
        request = _Request(header, pcm, asyncio.get_running_loop().create_future())
        self._queues.setdefault(client, deque()).append(request)
        self._ready.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._serve(), name="speech recognizer queue")
        try:
            return await request.answer
        finally:
            request.answer.cancel()  # a caller that stopped waiting: the queue skips its request
            queue = self._queues.get(client)
            if queue is not None and request in queue:
                queue.remove(request)
                if not queue:
                    del self._queues[client]

    def forget(self, client: Hashable) -> None:
        """``client`` is gone (its connection closed): drop what it still waits for."""
        for request in self._queues.pop(client, ()):
            request.answer.cancel()
        self._served.pop(client, None)

    def _next(self) -> _Request | None:
        """The first waiting request of the client served longest ago (never, first): round-robin."""
        while self._queues:
            client = min(self._queues, key=lambda c: self._served.get(c, -1))
            queue = self._queues[client]
            request = queue.popleft()
            if not queue:
                del self._queues[client]
            self._tickets += 1
            self._served[client] = self._tickets
            if not request.answer.done():
                return request
        return None

    async def _serve(self) -> None:
        while True:
            request = self._next()
            if request is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            try:
                text = await asyncio.wait_for(self._ask(request), self.timeout_s)
            except TimeoutError:
                await self._stop_worker()
                error = RecognizerError(f"speech recognition took longer than {self.timeout_s:g} s: the worker was restarted")
                if not request.answer.done():
                    request.answer.set_exception(error)
            except RecognizerError as error:
                await self._stop_worker()
                if not request.answer.done():
                    request.answer.set_exception(error)
            else:
                if not request.answer.done():
                    request.answer.set_result(text)

    async def _start(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=worker_environment(),
                limit=MAX_LINE_BYTES,
            )
        return self._process

    async def _ask(self, request: _Request) -> str:
        process = await self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(request.header + request.pcm)
            await process.stdin.drain()
            line = await process.stdout.readline()
        except (ConnectionError, OSError, ValueError) as exc:  # ValueError: an answer line over the limit
            raise RecognizerError(f"the speech recognizer process failed: {exc}") from None
        if not line:
            raise RecognizerError(f"the speech recognizer process ended (exit code {await process.wait()})")
        try:
            answer = json.loads(line)
        except ValueError:
            raise RecognizerError("the speech recognizer process answered something that is not JSON") from None
        if "error" in answer:
            raise RecognizerError(str(answer["error"]))
        return str(answer["text"])

    async def _stop_worker(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the worker's loop ends at end of input
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def close(self) -> None:
        """Stop the worker and refuse what still waits."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for queue in self._queues.values():
            for request in queue:
                request.answer.cancel()
        self._queues.clear()
        self._served.clear()
        # Killed at once: it may be in the middle of a long decode, and the server is going away.
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await self._stop_worker()


def _die_with_parent() -> None:
    """Ask the kernel (Linux) to kill this process when the server does, however the server ends."""
    library = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and library:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(library, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    expected = os.environ.get(PARENT_PID_VARIABLE)
    if expected and os.getppid() != int(expected):
        sys.exit(0)  # the server died before the request above took effect


def serve() -> None:
    """The worker: answer requests from stdin until it closes."""
    _die_with_parent()
    source = sys.stdin.buffer
    sink = sys.stdout.buffer
    while header := source.readline(MAX_LINE_BYTES):
        try:
            request = json.loads(header)
            pcm = source.read(int(request["bytes"]))
            text = _recognizer.recognize(samples_from_pcm16(pcm), int(request["rate"]), request["tools"])
            answer = {"text": text}
        except Exception as exc:  # reported to the server, which logs it; the worker keeps serving
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sink.write(json.dumps(answer).encode() + b"\n")
        sink.flush()


if __name__ == "__main__":
    serve()
