"""Audio in Chromium, Firefox and WebKit: the AudioWorklet player and the microphone, measured, not assumed.

Deterministic checks render through an OfflineAudioContext and compare every output sample with the
Python reference math (g711, resample). Real-time checks (heard position vs the audio thread's own
count, interruption under bursty delivery, the microphone's steady tone) use a live AudioContext, made
right after a click: WebKit starts one only within a few seconds of a user gesture. What differs between
engines is an attribute of ``engine`` (tests/browser/engines.py; docs/engines.md).
"""

from __future__ import annotations

import array
import cmath
import math
import re
import statistics
import struct
from pathlib import Path
from typing import Any

import pytest

from engines import Engine, Page, in_page
from pyodide_realtime.audio import g711
from pyodide_realtime.audio.resample import LinearResampler

FADE_FRAMES = 128  # the worklet's de-click ramp (audio_shim.js)
MIC_SETTLE_MS = 40  # what the tone checks skip after the device's first sound: the resampler's start
MIC_CLOCK_LAG_S = 0.1  # how far a context's clock may trail what its audio thread rendered (Firefox: a device callback)
SILENT_TAIL_MS = 100  # silence in a row that tells the mute from a device's drop-out
TONE_WINDOW_S = 0.06  # 9 whole periods of WebKit's 150 Hz hum


def pcm16_tone(freq: float, rate: int, ms: int, amplitude: int = 12000, offset: int = 0) -> bytes:
    n = rate * ms // 1000
    samples = array.array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate)) + offset for i in range(n)))
    return samples.tobytes()


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def reference_output(data: bytes, audio_format: str, context_rate: int) -> list[float]:
    """What the worklet must render for one item: decode, then resample (Python reference)."""
    if audio_format == "pcm16":
        samples, rate = array.array("h", data), 24000
    else:
        decoded = g711.decode_ulaw(data) if audio_format == "g711_ulaw" else g711.decode_alaw(data)
        samples, rate = array.array("h", decoded), 8000
    return float32(LinearResampler(rate, context_rate).process([s / 32768 for s in samples]))


def encoded(audio_format: str, pcm: bytes) -> bytes:
    return {"pcm16": pcm, "g711_ulaw": g711.encode_ulaw(pcm), "g711_alaw": g711.encode_alaw(pcm)}[audio_format]


# ---- Without a fresh user gesture (first in the module: its page has had none) -----------------------


@in_page
async def _voice_without_a_fresh_gesture():
    import asyncio

    import js
    from page_helpers import kept_logs

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.audio import start_voice

    with kept_logs() as logged:
        gesture = bool(js.navigator.userActivation.isActive)
        transport = OpenAIRealtimeWebSocket(url="ws://127.0.0.1:9/unused")  # never connected: chunks are dropped
        voice = await start_voice(transport, chunk_ms=40)
        states = [str(voice.player.context.state), str(voice.microphone._context.state)]
        for _ in range(200):
            if voice.microphone.chunks >= 3:
                break
            await asyncio.sleep(0.01)
        chunks = voice.microphone.chunks
        voice.close()
    return gesture, states, chunks, logged


def test_start_voice_plays_and_captures_without_a_fresh_user_gesture(page: Page, engine: Engine) -> None:
    # A page calls start_voice after awaiting other things (a key, a connect): by then the click that
    # began it may be more than WebKit's few seconds of user activation ago. A page that captures the
    # microphone may play audio, so the voice must come to life all the same.
    gesture, states, chunks, logged = _voice_without_a_fresh_gesture(page)
    if engine.gesture_expires:
        assert gesture is False  # this page has had no recent click: the test means something here
    assert states == ["running", "running"]
    assert chunks >= 3
    assert not [m for m in logged if "suspended" in m], logged


# ---- The shim's G.711 against the Python reference ---------------------------------------------------


@in_page
async def _shim_g711_mismatches():
    from pyodide_realtime.audio import g711
    from pyodide_realtime.audio._shim import load_shim

    shim, _ = await load_shim()
    js = shim.g711
    mismatches = []
    for code in range(256):
        if js.ulawToLinear(code) != g711.ulaw_to_linear(code) or js.alawToLinear(code) != g711.alaw_to_linear(code):
            mismatches.append(("decode", code))
    for sample in range(-32768, 32768):  # what the microphone worklet encodes
        if js.linearToUlaw(sample) != g711.linear_to_ulaw(sample) or js.linearToAlaw(sample) != g711.linear_to_alaw(sample):
            mismatches.append(("encode", sample))
    return mismatches[:10]


def test_the_worklets_g711_matches_the_python_reference_for_every_value(page: Page) -> None:
    assert _shim_g711_mismatches(page) == []


# ---- Offline rendering: exact frames ---------------------------------------------------------------


@in_page
async def _render_offline(items, context_rate, seconds):
    """Play ``items`` [(item_id, format, data, chunk_bytes)] through an OfflineAudioContext."""
    import asyncio

    import js

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object

    context = js.OfflineAudioContext.new(
        js_object({"numberOfChannels": 1, "length": int(context_rate * seconds), "sampleRate": context_rate})
    )
    events = []
    player = await AudioPlayer.create(
        context,
        on_item_started=lambda i, c: events.append(("started", i)),
        on_item_ended=lambda i, c, ms, reason: events.append(("ended", i, ms, reason)),
    )
    acks = []
    for item_id, audio_format, data, step in items:
        for start in range(0, len(data), step):
            acks.append(player._play_acked(data[start : start + step], item_id, 0, audio_format))
        player.finish(item_id)
    await asyncio.gather(*acks)  # all queued in the worklet before rendering starts
    rendered = await context.startRendering()
    out = rendered.getChannelData(0).to_bytes()
    ended = {item_id: (await player.wait_ended(item_id)).heard_ms for item_id, *_ in items}
    heard = {item_id: player.heard_ms(item_id) for item_id, *_ in items}
    player.close()
    assert player._event_proxy is None and player._handle is None
    return out, heard, ended, events, player.sample_rate


@pytest.mark.parametrize(
    ("audio_format", "context_rate", "step"),
    [
        ("pcm16", 48000, 4801),  # odd byte counts: a sample split across chunks
        ("pcm16", 44100, 960),
        ("pcm16", 24000, 4800),  # no resampling: the samples themselves
        ("g711_ulaw", 48000, 160),
        ("g711_alaw", 44100, 333),
        ("g711_alaw", 8000, 800),
    ],
)
def test_playback_renders_exactly_the_expected_frames(page: Page, audio_format: str, context_rate: int, step: int) -> None:
    pcm = pcm16_tone(437.0, 24000 if audio_format == "pcm16" else 8000, 700, offset=1)
    data = encoded(audio_format, pcm)
    raw, heard, ended, events, rate = _render_offline(page, [("a", audio_format, data, step)], context_rate, 1.0)
    out = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    expected = reference_output(data, audio_format, context_rate)
    frames = len(expected)
    in_rate = 24000 if audio_format == "pcm16" else 8000
    assert rate == context_rate
    assert frames == (len(data) // (2 if audio_format == "pcm16" else 1)) * context_rate // in_rate
    # Every sample equals the Python reference (decode + resample), bit for bit in float32.
    assert out[:frames] == expected
    # Then a short fade to silence (the item ends mid-wave), then exact silence.
    assert all(abs(v) <= abs(expected[-1]) for v in out[frames : frames + FADE_FRAMES])
    assert not any(out[frames + FADE_FRAMES :])
    # heard_ms counts exactly the frames rendered (well within one render quantum).
    assert heard["a"] == pytest.approx(frames * 1000 / context_rate, abs=1e-9)
    assert ended["a"] == heard["a"]
    assert events == [("started", "a"), ("ended", "a", heard["a"], "finished")]


def test_items_play_back_to_back_without_a_gap_and_are_counted_apart(page: Page) -> None:
    a = pcm16_tone(300.0, 24000, 250)
    b = g711.encode_ulaw(pcm16_tone(500.0, 8000, 300))
    raw, heard, ended, events, rate = _render_offline(
        page, [("a", "pcm16", a, 2400), ("b", "g711_ulaw", b, 400)], 48000, 1.0
    )
    out = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    ref_a, ref_b = reference_output(a, "pcm16", 48000), reference_output(b, "g711_ulaw", 48000)
    assert out[: len(ref_a) + len(ref_b)] == ref_a + ref_b
    assert heard == {"a": 250.0, "b": 300.0}
    assert [e[:2] for e in events] == [("started", "a"), ("ended", "a"), ("started", "b"), ("ended", "b")]


#: A test-only AudioWorklet node behind the player's gain: it records every frame rendered, at the frame
#: number the audio thread gives it (Firefox's OfflineAudioContext has no suspend(): a live context there).
TAP_JS = """async (context) => {
  const source = `registerProcessor("test-tap", class extends AudioWorkletProcessor {
    process(inputs) {
      const channel = inputs[0][0];
      if (channel) this.port.postMessage({ at: currentFrame, data: channel.slice() });
      return true;
    }
  });`;
  await context.audioWorklet.addModule(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
  const node = new AudioWorkletNode(context, "test-tap", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
  const quanta = [];
  node.port.onmessage = (e) => quanta.push(e.data);
  node.connect(context.destination);
  return {
    node,
    recording() {  // every frame from the first recorded one on; a frame not recorded stays NaN (fails)
      const first = quanta[0].at, last = quanta[quanta.length - 1];
      const data = new Float32Array(last.at + last.data.length - first).fill(NaN);
      for (const q of quanta) data.set(q.data, q.at - first);
      return { first, data };
    },
  };
}"""
#: Keeps the frame at which the worklet started the item ("started"), passing every event on.
STARTED_AT_JS = """(handle) => {
  const seen = { startedAt: -1 }, inner = handle.onEvent;
  handle.onEvent = (m) => { if (m.type === "started") seen.startedAt = m.at; inner(m); };
  return seen;
}"""


@in_page
async def _render_with_underrun(first, second, gap_s, started_at_js):
    """``first`` plays, the queue runs dry for a while (rendering paused to post ``second``), then more."""
    import asyncio

    import js
    from pyodide.code import run_js

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object

    rate = 48000
    context = js.OfflineAudioContext.new(js_object({"numberOfChannels": 1, "length": rate, "sampleRate": rate}))
    player = await AudioPlayer.create(context)
    seen = run_js(started_at_js)(player._handle)
    await player._play_acked(first, "a", 0, "pcm16")
    resumed = asyncio.get_running_loop().create_future()

    async def at_gap(_=None):
        await player._play_acked(second, "a", 0, "pcm16")
        player.finish("a")
        await player._handle.query()  # answered after the finish (one port, in order): it is in before rendering goes on
        context.resume()
        resumed.set_result(True)

    from pyodide.ffi import create_proxy

    def on_suspended(_=None):
        asyncio.ensure_future(at_gap())

    proxy = create_proxy(on_suspended)
    context.suspend(gap_s).then(proxy)
    rendered = await context.startRendering()
    proxy.destroy()
    assert resumed.done()
    heard = player.heard_ms("a")
    underruns = player.underruns
    player.close()
    return rendered.getChannelData(0).to_bytes(), 0, int(seen.startedAt), heard, underruns, rate


@in_page
async def _play_live_with_underrun(first, second, tap_js, started_at_js):
    """The same on a live context: ``second`` is posted once the worklet reported the underrun; the
    tap records what was rendered, from frame ``first_frame`` on."""
    import asyncio

    import js
    from page_helpers import retire_context
    from pyodide.code import run_js

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object

    context = js.AudioContext.new(js_object({"latencyHint": "interactive"}))
    tap = await run_js(tap_js)(context)
    player = await AudioPlayer.create(context)
    seen = run_js(started_at_js)(player._handle)
    player._handle.gain.connect(tap.node)
    await player._play_acked(first, "a", 0, "pcm16")
    for _ in range(500):
        if player.underruns:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # silence for a while
    await player._play_acked(second, "a", 0, "pcm16")
    player.finish("a")
    await asyncio.wait_for(player.wait_ended("a"), 5)
    await asyncio.sleep(0.05)  # and after the end
    recording = tap.recording()
    heard = player.heard_ms("a")
    underruns = player.underruns
    rate = int(context.sampleRate)
    player.close()
    await retire_context(context)
    return recording.data.to_bytes(), int(recording.first), int(seen.startedAt), heard, underruns, rate


def test_underrun_fades_out_stays_silent_and_fades_back_in(page: Page, engine: Engine) -> None:
    tone = pcm16_tone(437.0, 24000, 200, amplitude=16000)
    first, second = tone[:4800], tone[4800:]  # the second half resumes mid-wave: a click without the fade-in
    assert page.eval_js("return typeof OfflineAudioContext.prototype.suspend === 'function'") is engine.offline_suspend
    if engine.offline_suspend:
        raw, first_frame, started_at, heard, underruns, rate = _render_with_underrun(page, first, second, 0.2, STARTED_AT_JS)
    else:
        page.click()  # a user gesture first: WebKit starts no AudioContext without one
        raw, first_frame, started_at, heard, underruns, rate = _play_live_with_underrun(
            page, first, second, TAP_JS, STARTED_AT_JS
        )
    out = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    expected = reference_output(tone, "pcm16", rate)
    first_frames = len(first) // 2 * rate // 24000  # the resampler's whole frames, as the worklet makes them
    ref_first, ref_second = expected[:first_frames], expected[first_frames:]
    start = started_at - first_frame  # where the item starts in `out` (a live tap records from before)
    played = start + first_frames  # where the first 100 ms end
    assert start >= 0 and not any(out[:start])
    assert out[start:played] == ref_first
    assert underruns == 1
    assert heard == pytest.approx(200.0)
    # The first 100 ms end mid-wave (sin = -0.95 at 437 Hz); the ramp takes that to 0, never beyond.
    assert abs(out[played - 1]) > 0.3
    assert all(abs(v) <= abs(out[played - 1]) for v in out[played : played + FADE_FRAMES])
    # Playback resumes where the second half came in: its first frame faded to exactly 0, then up.
    resume = next(i for i in range(played + FADE_FRAMES, len(out)) if out[i] != 0.0) - 1
    if engine.offline_suspend:
        assert resume == 9600  # the render was suspended at 0.2 s (a quantum boundary)
    assert not any(out[played + FADE_FRAMES : resume])  # silence, not stale samples
    fade_in = [float32([v * (1 - (FADE_FRAMES - j) / FADE_FRAMES)])[0] for j, v in enumerate(ref_second[:FADE_FRAMES])]
    assert out[resume : resume + len(ref_second)] == fade_in + ref_second[FADE_FRAMES:]
    # No click: the largest step anywhere stays near the tone's own largest step.
    natural = 2 * math.pi * 437.0 / rate * 16000 / 32768
    steps = [abs(b - a) for a, b in zip(out, out[1:], strict=False)]
    assert max(steps) < natural * 1.6, (max(steps), steps.index(max(steps)))


# ---- Real time: heard position vs the audio thread, interruption ---------------------------------


@in_page
async def _heard_vs_audio_thread(data):
    import asyncio

    from page_helpers import kept_logs

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import load_shim

    shim, _ = await load_shim()
    with kept_logs("pyodide_realtime.audio.player") as logged:
        player = await AudioPlayer.create()
        context = player.context
        state = str(context.state)
        player.play(data, item_id="x", content_index=0, audio_format="pcm16")
        samples = []
        loop = asyncio.get_running_loop()
        for _ in range(8):
            await asyncio.sleep(0.09)  # spreads the questions over the item; nothing is timed against it
            clock_before = float(context.currentTime)
            before = player.heard_ms("x")
            asked = loop.time()
            exact = await player.query_heard_ms("x")  # the audio thread's own count
            round_trip_ms = (loop.time() - asked) * 1000
            after = player.heard_ms("x")
            samples.append((before, exact, after, round_trip_ms, clock_before * 1000, float(context.currentTime) * 1000))
        # The promise itself: a stop sent right after heard_ms.
        promised = player.heard_ms("x")
        position = player.interrupt()
        landed = await player.query_heard_ms("x")  # answered once the stop landed
        stop = dict(promised=promised, reported=position.heard_ms, landed=landed, logged=list(logged))
        rate = player.sample_rate
        player.close()
    return state, rate, samples, stop, shim.STOP_MARGIN_MS.page


def test_heard_ms_is_where_a_stop_sent_now_would_land(page: Page, timing_figure: Any) -> None:
    import re

    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    # 5 s: still sounding at the interruption however slowly the questions come back.
    state, rate, samples, stop, margin_ms = _heard_vs_audio_thread(page, pcm16_tone(300.0, 24000, 5000))
    assert state == "running"
    for before, _, after, *_ in samples:
        assert after >= before  # a promise never goes backwards
    # Playback advances at the audio clock's pace, whatever the load: between two questions the item
    # advanced as far as the clock did, bracketed by the clock read around each question (give or take
    # the clock's own steps: WebKit's moves a device buffer at a time, Firefox's trails its audio thread).
    (_, e0, _, _, c0_before, c0_after), (_, e1, _, _, c1_before, c1_after) = samples[0], samples[-1]
    step_ms = 50
    assert c1_before - c0_after - step_ms <= e1 - e0 <= c1_after - c0_before + step_ms, (e0, e1, samples)
    # heard_ms promises where a stop sent now lands: the interruption reports the promise of the moment
    # it sends the stop (the one asked just before, or later: a starved page can stall 100 ms and more
    # between two lines, and the sound goes on meanwhile), and the audio thread stops exactly there,
    # unless the stop reached it after the sound had passed the promise (the round trip outlasted the
    # margin). Then the player logs how late: late, never wrong in silence.
    assert stop["reported"] >= stop["promised"], stop
    late = [float(m.group(1)) for line in stop["logged"] if (m := re.search(r"a stop landed ([\d.]+) ms after", line))]
    if late:
        assert stop["landed"] == pytest.approx(stop["reported"] + late[0], abs=0.1 + 1000 / rate), stop
    else:
        assert stop["landed"] == stop["reported"] and stop["logged"] == [], stop
    timing_figure("the page between heard_ms and interrupt", f"{stop['reported'] - stop['promised']:.1f} ms of sound")
    # How far a promise led the sound (the margin, plus how late a message reached the audio thread)
    # and how long a question took: figures of the machine's load.
    round_trips = sorted(s[3] for s in samples)
    passed = sum(1 for before, exact, *_ in samples if exact > before)
    timing_figure("round trip to the audio thread", f"median {statistics.median(round_trips):.1f} ms "
                  f"(range {round_trips[0]:.1f}-{round_trips[-1]:.1f}; the stop margin {margin_ms} ms)")
    timing_figure("promise ahead of the sound", f"at most {max(before - exact for before, exact, *_ in samples):.1f} ms")
    timing_figure("answers the sound had passed when asked", f"{passed} of {len(samples)}; the stop landed "
                  f"{late[0] if late else 0.0:.1f} ms after its promise")


@in_page
async def _promise_with_a_trailing_clock():
    from pyodide.code import run_js

    from pyodide_realtime.audio._shim import load_shim

    shim, _ = await load_shim()
    # A Player on a port to nowhere, whose clock (the context's currentTime) stands at 0 while the
    # worklet reports having rendered 100 ms: as Firefox's currentTime trails its audio thread.
    return run_js(
        """(shim) => {
          const rate = 44100, port = new MessageChannel().port1;
          const player = new shim.Player(port, rate, () => 0, shim.STOP_MARGIN_MS.page, () => {});
          player.play(0, "pcm16", new Uint8Array(48000), undefined);  // 1 s of audio
          player.onMessage({ type: "progress", consumed: 4410, at: 4410 });
          const heard = player.heardFrames(0);
          port.close();
          return [heard, Math.round(shim.STOP_MARGIN_MS.page * rate / 1000)];
        }"""
    )(shim).to_py()


def test_the_promise_keeps_its_margin_past_what_the_worklet_reported(page: Page) -> None:
    heard, margin = _promise_with_a_trailing_clock(page)
    assert heard == 4410 + margin  # not 4410: a stop sent then would land after the promise


@in_page
async def _stop_after_a_clock_jump():
    from pyodide.code import run_js

    from pyodide_realtime.audio._shim import load_shim

    shim, _ = await load_shim()
    # A Player on a port to nowhere whose clock jumps between the promise and the stop (WebKit's
    # currentTime moves a device buffer, about 23 ms, at a time): 25 ms, short of the 30 ms margin, with
    # and without 20 ms of wall time between; then 40 ms, past the promise. Last, a stop with no answer
    # since the one before.
    return run_js(
        """(shim) => {
          const rate = 44100, ms = (n) => Math.round(n * rate / 1000), results = [];
          for (const [jumpMs, waitMs] of [[25, 0], [25, 20], [40, 0]]) {
            let clock = 0;
            const port = new MessageChannel().port1;
            const player = new shim.Player(port, rate, () => clock, shim.STOP_MARGIN_MS.page, () => {});
            player.play(0, "pcm16", new Uint8Array(48000), undefined);  // 1 s of audio
            player.onMessage({ type: "progress", consumed: 0, at: 0 });
            const promised = player.heardFrames(0);
            for (const until = performance.now() + waitMs; performance.now() < until;) {}
            clock += ms(jumpMs);
            player.stop();
            results.push([promised, player.heardFrames(0), ms(jumpMs)]);
            port.close();
          }
          let clock = 0;
          const port = new MessageChannel().port1;
          const player = new shim.Player(port, rate, () => clock, shim.STOP_MARGIN_MS.page, () => {});
          player.play(0, "pcm16", new Uint8Array(48000), undefined);
          player.onMessage({ type: "progress", consumed: 0, at: 0 });
          player.heardFrames(0);
          player.stop();  // lands on that answer; the next stop was promised nothing
          player.play(1, "pcm16", new Uint8Array(48000), undefined);
          clock += ms(100);
          player.stop();
          results.push([0, player.heardFrames(1), ms(100)]);
          port.close();
          return [results, ms(shim.STOP_MARGIN_MS.page)];
        }"""
    )(shim).to_py()


def test_a_stop_lands_on_the_last_promise_while_the_sound_can_still_reach_it(page: Page) -> None:
    [(p1, at1, _), (p2, at2, _), (p3, at3, jump3), (_, at4, jump4)], margin = _stop_after_a_clock_jump(page)
    assert p1 == p2 == p3 == margin
    # What the interruption sent as the truncation is where the sound stops, however long the stop took.
    assert at1 == p1 and at2 == p2
    # The clock passed the promise (an app read heard_ms long ago): nothing lands there, so a new one.
    assert at3 == jump3 + margin
    # No answer since the last stop: the item queued after it stops where heard_ms would answer now,
    # the margin past the clock.
    assert at4 == jump4 + margin


@in_page
async def _interrupt_after_a_backlog(first, burst, bursts, a_heard_ms, b_heard_ms):
    """Item A plays; once ``a_heard_ms`` of it were heard, all of item B arrives at once (faster than real
    time, as the API streams); interrupt B once ``b_heard_ms`` of it were heard. Waits on the audio, never
    on the wall clock."""
    import asyncio

    from page_helpers import kept_logs

    from pyodide_realtime.audio import AudioPlayer

    with kept_logs("pyodide_realtime.audio.player") as logged:
        PCM16_BYTES_PER_MS = 48
        ended = {}
        player = await AudioPlayer.create(on_item_ended=lambda i, c, ms, reason: ended.setdefault(i, (ms, reason)))
        loop = asyncio.get_running_loop()
        player.play(first, item_id="A", content_index=0, audio_format="pcm16")

        async def heard(item_id, ms):
            # The audio's own pace; a silent audio clock fails in 20 s saying why, not at the call's timeout.
            waited = loop.time()
            while (player.heard_ms(item_id) or 0.0) < ms:
                if loop.time() - waited > 20:
                    import js

                    activation = getattr(getattr(js.navigator, "userActivation", None), "isActive", None)
                    raise AssertionError(
                        f"{item_id} heard {player.heard_ms(item_id)} ms of {ms} in 20 s: the context is "
                        f"{player.context.state} at {player.context.currentTime} s, the page's user activation {activation}"
                    )
                await asyncio.sleep(0.005)

        await heard("A", a_heard_ms)
        heard_a_at_b = player.heard_ms("A")
        b_start = loop.time()  # the seed's clock starts at B's first delta
        audio_start = float(player.context.currentTime)  # the audio clock: a starved audio thread lags, then catches up
        received_ms = 0.0
        for _ in range(bursts):
            player.play(burst, item_id="B", content_index=0, audio_format="pcm16")
            received_ms += len(burst) / PCM16_BYTES_PER_MS
        await heard("B", b_heard_ms)
        elapsed_ms = (loop.time() - b_start) * 1000
        audio_elapsed_ms = (float(player.context.currentTime) - audio_start) * 1000
        position = player.interrupt()
        exact = await player.query_heard_ms("B")
        player.play(burst, item_id="B", content_index=0, audio_format="pcm16")  # a late delta: dropped
        await asyncio.wait_for(asyncio.ensure_future(player._last_stop), 20)  # the stop landed (or said how late)
        await asyncio.sleep(0.2)
        later = await player.query_heard_ms("B")
        result = dict(
            heard_a_at_b=heard_a_at_b,
            heard_a=player.heard_ms("A"),
            elapsed_ms=elapsed_ms,
            audio_elapsed_ms=audio_elapsed_ms,
            received_ms=received_ms,
            position=(position.item_id, position.heard_ms) if position else None,
            exact=exact,
            later=later,
            ended=ended,
            underruns=player.underruns,
            rate=player.sample_rate,
        )
        player.close()
    result["logged"] = list(logged)
    return result


def test_interruption_reports_what_was_heard_not_the_wall_clock(page: Page, timing_figure: Any) -> None:
    first = pcm16_tone(300.0, 24000, 1000)
    burst = pcm16_tone(500.0, 24000, 300)  # six deltas of 300 ms, all at once
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    r = _interrupt_after_a_backlog(page, first, burst, 6, 100.0, 300.0)
    wall_clock_estimate = min(r["elapsed_ms"], r["received_ms"])  # the seed's audio_end_ms
    a_left_ms = 1000 - r["heard_a_at_b"]
    assert r["heard_a"] == pytest.approx(1000.0)  # all of A played
    item, heard = r["position"]
    assert item == "B"
    assert 300 <= heard < r["received_ms"]
    # The seed's estimate counts B from its first delta, while A still had `a_left_ms` to play: it
    # overshoots by about that; the heard position does not. (Wall time since B's first delta covers
    # what was left of A and what was heard of B; the audio clock cannot run ahead of it by more than a
    # device buffer.)
    assert wall_clock_estimate - heard > 0.8 * a_left_ms, (wall_clock_estimate, heard, r)
    # The returned position is exactly where the audio thread stopped, and it stays silent after the stop
    # (the late delta was dropped); unless the stop reached the audio thread after the sound had passed
    # its promise. Then the player said by how much: late, never wrong in silence. (CI lost the WebKit case
    # to that: its audio thread left the stop and the question unanswered for over a second, so the
    # question timed out and answered with the promise, and then let the sound run 162 ms past it.)
    late = [float(m.group(1)) for line in r["logged"] if (m := re.search(r"a stop landed ([\d.]+) ms after", line))]
    unanswered = any("did not answer" in line for line in r["logged"])
    if late:
        assert r["later"] == pytest.approx(heard + late[0], abs=0.1 + 1000 / r["rate"]), r
        assert r["exact"] == (heard if unanswered else r["later"]), r
        timing_figure("the stop landed after its promise (a stalled audio thread)", f"{late[0]:.1f} ms")
    else:
        assert r["exact"] == heard, (r["exact"], heard)
        assert r["later"] == r["exact"], r
    assert all("a stop landed" in line or "did not answer" in line for line in r["logged"]), r
    assert r["ended"]["A"][1] == "next" and r["ended"]["B"] == (r["later"], "interrupted")
    assert r["underruns"] == 0
    # B started once A finished: heard ~ audio time since B's first delta - what was left of A. How far
    # off that is (output start-up, the clock's steps) is a figure, not a bound.
    expected = r["audio_elapsed_ms"] - a_left_ms
    timing_figure("heard position minus the audio clock's estimate", f"{heard - expected:+.1f} ms "
                  f"(A had {a_left_ms:.0f} ms left; the seed would have sent {wall_clock_estimate:.0f} ms, we {heard:.0f})")


@in_page
async def _volume_and_close():
    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.errors import ConfigurationError

    player = await AudioPlayer.create(volume=0.5)
    player.volume = 0.25
    try:
        player.volume = 9
        bad_volume = None
    except ConfigurationError as exc:
        bad_volume = str(exc)
    try:
        player.play(b"\x00\x00", item_id="x", content_index=0, audio_format="mp3")
        bad_format = None
    except ConfigurationError as exc:
        bad_format = str(exc)
    player.play(b"\x00\x00" * 2400, item_id="x", content_index=0, audio_format="pcm16")
    context = player.context
    player.close()
    player.close()  # idempotent
    player.play(b"\x00\x00", item_id="x", content_index=0, audio_format="pcm16")  # ignored once closed
    import asyncio

    await asyncio.sleep(0.05)
    return player.volume, bad_volume, bad_format, str(context.state), player._event_proxy is None, player.heard_ms("x")


def test_volume_validation_and_close_release_everything(page: Page, engine: Engine) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    volume, bad_volume, bad_format, state, proxy_gone, heard = _volume_and_close(page)
    assert volume == 0.25
    assert "volume must be a number from 0.0 to 4.0" in bad_volume
    assert "audio_format must be one of pcm16, g711_ulaw, g711_alaw" in bad_format
    assert state == engine.player_context_after_close and proxy_gone and heard is None


@in_page
async def _players_one_after_another(rounds):
    import asyncio

    from page_helpers import kept_logs

    from pyodide_realtime.audio import AudioPlayer

    heard, tone = [], b"\x00\x10" * 2400  # 100 ms of a quiet buzz: each player's worklet renders it
    with kept_logs() as logged:
        for n in range(rounds):
            player = await AudioPlayer.create()
            player.play(tone, item_id=f"i{n}", content_index=0, audio_format="pcm16")
            player.finish(f"i{n}")
            try:
                heard.append((await asyncio.wait_for(player.wait_ended(f"i{n}"), 10)).heard_ms)
            except asyncio.TimeoutError:  # say what the player and its context were doing
                context = player.context
                raise AssertionError(
                    f"player {n + 1} of {rounds} did not end its 100 ms in 10 s: context {context.state} at "
                    f"{context.currentTime:.3f} s, heard {player.heard_ms(f'i{n}')} ms; logged: {logged}"
                ) from None
            player.close()
    return heard


def _audio_worklet_threads(pid: int) -> int:
    # A thread's name is cut to 15 bytes: WebKit's "WebCore: AudioWorklet" reads "e: AudioWorklet".
    return sum(1 for task in Path(f"/proc/{pid}/task").iterdir() if (task / "comm").read_text().strip().endswith("AudioWorklet"))


def test_players_made_and_closed_one_after_another_each_play_and_webkit_keeps_one_worklet_thread(
    page: Page, engine: Engine
) -> None:
    # WebKitGTK never frees an AudioWorklet's thread, and closing a context whose worklet played crashed its
    # web process now and then (docs/engines.md): there a closed player's context serves the next player.
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    pid = engine.web_process_pid
    before = _audio_worklet_threads(pid) if pid is not None else 0
    assert _players_one_after_another(page, 12) == [100.0] * 12
    if pid is not None:
        assert engine.web_process_pid == pid and _audio_worklet_threads(pid) - before <= 1


@in_page
async def _broken_messages():
    import asyncio

    from page_helpers import kept_logs
    from pyodide.code import run_js

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object, load_shim

    shim, url = await load_shim()
    with kept_logs("pyodide_realtime.audio.player") as logged:
        player = await AudioPlayer.create()
        port = player._handle.port
        port.postMessage(js_object({"type": "bogus"}))
        port.postMessage(js_object({"type": "chunk", "key": 0}))  # without its format and data
        port.postMessage("no type at all")
        # A message from the worklet's side that the page's Player does not know.
        player._handle.onMessage(js_object({"type": "surprise"}))
        for _ in range(1000):  # the worklet's three reports, or 10 s (the test then says what came)
            if len(logged) >= 4:
                break
            await asyncio.sleep(0.01)
        # The page's host for a worker answers a broken request with an "error" message too.
        answers = run_js(
            """(async (shim, url) => {
                const channel = new MessageChannel(), got = [];
                const answered = new Promise((r) => {
                  setTimeout(r, 10000);  // the three answers, or 10 s (the test then says what came)
                  channel.port2.onmessage = (e) => { got.push(e.data); if (got.length >= 3) r(); };
                });
                shim.serveWorker(channel.port1, url);
                channel.port2.postMessage({ type: "open-player", id: 1 });  // no volume
                channel.port2.postMessage({ type: "call", id: 2, handle: 99, method: "resume", value: 10 });
                await answered;
                channel.port2.close();
                return JSON.stringify(got.map((m) => [m.type, m.message ?? m.value ?? null]));
            })"""
        )
        page_answers = await answers(shim, url)
        player.close()
    return logged, str(page_answers)


def test_broken_messages_are_reported_not_dropped(page: Page) -> None:
    import json

    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    logged, page_answers = _broken_messages(page)
    assert logged == [
        'audio: the player got a message of unknown type "surprise"',  # synchronous: first
        'audio: PlayerProcessor got a message of unknown type "bogus"',
        'audio: PlayerProcessor got a "chunk" message without its "format"',
        "audio: PlayerProcessor got a message without a type",
    ]
    assert json.loads(page_answers) == [
        ["hello", None],
        ["error", 'the page got a "open-player" message without its "volume"'],
        ["done", None],  # a handle closed already: nothing to do, said so
    ]


@in_page
async def _compensated(data):
    import asyncio

    from pyodide.code import run_js

    from pyodide_realtime.audio import AudioPlayer

    # Every read of outputLatency, counted: Firefox's can freeze the page, so the library must not read it.
    reads = run_js(
        """(() => {
          const proto = AudioContext.prototype, own = Object.getOwnPropertyDescriptor(proto, "outputLatency");
          const counter = { n: 0, restore() { if (own) Object.defineProperty(proto, "outputLatency", own); } };
          if (own) Object.defineProperty(proto, "outputLatency", { configurable: true,
            get() { counter.n += 1; return own.get.call(this); } });
          return counter;
        })()"""
    )
    try:
        player = await AudioPlayer.create()
        assert player.compensate_output_latency is False  # opt-in
        player.play(data, item_id="x", content_index=0, audio_format="pcm16")
        await asyncio.sleep(0.4)
        player.interrupt()  # the position stands still: both reads see the same frames
        plain = player.heard_ms("x")
        player.compensate_output_latency = True
        figures = plain, player.heard_ms("x"), player.output_latency_ms, player.sample_rate
        player.close()
    finally:
        reads.restore()
    return (*figures, int(reads.n))


def test_output_latency_compensation_is_opt_in_and_subtracts_what_the_browser_reports(page: Page, engine: Engine) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    plain, compensated, latency, rate, reads = _compensated(page, pcm16_tone(300.0, 24000, 1000))
    if engine.reads_output_latency:
        assert latency > 0 and reads > 0  # Chromium reports outputLatency (30 ms here)
        # What reached the listener: the rendered position less the device's latency (to the frame).
        assert plain - compensated == pytest.approx(latency, abs=1000 / rate)
    else:
        # Firefox's outputLatency asks its audio process while holding a lock the audio thread needs: the
        # page froze in that read under load. Never read there; its baseLatency is 0, nothing subtracted.
        assert reads == 0 and latency == 0 and compensated == plain


# ---- Microphone --------------------------------------------------------------------------------------


@in_page
async def _capture(audio_format, chunk_ms, count, mute_after, silence, silent_tail, give_up_after):
    import asyncio

    from pyodide_realtime.audio import Microphone

    mic = Microphone(
        chunk_ms=chunk_ms,
        audio_format=audio_format,
        echo_cancellation=False,
        noise_suppression=False,
        auto_gain_control=False,
    )
    await mic.start()
    track = mic._handle.stream.getAudioTracks()[0]
    context = mic._context  # made by the microphone: its clock counts from 0 what its audio thread rendered
    loop = asyncio.get_running_loop()
    chunks, start = [], loop.time()
    muted_from = stopped_at = elapsed = clock = None
    async for chunk in mic:
        chunks.append(chunk)
        if len(chunks) == mute_after:
            mic.muted = True
            muted_from = mic.chunks  # captured so far: under load the reader may trail the capture
        # Stop once `count` were read and the mute has reached the capture (the last `silent_tail` chunks,
        # all captured after it was asked for, silent), however many chunks were on their way when it was
        # asked for; or give up (the test then fails).
        muted = (muted_from is not None and len(chunks) - muted_from >= silent_tail
                 and all(set(c) == {silence} for c in chunks[-silent_tail:]))
        if stopped_at is None and len(chunks) >= count and (muted or len(chunks) >= give_up_after):
            clock = float(context.currentTime)
            mic.stop()
            stopped_at, elapsed = mic.chunks, loop.time() - start
    return chunks, (elapsed, clock), stopped_at, muted_from, mic.device_rate, str(track.readyState), mic.running


def tone_near(samples: list[float], rate: int, hz: float) -> tuple[float, float]:
    """The sine near ``hz`` in ``samples``: its amplitude, and how far its frequency is from ``hz``.

    One DFT bin at exactly ``hz`` per window of TONE_WINDOW_S: a tone off by d Hz turns its phase by
    2 pi d TONE_WINDOW_S from one window to the next. Medians over the windows: a skip in the stream (WebKit's
    mock microphone drops a few ms now and then, measured) disturbs one window, not the figures, and
    the other sounds (WebKit's beeps) hardly reach the bin. A window of exact zeros is one the device
    dropped whole (a quiet fresh clone: WebKit's mock, 60 ms or more across two 100 ms chunks): it has no
    phase, and is left out.
    """
    size = round(TONE_WINDOW_S * rate)
    step = -2j * math.pi * hz / rate
    bins = {
        index: sum(samples[n] * cmath.exp(step * n) for n in range(start, start + size)) * 2 / size
        for index, start in enumerate(range(0, len(samples) - size + 1, size))
        if any(samples[start : start + size])
    }
    turns = [cmath.phase(bins[index + 1] / bin_) for index, bin_ in bins.items() if index + 1 in bins]
    assert len(turns) >= 3, f"too few windows with sound to judge the tone: {len(bins)} of {len(samples) // size}"
    return statistics.median(abs(b) for b in bins.values()), statistics.median(turns) / (2 * math.pi * TONE_WINDOW_S)


@pytest.mark.parametrize(("audio_format", "chunk_ms"), [("pcm16", 20), ("pcm16", 100), ("g711_ulaw", 40), ("g711_alaw", 50)])
def test_microphone_delivers_chunks_of_the_asked_length_and_keeps_the_tone(
    page: Page, engine: Engine, audio_format: str, chunk_ms: int, timing_figure: Any
) -> None:
    count = max(6, 1200 // chunk_ms)
    mute_after = count - 3
    silence = {"pcm16": 0, "g711_ulaw": g711.ULAW_SILENCE, "g711_alaw": g711.ALAW_SILENCE}[audio_format]
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    # The mute has reached the capture once this many chunks in a row came silent: 100 ms or more, since
    # WebKit's mock microphone drops 40-60 ms to exact zeros now and then (a quiet fresh clone: a drop in
    # two chunks captured before the mute was asked for, read after it, ended the capture before the mute
    # had arrived).
    silent_tail = max(2, math.ceil(SILENT_TAIL_MS / chunk_ms))
    chunks, (elapsed, clock), stopped_at, muted_from, device_rate, track_state, running = _capture(
        page, audio_format, chunk_ms, count, mute_after, silence, silent_tail, count + 5000 // chunk_ms
    )
    rate = 24000 if audio_format == "pcm16" else 8000
    bytes_per_sample = 2 if audio_format == "pcm16" else 1
    # stop() ends `async for` after what was captured before it (a reader that fell behind loses
    # nothing), and nothing captured after it comes.
    assert len(chunks) == stopped_at >= count
    assert {len(c) for c in chunks} == {rate * chunk_ms // 1000 * bytes_per_sample}
    assert device_rate in (44100, 48000)
    # Chunks come at the pace of the audio clock: never faster (a wrong rate would show here, and in the
    # tone below). Not the wall clock's: an audio thread that stalls renders its backlog at once after it
    # (CI saw WebKit hand over 1.2 s of audio in 0.25 s), and its clock jumps with it. How far a busy
    # machine made the chunks trail the wall clock is a figure.
    captured_s = stopped_at * chunk_ms / 1000
    assert captured_s <= clock + 2 * chunk_ms / 1000 + MIC_CLOCK_LAG_S, (captured_s, clock, elapsed)
    timing_figure(f"capture, {audio_format} {chunk_ms} ms", f"{captured_s:.2f} s of audio in {elapsed:.2f} s "
                  f"(the audio clock at {clock:.2f} s)")
    # Skip the start-up: the device's, until its sound holds (WebKit's mock: 60-100 ms of silence in a quiet
    # run; under load longer, and once a blip of sound in it), then the resampler's. The tone is judged on
    # the longest run before the mute with no silent chunk in it: at least four windows of it. (The chunks
    # the reader had not read yet when it muted are not judged: one of WebKit's came silent in a quiet run.)
    silent = [set(c) == {silence} for c in chunks]
    # The longest run of chunks with sound before the mute: past the start-up, and past a chunk that
    # WebKit's mock went silent for mid-stream (a quiet fresh clone had one 1 s in, 2 chunks before the mute).
    runs, start = [], None
    for i, quiet in enumerate([*silent[:mute_after], True]):
        if not quiet and start is None:
            start = i
        elif quiet and start is not None:
            runs.append((start, i))
            start = None
    sound_from, sound_to = max(runs, key=lambda run: run[1] - run[0], default=(0, 0))
    timing_figure(f"device start, {audio_format} {chunk_ms} ms", f"{sound_from * chunk_ms} ms before its longest run "
                  f"of sound; {sum(silent[sound_from:mute_after])} silent chunk(s) after it before the mute")
    settled = sound_from + math.ceil(MIC_SETTLE_MS / chunk_ms)
    assert (sound_to - settled) * chunk_ms / 1000 >= 4 * TONE_WINDOW_S, ("too little sound to judge", silent)
    pcm = b"".join(chunks[settled:sound_to])
    if audio_format != "pcm16":
        pcm = (g711.decode_ulaw if audio_format == "g711_ulaw" else g711.decode_alaw)(pcm)
    samples = [s / 32768 for s in array.array("h", pcm)]
    # The engine's steady tone (440 Hz, or WebKit's 150 Hz hum), at its frequency and amplitude: the
    # capture neither shifted its pitch (a wrong rate) nor lost or boosted it.
    amplitude, off_hz = tone_near(samples, rate, engine.mic_tone_hz)
    assert amplitude == pytest.approx(engine.mic_tone_amplitude, rel=0.1), (amplitude, engine.mic_tone_hz)
    assert abs(off_hz) < 0.5, (off_hz, engine.mic_tone_hz)
    # Muted: the chunks keep coming, holding silence (so the server's VAD sees the turn end), up to the stop
    # and the chunks captured before it. Those captured before the mute reached the audio thread are
    # judged above; the silent run that ends the capture is where the mute arrived.
    silent_from = len(chunks)
    while silent_from > muted_from and silent[silent_from - 1]:
        silent_from -= 1
    assert len(chunks) - silent_from >= silent_tail, ("the mute never reached the capture", silent[muted_from:])
    timing_figure(f"mute, {audio_format} {chunk_ms} ms", f"{silent_from - muted_from} chunk(s) on their way")
    assert track_state == "ended" and not running


@in_page
async def _open_missing_device():
    from pyodide_realtime.audio import Microphone
    from pyodide_realtime.errors import RealtimeError

    mic = Microphone(device_id="no-such-microphone")
    try:
        await mic.start()
    except RealtimeError as exc:
        return type(exc).__name__, str(exc), mic.running
    return None, "", mic.running


def test_a_getusermedia_failure_becomes_an_error_that_says_what_to_do(page: Page) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    kind, message, running = _open_missing_device(page)
    assert kind == "ConfigurationError"  # the browser's OverconstrainedError, by its name
    assert "device_id" in message and "enumerateDevices" in message
    assert not running


@in_page
async def _capture_to_callback():
    import asyncio

    from pyodide_realtime.audio import Microphone

    got = []
    done = asyncio.Event()

    async def on_chunk(chunk):
        got.append(len(chunk))
        if len(got) == 5:
            done.set()

    mic = await Microphone.create(on_chunk, chunk_ms=20)
    await asyncio.wait_for(done.wait(), 5)
    mic.stop()
    captured = mic.chunks  # an async callback runs as a task: a chunk captured before stop() may still be on its way
    await asyncio.sleep(0.2)
    return got, captured, len(got), mic.chunks


def test_microphone_callback_gets_chunks_and_stop_ends_them(page: Page) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    got, captured, delivered, counted = _capture_to_callback(page)
    assert got[:5] == [960] * 5
    # Every chunk captured before stop() reaches the callback, and none is captured after it.
    assert delivered == captured == counted


# ---- start_voice: the real transport, the local Realtime server ------------------------------------


@in_page
async def _voice_round_trip(ws_url, key):
    import asyncio

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.audio import start_voice

    transport = OpenAIRealtimeWebSocket()
    received_ms = {}
    transport.on("audio", lambda e: received_ms.__setitem__(e.item_id, received_ms.get(e.item_id, 0) + len(e.data) / 48))
    # No turn detection: the microphone's tone counts as speech (the server sends speech_started for it),
    # and only the typed message may get a reply. A mute after start_voice comes after the microphone has
    # streamed a while (start_voice starts it first): a fresh clone's WebKit reply was cut, "interrupted",
    # as a barge-in cuts it.
    await transport.connect(api_key=key, url=ws_url, initial_session_config={"turn_detection": None})
    voice = await start_voice(transport, chunk_ms=40, echo_cancellation=False, noise_suppression=False)
    ended = []
    done = asyncio.Event()

    def on_ended(item_id, content_index, heard_ms, reason):
        ended.append((item_id, heard_ms, reason))
        done.set()

    voice.player.on_item_ended = on_ended
    await asyncio.sleep(0.3)
    transport.send_message("hello")
    await asyncio.wait_for(done.wait(), 15)
    chunks = voice.microphone.chunks
    voice.close()
    attached_after_close = transport.muted
    transport.close()
    return ended, received_ms, chunks, attached_after_close


def test_start_voice_plays_the_reply_to_its_end_and_streams_the_microphone(page: Page, engine_server: Any) -> None:
    import re

    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    ended, received_ms, chunks, attached_after_close = _voice_round_trip(
        page, engine_server.ws_url, engine_server.mint_key()
    )
    [(item_id, heard_ms, reason)] = ended
    assert reason == "finished"  # audio_done -> finish -> the last frame played
    assert heard_ms == pytest.approx(received_ms[item_id], abs=0.05)  # all of it, nothing more
    assert heard_ms > 500
    appended = [
        e for c in engine_server.state()["connections"] for e in c["received"] if e.get("type") == "input_audio_buffer.append"
    ]
    assert chunks >= 5 and len(appended) >= 5
    # The server records audio as "<N base64 chars>"; 40 ms of PCM16 at 24 kHz is 1,920 bytes.
    sizes = {int(re.fullmatch(r"<(\d+) base64 chars>", e["audio"]).group(1)) * 3 // 4 for e in appended}
    assert sizes == {1920}
    assert attached_after_close is None  # close() detached the microphone


@in_page
async def _reply_played_to_its_end_then_interrupt(ws_url, key, context_rate):
    """A reply plays out on a context whose rate does not divide its length; then Interrupt is pressed."""
    import asyncio

    import js
    from page_helpers import retire_context

    from pyodide_realtime import OpenAIRealtimeWebSocket
    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object

    context = js.AudioContext.new(js_object({"sampleRate": context_rate, "latencyHint": "interactive"}))
    player = await AudioPlayer.create(context)
    transport = OpenAIRealtimeWebSocket(url=ws_url)
    transport.attach_audio_output(player)
    received, cuts, done, finished_while_playing = {}, [], [], []

    def on_audio(event):
        received[event.item_id] = received.get(event.item_id, 0.0) + len(event.data) / 48
        if not finished_while_playing:
            finished_while_playing.append(player.finished(event.item_id))

    transport.on("audio", on_audio)
    transport.on("audio_done", lambda event: player.finish(event.item_id, event.content_index))
    transport.on("audio_interrupted", lambda event: cuts.append(event.truncated))
    transport.on("turn_done", lambda event: done.append(event.status))
    await transport.connect(api_key=key)
    transport.send_message("one two three four")
    while not done or not received:
        await asyncio.sleep(0.01)
    [item] = received
    ended = await asyncio.wait_for(player.wait_ended(item), 10)
    rendered_ms = await player.query_heard_ms(item)  # the audio thread's own frame count
    result = dict(
        finished_while_playing=finished_while_playing[0], finished=player.finished(item), heard=player.heard_ms(item),
        ended=ended.heard_ms, rendered=rendered_ms, received=received[item], rate=player.sample_rate,
    )
    transport.interrupt()  # the reply was heard to its end: nothing to cut
    await asyncio.sleep(0.3)
    result["cuts"] = cuts
    transport.close()
    player.close()
    await retire_context(context)
    return result


def test_a_reply_heard_to_its_end_is_never_truncated_whatever_the_sample_rate(page: Page, engine_server: Any) -> None:
    engine_server.reset()
    # The simulated model's tone replies last whole tens of ms, which common rates turn into whole frames;
    # real speech does not (2982.8 ms in the demo). At 44,101 Hz every 10 ms is 441.01 frames: the
    # resampler's whole frames fall short of the audio received, and a frame count alone calls it unheard.
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    r = _reply_played_to_its_end_then_interrupt(page, engine_server.ws_url, engine_server.mint_key(), 44101)
    assert r["rate"] == 44101
    assert r["rendered"] < r["received"]  # the rounding this is about
    assert r["cuts"] == []
    assert engine_server.state()["truncations"] == []
    assert r["finished_while_playing"] is False and r["finished"] is True
    assert r["heard"] == r["ended"] == r["received"]  # heard in full, in the units the core counts


# ---- Nothing waits forever, nothing keeps the microphone --------------------------------------------


@in_page
async def _dropped_audio_settles_the_waiters():
    import asyncio

    import js

    from pyodide_realtime.audio import AudioPlayer
    from pyodide_realtime.audio._shim import js_object

    limit = 3.0  # without an answer the test fails here instead of hanging
    context = js.OfflineAudioContext.new(js_object({"numberOfChannels": 1, "length": 48000, "sampleRate": 48000}))
    player = await AudioPlayer.create(context)
    results = {}
    # Empty audio is never posted: its ack comes at once.
    await asyncio.wait_for(player._play_acked(b"", "empty", 0, "pcm16"), limit)
    waiting = asyncio.ensure_future(player.wait_ended("empty"))  # waits before the stop
    await player._play_acked(b"\x00\x00" * 480, "played", 0, "pcm16")
    player.interrupt()
    # "empty" never reached the worklet, which reports the end only of items it knows.
    results["waiting"] = (await asyncio.wait_for(waiting, limit)).heard_ms
    results["after_stop"] = (await asyncio.wait_for(player.wait_ended("empty"), limit)).heard_ms
    results["played"] = (await asyncio.wait_for(player.wait_ended("played"), limit)).heard_ms
    # Late audio of a stopped item is dropped: its ack too comes at once.
    await asyncio.wait_for(player._play_acked(b"\x00\x00" * 480, "played", 0, "pcm16"), limit)
    player.finish("empty")  # a stopped item ends once, unheard: no second end
    # An item still waiting when the player closes hears it, and so does one asked for afterwards.
    player.play(b"\x00\x00" * 480, item_id="queued", content_index=0, audio_format="pcm16")
    pending = asyncio.ensure_future(player.wait_ended("queued"))
    await asyncio.sleep(0)
    player.close()
    results["closed"] = (await asyncio.wait_for(pending, limit)).heard_ms
    results["after_close"] = (await asyncio.wait_for(player.wait_ended("never"), limit)).heard_ms
    await asyncio.wait_for(player._play_acked(b"\x00\x00", "never", 0, "pcm16"), limit)
    return results


def test_waiting_for_dropped_or_stopped_audio_always_ends(page: Page) -> None:
    results = _dropped_audio_settles_the_waiters(page)
    assert results == {"waiting": 0.0, "after_stop": 0.0, "played": 0.0, "closed": 0.0, "after_close": 0.0}


@in_page
async def _query_on_a_closed_context(data):
    import asyncio

    import js
    from page_helpers import kept_logs, retire_context

    from pyodide_realtime.audio import AudioPlayer

    context = js.AudioContext.new()
    player = await AudioPlayer.create(context)
    player.play(data, item_id="x", content_index=0, audio_format="pcm16")
    while (await player.query_heard_ms("x") or 0.0) < 200:  # asks the worklet; heard_ms would promise more
        await asyncio.sleep(0.01)
    # Its owner closes it: Chromium's audio thread answers no more. In WebKit, whose web process can crash
    # on that close, its owner suspends it: its audio thread renders no more either.
    await retire_context(context)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with kept_logs("pyodide_realtime.audio.player") as logged:
        heard = await asyncio.wait_for(player.query_heard_ms("x"), 5.0)
    waited = loop.time() - start
    cached = player.heard_ms("x")
    await asyncio.sleep(0.2)
    later = await player.query_heard_ms("x", timeout=0.3)  # nothing rendered since the close
    player.close()
    return heard, cached, waited, later, logged


def test_query_heard_ms_gives_up_on_a_closed_context_with_the_last_known_position(page: Page, engine: Engine) -> None:
    from pyodide_realtime.audio.player import QUERY_TIMEOUT_S

    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    heard, cached, waited, later, logged = _query_on_a_closed_context(page, pcm16_tone(300.0, 24000, 5000))
    assert 100 < heard < 5000 and heard == cached == later
    if engine.worklet_answers_after_close:
        assert logged == []  # the closed context's worklet answered, its count frozen
    else:  # the answer came from the timeout, which says so
        assert waited >= QUERY_TIMEOUT_S - 0.05
        assert logged == [f"the audio thread did not answer within {QUERY_TIMEOUT_S} s (is the AudioContext closed?)"]


@in_page
async def _mic_when_the_context_cannot_be_made():
    import js
    from pyodide.code import run_js
    from pyodide.ffi import JsException

    from pyodide_realtime.audio import Microphone

    # Record the streams getUserMedia hands out, and make every new AudioContext fail.
    run_js(
        """
        globalThis.__streams = [];
        globalThis.__realGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        navigator.mediaDevices.getUserMedia = async (c) => {
          const s = await globalThis.__realGetUserMedia(c); globalThis.__streams.push(s); return s;
        };
        globalThis.__RealAudioContext = globalThis.AudioContext;
        globalThis.AudioContext = function () { throw new DOMException("no audio device", "NotSupportedError"); };
        """
    )
    mic = Microphone()
    try:
        await mic.start()
        error = None
    except JsException as exc:
        error = str(exc)
    finally:
        run_js(
            """
            navigator.mediaDevices.getUserMedia = globalThis.__realGetUserMedia;
            globalThis.AudioContext = globalThis.__RealAudioContext;
            """
        )
    states = [str(track.readyState) for stream in js.__streams for track in stream.getTracks()]
    return error, states, mic.running, mic._proxy is None


def test_microphone_released_when_its_context_cannot_be_made(page: Page) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    error, states, running, proxy_gone = _mic_when_the_context_cannot_be_made(page)
    assert error is not None and "no audio device" in error
    assert states == ["ended"]  # the microphone was opened, then released: not left recording
    assert not running and proxy_gone


@in_page
async def _shared_source_after_one_capture_closes():
    import array
    import asyncio

    import js
    from pyodide.ffi import create_proxy

    from pyodide_realtime.audio._shim import js_object, load_shim

    shim, url = await load_shim()
    context = js.AudioContext.new()
    tone = js.OscillatorNode.new(context, js_object({"frequency": 440}))
    tone.start()
    chunks = {"first": [], "second": []}
    proxies = [create_proxy(lambda u8, name=name: chunks[name].append(u8.to_bytes())) for name in chunks]
    # Two captures fed by the caller's one source node (a file, an oscillator...).
    first, second = [await shim.createCapture(context, url, None, tone, "pcm16", 480, False, p) for p in proxies]

    async def until_second_has(count):  # on the capture's own chunks; the deadline only guards a hang
        for _ in range(2000):
            if len(chunks["second"]) >= count:
                return
            await asyncio.sleep(0.01)

    await until_second_has(5)
    first.close()
    before = len(chunks["second"])
    await until_second_has(before + 10)  # 0.2 s of 20 ms chunks after the close
    after = chunks["second"][before:]
    peak = max((max(array.array("h", c)) for c in after), default=0)
    second.close()
    tone.stop()
    await context.close()
    for proxy in proxies:
        proxy.destroy()
    return before, len(after), peak


def test_closing_a_capture_leaves_the_callers_source_node_connected_elsewhere(page: Page) -> None:
    page.click()  # a user gesture first: WebKit starts no AudioContext without one
    before, after, peak = _shared_source_after_one_capture_closes(page)
    assert before > 0
    assert after >= 10  # the second capture goes on after the first one closed
    assert peak > 10000  # the tone, not silence: the source still feeds the second capture
