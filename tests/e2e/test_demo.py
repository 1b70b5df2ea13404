"""The demo pages driven like a person: connect, speak, listen, interrupt, type, use a tool.

The pages run ``RealtimeSession``; what they show (voice state, microphone level, latency, bubbles
that keep what was heard) is checked against what the local server saw (``GET /_test/state``).

Two tests (each browser start and Python boot costs seconds): the PyScript page with a fake microphone
that speaks, and the plain Pyodide page with a refused microphone, a dead server URL and the beta
dialect. What the page shows is checked against what the local server saw (``GET /_test/state``).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from demo_page import CrossedCancel, figures, server_state, wait_for_truncation
from playwright.sync_api import expect

from pyodide_realtime_server import AUDIO_REPLY, start_in_thread

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"  # gitignored
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BOOT_TIMEOUT_MS = 60_000  # Pyodide (and PyScript) start: about 4 s here, far more on a busy machine
STEP_TIMEOUT_MS = 20_000
READY = '#status[data-status="disconnected"], #status[data-status="failed"]'
CONNECTED = '#status[data-status="connected"]'
#: Interrupt only once this much of the reply was heard, so that the cut is clearly mid-reply.
HEARD_BEFORE_INTERRUPT_MS = 800
#: After the cut the player is silent: its position may only move by what was already in flight (and
#: by as much as the player warned a late stop went on).
MAX_PLAYED_AFTER_CUT_MS = 50
LONG_MESSAGE = (
    "Please read this back slowly, because it is a long sentence made for testing interruptions: "
    "one two three four five six seven eight nine ten, and the very last word is pineapple"
)


#: Every value the meter shows while the mute button is pressed (a <meter>'s value is its attribute).
METER_WHILE_MUTED = """
window.meterWhileMuted = [];
addEventListener("DOMContentLoaded", () => new MutationObserver(() => {
  if (document.getElementById("mute").getAttribute("aria-pressed") === "true") {
    window.meterWhileMuted.push(document.getElementById("mic-level").value);
  }
}).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["value", "aria-pressed"] }));
"""


#: Every URL the page fetched, in order.
RESOURCES = "performance.getEntriesByType('resource').map((e) => e.name)"


def keep_screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def received_events(server: Any) -> list[dict[str, Any]]:
    return [event for connection in server_state(server)["connections"] for event in connection["received"]]


def record_foreign_requests(page: Any, server: Any) -> list[str]:
    """Every request the page makes elsewhere than the local server (the pages must work offline)."""
    foreign: list[str] = []

    def check(request: Any) -> None:
        if not request.url.startswith((server.url, "data:", "blob:")):
            foreign.append(request.url)

    page.on("request", check)
    return foreign


def assert_fits_the_screen(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide: it scrolls sideways"


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_pyscript_page_voice_interrupt_and_tool_call(browser_with_mic: Any, demo_server: Any, timing_figure: Any) -> None:
    demo_server.reset()
    page = browser_with_mic.new_page(viewport=DESKTOP)
    page.add_init_script(METER_WHILE_MUTED)
    foreign = record_foreign_requests(page, demo_server)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    late_stops: list[float] = []
    page.on("console", lambda m: late_stops.extend(float(x) for x in re.findall(r"a stop landed ([\d.]+) ms after", m.text)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    try:
        page.goto(demo_server.url + "index.html")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
        assert page.get_attribute("#status", "data-status") == "disconnected"
        assert page.input_value("#server-url") == demo_server.ws_url  # from /demo-config.json
        assert page.is_hidden("#boot") and page.is_hidden("#server-url")  # loaded; the URL waits under Advanced
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "off")
        # Pyodide loaded the packages from the lock while it booted: PyScript's default path (micropip
        # fetched and run after the boot) costs a second or more before the page is ready.
        assert not [url for url in page.evaluate(RESOURCES) if "/micropip-" in url]

        # Connect; the fake microphone says one sentence, the server's VAD ends the turn, the model answers aloud.
        clicked = time.monotonic()
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        # The meter moves with the voice; the state goes listening -> thinking -> speaking.
        page.wait_for_function("() => document.getElementById('mic-level').value > 0.05", timeout=STEP_TIMEOUT_MS)
        keep_screenshot(page, "pyscript-desktop-listening")
        expect(page.locator('#voice-state[data-state="speaking"]')).to_have_text("Speaking")
        # The server transcribes with PocketSphinx: some words, not necessarily the ones espeak-ng said.
        expect(page.locator("#transcript li.turn.user").first).to_have_text(re.compile(r"^You\W*[A-Za-z]"))
        first_reply = page.locator("#transcript li.turn.assistant").first
        expect(first_reply).to_contain_text(AUDIO_REPLY)
        expect(page.locator("#latency")).to_have_text(re.compile(r"^Last reply began \d+ ms after you stopped speaking$"))
        latency_ms = int(re.findall(r"\d+", page.inner_text("#latency"))[0])
        # (The server's recognizer takes its time on a busy machine: the figure is bounded by what passed since Connect.)
        assert 0 < latency_ms < (time.monotonic() - clicked) * 1000
        # Every frame of the reply is played (heard == received), not just queued.
        page.wait_for_function(
            "(id) => { const d = document.getElementById('item-' + id).dataset;"
            " return +d.audioMs > 1000 && Math.abs(+d.heardMs - +d.audioMs) < 5; }",
            arg=first_reply.get_attribute("id").removeprefix("item-"),
            timeout=STEP_TIMEOUT_MS,
        )
        connection = server_state(demo_server)["connections"][0]
        assert (connection["dialect"], connection["auth"]) == ("ga", "ephemeral")
        assert "input_audio_buffer.speech_stopped" in connection["sent_types"]
        assert connection["received"][0]["session"]["tools"][0]["name"] == "get_weather"

        # Mute (the file loops; no second sentence): the meter shows 0 from the moment the button is pressed.
        page.click("#mute")
        expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "muted")
        expect(page.locator("#voice-state")).to_have_text("Muted")
        # Ask for a long reply and cut it mid-way with the button. Typed: the latency line says nothing of it.
        page.fill("#message", LONG_MESSAGE)
        page.press("#message", "Enter")
        expect(page.locator("#transcript li.turn.user .text").nth(1)).to_have_text(LONG_MESSAGE)
        expect(page.locator("#latency")).to_be_empty()
        reply = page.locator("#transcript li.turn.assistant").nth(1)
        expect(reply).to_contain_text("You said:")
        item_id = reply.get_attribute("id").removeprefix("item-")
        page.wait_for_function(
            "([id, ms]) => +document.getElementById('item-' + id).dataset.heardMs >= ms",
            arg=[item_id, HEARD_BEFORE_INTERRUPT_MS],
            timeout=STEP_TIMEOUT_MS,
        )
        heard_before = float(figures(page, item_id)["heardMs"])
        page.click("#interrupt")
        page.wait_for_function("(id) => 'cutMs' in document.getElementById('item-' + id).dataset", arg=item_id)
        truncation = wait_for_truncation(demo_server, item_id)
        cut_ms = truncation["audio_end_ms"]
        # The server cut the item where the page's player stopped, and the bubble records it...
        assert cut_ms == int(figures(page, item_id)["cutMs"])
        # (The page's figures are drawn once per frame and a click takes its time on a busy machine: how far
        # the cut came past the figure read just before the click is a figure, not a bound.)
        assert heard_before <= cut_ms
        timing_figure("the cut past the figure read before the click", f"{cut_ms - heard_before:.0f} ms")
        # ...which is mid-reply: less than the audio the model had generated, and the response was cancelled first.
        assert cut_ms < truncation["audio_available_ms"]
        types = [event["type"] for event in received_events(demo_server)]
        assert "response.cancel" in types
        assert types.index("response.cancel") < types.index("conversation.item.truncate")
        # The player went silent at the cut (the state leaves "speaking" with the bubble's last figure), and
        # the bubble says what was heard (the rest, if any, greyed).
        page.wait_for_selector('#voice-state:not([data-state="speaking"])')
        heard_after = float(figures(page, item_id)["heardMs"])
        assert abs(heard_after - cut_ms) <= MAX_PLAYED_AFTER_CUT_MS + max(late_stops, default=0.0), late_stops
        expect(reply).to_have_class(re.compile(r"\binterrupted\b"))
        heard_text = reply.locator(".text").inner_text()
        assert heard_text.startswith("You said:") and "pineapple" not in heard_text
        assert LONG_MESSAGE.startswith(heard_text.removeprefix("You said: ").rstrip())
        unheard = reply.locator(".unheard").inner_text()
        assert (heard_text + " " + unheard).removeprefix("You said: ").strip() in LONG_MESSAGE
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "muted")

        # A tool call: the model asks for get_weather, the page's Python answers, the model speaks the result.
        page.fill("#message", "What's the weather in Paris?")
        page.press("#message", "Enter")
        tool = page.locator("#transcript li.turn.tool").first
        expect(tool).to_contain_text('get_weather({"location": "Paris"})')
        expect(tool).to_contain_text('"forecast":"sunny"')
        expect(page.locator("#transcript li.turn.assistant").last).to_contain_text("The get_weather tool says:")
        outputs = [
            json.loads(event["item"]["output"])
            for event in received_events(demo_server)
            if event["type"] == "conversation.item.create" and event["item"]["type"] == "function_call_output"
        ]
        assert outputs == [{"location": "Paris", "forecast": "sunny", "temperature_c": 23}]
        assert page.is_hidden("#error"), page.inner_text("#error")
        assert page_errors == []
        assert foreign == []
        # Not a frame of the meter moved while the button said muted.
        shown = page.evaluate("window.meterWhileMuted")
        assert shown and set(shown) == {0}, shown

        keep_screenshot(page, "pyscript-desktop")
        # Hung up, the mute button is back to what a new connection starts with: the microphone on.
        page.click("#hang-up")
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "off")
        expect(page.locator("#mute")).to_have_attribute("aria-pressed", "false")
        expect(page.locator("#mute")).to_have_text("Mute")
        page.set_viewport_size(PHONE)
        assert_fits_the_screen(page)
    finally:
        keep_screenshot(page, "pyscript-phone")
        page.close()


def test_a_spoken_question_ends_in_a_tool_call_shown_in_the_page(browser_asking: Any, demo_server: Any) -> None:
    # The fake microphone asks "What is the weather in Paris?": the server's VAD ends the turn, its
    # recognizer hears "weather", the model calls get_weather, and the page's Python answers it.
    demo_server.reset()
    page = browser_asking.new_page(viewport=DESKTOP)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    try:
        page.goto(demo_server.url + "index.html")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        question = page.locator("#transcript li.turn.user").first
        expect(question).to_contain_text("weather")  # what the server heard, as the user's bubble shows it
        tool = page.locator("#transcript li.turn.tool").first
        expect(tool).to_contain_text("get_weather(")
        expect(tool).to_contain_text('"forecast":"sunny"')  # answered by the page's own function
        expect(page.locator("#transcript li.turn.assistant").last).to_contain_text("The get_weather tool says:")
        spoken = [e for e in received_events(demo_server) if e["type"] in ("input_audio_buffer.append", "conversation.item.create")]
        assert not any(e["type"] == "conversation.item.create" and e["item"]["type"] == "message" for e in spoken)  # not typed
        assert sum(e["type"] == "input_audio_buffer.append" for e in spoken) >= 10
        assert page.is_hidden("#error"), page.inner_text("#error")
        assert page_errors == []
        keep_screenshot(page, "pyscript-spoken-tool-call")
    finally:
        page.close()


def test_pyodide_page_errors_beta_dialect_and_text(browser_mic_denied: Any, demo_server: Any) -> None:
    demo_server.reset()
    context = browser_mic_denied.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    foreign = record_foreign_requests(page, demo_server)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    error = page.locator("#error")
    try:
        page.goto(demo_server.url + "pyodide.html")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
        assert page.get_attribute("#status", "data-status") == "disconnected"
        assert page.input_value("#server-url") == demo_server.ws_url
        # Every wheel was asked for while Pyodide booted, not after it (loadPyodide's packages).
        booted = page.evaluate("performance.getEntriesByName('pyodide-loaded')[0].startTime")
        wheels = page.evaluate("performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.whl')).map((e) => e.startTime)")
        assert wheels and max(wheels) < booted, (wheels, booted)

        # A server that is gone: a clear message, and the page is ready to try again.
        page.click("#advanced summary")
        page.fill("#server-url", f"ws://127.0.0.1:{free_port()}/v1/realtime")
        page.click("#connect")
        expect(error).to_be_visible()
        expect(error).to_have_attribute("data-kind", "connection")
        expect(error.locator(".message")).to_contain_text("Could not connect")
        expect(error.locator(".message")).to_contain_text("Check that the server is running")
        expect(page.locator("#status")).to_have_attribute("data-status", "disconnected")
        expect(page.locator("#connect")).to_be_enabled()

        # The beta dialect, chosen in the page; the microphone is refused, so the page says so and typing works.
        page.fill("#server-url", demo_server.ws_url)
        page.select_option("#dialect", "beta")
        crossed = CrossedCancel()
        page.route_web_socket(re.compile(r"/v1/realtime"), crossed.route)
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        expect(error).to_have_attribute("data-kind", "microphone")
        expect(error.locator(".message")).to_contain_text("The microphone is off")
        expect(error.locator(".message")).to_have_text(
            "The microphone is off: the browser did not allow it. You can still type; to talk, allow the microphone "
            "for this page, then Hang up and Connect."
        )
        expect(error.locator(".details")).to_contain_text("denied")  # the library's words, folded
        # They say what to do, and the session's way back: not a call that a session's user never makes.
        details = error.locator(".details").text_content() or ""  # folded: its text, not what shows
        assert "then ask for it again" in details and "close this session and connect a new one" in details, details
        assert "start()" not in details, details
        expect(page.locator("#error-details")).to_be_visible()
        expect(page.locator("#mute")).to_be_disabled()
        # Not the green "Listening": nobody hears the person.
        expect(page.locator("#voice-state")).to_have_attribute("data-state", "no-mic")
        expect(page.locator("#voice-state")).to_have_text("Microphone off")
        connection = server_state(demo_server)["connections"][-1]
        assert (connection["dialect"], connection["model"], connection["auth"]) == ("beta", "gpt-4o-realtime-preview", "ephemeral")

        # Interrupt just as the server sent the last of the reply (its response.done held back until the
        # cancel went out): the server answers response_cancel_not_active; the cut happens, and the
        # banner still says what the person can act on (the microphone), not the crossed cancel.
        crossed.armed = True
        # A reply of about 8 s: sent at twice real time, half of it is still to play when the last of it
        # was sent, so the press lands inside the reply however slowly this machine runs the steps.
        message = "hello from plain Pyodide, a message long enough that the reply still plays when the interrupt comes"
        page.fill("#message", message)
        page.click("#send")
        expect(page.locator("#transcript li.turn.user .text").first).to_have_text(message)
        reply = page.locator("#transcript li.turn.assistant").first
        expect(reply.locator(".text")).to_have_text(f"You said: {message}")
        page.wait_for_function("() => +document.querySelector('#transcript li.turn.assistant').dataset.heardMs > 500")
        for _ in range(STEP_TIMEOUT_MS // 20):  # until the server sent all of it (Playwright's events run meanwhile)
            if crossed.held:
                break
            page.wait_for_timeout(20)
        assert crossed.held, "the server never finished the reply"
        page.click("#interrupt")
        expect(reply).to_have_attribute("data-cut-ms", re.compile(r"^\d+$"))
        for _ in range(STEP_TIMEOUT_MS // 50):  # the cancel reaches the server through this process's route
            errors = server_state(demo_server)["connections"][-1]["errors"]
            if errors:
                break
            page.wait_for_timeout(50)
        assert [e.get("code") for e in errors] == ["response_cancel_not_active"], errors
        # The server's answer reached the page before the reply to a later message: the library knows it
        # as the answer to its own cancel, so no banner says anything of it.
        page.fill("#message", "after the cut")
        page.click("#send")
        expect(page.locator("#transcript")).to_contain_text("You said: after the cut", timeout=STEP_TIMEOUT_MS)
        expect(error).to_have_attribute("data-kind", "microphone")
        assert_fits_the_screen(page)

        # Hanging up is not an error (and clears the microphone's).
        page.click("#hang-up")
        expect(page.locator("#status")).to_have_attribute("data-status", "disconnected")
        expect(error).to_be_hidden()

        # A server that goes away mid-conversation: a sentence that says what happened and what to do;
        # the library's words under "Details".
        dying = start_in_thread()
        # The page mints its key at its own server: mint it at the dying one instead (as a page of its own).
        page.route("**/v1/realtime/client_secrets", lambda route: route.fulfill(response=route.fetch(
            url=dying.url + "v1/realtime/client_secrets", headers={**route.request.headers, "origin": dying.url.rstrip("/")})))
        try:
            page.fill("#server-url", dying.ws_url)
            page.click("#connect")
            page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        finally:
            dying.stop()
        expect(page.locator("#status")).to_have_attribute("data-status", "disconnected")
        expect(error).to_have_attribute("data-kind", "connection")
        expect(error.locator(".message")).to_have_text(
            "The connection to the server was lost. Check that the server is still running, then press Connect to start again."
        )
        expect(error.locator(".details")).to_contain_text("closed unexpectedly")
        expect(page.locator("#connect")).to_be_enabled()
        assert page_errors == []
        assert foreign == []
    finally:
        keep_screenshot(page, "pyodide-phone")
        context.close()


#: Holds every getUserMedia call until the test calls ``window.openMicrophone()`` (a person who takes
#: their time with the permission prompt), and keeps the streams so that the test can see their tracks.
SLOW_MICROPHONE_PROMPT = """
window.micStreams = [];
window.micAsked = false;
const prompt = new Promise((resolve) => { window.openMicrophone = resolve; });
const realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  window.micAsked = true;
  await prompt;
  const stream = await realGetUserMedia(constraints);
  window.micStreams.push(stream);
  return stream;
};
"""
NO_AUDIO_DEVICE = "() => { window.AudioContext = function () { throw new DOMException('no audio device', 'NotSupportedError'); }; }"


def test_hang_up_during_the_microphone_prompt_and_a_failing_audio_start(browser_with_mic: Any, demo_server: Any) -> None:
    demo_server.reset()
    page = browser_with_mic.new_page(viewport=DESKTOP)
    page.add_init_script(SLOW_MICROPHONE_PROMPT)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    error = page.locator("#error")
    try:
        page.goto(demo_server.url + "pyodide.html")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)

        # Connected; the microphone prompt is still open when the person hangs up.
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        page.wait_for_function("() => window.micAsked")
        page.click("#hang-up")
        expect(page.locator("#status")).to_have_attribute("data-status", "disconnected")
        # Then they allow the microphone: the page must release it at once, not record for a dead connection.
        page.evaluate("() => window.openMicrophone()")
        page.wait_for_function(
            "() => window.micStreams.length === 1"
            " && window.micStreams[0].getTracks().every((track) => track.readyState === 'ended')"
        )
        expect(page.locator("#mute")).to_be_disabled()
        expect(error).to_be_hidden()

        # No audio device at all: the page says so (it does not fail silently), and typing still works.
        page.evaluate(NO_AUDIO_DEVICE)
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        expect(error).to_be_visible()
        expect(error).to_have_attribute("data-kind", "audio")
        expect(error).to_contain_text("no audio device")
        page.fill("#message", "typing still works")
        page.click("#send")
        expect(page.locator("#transcript li.turn.assistant .text").first).to_have_text("You said: typing still works")
        assert page_errors == []
    finally:
        keep_screenshot(page, "pyodide-hang-up-during-prompt")
        page.close()
