"""Speech recognition in a process of its own: ``Listener`` (server side) and the worker's loop.

PocketSphinx holds the GIL while it decodes: in a thread, a 3 s utterance stalled the server's event
loop, so every connection's audio, for half a second (measured). The worker is a plain child
process (``python -m pyodide_realtime_server._listener``), not ``multiprocessing``, whose spawn
re-imports the embedding program's ``__main__``. One worker per server, started on first use and
stopped with the server; requests go one at a time over its pipes:

    request:  one JSON line {"rate": 24000, "tools": [...], "bytes": N}, then N bytes of PCM16 LE
    answer:   one JSON line {"text": "..."} (or {"error": "..."})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from array import array
from collections.abc import Iterable

from . import _recognizer
from ._audio import pcm16_from_samples, samples_from_pcm16

STOP_TIMEOUT_S = 2.0
MAX_LINE_BYTES = 64 * 1024


class RecognizerError(Exception):
    """The worker failed or died; the next request starts a new one."""


class Listener:
    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _start(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                limit=MAX_LINE_BYTES,
            )
        return self._process

    async def recognize(self, samples: array[int], rate: int, tool_names: Iterable[str]) -> str:
        pcm = pcm16_from_samples(samples)
        header = json.dumps({"rate": rate, "tools": list(tool_names), "bytes": len(pcm)}).encode() + b"\n"
        async with self._lock:
            process = await self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(header + pcm)
                await process.stdin.drain()
                line = await process.stdout.readline()
            except (ConnectionError, OSError) as exc:
                raise RecognizerError(f"the speech recognizer process failed: {exc}") from None
            if not line:
                raise RecognizerError(f"the speech recognizer process ended (exit code {await process.wait()})")
            answer = json.loads(line)
            if "error" in answer:
                raise RecognizerError(str(answer["error"]))
            return str(answer["text"])

    async def close(self) -> None:
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


def serve() -> None:
    """The worker: answer requests from stdin until it closes."""
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
