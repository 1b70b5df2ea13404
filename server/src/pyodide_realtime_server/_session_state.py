"""One connection's session, kept in the GA shape and shown in the connection's dialect.

A beta client's flat fields (``voice``, ``input_audio_format``...) are translated on the way in and
out. What the types cannot say is checked here before anything changes (an invalid update changes
nothing): the documented ranges (``_rules``), and what may not change once set (model, tracing,
and the voice once the model has spoken).
"""

from __future__ import annotations

import copy
import secrets
from typing import Any, Literal

from pyodide_realtime.config import GA_PATHS, ga_audio_format, normalize_audio_format
from pyodide_realtime.dialects import GA, Dialect, get_dialect

from ._errors import ClientEventError
from ._rules import check_session

DEFAULT_VOICE = "alloy"
DEFAULT_INSTRUCTIONS = "You are the simulated model of pyodide-realtime's local server."
DEFAULT_TEMPERATURE = 0.8  # beta only
SessionType = Literal["realtime", "transcription"]

# In response.content_part.added/done both dialects say "audio"/"text" (the SDK types and the JS SDK).
PART_TYPES = {"audio": "audio", "text": "text"}

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
# What a semantic_vad turn means for the energy of speech it waits for, as server_vad fields.
SEMANTIC_VAD_AS_SERVER_VAD = {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
_BETA_TURN_FIELDS = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response", "eagerness")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def turn_detection_with_defaults(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    defaults = SEMANTIC_VAD_DEFAULTS if value.get("type") == "semantic_vad" else SERVER_VAD_DEFAULTS
    return {**defaults, **value}


class SessionState:
    """The session of one connection (or of a minted key). ``model`` None means the dialect's default."""

    def __init__(self, model: str | None, dialect: Dialect) -> None:
        self.dialect: Dialect = dialect
        self.temperature = DEFAULT_TEMPERATURE
        self.type: SessionType = "realtime"
        self.tracing_set = False
        self.data: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": new_id("sess"),
            "model": model or get_dialect(dialect).default_model,
            "output_modalities": ["audio"],
            "instructions": DEFAULT_INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "include": None,
            "audio": {
                "input": {
                    "format": ga_audio_format("pcm16"),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": dict(SERVER_VAD_DEFAULTS),
                },
                "output": {"format": ga_audio_format("pcm16"), "voice": DEFAULT_VOICE, "speed": 1.0},
            },
        }

    # What the simulated model needs to know.
    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def input_format(self) -> str:
        return normalize_audio_format(self.data["audio"]["input"]["format"])

    @property
    def output_format(self) -> str:
        return normalize_audio_format(self.data["audio"]["output"]["format"])

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

    # -- changes -----------------------------------------------------------------------------

    def seed(self, session: dict[str, Any] | None) -> SessionState:
        """Start from the GA config given when a key was minted (whatever the connection's dialect)."""
        if session:
            if isinstance(session.get("model"), str):
                self.data["model"] = session["model"]  # chosen at creation: only later changes are refused
            dialect, self.dialect = self.dialect, GA.name
            try:
                self.update(session, require_type=False)
            finally:
                self.dialect = dialect
        return self

    def update(self, session: dict[str, Any], *, require_type: bool = True, model_spoke: bool = False, fresh: bool = True) -> None:
        """Apply a ``session`` the schema accepted, all or nothing, after the rules' checks.

        ``model_spoke``: assistant audio exists, so the voice is frozen. ``fresh``: nothing happened
        yet on this connection, so the session type may still change.
        """
        check_session(self.dialect, session)
        staged = copy.deepcopy(self.data)
        if self.dialect == "ga":
            kind = session.get("type")
            if kind is None and require_type:
                raise ClientEventError("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type")
            if kind is not None and kind != self.type and not fresh:
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{kind}'. A {self.type} session cannot become a {kind} session: open a new connection.",
                    "session.type",
                )
            self._merge_ga(staged, session)
            new_type: SessionType = kind or self.type
        else:
            self._merge_beta(staged, session)
            new_type = self.type
        self._check_frozen(staged, session, model_spoke)
        if "temperature" in session:
            self.temperature = float(session["temperature"])
        self.tracing_set = self.tracing_set or staged["tracing"] is not None  # once set, frozen
        self.data = staged
        self.type = new_type

    @staticmethod
    def _merge_ga(staged: dict[str, Any], session: dict[str, Any]) -> None:
        for key, value in session.items():
            if key == "type":
                continue
            if key == "audio":
                for side in ("input", "output"):
                    for field, item in (value.get(side) or {}).items():
                        if field == "turn_detection":
                            item = turn_detection_with_defaults(item)
                        elif field == "format":
                            item = ga_audio_format(normalize_audio_format(item))
                        staged["audio"][side][field] = copy.deepcopy(item)
            else:
                staged[key] = copy.deepcopy(value)

    @staticmethod
    def _merge_beta(staged: dict[str, Any], session: dict[str, Any]) -> None:
        for key, value in session.items():
            if key in ("temperature", "client_secret"):
                continue
            if key in ("input_audio_format", "output_audio_format"):
                value = ga_audio_format(normalize_audio_format(value))
            elif key == "turn_detection":
                value = turn_detection_with_defaults(value)
            elif key == "modalities":
                value = ["text"] if list(value) == ["text"] else ["audio"]
            target = staged
            path = GA_PATHS.get(key, (key,))
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = copy.deepcopy(value)

    def _check_frozen(self, staged: dict[str, Any], session: dict[str, Any], model_spoke: bool) -> None:
        if staged["model"] != self.data["model"]:
            raise ClientEventError(
                "invalid_value",
                "The model of a session cannot change: open a new connection with ?model=<model>.",
                "session.model",
            )
        if self.tracing_set and staged["tracing"] != self.data["tracing"]:
            raise ClientEventError(
                "invalid_value", "Tracing configuration cannot be modified once it has been set for a session.", "session.tracing"
            )
        if model_spoke and staged["audio"]["output"]["voice"] != self.voice:
            raise ClientEventError(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice" if self.dialect == "ga" else "session.voice",
            )

    # -- what the client sees ----------------------------------------------------------------

    def render(self) -> dict[str, Any]:
        """The session as ``session.created`` / ``session.updated`` carry it in this dialect."""
        data = copy.deepcopy(self.data)
        if self.type == "transcription":
            audio_input = data["audio"]["input"]
            turn = audio_input["turn_detection"]
            if turn is not None and turn.get("type") == "server_vad":
                turn.pop("create_response", None)
                turn.pop("interrupt_response", None)
                turn.pop("idle_timeout_ms", None)
            return {"type": "transcription", "id": data["id"], "object": "realtime.transcription_session", "audio": {"input": audio_input}, "include": data["include"]}
        if self.dialect == "ga":
            return data
        audio = data["audio"]
        turn = audio["input"]["turn_detection"]
        return {
            "id": data["id"],
            "object": "realtime.session",
            "model": data["model"],
            "modalities": ["text"] if data["output_modalities"] == ["text"] else ["audio", "text"],
            "instructions": data["instructions"],
            "voice": audio["output"]["voice"],
            "input_audio_format": normalize_audio_format(audio["input"]["format"]),
            "output_audio_format": normalize_audio_format(audio["output"]["format"]),
            "input_audio_transcription": audio["input"]["transcription"],
            "input_audio_noise_reduction": audio["input"]["noise_reduction"],
            "turn_detection": None if turn is None else {k: v for k, v in turn.items() if k in _BETA_TURN_FIELDS},
            "tools": data["tools"],
            "tool_choice": data["tool_choice"],
            "temperature": self.temperature,
            "max_response_output_tokens": data["max_output_tokens"],
            "speed": audio["output"]["speed"],
            "tracing": data["tracing"],
        }

    def response_fields(self, modality: str, max_output_tokens: Any) -> dict[str, Any]:
        """The output fields a ``response`` object carries in this dialect."""
        if self.dialect == "ga":
            return {
                "output_modalities": [modality],
                "audio": {"output": {"format": copy.deepcopy(self.data["audio"]["output"]["format"]), "voice": self.voice}},
                "max_output_tokens": max_output_tokens,
            }
        return {
            "modalities": ["text"] if modality == "text" else ["audio", "text"],
            "output_audio_format": self.output_format,
            "voice": self.voice,
            "max_output_tokens": max_output_tokens,
            "temperature": self.temperature,
        }

