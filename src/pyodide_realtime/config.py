"""The session configuration: one Python shape, serialised to either dialect's wire shape.

The user-facing shape is flat and snake_case (the beta API's names, which are also the OpenAI Agents
Python SDK's)::

    SessionConfig(
        instructions="Be brief.",
        voice="marin",
        modalities=["audio"],               # GA name output_modalities is accepted too
        input_audio_format="pcm16",         # "pcm16" | "g711_ulaw" | "g711_alaw" (GA dicts accepted)
        output_audio_format="g711_ulaw",
        turn_detection={"type": "server_vad", "interrupt_response": True},
        input_audio_transcription={"model": "gpt-4o-mini-transcribe"},
        input_audio_noise_reduction=None,   # explicit None is sent as null
        tools=[...], tool_choice="auto", tracing="auto",
    )

A plain dict with the same keys works wherever a ``SessionConfig`` does, and so does the GA API's own
nested shape (``{"type": "realtime", "audio": {"input": {...}, "output": {...}}, "output_modalities":
[...]}``): either is translated to each dialect. ``to_wire("beta")`` gives the flat beta session;
``to_wire("ga")`` the nested GA session. ``temperature`` exists only in beta; ``include``, ``prompt``,
``truncation``, ``parallel_tool_calls``, ``reasoning`` and a custom voice (``{"id": "voice_..."}``) only
in GA. Fields never set are omitted, an explicit ``None`` is sent as ``null``, ``False`` and ``0`` are
kept. An unknown or camelCase key is refused with the nearest known name (a typo never reaches the
server); a field newer than this release goes in ``extra_fields``, merged into the session as given.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._interfaces import FORMAT_RATES, AudioFormat
from .dialects import DialectSpec, get_dialect
from .errors import ConfigurationError

__all__ = [
    "GA_PATHS",
    "SessionConfig",
    "TurnDetection",
    "TracingConfig",
    "AudioFormat",
    "DEFAULT_SESSION_CONFIG",
    "normalize_audio_format",
    "ga_audio_format",
    "wire_output_audio_format",
    "wire_interrupt_response",
    "wire_create_response",
    "wire_tracing",
]

# The GA API names formats by MIME type; the beta API (and this package) by short name.
_GA_FORMAT_BY_NAME: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": FORMAT_RATES["pcm16"]},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_NAME_BY_GA_TYPE: dict[str, AudioFormat] = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_AUDIO_FORMATS: tuple[AudioFormat, ...] = get_args(AudioFormat)

#: The session's ``tracing``: ``"auto"``, a dict of settings, or ``None`` (off).
TracingConfig = Literal["auto"] | dict[str, Any] | None


def normalize_audio_format(value: Any) -> AudioFormat:
    """``"pcm16"``/``"g711_ulaw"``/``"g711_alaw"`` from either dialect's spelling (raise if neither)."""
    if isinstance(value, Mapping):
        value = value.get("type")
    if isinstance(value, str):
        if value in _AUDIO_FORMATS:
            return value
        if value in _NAME_BY_GA_TYPE:
            return _NAME_BY_GA_TYPE[value]
    raise ConfigurationError(
        f"unknown audio format {value!r}: use 'pcm16', 'g711_ulaw' or 'g711_alaw' "
        "(or the GA form {'type': 'audio/pcm', 'rate': 24000}, {'type': 'audio/pcmu'}, {'type': 'audio/pcma'})"
    )


def ga_audio_format(fmt: AudioFormat) -> dict[str, Any]:
    """The GA wire object for a format name."""
    return dict(_GA_FORMAT_BY_NAME[fmt])


class TurnDetection(BaseModel):
    """Voice activity detection settings (server_vad or semantic_vad); an unknown key is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    eagerness: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            check_keys(value, cls.model_fields, "turn_detection")
        return value


#: Field name (flat, as beta says it) -> where it lives in the GA session (a path of keys). The local
#: server reads beta sessions into its GA state with the same table.
GA_PATHS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "instructions": ("instructions",),
    "modalities": ("output_modalities",),
    "voice": ("audio", "output", "voice"),
    "speed": ("audio", "output", "speed"),
    "input_audio_format": ("audio", "input", "format"),
    "output_audio_format": ("audio", "output", "format"),
    "input_audio_transcription": ("audio", "input", "transcription"),
    "input_audio_noise_reduction": ("audio", "input", "noise_reduction"),
    "turn_detection": ("audio", "input", "turn_detection"),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "max_response_output_tokens": ("max_output_tokens",),
    "tracing": ("tracing",),
    "include": ("include",),
    "prompt": ("prompt",),
    "truncation": ("truncation",),
    "parallel_tool_calls": ("parallel_tool_calls",),
    "reasoning": ("reasoning",),
}
#: Fields the GA API has nowhere (neither in the session nor per response), with what to do instead.
_BETA_ONLY: dict[str, str] = {
    "temperature": "the GA API has no temperature setting, neither in the session nor per response: "
    "leave it out, or use dialect='beta'",
}
#: Fields only the GA API has.
_GA_ONLY = ("include", "prompt", "truncation", "parallel_tool_calls", "reasoning")
#: The GA nested shape: audio.input.<key> / audio.output.<key> -> our flat field.
_GA_AUDIO_FIELDS: dict[str, dict[str, str]] = {
    "input": {"format": "input_audio_format", "transcription": "input_audio_transcription",
              "noise_reduction": "input_audio_noise_reduction", "turn_detection": "turn_detection"},
    "output": {"format": "output_audio_format", "voice": "voice", "speed": "speed"},
}
#: What ``include`` may list.
INCLUDE_VALUES = ("item.input_audio_transcription.logprobs",)
_PROMPT_KEYS = ("id", "variables", "version")
_TRUNCATION_KEYS = ("type", "retention_ratio", "token_limits")
_TRUNCATION_MODES = ("auto", "disabled")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def check_keys(given: Mapping[Any, Any], known: Collection[str], where: str) -> None:
    """ConfigurationError for the first key of ``given`` not in ``known``, naming the nearest known one."""
    for key in given:
        if key in known:
            continue
        text = str(key)
        snake = _CAMEL.sub(r"_\1", text).lower()
        if snake != text and snake in known:
            raise ConfigurationError(f"{where} has no field {text!r}: the API's names are snake_case, use {snake!r}")
        nearest = difflib.get_close_matches(snake, [str(k) for k in known], n=1, cutoff=0.6)
        hint = f"did you mean {nearest[0]!r}?" if nearest else f"the fields are: {', '.join(sorted(map(str, known)))}"
        raise ConfigurationError(f"{where} has no field {text!r}: {hint}")


def _flat_session(value: Mapping[str, Any]) -> dict[str, Any]:
    """The flat shape of a session given flat or in the GA nested shape; unknown keys refused."""
    flat = {str(k) if isinstance(k, str) else k: v for k, v in value.items()}
    check_keys(flat, _SESSION_KEYS, "the session config")
    kind = flat.pop("type", "realtime")
    if kind != "realtime":
        raise ConfigurationError(f"session type {kind!r} is not supported: a Realtime session is type 'realtime'")
    audio = flat.pop("audio", None)
    if audio is None:
        return flat
    if not isinstance(audio, Mapping):
        raise ConfigurationError("session audio must be a dict like {'input': {...}, 'output': {...}}")
    check_keys(audio, _GA_AUDIO_FIELDS, "session audio")
    for side, fields in _GA_AUDIO_FIELDS.items():
        part = audio.get(side)
        if part is None:
            continue
        if not isinstance(part, Mapping):
            raise ConfigurationError(f"session audio.{side} must be a dict of {', '.join(fields)}")
        check_keys(part, fields, f"session audio.{side}")
        for key, name in fields.items():
            if key not in part:
                continue
            if name in flat or (name == "input_audio_noise_reduction" and "noise_reduction" in flat):
                raise ConfigurationError(f"{name} is given twice: as {name} and as audio.{side}.{key}; give it once")
            flat[name] = part[key]
    return flat


class SessionConfig(BaseModel):
    """The session, in one dialect-neutral shape (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    model: str | None = None
    instructions: str | None = None
    modalities: list[str] | None = Field(default=None, validation_alias=AliasChoices("modalities", "output_modalities"))
    #: A built-in voice name, or a custom voice as ``{"id": "voice_..."}`` (GA).
    voice: str | dict[str, str] | None = None
    speed: float | None = None
    input_audio_format: AudioFormat | None = None
    output_audio_format: AudioFormat | None = None
    input_audio_transcription: dict[str, Any] | None = None
    input_audio_noise_reduction: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("input_audio_noise_reduction", "noise_reduction")
    )
    turn_detection: TurnDetection | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    max_response_output_tokens: int | Literal["inf"] | None = Field(
        default=None, validation_alias=AliasChoices("max_response_output_tokens", "max_output_tokens")
    )
    tracing: TracingConfig = None
    #: GA: extra outputs to include, e.g. ``["item.input_audio_transcription.logprobs"]``.
    include: list[str] | None = None
    #: GA: a stored prompt, ``{"id": "pmpt_...", "variables": {...}, "version": "..."}``.
    prompt: dict[str, Any] | None = None
    #: GA: ``"auto"``, ``"disabled"`` or ``{"type": "retention_ratio", "retention_ratio": 0.8}``.
    truncation: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None
    #: Fields newer than this release, merged into the wire session as given (no check).
    extra_fields: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_both_shapes(cls, value: Any) -> Any:
        return _flat_session(value) if isinstance(value, Mapping) else value

    @field_validator("voice", mode="before")
    @classmethod
    def _voice(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            check_keys(value, ("id",), "a custom voice")
            if not isinstance(value.get("id"), str) or not value["id"]:
                raise ConfigurationError("a custom voice is {'id': 'voice_...'} with the voice's id as a string")
        return value

    @field_validator("include", mode="before")
    @classmethod
    def _include(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list) or any(v not in INCLUDE_VALUES for v in value):
            raise ConfigurationError(f"include must be a list of {', '.join(map(repr, INCLUDE_VALUES))}, not {value!r}")
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("id"), str):
            raise ConfigurationError("prompt must be a dict like {'id': 'pmpt_...', 'variables': {...}, 'version': '1'}")
        check_keys(value, _PROMPT_KEYS, "prompt")
        return value

    @field_validator("truncation", mode="before")
    @classmethod
    def _truncation(cls, value: Any) -> Any:
        if value is None or value in _TRUNCATION_MODES:
            return value
        if isinstance(value, Mapping):
            check_keys(value, _TRUNCATION_KEYS, "truncation")
            ratio = value.get("retention_ratio")
            if value.get("type") == "retention_ratio" and isinstance(ratio, (int, float)) and not isinstance(ratio, bool) \
                    and math.isfinite(ratio) and 0 <= ratio <= 1:
                return value
        raise ConfigurationError(
            f"truncation must be 'auto', 'disabled' or {{'type': 'retention_ratio', 'retention_ratio': 0.0..1.0}}, not {value!r}"
        )

    @field_validator("input_audio_format", "output_audio_format", mode="before")
    @classmethod
    def _accept_ga_format(cls, value: Any) -> Any:
        return None if value is None else normalize_audio_format(value)

    # Construction -------------------------------------------------------------------------------
    @classmethod
    def coerce(cls, value: SessionConfig | Mapping[str, Any] | None) -> SessionConfig:
        """A ``SessionConfig`` from itself, a dict, or None (empty); ConfigurationError if invalid."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"a session config must be a SessionConfig or a dict, not {type(value).__name__}"
            )
        try:
            return cls.model_validate(dict(value))
        except ConfigurationError:
            raise
        except ValidationError as exc:
            # Our own checks already say what to do: their message stands as it is.
            for error in exc.errors():
                own = (error.get("ctx") or {}).get("error")
                if isinstance(own, ConfigurationError):
                    raise ConfigurationError(str(own)) from None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid session config ({problems}); see SessionConfig for the fields") from None

    def set_fields(self) -> dict[str, Any]:
        """The fields that were set (explicit None included), as plain values."""
        return self.model_dump(exclude_unset=True)

    def merged(self, update: SessionConfig | Mapping[str, Any] | None) -> SessionConfig:
        """This config with every field set in ``update`` replacing its own (top-level replace)."""
        other = SessionConfig.coerce(update)
        return SessionConfig.coerce({**self.set_fields(), **other.set_fields()})

    def is_set(self, name: str) -> bool:
        return name in self.model_fields_set

    # What the core needs --------------------------------------------------------------------------
    @property
    def interrupt_response(self) -> bool | None:
        """``turn_detection.interrupt_response`` if configured."""
        return None if self.turn_detection is None else self.turn_detection.interrupt_response

    @property
    def create_response(self) -> bool | None:
        """``turn_detection.create_response`` if configured."""
        return None if self.turn_detection is None else self.turn_detection.create_response

    # Serialisation --------------------------------------------------------------------------------
    def to_wire(
        self, dialect: str | DialectSpec = "ga", *, include_tracing: bool = True, exclude: Collection[str] = ()
    ) -> dict[str, Any]:
        """The ``session`` object of a ``session.update`` in that dialect, without the ``exclude`` fields.

        Raises ConfigurationError for a field that dialect does not have (``temperature`` in GA).
        """
        spec = get_dialect(dialect)
        fields = self.set_fields()
        extras = fields.pop("extra_fields", None) or {}
        if not include_tracing:
            fields.pop("tracing", None)
        for name in exclude:
            fields.pop(name, None)
        if spec.name == "beta":
            for name in _GA_ONLY:
                if name in fields:
                    raise ConfigurationError(f"{name} is a GA-only session field: leave it out, or use dialect='ga'")
            if isinstance(fields.get("voice"), Mapping):
                raise ConfigurationError("a custom voice ({'id': ...}) needs the GA API: use dialect='ga' or a voice name")
            wire = fields
        else:
            for name, instead in _BETA_ONLY.items():
                if name in fields:
                    raise ConfigurationError(f"{name} is a beta-only session field: {instead}")
            wire = {"type": "realtime"}
            for name, value in fields.items():
                if name in ("input_audio_format", "output_audio_format") and value is not None:
                    value = ga_audio_format(value)
                _put(wire, GA_PATHS[name], value)
        _deep_merge(wire, extras)
        return wire


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _default_for(dialect: str) -> SessionConfig:
    # The reference transport's defaults; beta could not produce audio without text.
    common: dict[str, Any] = {
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
        "turn_detection": {"type": "semantic_vad"},
        "input_audio_noise_reduction": None,
        "speed": 1,
    }
    if dialect == "beta":
        return SessionConfig.coerce({"voice": "ash", "modalities": ["text", "audio"], **common})
    return SessionConfig.coerce({"modalities": ["audio"], **common})


_SESSION_KEYS: frozenset[str] = frozenset(
    {*SessionConfig.model_fields, "output_modalities", "noise_reduction", "max_output_tokens", "type", "audio"}
)

#: What ``connect`` starts from before your ``initial_session_config`` is merged in, per dialect.
DEFAULT_SESSION_CONFIG: dict[str, SessionConfig] = {"ga": _default_for("ga"), "beta": _default_for("beta")}


# Reading a session the server sent (session.created / session.updated), either dialect ------------
def _get(session: Mapping[str, Any], *path: str) -> Any:
    value: Any = session
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def wire_output_audio_format(session: Mapping[str, Any]) -> AudioFormat | None:
    """The output format a server session names, or None if it names none we know."""
    value = _get(session, "audio", "output", "format")
    if value is None:
        value = session.get("output_audio_format")
    try:
        return None if value is None else normalize_audio_format(value)
    except ConfigurationError:
        return None


def _turn_detection(session: Mapping[str, Any]) -> Any:
    value = _get(session, "audio", "input", "turn_detection")
    return session.get("turn_detection") if value is None else value


def wire_interrupt_response(session: Mapping[str, Any]) -> bool | None:
    value = _get(_turn_detection(session) or {}, "interrupt_response")
    return value if isinstance(value, bool) else None


def wire_create_response(session: Mapping[str, Any]) -> bool | None:
    value = _get(_turn_detection(session) or {}, "create_response")
    return value if isinstance(value, bool) else None


def wire_tracing(session: Mapping[str, Any]) -> Any:
    return session.get("tracing")
