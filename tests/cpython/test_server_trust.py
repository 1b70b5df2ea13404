"""The local server under attack: events that used to close the connection, names the API refuses,
what a truncation keeps, what is served and what is logged."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from pyodide_realtime_server import RealtimeServer, _conversation, _state, start_in_thread

EVENT_TIMEOUT_S = 5.0


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones", test_endpoints=True) as srv:
        yield srv


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))


async def _expect(ws: ClientConnection, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    seen = []
    while True:
        event = await _recv(ws)
        seen.append(event)
        if event["type"] == kind:
            return event, seen


async def _open(srv: RealtimeServer, *extra: str) -> ClientConnection:
    ws = await connect(srv.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{srv.mint_key()}", *extra], max_size=None)
    assert (await _recv(ws))["type"] == "session.created"
    return ws


async def _error_for(ws: ClientConnection, event: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(event))
    answer = await _recv(ws)
    assert answer["type"] == "error", answer
    return dict(answer["error"])


async def _still_open(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
    assert (await _recv(ws))["type"] == "input_audio_buffer.cleared"


# -- events that closed the connection with 1011 ---------------------------------------------------


@pytest.mark.asyncio
async def test_non_ascii_audio_and_a_format_without_type_are_invalid_values_not_closes(server: RealtimeServer) -> None:
    async with await _open(server) as ws:
        error = await _error_for(ws, {"type": "input_audio_buffer.append", "event_id": "a", "audio": "AAé="})
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "audio", "a")
        for side in ("input", "output"):
            update = {"type": "session.update", "event_id": side, "session": {"type": "realtime", "audio": {side: {"format": {}}}}}
            error = await _error_for(ws, update)
            assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", f"session.audio.{side}.format", side)
            assert "'type'" in error["message"]
        error = await _error_for(ws, {"type": "response.create", "response": {"audio": {"output": {"format": {}}}}})
        assert (error["code"], error["param"]) == ("invalid_value", "response.audio.output.format")
        await _still_open(ws)
    assert server.state.connections[0].close_code != 1011


@pytest.mark.asyncio
async def test_a_defect_in_a_handler_is_an_error_event_and_the_connection_lives(
    server: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conversation: Any, event: dict[str, Any]) -> None:
        raise KeyError("a defect of the simulation")

    monkeypatch.setitem(_conversation.HANDLERS, "conversation.item.retrieve", broken)
    async with await _open(server) as ws:
        error = await _error_for(ws, {"type": "conversation.item.retrieve", "event_id": "r1", "item_id": "item_1"})
        assert (error["type"], error["code"], error["event_id"]) == ("server_error", "server_error", "r1")
        assert "stays open" in error["message"]
        await _still_open(ws)


# -- names the API refuses -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_voices_and_transcription_models_are_refused_as_the_api_does(server: RealtimeServer) -> None:
    async with await _open(server) as ws:
        cases = [
            ({"type": "realtime", "audio": {"output": {"voice": "robot"}}}, "session.audio.output.voice", "'robot'"),
            (
                {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-9"}}}},
                "session.audio.input.transcription.model",
                "'whisper-9'",
            ),
        ]
        for session, param, quoted in cases:
            error = await _error_for(ws, {"type": "session.update", "session": session})
            assert (error["code"], error["param"]) == ("invalid_value", param)
            assert quoted in error["message"] and "Supported values are" in error["message"]
        error = await _error_for(ws, {"type": "response.create", "response": {"audio": {"output": {"voice": "robot"}}}})
        assert (error["code"], error["param"]) == ("invalid_value", "response.audio.output.voice")
        # Known names, and a custom voice object, pass.
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}, "output": {"voice": "cedar"}},
                    },
                }
            )
        )
        updated, _ = await _expect(ws, "session.updated")
        assert updated["session"]["audio"]["output"]["voice"] == "cedar"
    async with await _open(server, "openai-beta.realtime-v1") as beta:
        error = await _error_for(beta, {"type": "session.update", "session": {"voice": "robot"}})
        assert (error["code"], error["param"]) == ("invalid_value", "session.voice")
        error = await _error_for(beta, {"type": "session.update", "session": {"input_audio_transcription": {"model": "x"}}})
        assert (error["code"], error["param"]) == ("invalid_value", "session.input_audio_transcription.model")


def test_a_minted_session_with_an_unknown_voice_is_refused(server: RealtimeServer) -> None:
    with pytest.raises(Exception, match="robot"):
        server.mint_key({"type": "realtime", "audio": {"output": {"voice": "robot"}}})


# -- truncation ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_truncation_deletes_the_transcript_of_the_unheard_audio() -> None:
    # API reference (conversation.item.truncate): "Truncating audio will delete the server-side text
    # transcript to ensure there is not text in the context that hasn't been heard by the user."
    async with RealtimeServer(pace=0, speech="tones", test_endpoints=True) as srv, await _open(srv) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one two three"}]},
                }
            )
        )
        await ws.send(json.dumps({"type": "response.create"}))
        done, events = await _expect(ws, "response.done")
        item = done["response"]["output"][0]
        assert item["content"][0]["transcript"]
        heard_ms = sum(len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta") // 48
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0, "audio_end_ms": heard_ms // 2}))
        assert (await _expect(ws, "conversation.item.truncated"))[0]["audio_end_ms"] == heard_ms // 2
        await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": item["id"]}))
        retrieved, _ = await _expect(ws, "conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == ""


# -- keys in DEBUG tracebacks ----------------------------------------------------------------------


class _Records(logging.Handler):
    """Every record, formatted as a handler would write it (traceback and stack included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.tracebacks = asyncio.Queue[str]()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.lines.append(line)
        if "Traceback" in line:
            self.tracebacks.put_nowait(line)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "header",
    ["Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.{key}, ,;;=bad", "Authorization: Bearer {key}\x01"],
    ids=["subprotocol", "bearer"],
)
async def test_a_malformed_handshake_puts_no_key_in_any_debug_record(header: str) -> None:
    records = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        async with RealtimeServer(pace=0, speech="tones") as srv:
            key = srv.mint_key()
            request = (
                f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{header.format(key=key)}\r\n\r\n"
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(request.encode("latin-1"))
            # The handshake fails inside websockets, which logs why with a traceback at DEBUG.
            traceback = await asyncio.wait_for(records.tracebacks.get(), EVENT_TIMEOUT_S)
            writer.close()
    finally:
        root.removeHandler(records)
        root.setLevel(level)
    assert "<redacted>" in traceback
    logged = "\n".join(records.lines)
    assert key[len("ek_") :][:12] not in logged and key[-12:] not in logged


# -- static files ----------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=EVENT_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_dotfiles_under_the_web_root_are_not_served(tmp_path: Path) -> None:
    web, dist = tmp_path / "web", tmp_path / "dist"
    (web / ".git").mkdir(parents=True)
    (web / "sub").mkdir()
    dist.mkdir()
    (web / "index.html").write_text("page")
    for secret in (web / ".env", web / ".git" / "config", web / "sub" / ".htpasswd", dist / ".env"):
        secret.write_text("OPENAI_API_KEY=sk-secret")
    with start_in_thread(web_root=web, mounts={"/dist": dist}, speech="tones") as server:
        assert _get(server.url) == (200, b"page")
        for path in (".env", ".git/config", ".git/", "sub/.htpasswd", "%2eenv", "sub/%2e%2e/.env", "dist/.env", ".git"):
            status, body = _get(server.url + path)
            assert status == 404 and b"sk-secret" not in body, path


# -- memory ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_what_is_logged_is_bounded_at_every_depth(server: RealtimeServer) -> None:
    big = "x" * 3_000_000
    events = [
        {"type": "session.update", "event_id": "valid", "session": {"type": "realtime", "instructions": big}},
        {"type": "session.update", "event_id": "deep", "session": {"type": "realtime", "audio": {"input": {"unknown": big}}}},
        {"type": "session.update", "event_id": "key", "session": {"type": "realtime", big: 1}},
        {"type": "conversation.item.create", "event_id": "list", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}] * 50_000}},
        {"type": "session.update", "event_id": "nested", "session": json.loads("[" * 500 + "]" * 500)},
    ]
    async with await _open(server) as ws:
        for event in events:
            await ws.send(json.dumps(event))
        await ws.send(json.dumps({"type": "conversation.item.retrieve", "event_id": "end", "item_id": "none"}))
        answers: list[dict[str, Any]] = []
        while not answers or answers[-1].get("error", {}).get("event_id") != "end":
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S)))
        record = server.state.connections[0]
        logged = [len(json.dumps(event)) for event in record.received]
        errors = [len(json.dumps(error)) for error in record.errors]
    assert len(logged) == len(events) + 1 and max(logged) < 2 * _state.MAX_LOGGED_EVENT_CHARS, logged
    assert errors and max(errors) < 2 * _state.MAX_LOGGED_EVENT_CHARS, errors
    sent_errors = [a["error"] for a in answers if a["type"] == "error"]
    assert {e["event_id"] for e in sent_errors} >= {"deep", "key", "end"}
    assert max(len(e["message"]) + len(e["param"] or "") for e in sent_errors) < 2000


@pytest.mark.asyncio
async def test_without_the_log_nothing_is_kept_of_a_connection_after_it_closes() -> None:
    async with RealtimeServer(pace=0, speech="tones", keep_log=False) as srv:
        async with await _open(srv) as ws:
            await _error_for(ws, {"type": "session.update", "session": {"bogus": "x" * 100_000}})
            [record] = srv.state.connections
            assert (list(record.received), list(record.errors), list(record.sent_types)) == ([], [], [])
        with pytest.raises(InvalidStatus):
            await connect(srv.ws_url, subprotocols=["realtime", "openai-insecure-api-key.ek_unknown"])
        await _wait_for(lambda: not srv.state.connections)
        assert list(srv.state.rejected) == []


async def _wait_for(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_the_conversation_is_bounded_in_characters(server: RealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_conversation, "MAX_CONVERSATION_CHARS", 1_000_000)
    text = "y" * 300_000
    async with await _open(server) as ws:
        ids = []
        for n in range(5):
            item = {"id": f"item_big{n}", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            ids.append((await _expect(ws, "conversation.item.done"))[0]["item"]["id"])
        # The newest three fit in 1 MB; the two oldest went first, as the API drops the oldest context.
        for item_id, kept in zip(ids, [False, False, True, True, True], strict=True):
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": item_id}))
            answer = await _recv(ws)
            assert (answer["type"] == "conversation.item.retrieved") is kept, item_id
        # An item inserted first (root) is never the one dropped to make room for itself.
        first = {"id": "item_root", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "previous_item_id": "root", "item": first}))
        added, _ = await _expect(ws, "conversation.item.added")
        assert added["item"]["id"] == "item_root" and added["previous_item_id"] is None
