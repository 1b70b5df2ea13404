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

A plain dict with the same keys works wherever a ``SessionConfig`` does. ``to_wire("beta")`` gives the
flat beta session; ``to_wire("ga")`` the nested GA session (``type: "realtime"``, ``audio.input`` /
``audio.output``; ``temperature`` exists only in beta). Fields never set are omitted, an explicit ``None`` is sent as ``null``, ``False``
and ``0`` are kept. Keys this model does not know are passed through unchanged (dicts are merged into
the generated session), so any newer API field can be sent without waiting for a release.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._interfaces import FORMAT_RATES, AudioFormat
from .dialects import DialectSpec, get_dialect
from .errors import ConfigurationError

__all__ = [
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
    """Voice activity detection settings; every key the API knows may be given, unknown ones pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    idle_timeout_ms: int | None = None
    eagerness: str | None = None


# Field name -> where it lives in the GA session (a path of keys).
_GA_PATHS: dict[str, tuple[str, ...]] = {
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
}
#: Fields the GA API has nowhere (neither in the session nor per response), with what to do instead.
_BETA_ONLY: dict[str, str] = {
    "temperature": "the GA API has no temperature setting, neither in the session nor per response: "
    "leave it out, or use dialect='beta'",
}


class SessionConfig(BaseModel):
    """The session, in one dialect-neutral shape (see the module docstring)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    model: str | None = None
    instructions: str | None = None
    modalities: list[str] | None = Field(default=None, validation_alias=AliasChoices("modalities", "output_modalities"))
    voice: str | None = None
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
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid session config ({problems}); see SessionConfig for the fields") from None

    def set_fields(self) -> dict[str, Any]:
        """The fields that were set (explicit None included), extras too, as plain values."""
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
        extras = {k: fields.pop(k) for k in list(fields) if k not in type(self).model_fields}
        if not include_tracing:
            fields.pop("tracing", None)
        for name in exclude:
            fields.pop(name, None)
        if spec.name == "beta":
            wire = fields
        else:
            for name, instead in _BETA_ONLY.items():
                if name in fields:
                    raise ConfigurationError(f"{name} is a beta-only session field: {instead}")
            wire = {"type": "realtime"}
            for name, value in fields.items():
                if name in ("input_audio_format", "output_audio_format") and value is not None:
                    value = ga_audio_format(value)
                _put(wire, _GA_PATHS[name], value)
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
