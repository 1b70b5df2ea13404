"""The local Realtime server over real loopback sockets: HTTP with http.client, WebSocket with websockets."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from pyodide_realtime_server import AUDIO_REPLY, ConnectionRecord, RealtimeServer, ServerThread, start_in_thread
from pyodide_realtime_server._state import MAX_LOGGED_EVENTS

ROOT = Path(__file__).resolve().parents[2]
EVENT_TIMEOUT_S = 30.0  # only a guard against a hang: each wait ends on an event
PCM16_BYTES_PER_100_MS = 4800
G711_BYTES_PER_100_MS = 800


# -- HTTP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    base = tmp_path_factory.mktemp("site")
    web, dist = base / "web", base / "dist"
    (web / "sub").mkdir(parents=True)
    dist.mkdir()
    (web / "index.html").write_text("<h1>demo</h1>")
    (web / "app.mjs").write_text("export {}")
    (web / "style.css").write_text("h1 {}")
    (web / "sub" / "index.html").write_text("sub")
    (base / "secret.txt").write_text("do not serve")
    (dist / "pyodide.asm.wasm").write_bytes(b"\0asm\1\0\0\0")
    (dist / "pyodide.js").write_text("var x")
    (dist / "pyodide-lock.json").write_text("{}")
    (dist / "python_stdlib.zip").write_bytes(b"PK")
    (dist / "pkg-0.1.0-py3-none-any.whl").write_bytes(b"PK\3\4")
    server = start_in_thread(web_root=web, mounts={"/dist": dist}, speech="tones")
    yield server, base
    server.stop()


def _http(
    server: ServerThread, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=EVENT_TIMEOUT_S)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(
            method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})} if data else (headers or {})
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/app.mjs", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/sub/", "text/html; charset=utf-8"),
        ("/dist/pyodide.asm.wasm", "application/wasm"),
        ("/dist/pyodide.js", "text/javascript; charset=utf-8"),
        ("/dist/pyodide-lock.json", "application/json"),
        ("/dist/python_stdlib.zip", "application/zip"),
        ("/dist/pkg-0.1.0-py3-none-any.whl", "application/zip"),
    ],
)
def test_static_files_have_their_mime_type_and_no_cache(site: tuple[ServerThread, Path], path: str, mime: str) -> None:
    status, headers, body = _http(site[0], "GET", path)
    assert (status, headers["content-type"], headers["cache-control"]) == (200, mime, "no-cache")
    assert int(headers["content-length"]) == len(body) > 0


def test_static_refuses_traversal_and_missing_files(site: tuple[ServerThread, Path]) -> None:
    server = site[0]
    for path in (
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/dist/..%2fsecret.txt",
        "/dist/%2e%2e/%2e%2e/etc/passwd",
        "/sub/..\\..\\secret.txt",
        "/nope.js",
    ):
        status, headers, body = _http(server, "GET", path)
        assert status == 404, path
        assert b"do not serve" not in body and json.loads(body)["error"]["code"] == "not_found"
    status, headers, _ = _http(server, "GET", "/sub")
    assert (status, headers["location"]) == (307, "/sub/")
    status, headers, body = _http(server, "HEAD", "/app.mjs")
    assert (status, headers["content-length"], body) == (200, "9", b"")
    assert _http(server, "DELETE", "/app.mjs")[0] == 405


def test_mint_answers_like_openai_and_refuses_foreign_origins(site: tuple[ServerThread, Path]) -> None:
    server = site[0]
    own = server.url.rstrip("/")
    session = {"type": "realtime", "instructions": "Be brief.", "audio": {"output": {"format": {"type": "audio/pcmu"}}}}
    status, headers, body = _http(server, "POST", "/v1/realtime/client_secrets", {"session": session}, {"Origin": own})
    answer = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert answer["value"].startswith("ek_") and abs(answer["expires_at"] - (time.time() + 60)) < 5
    assert answer["session"]["type"] == "realtime" and answer["session"]["instructions"] == "Be brief."
    assert answer["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    localhost = own.replace("127.0.0.1", "localhost")
    assert _http(server, "POST", "/v1/realtime/client_secrets", {}, {"Origin": localhost})[0] == 200
    for foreign in ("https://evil.example", "null", own.replace(own.rsplit(":", 1)[1], "1")):
        status, headers, body = _http(server, "POST", "/v1/realtime/client_secrets", {}, {"Origin": foreign})
        assert status == 403 and json.loads(body)["error"]["code"] == "forbidden_origin", foreign
    assert _http(server, "GET", "/v1/realtime/client_secrets")[0] == 405
    status, _, body = _http(
        server, "POST", "/v1/realtime/client_secrets", {"session": {"type": "realtime", "modalities": ["text"]}}
    )
    assert status == 400 and "session.modalities" in json.loads(body)["error"]["message"]


def test_test_state_endpoint_lists_connections(site: tuple[ServerThread, Path]) -> None:
    server = site[0]
    server.reset()

    async def talk() -> None:
        async with connect(server.ws_url, subprotocols=["realtime", f"openai-insecure-api-key.{server.mint_key()}"]) as ws:
            await ws.recv()
            await ws.send(
                json.dumps(
                    {"type": "input_audio_buffer.append", "event_id": "e1", "audio": base64.b64encode(bytes(480)).decode()}
                )
            )
            await ws.send(json.dumps({"type": "input_audio_buffer.clear", "event_id": "e2"}))
            await _expect(ws, "input_audio_buffer.cleared")

    asyncio.run(talk())
    status, _, body = _http(server, "GET", "/_test/state")
    state = json.loads(body)
    assert status == 200 and len(state["connections"]) == 1
    connection = state["connections"][0]
    assert connection["dialect"] == "ga" and connection["subprotocol"] == "realtime"
    assert connection["received"][0] == {"type": "input_audio_buffer.append", "event_id": "e1", "audio": "<640 base64 chars>"}
    assert "session.created" in connection["sent_types"] and server.state()["connections"][0]["id"] == connection["id"]


def test_with_a_real_key_minting_goes_upstream_and_the_key_stays_here() -> None:
    calls: list[Any] = []

    class Answer(io.BytesIO):
        status = 200

    def opener(request: Any, timeout: float) -> Answer:
        calls.append(request)
        return Answer(json.dumps({"value": "ek_from_openai", "expires_at": 1, "session": {"type": "realtime"}}).encode())

    upstream = start_in_thread(speech="tones", api_key="sk-real-secret", upstream_opener=opener)
    try:
        body = {
            "session": {"type": "realtime", "model": "gpt-realtime"},
            "expires_after": {"anchor": "created_at", "seconds": 600},
        }
        status, _, answer = _http(upstream, "POST", "/v1/realtime/client_secrets", body, {"Origin": upstream.url.rstrip("/")})
        assert (status, json.loads(answer)["value"]) == (200, "ek_from_openai") and b"sk-real" not in answer
        assert _http(upstream, "POST", "/v1/realtime/client_secrets", body, {"Origin": "https://evil.example"})[0] == 403
    finally:
        upstream.stop()
    assert len(calls) == 1 and json.loads(calls[0].data) == body
    assert calls[0].get_header("Authorization") == "Bearer sk-real-secret"


def test_real_keys_need_a_matching_origin_local_keys_do_not(site: tuple[ServerThread, Path]) -> None:
    calls: list[Any] = []

    def opener(request: Any, timeout: float) -> Any:
        calls.append(request)
        raise AssertionError("a request without Origin must not reach OpenAI")

    upstream = start_in_thread(speech="tones", api_key="sk-real-secret", upstream_opener=opener)
    try:
        status, _, body = _http(upstream, "POST", "/v1/realtime/client_secrets", {})  # a program, maybe on the LAN
    finally:
        upstream.stop()
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (403, "forbidden_origin") and "no Origin header" in error["message"]
    assert calls == [] and b"sk-real" not in body
    status, _, body = _http(site[0], "POST", "/v1/realtime/client_secrets", {})  # offline: tests mint like this
    assert status == 200 and json.loads(body)["value"].startswith("ek_")


def test_cli_prints_its_url_and_serves(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("cli")
    command = [
        sys.executable,
        "-m",
        "pyodide_realtime_server",
        "--port",
        "0",
        "--web-root",
        str(tmp_path),
        "--offline",
        "--speech",
        "tones",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'server' / 'src'}"}
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Serving on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=EVENT_TIMEOUT_S)
        connection.request("GET", "/")
        assert connection.getresponse().read() == b"cli"
    finally:
        process.terminate()
        process.wait(EVENT_TIMEOUT_S)


# -- WebSocket helpers -----------------------------------------------------------------------------


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), EVENT_TIMEOUT_S))


async def _expect(ws: ClientConnection, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Events up to and including the first of type ``kind``."""
    seen = []
    while True:
        event = await _recv(ws)
        seen.append(event)
        if event["type"] == kind:
            return event, seen


async def _send(ws: ClientConnection, kind: str, **fields: Any) -> None:
    await ws.send(json.dumps({"type": kind, **fields}))


def _auth(key: str, *extra: str) -> list[str]:
    return ["realtime", f"openai-insecure-api-key.{key}", *extra]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(pace=0, speech="tones") as srv:
        yield srv


async def _open(srv: RealtimeServer, *extra: str, query: str = "?model=gpt-realtime") -> ClientConnection:
    ws = await connect(srv.ws_url + query, subprotocols=_auth(srv.mint_key(), *extra))
    created = await _recv(ws)
    assert created["type"] == "session.created"
    return ws


def _refusal(exc: pytest.ExceptionInfo[InvalidStatus]) -> tuple[int, dict[str, Any]]:
    response = exc.value.response
    return response.status_code, json.loads(response.body)["error"]


# -- handshake -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_auth_failures_answer_401_with_the_api_error_body(server: RealtimeServer) -> None:
    for subprotocols, expected in (
        (["realtime"], "didn't provide"),
        (_auth("ek_unknown"), "Incorrect API key"),
        (_auth("sk-regular"), "Incorrect API key"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url, subprotocols=subprotocols)
        status, error = _refusal(refused)
        assert (status, error["type"], error["code"], error["param"]) == (401, "invalid_request_error", "invalid_api_key", None)
        assert expected in error["message"]
    assert [r["status"] for r in server.state.rejected] == [401, 401, 401]


@pytest.mark.asyncio
async def test_keys_are_single_use_and_expire() -> None:
    now = [1_000_000.0]  # the keys' clock, moved by the test
    async with RealtimeServer(pace=0, speech="tones", key_ttl_s=60, clock=lambda: now[0]) as srv:
        key = srv.mint_key()
        now[0] += 59.9  # a handshake within the lifetime, however long it really takes
        async with connect(srv.ws_url, subprotocols=_auth(key)) as ws:
            assert ws.subprotocol == "realtime"
        with pytest.raises(InvalidStatus) as reused:
            await connect(srv.ws_url, subprotocols=_auth(key))
        assert "already used" in _refusal(reused)[1]["message"]
        stale = srv.mint_key()
        now[0] += 60
        with pytest.raises(InvalidStatus) as expired:
            await connect(srv.ws_url, subprotocols=_auth(stale))
        assert _refusal(expired)[0] == 401 and "expired" in _refusal(expired)[1]["message"]


@pytest.mark.asyncio
async def test_two_handshakes_racing_with_one_key_open_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # On loopback accepting never waits, so hold every accept at a gate: this is where a slow
    # client's handshake sits while another with the same key is checked.
    gate, held = asyncio.Event(), 0
    real_accept = WebSocket.accept

    async def held_accept(self: WebSocket, subprotocol: str | None = None) -> None:
        nonlocal held
        held += 1
        await gate.wait()
        await real_accept(self, subprotocol)

    monkeypatch.setattr(WebSocket, "accept", held_accept)
    async with RealtimeServer(pace=0, speech="tones") as srv:
        key = srv.mint_key()
        attempts = [asyncio.ensure_future(connect(srv.ws_url, subprotocols=_auth(key))) for _ in range(2)]
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while held + len(srv.state.rejected) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        opened = [ws for ws in outcomes if isinstance(ws, ClientConnection)]
        refused = [exc for exc in outcomes if isinstance(exc, InvalidStatus)]
        for ws in opened:
            await ws.close()
        assert (len(opened), len(refused), len(srv.state.connections)) == (1, 1, 1), outcomes
        assert "already used" in json.loads(refused[0].response.body)["error"]["message"]


@pytest.mark.asyncio
async def test_a_handshake_that_fails_after_the_key_check_does_not_use_the_key_up(server: RealtimeServer) -> None:
    key = server.mint_key()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(  # no Sec-WebSocket-Key: websockets refuses it after our key check passed
        (
            "GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: realtime, openai-insecure-api-key.{key}\r\n\r\n"
        ).encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), EVENT_TIMEOUT_S)
    writer.close()
    assert status_line.split()[1] == b"400"
    async with connect(server.ws_url, subprotocols=_auth(key)) as ws:
        assert (await _recv(ws))["type"] == "session.created"


@pytest.mark.asyncio
async def test_bearer_header_any_key_switch_and_no_protocol_hook() -> None:
    async with RealtimeServer(pace=0, speech="tones", accept_any_key=True) as srv:
        async with connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {srv.mint_key()}"}) as ws:
            assert ws.subprotocol is None and (await _recv(ws))["type"] == "session.created"
        async with connect(srv.ws_url, subprotocols=_auth("sk-test-key")) as ws:
            assert ws.subprotocol == "realtime"
        async with connect(srv.ws_url + "?_select_protocol=none", subprotocols=_auth(srv.mint_key())) as ws:
            assert ws.subprotocol is None  # browsers fail such a handshake; websockets lets us look
        with pytest.raises(InvalidStatus) as other_path:
            await connect(srv.url.replace("http", "ws") + "elsewhere", subprotocols=_auth(srv.mint_key()))
        assert _refusal(other_path)[0] == 404
        assert [c.auth for c in srv.state.connections] == ["ephemeral", "regular", "ephemeral"]


@pytest.mark.asyncio
async def test_minted_session_config_seeds_the_connection(server: RealtimeServer) -> None:
    key = server.mint_key({"type": "realtime", "instructions": "Seeded.", "output_modalities": ["text"]})
    async with connect(server.ws_url, subprotocols=_auth(key)) as ws:
        session = (await _recv(ws))["session"]
        assert (session["instructions"], session["output_modalities"]) == ("Seeded.", ["text"])
    # A key minted for another model (the beta page mints for gpt-4o-realtime-preview): its model, no error.
    key = server.mint_key({"type": "realtime", "model": "gpt-4o-realtime-preview"})
    async with connect(server.ws_url, subprotocols=_auth(key, "openai-beta.realtime-v1")) as ws:
        assert (await _recv(ws))["session"]["model"] == "gpt-4o-realtime-preview"


# -- the simulated model ---------------------------------------------------------------------------


GA_AUDIO_SEQUENCE_HEAD = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
GA_AUDIO_SEQUENCE_TAIL = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "response.done",
    "rate_limits.updated",
]


@pytest.mark.asyncio
async def test_ga_session_update_and_full_audio_response(server: RealtimeServer) -> None:
    ws = await _open(server)
    async with ws:
        await _send(
            ws,
            "session.update",
            event_id="u1",
            session={"type": "realtime", "instructions": "Hi.", "audio": {"output": {"voice": "marin"}}},
        )
        updated, _ = await _expect(ws, "session.updated")
        assert updated["session"]["instructions"] == "Hi." and updated["session"]["audio"]["output"]["voice"] == "marin"
        assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await _send(
            ws,
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
        )
        added, _ = await _expect(ws, "conversation.item.added")
        done, _ = await _expect(ws, "conversation.item.done")
        assert added["item"]["id"] == done["item"]["id"] and done["item"]["content"][0]["text"] == "hello there"
        await _send(ws, "response.create")
        _, events = await _expect(ws, "rate_limits.updated")
    kinds = [e["type"] for e in events]
    middle = kinds[len(GA_AUDIO_SEQUENCE_HEAD) : -len(GA_AUDIO_SEQUENCE_TAIL)]
    assert (
        kinds[: len(GA_AUDIO_SEQUENCE_HEAD)] == GA_AUDIO_SEQUENCE_HEAD
        and kinds[-len(GA_AUDIO_SEQUENCE_TAIL) :] == GA_AUDIO_SEQUENCE_TAIL
    )
    assert set(middle) == {"response.output_audio_transcript.delta", "response.output_audio.delta"}
    assert middle[0] == "response.output_audio_transcript.delta" and middle.count("response.output_audio.delta") > 3
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"]
    assert transcript == "You said: hello there"
    assert all(len(c) == PCM16_BYTES_PER_100_MS for c in chunks[:-1]) and 0 < len(chunks[-1]) <= PCM16_BYTES_PER_100_MS
    by_type = {e["type"]: e for e in events}
    assert by_type["response.output_audio_transcript.done"]["transcript"] == transcript
    response = by_type["response.done"]["response"]
    assert response["status"] == "completed" and response["output_modalities"] == ["audio"]
    assert response["output"][0]["content"] == [{"type": "output_audio", "transcript": transcript}]
    assert response["usage"]["output_token_details"]["audio_tokens"] > 0
    item_ids = {e["item_id"] for e in events if "item_id" in e}
    assert item_ids == {response["output"][0]["id"]}


@pytest.mark.asyncio
async def test_beta_dialect_names_flat_session_and_g711_audio(server: RealtimeServer) -> None:
    ws = await connect(server.ws_url, subprotocols=_auth(server.mint_key(), "openai-beta.realtime-v1"))
    async with ws:
        session = (await _recv(ws))["session"]
        assert session["modalities"] == ["audio", "text"] and session["output_audio_format"] == "pcm16" and "audio" not in session
        await _send(ws, "session.update", session={"output_audio_format": "g711_ulaw", "voice": "verse"})
        updated, _ = await _expect(ws, "session.updated")
        assert (updated["session"]["output_audio_format"], updated["session"]["voice"]) == ("g711_ulaw", "verse")
        await _send(ws, "session.update", event_id="bad", session={"type": "realtime", "output_modalities": ["audio"]})
        error, _ = await _expect(ws, "error")
        assert (error["error"]["code"], error["error"]["event_id"]) == ("unknown_parameter", "bad")
        await _send(
            ws,
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "beta"}]},
        )
        created, _ = await _expect(ws, "conversation.item.created")
        assert created["item"]["role"] == "user"
        await _send(ws, "response.create")
        _, events = await _expect(ws, "response.done")
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
    ]
    assert kinds[-5:] == [
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    assert not any(k.startswith("response.output_audio") for k in kinds)
    chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta"]
    assert all(len(c) == G711_BYTES_PER_100_MS for c in chunks[:-1])
    assert len(set(b"".join(chunks))) > 20  # encoded tones, not mu-law silence (0xFF)
    assert "".join(e["delta"] for e in events if e["type"] == "response.audio_transcript.delta") == "You said: beta"
    assert (
        events[-1]["response"]["modalities"] == ["audio", "text"] and events[-1]["response"]["output_audio_format"] == "g711_ulaw"
    )


@pytest.mark.asyncio
async def test_beta_header_and_text_only_ga_response(server: RealtimeServer) -> None:
    async with connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {server.mint_key()}", "OpenAI-Beta": "realtime=v1"}
    ) as ws:
        assert "modalities" in (await _recv(ws))["session"]
    ws = await _open(server)
    async with ws:
        await _send(ws, "session.update", session={"type": "realtime", "output_modalities": ["text"]})
        await _expect(ws, "session.updated")
        await _send(
            ws,
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "just text"}]},
        )
        await _send(ws, "response.create")
        done, events = await _expect(ws, "response.done")
    kinds = [e["type"] for e in events]
    assert "response.output_audio.delta" not in kinds and kinds.index("response.output_text.done") < kinds.index("response.done")
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "You said: just text"
    assert done["response"]["output"][0]["content"] == [{"type": "output_text", "text": "You said: just text"}]


def _pcm16(samples: list[int]) -> str:
    return base64.b64encode(b"".join(s.to_bytes(2, "little", signed=True) for s in samples)).decode()


async def _speak(ws: ClientConnection, loud_ms: int, quiet_ms: int, rng: random.Random) -> None:
    """Loud noise then silence, appended in 100 ms chunks as a microphone would."""
    for _ in range(loud_ms // 100):
        await _send(ws, "input_audio_buffer.append", audio=_pcm16([rng.randint(-20000, 20000) for _ in range(2400)]))
    for _ in range(quiet_ms // 100):
        await _send(ws, "input_audio_buffer.append", audio=_pcm16([0] * 2400))


@pytest.mark.asyncio
async def test_server_vad_commits_speech_answers_and_barge_in_cancels() -> None:
    rng = random.Random(3)
    async with RealtimeServer(pace=2, speech="tones") as srv:
        ws = await _open(srv)
        async with ws:
            await _send(
                ws, "session.update", session={"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
            )
            await _expect(ws, "session.updated")
            await _send(ws, "input_audio_buffer.append", audio=_pcm16([0] * 12000))  # 500 ms of silence first
            await _speak(ws, 400, 600, rng)
            started, _ = await _expect(ws, "input_audio_buffer.speech_started")
            assert started["audio_start_ms"] == 200  # 500 ms in, minus 300 ms prefix padding
            stopped, _ = await _expect(ws, "input_audio_buffer.speech_stopped")
            # 500 ms of silence ends the turn; WebRTC's detector holds on to speech a frame or five longer.
            assert 1400 <= stopped["audio_end_ms"] <= 1500 and stopped["item_id"] == started["item_id"]
            committed, _ = await _expect(ws, "input_audio_buffer.committed")
            added, _ = await _expect(ws, "conversation.item.added")
            assert committed["item_id"] == added["item"]["id"] == started["item_id"]
            assert added["item"]["content"][0]["type"] == "input_audio"
            # Transcription runs beside the response, as the API's does: its events come in any order.
            _, events = await _expect(ws, "response.output_audio.delta")
            while not any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in events):
                events.append(await _recv(ws))
            transcribed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
            created = next(e for e in events if e["type"] == "response.created")
            # Noise is no word the recognizer knows; the usage is the audio committed, silence included.
            assert isinstance(transcribed["transcript"], str) and transcribed["item_id"] == committed["item_id"]
            assert transcribed["usage"] == {"type": "duration", "seconds": stopped["audio_end_ms"] / 1000}
            await _speak(ws, 200, 0, rng)  # the user talks over the model
            _, events = await _expect(ws, "response.done")
            kinds = [e["type"] for e in events]
            assert "input_audio_buffer.speech_started" in kinds
            assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
            assert events[-1]["response"]["status"] == "cancelled" and events[-1]["response"]["id"] == created["response"]["id"]
            assert events[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
            assert events[-2]["item"]["status"] == "incomplete"
            await _speak(ws, 0, 800, rng)  # 500 ms of silence and the detector's hangover
            await _expect(ws, "input_audio_buffer.speech_stopped")
            _, events = await _expect(ws, "response.done")
            spoken = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
            assert spoken == AUDIO_REPLY and events[-1]["response"]["status"] == "completed"


@pytest.mark.asyncio
async def test_manual_commit_clear_and_empty_commit_error(server: RealtimeServer) -> None:
    ws = await _open(server)
    async with ws:
        await _send(
            ws,
            "session.update",
            session={"type": "realtime", "audio": {"input": {"turn_detection": None, "format": {"type": "audio/pcma"}}}},
        )
        updated, _ = await _expect(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        await _send(ws, "input_audio_buffer.commit", event_id="c0")
        error, _ = await _expect(ws, "error")
        assert (error["error"]["code"], error["error"]["event_id"]) == ("input_audio_buffer_commit_empty", "c0")
        await _send(ws, "input_audio_buffer.append", audio=base64.b64encode(b"\xd5" * 1600).decode())  # 200 ms A-law
        await _send(ws, "input_audio_buffer.commit")
        committed, events = await _expect(ws, "input_audio_buffer.committed")
        assert not any(e["type"].startswith("input_audio_buffer.speech") for e in events)
        await _send(ws, "input_audio_buffer.clear")
        await _expect(ws, "input_audio_buffer.cleared")
        await _send(ws, "conversation.item.retrieve", item_id=committed["item_id"])
        retrieved, _ = await _expect(ws, "conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["type"] == "input_audio"
        await _send(ws, "conversation.item.delete", item_id=committed["item_id"])
        deleted, _ = await _expect(ws, "conversation.item.deleted")
        assert deleted["item_id"] == committed["item_id"]


@pytest.mark.asyncio
async def test_cancel_then_truncate_validation() -> None:
    async with RealtimeServer(pace=4, speech="tones") as srv:
        ws = await _open(srv)
        async with ws:
            await _send(
                ws,
                "conversation.item.create",
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "one two three four five six"}],
                },
            )
            await _send(ws, "response.create", event_id="r1")
            await _expect(ws, "response.output_audio.delta")
            await _send(ws, "response.create", event_id="r2")
            busy, before_cancel = await _expect(ws, "error")
            assert (busy["error"]["code"], busy["error"]["event_id"]) == ("conversation_already_has_active_response", "r2")
            await _send(ws, "response.cancel", event_id="x1")
            done, events = await _expect(ws, "response.done")
            assert (
                done["response"]["status"] == "cancelled" and done["response"]["status_details"]["reason"] == "client_cancelled"
            )
            assert [e["type"] for e in events if e["type"].endswith(".done")][:3] == [
                "response.output_audio.done",
                "response.output_audio_transcript.done",
                "response.content_part.done",
            ]
            item_id = done["response"]["output"][0]["id"]
            received_ms = (
                sum(len(base64.b64decode(e["delta"])) for e in before_cancel + events if e["type"] == "response.output_audio.delta") / 48
                + 100
            )
            await _send(ws, "response.cancel", event_id="x2")
            not_active, _ = await _expect(ws, "error")
            assert (not_active["error"]["code"], not_active["error"]["event_id"]) == ("response_cancel_not_active", "x2")

            async def truncate(event_id: str, **fields: Any) -> dict[str, Any]:
                await _send(
                    ws, "conversation.item.truncate", event_id=event_id, **{"item_id": item_id, "content_index": 0, **fields}
                )
                return await _recv(ws)

            fractional = await truncate("t1", audio_end_ms=50.5)
            assert fractional["type"] == "error" and fractional["error"]["event_id"] == "t1"
            assert "expected an integer" in fractional["error"]["message"]
            too_long = await truncate("t2", audio_end_ms=60_000)
            assert too_long["error"]["event_id"] == "t2"
            assert (
                too_long["error"]["message"].startswith("Audio content of ")
                and "is already shorter than 60000ms" in too_long["error"]["message"]
            )
            unknown = await truncate("t3", item_id="item_nope", audio_end_ms=0)
            assert unknown["type"] == "error" and unknown["error"]["param"] == "item_id"
            missing = await truncate("t4")
            assert (missing["error"]["code"], missing["error"]["param"]) == ("missing_required_parameter", "audio_end_ms")
            truncated = await truncate("t5", audio_end_ms=80)
            assert truncated == {
                "type": "conversation.item.truncated",
                "event_id": truncated["event_id"],
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 80,
            }
        assert 0 < srv.state.truncations[0]["audio_available_ms"] <= received_ms
        assert [(t["item_id"], t["audio_end_ms"]) for t in srv.state.truncations] == [(item_id, 80)]


@pytest.mark.asyncio
async def test_function_call_round_trip(server: RealtimeServer) -> None:
    weather = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
    ws = await _open(server)
    async with ws:
        await _send(ws, "session.update", session={"type": "realtime", "tools": [weather]})
        await _expect(ws, "session.updated")
        await _send(
            ws,
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]},
        )
        await _send(ws, "response.create")
        done, events = await _expect(ws, "response.done")
        call = done["response"]["output"][0]
        assert (call["type"], call["name"], call["status"], call["arguments"]) == (
            "function_call",
            "get_weather",
            "completed",
            '{"location": "Paris"}',
        )
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        assert len(deltas) > 1 and "".join(e["delta"] for e in deltas) == call["arguments"]
        finished = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert (finished["call_id"], finished["name"]) == (call["call_id"], "get_weather")
        await _send(
            ws,
            "conversation.item.create",
            item={"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c": 21}'},
        )
        await _expect(ws, "conversation.item.done")
        await _send(ws, "response.create")
        done, _ = await _expect(ws, "response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == 'The get_weather tool says: {"temp_c": 21}'


@pytest.mark.asyncio
async def test_invalid_client_events_get_errors_naming_their_event_id(server: RealtimeServer) -> None:
    ws = await _open(server)
    async with ws:
        cases = [
            ({"type": "no.such_event", "event_id": "a"}, "invalid_value", "type"),
            ({"type": "conversation.item.delete", "event_id": "b"}, "missing_required_parameter", "item_id"),
            ({"type": "conversation.item.delete", "event_id": "c", "item_id": "item_x"}, "invalid_value", "item_id"),
            (
                {"type": "session.update", "event_id": "d", "session": {"instructions": "no type"}},
                "missing_required_parameter",
                "session.type",
            ),
            ({"type": "input_audio_buffer.append", "event_id": "e", "audio": "not base64!"}, "invalid_value", "audio"),
            (
                {
                    "type": "conversation.item.create",
                    "event_id": "f",
                    "item": {"type": "message", "role": "robot", "content": []},
                },
                "invalid_value",
                "item.role",
            ),
            ({"event_id": "g"}, "missing_required_parameter", "type"),
        ]
        for event, code, param in cases:
            await ws.send(json.dumps(event))
            error = await _recv(ws)
            assert error["type"] == "error" and error["error"]["event_id"] == event["event_id"]
            assert (error["error"]["type"], error["error"]["code"], error["error"]["param"]) == (
                "invalid_request_error",
                code,
                param,
            )
        await ws.send("{not json")
        error = await _recv(ws)
        assert (error["error"]["code"], error["error"]["event_id"]) == ("invalid_json", None)
        await ws.send(b"\x00binary")
        assert (await _recv(ws))["type"] == "error"


@pytest.mark.asyncio
async def test_the_event_log_keeps_the_latest_events_and_counts_the_rest(server: RealtimeServer) -> None:
    extra = 300
    audio = base64.b64encode(bytes(480)).decode()
    async with connect(server.ws_url, subprotocols=_auth(server.mint_key())) as ws:
        await _recv(ws)
        for n in range(MAX_LOGGED_EVENTS + extra):
            await _send(ws, "input_audio_buffer.append", event_id=f"e{n}", audio=audio)
            if n % 500 == 0:
                assert len(server.state.connections[0].received) <= MAX_LOGGED_EVENTS
        await _send(ws, "input_audio_buffer.clear", event_id="last")
        await _expect(ws, "input_audio_buffer.cleared")
    [connection] = json.loads(json.dumps(server.state.snapshot()))["connections"]
    received = connection["received"]
    assert len(received) == MAX_LOGGED_EVENTS and connection["received_left_out"] == extra + 1
    assert received[0]["event_id"] == f"e{extra + 1}" and received[-1]["event_id"] == "last"
    record = ConnectionRecord("conn_x", "ga", "m", "/v1/realtime", None, "ephemeral")
    for _ in range(MAX_LOGGED_EVENTS + 7):
        record.log_sent("response.output_audio.delta")
    assert (len(record.snapshot()["sent_types"]), record.snapshot()["sent_left_out"]) == (MAX_LOGGED_EVENTS, 7)
