"""WebRTC from a Web Worker: there is no ``RTCPeerConnection`` there, so ``OpenAIRealtimeWebRTC``, and a
session asked for WebRTC, fail at once with an ``UnsupportedError`` that says why and what to do (run on
the page, or keep the WebSocket transport, whose audio the worker bridges to the page). Run in a real
PyScript worker of a cross-origin isolated page, as a user's worker page would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_readme_worker import isolated_server, run_page, worker_page

WORKER_CODE = """
import json
from pyscript import window
from pyodide_realtime import OpenAIRealtimeWebRTC, RealtimeAgent, RealtimeSession, UnsupportedError

words = {"has_peer_connection": hasattr(__import__("js"), "RTCPeerConnection")}
try:
    OpenAIRealtimeWebRTC()
except UnsupportedError as exc:
    words["transport"] = str(exc)
try:
    RealtimeSession(RealtimeAgent(name="Assistant"), transport="webrtc")
except UnsupportedError as exc:
    words["session"] = str(exc)
window.document.body.dataset.result = json.dumps(words)
"""


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    web: Path = tmp_path_factory.mktemp("webrtc-worker")
    (web / "webrtc-worker.html").write_text(worker_page(WORKER_CODE, check=""))
    with isolated_server(web) as server:
        yield server


def test_webrtc_in_a_worker_says_why_not_and_what_to_use(browser_mic_denied: Any, worker_server: Any) -> None:
    result, error = run_page(browser_mic_denied, worker_server.url + "webrtc-worker.html")
    assert error == "" and result is not None, error[-1500:]
    assert result["has_peer_connection"] is False  # the reason: a worker has none (Chromium's page has one)
    for said in (result.get("transport"), result.get("session")):
        assert said is not None, result  # both refused at construction, before anything was opened
        assert "RTCPeerConnection" in said and "a Web Worker" in said, said
        assert "WebSocket transport" in said, said  # what to do instead
