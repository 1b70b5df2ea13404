"""The local Realtime server's parts on their own: audio, VAD, speech in and out, model, session, keys."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import os
import random
import urllib.error
from array import array
from typing import Any

import pytest

from pyodide_realtime.audio import g711
from pyodide_realtime_server import _audio, _recognizer
from pyodide_realtime_server._errors import ClientEventError
from pyodide_realtime_server._keys import KeyStore, UpstreamMinter
from pyodide_realtime_server._model import AUDIO_REPLY, AskMcpApproval, CallMcp, CallTool, Speak, plan_reply
from pyodide_realtime_server._session_state import SessionState
from pyodide_realtime_server._speech import TONE_GAP_MS, TONE_WORD_MS, Synthesizer
from pyodide_realtime_server._vad import SpeechDetector, SpeechStarted, SpeechStopped, mode_for

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


def test_the_client_g711_codec_the_server_uses_matches_the_reference_values() -> None:
    # The server encodes and decodes with the client's codec (one vocabulary): it must still give
    # what any standard G.711 decoder expects.
    # Encoding: the client's µ-law puts -1 at 0x7F ("negative zero") where audioop says 0x7E; both
    # decode within one step of each other, which is all a listener can tell.
    for encode, decode, reference in (
        (g711.encode_ulaw, g711.ulaw_to_linear, ULAW_REFERENCE),
        (g711.encode_alaw, g711.alaw_to_linear, ALAW_REFERENCE),
    ):
        codes = encode(_audio.pcm16_from_samples(array("h", reference)))
        for code, expected in zip(codes, reference.values(), strict=True):
            assert abs(decode(code) - decode(expected)) <= 8, (hex(code), hex(expected))
    assert list(_audio.decode_from_wire(bytes(ULAW_DECODED), "g711_ulaw")) == list(ULAW_DECODED.values())
    assert list(_audio.decode_from_wire(bytes(ALAW_DECODED), "g711_alaw")) == list(ALAW_DECODED.values())


def test_g711_round_trip_error_is_within_one_quantisation_step() -> None:
    rng = random.Random(7)
    samples = array("h", (rng.randint(-32768, 32767) for _ in range(12000)))
    for name in ("g711_ulaw", "g711_alaw"):
        wire = _audio.encode_for_wire(samples, name)  # 24 kHz in, 8 kHz on the wire
        assert len(wire) == len(samples) // 3
        decoded = _audio.decode_from_wire(wire, name)
        for original, back in zip(_audio.decimate_by_3(samples), decoded, strict=True):
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
    vad = SpeechDetector(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=200)
    events = vad.feed(_noise(500, 0), _audio.PCM16_RATE)
    events += vad.feed(_noise(400, 20_000), _audio.PCM16_RATE)
    assert events == [SpeechStarted(200)]  # speech from 500 ms, minus 300 ms of padding
    events = vad.feed(_noise(150, 0), _audio.PCM16_RATE)
    assert events == []  # not yet 200 ms of silence
    events = vad.feed(_noise(400, 0), _audio.PCM16_RATE)
    assert len(events) == 1 and isinstance(events[0], SpeechStopped)
    assert 1100 <= events[0].audio_end_ms <= 1260  # 900 ms + 200 ms of silence, and the detector's hangover


def test_vad_hears_speech_not_silence_on_g711_rates_and_odd_chunking() -> None:
    spoken = _audio.resample_linear(_audio.samples_from_pcm16(_espeak_wav("What is the weather in Paris?")[1]), 22050, 24000)
    for name in ("pcm16", "g711_ulaw"):
        wire = _audio.encode_for_wire(spoken, name)
        rate = _audio.PCM16_RATE if name == "pcm16" else _audio.G711_RATE
        samples = _audio.decode_from_wire(wire, name)
        vad = SpeechDetector(threshold=0.5, prefix_padding_ms=0, silence_duration_ms=500)
        events = vad.feed(array("h", bytes(rate // 5)), rate)  # 100 ms of silence: nothing
        for start in range(0, len(samples), 37):  # chunks that do not line up with 20 ms frames
            events += vad.feed(samples[start : start + 37], rate)
        events += vad.feed(array("h", bytes(2 * rate)), rate)
        assert [type(e) for e in events] == [SpeechStarted, SpeechStopped], name
        assert 0 <= events[0].audio_start_ms <= 300 and events[1].audio_end_ms > 1000


def test_vad_threshold_picks_the_detector_mode() -> None:
    assert [mode_for(t) for t in (0.0, 0.3, 0.5, 0.8, 1.0)] == [0, 1, 2, 3, 3]


def _espeak_wav(text: str) -> tuple[int, bytes]:
    import shutil
    import subprocess

    from pyodide_realtime_server._speech import _wav_payload

    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is a dev dependency: ./build.sh setup installs it"
    return _wav_payload(subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout)


def test_the_recognizer_hears_what_the_model_needs_in_espeak_speech() -> None:
    rate, payload = _espeak_wav("What is the weather in Paris?")
    samples = _audio.resample_linear(_audio.samples_from_pcm16(payload), rate, _audio.PCM16_RATE)
    heard = _recognizer.recognize(samples, _audio.PCM16_RATE, ["get_weather"])
    assert heard.startswith("what is") and "weather" in heard.split(), heard
    # Through G.711 (8 kHz) too, as a phone line would bring it.
    narrow = _audio.decode_from_wire(_audio.encode_for_wire(samples, "g711_ulaw"), "g711_ulaw")
    assert "weather" in _recognizer.recognize(narrow, _audio.G711_RATE, ["get_weather"]).split()
    assert _recognizer.recognize(array("h", bytes(48000)), _audio.PCM16_RATE) == ""  # silence: no words


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
    heard = {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": "what is the weather"}]}
    assert plan_reply([heard], weather, "auto") == CallTool("get_weather", '{"location": "San Francisco"}')
    assert plan_reply([heard], [], "auto") == Speak(AUDIO_REPLY)  # speech is answered aloud, not echoed
    clock = {
        "type": "function",
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    }
    assert plan_reply([spoken], [clock], "required") == CallTool("get_time", '{"zone": "example"}')


def test_mcp_plans_list_ask_approval_call_and_refuse() -> None:
    always = {"type": "mcp", "server_label": "dice", "server_url": "https://example.test/mcp"}
    never = {**always, "require_approval": "never"}
    ask = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Please roll dice with 20 sides"}]}
    assert plan_reply([ask], [always], "auto") == AskMcpApproval("dice", "roll_dice", '{"sides": 20}')
    assert plan_reply([ask], [never], "auto") == CallMcp("dice", "roll_dice", '{"sides": 20}', None, "4")
    assert plan_reply([ask], [{**always, "allowed_tools": ["echo"]}], "auto") == Speak("You said: Please roll dice with 20 sides")
    request = {"type": "mcp_approval_request", "id": "r1", "server_label": "dice", "name": "roll_dice", "arguments": '{"sides": 20}'}
    yes = {"type": "mcp_approval_response", "approval_request_id": "r1", "approve": True}
    no = {**yes, "approve": False}
    assert plan_reply([ask, request, yes], [always], "auto") == CallMcp("dice", "roll_dice", '{"sides": 20}', "r1", "4")
    assert plan_reply([ask, request, no], [always], "auto") == Speak("The roll_dice call was not approved.")
    call = {"type": "mcp_call", "name": "roll_dice", "output": "4"}
    assert plan_reply([ask, request, yes, call], [always], "auto") == Speak("The roll_dice tool says: 4")


def test_session_update_is_all_or_nothing_with_frozen_fields() -> None:
    state = SessionState("m", "ga")
    with pytest.raises(ClientEventError) as refused:
        state.update({"type": "realtime", "instructions": "changed", "max_output_tokens": 5000})
    assert (refused.value.code, refused.value.param) == ("integer_above_max_value", "session.max_output_tokens")
    assert state.data["instructions"] != "changed"
    with pytest.raises(ClientEventError) as model:
        state.update({"type": "realtime", "model": "other"})
    assert model.value.param == "session.model"
    state.update({"type": "realtime", "tracing": "auto"})
    with pytest.raises(ClientEventError) as tracing:
        state.update({"type": "realtime", "tracing": None})
    assert tracing.value.param == "session.tracing"
    state.update({"type": "realtime", "audio": {"output": {"voice": "marin"}}})
    with pytest.raises(ClientEventError) as voice:
        state.update({"type": "realtime", "audio": {"output": {"voice": "verse"}}}, model_spoke=True)
    assert (voice.value.code, voice.value.param) == ("cannot_update_voice", "session.audio.output.voice")
    beta = SessionState("m", "beta")
    beta.update({"output_audio_format": "g711_alaw", "voice": "verse", "turn_detection": None, "temperature": 0.6})
    rendered = beta.render()
    assert (rendered["output_audio_format"], rendered["voice"], rendered["turn_detection"], rendered["temperature"]) == (
        "g711_alaw",
        "verse",
        None,
        0.6,
    )
    assert beta.output_format == "g711_alaw" and beta.turn_detection is None
    with pytest.raises(ClientEventError) as too_hot:
        beta.update({"temperature": 5})
    assert too_hot.value.param == "session.temperature" and beta.temperature == 0.6


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


def test_key_store_stays_bounded_under_a_mint_flood(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pyodide_realtime_server._keys.MAX_KEYS", 50)
    store = KeyStore(60)
    first = store.mint()
    store.claim(first.value)
    kept = [store.mint() for _ in range(49)]
    store.mint()  # over the bound: the used key goes first
    assert store.minted == 50 and not store.check(first.value).ok and all(store.check(k.value).ok for k in kept)
    for _ in range(500):
        store.mint()
    assert store.minted <= 50


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


@pytest.mark.asyncio
async def test_the_listener_recognizes_in_its_own_process_and_outlives_a_dead_worker() -> None:
    from pyodide_realtime_server._listener import Listener

    rate, payload = _espeak_wav("What is the weather in Paris?")
    samples = _audio.resample_linear(_audio.samples_from_pcm16(payload), rate, _audio.PCM16_RATE)
    expected = _recognizer.recognize(samples, _audio.PCM16_RATE, ["get_weather"])
    listener = Listener()
    try:
        assert await listener.recognize(samples, _audio.PCM16_RATE, ["get_weather"]) == expected
        worker = listener._process
        assert worker is not None and worker.pid != os.getpid()
        worker.kill()
        await worker.wait()
        assert await listener.recognize(samples, _audio.PCM16_RATE, ["get_weather"]) == expected  # a new worker
    finally:
        await listener.close()
    assert listener._process is None
