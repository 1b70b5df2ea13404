"""The demo's WebSocket / WebRTC switch under Advanced, driven like a person: pick WebRTC, connect, speak
(the fake microphone's sentence, as a track), get the spoken reply, type a question that needs the tool."""

from __future__ import annotations

from typing import Any

from demo_page import server_state
from playwright.sync_api import expect

from pyodide_realtime_server import AUDIO_REPLY

BOOT_TIMEOUT_MS = 60_000
STEP_TIMEOUT_MS = 20_000
READY = '#status[data-status="disconnected"], #status[data-status="failed"]'
CONNECTED = '#status[data-status="connected"]'


def test_the_demo_talks_over_webrtc_when_switched_to_it(browser_with_mic: Any, demo_server: Any) -> None:
    demo_server.reset()
    page = browser_with_mic.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    try:
        page.goto(demo_server.url + "index.html")
        page.wait_for_selector(READY, timeout=BOOT_TIMEOUT_MS)
        assert page.input_value("#transport") == "websocket"  # the default
        page.click("#advanced summary")
        page.select_option("#transport", "webrtc")
        page.click("#connect")
        page.wait_for_selector(CONNECTED, timeout=STEP_TIMEOUT_MS)
        # The microphone's sentence goes up as a track; the server's VAD ends the turn; the reply is spoken.
        expect(page.locator("#transcript li.turn.assistant").first).to_contain_text(AUDIO_REPLY)
        page.fill("#message", "What's the weather in Paris?")
        page.press("#message", "Enter")
        expect(page.locator("#transcript li.turn.tool").first).to_contain_text('"forecast":"sunny"')
        expect(page.locator("#transcript li.turn.assistant").last).to_contain_text("The get_weather tool says:")
        (connection,) = server_state(demo_server)["connections"]
        assert connection["path"] == "/v1/realtime/calls"  # the offer went to the WebRTC endpoint
        received = [event["type"] for event in connection["received"]]
        assert "input_audio_buffer.append" not in received  # the voice went as a track, not as events
        page.click("#hang-up")
        page.wait_for_selector(READY, timeout=STEP_TIMEOUT_MS)
        assert page_errors == []
    finally:
        page.close()
