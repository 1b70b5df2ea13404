"""Opt-in reconnect, against a real loopback peer that drops, restarts, stalls and refuses."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection

from pyodide_realtime import (
    ConnectionClosedError,
    ConnectionFailedError,
    ErrorEvent,
    InvalidStateError,
    OpenAIRealtimeWebSocket,
    RealtimeAgent,
    RealtimeSession,
    _cpython_socket,
)
from pyodide_realtime.errors import ConfigurationError
from pyodide_realtime.transport import Reconnected, ReconnectFailed, Reconnecting, ReconnectPolicy
from scripted_server import LoopbackPeer, until

FAST = ReconnectPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[LoopbackPeer]:
    async with LoopbackPeer() as loopback:
        yield loopback



def keys() -> Callable[[], str]:
    """An ``api_key`` function that mints a new key each call, as an ephemeral-key server would."""
    counter = itertools.count(1)
    return lambda: f"sk-key-{next(counter)}"


def record(transport: OpenAIRealtimeWebSocket) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    for name in ("error", "reconnecting", "reconnected", "disconnected", "connected"):
        transport.on(name, lambda payload, name=name: got.append((name, payload)))
    return got


def reconnect_task(transport: OpenAIRealtimeWebSocket) -> asyncio.Task[None]:
    """The running reconnect loop: a test waits for its end instead of for a while."""
    task = transport._link._reconnect_task
    assert task is not None
    return task


def names(got: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in got]


async def close_with(code: int, ws: ServerConnection, event: dict[str, Any]) -> None:
    if event["type"] == "test.close":
        await ws.close(code, "restarting" if code == 1012 else "")


@pytest.mark.asyncio
async def test_off_by_default(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys())
    got = record(transport)
    stream = transport.events("disconnected")
    await transport.connect()
    peer.drop()
    assert [e.name async for e in stream] == ["disconnected"]  # the iterator ends
    # A reconnect is decided as the close is handled, before ``disconnected``: none was.
    assert not transport.reconnecting
    assert "reconnecting" not in names(got) and len(peer.authorizations) == 1


@pytest.mark.asyncio
async def test_a_dropped_connection_comes_back_with_a_fresh_key_and_the_session_config(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    await transport.connect(initial_session_config={"instructions": "be brief"})
    stream = transport.events()
    transport.update_session_config({"voice": "marin"})
    await until(lambda: len(peer.received) >= 3)
    before = len(peer.received)

    peer.drop()
    await until(lambda: "reconnected" in names(got))
    assert transport.status == "connected" and not transport.reconnecting
    assert peer.authorizations == ["Bearer sk-key-1", "Bearer sk-key-2"]  # a fresh key from the function
    await until(lambda: len(peer.received) > before)
    resent = peer.received[before]
    assert resent["type"] == "session.update"
    assert resent["session"]["instructions"] == "be brief"
    assert json.dumps(resent["session"]).count("marin") == 1  # what was configured later, too
    assert names(got) == ["connected", "error", "disconnected", "reconnecting", "connected", "reconnected"]
    error, reconnecting, reconnected = got[1][1], got[3][1], got[5][1]
    assert isinstance(error, ErrorEvent) and isinstance(error.exception, ConnectionClosedError)
    assert error.exception.code == 1006 and "reconnecting" in str(error.exception)
    assert isinstance(reconnecting, Reconnecting) and reconnecting.attempt == 1 and reconnecting.delay_s <= 0.01
    assert reconnecting.error is error.exception
    assert reconnected == Reconnected(attempts=1)

    # The iterator went on across the reconnect, and the new connection works.
    transport.send_event({"type": "test.ping"})
    seen = []
    async for event in stream:
        seen.append(event.name)
        if event.name == "reconnected":
            break
    assert seen[:3] == ["error", "connection_change", "disconnected"] and "connected" in seen
    await until(lambda: peer.types()[-1] == "test.ping")
    transport.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [1012, 1011])
async def test_a_server_restart_1012_and_an_internal_error_1011_reconnect(peer: LoopbackPeer, code: int) -> None:
    peer.on_event = lambda ws, event: close_with(code, ws, event)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    await transport.connect()
    transport.send_event({"type": "test.close"})
    await until(lambda: "reconnected" in names(got))
    assert f"code {code}" in str(got[1][1].exception)
    transport.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [1000, 1008, 4001])
async def test_a_meant_close_is_not_reconnected(peer: LoopbackPeer, code: int) -> None:
    peer.on_event = lambda ws, event: close_with(code, ws, event)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    await transport.connect()
    transport.send_event({"type": "test.close"})
    await until(lambda: transport.status == "disconnected")
    assert not transport.reconnecting  # decided as the close was handled: no reconnect will come
    assert "reconnecting" not in names(got) and len(peer.authorizations) == 1


@pytest.mark.asyncio
async def test_a_stalled_peer_is_reconnected_after_the_keepalive_timeout(
    peer: LoopbackPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cpython_socket, "PING_INTERVAL_S", 0.1)
    monkeypatch.setattr(_cpython_socket, "PING_TIMEOUT_S", 0.2)
    monkeypatch.setattr(_cpython_socket, "CLOSE_TIMEOUT_S", 0.2)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    await transport.connect()
    peer.stop_reading()
    await until(lambda: "reconnected" in names(got))
    assert "no pong" in str(got[1][1].exception)
    transport.close()


@pytest.mark.asyncio
async def test_never_after_close(peer: LoopbackPeer) -> None:
    slow = ReconnectPolicy(initial_delay_s=0.3, jitter=0)
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=slow)
    got = record(transport)
    stream = transport.events()
    await transport.connect()
    peer.drop()
    await until(lambda: "reconnecting" in names(got))
    assert transport.reconnecting and transport.status == "disconnected"
    with pytest.raises(InvalidStateError, match="reconnecting"):
        await transport.connect()
    task = reconnect_task(transport)
    transport.close()  # during the backoff
    assert not transport.reconnecting
    [e async for e in stream]  # the iterator ends
    await asyncio.wait([task])  # the reconnect loop has ended: nothing can connect any more
    assert task.cancelled() and len(peer.authorizations) == 1 and transport.status == "disconnected"
    assert "reconnected" not in names(got)


@pytest.mark.asyncio
async def test_close_during_a_reconnect_attempt_stops_it(peer: LoopbackPeer) -> None:
    started = asyncio.Event()

    async def slow_key() -> str:
        started.set()
        await asyncio.sleep(10)
        return "sk-never"

    calls = itertools.count()

    def api_key() -> Any:
        return "sk-first" if next(calls) == 0 else slow_key()

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=api_key, reconnect=FAST)
    await transport.connect()
    peer.drop()
    await asyncio.wait_for(started.wait(), 5)
    task = reconnect_task(transport)
    transport.close()
    await asyncio.wait([task])  # the reconnect loop has ended (its key fetch cancelled)
    assert not transport.reconnecting and transport.status == "disconnected" and len(peer.authorizations) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [401, 403])
async def test_never_after_an_auth_refusal(peer: LoopbackPeer, status: int) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    stream = transport.events("disconnected")
    await transport.connect()
    peer.refuse_status = status
    peer.drop()
    await until(lambda: not transport.reconnecting and "reconnecting" in names(got))
    assert len(peer.authorizations) == 2  # one attempt, refused: no more
    last = got[-1][1].exception
    assert isinstance(last, ConnectionFailedError) and f"refused the key (HTTP {status})" in str(last)
    # The drop, then the refused attempt (connecting -> disconnected); the iterator ends once it gave up.
    assert [e.name async for e in stream] == ["disconnected", "disconnected"]
    assert transport.status == "disconnected"


@pytest.mark.asyncio
async def test_it_gives_up_after_max_attempts_and_says_so(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    got = record(transport)
    await transport.connect()
    peer.refuse_status = 503
    peer.drop()
    await until(lambda: not transport.reconnecting and "reconnecting" in names(got))
    attempts = [p.attempt for n, p in got if n == "reconnecting"]
    assert attempts == [1, 2, 3] and len(peer.authorizations) == 4
    assert "gave up reconnecting after 3 failed attempt(s)" in str(got[-1][1].exception)
    assert "HTTP 503" in str(got[-1][1].exception)
    # And a plain connect() works again afterwards.
    peer.refuse_status = None
    await transport.connect()
    assert transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
async def test_a_failing_key_function_is_retried_but_a_refused_key_is_not(peer: LoopbackPeer) -> None:
    calls = itertools.count(1)

    def flaky_key() -> str:
        n = next(calls)
        if n == 2:
            raise OSError("the key server is down")
        return "sk-ok" if n != 4 else "sk has a space"

    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=flaky_key, reconnect=FAST)
    got = record(transport)
    await transport.connect()
    peer.drop()
    await until(lambda: "reconnected" in names(got))
    errors = [p.exception for n, p in got if n == "error"]
    assert [type(e).__name__ for e in errors] == ["ConnectionClosedError", "OSError"]
    assert got[-1] == ("reconnected", Reconnected(attempts=2))

    got.clear()
    peer.drop()  # the next key is malformed: refused before any socket, and not retried
    await until(lambda: not transport.reconnecting and "reconnecting" in names(got))
    assert [type(p.exception).__name__ for n, p in got if n == "error"] == ["ConnectionClosedError", "ConfigurationError"]
    assert names(got).count("reconnecting") == 1 and transport.status == "disconnected"
    assert len(peer.authorizations) == 2


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = ReconnectPolicy(max_attempts=9, initial_delay_s=0.5, max_delay_s=15, multiplier=2, jitter=0.5)
    assert [policy.delay_s(n, rand=lambda: 0.0) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert [policy.delay_s(n, rand=lambda: 1.0) for n in range(1, 4)] == [0.25, 0.5, 1]
    delays = {policy.delay_s(3) for _ in range(50)}
    assert len(delays) > 40 and all(1 <= d <= 2 for d in delays)
    assert policy.delay_s(10_000, rand=lambda: 0.0) == 15  # no overflow however long it runs


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_attempts": 1.5}, {"initial_delay_s": -1}, {"max_delay_s": float("inf")},
     {"multiplier": 0.5}, {"jitter": 2}, {"jitter": True}],
)
def test_a_bad_policy_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ReconnectPolicy(**kwargs)
    with pytest.raises(ConfigurationError, match="reconnect"):
        OpenAIRealtimeWebSocket(reconnect="yes")  # type: ignore[arg-type]
    assert not OpenAIRealtimeWebSocket(reconnect=None).reconnecting  # None and False: off


@pytest.mark.asyncio
async def test_a_session_lives_through_a_reconnect_and_ends_when_it_gives_up(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=FAST)
    reconnect_failed = record(transport)
    transport.on("reconnect_failed", lambda failed: reconnect_failed.append(("reconnect_failed", failed)))
    session = RealtimeSession(RealtimeAgent(name="A", instructions="be brief"), transport=transport)
    await session.connect()
    seen: list[str] = []

    async def read() -> None:
        async for event in session:
            seen.append(event.type)

    loop = asyncio.ensure_future(read())
    peer.drop()
    await until(lambda: "reconnected" in names(reconnect_failed))
    assert not loop.done()  # the session's loop lives on through the reconnect...
    before = len(peer.received)
    session.send_message("still there?")  # ...and the session speaks on the new connection
    await until(lambda: any(e["type"] == "conversation.item.create" for e in peer.received[before:]))

    peer.refuse_status = 503  # the next drop cannot be mended: the session ends with it
    peer.drop()
    await until(lambda: "reconnect_failed" in names(reconnect_failed), timeout=10)
    await asyncio.wait_for(loop, 5)
    assert isinstance(reconnect_failed[-1][1], ReconnectFailed)
    assert "gave up reconnecting" in str(reconnect_failed[-1][1].error)
    session.close()
    assert not transport.reconnecting and transport.status == "disconnected"


async def drop_after_open(ws: ServerConnection, event: dict[str, Any]) -> None:
    if event["type"] == "session.update":  # accepted and configured, then the network drops it
        ws.transport.abort()


async def lost_until_given_up(peer: LoopbackPeer, policy: ReconnectPolicy, **faults: Any) -> list[tuple[str, Any]]:
    """Connect, set the peer's ``faults`` (its on_open/on_event hooks), drop: the events until the
    reconnect gives up, which it must."""
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key=keys(), reconnect=policy)
    got = record(transport)
    failed = asyncio.Event()
    transport.on("reconnect_failed", lambda _: failed.set())
    await transport.connect()
    for name, hook in faults.items():
        setattr(peer, name, hook)
    peer.drop()
    await asyncio.wait_for(failed.wait(), 20)
    assert transport.status == "disconnected" and not transport.reconnecting
    return got


@pytest.mark.asyncio
async def test_a_peer_that_accepts_then_drops_spends_the_attempts_instead_of_cycling(peer: LoopbackPeer) -> None:
    got = await lost_until_given_up(peer, FAST, on_event=drop_after_open)
    # The app's connection, then FAST's 3 attempts: each opened and was lost at once, so each counted.
    assert len(peer.authorizations) == 1 + FAST.max_attempts
    assert [p.attempt for n, p in got if n == "reconnecting"] == [1, 2, 3]
    assert "3 failed attempt(s) in a row" in str([p for n, p in got if n == "error"][-1].exception)


@pytest.mark.asyncio
async def test_the_budget_bounds_attempts_over_a_window_even_when_each_connection_lasted(peer: LoopbackPeer) -> None:
    # stable_after_s=0: every connection counts as stable, so only the budget can stop the cycle.
    policy = ReconnectPolicy(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05, stable_after_s=0, budget=4)
    got = await lost_until_given_up(peer, policy, on_event=drop_after_open)
    assert len(peer.authorizations) == 1 + 4
    assert [p.attempt for n, p in got if n == "reconnecting"] == [1, 1, 1, 1]  # each a fresh start...
    assert "4 attempt(s) within 3600 s" in str([p for n, p in got if n == "error"][-1].exception)  # ...within budget


@pytest.mark.asyncio
async def test_a_keepalive_loop_gives_up_too(peer: LoopbackPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cpython_socket, "PING_INTERVAL_S", 0.05)
    monkeypatch.setattr(_cpython_socket, "PING_TIMEOUT_S", 0.1)
    monkeypatch.setattr(_cpython_socket, "CLOSE_TIMEOUT_S", 0.1)

    async def deaf(ws: ServerConnection) -> None:
        ws.transport.pause_reading()  # open, then never a pong: each connection ends by keepalive

    policy = ReconnectPolicy(max_attempts=2, initial_delay_s=0.01, max_delay_s=0.05)
    got = await lost_until_given_up(peer, policy, on_open=deaf)
    assert len(peer.authorizations) == 1 + 2
    drops = [p.exception for n, p in got if n == "error" and isinstance(p.exception, ConnectionClosedError)]
    # The first loss is the test's drop (1006); the two reconnected ones ended by keepalive.
    assert len(drops) == 3 and all("no pong" in str(e) for e in drops[1:])
