"""Autoplay policies as users meet them: Firefox (its default) and WebKit keep audio suspended until
the page is clicked. Each test has a page of its own that nobody clicked yet (``unclicked_page``;
WebKit has one window, so such a page cannot share a module with the ``page`` fixture's)."""

from __future__ import annotations

import pytest

from engines import Engine, Page, in_page


@in_page
async def _player_before_and_after_a_click(phase):
    """Phase "create": an AudioPlayer on a page nobody clicked; phase "resume": resume it (after a click)."""
    import asyncio

    import js
    from page_helpers import kept_logs

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._context import RESUME_TIMEOUT_S

    if phase == "create":
        clicked = bool(js.navigator.userActivation.hasBeenActive)
        start = js.performance.now()
        with kept_logs() as logged:
            js.kept_player = player = await AudioPlayer.create()
        waited_ms = js.performance.now() - start
        return clicked, str(player.context.state), waited_ms, RESUME_TIMEOUT_S, logged
    player = js.kept_player
    resumed = await player.resume(timeout=5)
    player.play(bytes(4800), item_id="a")  # 100 ms: it plays now
    player.finish("a")
    heard = await asyncio.wait_for(player.wait_ended("a"), 10)
    player.close()
    return resumed, heard.heard_ms


def test_a_player_made_before_any_click_waits_and_says_what_to_do_then_plays_after_one(
    engine: Engine, unclicked_page: Page
) -> None:
    # Firefox's default and WebKit keep an AudioContext suspended until the page is clicked: create()
    # waits a bounded time, warns with what to do, and the player plays once resumed after a click.
    clicked, state, waited_ms, timeout_s, logged = _player_before_and_after_a_click(unclicked_page, "create")
    if engine.autoplay_needs_gesture:
        assert clicked is False and state == "suspended"
        assert timeout_s * 1000 - 50 <= waited_ms <= timeout_s * 1000 + 2000  # bounded: never a hang
        assert [m for m in logged if "suspended" in m and "player.resume()" in m and "click" in m], logged
    else:  # Chromium here runs with autoplay allowed (a flag; Playwright's pages count as activated)
        assert state == "running" and logged == []
    unclicked_page.click()
    resumed, heard_ms = _player_before_and_after_a_click(unclicked_page, "resume")
    assert resumed is True
    assert heard_ms == pytest.approx(100.0)


@in_page
async def _voice_before_any_click():
    import asyncio

    import js
    from page_helpers import kept_logs

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.audio import start_voice

    clicked = bool(js.navigator.userActivation.hasBeenActive)
    transport = OpenAIRealtimeWebSocket(url="ws://127.0.0.1:9/unused")  # never connected: chunks are dropped
    with kept_logs() as logged:
        voice = await start_voice(transport, chunk_ms=40)
        await asyncio.sleep(0.3)
    result = clicked, str(voice.player.context.state), str(voice.microphone._context.state), voice.microphone.chunks, logged
    voice.close()
    return result


def test_start_voice_before_any_click_plays_where_capturing_unlocks_audio_and_says_so_where_not(
    engine: Engine, unclicked_page: Page
) -> None:
    clicked, player, microphone, chunks, logged = _voice_before_any_click(unclicked_page)
    if engine.gesture_expires:  # WebKit: a page that captures may play
        assert clicked is False and (player, microphone) == ("running", "running") and chunks > 0, logged
    elif engine.autoplay_needs_gesture:  # Firefox: capturing unlocks nothing; both wait, and say what to do
        assert clicked is False and (player, microphone) == ("suspended", "suspended") and chunks == 0
        assert any("microphone" in m and "click handler" in m for m in logged), logged
        assert any("player.resume()" in m for m in logged), logged
    else:
        assert (player, microphone) == ("running", "running") and chunks > 0 and logged == []
