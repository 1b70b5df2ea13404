"""The page API itself (engines.py): what a test may rely on whatever ran before it in the engine."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engines import Engine

#: A page that tells, as it goes away, whether the engine kept it (a back/forward cache).
GOING_AWAY = (
    b"<!doctype html><title>going away</title><script>"
    b"addEventListener('pagehide', (e) => navigator.sendBeacon('/gone?persisted=' + e.persisted));"
    b"</script>"
)


class _Beacons(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[str] = []
        self.arrived = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Beacons

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(GOING_AWAY)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(self.path)
        self.server.arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def beacons() -> Iterator[_Beacons]:
    server = _Beacons()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_closed_page_is_gone_not_kept_in_a_back_forward_cache(engine: Engine, beacons: _Beacons) -> None:
    # A page kept alive after close() would keep its Pyodide heap, its AudioContexts and its timers in the
    # engine for the rest of the run (WebKit keeps pages for "back" unless told not to: its tests then ran
    # slower, the longer the run).
    page = engine.open(beacons.url + "/", wait_for_pyodide=False)
    page.eval_js("return document.readyState")
    page.close()
    assert beacons.arrived.wait(10), "the page sent nothing as it went away"
    assert beacons.received == ["/gone?persisted=false"]


def test_the_engine_reaches_nothing_but_loopback(engine: Engine, beacons: _Beacons) -> None:
    # The browsers run inside the tests' network namespace too (tests/cpython/test_offline.py): a fetch
    # from the page to another address fails at once, as a network error.
    page = engine.open(beacons.url + "/", wait_for_pyodide=False)
    try:
        outcome = page.eval_js(
            "try { await fetch('http://192.0.2.1/', {cache: 'no-store'}); return 'reached'; }"
            " catch (error) { return error.name; }"
        )
    finally:
        page.close()
    assert outcome == "TypeError"  # a network error (fetch's only kind), before any answer
