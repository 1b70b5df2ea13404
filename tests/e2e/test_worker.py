"""Voice from a Web Worker: the page hosts the worklets, the worker's Python drives them over ports.

Two pages: a plain Pyodide worker started from a Blob (as PyScript starts its own: a ``blob:`` base URL),
on a page that adds the README's few lines (``HOST_SNIPPET``), whose Python plays audio, reads the heard
position, interrupts exactly, captures the fake microphone and holds a voice conversation with the
local server (``start_voice``, key minted at a URL from ``page_url``); and the PyScript worker demo
(``worker.html``), used like the other demos.

PyScript's synchronous ``window`` in a worker needs SharedArrayBuffer, which a browser offers to a
cross-origin isolated page (``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``, which the local server sends for worker.html). There the
worker reads the worklet's position from shared memory; the plain worker's test page is not isolated,
so there the position is inferred from the worklet's reports: both ways are exercised.
"""

from __future__ import annotations

import json
import re
import threading
import wave
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import launch  # this folder's (imported last, so "conftest" while this module is collected)
from demo_page import CLICK_MARKS, SentFrames, figures, latency_summary, wait_for_truncation
from playwright.sync_api import expect

from chromium import GRANT_MEDIA_FLAG
from pyodide_realtime.audio import HOST_SNIPPET
from pyodide_realtime_server import AUDIO_REPLY

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
PYODIDE_DIST = ROOT / "dist" / "pyodide"
PYSCRIPT_DIST = ROOT / "dist" / "pyscript"
SERVER_PACE = 2.0  # as the demo tests' server: faster than real time, as the real API streams
BOOT_TIMEOUT_MS = 90_000  # Pyodide starts inside the worker: a few seconds, far more on a busy machine
STEP_TIMEOUT_MS = 30_000
#: Interrupt presses in the worker demo: the first once FIRST_CUT_MS of its reply was heard, each next
#: one CUT_STEP_MS further in (past half the reply the server, twice as fast as real time, is done).
PRESSES = 10
FIRST_CUT_MS = 300
CUT_STEP_MS = 400
DOUBLE_CLICK_PRESS = 3
NOTHING_PLAYING_PRESS = 6
#: How much of a tone the plain worker hears before it interrupts it.
HEARD_IN_WORKER_MS = 300
SHORT_MESSAGE = "short one"
LONG_MESSAGE = "Please read this back slowly: one two three four five six seven eight nine ten, and then pineapple"
#: What worker.html must be served with (the local server's job; the last test checks they suffice).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
TEST_FOLDER = "/_worker_test"
#: Microphone chunks (40 ms each) a window of silence lasts, and how many windows a page may take to settle
#: after Connect (its last server events) before one of them must pass without a frame.
SILENT_CHUNKS = 25
SETTLE_WINDOWS = 5
#: Counts, on the page, the worker's synchronous calls into it: PyScript's worker waits (Atomics.wait) for
#: each DOM access until the page answered and woke it (Atomics.notify), once per round trip.
SYNC_CALLS = """
window.syncCalls = 0;
const notify = Atomics.notify;
Atomics.notify = function (...args) { window.syncCalls++; return notify.apply(this, args); };
"""

WORKER_PAGE = f"""<!doctype html><meta charset="utf-8"><title>worker audio</title>
<script type="module">
  // From a Blob, as PyScript starts its workers: the worker's base URL is a blob: one.
  const source = await (await fetch("./worker-test.mjs")).text();
  const worker = new Worker(URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }})), {{ type: "module" }});
  worker.addEventListener("message", (e) => {{
    if (e.data !== "add-the-helper") return;
    // The README's lines, added only now: the worker's first try went unanswered.
    {HOST_SNIPPET}
    worker.postMessage("added");
  }});
  worker.addEventListener("message", (e) => {{
    if (e.data?.type === "result") window.result = e.data.value;
    if (e.data?.type === "failed") window.failure = e.data.message;
  }});
</script>"""

WORKER_SCRIPT = """const origin = self.location.origin;  // a blob: URL cannot resolve "/pyodide/..."
try {
  const { loadPyodide } = await import(origin + "/pyodide/pyodide.mjs");
  const pyodide = await loadPyodide({ indexURL: origin + "/pyodide/" });
  await pyodide.loadPackage("pyodide-realtime");
  const code = await (await fetch(origin + "/_worker_test/worker-test.py")).text();
  postMessage({ type: "result", value: await pyodide.runPythonAsync(code) });
} catch (error) {
  postMessage({ type: "failed", message: String(error && error.stack || error) });
}
"""

WORKER_PYTHON = r'''
import array, asyncio, json, math
import js
from pyodide.http import pyfetch
from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime.audio import AudioPlayer, Microphone, page_url, start_voice

from pyodide.ffi import create_proxy
from pyodide_realtime.audio import _shim
from pyodide_realtime.errors import UnsupportedError

result = {"in_worker": not hasattr(js, "window")}

# 0. No helper on the page yet: a clear error that says what to add, then it works once it is there.
_shim.HANDSHAKE_TIMEOUT_S = 1.0  # the default waits 5 s
try:
    await AudioPlayer.create()
except UnsupportedError as exc:
    result["no_helper"] = str(exc)
added = asyncio.get_running_loop().create_future()
js.addEventListener("message", create_proxy(lambda e: added.done() or added.set_result(str(e.data))))
js.postMessage("add-the-helper")
await added
def tone(ms, freq=300.0):
    return array.array("h", (int(8000 * math.sin(2 * math.pi * freq * i / 24000)) for i in range(24 * ms))).tobytes()

# 1. The player: audio plays, the heard position is readable here, an interruption is exact.
player = await AudioPlayer.create()
result["rate"] = player.sample_rate
loop = asyncio.get_running_loop()
started = loop.create_future()
player.on_item_started = lambda item_id, index: started.done() or started.set_result(loop.time())
start = loop.time()
player.play(tone(1500), item_id="a", content_index=0, audio_format="pcm16")
await asyncio.wait_for(started, 10)
async def heard_at_least(ms):  # the worklet's position, read here as it grows (no fixed wait)
    while (player.heard_ms("a") or 0.0) < ms:
        await asyncio.sleep(0.01)
    return player.heard_ms("a")
result["heard"] = await asyncio.wait_for(heard_at_least(HEARD_MS), 10)
result["elapsed_ms"] = (loop.time() - start) * 1000
position = player.interrupt()
stopped = await player._last_stop
result["interrupted_at"] = position.heard_ms
result["exact"] = await player.query_heard_ms("a")
result["late"] = stopped.overshoot
player.play(tone(300), item_id="b", content_index=0, audio_format="pcm16")
player.finish("b")
ended = await asyncio.wait_for(player.wait_ended("b"), 5)
result["b"] = [ended.heard_ms, player.finished("b")]
player.close()

# 2. The microphone: chunks of the asked length come to the worker.
mic = await Microphone.create(chunk_ms=40, echo_cancellation=False, noise_suppression=False, auto_gain_control=False)
chunks, stopped_at = [], None
async for chunk in mic:
    chunks.append(chunk)
    if len(chunks) == 40:
        mic.stop()
        stopped_at = mic.chunks  # captured by then: a reader that trailed still gets every one of them
result["mic_chunks"] = [len(chunks), stopped_at, sorted({len(c) for c in chunks}), mic.device_rate]
result["mic_peak"] = max(max(array.array("h", c)) for c in chunks)

# 3. A voice conversation: a key minted at a URL relative to the page, start_voice, a spoken reply.
result["page_url"] = page_url("./next-page.html")
transport = OpenAIRealtimeWebSocket()
async def mint():
    body = json.dumps({"session": {"type": "realtime", "model": transport.current_model}})
    answer = await pyfetch(page_url("/v1/realtime/client_secrets"), method="POST", headers={"Content-Type": "application/json"}, body=body)
    return (await answer.json())["value"]
ended = []
done = asyncio.Event()
transport.on("audio_transcript_delta", lambda e: result.setdefault("transcript", []).append(e.delta))
# No turn detection: the speech file would start a turn too, and only the typed message may get a reply
# (a mute after start_voice comes after the microphone has streamed a while: start_voice starts it first).
await transport.connect(api_key=mint, url=f"{js.WS_URL}?model={transport.current_model}",
                        initial_session_config={"turn_detection": None})
voice = await start_voice(transport, chunk_ms=40)
def on_ended(item_id, content_index, heard_ms, reason):
    ended.append([heard_ms, reason])
    done.set()
voice.player.on_item_ended = on_ended
transport.send_message("hello from the worker")
await asyncio.wait_for(done.wait(), 20)
result["reply"] = ended
result["voice_chunks"] = voice.microphone.chunks
voice.close()
transport.close()
json.dumps(result)
'''


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local server as the demos use it, plus a folder with the plain worker's test page."""
    from pyodide_realtime_server import start_in_thread

    folder: Path = tmp_path_factory.mktemp("worker")
    server = start_in_thread(
        web_root=WEB, mounts={"/pyodide": PYODIDE_DIST, "/pyscript": PYSCRIPT_DIST, TEST_FOLDER: folder}, pace=SERVER_PACE
    )
    (folder / "worker-test.html").write_text(WORKER_PAGE)
    (folder / "worker-test.mjs").write_text(WORKER_SCRIPT)
    (folder / "worker-test.py").write_text(
        f"import js\njs.WS_URL = {json.dumps(server.ws_url)}\nHEARD_MS = {HEARD_IN_WORKER_MS}\n" + WORKER_PYTHON
    )
    try:
        yield server
    finally:
        server.stop()


def test_a_plain_pyodide_worker_plays_interrupts_captures_and_talks(browser_with_mic: Any, worker_server: Any) -> None:
    demo_server = worker_server
    page = browser_with_mic.new_page()
    page.goto(demo_server.url + TEST_FOLDER.lstrip("/") + "/worker-test.html")
    page.wait_for_function("window.result || window.failure", timeout=BOOT_TIMEOUT_MS * 2)
    failure = page.evaluate("window.failure")
    assert failure is None, (failure[-400:], demo_server.state()["rejected"])
    r = json.loads(page.evaluate("window.result"))
    assert r["in_worker"] is True
    assert "the page must host the worker's audio" in r["no_helper"] and "serveWorker(e.data.port, url)" in r["no_helper"]
    assert r["rate"] in (44100, 48000)
    # The heard position, read in the worker, grows with the playback and never runs ahead of the clock...
    # (heard_ms promises where a stop would land: up to STOP_MARGIN_MS.worker, 60 ms, plus a render burst ahead)
    assert HEARD_IN_WORKER_MS <= r["heard"] < r["elapsed_ms"] + 100, r
    # ...and an interruption stops the sound exactly where it says.
    assert r["late"] == 0 and r["exact"] == r["interrupted_at"], r
    assert r["b"] == [300.0, True]  # played to its end: heard in full, finished
    # stop() ends `async for` after what was captured before it, and nothing captured after it comes (a
    # fresh clone's reader trailed by 4 chunks: 44 came, all captured before the stop).
    count, stopped_at, sizes, device_rate = r["mic_chunks"]
    assert count == stopped_at >= 40 and sizes == [1920] and device_rate in (44100, 48000)
    assert r["mic_peak"] > 1000  # the fake microphone's speech, not silence
    assert r["page_url"] == demo_server.url + "_worker_test/next-page.html"  # the page's base, not the worker's blob:
    [(heard_ms, reason)] = r["reply"]
    assert reason == "finished" and heard_ms > 500
    assert r["voice_chunks"] >= 5
    appended = [e for c in demo_server.state()["connections"] for e in c["received"] if e["type"] == "input_audio_buffer.append"]
    assert len(appended) >= 5


def test_the_pyscript_worker_demo_plays_the_reply_and_streams_the_microphone(
    browser_with_mic: Any, demo_server: Any
) -> None:
    demo_server.reset()
    page = browser_with_mic.new_page()
    page.add_init_script(CLICK_MARKS)
    sent = SentFrames(page)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    # The player's warning, from the worker, when a stop reached the audio thread after the position it had
    # promised (a starved machine): the sound went on that much past the cut.
    late_stops: list[float] = []
    page.on("console", lambda m: late_stops.extend(float(x) for x in re.findall(r"a stop landed ([\d.]+) ms after", m.text)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    page.goto(demo_server.url + "worker.html")
    assert page.evaluate("crossOriginIsolated") is True  # the local server's two headers, no browser flag
    page.wait_for_selector('#status[data-status="disconnected"], #status[data-status="failed"]', timeout=BOOT_TIMEOUT_MS)
    assert page.get_attribute("#status", "data-status") == "disconnected", page.text_content("#error")
    assert page.input_value("#server-url") == demo_server.ws_url  # /demo-config.json, fetched from the worker
    page.click("#connect")
    page.wait_for_selector('#status[data-status="connected"]', timeout=STEP_TIMEOUT_MS)
    # The fake microphone speaks; its audio goes from the page's worklet to the worker, then to the server,
    # and the meter moves with it.
    page.wait_for_function("() => document.getElementById('mic-level').value > 0.05")
    # The server transcribes with PocketSphinx: some words, not necessarily the ones espeak-ng said.
    expect(page.locator("#transcript li.turn.user").first).to_have_text(re.compile(r"^You\W*[A-Za-z]"))
    expect(page.locator("#transcript li.turn.assistant").first).to_contain_text(AUDIO_REPLY)
    # The reply's audio plays through the page's worklet, counted from the worker.
    first_id = page.locator("#transcript li.turn.assistant").first.get_attribute("id").removeprefix("item-")
    page.wait_for_function("(id) => +document.getElementById('item-' + id).dataset.heardMs > 500", arg=first_id)
    assert page.is_hidden("#error"), page.text_content("#error")
    appended = [e for c in demo_server.state()["connections"] for e in c["received"] if e["type"] == "input_audio_buffer.append"]
    assert len(appended) >= 10

    # Interrupt a long reply from the button, PRESSES times, each further into the reply (the later ones
    # after the server sent all of it: nothing left to cancel there), one of them a double click; and once
    # with nothing playing. Each press cuts its reply once, where the worker's player said; no banner.
    page.click("#mute")
    expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    latencies: list[float] = []
    cut_items: list[str] = []
    replies = page.locator("#transcript li.turn.assistant")
    for press in range(PRESSES):
        if press == NOTHING_PLAYING_PRESS:  # a reply played to its end: nothing to cut, nothing to cancel
            page.fill("#message", SHORT_MESSAGE)
            page.press("#message", "Enter")
            expect(replies).to_have_count(press + 2)
            short_id = replies.last.get_attribute("id").removeprefix("item-")
            page.wait_for_function(
                "(id) => { const d = document.getElementById('item-' + id).dataset; return +d.audioMs > 0 && d.heardMs === d.audioMs; }",
                arg=short_id,
            )
            page.wait_for_selector('#voice-state[data-state="muted"]')
            page.click("#interrupt")
        page.fill("#message", LONG_MESSAGE)
        page.press("#message", "Enter")
        reply = replies.nth(press + 1 + (press >= NOTHING_PLAYING_PRESS))
        expect(reply).to_contain_text("You said: Please")
        item_id = reply.get_attribute("id").removeprefix("item-")
        heard_before = FIRST_CUT_MS + press * CUT_STEP_MS
        page.wait_for_function(
            "([id, ms]) => +document.getElementById('item-' + id).dataset.heardMs >= ms", arg=[item_id, heard_before]
        )
        late_before = len(late_stops)
        latencies.append(sent.press_interrupt(page, double=press == DOUBLE_CLICK_PRESS))
        cut_items.append(item_id)
        page.wait_for_function("(id) => 'cutMs' in document.getElementById('item-' + id).dataset", arg=item_id)
        truncation = wait_for_truncation(demo_server, item_id)
        cut_ms = truncation["audio_end_ms"]
        assert cut_ms == int(figures(page, item_id)["cutMs"])  # the bubble records the server's cut
        # Within the reply: past what was heard at the press, and not past what the server had sent (all of it,
        # when a busy machine made the server fall behind the player).
        assert heard_before <= cut_ms <= truncation["audio_available_ms"], (press, truncation)
        # The player stopped at the cut: the state leaves "speaking" with the bubble's last figure, not a frame more.
        page.wait_for_selector('#voice-state:not([data-state="speaking"])')
        # (the cut is the position floored to a ms; the figure, the same position to 0.1 ms; past it only by
        # as much as the player warned a late stop went on)
        late_ms = max(late_stops[late_before:], default=0.0)
        assert cut_ms <= float(figures(page, item_id)["heardMs"]) <= cut_ms + 1 + late_ms, (press, late_stops)
        # The server answered the press (its answer to a cancel comes before the truncate's): no banner.
        assert page.is_hidden("#error"), (press, page.text_content("#error"))
    print(f"\nworker.html: {latency_summary(latencies)}")
    # Exactly one truncate per press, each for its own reply (none for the press with nothing playing,
    # one for the double click): what left the browser, and what the server saw.
    assert [t["item_id"] for _, t in sent.of_type("conversation.item.truncate")] == cut_items
    assert [t["item_id"] for t in demo_server.state()["truncations"]] == cut_items
    assert page_errors == []


class _IsolatedFiles(SimpleHTTPRequestHandler):
    """web/ with /pyodide and /pyscript from dist/, every response with the two isolation headers."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
                      ".wasm": "application/wasm", ".whl": "application/zip"}

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        for prefix, folder in (("/pyodide/", PYODIDE_DIST), ("/pyscript/", PYSCRIPT_DIST), ("/", WEB)):
            if path.startswith(prefix):
                return str(folder / path[len(prefix):])
        return str(WEB / "missing")

    isolated = True

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items() if self.isolated else ():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_two_headers_are_all_the_pyscript_worker_page_needs(playwright: Any) -> None:
    """Served with COOP/COEP (no browser flag), the page is isolated and PyScript's window works in the
    worker: the worker's Python writes the page's DOM. (No Realtime server here: the page says so.)"""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _IsolatedFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = launch(playwright)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/worker.html")
        assert page.evaluate("crossOriginIsolated") is True
        page.wait_for_selector('#status[data-status="disconnected"]', timeout=BOOT_TIMEOUT_MS)
        assert page.get_attribute("#error", "data-kind") == "config"  # no /demo-config.json on a static host
    finally:
        browser.close()
        server.shutdown()


class _PlainFiles(_IsolatedFiles):
    isolated = False


def test_without_the_headers_the_worker_page_says_what_the_server_must_send(playwright: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = launch(playwright)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/worker.html")
        page.wait_for_selector('#status[data-status="failed"]', timeout=STEP_TIMEOUT_MS)
        assert page.get_attribute("#error", "data-kind") == "isolation"
        assert "Cross-Origin-Embedder-Policy: require-corp" in page.text_content("#error")
    finally:
        browser.close()
        server.shutdown()


@pytest.fixture
def browser_in_silence(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    """Chromium whose fake microphone hears silence (exact zeros)."""
    wav = tmp_path / "silence.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(bytes(2 * 48000))
    browser = launch(playwright, GRANT_MEDIA_FLAG, f"--use-file-for-fake-audio-capture={wav}")
    try:
        yield browser
    finally:
        browser.close()


def demo_worker(page: Any) -> Any:
    """The worker that runs the demo's Python: its global scope holds ``demo`` (demo_app.py)."""
    [worker] = [w for w in page.workers if w.evaluate("typeof demo !== 'undefined'")]
    return worker


def silent_window(worker: Any) -> int:
    """Frames the demo drew while its microphone delivered SILENT_CHUNKS more chunks."""
    frames, chunks = worker.evaluate("[demo.frames, demo.session.voice.microphone.chunks]")
    while worker.evaluate("demo.session.voice.microphone.chunks") < chunks + SILENT_CHUNKS:
        worker.evaluate("new Promise((resolve) => setTimeout(resolve, 40))")  # a chunk's time, in the worker
    drawn: int = worker.evaluate("demo.frames") - frames
    return drawn


def test_the_worker_demo_draws_on_change_not_while_a_live_microphone_hears_silence(
    browser_in_silence: Any, demo_server: Any
) -> None:
    """Connected, the microphone live (not muted) and silent, nothing playing: the demo draws no frame,
    chunk after chunk (the meter would show 0 each time); a reply playing is drawn frame by frame, each
    frame one message to the page (no synchronous call into it), and the demo is still again once it ended;
    a click comes to the worker as a message, with no synchronous call either."""
    page = browser_in_silence.new_page()
    page.add_init_script(SYNC_CALLS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    page.goto(demo_server.url + "worker.html")
    page.wait_for_selector('#status[data-status="disconnected"]', timeout=BOOT_TIMEOUT_MS)
    page.click("#connect")
    expect(page.locator("#voice-state")).to_have_attribute("data-state", "listening")
    worker = demo_worker(page)
    assert worker.evaluate("demo.session.voice.microphone.muted") is False
    windows = [silent_window(worker) for _ in range(SETTLE_WINDOWS)]
    assert 0 in windows, windows  # once the connection's own events were drawn

    calls = page.evaluate("syncCalls")
    page.fill("#message", SHORT_MESSAGE)
    page.press("#message", "Enter")
    reply = page.locator("#transcript li.turn.assistant").first
    expect(reply).to_contain_text("You said: short one")
    # Sending reads the message box from the worker: the count sees the worker's synchronous calls.
    assert page.evaluate("syncCalls") > calls
    before, calls = worker.evaluate("demo.frames"), page.evaluate("syncCalls")
    item_id = reply.get_attribute("id").removeprefix("item-")
    # Played to its end, its underline drawn as it grew: frame after frame while it played.
    page.wait_for_function(
        "(id) => { const d = document.getElementById('item-' + id).dataset; return +d.audioMs > 0 && d.heardMs === d.audioMs; }",
        arg=item_id,
    )
    expect(page.locator("#voice-state")).to_have_attribute("data-state", "listening")
    drawn = worker.evaluate("demo.frames") - before
    assert drawn > 1
    # Painted from the worker without blocking it: not one synchronous call for all those frames.
    assert page.evaluate("syncCalls") == calls, (drawn, page.evaluate("syncCalls") - calls)
    windows = [silent_window(worker) for _ in range(SETTLE_WINDOWS)]
    assert 0 in windows, windows
    # A click reaches the worker as a message too: not one synchronous call to read the event.
    calls = page.evaluate("syncCalls")
    page.click("#mute")
    expect(page.locator("#voice-state")).to_have_attribute("data-state", "muted")
    assert page.evaluate("syncCalls") == calls
