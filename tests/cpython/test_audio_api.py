"""The audio classes on a server (CPython): they import, validate arguments, and refuse clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyodide_realtime._interfaces import AudioInput, AudioOutput
from pyodide_realtime.audio import HOST_SNIPPET, AudioPlayer, Microphone, page_url, start_voice
from pyodide_realtime.audio.microphone import media_error
from pyodide_realtime.errors import ConfigurationError, UnsupportedError


def test_player_conforms_to_audio_output_and_mic_to_audio_input():
    assert issubclass(AudioPlayer, AudioOutput)
    mic = Microphone()
    assert isinstance(mic, AudioInput)
    assert mic.muted is False
    mic.muted = True
    assert mic.muted is True


@pytest.mark.parametrize(("fmt", "chunk_ms", "samples"), [("pcm16", 20, 480), ("pcm16", 100, 2400), ("g711_ulaw", 40, 320), ("g711_alaw", 25, 200)])
def test_chunk_length_follows_format_rate(fmt, chunk_ms, samples):
    mic = Microphone(chunk_ms=chunk_ms, audio_format=fmt)
    assert mic.chunk_samples == samples
    assert mic.sample_rate == (24000 if fmt == "pcm16" else 8000)


@pytest.mark.parametrize("chunk_ms", [19.9, 0, 101, 1000, "40", True, None])
def test_chunk_ms_outside_20_to_100_is_a_configuration_error(chunk_ms):
    with pytest.raises(ConfigurationError, match="chunk_ms must be from 20 to 100"):
        Microphone(chunk_ms=chunk_ms)


def test_unknown_audio_format_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="pcm16, g711_ulaw, g711_alaw"):
        Microphone(audio_format="opus")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_player_validates_then_refuses_outside_a_browser():
    with pytest.raises(ConfigurationError, match="volume"):
        await AudioPlayer.create(volume=-0.5)
    with pytest.raises(UnsupportedError, match="needs a web browser"):
        await AudioPlayer.create()


@pytest.mark.asyncio
async def test_microphone_and_voice_refuse_outside_a_browser_without_touching_the_transport():
    with pytest.raises(UnsupportedError, match="Pyodide"):
        await Microphone().start()

    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"start_voice used transport.{name} before it could work")

    with pytest.raises(ConfigurationError):
        await start_voice(Untouchable(), chunk_ms=5)
    with pytest.raises(UnsupportedError):
        await start_voice(Untouchable())


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("NotAllowedError", UnsupportedError, "denied"),
        ("SecurityError", UnsupportedError, "denied"),
        ("NotFoundError", UnsupportedError, "no microphone was found"),
        ("NotReadableError", UnsupportedError, "another application"),
        ("OverconstrainedError", ConfigurationError, "device_id"),
        ("InsecureContextError", UnsupportedError, "https://"),
        ("WeirdError", UnsupportedError, "WeirdError: boom"),
    ],
)
def test_getusermedia_failures_become_errors_that_say_what_to_do(name, kind, words):
    error = media_error(name, "boom")
    assert type(error) is kind
    assert words in str(error)
    # It reaches Microphone.start's, start_voice's and a session's callers: no one call is named as the way back.
    assert "start()" not in str(error)


def test_the_audio_classes_share_the_one_format_table():
    from pyodide_realtime import _interfaces, audio
    from pyodide_realtime.audio import microphone, player

    assert audio.FORMAT_RATES is player.FORMAT_RATES is microphone.FORMAT_RATES is _interfaces.FORMAT_RATES
    assert [audio.bytes_per_ms(name) for name in ("pcm16", "g711_ulaw", "g711_alaw")] == [48, 8, 8]


# ---- audio_shim.js: one table of messages -------------------------------------------------------------

SHIM = Path(__file__).resolve().parents[2] / "src" / "pyodide_realtime" / "audio_shim.js"


def _message_table(source: str) -> set[str]:
    start = source.index("export const MESSAGES = {")
    block = source[start : source.index("};", start)]
    return set(re.findall(r'^\s*"?([a-z][a-z-]*)"?: \[', block, re.MULTILINE))


def test_every_message_the_shim_sends_or_handles_is_in_its_table():
    source = SHIM.read_text(encoding="utf-8")
    table = _message_table(source)
    assert {"chunk", "stop", "stopped", "progress", "captured", "opened", "error"} <= table
    sent = set(re.findall(r'type: "([a-z-]+)"', source))
    handled = set(re.findall(r'case "([a-z-]+)"', source)) | set(re.findall(r'type === "([a-z-]+)"', source))
    assert sent - table == set() and handled - table == set()
    # Handlers read named fields: no positional arguments to Python any more.
    assert "onEvent(m.type, m.key" not in source


def test_page_url_outside_a_browser_says_what_to_do():
    with pytest.raises(UnsupportedError, match="absolute URL"):
        page_url("./v1/realtime/client_secrets")
    assert "serveWorker(e.data.port, url)" in HOST_SNIPPET
