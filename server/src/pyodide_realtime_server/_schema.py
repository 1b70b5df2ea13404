"""Client events checked against the API's own schema: the official ``openai`` SDK's generated types.

Each client event type maps to the SDK's ``TypedDict`` for it (``openai.types.realtime`` for GA,
``openai.types.beta.realtime`` for beta), validated by pydantic strictly (no coercion, no unknown
fields). A failure becomes the API's error shape: ``code`` (``invalid_type``, ``invalid_value``,
``unknown_parameter``, ``missing_required_parameter``), ``param`` as a dotted path
(``session.tools[0].type``) and a message in the API's words. The documented ranges and rules that
the types do not carry (``max_output_tokens`` 1-4096, ``speed`` 0.25-1.5...) are checked in
``_rules``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from openai.types.beta.realtime.realtime_client_event_param import RealtimeClientEventParam as BetaClientEvent
from openai.types.realtime.realtime_client_event_param import RealtimeClientEventParam as GaClientEvent
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from pyodide_realtime.dialects import Dialect

from ._errors import ClientEventError

# Strict: "5" is not an integer, true is not a number; unknown fields are refused, as the API does.
STRICT = ConfigDict(extra="forbid", strict=True)
# pydantic names the member of a union it tried in the error location: a class name
# ("RealtimeFunctionToolParam") or a type ("str", "literal['auto','none']"). API fields are snake_case.
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "bytes"})
_TYPE_ERRORS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a decimal number",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "list_type": "an array",
    "typed_dict_type": "an object",
    "model_type": "an object",
    "iterable_type": "an array",
    "none_required": "null",
}
_JSON_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal number", dict: "an object", list: "an array"}


def json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is not None and get_origin(annotation) is not Literal:
        annotation = get_args(annotation)[0]
    return annotation


def _event_types(union: Any) -> dict[str, Any]:
    """The SDK's client event TypedDicts by their ``type`` literal."""
    table: dict[str, Any] = {}
    for member in get_args(union):
        literal = _unwrap(get_type_hints(member, include_extras=True)["type"])
        table[get_args(literal)[0]] = member
    return table


@functools.cache
def client_event_types(dialect: Dialect) -> dict[str, Any]:
    return _event_types(GaClientEvent if dialect == "ga" else BetaClientEvent)


@functools.cache
def _adapter(dialect: Dialect, event_type: str) -> TypeAdapter[Any]:
    # A TypedDict keeps its own config, so the strict config rides on a holder: the SDK's TypedDicts
    # have none of their own and inherit it all the way down.
    holder = TypedDict("holder", {"event": client_event_types(dialect)[event_type]})  # type: ignore[misc]
    holder.__pydantic_config__ = STRICT  # type: ignore[attr-defined]
    return TypeAdapter(holder)


def param_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _is_tag(part: int | str) -> bool:
    return isinstance(part, str) and (part in _TYPE_TAGS or not _FIELD_NAME.fullmatch(part))


def _quoted_list(values: list[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _literals(error: ErrorDetails) -> list[str]:
    expected = str((error.get("ctx") or {}).get("expected", ""))
    return re.findall(r"'([^']*)'", expected)


def _value_at(event: Any, loc: tuple[int | str, ...]) -> Any:
    value = event
    for part in (p for p in loc if not _is_tag(p)):
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _ruled_out(found: list[ErrorDetails], at: int) -> bool:
    """The value is not of this union member's kind at all: wrong JSON type, or another "type" tag."""
    return any(
        len(e["loc"]) == at + 1 or (len(e["loc"]) == at + 2 and e["loc"][at + 1] == "type" and e["type"] == "literal_error")
        for e in found
    )


def _error_for(errors: list[ErrorDetails], event: dict[str, Any]) -> ClientEventError:
    """The one error the API would name, from pydantic's list (which tries every union member)."""
    prefix: list[int | str] = []
    while True:
        plain = [e for e in errors if not any(_is_tag(p) for p in e["loc"][len(prefix) :])]
        if plain:
            return _as_api_error(plain[0], event)
        # Every error is inside a union: the first union's members, as pydantic named them.
        first = min(next(i for i, p in enumerate(e["loc"]) if i >= len(prefix) and _is_tag(p)) for e in errors)
        at_union = [e for e in errors if len(e["loc"]) > first and _is_tag(e["loc"][first])]
        members: dict[str, list[ErrorDetails]] = {}
        for error in at_union:
            members.setdefault(str(error["loc"][first]), []).append(error)
        loc = tuple(at_union[0]["loc"][:first])

        candidates = {name: found for name, found in members.items() if not _ruled_out(found, first)}
        if not candidates:
            value = _value_at(event, loc)
            tags = [_literals(e) for found in members.values() for e in found if e["type"] == "literal_error"]
            supported = [value for group in tags for value in group]
            kinds = [e for found in members.values() for e in found if len(e["loc"]) == first + 1 and e["type"] in _TYPE_ERRORS]
            path = param_path(tuple(p for p in loc if not _is_tag(p)))
            if isinstance(value, dict) and "type" in value and supported:
                return ClientEventError(
                    "invalid_value", f"Invalid value: '{value['type']}'. Supported values are: {_quoted_list(supported)}.", f"{path}.type"
                )
            if isinstance(value, str) and supported:
                return ClientEventError("invalid_value", f"Invalid value: '{value}'. Supported values are: {_quoted_list(supported)}.", path)
            expected = " or ".join(dict.fromkeys(_TYPE_ERRORS[e["type"]] for e in kinds)) or "another value"
            return ClientEventError(
                "invalid_type", f"Invalid type for '{path}': expected {expected}, but got {json_type(value)} instead.", path
            )
        best = min(candidates.values(), key=len)
        errors = best
        prefix = list(best[0]["loc"][: first + 1])


def _as_api_error(error: ErrorDetails, event: dict[str, Any]) -> ClientEventError:
    loc = tuple(error["loc"])
    path = param_path(tuple(p for p in loc if not _is_tag(p)))
    value = _value_at(event, loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return ClientEventError("unknown_parameter", f"Unknown parameter: '{path}'.", path)
    if kind == "missing":
        return ClientEventError("missing_required_parameter", f"Missing required parameter: '{path}'.", path)
    if kind in ("literal_error", "enum"):
        return ClientEventError(
            "invalid_value", f"Invalid value: '{value}'. Supported values are: {_quoted_list(_literals(error))}.", path
        )
    if kind in _TYPE_ERRORS:
        return ClientEventError(
            "invalid_type",
            f"Invalid type for '{path}': expected {_TYPE_ERRORS[kind]}, but got {json_type(value)} instead.",
            path,
        )
    return ClientEventError("invalid_value", f"Invalid value for '{path}': {error['msg']}.", path)


# Fields the API documents as nullable ("send null to turn it off") though the SDK's param types do
# not say so: a null there is checked as if the field were absent.
NULLABLE_PATHS: dict[Dialect, dict[str, tuple[tuple[str, ...], ...]]] = {
    "ga": {
        "session.update": (
            ("session", "audio", "input", "noise_reduction"),
            ("session", "audio", "input", "transcription"),
            ("session", "audio", "input", "turn_detection"),
        )
    },
    "beta": {
        "session.update": (
            ("session", "turn_detection"),
            ("session", "input_audio_noise_reduction"),
            ("session", "input_audio_transcription"),
            ("session", "tracing"),
        )
    },
}


def _without_nulls(dialect: Dialect, event: dict[str, Any]) -> dict[str, Any]:
    paths = NULLABLE_PATHS[dialect].get(str(event.get("type")), ())
    if not paths:
        return event
    copied = dict(event)
    for path in paths:
        parent: Any = copied
        for step in path[:-1]:
            child = parent.get(step) if isinstance(parent, dict) else None
            if not isinstance(child, dict):
                break
            parent[step] = child = dict(child)  # copy on the way down: the event itself stays as sent
            parent = child
        else:
            if isinstance(parent, dict) and path[-1] in parent and parent[path[-1]] is None:
                del parent[path[-1]]
    return copied


# The type of what pydantic hands back for an ``Iterable[...]`` field (not exported by name).
_LAZY = type(TypeAdapter(Iterable[int]).validate_python([]))


def _drain(value: Any, loc: tuple[int | str, ...], event: dict[str, Any]) -> None:
    """pydantic checks ``Iterable[...]`` fields lazily, item by item as they are read: read them all."""
    if isinstance(value, _LAZY):
        raw = _value_at(event, loc)
        if not isinstance(raw, list):  # pydantic would iterate a string's characters, or an object's keys
            path = param_path(loc)
            raise ClientEventError(
                "invalid_type", f"Invalid type for '{path}': expected an array, but got {json_type(raw)} instead.", path
            )
        index = 0
        try:
            for index, item in enumerate(value):
                _drain(item, (*loc, index), event)
        except ValidationError as exc:
            errors = [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]
            raise _error_for(errors, event) from None  # type: ignore[arg-type]
    elif isinstance(value, dict):
        for key, item in value.items():
            _drain(item, (*loc, key), event)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _drain(item, (*loc, index), event)


def validate_client_event(dialect: Dialect, event: dict[str, Any]) -> None:
    """Raise ``ClientEventError`` unless ``event`` is a client event the API's schema accepts."""
    kind = event.get("type")
    if not isinstance(kind, str):
        if kind is None:
            raise ClientEventError("missing_required_parameter", "Missing required parameter: 'type'.", "type")
        raise ClientEventError("invalid_type", f"Invalid type for 'type': expected a string, but got {json_type(kind)} instead.", "type")
    types = client_event_types(dialect)
    if kind not in types:
        raise ClientEventError(
            "invalid_value", f"Invalid value: '{kind}'. Supported values are: {_quoted_list(sorted(types))}.", "type"
        )
    try:
        validated = _adapter(dialect, kind).validate_python({"event": _without_nulls(dialect, event)})
    except ValidationError as exc:
        errors = [{**e, "loc": tuple(e["loc"][1:])} for e in exc.errors(include_url=False)]  # drop the holder's key
        raise _error_for(errors, event) from None  # type: ignore[arg-type]
    _drain(validated["event"], (), event)
