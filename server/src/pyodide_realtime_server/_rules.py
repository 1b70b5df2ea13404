"""The documented ranges and rules the SDK's types do not carry, checked after the types passed.

Each limit is the API reference's own: ``max_output_tokens`` 1-4096 or ``"inf"``, ``speed``
0.25-1.5, beta ``temperature`` 0.6-1.2, turn detection ``threshold`` 0-1, GA ``output_modalities``
exactly one of ``["audio"]`` / ``["text"]``, beta ``modalities`` ``["text"]`` or ``["audio", "text"]``,
a function tool's ``parameters`` a JSON-schema object and its name 1-64 of ``[a-zA-Z0-9_-]``.

Some sets the SDK types as "any string, or one of these" (``Union[str, Literal[...]]``): the voice
and the transcription model. The API refuses a name outside the set, so these are checked here
against the SDK's own literals. An audio format object must name its ``type`` (the types make every
field optional).
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args, get_origin, get_type_hints

from openai.types.realtime.audio_transcription_param import AudioTranscriptionParam
from openai.types.realtime.realtime_audio_config_output_param import Voice

from pyodide_realtime.dialects import Dialect

from ._errors import ClientEventError

MIN_OUTPUT_TOKENS = 1
MAX_OUTPUT_TOKENS = 4096
MIN_SPEED = 0.25
MAX_SPEED = 1.5
MIN_BETA_TEMPERATURE = 0.6
MAX_BETA_TEMPERATURE = 1.2
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _literal_values(annotation: Any) -> tuple[str, ...]:
    """The strings of every ``Literal`` inside ``annotation`` (a union), in the SDK's order."""
    if get_origin(annotation) is Literal:
        return tuple(str(value) for value in get_args(annotation))
    return tuple(value for member in get_args(annotation) for value in _literal_values(member))


# The built-in voices. The beta types list an older subset; the beta dialect reaches the same
# models, which take every GA voice, so both dialects use the GA set.
VOICES = _literal_values(Voice)
TRANSCRIPTION_MODELS = _literal_values(get_type_hints(AudioTranscriptionParam)["model"])


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _one_of(param: str, value: Any, allowed: tuple[str, ...]) -> None:
    """A plain string must be one of ``allowed`` (an object, e.g. a custom voice ``{"id": ...}``, passes)."""
    if isinstance(value, str) and value not in allowed:
        raise ClientEventError("invalid_value", f"Invalid value: '{value}'. Supported values are: {_quoted(allowed)}.", param)


def _audio_format(param: str, value: Any) -> None:
    """A GA format object without a ``type`` says nothing (the API cannot tell which format is meant)."""
    if isinstance(value, dict) and "type" not in value:
        raise ClientEventError(
            "invalid_value",
            f"Invalid value for '{param}': the format object must name its 'type' "
            "('audio/pcm' with 'rate': 24000, 'audio/pcmu' or 'audio/pcma').",
            param,
        )


def _transcription(param: str, transcription: Any) -> None:
    if isinstance(transcription, dict):
        _one_of(f"{param}.model", transcription.get("model"), TRANSCRIPTION_MODELS)


def _in_range(param: str, value: Any, minimum: float, maximum: float, *, decimal: bool = False) -> None:
    """``value`` within the field's range; the code names the field's kind (integer or decimal)."""
    if value is None or isinstance(value, str):
        return
    kind = "decimal" if decimal else "integer"
    if value < minimum:
        raise ClientEventError(
            f"{kind}_below_min_value",
            f"Invalid '{param}': {kind} below minimum value. Expected a value >= {minimum}, but got {value} instead.",
            param,
        )
    if value > maximum:
        raise ClientEventError(
            f"{kind}_above_max_value",
            f"Invalid '{param}': {kind} above maximum value. Expected a value <= {maximum}, but got {value} instead.",
            param,
        )


def _max_tokens(param: str, value: Any) -> None:
    if value is not None and value != "inf":
        _in_range(param, value, MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS)


def _modalities(dialect: Dialect, param: str, value: Any) -> None:
    if value is None:
        return
    chosen = list(value)
    if dialect == "ga" and chosen not in (["audio"], ["text"]):
        raise ClientEventError(
            "invalid_value",
            f"Invalid '{param}': expected exactly one of ['audio'] or ['text'] (audio replies carry their transcript), "
            f"but got {chosen} instead.",
            param,
        )
    if dialect == "beta" and sorted(set(chosen)) not in (["text"], ["audio", "text"]):
        raise ClientEventError(
            "invalid_value",
            f"Invalid modalities: {chosen}. Supported combinations are: ['text'] and ['audio', 'text'].",
            param,
        )


def _tools(param: str, tools: Any) -> None:
    for index, tool in enumerate(tools or []):
        if tool.get("type", "function") != "function":
            continue
        name = tool.get("name")
        if name is not None and not TOOL_NAME.fullmatch(name):
            raise ClientEventError(
                "invalid_value",
                f"Invalid '{param}[{index}].name': string does not match pattern. Expected a string that matches "
                f"the pattern '^[a-zA-Z0-9_-]{{1,64}}$'.",
                f"{param}[{index}].name",
            )
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ClientEventError(
                "invalid_type",
                f"Invalid type for '{param}[{index}].parameters': expected a JSON schema object.",
                f"{param}[{index}].parameters",
            )


def _turn_detection(param: str, turn: Any) -> None:
    if not isinstance(turn, dict):
        return
    _in_range(f"{param}.threshold", turn.get("threshold"), 0.0, 1.0, decimal=True)
    for name in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        _in_range(f"{param}.{name}", turn.get(name), 0, float("inf"))


def check_session(dialect: Dialect, session: dict[str, Any]) -> None:
    """The ranges and rules of a ``session`` whose types already passed."""
    if dialect == "ga":
        audio = session.get("audio") or {}
        output = audio.get("output") or {}
        _max_tokens("session.max_output_tokens", session.get("max_output_tokens"))
        _in_range("session.audio.output.speed", output.get("speed"), MIN_SPEED, MAX_SPEED, decimal=True)
        _modalities(dialect, "session.output_modalities", session.get("output_modalities"))
        audio_input = audio.get("input") or {}
        _turn_detection("session.audio.input.turn_detection", audio_input.get("turn_detection"))
        _transcription("session.audio.input.transcription", audio_input.get("transcription"))
        _audio_format("session.audio.input.format", audio_input.get("format"))
        _audio_format("session.audio.output.format", output.get("format"))
        _one_of("session.audio.output.voice", output.get("voice"), VOICES)
    else:
        _max_tokens("session.max_response_output_tokens", session.get("max_response_output_tokens"))
        _in_range("session.speed", session.get("speed"), MIN_SPEED, MAX_SPEED, decimal=True)
        _in_range("session.temperature", session.get("temperature"), MIN_BETA_TEMPERATURE, MAX_BETA_TEMPERATURE, decimal=True)
        _modalities(dialect, "session.modalities", session.get("modalities"))
        _turn_detection("session.turn_detection", session.get("turn_detection"))
        _transcription("session.input_audio_transcription", session.get("input_audio_transcription"))
        _one_of("session.voice", session.get("voice"), VOICES)
    _tools("session.tools", session.get("tools"))


def check_response_options(dialect: Dialect, options: dict[str, Any]) -> None:
    """The ranges and rules of a ``response.create``'s ``response`` whose types already passed."""
    if dialect == "ga":
        _max_tokens("response.max_output_tokens", options.get("max_output_tokens"))
        _modalities(dialect, "response.output_modalities", options.get("output_modalities"))
        output = (options.get("audio") or {}).get("output") or {}
        _audio_format("response.audio.output.format", output.get("format"))
        _one_of("response.audio.output.voice", output.get("voice"), VOICES)
    else:
        _max_tokens("response.max_response_output_tokens", options.get("max_response_output_tokens"))
        _in_range("response.temperature", options.get("temperature"), MIN_BETA_TEMPERATURE, MAX_BETA_TEMPERATURE, decimal=True)
        _modalities(dialect, "response.modalities", options.get("modalities"))
        _one_of("response.voice", options.get("voice"), VOICES)
    _tools("response.tools", options.get("tools"))
