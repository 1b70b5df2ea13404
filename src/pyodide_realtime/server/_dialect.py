"""The two dialects of the Realtime protocol, as the simulated model speaks them.

The session is kept in the GA shape (nested ``audio.input`` / ``audio.output``); a beta client's flat
fields are translated on the way in and out. Event and content names that differ live in
``WIRE_NAMES``. Unknown session fields are refused as the real API refuses them, so a client that
mixes the dialects finds out here and not in production.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any, Literal

Dialect = Literal["ga", "beta"]

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_VOICE = "alloy"

WIRE_NAMES: dict[Dialect, dict[str, str]] = {
    "ga": {
        "audio_delta": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
        "transcript_done": "response.output_audio_transcript.done",
        "text_delta": "response.output_text.delta",
        "text_done": "response.output_text.done",
        "audio_part": "output_audio",
        "text_part": "output_text",
    },
    "beta": {
        "audio_delta": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
        "transcript_done": "response.audio_transcript.done",
        "text_delta": "response.text.delta",
        "text_done": "response.text.done",
        "audio_part": "audio",
        "text_part": "text",
    },
}

GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")
PCM_RATE = 24_000

GA_SESSION_KEYS = {
    "type",
    "model",
    "output_modalities",
    "instructions",
    "audio",
    "include",
    "tracing",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "prompt",
}
GA_AUDIO_INPUT_KEYS = {"format", "transcription", "noise_reduction", "turn_detection"}
GA_AUDIO_OUTPUT_KEYS = {"format", "voice", "speed"}
BETA_SESSION_KEYS = {
    "model",
    "modalities",
    "instructions",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "turn_detection",
    "tools",
    "tool_choice",
    "temperature",
    "max_response_output_tokens",
    "input_audio_noise_reduction",
    "speed",
    "tracing",
    "include",
}
# Read-only fields a client may echo back from a session it received; accepted and ignored.
ECHOED_KEYS = {"id", "object", "expires_at", "client_secret"}
# beta flat field -> GA path
BETA_TO_GA_PATH: dict[str, tuple[str, ...]] = {
    "voice": ("audio", "output", "voice"),
    "speed": ("audio", "output", "speed"),
    "input_audio_format": ("audio", "input", "format"),
    "output_audio_format": ("audio", "output", "format"),
    "input_audio_transcription": ("audio", "input", "transcription"),
    "input_audio_noise_reduction": ("audio", "input", "noise_reduction"),
    "turn_detection": ("audio", "input", "turn_detection"),
    "max_response_output_tokens": ("max_output_tokens",),
}
TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")
DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}


class ClientEventError(Exception):
    """A client event the real API would refuse; becomes an ``error`` event naming its event_id."""

    def __init__(self, code: str, message: str, param: str | None = None, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.type = type_

    def as_error(self, event_id: str | None) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message, "param": self.param, "event_id": event_id}


def unknown_parameter(path: str) -> ClientEventError:
    return ClientEventError("unknown_parameter", f"Unknown parameter: '{path}'.", path)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _ga_format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in GA_FORMATS:
        raise ClientEventError(
            "invalid_value",
            f"Invalid value for '{param}': expected an object with 'type' one of 'audio/pcm', 'audio/pcmu', 'audio/pcma'.",
            param,
        )
    if value["type"] == "audio/pcm":
        if value.get("rate", PCM_RATE) != PCM_RATE:
            raise ClientEventError(
                "invalid_value", f"Invalid value for '{param}.rate': only 24000 is supported.", f"{param}.rate"
            )
        return {"type": "audio/pcm", "rate": PCM_RATE}
    return {"type": value["type"]}


def _beta_format(value: Any, param: str) -> dict[str, Any]:
    if value not in BETA_FORMATS:
        raise ClientEventError(
            "invalid_value", f"Invalid value: '{value}'. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'.", param
        )
    formats: dict[str, dict[str, Any]] = {
        "pcm16": {"type": "audio/pcm", "rate": PCM_RATE},
        "g711_ulaw": {"type": "audio/pcmu"},
        "g711_alaw": {"type": "audio/pcma"},
    }
    return formats[value]


def _turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in TURN_DETECTION_TYPES:
        raise ClientEventError(
            "invalid_value", f"Invalid value for '{param}.type': expected 'server_vad' or 'semantic_vad'.", f"{param}.type"
        )
    merged = {**DEFAULT_TURN_DETECTION, **value}
    threshold = merged["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ClientEventError(
            "invalid_value", f"Invalid value for '{param}.threshold': expected a number from 0 to 1.", f"{param}.threshold"
        )
    for name in ("prefix_padding_ms", "silence_duration_ms"):
        if isinstance(merged[name], bool) or not isinstance(merged[name], int) or merged[name] < 0:
            raise ClientEventError(
                "invalid_type", f"Invalid type for '{param}.{name}': expected a non-negative integer.", f"{param}.{name}"
            )
    return merged


def _modalities(value: Any, param: str, *, ga: bool) -> list[str]:
    """The requested modalities, as given; any list with "audio" means an audio reply with a transcript."""
    if not isinstance(value, list) or set(value) not in ({"audio"}, {"text"}, {"audio", "text"}):
        hint = "['audio'] or ['text']" if ga else "['text', 'audio'] or ['text']"
        raise ClientEventError("invalid_value", f"Invalid value for '{param}': expected {hint}.", param)
    return list(dict.fromkeys(value))


class SessionConfig:
    """One connection's session, stored GA-shaped; ``render`` shows it in the connection's dialect."""

    def __init__(self, model: str, dialect: Dialect) -> None:
        self.dialect: Dialect = dialect
        self.temperature = 0.8  # beta only
        self.data: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": new_id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "You are the simulated model of pyodide-realtime's local server.",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": PCM_RATE},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": dict(DEFAULT_TURN_DETECTION),
                },
                "output": {"format": {"type": "audio/pcm", "rate": PCM_RATE}, "voice": DEFAULT_VOICE, "speed": 1.0},
            },
        }

    # What the simulated model needs to know.
    @property
    def input_format(self) -> str:
        return GA_FORMATS[self.data["audio"]["input"]["format"]["type"]]

    @property
    def output_format(self) -> str:
        return GA_FORMATS[self.data["audio"]["output"]["format"]["type"]]

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        turn: dict[str, Any] | None = self.data["audio"]["input"]["turn_detection"]
        return turn

    @property
    def transcription(self) -> dict[str, Any] | None:
        transcription: dict[str, Any] | None = self.data["audio"]["input"]["transcription"]
        return transcription

    @property
    def modality(self) -> str:
        return "text" if self.data["output_modalities"] == ["text"] else "audio"

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.data.get("tools") or [])

    @property
    def tool_choice(self) -> Any:
        return self.data.get("tool_choice", "auto")

    @property
    def voice(self) -> str:
        return str(self.data["audio"]["output"]["voice"])

    def update(self, session: Any, *, require_type: bool = True) -> None:
        """Validate ``session`` completely, then apply it (an invalid update changes nothing)."""
        if not isinstance(session, dict):
            raise ClientEventError("invalid_type", "Invalid type for 'session': expected an object.", "session")
        staged = copy.deepcopy(self.data)
        if self.dialect == "ga":
            self._update_ga(staged, session, require_type)
        else:
            self._update_beta(staged, session)
        self.data = staged

    def _update_ga(self, staged: dict[str, Any], session: dict[str, Any], require_type: bool) -> None:
        for key in session:
            if key not in GA_SESSION_KEYS and key not in ECHOED_KEYS:
                raise unknown_parameter(f"session.{key}")
        if require_type and "type" not in session:
            raise ClientEventError("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type")
        if session.get("type", "realtime") != "realtime":
            raise ClientEventError(
                "invalid_value",
                "Invalid value for 'session.type': this server simulates 'realtime' sessions only.",
                "session.type",
            )
        for key, value in session.items():
            if key in ECHOED_KEYS or key == "type":
                continue
            if key == "output_modalities":
                staged[key] = _modalities(value, "session.output_modalities", ga=True)
            elif key == "audio":
                self._update_ga_audio(staged["audio"], value)
            else:
                staged[key] = copy.deepcopy(value)

    @staticmethod
    def _update_ga_audio(audio: dict[str, Any], value: Any) -> None:
        if not isinstance(value, dict):
            raise ClientEventError("invalid_type", "Invalid type for 'session.audio': expected an object.", "session.audio")
        for side, keys in (("input", GA_AUDIO_INPUT_KEYS), ("output", GA_AUDIO_OUTPUT_KEYS)):
            part = value.get(side)
            if part is None:
                continue
            param = f"session.audio.{side}"
            if not isinstance(part, dict):
                raise ClientEventError("invalid_type", f"Invalid type for '{param}': expected an object.", param)
            for key, item in part.items():
                if key not in keys:
                    raise unknown_parameter(f"{param}.{key}")
                if key == "format":
                    audio[side][key] = _ga_format(item, f"{param}.format")
                elif key == "turn_detection":
                    audio[side][key] = _turn_detection(item, f"{param}.turn_detection")
                else:
                    audio[side][key] = copy.deepcopy(item)
        for key in value:
            if key not in ("input", "output"):
                raise unknown_parameter(f"session.audio.{key}")

    def _update_beta(self, staged: dict[str, Any], session: dict[str, Any]) -> None:
        for key, value in session.items():
            if key in ECHOED_KEYS:
                continue
            if key not in BETA_SESSION_KEYS:
                raise unknown_parameter(f"session.{key}")
            param = f"session.{key}"
            if key == "modalities":
                staged["output_modalities"] = _modalities(value, param, ga=False)
                continue
            if key == "temperature":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ClientEventError("invalid_type", "Invalid type for 'session.temperature': expected a number.", param)
                continue  # applied below, once everything validated
            if key in ("input_audio_format", "output_audio_format"):
                value = _beta_format(value, param)
            elif key == "turn_detection":
                value = _turn_detection(value, param)
            target = staged
            path = BETA_TO_GA_PATH.get(key, (key,))
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = copy.deepcopy(value)
        if "temperature" in session:
            self.temperature = float(session["temperature"])

    def render(self) -> dict[str, Any]:
        """The session as ``session.created`` / ``session.updated`` carry it in this dialect."""
        data = copy.deepcopy(self.data)
        if self.dialect == "ga":
            return data
        audio = data["audio"]
        beta_format = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
        return {
            "id": data["id"],
            "object": "realtime.session",
            "model": data["model"],
            "modalities": ["text"] if data["output_modalities"] == ["text"] else ["audio", "text"],
            "instructions": data["instructions"],
            "voice": audio["output"]["voice"],
            "input_audio_format": beta_format[audio["input"]["format"]["type"]],
            "output_audio_format": beta_format[audio["output"]["format"]["type"]],
            "input_audio_transcription": audio["input"]["transcription"],
            "input_audio_noise_reduction": audio["input"]["noise_reduction"],
            "turn_detection": audio["input"]["turn_detection"],
            "tools": data["tools"],
            "tool_choice": data["tool_choice"],
            "temperature": self.temperature,
            "max_response_output_tokens": data["max_output_tokens"],
            "speed": audio["output"]["speed"],
            "tracing": data["tracing"],
        }

    def output_audio_description(self) -> dict[str, Any]:
        """The output-format fields a ``response`` object carries in this dialect."""
        if self.dialect == "ga":
            return {
                "output_modalities": list(self.data["output_modalities"]),
                "audio": {"output": copy.deepcopy(self.data["audio"]["output"])},
            }
        rendered = self.render()
        return {
            "modalities": rendered["modalities"],
            "output_audio_format": rendered["output_audio_format"],
            "voice": rendered["voice"],
        }


def seed_session(config: SessionConfig, session: dict[str, Any] | None) -> None:
    """Start a connection from the GA config given when its key was minted (whatever its dialect)."""
    if not session:
        return
    staged = copy.deepcopy(config.data)
    config._update_ga(staged, session, require_type=False)
    config.data = staged
