"""``GET /demo-config.json``: where the demo page connects, over a real loopback socket."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from pyodide_realtime_server import ServerThread, start_in_thread

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def local() -> Iterator[ServerThread]:
    server = start_in_thread(speech="tones")
    yield server
    server.stop()


def _get(server: ServerThread, path: str, host: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        # skip_host: send exactly the Host header the test chose (or none at all).
        connection.putrequest(method, path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _config(server: ServerThread, host: str | None) -> dict[str, Any]:
    status, headers, body = _get(server, "/demo-config.json", host)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    config: dict[str, Any] = json.loads(body)
    return config


def test_local_server_names_itself_as_the_browser_did(local: ServerThread) -> None:
    port = local.url.rsplit(":", 1)[1].strip("/")
    assert _config(local, f"127.0.0.1:{port}") == {"realtime_url": f"ws://127.0.0.1:{port}/v1/realtime", "mode": "local"}
    # A page opened as http://localhost:PORT/ must connect to localhost too (same site for the browser).
    assert _config(local, f"localhost:{port}")["realtime_url"] == f"ws://localhost:{port}/v1/realtime"
    assert _config(local, "[::1]:8000")["realtime_url"] == "ws://[::1]:8000/v1/realtime"


@pytest.mark.parametrize("host", ["evil.example/x?y=", "a b", "host:port:99", '"><script>'])
def test_a_strange_host_header_falls_back_to_the_listening_address(local: ServerThread, host: str) -> None:
    assert _config(local, host)["realtime_url"] == local.ws_url


def test_a_request_without_host_is_refused_as_http_1_1_says(local: ServerThread) -> None:
    assert _get(local, "/demo-config.json", None)[0] == 400


def test_head_answers_without_a_body_and_post_is_refused(local: ServerThread) -> None:
    status, headers, body = _get(local, "/demo-config.json", "127.0.0.1", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0
    status, _, _ = _get(local, "/demo-config.json", "127.0.0.1", method="POST")
    assert status == 405


def test_with_a_real_key_the_demo_connects_to_openai() -> None:
    def opener(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("reading the demo config must not call OpenAI")

    server = start_in_thread(speech="tones", api_key="sk-real-secret", upstream_opener=opener)
    try:
        status, _, body = _get(server, "/demo-config.json", "127.0.0.1")
    finally:
        server.stop()
    assert status == 200
    assert json.loads(body) == {"realtime_url": "wss://api.openai.com/v1/realtime", "mode": "openai"}
    assert b"sk-real" not in body
