"""SessionConfig: one Python shape, two wire shapes; unset omitted, None kept as null, falsy kept."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from pyodide_realtime.config import (
    DEFAULT_SESSION_CONFIG,
    SessionConfig,
    normalize_audio_format,
    wire_create_response,
    wire_interrupt_response,
    wire_output_audio_format,
)
from pyodide_realtime.errors import ConfigurationError

FULL: dict[str, Any] = {
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "modalities": ["audio"],
    "voice": "marin",
    "speed": 1.25,
    "input_audio_format": "g711_alaw",
    "output_audio_format": "g711_ulaw",
    "input_audio_transcription": {"model": "whisper-1"},
    "input_audio_noise_reduction": {"type": "near_field"},
    "turn_detection": {"type": "server_vad", "interrupt_response": True, "create_response": False, "silence_duration_ms": 0},
    "tools": [{"type": "function", "name": "f", "parameters": {}}],
    "tool_choice": "auto",
    "max_response_output_tokens": "inf",
    "tracing": {"workflow_name": "w"},
}


@pytest.mark.parametrize(
    "dialect, expected",
    [
        ("beta", {**FULL, "temperature": 0.8}),
        (
            "ga",
            {
                "type": "realtime",
                "model": "gpt-realtime",
                "instructions": "Be brief.",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcma"},
                        "transcription": {"model": "whisper-1"},
                        "noise_reduction": {"type": "near_field"},
                        "turn_detection": FULL["turn_detection"],
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.25},
                },
                "tools": FULL["tools"],
                "tool_choice": "auto",
                "max_output_tokens": "inf",
                "tracing": {"workflow_name": "w"},
            },
        ),
    ],
)
def test_every_field_in_both_wire_shapes(dialect: str, expected: dict[str, Any]) -> None:
    given = {**FULL, "temperature": 0.8} if dialect == "beta" else FULL
    assert SessionConfig.coerce(given).to_wire(dialect) == expected
    assert SessionConfig(**given).to_wire(dialect) == expected


@pytest.mark.parametrize("temperature", [0.6, 0, None])
def test_temperature_is_beta_only_and_ga_refuses_it_by_name(temperature: float | None) -> None:
    config = SessionConfig.coerce({"instructions": "x", "temperature": temperature})
    assert config.to_wire("beta") == {"instructions": "x", "temperature": temperature}
    with pytest.raises(ConfigurationError, match="temperature is a beta-only session field") as info:
        config.to_wire("ga")
    assert "dialect='beta'" in str(info.value)
    assert SessionConfig.coerce({"instructions": "x"}).to_wire("ga") == {"type": "realtime", "instructions": "x"}


def test_to_wire_can_leave_fields_out() -> None:
    config = SessionConfig.coerce({"voice": "marin", "instructions": "x", "temperature": 1})
    assert config.to_wire("ga", exclude=("voice", "temperature")) == {"type": "realtime", "instructions": "x"}
    assert config.to_wire("beta", exclude=("voice",)) == {"instructions": "x", "temperature": 1}


@pytest.mark.parametrize(
    "given, beta, ga",
    [
        ({}, {}, {"type": "realtime"}),
        ({"input_audio_noise_reduction": None}, {"input_audio_noise_reduction": None},
         {"type": "realtime", "audio": {"input": {"noise_reduction": None}}}),
        ({"turn_detection": None}, {"turn_detection": None},
         {"type": "realtime", "audio": {"input": {"turn_detection": None}}}),
        ({"tracing": None}, {"tracing": None}, {"type": "realtime", "tracing": None}),
        ({"instructions": "", "turn_detection": {"create_response": False}},
         {"instructions": "", "turn_detection": {"create_response": False}},
         {"type": "realtime", "instructions": "", "audio": {"input": {"turn_detection": {"create_response": False}}}}),
        ({"max_response_output_tokens": 0}, {"max_response_output_tokens": 0}, {"type": "realtime", "max_output_tokens": 0}),
        ({"speed": 0.0}, {"speed": 0.0}, {"type": "realtime", "audio": {"output": {"speed": 0.0}}}),
    ],
)
def test_unset_is_omitted_none_is_null_and_falsy_is_kept(given: dict[str, Any], beta: dict[str, Any], ga: dict[str, Any]) -> None:
    config = SessionConfig.coerce(given)
    assert config.to_wire("beta") == beta
    assert config.to_wire("ga") == ga


def test_extra_fields_are_merged_into_the_generated_session_as_given() -> None:
    # The one way to send a field newer than this release: named, and never checked.
    config = SessionConfig.coerce({"voice": "cedar", "extra_fields": {"audio": {"output": {"future": 2}}, "knob": True}})
    assert config.to_wire("ga") == {"type": "realtime", "audio": {"output": {"voice": "cedar", "future": 2}}, "knob": True}
    assert config.to_wire("beta") == {"voice": "cedar", "audio": {"output": {"future": 2}}, "knob": True}


@pytest.mark.parametrize(
    "given, message",
    [
        ({"instrucions": "x"}, "the session config has no field 'instrucions': did you mean 'instructions'?"),
        ({"turnDetection": {}}, "the session config has no field 'turnDetection': the API's names are snake_case, use 'turn_detection'"),
        ({"outputModalities": ["audio"]}, "use 'output_modalities'"),
        ({"turn_detection": {"type": "server_vad", "eagernes": "low"}}, "turn_detection has no field 'eagernes': did you mean 'eagerness'?"),
        ({"turn_detection": {"future_knob": 3}}, "turn_detection has no field 'future_knob'"),
        ({"audio": {"input": {"formt": "pcm16"}}}, "session audio.input has no field 'formt': did you mean 'format'?"),
        ({"audio": {"outptu": {}}}, "session audio has no field 'outptu': did you mean 'output'?"),
        ({"audio": {"output": {"voice": "x"}}, "voice": "y"}, "voice is given twice"),
        ({"type": "transcription"}, "session type 'transcription' is not supported"),
        ({"voice": {"name": "v"}}, "a custom voice has no field 'name': the fields are: id"),
        ({"include": ["item.logprobs"]}, "include must be a list of 'item.input_audio_transcription.logprobs'"),
        ({"prompt": {"id": "pmpt_1", "verison": "2"}}, "prompt has no field 'verison': did you mean 'version'?"),
        ({"prompt": "pmpt_1"}, "prompt must be a dict like"),
        ({"truncation": "sometimes"}, "truncation must be 'auto', 'disabled' or"),
        ({"truncation": {"type": "retention_ratio", "retention_ratio": 1.5}}, "truncation must be"),
    ],
)
def test_unknown_and_camel_case_keys_are_refused_naming_the_nearest_known(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        SessionConfig.coerce(given)
    assert message in str(refused.value)


GA_NESTED = {
    "type": "realtime",
    "output_modalities": ["audio"],
    "instructions": "Be brief.",
    "max_output_tokens": 500,
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "gpt-4o-transcribe"},
                  "noise_reduction": {"type": "near_field"}, "turn_detection": {"type": "server_vad", "threshold": 0.6}},
        "output": {"format": {"type": "audio/pcma"}, "voice": "marin", "speed": 1.2},
    },
}
FLAT = {
    "modalities": ["audio"], "instructions": "Be brief.", "max_response_output_tokens": 500,
    "input_audio_format": "g711_ulaw", "input_audio_transcription": {"model": "gpt-4o-transcribe"},
    "input_audio_noise_reduction": {"type": "near_field"}, "turn_detection": {"type": "server_vad", "threshold": 0.6},
    "output_audio_format": "g711_alaw", "voice": "marin", "speed": 1.2,
}


@pytest.mark.parametrize("given", [GA_NESTED, FLAT], ids=["ga-nested", "flat"])
def test_both_shapes_translate_to_each_dialect(given: dict[str, Any]) -> None:
    config = SessionConfig.coerce(given)
    assert config == SessionConfig.coerce(FLAT)
    assert config.to_wire("ga") == GA_NESTED
    assert config.to_wire("beta") == FLAT
    # A wire session read back is the same config (round trip through either dialect).
    assert SessionConfig.coerce(config.to_wire("ga")) == config == SessionConfig.coerce(config.to_wire("beta"))


def test_a_nested_update_merges_field_by_field_with_a_flat_config() -> None:
    merged = SessionConfig.coerce(FLAT).merged({"audio": {"output": {"voice": "cedar"}}})
    assert merged.voice == "cedar" and merged.output_audio_format == "g711_alaw"


def test_custom_voice_include_prompt_and_truncation_are_ga_fields() -> None:
    config = SessionConfig.coerce({
        "voice": {"id": "voice_123"}, "include": ["item.input_audio_transcription.logprobs"],
        "prompt": {"id": "pmpt_1", "variables": {"name": "Ada"}, "version": "2"},
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.5}, "parallel_tool_calls": False,
    })
    wire = config.to_wire("ga")
    assert wire["audio"] == {"output": {"voice": {"id": "voice_123"}}}
    assert wire["include"] == ["item.input_audio_transcription.logprobs"] and wire["prompt"]["id"] == "pmpt_1"
    assert wire["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.5} and wire["parallel_tool_calls"] is False
    with pytest.raises(ConfigurationError, match="custom voice"):
        SessionConfig.coerce({"voice": {"id": "voice_123"}}).to_wire("beta")
    for name, value in (("include", []), ("prompt", {"id": "p"}), ("truncation", "auto")):
        with pytest.raises(ConfigurationError, match=f"{name} is a GA-only session field"):
            SessionConfig.coerce({name: value}).to_wire("beta")


@pytest.mark.parametrize(
    "given, fmt",
    [
        ({"type": "audio/pcm", "rate": 24000}, "pcm16"),
        ({"type": "audio/pcmu"}, "g711_ulaw"),
        ("audio/pcma", "g711_alaw"),
        ("pcm16", "pcm16"),
    ],
)
def test_ga_format_spellings_are_accepted_and_normalised(given: Any, fmt: str) -> None:
    assert normalize_audio_format(given) == fmt
    config = SessionConfig.coerce({"output_audio_format": given, "input_audio_format": given})
    assert config.output_audio_format == fmt and config.input_audio_format == fmt
    assert config.to_wire("beta") == {"input_audio_format": fmt, "output_audio_format": fmt}


def test_ga_names_are_accepted_as_aliases() -> None:
    config = SessionConfig.coerce({"output_modalities": ["text"], "max_output_tokens": 5, "noise_reduction": None})
    assert config.modalities == ["text"]
    assert config.to_wire("beta") == {"modalities": ["text"], "max_response_output_tokens": 5, "input_audio_noise_reduction": None}


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"output_audio_format": "mp3"}, "unknown audio format 'mp3'"),
        ({"temperature": "hot"}, "temperature"),
        ({"turn_detection": {"interrupt_response": "maybe"}}, "turn_detection.interrupt_response"),
        ("not a dict", "must be a SessionConfig or a dict"),
    ],
)
def test_invalid_configs_are_configuration_errors_that_say_where(bad: Any, where: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SessionConfig.coerce(bad)
    assert where in str(info.value)
    assert isinstance(info.value, ValueError)


def test_merged_replaces_only_the_fields_given() -> None:
    base = SessionConfig.coerce({"voice": "marin", "instructions": "a", "turn_detection": {"type": "server_vad"}})
    merged = base.merged({"instructions": "b", "turn_detection": None})
    assert merged.set_fields() == {"voice": "marin", "instructions": "b", "turn_detection": None}
    assert base.instructions == "a"  # frozen, unchanged


def test_helpers_the_core_needs() -> None:
    config = SessionConfig.coerce({"turn_detection": {"interrupt_response": False, "create_response": True}})
    assert config.interrupt_response is False and config.create_response is True
    assert SessionConfig().interrupt_response is None and SessionConfig().create_response is None
    assert SessionConfig.coerce(None) == SessionConfig()
    assert SessionConfig.coerce(config) is config
    with pytest.raises(pydantic.ValidationError):
        config.voice = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "session, fmt, interrupt, create",
    [
        ({"audio": {"output": {"format": {"type": "audio/pcmu"}}, "input": {"turn_detection": {"interrupt_response": True, "create_response": False}}}},
         "g711_ulaw", True, False),
        ({"output_audio_format": "g711_alaw", "turn_detection": {"interrupt_response": False}}, "g711_alaw", False, None),
        ({"output_audio_format": "opus?"}, None, None, None),
        ({"turn_detection": None}, None, None, None),
        ({}, None, None, None),
    ],
)
def test_reading_a_server_session_of_either_dialect(session: dict[str, Any], fmt: Any, interrupt: Any, create: Any) -> None:
    assert wire_output_audio_format(session) == fmt
    assert wire_interrupt_response(session) == interrupt
    assert wire_create_response(session) == create


def test_defaults_follow_the_reference_per_dialect() -> None:
    ga = DEFAULT_SESSION_CONFIG["ga"].to_wire("ga")
    assert ga["output_modalities"] == ["audio"]
    assert ga["audio"]["input"]["noise_reduction"] is None
    beta = DEFAULT_SESSION_CONFIG["beta"].to_wire("beta")
    assert beta["modalities"] == ["text", "audio"] and beta["voice"] == "ash"


def test_to_wire_can_leave_tracing_out() -> None:
    config = SessionConfig.coerce({"tracing": "auto", "voice": "v"})
    assert config.to_wire("beta", include_tracing=False) == {"voice": "v"}
    with pytest.raises(ConfigurationError, match="dialect"):
        config.to_wire("v2")
