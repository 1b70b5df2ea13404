"""Keys stay secret and travel encrypted: logs, reprs, messages and URLs across a whole session.

The peer is a real ``websockets`` server on loopback that behaves like a careless (or hostile) API: it
quotes the key in an ``error`` event, in a close reason and in an HTTP 401 body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from pyodide_realtime import (
    ConfigurationError,
    ConnectionChange,
    ConnectionClosedError,
    ConnectionFailedError,
    ErrorEvent,
    OpenAIRealtimeWebSocket,
    SocketRequest,
    dialects,
)
from pyodide_realtime._interfaces import RedactingLogger, redact, safe_url
from pyodide_realtime.dialects import check_url, is_loopback_host
from pyodide_realtime.transport import Reconnected, Reconnecting, ReconnectPolicy

SECRET = "sk-proj-Zq8xW3vKp7Lm2Rt9Yb4NcQ6d"
# A leak of part of the key is a leak too (websockets' frame logs cut long frames in the middle).
FRAGMENT = 8


def leaks(text: str) -> bool:
    return any(SECRET[i : i + FRAGMENT] in text for i in range(len(SECRET) - FRAGMENT + 1))
# The peer's own records: a server necessarily sees the key it is sent. Everything else is the client.
PEER_LOGGER = "tests.security_peer"


class LeakyPeer:
    """Quotes whatever key it was given back to the client, every way a server can."""

    def __init__(self) -> None:
        self.port = 0
        self.authorizations: list[str] = []
        self.live: list[ServerConnection] = []

    def url(self, path: str = "/realtime") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.authorizations.append(request.headers.get("Authorization", ""))
        if request.path.startswith("/reject"):
            body = json.dumps({"error": {"code": "invalid_api_key", "message": f"Incorrect API key provided: {SECRET}."}})
            return Response(401, "Unauthorized", Headers([("Content-Type", "application/json")]), body.encode())
        return None

    async def handle(self, ws: ServerConnection) -> None:
        self.live.append(ws)
        await ws.send(json.dumps({"type": "session.created", "session": {"id": "sess_1", "client_secret": SECRET}}))
        async for message in ws:
            event = json.loads(message)
            if event["type"] == "response.create":
                await ws.send(json.dumps({"type": "response.created", "response": {"id": "r1"}}))
                await ws.send(json.dumps({"type": "response.output_text.delta", "response_id": "r1", "item_id": "i1",
                                          "output_index": 0, "content_index": 0, "delta": "hello"}))
                await ws.send(json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                                     "code": "bad", "message": f"key {SECRET} refused"}}))
                await ws.send(json.dumps({"type": "response.done", "response": {"id": "r1", "status": "completed"}}))
            elif event["type"] == "test.close":
                await ws.close(4001, f"bye {SECRET}")
                return
            elif event["type"] == "test.big":  # over the client's bound, the key inside
                await ws.send(json.dumps({"type": "x.big", "pad": SECRET * 10_000}))
            elif event["type"] == "test.drop":  # no close frame: the client reconnects
                ws.transport.abort()
                return


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[LeakyPeer]:
    leaky = LeakyPeer()
    async with serve(leaky.handle, "127.0.0.1", 0, process_request=leaky.process_request,
                     logger=logging.getLogger(PEER_LOGGER)) as server:
        leaky.port = server.sockets[0].getsockname()[1]
        yield leaky


def _texts_of(record: logging.LogRecord) -> list[str]:
    texts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        texts += traceback.format_exception(*record.exc_info)
    return texts


@pytest.mark.asyncio
async def test_the_key_reaches_no_log_record_message_repr_or_error_across_a_whole_session(
    peer: LeakyPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, websockets' included, at its most talkative
    transport = OpenAIRealtimeWebSocket(
        url=peer.url(), api_key=lambda: SECRET, max_message_bytes=100_000,
        reconnect=ReconnectPolicy(initial_delay_s=0.01),
    )
    seen: list[Any] = []
    for name in ("error", "disconnected", "reconnecting", "reconnected"):
        transport.on(name, seen.append)

    with pytest.raises(ConnectionFailedError) as refused:  # the server's 401 body quotes the key
        await transport.connect(url=peer.url("/reject"))
    seen.append(refused.value)
    await transport.connect()
    stream = transport.events()
    transport.send_message("hi")
    async for event in stream:
        seen.append(event.data)
        if event.name == "response.done":
            break
    transport.send_event({"type": "test.drop"})  # a reconnect, with the key again
    async for event in stream:
        seen.append(event.data)
        if event.name == "reconnected":
            break
    transport.send_event({"type": "test.close"})  # the server's close reason quotes the key
    async for event in stream:
        seen.append(event.data)
    await transport.connect()
    transport.send_event({"type": "test.big"})  # refused by the bound: 1009
    async for _ in transport.events():
        pass
    await transport.connect()
    transport.close()

    assert peer.authorizations == [f"Bearer {SECRET}"] * 5  # the key did travel, where it must
    client_records = [r for r in caplog.records if not r.name.startswith(PEER_LOGGER)]
    assert any(r.name == "websockets.client" and "Authorization" in r.getMessage() for r in client_records), (
        "the handshake headers were not logged: this test would prove nothing"
    )
    for record in client_records:
        for text in _texts_of(record):
            assert not leaks(text), f"the key leaked into a {record.name} record: {text[:200]!r}"
    # What the transport and its backend say, and every error, the server's included (its ``error``
    # quoting the key is redacted); other server events reach the app as sent.
    ours = [e for e in seen if isinstance(e, BaseException)]
    ours += [e.exception for e in seen if isinstance(e, ErrorEvent)] + [e for e in seen if isinstance(e, ErrorEvent)]
    ours += [e for e in seen if isinstance(e, (ConnectionChange, Reconnecting, Reconnected))]
    assert any(isinstance(e, Reconnected) for e in ours) and any(getattr(e, "code", 0) == 1009 for e in ours)
    # The refusal, the drop, the close, the 1009.
    assert sum(isinstance(e, (ConnectionFailedError, ConnectionClosedError)) for e in ours) >= 4
    for item in ours:
        assert not leaks(str(item)) and not leaks(repr(item)), repr(item)[:200]
    assert not leaks(repr(transport))


def test_a_socket_request_repr_holds_no_key_and_no_query() -> None:
    request = SocketRequest(f"wss://h.example/v1/realtime?call_id=rtc_{SECRET}", ("openai-insecure-api-key." + SECRET,),
                            {"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in repr(request) and "rtc_" not in repr(request)
    assert request.secrets == (SECRET, SECRET)


@pytest.mark.parametrize(
    "url",
    [f"wss://user:{SECRET}@api.example.com/v1/realtime", f"ws://{SECRET}@127.0.0.1:9/x", f"wss://{SECRET}:@h.example/"],
)
def test_a_key_in_the_url_is_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(ConfigurationError, match="credentials") as info:
        OpenAIRealtimeWebSocket(url=url, api_key="sk-other")
    assert SECRET not in str(info.value)
    assert SECRET not in safe_url(url)


@pytest.mark.asyncio
async def test_a_key_in_the_url_given_to_connect_is_refused_before_any_socket(peer: LeakyPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    with pytest.raises(ConfigurationError, match="credentials") as info:
        await transport.connect(url=f"ws://u:{SECRET}@127.0.0.1:{peer.port}/realtime")
    assert SECRET not in str(info.value)
    assert peer.authorizations == [] and transport.status == "disconnected"


# Plaintext ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:8000/v1/realtime", "ws://127.9.8.7/x", "ws://localhost:1/x", "ws://[::1]:8000/v1/realtime",
     "wss://api.openai.com/v1/realtime", "wss://example.com:444/x", "WSS://EXAMPLE.COM/"],
)
def test_wss_anywhere_and_ws_to_this_machine_are_accepted(url: str) -> None:
    assert check_url(url) == url
    OpenAIRealtimeWebSocket(url=url)


@pytest.mark.parametrize("url", ["ws://example.com/v1/realtime", "ws://10.0.0.2:8000/x", "ws://[2001:db8::1]/x",
                                 "ws://127.0.0.1.example.com/x", "ws://localhost.example.com/x"])
def test_plaintext_to_another_machine_is_refused_with_the_opt_in_named(url: str) -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_transport=True") as info:
        OpenAIRealtimeWebSocket(url=url)
    assert "wss://" in str(info.value)
    OpenAIRealtimeWebSocket(url=url, allow_insecure_transport=True)  # the opt-in


@pytest.mark.parametrize("url", ["http://api.openai.com/v1/realtime", "https://api.openai.com/v1/realtime",
                                 "ftp://example.com/", "file:///etc/passwd", "api.openai.com/v1/realtime",
                                 "javascript:alert(1)", "ws://", "wss://:443/x", "ws://127.0.0.1:99999/x", ""])
def test_other_schemes_and_malformed_urls_are_refused_even_with_the_opt_in(url: str) -> None:
    with pytest.raises(ConfigurationError):
        OpenAIRealtimeWebSocket(url=url, allow_insecure_transport=True)


@pytest.mark.asyncio
async def test_connect_checks_its_url_too_before_any_socket(peer: LeakyPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    with pytest.raises(ConfigurationError, match="allow_insecure_transport"):
        await transport.connect(url="ws://example.com/v1/realtime")
    with pytest.raises(ConfigurationError, match="wss://"):
        await transport.connect(url="https://example.com/v1/realtime")
    assert peer.authorizations == [] and transport.status == "disconnected"
    await transport.connect()  # nothing of the refused URLs stuck
    assert transport.status == "connected"
    transport.close()


def test_loopback_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(map(is_loopback_host, ["localhost", "LOCALHOST.", "127.0.0.1", "127.255.0.9", "::1"]))
    assert not any(map(is_loopback_host, ["example.com", "10.0.0.1", "::2", "0.0.0.0", "localhost.com", "128.0.0.1"]))
    # CPython's resolver may send a *.localhost name to DNS: not loopback by its name alone there...
    assert not is_loopback_host("a.localhost")
    with pytest.raises(ConfigurationError, match="refusing ws://"):
        check_url("ws://a.localhost:8000/v1/realtime")
    # ... while browsers resolve it to loopback themselves: follow the engine.
    monkeypatch.setattr(dialects, "in_browser", lambda: True)
    assert is_loopback_host("a.localhost")
    assert check_url("ws://a.localhost:8000/v1/realtime")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("> Authorization: Bearer abc123XYZ", "> Authorization: Bearer <redacted>"),
        ("< authorization: Basic dXNlcjpwYXNz", "< authorization: Basic <redacted>"),
        ("< Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.zz9, openai-beta.realtime-v1",
         "< Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<redacted>, openai-beta.realtime-v1"),
        ("Incorrect API key provided: sk-proj-abc***xyz.", "Incorrect API key provided: <redacted>"),
        ("...W3vKp7Lm2Rt9Yb4NcQ6d\"}}' [109 bytes]", "...<redacted>\"}}' [109 bytes]"),  # a cut key's tail
        ("task-1 desk_2 risk-free", "task-1 desk_2 risk-free"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, [SECRET]) == expected


@pytest.mark.asyncio
async def test_a_server_can_log_handshakes_without_keys_through_the_same_logger(caplog: pytest.LogCaptureFixture) -> None:
    # What the local server (or any websockets server) can do: it knows no secret, only where keys travel.
    caplog.set_level(logging.DEBUG)
    name = "tests.redacted_server"
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0,
                     logger=RedactingLogger(logging.getLogger(name), ())) as server:
        port = server.sockets[0].getsockname()[1]
        transport = OpenAIRealtimeWebSocket(url=f"ws://127.0.0.1:{port}/", api_key=SECRET)
        await transport.connect()
        transport.close()
    records = [r for r in caplog.records if r.name == name]
    assert any("Authorization" in r.getMessage() for r in records)
    assert not any(leaks(r.getMessage()) for r in records)


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["ek_68f2c0a9Zq8xW3vKp7Lm2Rt9", "local-test-key-Zq8xW3vKp7Lm2Rt9"], ids=["ephemeral", "any-shape"])
@pytest.mark.parametrize("malformed", [False, True], ids=["error", "malformed-error"])
async def test_a_server_error_that_quotes_the_key_reaches_no_event_message_or_log(
    key: str, malformed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The API's invalid_api_key answer quotes the key it was given ("Incorrect API key provided: ek_...").
    caplog.set_level(logging.DEBUG)
    sockets: list[Any] = []

    class Socket:
        def __init__(self, handler: Any) -> None:
            self.handler = handler

        def send(self, text: str) -> None: ...
        def close(self, code: int = 1000, reason: str = "") -> None: ...

    def factory(request: SocketRequest, handler: Any) -> Socket:
        sockets.append(Socket(handler))
        return sockets[-1]

    transport = OpenAIRealtimeWebSocket(url="wss://realtime.test/v1", api_key=key, create_websocket=factory)
    seen: list[Any] = []
    for name in ("*", "error"):
        transport.on(name, seen.append)
    stream = transport.events()
    connecting = asyncio.ensure_future(transport.connect())
    await asyncio.sleep(0)
    sockets[0].handler.on_open("realtime")
    await connecting
    error: dict[str, Any] = {"type": "invalid_request_error", "code": "invalid_api_key", "param": None,
                             "message": f"Incorrect API key provided: {key}. You can find your API key at ..."}
    # An event_id that is not a string: the event does not fit its model and is reported as malformed.
    sockets[0].handler.on_message(json.dumps({"type": "error", "event_id": 7 if malformed else "evt_1", "error": error}))
    transport.close()
    seen += [event.data async for event in stream]
    errors = [e for e in seen if isinstance(e, ErrorEvent)]  # the listener's and the stream's
    assert [type(e.error).__name__ for e in errors] == ["MalformedServerEvent" if malformed else "ServerErrorEvent"] * 2
    assert all("<redacted>" in repr(e.error) for e in errors)

    def texts(value: Any) -> list[str]:
        found = [str(value), repr(value)]
        if isinstance(value, ErrorEvent):
            found += texts(value.exception) + [repr(value.error)]
        if hasattr(value, "model_dump"):
            found.append(json.dumps(value.model_dump(mode="json"), default=str))
        return found

    def leaked(text: str) -> bool:
        return any(key[i : i + FRAGMENT] in text for i in range(len(key) - FRAGMENT + 1))

    for value in seen:
        for text in texts(value):
            assert not leaked(text), text[:300]
    for record in caplog.records:
        for text in _texts_of(record):
            assert not leaked(text), text[:300]


def test_the_redacting_filter_covers_tracebacks_and_stacks() -> None:
    # A library's own logger (uvicorn's, handed to websockets) may log an exception whose text quotes
    # the key: the traceback and the stack are redacted as the message is.
    import io
    import logging

    from pyodide_realtime._interfaces import RedactingFilter

    key = "ek_traceback_secret_0123456789"
    logger = logging.getLogger("pyodide_realtime.test_redacting_filter")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter())
    logger.setLevel(logging.DEBUG)
    try:
        try:
            raise ValueError(f"invalid Sec-WebSocket-Protocol header: openai-insecure-api-key.{key}")
        except ValueError:
            logger.debug("handshake failed", exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "handshake failed" in logged and "Traceback" in logged and "Stack (most recent call last)" in logged
    assert key not in logged and key[:12] not in logged
