"""The speech recognizer's worker: a budget of audio and time per request, round-robin service between
clients, no secrets in its environment, and an end with the server however the server ends.

A stand-in worker (a few lines of Python, below) speaks the worker's protocol, so each test decides
what the worker does; the real one is tested in test_server_speech.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from pyodide_realtime_server import RealtimeServer
from pyodide_realtime_server._listener import Listener, RecognizerError

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0  # only a guard against a hang: every wait ends on an event (a line, an exit, an answer)
RATE = 24_000

# argv[1] says what the stand-in answers: the request's tool names ("tools"), the PCM byte count
# ("bytes"), its own environment's names ("env"), or nothing, ever, as a decode that never ends ("hang").
STAND_IN = textwrap.dedent(
    """
    import json, os, sys, time
    from pyodide_realtime_server._listener import _die_with_parent
    _die_with_parent()
    mode = sys.argv[1]
    while header := sys.stdin.buffer.readline():
        request = json.loads(header)
        pcm = sys.stdin.buffer.read(request["bytes"])
        if mode == "hang":
            print("busy", file=sys.stderr, flush=True)
            time.sleep(3600)
        text = {"tools": " ".join(request["tools"]), "bytes": str(len(pcm)), "env": " ".join(sorted(os.environ))}[mode]
        sys.stdout.buffer.write(json.dumps({"text": text}).encode() + b"\\n")
        sys.stdout.buffer.flush()
    """
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("worker") / "stand_in.py"
    path.write_text(STAND_IN)
    yield path


def _listener(stand_in: Path, mode: str, **options: float) -> Listener:
    return Listener(command=[sys.executable, str(stand_in), mode], **options)  # type: ignore[arg-type]


def _noise(ms: int) -> array[int]:
    return array("h", ((n * 7919) % 20000 - 10000 for n in range(ms * RATE // 1000)))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _gone(pid: int) -> None:
    while _alive(pid):
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_requests_are_served_round_robin_between_clients(stand_in: Path) -> None:
    listener = _listener(stand_in, "tools")
    finished: list[str] = []

    async def ask(client: str, name: str) -> None:
        finished.append(await listener.recognize(_noise(10), RATE, [name], client=client))

    try:
        # One client queues three requests before another queues one: the other is served second,
        # not fourth.
        await asyncio.wait_for(asyncio.gather(ask("a", "a1"), ask("a", "a2"), ask("a", "a3"), ask("b", "b1")), TIMEOUT_S)
    finally:
        await listener.close()
    assert finished == ["a1", "b1", "a2", "a3"]


@pytest.mark.asyncio
async def test_a_request_hears_at_most_its_budget_of_audio(stand_in: Path) -> None:
    listener = _listener(stand_in, "bytes", max_audio_ms=1000)
    try:
        heard = await asyncio.wait_for(listener.recognize(_noise(3000), RATE, []), TIMEOUT_S)
        short = await asyncio.wait_for(listener.recognize(_noise(500), RATE, []), TIMEOUT_S)
    finally:
        await listener.close()
    assert (int(heard), int(short)) == (1000 * RATE // 1000 * 2, 500 * RATE // 1000 * 2)


@pytest.mark.asyncio
async def test_a_request_over_its_time_budget_restarts_the_worker_and_the_queue_goes_on(stand_in: Path) -> None:
    listener = _listener(stand_in, "hang", timeout_s=0.5)
    try:
        first = asyncio.ensure_future(listener.recognize(_noise(10), RATE, [], client="a"))
        second = asyncio.ensure_future(listener.recognize(_noise(10), RATE, [], client="b"))
        with pytest.raises(RecognizerError, match="longer than 0.5 s"):
            await asyncio.wait_for(first, TIMEOUT_S)
        with pytest.raises(RecognizerError, match="longer than 0.5 s"):
            await asyncio.wait_for(second, TIMEOUT_S)  # served by a new worker, which also hangs
    finally:
        await listener.close()
    assert listener.pid is None


@pytest.mark.asyncio
async def test_the_worker_does_not_inherit_the_api_key(stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-in-the-worker")
    listener = _listener(stand_in, "env")
    try:
        names = (await asyncio.wait_for(listener.recognize(_noise(10), RATE, []), TIMEOUT_S)).split()
    finally:
        await listener.close()
    assert "OPENAI_API_KEY" not in names and "PYTHONPATH" in names


# -- the worker ends with the server ---------------------------------------------------------------


async def _start_a_busy_worker(ws_url: str, key: str) -> None:
    """A connection whose committed audio sets the (stand-in) worker decoding for ever."""
    async with connect(ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{key}"]) as ws:
        await ws.recv()
        update = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
        await ws.send(json.dumps(update))
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(_noise(300).tobytes()).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while json.loads(await ws.recv())["type"] != "input_audio_buffer.committed":
            pass


@pytest.mark.asyncio
async def test_the_worker_ends_when_the_server_stops_on_an_exception(stand_in: Path) -> None:
    with pytest.raises(RuntimeError, match="the embedding program failed"):
        async with RealtimeServer(pace=0, speech="tones") as srv:
            srv.listener = _listener(stand_in, "hang")
            await _start_a_busy_worker(srv.ws_url, srv.mint_key())
            while srv.listener.pid is None:
                await asyncio.sleep(0.01)
            pid = srv.listener.pid
            raise RuntimeError("the embedding program failed")
    await asyncio.wait_for(_gone(pid), TIMEOUT_S)


# The command line, with the stand-in as its worker; it prints its pid and the worker's once started.
CLI = textwrap.dedent(
    """
    import functools, sys
    from pyodide_realtime_server import _app, _cli
    from pyodide_realtime_server._listener import Listener
    _app.Listener = functools.partial(Listener, command=[sys.executable, sys.argv[1], "hang"])
    sys.exit(_cli.run(["--port", "0", "--speech", "tones", "--offline", "--test-endpoints"]))
    """
)


@pytest.mark.asyncio
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_the_worker_ends_when_the_command_line_server_gets_a_signal(stand_in: Path, stop: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "server" / "src")])}
    env.pop("OPENAI_API_KEY", None)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, str(stand_in), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        preexec_fn=_as_from_a_terminal,
    )
    assert server.stdout is not None and server.stderr is not None
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), TIMEOUT_S)).decode()
        assert line.startswith("Serving on "), line
        url = line.split()[-1].rstrip("/")
        minted = await asyncio.to_thread(_mint, url)
        await asyncio.wait_for(_start_a_busy_worker(url.replace("http://", "ws://") + "/v1/realtime", minted), TIMEOUT_S)
        # The stand-in says "busy" on stderr (inherited from the server) once it holds a request.
        while (said := await asyncio.wait_for(server.stderr.readline(), TIMEOUT_S)).strip() not in (b"busy", b""):
            pass
        assert said.strip() == b"busy"
        [worker] = _children(server.pid)
        server.send_signal(stop)
        await asyncio.wait_for(server.wait(), TIMEOUT_S)
        await asyncio.wait_for(_gone(worker), TIMEOUT_S)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


def _as_from_a_terminal() -> None:
    """SIGINT as a terminal's foreground command has it. A test run started in the background of a script
    (``cmd &``, as CI may) has SIGINT ignored, its children inherit that, and Python then leaves Ctrl-C
    ignored, as it should: the server would never see this test's SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _mint(url: str) -> str:
    import urllib.request

    request = urllib.request.Request(url + "/v1/realtime/client_secrets", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return str(json.load(response)["value"])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found
