"""The server's HTTP and WebSocket edges, over real loopback sockets: the defects the issue found
(requests dropped without an answer, a symlink out of the web root, an open redirect, cross-origin
test endpoints, close codes), the command line's one-line failures, and bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import io
import json
import logging
import socket
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pyodide_realtime_server import RealtimeServer, ServerThread, _app, _cli, _conversation, start_in_thread
from pyodide_realtime_server._state import MAX_CONNECTION_RECORDS, MAX_LOGGED_ERRORS

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    web = tmp_path_factory.mktemp("web")
    (web / "sub").mkdir()
    (web / "sub" / "index.html").write_text("sub")
    (web / "index.html").write_text("home")
    (web / "worker.html").write_text("python in a pyscript worker")
    (web / "passwd").symlink_to("/etc/passwd")
    server = start_in_thread(web_root=web, speech="tones")
    yield server
    server.stop()


def _raw(server: ServerThread, request: bytes) -> bytes:
    """Send bytes as they are; the whole answer (the server must answer, not just drop the line)."""
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_malformed_requests_get_an_answer_not_a_dropped_connection(site: ServerThread) -> None:
    bad_length = b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nContent-Length: \xc2\xb2\r\nConnection: close\r\n\r\n"
    assert _status(_raw(site, bad_length)) == 400
    long_segment = b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _status(_raw(site, long_segment)) == 404
    nested = b"[" * 100_000 + b"]" * 100_000
    deep = b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
    answer = _raw(site, deep + f"Content-Length: {len(nested)}\r\n\r\n".encode() + nested)
    assert _status(answer) == 413  # a mint request is small; nothing that deep is even parsed
    nested = b"[" * 20_000 + b"]" * 20_000
    answer = _raw(site, deep + f"Content-Length: {len(nested)}\r\n\r\n".encode() + nested)
    assert _status(answer) == 400 and b"not valid JSON" in answer


def test_symlinks_out_of_the_web_root_are_not_followed(site: ServerThread) -> None:
    answer = _raw(site, b"GET /passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _status(answer) == 404 and b"root:" not in answer


def test_only_the_worker_page_is_cross_origin_isolated(site: ServerThread) -> None:
    # PyScript's window in a worker needs SharedArrayBuffer: an isolated page.
    isolated = _raw(site, b"GET /worker.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").lower()
    assert b"cross-origin-opener-policy: same-origin" in isolated and b"cross-origin-embedder-policy: require-corp" in isolated
    plain = _raw(site, b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").lower()
    assert b"cross-origin" not in plain


def test_folder_redirects_stay_on_this_host(site: ServerThread) -> None:
    answer = _raw(site, b"GET ////sub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    location = next(line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.startswith("location:"))
    assert location == "/sub/" and not location.startswith("//")


def _host(server: ServerThread) -> str:
    return server.url.split("//", 1)[1].rstrip("/")


def test_test_endpoints_are_same_origin_only_and_only_on_request(site: ServerThread) -> None:
    def post_reset(origin: str | None) -> int:
        headers = f"Origin: {origin}\r\n" if origin else ""
        request = f"POST /_test/reset HTTP/1.1\r\nHost: {_host(site)}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        return _status(_raw(site, request.encode()))

    assert post_reset("https://evil.example") == 403
    assert post_reset(site.url.rstrip("/")) == 200
    assert post_reset(None) == 200  # a program (the tests)
    cross_site = f"GET /_test/state HTTP/1.1\r\nHost: {_host(site)}\r\nSec-Fetch-Site: cross-site\r\nConnection: close\r\n\r\n"
    assert _status(_raw(site, cross_site.encode())) == 403
    plain = start_in_thread(speech="tones", test_endpoints=False)
    try:
        assert _status(_raw(plain, b"GET /_test/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 404
        assert _status(_raw(plain, b"POST /_test/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")) == 404
    finally:
        plain.stop()


def test_test_endpoints_answer_only_requests_naming_this_server(site: ServerThread) -> None:
    # DNS rebinding: a page at http://rebound.example:PORT, its name now resolving to 127.0.0.1, reads
    # /_test/state "same origin": no Origin header, no Sec-Fetch-Site other than same-origin, only its Host.
    port = _host(site).rsplit(":", 1)[1]

    def get_state(host: str | None) -> bytes:
        header = f"Host: {host}\r\n" if host is not None else ""
        return _raw(site, f"GET /_test/state HTTP/1.0\r\n{header}Sec-Fetch-Site: same-origin\r\nConnection: close\r\n\r\n".encode())

    for foreign in (f"rebound.example:{port}", "rebound.example", f"127.0.0.1:{int(port) + 1}", "127.0.0.1", None):
        answer = get_state(foreign)
        assert _status(answer) == 403 and b"forbidden_host" in answer and b"connections" not in answer, foreign
        reset = f"POST /_test/reset HTTP/1.1\r\nHost: {foreign or 'x'}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        assert _status(_raw(site, reset.encode())) == 403
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        answer = get_state(own)
        assert _status(answer) == 200 and b"connections" in answer, own


def test_upstream_errors_reach_the_page_as_status_and_code_only(caplog: pytest.LogCaptureFixture) -> None:
    # OpenAI's 401 quotes the operator's key (prefix and last 4): every visitor would read it.
    api_key = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzabcd"
    upstream_error = {
        "error": {
            "message": "Incorrect API key provided: sk-proj-****abcd. You can find your API key at https://platform.openai.com.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    answers = [
        (401, json.dumps(upstream_error).encode()),
        (429, json.dumps({"error": {"message": f"Rate limit for key {api_key}", "code": "rate_limit_exceeded"}}).encode()),
        (500, b"<html>Internal error for sk-proj-****abcd</html>"),
        (400, json.dumps({"error": {"message": "bad", "code": "sk-proj-abcd"}}).encode()),
    ]

    def opener(request: Any, timeout: float) -> Any:
        status, body = answers.pop(0)
        raise urllib.error.HTTPError(request.full_url, status, "refused", email.message.Message(), io.BytesIO(body))

    server = start_in_thread(speech="tones", api_key=api_key, upstream_opener=opener)
    seen: list[tuple[int, dict[str, Any]]] = []
    try:
        with caplog.at_level(logging.WARNING, logger="pyodide_realtime_server"):
            for _ in range(len(answers)):
                request = (
                    f"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: {_host(server)}\r\nOrigin: {server.url.rstrip('/')}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                )
                answer = _raw(server, request.encode())
                assert b"abcd" not in answer and b"sk-proj" not in answer and b"Incorrect" not in answer
                seen.append((_status(answer), json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]))
    finally:
        server.stop()
    assert [(status, error["code"]) for status, error in seen] == [
        (401, "invalid_api_key"),
        (429, "rate_limit_exceeded"),
        (500, None),
        (400, None),  # a "code" that looks like a key is not passed on
    ]
    assert seen[0][1]["message"] == "OpenAI refused to mint an ephemeral key (HTTP 401, code 'invalid_api_key'). The server's log says why."
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Incorrect API key provided" in logged and "Rate limit for key" in logged  # the operator can see why...
    assert "abcd" not in logged and "sk-proj" not in logged and api_key[10:20] not in logged  # ...without the key


def _auth(server: RealtimeServer) -> list[str]:
    return ["realtime", f"openai-insecure-api-key.{server.mint_key()}"]


@pytest.mark.asyncio
async def test_invalid_utf8_closes_1007_and_oversize_1009(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_app, "MAX_MESSAGE_BYTES", 64 * 1024)
    async with RealtimeServer(pace=0, speech="tones") as server:
        async with connect(server.ws_url, subprotocols=_auth(server)) as ws:
            await ws.recv()
            # websockets' client refuses to send invalid UTF-8 as text: write the frame by hand.
            await ws.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
        async with connect(server.ws_url, subprotocols=_auth(server), max_size=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 100_000}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.asyncio
async def test_a_crash_outside_the_handlers_closes_1011_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A handler's failure is an error event (test_server_trust.py); this is the last resort, for a
    # failure of the connection's own loop.
    def broken(conversation: Any, message: str | bytes) -> None:
        raise ZeroDivisionError("a bug in the simulated model")

    monkeypatch.setattr(_conversation.Conversation, "handle", broken)
    async with RealtimeServer(pace=0, speech="tones") as server:
        async with connect(server.ws_url, subprotocols=_auth(server)) as ws:
            await ws.recv()
            with caplog.at_level(logging.ERROR, logger="pyodide_realtime_server"):
                await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        assert "crashed" in caplog.text and "ZeroDivisionError" in caplog.text


@pytest.mark.asyncio
async def test_everything_a_connection_keeps_is_bounded() -> None:
    bad_events = 3000
    async with RealtimeServer(pace=0, speech="tones") as server:
        async with connect(server.ws_url, subprotocols=_auth(server)) as ws:
            await ws.recv()
            for index in range(bad_events):
                await ws.send(json.dumps({"type": "session.update", "event_id": f"e{index}", "session": {"bogus": index}}))
            for _ in range(bad_events):
                await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        record = server.state.connections[0]
        assert len(record.errors) == MAX_LOGGED_ERRORS and record.errors_left_out == bad_events - MAX_LOGGED_ERRORS
        assert len(json.dumps(server.state.snapshot())) < 1_000_000
        for _ in range(MAX_CONNECTION_RECORDS + 5):  # closed connections: only the latest are kept
            async with connect(server.ws_url, subprotocols=_auth(server)) as ws:
                await ws.recv()
        assert len(server.state.connections) == MAX_CONNECTION_RECORDS


# The command line runs in-process here (its one subprocess smoke test is in test_server.py).


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_in_use_is_one_clear_line(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.run(["--port", str(taken_port), "--speech", "tones", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"pyodide-realtime-server: port {taken_port} on 127.0.0.1 is already in use: stop the other server, "
        "or pick another port with --port N (--port 0 picks a free one)"
    ]


def test_a_real_key_on_a_network_host_is_refused_unless_asked_for(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The mint endpoint's Origin check is forged by any program (curl -H 'Origin: ...'): on a network
    # address, anyone could mint real keys billed to the operator.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-1234")
    base = ["--speech", "tones"]
    assert _cli.run([*base, "--host", "0.0.0.0", "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Serving" not in out
    assert err.strip().splitlines() == [
        "pyodide-realtime-server: refusing to serve on non-loopback host 0.0.0.0 while OPENAI_API_KEY is set: anyone who can "
        "reach it could mint real OpenAI keys billed to you; use --offline, a loopback --host, "
        "or --allow-remote-minting to do it anyway"
    ]
    assert "1234" not in err
    # Asked for (or on loopback), the command line goes on to listen: a taken port stops it there.
    for host, extra in (("0.0.0.0", ["--allow-remote-minting"]), ("localhost", []), ("127.0.0.1", [])):
        assert _cli.run([*base, "--host", host, "--port", str(taken_port), *extra]) == 1
        assert "refusing" not in capsys.readouterr().err, host
    assert _cli.is_loopback("::1") and _cli.is_loopback("[::1]") and _cli.is_loopback("127.0.0.2")
    assert not _cli.is_loopback("0.0.0.0") and not _cli.is_loopback("::") and not _cli.is_loopback("example.com")


def test_a_network_host_needs_an_opt_in_even_without_a_key(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        assert _cli.run(["--host", host, "--port", "0", "--speech", "tones", "--test-endpoints"]) == 2
        out, err = capsys.readouterr()
        assert "Serving" not in out
        assert err.strip().splitlines() == [
            f"pyodide-realtime-server: refusing to listen on non-loopback host {host}: anyone who can reach it could mint "
            "keys, open sessions with the simulated model and read every file under the web root, read and reset what "
            "every client sent (--test-endpoints); use a loopback --host (the default, 127.0.0.1), or --allow-remote "
            "to expose it anyway"
        ]
    # Asked for, it goes on to listen (the taken port stops it there) and says what it exposes.
    with _cli_logs() as logged:
        assert _cli.run(["--host", "0.0.0.0", "--port", str(taken_port), "--speech", "tones", "--allow-remote"]) == 1
    assert "refusing" not in capsys.readouterr().err
    assert any("listening on 0.0.0.0, not a loopback address: anyone who can reach it" in line for line in logged)


@contextlib.contextmanager
def _cli_logs() -> Iterator[list[str]]:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("pyodide_realtime_server").addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger("pyodide_realtime_server").removeHandler(handler)


def test_the_command_line_keeps_an_event_log_only_with_test_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[RealtimeServer] = []

    class Stopped(Exception):
        pass

    class Recorded(RealtimeServer):
        async def start(self) -> RealtimeServer:
            built.append(self)
            raise Stopped

    monkeypatch.setattr(_app, "RealtimeServer", Recorded)
    for extra in ([], ["--test-endpoints"]):
        with pytest.raises(Stopped):
            _cli.run(["--port", "0", "--speech", "tones", "--offline", *extra])
    assert [(server.keep_log, server.test_endpoints) for server in built] == [(False, False), (True, True)]


def test_missing_dependencies_say_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_cli, "REQUIRED", {**_cli.REQUIRED, "no_such_module_for_this_test": "no-such-package"})
    assert _cli.run(["--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "pyodide-realtime-server: missing no-such-package: pip install no-such-package "
        "(in a checkout of pyodide-realtime: pip install -e . -e server, as ./build.sh setup does)"
    )


@pytest.mark.asyncio
async def test_a_debug_logged_session_never_logs_the_key(caplog: pytest.LogCaptureFixture) -> None:
    # websockets, under uvicorn, logs every handshake header at DEBUG: Authorization included.
    from pyodide_realtime import OpenAIRealtimeWebSocket

    caplog.set_level(logging.DEBUG)
    async with RealtimeServer(pace=0, speech="tones") as server:
        key = server.mint_key()
        transport = OpenAIRealtimeWebSocket(url=server.ws_url)
        await transport.connect(api_key=key)
        transport.send_message("hi")
        await asyncio.sleep(0.3)
        transport.close()
        await asyncio.sleep(0.1)
    assert any("authorization" in r.getMessage().lower() for r in caplog.records)  # the header was logged...
    leaks = [r.getMessage() for r in caplog.records if key[3:15] in r.getMessage()]
    assert leaks == []  # ...without the key
