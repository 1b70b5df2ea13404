"""Slow clients cannot lock others out: a cap on one address's open connections, and a deadline for a
request's header. The slow clients connect from 127.0.0.2 and the normal one from 127.0.0.1 (both
loopback), as two machines would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from pyodide_realtime_server import RealtimeServer

SLOW = "127.0.0.2"
GUARD_TIMEOUT_S = 15.0  # only a guard: each wait below ends on an event (an answer, an EOF)
HALF_A_HEADER = b"GET /demo-config.json HTTP/1.1\r\nHost: 127.0.0.1\r\n"


async def _slow_client(srv: RealtimeServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, local_addr=(SLOW, 0))
    writer.write(HALF_A_HEADER)  # and never the rest
    await writer.drain()
    return reader, writer


async def _until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), GUARD_TIMEOUT_S)


async def _normal_client_gets_in(srv: RealtimeServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(HALF_A_HEADER + b"Connection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), GUARD_TIMEOUT_S)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    async with connect(srv.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{srv.mint_key()}"]) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), GUARD_TIMEOUT_S))["type"] == "session.created"


@pytest.mark.asyncio
async def test_one_address_holds_at_most_its_cap_and_others_still_get_in() -> None:
    cap = 16
    async with RealtimeServer(pace=0, speech="tones", max_connections_per_client=cap, header_timeout_s=600) as srv:
        held = [await _slow_client(srv) for _ in range(cap)]
        await _until(lambda: srv.guard.open_connections(SLOW) == cap)  # each accepted in turn by the server's loop
        over = [await _slow_client(srv) for _ in range(8)]
        for reader, _ in over:
            answer = await asyncio.wait_for(reader.read(), GUARD_TIMEOUT_S)  # answered and closed at once
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in answer
        assert srv.guard.open_connections(SLOW) == cap
        await _normal_client_gets_in(srv)
        for _, writer in held + over:
            writer.close()
        await _until(lambda: srv.guard.open_connections(SLOW) == 0)  # closed connections give their places back
        await _normal_client_gets_in(srv)


@pytest.mark.asyncio
async def test_a_header_not_finished_in_time_closes_the_connection() -> None:
    async with RealtimeServer(pace=0, speech="tones", header_timeout_s=0.5) as srv:
        slow = [await _slow_client(srv) for _ in range(30)]
        for reader, writer in slow:
            assert await asyncio.wait_for(reader.read(), GUARD_TIMEOUT_S) == b""  # closed by the server
            writer.close()
        await _until(lambda: srv.guard.open_connections(SLOW) == 0)


@pytest.mark.asyncio
async def test_a_keep_alive_connections_next_request_has_the_same_deadline() -> None:
    # A deadline no loaded machine misses for a whole header sent at once: the test waits it out once.
    async with RealtimeServer(pace=0, speech="tones", header_timeout_s=3) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(HALF_A_HEADER + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        writer.write(HALF_A_HEADER)
        assert await asyncio.wait_for(reader.read(), GUARD_TIMEOUT_S) == b""
        writer.close()


@pytest.mark.asyncio
async def test_others_get_in_while_slow_clients_hold_unfinished_headers() -> None:
    # The deadline far away: what is checked is that held headers block nobody, not a race with it.
    async with RealtimeServer(pace=0, speech="tones", header_timeout_s=600) as srv:
        slow = [await _slow_client(srv) for _ in range(30)]
        await _until(lambda: srv.guard.open_connections(SLOW) == 30)
        await _normal_client_gets_in(srv)
        for _, writer in slow:
            writer.close()
