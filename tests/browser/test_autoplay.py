"""Autoplay policies as users meet them: Firefox (its default) and WebKit keep audio suspended until
the page is clicked. The test has a page of its own that nobody clicked yet (``unclicked_page``;
WebKit has one window, so such a page cannot share a module with the ``page`` fixture's)."""

from __future__ import annotations

from typing import Any

import pytest

from engines import Engine, Page, in_page


@in_page
async def _before_a_click():
    """On a page nobody clicked: an AudioPlayer (kept for after the click), then start_voice."""
    import asyncio

    import js
    from page_helpers import kept_logs

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.audio import AudioPlayer, start_voice
    from pyodide_realtime.audio._context import RESUME_TIMEOUT_S

    async def _first_chunk(microphone):
        while microphone.chunks == 0:
            await asyncio.sleep(0.01)

    clicked = bool(js.navigator.userActivation.hasBeenActive)
    start = js.performance.now()
    with kept_logs() as player_logs:
        js.kept_player = player = await AudioPlayer.create()
    waited_ms = js.performance.now() - start
    player_state = str(player.context.state)
    transport = OpenAIRealtimeWebSocket(url="ws://127.0.0.1:9/unused")  # never connected: chunks are dropped
    with kept_logs() as voice_logs:
        voice = await start_voice(transport, chunk_ms=40)
        voice_states = str(voice.player.context.state), str(voice.microphone._context.state)
        # A running capture delivers: wait for its first chunk. A suspended context renders nothing, so
        # captures nothing: its count stays 0 however long one waits.
        if voice_states[1] == "running":
            await asyncio.wait_for(_first_chunk(voice.microphone), 10)
    chunks = voice.microphone.chunks
    voice.close()
    return dict(
        clicked=clicked, player_state=player_state, waited_ms=waited_ms, timeout_ms=RESUME_TIMEOUT_S * 1000,
        player_logs=player_logs, voice_states=voice_states, chunks=chunks, voice_logs=voice_logs,
    )


@in_page
async def _after_a_click():
    import asyncio

    import js

    player = js.kept_player
    resumed = await player.resume(timeout=5)
    player.play(bytes(4800), item_id="a")  # 100 ms: it plays now
    player.finish("a")
    heard = await asyncio.wait_for(player.wait_ended("a"), 10)
    player.close()
    return resumed, heard.heard_ms


def test_before_any_click_audio_waits_and_says_what_to_do_and_plays_after_one(
    engine: Engine, unclicked_page: Page, timing_figure: Any
) -> None:
    r = _before_a_click(unclicked_page)
    if engine.autoplay_needs_gesture:
        # An AudioPlayer stays suspended: create() waits a bounded time and warns with what to do.
        assert r["clicked"] is False and r["player_state"] == "suspended"
        # Bounded: create() came back (a hang would have failed the page's script) once its timeout passed.
        assert r["waited_ms"] >= r["timeout_ms"] - 50, r
        timing_figure("AudioPlayer.create() past its resume timeout", f"{r['waited_ms'] - r['timeout_ms']:+.0f} ms")
        assert [m for m in r["player_logs"] if "suspended" in m and "player.resume()" in m and "click" in m], r
    else:  # Chromium here runs with autoplay allowed (a flag; Playwright's pages count as activated)
        assert r["player_state"] == "running" and r["player_logs"] == []
    if engine.gesture_expires or not engine.autoplay_needs_gesture:
        # WebKit: a page that captures the microphone may play. Chromium: allowed anyway.
        assert r["voice_states"] == ("running", "running") and r["chunks"] > 0, r
    else:  # Firefox: capturing unlocks nothing; both wait, and say what to do
        assert r["voice_states"] == ("suspended", "suspended") and r["chunks"] == 0, r
        assert any("microphone" in m and "click handler" in m for m in r["voice_logs"]), r
        assert any("player.resume()" in m for m in r["voice_logs"]), r
    # After a click, the first player plays.
    unclicked_page.click()
    resumed, heard_ms = _after_a_click(unclicked_page)
    assert resumed is True
    assert heard_ms == pytest.approx(100.0)


@in_page
async def _a_player_closed_unstarted(after_a_click):
    """A player made before any click stays suspended and is closed so; then, after a click (made by the
    caller between the two calls), a new player must start and play, never wait on the old one."""
    import asyncio

    from pyodide_realtime.audio import AudioPlayer

    if after_a_click:
        player = await asyncio.wait_for(AudioPlayer.create(), 20)  # a hang fails here, saying where
        player.play(bytes(4800), item_id="a")  # 100 ms
        player.finish("a")
        heard = await asyncio.wait_for(player.wait_ended("a"), 10)
        state = str(player.context.state)
        player.close()
        return state, heard.heard_ms
    player = await AudioPlayer.create()
    state = str(player.context.state)
    player.close()
    return state, None


def test_a_player_closed_before_it_could_start_leaves_nothing_in_the_way_of_the_next(
    engine: Engine, unclicked_page: Page
) -> None:
    # WebKit keeps a closed player's context for the next one (closing it crashes WebKitGTK now and then);
    # one that never ran must not hold the next player up (its suspend() waited for a click forever).
    state, _ = _a_player_closed_unstarted(unclicked_page, False)
    assert state == ("suspended" if engine.autoplay_needs_gesture else "running")
    unclicked_page.click()
    state, heard_ms = _a_player_closed_unstarted(unclicked_page, True)
    assert state == "running"
    assert heard_ms == pytest.approx(100.0)
