"""The package in all three engines (Chromium, Firefox, WebKit): foundation, a transport exchange with
the local server, the player and the microphone. One page per engine, shared by the module's tests (the ``page`` fixture of tests/browser/conftest.py).

Engine differences these tests met, and what users meet (iOS Safari behaves as WebKit here):
- WebKit runs Web Audio only after a user gesture (the autoplay setting does not cover it): a page must
  create or resume its AudioContext from a click; ``start_voice`` from a button's handler does.
- Firefox needs a sound server for Web Audio; without one its AudioContext stays "suspended".
- Output rates differ (Chromium 48 kHz here, Firefox 44.1 kHz from PulseAudio, WebKit 44.1 or 48 kHz):
  the player resamples and counts heard time in milliseconds, so the figures agree.
"""

from __future__ import annotations

import array
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engines import MIC_TONE_HZ, Page
from readme_blocks import of_kind

# selenium's own WebKitGTK driver still passes the old RemoteConnection argument: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
PLAYED_MS = 500
#: The player's heard count against what was played: within a render quantum or two at 44.1-48 kHz.
HEARD_TOLERANCE_MS = 6.0
MIC_CHUNK_MS = 100
MIC_CHUNKS = 8
MIC_SETTLE_CHUNKS = 3  # the first chunks carry the device's start-up
MIC_MAX_CHUNKS = 40  # 4 s: the input must have started by then
MIC_LOUD = 0.05  # peak of a chunk that holds the tone (silence is 0)
#: WebKit's mock tone is "about 900 Hz"; the others play our exact tone.
TONE_TOLERANCE_HZ = {"chromium": 3.0, "firefox": 3.0, "webkit": 40.0}


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wav = tmp_path_factory.mktemp("mic") / "tone.wav"
    subprocess.run(
        ["sox", "-n", "-r", "44100", "-c", "1", "-b", "16", str(wav), "synth", "20", "sine", str(MIC_TONE_HZ), "vol", "0.5"],
        check=True,
    )
    return wav


def test_pyodide_pydantic_and_our_package_load_from_loopback_only(page: Page) -> None:
    result = page.run_python(
        """
import pydantic
import pyodide_realtime
from pyodide_realtime import SessionConfig
config = SessionConfig.model_validate({"instructions": "Be brief.", "temperature": 0.7})
try:
    SessionConfig.model_validate({"temperature": "hot"})
    refused = False
except pydantic.ValidationError:
    refused = True
{"version": pyodide_realtime.__version__, "pydantic": pydantic.VERSION, "instructions": config.instructions,
 "refused": refused}
"""
    )
    assert result["version"] and result["pydantic"].startswith("2.")
    assert result["instructions"] == "Be brief." and result["refused"]
    urls = page.eval_js(
        "return performance.getEntriesByType('resource').map((e) => e.name).concat([location.href]);"
    )
    assert any("pydantic_core" in u for u in urls), urls
    assert [u for u in urls if not u.startswith(("http://127.0.0.1:", "blob:", "data:"))] == []


def test_micropip_installs_a_wheel_by_url(page: Page) -> None:
    # A wheel of the dist that the page has not loaded yet, installed the way the README shows.
    installed = page.run_python(
        """
import pyodide_js
await pyodide_js.loadPackage("micropip")
import micropip
await micropip.install("./pyodide/tblib-3.2.2-py3-none-any.whl")
import tblib
tblib.__name__
"""
    )
    assert installed == "tblib"


def test_a_text_exchange_with_the_local_server(page: Page, engine_server: Any) -> None:
    reply = page.run_python(
        f"""
import asyncio
from pyodide_realtime import OpenAIRealtimeWebSocket

transport = OpenAIRealtimeWebSocket(url={engine_server.ws_url!r})
text, errors = [], []
transport.on("output_text_delta", lambda event: text.append(event.delta))
transport.on("error", lambda event: errors.append(str(event.exception)))
await transport.connect(api_key={engine_server.mint_key()!r}, model="gpt-realtime",
                        initial_session_config={{"modalities": ["text"]}})
transport.send_message("Hello from the browser")
async for event in transport.events("turn_done"):
    break
protocol = transport.status
transport.close()
{{"text": "".join(text), "errors": errors, "status": protocol}}
"""
    )
    assert reply["text"].startswith("You said: Hello from the browser")
    assert reply["errors"] == []


def test_the_player_counts_what_was_heard(page: Page) -> None:
    page.click()  # WebKit starts Web Audio only after a user gesture
    samples = array.array("h", (int(8000 * ((i // 20) % 2 * 2 - 1)) for i in range(24 * PLAYED_MS)))  # a square wave
    result = page.run_python(
        f"""
import asyncio
from pyodide_realtime.audio import AudioPlayer

reasons = []
player = await AudioPlayer.create(on_item_ended=lambda item, index, heard, reason: reasons.append(reason))
player.play(bytes.fromhex({samples.tobytes().hex()!r}), item_id="item", content_index=0, audio_format="pcm16")
player.finish("item")
ended = await asyncio.wait_for(player.wait_ended("item"), 10)
answer = {{"heard_ms": ended.heard_ms, "reasons": reasons, "rate": player.sample_rate,
          "state": str(player.context.state)}}
player.close()
answer
"""
    )
    assert result["reasons"] == ["finished"] and result["state"] == "running"
    assert result["heard_ms"] == pytest.approx(PLAYED_MS, abs=HEARD_TOLERANCE_MS)
    assert result["rate"] in (44100, 48000)


def test_the_microphone_hears_the_engines_input(page: Page, engine: Any, mic_wav: Path) -> None:
    page.click()
    if engine.feed_microphone is not None:
        engine.feed_microphone(mic_wav)
    # The input may start late (Firefox's comes from a paplay process): wait, within a bound, for
    # MIC_CHUNKS loud chunks in a row after the device settled.
    pcm_hex = page.run_python(
        f"""
import array
from pyodide_realtime.audio import Microphone

mic = Microphone(chunk_ms={MIC_CHUNK_MS}, audio_format="pcm16", echo_cancellation=False,
                 noise_suppression=False, auto_gain_control=False)
await mic.start()
loud, seen = [], 0
async for chunk in mic:
    seen += 1
    peak = max(abs(s) for s in array.array("h", chunk)) / 32768
    loud = loud + [chunk] if seen > {MIC_SETTLE_CHUNKS} and peak > {MIC_LOUD} else []
    if len(loud) == {MIC_CHUNKS} or seen == {MIC_MAX_CHUNKS}:
        mic.stop()
b"".join(loud).hex()
"""
    )
    samples = [s / 32768 for s in array.array("h", bytes.fromhex(pcm_hex))]
    assert len(samples) == MIC_CHUNKS * MIC_CHUNK_MS * 24, f"no {MIC_CHUNKS} loud chunks in a row: the microphone gave silence"
    ups = [i + a / (a - b) for i, (a, b) in enumerate(zip(samples, samples[1:], strict=False)) if a < 0 <= b]
    frequency = (len(ups) - 1) / ((ups[-1] - ups[0]) / 24000)
    assert frequency == pytest.approx(engine.mic_tone_hz, abs=TONE_TOLERANCE_HZ[page.engine])


def test_the_readme_browser_blocks_run_as_written(page: Page) -> None:
    # In order, in the page's one namespace, as a reader pastes them; the key block gets the key and
    # the URL from the page's own server. The player needs a user gesture in WebKit.
    page.click()
    page.run_python("import io, sys\n_readme_stdout, sys.stdout = sys.stdout, io.StringIO()")
    try:
        for block in of_kind("browser"):
            try:
                page.run_python(block.code)
            except Exception as exc:
                pytest.fail(f"{block.where()} failed in {page.engine}: {exc}")
    finally:
        printed = page.run_python("import sys\n_printed, sys.stdout = sys.stdout.getvalue(), _readme_stdout\n_printed")
    assert "error:" not in printed
