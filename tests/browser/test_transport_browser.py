"""The browser backend and the transport over the page's real WebSocket, against servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_pyodide import run_in_pyodide

from scripted_server import FRAMES, ScriptedServer


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ws(scripted: ScriptedServer) -> ScriptedServer:
    scripted.reset()
    return scripted


# The backend alone ---------------------------------------------------------------------------------


@run_in_pyodide(packages=["pyodide-realtime"])
async def _backend_echo(selenium, url, messages):
    import asyncio

    from pyodide_realtime._browser_socket import create_browser_socket
    from pyodide_realtime._interfaces import SocketRequest

    got, opened, closed = [], asyncio.Event(), asyncio.Event()

    class Handler:
        def on_open(self, protocol):
            got.append(("open", protocol))
            opened.set()

        def on_message(self, data):
            got.append(("message", bytes(data).decode()))

        def on_binary(self, size):
            got.append(("binary", size))

        def on_error(self, error):
            got.append(("error", type(error).__name__))

        def on_close(self, code, reason):
            got.append(("close", code))
            closed.set()

    request = SocketRequest(url=url, subprotocols=("realtime", "openai-insecure-api-key.ek_test"), headers={})
    sock = create_browser_socket(request, Handler())
    await asyncio.wait_for(opened.wait(), 5)
    for m in messages:
        sock.send(m)
    deadline = asyncio.get_running_loop().time() + 5
    while sum(1 for g in got if g[0] == "message") < len(messages):
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.01)
    live_while_open = sock.live_proxies
    sock.close()
    await asyncio.wait_for(closed.wait(), 5)
    await asyncio.sleep(0.05)
    return got, live_while_open, sock.live_proxies


def test_backend_moves_text_frames_of_any_size_and_script(selenium, ws):
    # Small, multi-byte UTF-8, and larger than the initial 64 KiB buffer (forces a grow).
    big = '{"type":"x","delta":"' + "é" * 50_000 + "😀" * 10_000 + '"}'
    messages = ['{"type":"a"}', '{"type":"ünïcödé ✓"}', big, '{"type":"after-grow"}']
    got, live_while_open, live_after = _backend_echo(selenium, ws.url + "/echo", messages)
    assert got[0] == ["open", "realtime"] or got[0] == ("open", "realtime")
    echoed = [g[1] for g in got if g[0] == "message"]
    assert echoed == messages
    assert ws.received == messages
    assert ws.requests[0]["headers"]["Sec-WebSocket-Protocol"] == "realtime, openai-insecure-api-key.ek_test"
    assert live_while_open > 0
    assert live_after == 0
    assert got[-1][0] == "close"


@run_in_pyodide(packages=["pyodide-realtime"])
async def _backend_frames(selenium, url):
    import asyncio

    from pyodide_realtime._browser_socket import create_browser_socket
    from pyodide_realtime._interfaces import SocketRequest

    got, done = [], asyncio.Event()

    class Handler:
        def on_open(self, protocol):
            pass

        def on_message(self, data):
            got.append(("message", bytes(data).decode()))
            if len([g for g in got if g[0] == "message"]) == 5:
                done.set()

        def on_binary(self, size):
            got.append(("binary", size))

        def on_error(self, error):
            got.append(("error", str(error)))

        def on_close(self, code, reason):
            pass

    sock = create_browser_socket(SocketRequest(url=url, subprotocols=("realtime",), headers={}), Handler())
    await asyncio.wait_for(done.wait(), 5)
    sock.close()
    return got


def test_backend_reports_binary_frames_by_size(selenium, ws):
    got = _backend_frames(selenium, ws.url + "/frames")
    texts = [f for f in FRAMES if isinstance(f, str)]
    assert [g[1] for g in got if g[0] == "message"] == texts
    assert [tuple(g) for g in got if g[0] == "binary"] == [("binary", len(FRAMES[3]))]


@run_in_pyodide(packages=["pyodide-realtime"])
async def _backend_failure(selenium, url, subprotocols):
    import asyncio

    from pyodide_realtime._browser_socket import create_browser_socket
    from pyodide_realtime._interfaces import SocketRequest
    from pyodide_realtime.errors import ConfigurationError

    got, closed = [], asyncio.Event()

    class Handler:
        def on_open(self, protocol):
            got.append(("open", protocol))

        def on_message(self, data):
            got.append(("message",))

        def on_binary(self, size):
            got.append(("binary", size))

        def on_error(self, error):
            got.append(("error", type(error).__name__, str(error)))

        def on_close(self, code, reason):
            got.append(("close", code))
            closed.set()

    try:
        sock = create_browser_socket(SocketRequest(url=url, subprotocols=tuple(subprotocols), headers={}), Handler())
    except ConfigurationError as exc:
        return [("raised", type(exc).__name__, str(exc))], -1
    await asyncio.wait_for(closed.wait(), 5)
    await asyncio.sleep(0.05)
    return got, sock.live_proxies


def test_backend_fails_when_server_selects_no_subprotocol(selenium, ws):
    got, live = _backend_failure(selenium, ws.url + "/no-protocol", ["realtime", "openai-insecure-api-key.ek_x"])
    kinds = [g[0] for g in got]
    assert kinds == ["error", "close"], got
    assert got[0][1] == "ConnectionFailedError"
    assert got[1][1] == 1006
    assert live == 0
    # The server did see the offer: the failure is the browser's refusal of the answer.
    assert ws.requests[0]["headers"]["Sec-WebSocket-Protocol"] == "realtime, openai-insecure-api-key.ek_x"


def test_backend_turns_a_malformed_token_into_a_configuration_error(selenium, ws):
    secret = "ek_has space"
    got, live = _backend_failure(selenium, ws.url + "/echo", ["realtime", "openai-insecure-api-key." + secret])
    assert got[0][:2] == ("raised", "ConfigurationError") or got[0][:2] == ["raised", "ConfigurationError"]
    assert secret not in got[0][2]
    assert ws.requests == []
