"""The browser backend and the transport over the page's real WebSocket, against servers on loopback, in
Chromium, Firefox and WebKit (one page per engine: tests/browser/conftest.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engines import Page, in_page
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


def until_the_server(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for the scripted server's thread to catch up with what the page sent: the page may return
    before that thread has recorded its last frames or its close."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"the scripted server never {what}"
        time.sleep(0.01)


# The backend alone ---------------------------------------------------------------------------------


@in_page
async def _backend_echo(url, messages):
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
    live_at_open = sock.live_proxies
    for m in messages:
        sock.send(m)
    deadline = asyncio.get_running_loop().time() + 5
    while sum(1 for g in got if g[0] == "message") < len(messages):
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.01)
    live_while_open = sock.live_proxies
    sock.close()
    await asyncio.wait_for(closed.wait(), 5)
    # The proxies go just after the close handler returns: wait for that, not for a guessed time.
    deadline = asyncio.get_running_loop().time() + 5
    while sock.live_proxies and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return got, (live_at_open, live_while_open), sock.live_proxies


def test_backend_moves_text_frames_of_any_size_and_script(page: Page, ws: ScriptedServer) -> None:
    # Small, multi-byte UTF-8, and larger than the initial 64 KiB buffer (forces a grow).
    big = '{"type":"x","delta":"' + "é" * 50_000 + "😀" * 10_000 + '"}'
    many = [f'{{"type":"n","i":{i}}}' for i in range(300)]
    messages = ['{"type":"a"}', '{"type":"ünïcödé ✓"}', big, '{"type":"after-grow"}', *many]
    got, (live_at_open, live_while_open), live_after = _backend_echo(page, ws.url + "/echo", messages)
    assert got[0] == ["open", "realtime"] or got[0] == ("open", "realtime")
    echoed = [g[1] for g in got if g[0] == "message"]
    assert echoed == messages
    assert ws.received == messages
    assert ws.requests[0]["headers"]["Sec-WebSocket-Protocol"] == "realtime, openai-insecure-api-key.ek_test"
    assert live_while_open == live_at_open > 0  # nothing grows per message, nor when the buffer grows
    assert live_after == 0
    assert got[-1][0] == "close"


@in_page
async def _backend_frames(url):
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


def test_backend_reports_binary_frames_by_size(page: Page, ws: ScriptedServer) -> None:
    got = _backend_frames(page, ws.url + "/frames")
    texts = [f for f in FRAMES if isinstance(f, str)]
    assert [g[1] for g in got if g[0] == "message"] == texts
    assert [tuple(g) for g in got if g[0] == "binary"] == [("binary", len(FRAMES[3]))]


@in_page
async def _backend_handler_raises(url):
    import asyncio

    from page_helpers import kept_logs

    from pyodide_realtime._browser_socket import create_browser_socket
    from pyodide_realtime._interfaces import SocketRequest

    got, opened = [], asyncio.Event()

    class Handler:
        def on_open(self, protocol):
            opened.set()

        def on_message(self, data):
            got.append(bytes(data).decode())
            if len(got) == 1:
                raise RuntimeError("a bug in the handler")

        def on_binary(self, size):
            pass

        def on_error(self, error):
            pass

        def on_close(self, code, reason):
            pass

    with kept_logs() as logged:
        sock = create_browser_socket(SocketRequest(url=url, subprotocols=("realtime",), headers={}), Handler())
        await asyncio.wait_for(opened.wait(), 5)
        sock.send('{"type":"first"}')
        sock.send('{"type":"second"}')
        for _ in range(250):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        sock.close()
    return got, logged


def test_a_handler_that_raises_is_logged_and_the_socket_lives_on(page: Page, ws: ScriptedServer) -> None:
    got, logged = _backend_handler_raises(page, ws.url + "/echo")
    assert got == ['{"type":"first"}', '{"type":"second"}']
    assert logged == ["the socket handler raised on a message"]


@in_page
async def _backend_failure(url, subprotocols):
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
    # Once its proxies are gone no event can reach the handler: then "nothing after the close" is proven.
    deadline = asyncio.get_running_loop().time() + 5
    while sock.live_proxies and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return got, sock.live_proxies


def test_backend_fails_when_server_selects_no_subprotocol(page: Page, ws: ScriptedServer) -> None:
    got, live = _backend_failure(page, ws.url + "/no-protocol", ["realtime", "openai-insecure-api-key.ek_x"])
    kinds = [g[0] for g in got]
    assert kinds == ["error", "close"], got
    assert got[0][1] == "ConnectionFailedError"
    assert got[1][1] == 1006
    assert live == 0
    # The server did see the offer: the failure is the browser's refusal of the answer.
    assert ws.requests[0]["headers"]["Sec-WebSocket-Protocol"] == "realtime, openai-insecure-api-key.ek_x"


def test_backend_turns_a_malformed_token_into_a_configuration_error(page: Page, ws: ScriptedServer) -> None:
    secret = "ek_has space"
    got, live = _backend_failure(page, ws.url + "/echo", ["realtime", "openai-insecure-api-key." + secret])
    assert got[0][:2] == ("raised", "ConfigurationError") or got[0][:2] == ["raised", "ConfigurationError"]
    assert secret not in got[0][2]
    assert ws.requests == []


# The transport over the browser backend ------------------------------------------------------------


@in_page
async def _text_exchange(ws_url, key):
    from pyodide_realtime import OpenAIRealtimeWebSocket

    transport = OpenAIRealtimeWebSocket(url=ws_url)
    text, errors = [], []
    transport.on("output_text_delta", lambda event: text.append(event.delta))
    transport.on("error", lambda event: errors.append(str(event.exception)))
    await transport.connect(api_key=key, model="gpt-realtime", initial_session_config={"modalities": ["text"]})
    transport.send_message("Hello from the browser")
    async for _ in transport.events("turn_done"):
        break
    status = transport.status
    transport.close()
    return {"text": "".join(text), "errors": errors, "status": status}


def test_a_text_exchange_with_the_local_server(page: Page, engine_server: Any) -> None:
    reply = _text_exchange(page, engine_server.ws_url, engine_server.mint_key())
    assert reply["text"].startswith("You said: Hello from the browser")
    assert reply["errors"] == [] and reply["status"] == "connected"


@in_page
async def _connect_and_close(url, api_key, dialect, insecure):
    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import RealtimeError

    transport = OpenAIRealtimeWebSocket(url=url, dialect=dialect, use_insecure_api_key=insecure)
    changes = []
    transport.on("connection_change", lambda change: changes.append(change.status))
    try:
        await transport.connect(api_key=api_key, model="gpt-realtime")
    except RealtimeError as exc:
        return {"raised": type(exc).__name__, "message": str(exc), "status": transport.status, "changes": changes}
    status = transport.status
    socket = transport.connection_state.websocket
    transport.close()
    import asyncio

    for _ in range(100):
        if socket.live_proxies == 0:
            break
        await asyncio.sleep(0.02)
    return {"status": status, "changes": changes, "after": transport.status, "live_proxies": socket.live_proxies}


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        ("ga", "realtime, openai-insecure-api-key.ek_test123, openai-agents-sdk.pyodide-realtime-0.1.0"),
        (
            "beta",
            "realtime, openai-insecure-api-key.ek_test123, openai-beta.realtime-v1, openai-agents-sdk.pyodide-realtime-0.1.0",
        ),
    ],
)
def test_transport_offers_the_exact_subprotocols_and_releases_its_proxies(
    page: Page, ws: ScriptedServer, dialect: str, expected: str
) -> None:
    result = _connect_and_close(page, ws.url + "/echo", "ek_test123", dialect, False)
    assert result["status"] == "connected", result
    assert result["changes"][:2] == ["connecting", "connected"]
    assert result["live_proxies"] == 0
    assert ws.requests[0]["headers"]["Sec-WebSocket-Protocol"] == expected
    # The first thing sent after open is the session.update with the merged config and model.
    until_the_server(lambda: bool(ws.received), "received the session.update")
    first = __import__("json").loads(ws.received[0])
    assert first["type"] == "session.update"
    if dialect == "ga":
        assert first["session"]["type"] == "realtime" and first["session"]["model"] == "gpt-realtime"


def test_transport_refuses_a_regular_key_in_the_browser(page: Page, ws: ScriptedServer) -> None:
    result = _connect_and_close(page, ws.url + "/echo", "sk-not-ephemeral", "ga", False)
    assert result["raised"] == "ConfigurationError"
    assert "ek_" in result["message"] and "use_insecure_api_key" in result["message"]
    assert "sk-not-ephemeral" not in result["message"]
    assert result["status"] == "disconnected"
    assert ws.requests == []
    # With the explicit opt-in, the same key is sent.
    result = _connect_and_close(page, ws.url + "/echo", "sk-not-ephemeral", "ga", True)
    assert result["status"] == "connected"
    assert "openai-insecure-api-key.sk-not-ephemeral" in ws.requests[0]["headers"]["Sec-WebSocket-Protocol"]


def test_transport_refuses_a_key_that_is_not_a_subprotocol_token(page: Page, ws: ScriptedServer) -> None:
    result = _connect_and_close(page, ws.url + "/echo", "ek_bad key,x", "ga", False)
    assert result["raised"] == "ConfigurationError"
    assert "ek_bad key,x" not in result["message"]
    assert result["status"] == "disconnected" and result["changes"] == []
    assert ws.requests == []


@in_page
async def _failed_then_retry(bad_url, good_url):
    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import ConnectionFailedError

    transport = OpenAIRealtimeWebSocket(url=bad_url)
    try:
        await transport.connect(api_key="ek_x")
        first = "connected"
    except ConnectionFailedError as exc:
        first = type(exc).__name__
    status_after_failure = transport.status
    await transport.connect(api_key="ek_x", url=good_url)
    status_after_retry = transport.status
    transport.close()
    return first, status_after_failure, status_after_retry


def test_transport_fails_cleanly_when_no_subprotocol_is_selected_and_can_retry(page: Page, ws: ScriptedServer) -> None:
    first, after_failure, after_retry = _failed_then_retry(page, ws.url + "/no-protocol", ws.url + "/echo")
    assert (first, after_failure, after_retry) == ("ConnectionFailedError", "disconnected", "connected")


@in_page
async def _close_while_connecting(url):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import ConnectionFailedError

    transport = OpenAIRealtimeWebSocket(url=url)
    connecting = asyncio.Event()  # the socket exists and its handshake is under way (/slow holds it)
    transport.on("connection_change", lambda change: change.status == "connecting" and connecting.set())
    task = asyncio.ensure_future(transport.connect(api_key="ek_x"))
    await asyncio.wait_for(connecting.wait(), 5)
    status_while = transport.status
    socket = transport.connection_state.websocket
    transport.close()
    try:
        await asyncio.wait_for(task, 5)
        outcome = "connected"
    except ConnectionFailedError:
        outcome = "ConnectionFailedError"
    for _ in range(250):  # the browser reports the aborted socket's close event later
        if socket.live_proxies == 0:
            break
        await asyncio.sleep(0.02)
    return status_while, outcome, transport.status, socket.live_proxies


def test_close_during_connect_rejects_the_pending_connect(page: Page, ws: ScriptedServer) -> None:
    status_while, outcome, status_after, live = _close_while_connecting(page, ws.url + "/slow")
    assert status_while == "connecting"
    assert outcome == "ConnectionFailedError"
    assert status_after == "disconnected"
    assert live == 0


@in_page
async def _connect_with_timeout(url, timeout):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import ConnectionFailedError

    transport = OpenAIRealtimeWebSocket(url=url)
    sockets = []
    transport.on("connection_change", lambda change: sockets.append(transport.connection_state.websocket))
    started = asyncio.get_running_loop().time()
    try:
        await transport.connect(api_key="ek_x", timeout=timeout)
        outcome, message = "connected", ""
    except ConnectionFailedError as exc:
        outcome, message = type(exc).__name__, str(exc)
    elapsed = asyncio.get_running_loop().time() - started
    socket = next(s for s in sockets if s is not None)
    for _ in range(250):  # the browser reports the aborted socket's close event later
        if socket.live_proxies == 0:
            break
        await asyncio.sleep(0.02)
    return outcome, message, elapsed, transport.status, socket.live_proxies


def test_a_socket_that_does_not_open_in_time_fails_connect(page: Page, ws: ScriptedServer) -> None:
    # The browser has no handshake timeout of its own: without connect(timeout=...) this would wait
    # for as long as the server holds the handshake.
    outcome, message, elapsed, status, live = _connect_with_timeout(page, ws.url + "/slow", 0.3)
    # The timeout failed it, not the end of the held handshake (that would have connected); how long
    # past the timeout the failure came is the page's lateness, a figure, not a bound.
    assert outcome == "ConnectionFailedError" and "did not open within 0.3 s" in message, message
    print(f"connect(timeout=0.3) failed after {elapsed:.3f} s")
    assert status == "disconnected"
    assert live == 0


@in_page
async def _server_closes(url):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket

    transport = OpenAIRealtimeWebSocket(url=url)
    errors = []
    transport.on("error", lambda event: errors.append((type(event.error).__name__, event.error.code, event.error.reason)))
    await transport.connect(api_key="ek_x")
    transport.send_event({"type": "test.close_me"})
    for _ in range(250):
        if transport.status == "disconnected":
            break
        await asyncio.sleep(0.02)
    return transport.status, errors


def test_an_unexpected_close_is_reported_with_its_code_and_reason(page: Page, ws: ScriptedServer) -> None:
    status, errors = _server_closes(page, ws.url + "/echo")
    assert status == "disconnected"
    assert [tuple(e) for e in errors] == [("ConnectionClosedError", 4000, "asked to close")]


@in_page
async def _malformed_frames(url):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket

    transport = OpenAIRealtimeWebSocket(url=url)
    seen, errors = [], []
    transport.on("*", lambda event: seen.append(event.type))
    transport.on("error", lambda event: errors.append(repr(event)))
    await transport.connect(api_key="ek_x")
    for _ in range(100):
        if "session.created" in seen:
            break
        await asyncio.sleep(0.02)
    status = transport.status
    transport.close()
    return seen, errors, status


def test_malformed_and_binary_frames_are_ignored_and_unknown_events_reach_star(page: Page, ws: ScriptedServer) -> None:
    seen, errors, status = _malformed_frames(page, ws.url + "/frames")
    assert seen == ["some.future_event", "session.created"]
    assert errors == []
    assert status == "connected"


@in_page
async def _full_exchange(ws_url, key):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket

    transport = OpenAIRealtimeWebSocket(url=ws_url + "?model=gpt-realtime")
    audio, transcript, interrupted = [], [], []
    transport.on("audio", lambda event: audio.append((event.item_id, len(event.data))))
    transport.on("audio_transcript_delta", lambda event: transcript.append(event.delta))
    transport.on("audio_interrupted", lambda event: interrupted.append(event.truncated))
    truncated = asyncio.Event()  # the server's answer: it has handled the cancel and the truncate before it
    transport.on("conversation.item.truncated", lambda event: truncated.set())
    await transport.connect(api_key=key, initial_session_config={"instructions": "Test."})
    transport.send_message("Tell me a long story please")
    for _ in range(500):
        if sum(n for _, n in audio) >= 48 * 600:  # 600 ms of PCM16 received
            break
        await asyncio.sleep(0.01)
    received_ms = sum(n for _, n in audio) / 48
    transport.interrupt()
    truncate_sent = interrupted[0] if interrupted else None
    if truncate_sent:  # else the test's own assertion says so
        await asyncio.wait_for(truncated.wait(), 10)
    socket = transport.connection_state.websocket
    transport.close()
    for _ in range(100):
        if socket.live_proxies == 0:
            break
        await asyncio.sleep(0.02)
    return received_ms, "".join(transcript), truncate_sent, socket.live_proxies


def test_full_exchange_with_audio_and_an_interruption(page: Page, engine_server: Any) -> None:
    engine_server.reset()
    key = engine_server.mint_key()
    received_ms, transcript, truncated, live = _full_exchange(page, engine_server.ws_url, key)
    assert received_ms >= 600
    assert transcript  # the model's words arrived as transcript deltas
    assert truncated and len(truncated) == 1
    item_id, content_index, end_ms = truncated[0]
    assert isinstance(end_ms, int) and 0 <= end_ms <= received_ms
    assert live == 0
    state = engine_server.state()
    connection = state["connections"][-1]
    types = [e["type"] for e in connection["received"]]
    # The tracing session.update (sent when session.created arrives) may come before or after the message.
    assert types[0] == "session.update" and types.count("session.update") == 2
    assert [t for t in types if t != "session.update"][:2] == ["conversation.item.create", "response.create"]
    assert "response.cancel" in types and "conversation.item.truncate" in types
    assert types.index("response.cancel") < types.index("conversation.item.truncate")
    # The server accepted the truncate: integer ms, not past the audio it had generated.
    assert state["truncations"] == [
        {
            "connection_id": connection["id"],
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": end_ms,
            "audio_available_ms": state["truncations"][0]["audio_available_ms"],
            "response_active": state["truncations"][0]["response_active"],
        }
    ]
    assert end_ms <= state["truncations"][0]["audio_available_ms"]
    assert connection["errors"] == []


@in_page
async def _heard_versus_wall_clock(ws_url, key):
    """Reply 1 is still playing when reply 2's audio arrives (faster than real time); cut reply 2."""
    import asyncio

    from page_helpers import kept_logs

    from pyodide_realtime import AudioPlayer, OpenAIRealtimeWebSocket

    loop = asyncio.get_running_loop()
    with kept_logs("pyodide_realtime.audio.player") as logged:  # a stop that landed late says by how much
        transport = OpenAIRealtimeWebSocket(url=ws_url)
        player = await AudioPlayer.create()
        transport.attach_audio_output(player)
        arrivals, received, done, cuts = {}, {}, [], []
        left_of_first = []

        def on_audio(event):
            if event.item_id not in arrivals:
                arrivals[event.item_id] = loop.time()
                if len(arrivals) == 2:  # what was still to play of reply 1 when reply 2 began arriving
                    first = next(iter(arrivals))
                    left_of_first.append(received[first] - (player.heard_ms(first) or 0.0))
            received[event.item_id] = received.get(event.item_id, 0.0) + len(event.data) / 48

        transport.on("audio", on_audio)
        transport.on("turn_done", lambda event: done.append(event.response_id))
        transport.on("audio_interrupted", lambda event: cuts.append(event.truncated))
        truncated, drained = asyncio.Event(), asyncio.Event()
        transport.on("conversation.item.truncated", lambda event: truncated.set())
        transport.on("input_audio_buffer.cleared", lambda event: drained.set())
        await transport.connect(api_key=key)
        # Twenty words (4.8 s of tones, streamed in 1.2 s): about 3.5 s still to play when reply 2 arrives,
        # room for a stall (a quiet run lost the WebKit case to one of about 1.9 s with ten words).
        transport.send_message(
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
            "seventeen eighteen nineteen twenty"
        )
        while not done:
            await asyncio.sleep(0.01)
        transport.send_message("eleven twelve thirteen fourteen fifteen sixteen")
        while len(arrivals) < 2:
            await asyncio.sleep(0.005)
        first, second = list(arrivals)
        while (player.heard_ms(second) or 0.0) < 300:
            await asyncio.sleep(0.005)
        # What the seed would send: time since reply 2's first delta, capped at what was received.
        seed_estimate = min((loop.time() - arrivals[second]) * 1000, received[second])
        heard_before = player.heard_ms(second)
        transport.interrupt()
        heard = player.heard_ms(second)  # stopped: where the sound stops, what the interruption sent
        result = dict(
            first=first, second=second, cuts=cuts, heard=heard, heard_before=heard_before, seed=seed_estimate,
            left_of_first=left_of_first[0], received=received, heard_first=player.heard_ms(first),
        )
        # The server has handled the truncate; once reply 2 has ended, a marker it answers after all the
        # client sent before proves no other truncate follows.
        await asyncio.wait_for(truncated.wait(), 10)
        deadline = loop.time() + 10
        while len(done) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        transport.send_event({"type": "input_audio_buffer.clear"})
        await asyncio.wait_for(drained.wait(), 10)
        result["heard_later"] = player.heard_ms(second)  # the sound stopped where the cut says
        result["logged"], result["rate"] = list(logged), player.sample_rate
        transport.close()
        player.close()
        return result


def test_the_truncate_carries_the_heard_position_not_the_wall_clock(page: Page, engine_server: Any) -> None:
    engine_server.reset()
    page.click()  # WebKit starts an AudioContext only within a few seconds of a user gesture
    r = _heard_versus_wall_clock(page, engine_server.ws_url, engine_server.mint_key())
    print(f"reply 1 had {r['left_of_first']:.0f} ms left to play when reply 2 began arriving (needs > 500)")
    assert r["left_of_first"] > 500, r  # reply 1 had plenty left to play: reply 2 had to wait
    assert r["heard_first"] == pytest.approx(r["received"][r["first"]])  # reply 1 played to the end...
    # ...so only reply 2 is cut, at exactly where the player stopped it (integer ms): interrupt() stops
    # it first, on the promise read just before while the sound has not passed it, else a fresh one.
    assert r["cuts"] == [((r["second"], 0, int(r["heard"])),)]
    assert r["heard"] <= r["received"][r["second"]], r
    # The sound stopped where the cut says, unless the stop reached the audio thread after the sound had
    # passed its promise (a starved page: the round trip outlasted the margin); then the player said by
    # how much: late, never wrong in silence.
    late = [float(m.group(1)) for line in r["logged"] if (m := re.search(r"a stop landed ([\d.]+) ms after", line))]
    if late:
        assert r["heard_later"] == pytest.approx(r["heard"] + late[0], abs=0.1 + 1000 / r["rate"]), r
        print(f"the stop landed {late[0]:.1f} ms after its promise (a starved page)")
    else:
        assert r["heard_later"] == r["heard"], r
    # The stop lands on the promise read just before unless the sound had already passed it (the page
    # was slow between the two reads): never earlier; how much later is the page's lateness, not a bound.
    assert r["heard_before"] <= r["heard"], r
    print(f"stop landed {r['heard'] - r['heard_before']:.2f} ms after the position read before interrupt()")
    # The seed's wall clock overshoots by about what was left of reply 1 (or up to all it received).
    overshoot = min(r["left_of_first"], r["received"][r["second"]] - r["heard"])
    assert overshoot > 500 and r["seed"] - r["heard"] > 0.8 * overshoot, r
    truncations = engine_server.state()["truncations"]
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncations] == [(r["second"], int(r["heard"]))]


@in_page
async def _interrupt_by_speaking(ws_url, key, loud, quiet):
    """The user talks over the reply: server VAD cancels it, the transport truncates at what was heard."""
    import asyncio

    from pyodide_realtime import AudioPlayer, OpenAIRealtimeWebSocket

    transport = OpenAIRealtimeWebSocket(url=ws_url)
    player = await AudioPlayer.create()
    transport.attach_audio_output(player)
    item, cuts, done, speech = [], [], [], []
    transport.on("audio", lambda event: item or item.append(event.item_id))
    transport.on("audio_interrupted", lambda event: cuts.append((event.truncated, player.heard_ms(item[0]))))
    transport.on("turn_done", lambda event: done.append(event.status))
    transport.on("input_audio_buffer.speech_started", lambda event: speech.append(event.type))
    drained = asyncio.Event()
    transport.on("input_audio_buffer.cleared", lambda event: drained.set())
    config = {"turn_detection": {"type": "server_vad", "interrupt_response": True, "create_response": False}}
    await transport.connect(api_key=key, initial_session_config=config)
    loop = asyncio.get_running_loop()

    async def until(holds, what):
        # Waits on the audio and the server, never on a wall-clock window; past 20 s it fails saying where
        # things stood, not at the page call's 60 s timeout with nothing (a fresh clone lost WebKit so).
        waited = loop.time()
        while not holds():
            if loop.time() - waited > 20:
                heard = player.heard_ms(item[0]) if item else None
                raise AssertionError(
                    f"no {what} in 20 s: audio of {item}, heard {heard} ms, speech {speech}, done {done}; the "
                    f"context {player.context.state} at {player.context.currentTime} s, the transport {transport.status}"
                )
            await asyncio.sleep(0.005)

    transport.send_message("one two three four five six seven eight nine ten eleven twelve")
    await until(lambda: item and (player.heard_ms(item[0]) or 0.0) >= 400, "400 ms of the reply heard")
    for _ in range(5):  # 500 ms of "speech" (loud noise), 100 ms at a time, as a microphone sends it
        transport.send_audio(loud)
    for _ in range(8):
        transport.send_audio(quiet)
    await until(lambda: done, "end of the reply")
    # The server answers this marker after all the client sent before it: from here the absence of a
    # response.cancel (and of a second truncate) in what it received is proven, not just not seen yet.
    transport.send_event({"type": "input_audio_buffer.clear"})
    await asyncio.wait_for(drained.wait(), 10)
    transport.close()
    player.close()
    return dict(item=item[0], cuts=cuts, done=done, speech=speech)


def test_talking_over_the_model_cuts_at_the_heard_position_without_a_client_cancel(page: Page, engine_server: Any) -> None:
    import random

    rng = random.Random(7)
    loud = b"".join(rng.randint(-9000, 9000).to_bytes(2, "little", signed=True) for _ in range(2400))
    quiet = bytes(4800)
    engine_server.reset()
    page.click()
    r = _interrupt_by_speaking(page, engine_server.ws_url, engine_server.mint_key(), loud, quiet)
    assert r["speech"] == ["input_audio_buffer.speech_started"]
    assert r["done"] == ["cancelled"]  # the server cancelled the reply by itself
    (truncated, heard_then), = r["cuts"]
    assert truncated == ((r["item"], 0, int(heard_then)),)
    assert heard_then >= 400
    connection = engine_server.state()["connections"][-1]
    types = [e["type"] for e in connection["received"]]
    assert "response.cancel" not in types  # it would fail with response_cancel_not_active
    assert types.count("conversation.item.truncate") == 1
    assert connection["errors"] == []
    assert [t["audio_end_ms"] for t in engine_server.state()["truncations"]] == [int(heard_then)]


# Bounds, a slow uplink and endings (what only a browser shows) ----------------------------------------


@in_page
async def _bounded_messages(url, max_bytes, cases):
    import asyncio
    import json

    from pyodide_realtime import OpenAIRealtimeWebSocket

    outcomes = []
    for size, char in cases:
        transport = OpenAIRealtimeWebSocket(url=url, max_message_bytes=max_bytes)
        got, errors = [], []
        transport.on("x.padding", lambda event, got=got: got.append(len(event.pad.encode())))
        transport.on("error", lambda event, errors=errors: errors.append(event.exception))
        await transport.connect(api_key="ek_x")
        sock = transport.connection_state.websocket
        transport.send_event({"type": "test.size", "n": size, "char": char})
        for _ in range(250):
            if got or transport.status == "disconnected":
                break
            await asyncio.sleep(0.02)
        buffer_bytes = len(sock._buffer)
        transport.close()
        outcomes.append({
            "size": size, "char": char, "read": bool(got), "status": transport.status,
            "errors": [(type(e).__name__, getattr(e, "code", None), str(e)) for e in errors],
            "buffer_bytes": buffer_bytes,
        })
    return json.dumps(outcomes)


def test_the_shim_refuses_a_message_over_the_bound_before_copying_it(page: Page, ws: ScriptedServer) -> None:
    import json

    bound = 70_000  # past the initial 64 KiB buffer: a message at the bound makes it grow, but no further
    cases = [
        (bound, "x"),        # ASCII, exactly at the bound: read
        (bound, "é"),        # 2-byte UTF-8, exactly at the bound: read (fewer UTF-16 units than bytes)
        (bound, "😀"),       # 4-byte UTF-8 (a surrogate pair in JS), exactly at the bound: read
        (bound + 1, "x"),    # one byte over, ASCII: refused on its length, nothing encoded
        (bound + 1, "é"),    # one byte over, only UTF-8 shows it: refused by the bounded encode
        (bound + 2, "😀"),   # over by a 4-byte character
        (10 * bound, "é"),   # far over
    ]
    outcomes = json.loads(_bounded_messages(page, ws.url + "/sized", bound, cases))
    for case, outcome in zip(cases, outcomes, strict=True):
        at_bound = case[0] <= bound
        assert outcome["read"] is at_bound, outcome
        assert outcome["buffer_bytes"] <= bound + 4, outcome  # never a buffer bigger than the bound needs
        if at_bound:
            assert outcome["errors"] == [], outcome
        else:
            assert outcome["status"] == "disconnected"
            (name, code, message), = outcome["errors"]
            assert (name, code) == ("ConnectionClosedError", 1009), outcome
            assert "max_message_bytes" in message and str(bound) in message
    # Browsers may not send 1009: the shim closes with 4009 (the application range) and says why. The
    # server's thread records each close once it has handled it, which may come after the page is done.
    until_the_server(lambda: len(ws.closes) >= len(cases), "saw every connection close")
    assert ws.closes.count(4009) == sum(1 for size, _ in cases if size > bound)


@in_page
async def _slow_uplink(url):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import ConnectionClosedError

    transport = OpenAIRealtimeWebSocket(url=url, max_buffered_audio_bytes=16 * 1024)
    dropped = []
    transport.on("audio_dropped", lambda event: dropped.append((event.bytes, event.buffered_amount, event.reason)))
    await transport.connect(api_key="ek_x")
    sock = transport.connection_state.websocket
    # In one JS task the page's WebSocket cannot drain: bufferedAmount only grows, as on a slow link.
    peak = 0
    for _ in range(50):
        transport.send_audio(bytes(4800))
        peak = max(peak, sock.buffered_amount)
    in_burst = len(dropped)
    for _ in range(250):
        if sock.buffered_amount == 0:
            break
        await asyncio.sleep(0.02)
    drained = sock.buffered_amount
    transport.send_audio(bytes(4800))  # drained: sent again
    after = len(dropped)
    transport.close()
    for _ in range(500):  # until the browser's close event (the handshake may take a while under load)
        if sock.closed:
            break
        await asyncio.sleep(0.02)
    try:
        sock.send("{}")
        closed_send = "sent"
    except ConnectionClosedError as exc:
        closed_send = type(exc).__name__
    return in_burst, after, peak, drained, dropped[0] if dropped else None, closed_send


def test_a_slow_uplink_drops_audio_by_the_pages_buffered_amount(page: Page, ws: ScriptedServer) -> None:
    in_burst, after, peak, drained, first, closed_send = _slow_uplink(page, ws.url + "/sized")
    one_frame = 4800 * 4 // 3 + 100
    assert in_burst >= 40  # the cap holds three or four chunks; the rest of the 50 is dropped
    assert peak <= 16 * 1024 + one_frame
    assert drained == 0 and after == in_burst
    size, buffered, reason = first
    assert size == 4800 and buffered > 16 * 1024 and "max_buffered_audio_bytes" in reason
    assert closed_send == "ConnectionClosedError"  # as the CPython backend raises
    # The server records a connection's close after every frame that came before it.
    until_the_server(lambda: len(ws.closes) >= 1, "saw the connection close")
    appends = [m for m in ws.received if "input_audio_buffer.append" in m]
    assert len(appends) == 50 - in_burst + 1


@in_page
async def _dropped_and_refused_urls(url):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.errors import ConfigurationError

    refusals = []
    for bad in ("ws://example.com/v1/realtime", "http://127.0.0.1:1/x", "wss://u:ek_secret@h.example/"):
        try:
            OpenAIRealtimeWebSocket(url=bad)
            refusals.append("accepted")
        except ConfigurationError as exc:
            refusals.append(str(exc))
    transport = OpenAIRealtimeWebSocket(url=url)
    errors = []
    transport.on("error", lambda event: errors.append((type(event.exception).__name__, str(event.exception))))
    await transport.connect(api_key="ek_x")
    transport.send_event({"type": "test.drop"})
    for _ in range(250):
        if transport.status == "disconnected":
            break
        await asyncio.sleep(0.02)
    return refusals, errors, transport.status


def test_a_dropped_connection_is_one_error_with_words_and_bad_urls_are_refused(page: Page, ws: ScriptedServer) -> None:
    refusals, errors, status = _dropped_and_refused_urls(page, ws.url + "/sized")
    assert "allow_insecure_transport=True" in refusals[0]
    assert "wss://" in refusals[1]
    assert "credentials" in refusals[2] and "ek_secret" not in refusals[2]
    assert status == "disconnected"
    # The page's error event says nothing; the close event that follows says it all, once.
    assert [tuple(e) for e in errors] == [
        ("ConnectionClosedError", errors[0][1]),
    ]
    assert "code 1006 (abnormal closure" in errors[0][1]
    # So that the next test's server records start clean: each test that uses /sized waits for its closes.
    until_the_server(lambda: len(ws.closes) >= 1, "saw the dropped connection close")


@in_page
async def _reconnect_in_the_page(url):
    import asyncio
    import itertools

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.transport import ReconnectPolicy

    counter = itertools.count(1)
    transport = OpenAIRealtimeWebSocket(url=url, reconnect=ReconnectPolicy(initial_delay_s=0.01))
    got = []
    for name in ("error", "reconnecting", "reconnected"):
        transport.on(name, lambda payload, name=name: got.append(name))
    await transport.connect(api_key=lambda: f"ek_{next(counter)}", initial_session_config={"instructions": "stay"})
    transport.send_event({"type": "test.drop"})
    for _ in range(250):
        if "reconnected" in got:
            break
        await asyncio.sleep(0.02)
    status = transport.status
    transport.close()
    return got, status


def test_the_page_reconnects_after_a_drop_with_a_fresh_key_and_the_session(page: Page, ws: ScriptedServer) -> None:
    got, status = _reconnect_in_the_page(page, ws.url + "/sized")
    assert got == ["error", "reconnecting", "reconnected"] and status == "connected"
    until_the_server(lambda: len(ws.closes) >= 2, "saw both connections close")  # all they sent is recorded
    offered = [r["headers"]["Sec-WebSocket-Protocol"] for r in ws.requests]
    assert [("openai-insecure-api-key.ek_1" in o, "openai-insecure-api-key.ek_2" in o) for o in offered] == [
        (True, False), (False, True)]
    updates = [m for m in ws.received if '"session.update"' in m and '"instructions":"stay"' in m]
    assert len(updates) == 2  # the session config, re-sent on the new connection
