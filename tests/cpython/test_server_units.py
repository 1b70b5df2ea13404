"""The local Realtime server's parts on their own: audio codecs, VAD, speech, model, keys, upstream."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import random
import urllib.error
from array import array
from typing import Any

import pytest

from pyodide_realtime.server import _audio
from pyodide_realtime.server._dialect import ClientEventError, SessionConfig
from pyodide_realtime.server._keys import KeyStore, UpstreamMinter
from pyodide_realtime.server._model import AUDIO_REPLY, CallTool, Speak, plan_reply
from pyodide_realtime.server._speech import TONE_GAP_MS, TONE_WORD_MS, Synthesizer
from pyodide_realtime.server._vad import EnergyVad, SpeechStarted, SpeechStopped

# Reference values of ITU-T G.711 (as produced by the classic Sun reference code / CPython's audioop).
ULAW_REFERENCE = {
    0: 0xFF,
    1: 0xFF,
    -1: 0x7E,
    100: 0xF2,
    -100: 0x72,
    1000: 0xCE,
    -1000: 0x4E,
    12345: 0x97,
    -12345: 0x17,
    32767: 0x80,
    -32768: 0x00,
}
ALAW_REFERENCE = {
    0: 0xD5,
    1: 0xD5,
    -1: 0x55,
    100: 0xD3,
    -100: 0x53,
    1000: 0xFA,
    -1000: 0x7A,
    12345: 0xBD,
    -12345: 0x3D,
    32767: 0xAA,
    -32768: 0x2A,
}
ULAW_DECODED = {0x00: -32124, 0x01: -31100, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x55: -716}
ALAW_DECODED = {0x00: -5504, 0x01: -5248, 0x7F: -848, 0x80: 5504, 0xFF: 848, 0xD5: 8, 0x55: -8, 0x2A: -32256, 0xAA: 32256}


def test_g711_matches_the_reference_values() -> None:
    samples = array("h", ULAW_REFERENCE)
    assert list(_audio.ulaw_encode(samples)) == list(ULAW_REFERENCE.values())
    assert list(_audio.alaw_encode(array("h", ALAW_REFERENCE))) == list(ALAW_REFERENCE.values())
    assert list(_audio.ulaw_decode(bytes(ULAW_DECODED))) == list(ULAW_DECODED.values())
    assert list(_audio.alaw_decode(bytes(ALAW_DECODED))) == list(ALAW_DECODED.values())


def test_g711_round_trip_error_is_within_one_quantisation_step() -> None:
    rng = random.Random(7)
    samples = array("h", (rng.randint(-32768, 32767) for _ in range(4000)))
    for encode, decode in ((_audio.ulaw_encode, _audio.ulaw_decode), (_audio.alaw_encode, _audio.alaw_decode)):
        decoded = decode(encode(samples))
        for original, back in zip(samples, decoded, strict=True):
            # G.711 keeps about 4 significant bits: the error grows with the magnitude.
            assert abs(original - back) <= max(64, abs(original) // 16 + 16), (original, back)


def test_resample_and_decimate_keep_duration_and_pitch() -> None:
    rate = 22_050
    tone = array("h", (int(10_000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate)))
    up = _audio.resample_linear(tone, rate, _audio.PCM16_RATE)
    assert len(up) == _audio.PCM16_RATE
    crossings = sum(1 for a, b in itertools.pairwise(up) if a < 0 <= b)
    assert 438 <= crossings <= 442
    assert len(_audio.decimate_by_3(up)) == _audio.G711_RATE
    assert len(_audio.encode_for_wire(up, "g711_alaw")) == _audio.G711_RATE
    assert len(_audio.encode_for_wire(up, "pcm16")) == 2 * _audio.PCM16_RATE


def _noise(ms: int, amplitude: int, rate: int = _audio.PCM16_RATE, seed: int = 1) -> array[int]:
    rng = random.Random(seed)
    return array("h", (rng.randint(-amplitude, amplitude) for _ in range(rate * ms // 1000)))


def test_vad_reports_start_with_padding_and_stop_after_silence() -> None:
    vad = EnergyVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=200)
    events = vad.feed(_noise(500, 0), _audio.PCM16_RATE)
    events += vad.feed(_noise(400, 20_000), _audio.PCM16_RATE)
    assert events == [SpeechStarted(200)]
    # Quiet noise (RMS about 60) is not speech; 200 ms of it ends the turn.
    events = vad.feed(_noise(190, 100), _audio.PCM16_RATE)
    assert events == []
    assert vad.feed(_noise(30, 100), _audio.PCM16_RATE) == [SpeechStopped(1100)]


def test_vad_works_on_g711_rates_and_survives_odd_chunking() -> None:
    vad = EnergyVad(threshold=0.5, prefix_padding_ms=0, silence_duration_ms=100)
    loud = _audio.ulaw_decode(_audio.ulaw_encode(_noise(300, 20_000, rate=_audio.G711_RATE)))
    events = []
    for start in range(0, len(loud), 37):  # chunks that do not line up with 20 ms frames
        events += vad.feed(loud[start : start + 37], _audio.G711_RATE)
    events += vad.feed(array("h", bytes(2 * 1600)), _audio.G711_RATE)
    assert events == [SpeechStarted(0), SpeechStopped(400)]


def test_tone_fallback_speaks_one_beep_per_word() -> None:
    synthesizer = Synthesizer("tones")
    assert synthesizer.engine == "tones"
    audio = asyncio.run(synthesizer.audio("three little words", "pcm16"))
    assert len(audio) == 3 * (TONE_WORD_MS + TONE_GAP_MS) * 48
    samples = _audio.samples_from_pcm16(audio)
    assert _audio.rms(samples) > 3000  # clearly audible, not silence
    assert asyncio.run(synthesizer.audio("three little words", "pcm16")) is audio  # cached


def test_espeak_speech_is_resampled_to_24k_and_cached() -> None:
    synthesizer = Synthesizer("espeak")  # espeak-ng is installed on this machine (it is a dev dependency)
    pcm = asyncio.run(synthesizer.audio("You said: hello", "pcm16"))
    ulaw = asyncio.run(synthesizer.audio("You said: hello", "g711_ulaw"))
    assert 500 < len(pcm) / 48 < 3000  # a short phrase, in milliseconds
    assert abs(len(ulaw) / 8 - len(pcm) / 48) < 1
    assert _audio.rms(_audio.samples_from_pcm16(pcm)) > 500


def test_model_plans_are_deterministic() -> None:
    weather = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]}
    assert plan_reply([user], [], "auto") == Speak("You said: What's the weather in Paris?")
    assert plan_reply([user], weather, "auto") == CallTool("get_weather", '{"location": "Paris"}')
    assert plan_reply([user], weather, "none") == Speak("You said: What's the weather in Paris?")
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather"}
    output = {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
    assert plan_reply([user, call, output], weather, "auto") == Speak("The get_weather tool says: sunny")
    spoken = {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    assert plan_reply([spoken], [], "auto") == Speak(AUDIO_REPLY)
    clock = {
        "type": "function",
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    }
    assert plan_reply([spoken], [clock], "required") == CallTool("get_time", '{"zone": "example"}')


def test_session_update_is_all_or_nothing_and_dialect_strict() -> None:
    config = SessionConfig("m", "ga")
    with pytest.raises(ClientEventError) as refused:
        config.update({"type": "realtime", "instructions": "changed", "audio": {"output": {"format": {"type": "audio/mp3"}}}})
    assert refused.value.param == "session.audio.output.format"
    assert config.data["instructions"] != "changed"
    with pytest.raises(ClientEventError) as beta_field:
        config.update({"type": "realtime", "modalities": ["text"]})
    assert (beta_field.value.code, beta_field.value.param) == ("unknown_parameter", "session.modalities")
    beta = SessionConfig("m", "beta")
    beta.update({"output_audio_format": "g711_alaw", "voice": "verse", "turn_detection": None, "temperature": 0.6})
    rendered = beta.render()
    assert (rendered["output_audio_format"], rendered["voice"], rendered["turn_detection"], rendered["temperature"]) == (
        "g711_alaw",
        "verse",
        None,
        0.6,
    )
    assert beta.output_format == "g711_alaw" and beta.turn_detection is None


def test_key_store_admits_each_key_once_before_expiry() -> None:
    now = [1000.0]
    store = KeyStore(60, clock=lambda: now[0])
    key = store.mint({"instructions": "x"})
    assert key.value.startswith("ek_") and key.value not in repr(key) and key.value not in repr(store)
    assert store.check(key.value).ok and store.check(key.value).session == {"instructions": "x"}
    store.claim(key.value)
    assert "already used" in store.check(key.value).message
    late = store.mint()
    now[0] += 61
    assert "expired" in store.check(late.value).message
    assert "Incorrect API key" in store.check("sk-anything").message
    assert "didn't provide" in store.check(None).message
    assert KeyStore(accept_any_key=True).check("sk-anything").ok


class _FakeAnswer(io.BytesIO):
    status = 200


def test_upstream_minter_builds_the_openai_request_and_keeps_the_key_private() -> None:
    seen: list[Any] = []

    def opener(request: Any, timeout: float) -> _FakeAnswer:
        seen.append((request, timeout))
        return _FakeAnswer(b'{"value": "ek_real", "expires_at": 1}')

    minter = UpstreamMinter("sk-secret-123", opener=opener)
    answer = minter.mint({"session": {"type": "realtime", "model": "gpt-realtime"}})
    assert (answer.status, json.loads(answer.body)["value"]) == (200, "ek_real")
    request, timeout = seen[0]
    assert request.full_url == "https://api.openai.com/v1/realtime/client_secrets"
    assert request.get_method() == "POST" and timeout > 0
    assert request.get_header("Authorization") == "Bearer sk-secret-123"
    assert request.get_header("Content-type") == "application/json"
    assert json.loads(request.data) == {"session": {"type": "realtime", "model": "gpt-realtime"}}
    assert "sk-secret" not in repr(minter)

    def failing(request: Any, timeout: float) -> Any:
        raise urllib.error.URLError("no network")

    refused = UpstreamMinter("sk-secret-123", opener=failing).mint({})
    assert refused.status == 502 and b"sk-secret" not in refused.body and b"--offline" in refused.body
