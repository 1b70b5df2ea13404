"""``function_tool``: a type-hinted Python function (sync or async) as a tool the model can call.

The JSON schema comes from the signature and the docstring through pydantic; the model's arguments
are validated against it before the function runs. :meth:`FunctionTool.run` never raises for the
model's or the function's faults: bad arguments, an exception or a timeout become a short error
text (sent back as the call's output, so that the model can recover) plus a :class:`ToolFailure`.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints, overload

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import ConfigurationError
from .run_context import RunContextWrapper

__all__ = ["FunctionTool", "ToolFailure", "ToolResult", "function_tool", "DEFAULT_TOOL_TIMEOUT_S"]

#: How long an async tool may run before its call fails with a timeout (per tool: ``timeout=``).
DEFAULT_TOOL_TIMEOUT_S = 30.0
#: The model's arguments are JSON text; a tool refuses more than this (a runaway model).
MAX_ARGUMENTS_CHARS = 100_000
#: Error texts sent back to the model are cut to this length.
MAX_ERROR_CHARS = 500
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# "Args:" (Google style) or "Parameters" (NumPy style) sections: "name (type): text" or "name: text".
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:?\s*$")
_OTHER_SECTION = re.compile(r"^\s*(Returns?|Raises|Yields|Examples?|Notes?)\s*:?\s*$")

#: ``needs_approval``: a flag, or a function returning one (sync or async): of the validated arguments
#: (a dict), or ``openai-agents``' ``(context, arguments, call_id)``.
NeedsApproval = bool | Callable[..., bool | Awaitable[bool]]
#: ``is_enabled``: a flag, or ``(context, agent) -> bool`` (sync or async); a disabled tool is not offered.
IsEnabled = bool | Callable[..., bool | Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ToolFailure:
    """Why a call did not give a result: ``kind`` says what failed, ``message`` what to do."""

    kind: Literal["bad_arguments", "raised", "timeout", "unknown_tool", "rejected"]
    message: str
    exception: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The text sent back as the call's output, and the failure if there was one."""

    output: str
    failure: ToolFailure | None = None


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class FunctionTool:
    """A tool the model can call. Make one with :func:`function_tool`."""

    name: str
    description: str
    params_json_schema: dict[str, Any]
    func: Callable[..., Any] = field(repr=False)
    args_model: type[BaseModel] = field(repr=False)
    needs_approval: NeedsApproval = False
    #: Seconds an async tool may run (None: no limit). A sync tool runs to its end: make slow tools async.
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S
    #: Whether the model is offered the tool (checked each time an agent is applied to the session).
    is_enabled: IsEnabled = True
    #: The function's first parameter takes the run context (a ``RunContextWrapper``/``ToolContext``).
    takes_context: bool = False

    @property
    def definition(self) -> dict[str, Any]:
        """The tool as the session config's ``tools`` list carries it."""
        return {"type": "function", "name": self.name, "description": self.description, "parameters": self.params_json_schema}

    def parse_arguments(self, arguments: str) -> dict[str, Any] | ToolFailure:
        """The model's JSON arguments, validated: a dict of parameter values, or the failure."""
        if len(arguments) > MAX_ARGUMENTS_CHARS:
            return ToolFailure("bad_arguments", f"the arguments of {self.name} are longer than {MAX_ARGUMENTS_CHARS} characters")
        try:
            parsed = self.args_model.model_validate_json(arguments.strip() or "{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}" for error in exc.errors()[:5]
            )
            return ToolFailure(
                "bad_arguments",
                f"invalid arguments for {self.name} ({problems}); call it again with arguments that match its schema",
                exc,
            )
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}

    async def approval_needed(
        self, arguments: dict[str, Any], context: RunContextWrapper[Any] | None = None, call_id: str = ""
    ) -> bool:
        """Whether this call waits for approval (``needs_approval`` called with what it takes)."""
        if callable(self.needs_approval):
            if positional_count(self.needs_approval) >= 3:
                answer = self.needs_approval(context or RunContextWrapper(None), arguments, call_id)
            else:
                answer = self.needs_approval(arguments)
            if inspect.isawaitable(answer):
                answer = await answer
            return bool(answer)
        return bool(self.needs_approval)

    async def enabled(self, context: RunContextWrapper[Any], agent: Any) -> bool:
        """Whether the model is offered this tool now (``is_enabled`` called with ``(context, agent)``)."""
        return await check_enabled(self.is_enabled, context, agent)

    async def run(
        self, arguments: str | dict[str, Any], timeout: float | None = None, *, context: RunContextWrapper[Any] | None = None
    ) -> ToolResult:
        """Validate and call. Never raises for bad arguments, a raising function or a timeout.

        ``timeout`` (seconds) overrides the tool's own; cancelling the caller cancels the call.
        ``context`` goes to a tool that takes one (an empty ``RunContextWrapper(None)`` if not given).
        """
        values = self.parse_arguments(arguments) if isinstance(arguments, str) else arguments
        if isinstance(values, ToolFailure):
            return ToolResult(f"Error: {values.message}", values)
        limit = self.timeout if timeout is None else timeout
        try:
            if self.takes_context:
                result = self.func(context or RunContextWrapper(None), **values)
            else:
                result = self.func(**values)
        except Exception as exc:  # a sync tool's bug, its own TimeoutError included
            return raised_result(self.name, exc)
        try:
            if inspect.isawaitable(result):
                # The tool's own TimeoutError is wrapped on its way out: only the deadline's stays one.
                waiting = own_timeouts_apart(result)
                result = await (asyncio.wait_for(waiting, limit) if limit is not None else waiting)
        except OwnTimeout as wrapped:
            return raised_result(self.name, wrapped.__cause__ or wrapped)
        except TimeoutError as exc:  # our deadline: there is one, or nothing raises TimeoutError here
            failure = ToolFailure(
                "timeout",
                f"{self.name} did not finish within {limit or 0:g} s; try again later, or tell the user it is unavailable",
                exc,
            )
            return ToolResult(f"Error: {failure.message}", failure)
        except Exception as exc:  # the tool's own bug: reported, and the model is told it failed
            return raised_result(self.name, exc)
        return ToolResult(tool_output_text(result))


async def check_enabled(flag: IsEnabled, context: RunContextWrapper[Any], agent: Any) -> bool:
    """An ``is_enabled`` setting's answer: the flag, or the function's (awaited if async)."""
    if not callable(flag):
        return bool(flag)
    answer = flag(context, agent)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


def positional_count(func: Callable[..., Any]) -> int:
    """How many positional parameters ``func`` takes (a large number for ``*args``)."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return 99
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def raised_result(name: str, exc: BaseException) -> ToolResult:
    """What the model is told when calling tool ``name`` raised ``exc``."""
    detail = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    failure = ToolFailure("raised", f"{name} failed ({detail}); do not retry it with the same arguments", exc)
    return ToolResult(f"Error: {failure.message}", failure)


class OwnTimeout(Exception):
    """A TimeoutError the tool raised itself, kept apart from the deadline's (``__cause__`` is it)."""


async def own_timeouts_apart(awaitable: Awaitable[Any]) -> Any:
    try:
        return await awaitable
    except TimeoutError as exc:
        raise OwnTimeout() from exc


def tool_output_text(result: Any) -> str:
    """A tool's return value as the text the model gets: strings as they are, anything else as JSON."""
    if isinstance(result, str):
        return result
    try:
        return pydantic_core.to_json(result).decode()
    except pydantic_core.PydanticSerializationError:
        return str(result)


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """The docstring's description (its text before any section) and its per-argument descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description: list[str] = []
    arguments: dict[str, str] = {}
    section = "description"
    current: str | None = None
    for line in lines:
        if _SECTION.match(line):
            section, current = "args", None
        elif _OTHER_SECTION.match(line):
            section, current = "other", None
        elif section == "description":
            description.append(line)
        elif section == "args":
            match = _ARG_LINE.match(line)
            if match and (not line.startswith(" " * 8) or current is None):
                current = match.group(1).lstrip("*")
                arguments[current] = match.group(2).strip()
            elif current is not None and line.strip():
                arguments[current] += " " + line.strip()
    return " ".join(" ".join(description).split()), arguments


def strip_titles(schema: Any) -> Any:
    """pydantic titles every property; the model does not need them (they only cost tokens)."""
    if isinstance(schema, dict):
        return {key: strip_titles(value) for key, value in schema.items() if key != "title" or not isinstance(value, str)}
    if isinstance(schema, list):
        return [strip_titles(value) for value in schema]
    return schema


def _parameter_hints(func: Callable[..., Any], name: str, skip: str | None = None) -> dict[str, Any]:
    """The parameters' type hints (not the return's, nor ``skip``'s: they are never described to the model)."""
    annotations = dict(getattr(func, "__annotations__", {}) or {})
    annotations.pop("return", None)
    if skip is not None:
        annotations.pop(skip, None)
    shim = types.FunctionType(_NO_CODE, getattr(func, "__globals__", {}))
    shim.__annotations__ = annotations
    try:
        return get_type_hints(shim, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"the type hints of {name} cannot be resolved ({exc}): define the types it names at module level"
        ) from None


def _no_code() -> None: ...


_NO_CODE = _no_code.__code__


def _make_tool(
    func: Callable[..., Any],
    name_override: str | None,
    description_override: str | None,
    needs_approval: NeedsApproval,
    timeout: float | None,
    is_enabled: IsEnabled = True,
) -> FunctionTool:
    if not callable(func):
        raise ConfigurationError(f"function_tool needs a function, not {type(func).__name__}")
    name = str(name_override or getattr(func, "__name__", ""))
    if not _TOOL_NAME.match(name):
        raise ConfigurationError(
            f"tool name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-' (pass name_override=)"
        )
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
        raise ConfigurationError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    if not (isinstance(needs_approval, bool) or callable(needs_approval)):
        raise ConfigurationError("needs_approval must be True/False or a function of the arguments that returns one")
    if not (isinstance(is_enabled, bool) or callable(is_enabled)):
        raise ConfigurationError("is_enabled must be True/False or a function (context, agent) that returns one")
    description, argument_docs = _docstring_parts(func.__doc__)
    parameters = list(inspect.signature(func).parameters.values())
    takes_context = bool(parameters) and _takes_context(func, parameters[0].name)
    hints = _parameter_hints(func, name, skip=parameters[0].name if takes_context else None)
    fields: dict[str, Any] = {}
    for parameter in parameters[1:] if takes_context else parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ConfigurationError(f"{name}: *args and **kwargs cannot be described to the model; name each parameter")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ConfigurationError(f"{name}: positional-only parameters cannot be passed by name; drop the '/'")
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, Field(default, description=argument_docs.get(parameter.name)))
    try:
        model = create_model(
            f"{name}_arguments", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False), **fields
        )
        schema = strip_titles(model.model_json_schema())
    except Exception as exc:  # a parameter type pydantic cannot describe
        raise ConfigurationError(f"{name}: its parameters cannot be described as JSON schema: {exc}") from None
    schema.setdefault("properties", {})
    return FunctionTool(
        name=name,
        description=description_override if description_override is not None else description,
        params_json_schema=schema,
        func=func,
        args_model=model,
        needs_approval=needs_approval,
        timeout=timeout,
        is_enabled=is_enabled,
        takes_context=takes_context,
    )


#: The leading name of a string annotation (``"RunContextWrapper[Deps]"`` -> ``RunContextWrapper``).
_ANNOTATION_HEAD = re.compile(r"^\s*(?:[\w.]+\.)?(\w+)\s*(?:\[|$)")


def _takes_context(func: Callable[..., Any], parameter: str) -> bool:
    """Whether the parameter is annotated ``RunContextWrapper``, ``ToolContext`` or a subclass, bare or
    subscripted. A string annotation (``from __future__ import annotations``) is judged by its leading
    name, so that ``RunContextWrapper[Deps]`` works with a ``Deps`` the module cannot see (a local class)."""
    annotation = (getattr(func, "__annotations__", {}) or {}).get(parameter)
    if isinstance(annotation, str):
        match = _ANNOTATION_HEAD.match(annotation)
        if match is None:
            return False
        annotation = getattr(func, "__globals__", {}).get(match.group(1))
        if annotation is None:
            return match.group(1) in ("RunContextWrapper", "ToolContext")
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, RunContextWrapper)


@overload
def function_tool(func: Callable[..., Any], /) -> FunctionTool: ...


@overload
def function_tool(
    *,
    name_override: str | None = None,
    description_override: str | None = None,
    needs_approval: NeedsApproval = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S,
    is_enabled: IsEnabled = True,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def function_tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name_override: str | None = None,
    description_override: str | None = None,
    needs_approval: NeedsApproval = False,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S,
    is_enabled: IsEnabled = True,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a type-hinted function into a :class:`FunctionTool` (``@function_tool`` or ``@function_tool(...)``).

    The docstring's first part describes the tool; an ``Args:`` section describes the parameters. A
    first parameter annotated ``RunContextWrapper`` (or ``ToolContext``) gets the run context and is
    not shown to the model. ``needs_approval`` (a flag, or a function of the arguments, or of
    ``(context, arguments, call_id)``) makes the session wait for ``approve_tool_call``/
    ``reject_tool_call``; ``timeout`` bounds an async tool (seconds, None: no limit); ``is_enabled`` (a
    flag, or a function ``(context, agent)``) hides the tool from the model while false.
    """
    if func is not None:
        return _make_tool(func, name_override, description_override, needs_approval, timeout, is_enabled)

    def decorate(inner: Callable[..., Any]) -> FunctionTool:
        return _make_tool(inner, name_override, description_override, needs_approval, timeout, is_enabled)

    return decorate
