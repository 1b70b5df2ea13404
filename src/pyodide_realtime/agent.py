"""``RealtimeAgent``: what the model should be (instructions, tools, voice) and whom it may hand off to.

An agent is plain data; a :class:`~pyodide_realtime.session.RealtimeSession` applies it to the
connection with one ``session.update``. Handoffs become tools named ``transfer_to_<agent name>``;
when the model calls one, the session runs the handoff's ``on_handoff`` and switches to that agent.
As in ``openai-agents``, ``tools``, ``handoffs`` and ``output_guardrails`` are lists that may be
appended to after the agent is made (two agents that hand off to each other need that).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Union

from pydantic import TypeAdapter, ValidationError

from .errors import ConfigurationError
from .guardrail import OutputGuardrail
from .run_context import RunContextWrapper, TContext
from .tool import FunctionTool, IsEnabled, check_enabled, positional_count, strip_titles

__all__ = ["RealtimeAgent", "RealtimeHandoff", "realtime_handoff"]

#: An agent's ``instructions``: text, or a function (sync or async) returning it, of ``(context, agent)``
#: as in ``openai-agents``, or of the agent alone.
Instructions = str | Callable[..., str | Awaitable[str]] | None
#: A hosted tool (``{"type": "mcp", "server_label": ..., "server_url": ...}``) is passed through as a dict.
Tool = FunctionTool | Mapping[str, Any]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class RealtimeHandoff:
    """A tool that hands the conversation to ``agent`` (make one with :func:`realtime_handoff`)."""

    agent: RealtimeAgent[Any]
    tool_name: str
    tool_description: str
    #: Runs when the model hands off: ``(context)``, or ``(context, input)`` with ``input_type``.
    on_handoff: Callable[..., Any] | None = None
    #: The type of the input the model passes with the handoff (validated; its JSON schema is the tool's).
    input_type: Any = None
    #: Whether the model is offered this handoff: a flag or ``(context, agent) -> bool``.
    is_enabled: IsEnabled = True

    @property
    def definition(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
        if self.input_type is not None:
            parameters = strip_titles(TypeAdapter(self.input_type).json_schema())
        return {"type": "function", "name": self.tool_name, "description": self.tool_description, "parameters": parameters}

    def parse_input(self, arguments: str) -> Any:
        """The handoff's input from the model's JSON arguments (None without ``input_type``).
        ConfigurationError, saying what is wrong, for arguments that do not fit."""
        if self.input_type is None:
            return None
        try:
            return TypeAdapter(self.input_type).validate_json(arguments.strip() or "{}")
        except ValidationError as exc:
            raise ConfigurationError(
                f"invalid input for {self.tool_name}: {exc.errors()[0]['msg']}; call it again with input that matches its schema"
            ) from None

    async def enabled(self, context: RunContextWrapper[Any], agent: RealtimeAgent[Any]) -> bool:
        return await check_enabled(self.is_enabled, context, agent)


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "agent"


def realtime_handoff(
    agent: RealtimeAgent[Any],
    tool_name_override: str | None = None,
    tool_description_override: str | None = None,
    on_handoff: Callable[..., Any] | None = None,
    input_type: Any = None,
    is_enabled: IsEnabled = True,
) -> RealtimeHandoff:
    """A handoff to ``agent``; its tool is ``transfer_to_<agent name>`` unless overridden.

    ``on_handoff`` (sync or async) runs when the model hands off: ``(context)``, or ``(context, input)``
    with ``input_type`` (the model then passes an input of that type). ``is_enabled``: a flag or
    ``(context, agent) -> bool``; a disabled handoff is not offered to the model.
    """
    if not isinstance(agent, RealtimeAgent):
        raise ConfigurationError(f"a handoff goes to a RealtimeAgent, not {type(agent).__name__}")
    if input_type is not None and on_handoff is None:
        raise ConfigurationError("input_type needs an on_handoff(context, input) function to receive the input")
    if on_handoff is not None:
        if not callable(on_handoff):
            raise ConfigurationError("on_handoff must be a function")
        wanted = 2 if input_type is not None else 1
        if positional_count(on_handoff) != wanted:
            raise ConfigurationError(
                "on_handoff must take two arguments: (context, input)" if wanted == 2 else "on_handoff must take one argument: (context)"
            )
    if input_type is not None:
        try:
            TypeAdapter(input_type).json_schema()
        except Exception as exc:
            raise ConfigurationError(f"input_type cannot be described as JSON schema: {exc}") from None
    if not (isinstance(is_enabled, bool) or callable(is_enabled)):
        raise ConfigurationError("is_enabled must be True/False or a function (context, agent) that returns one")
    name = tool_name_override or f"transfer_to_{_snake(agent.name)}"[:64]
    description = tool_description_override or (
        f"Hand off to the {agent.name} agent to handle the request."
        + (f" {agent.handoff_description}" if agent.handoff_description else "")
    )
    return RealtimeHandoff(agent, name, description, on_handoff, input_type, is_enabled)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class RealtimeAgent(Generic[TContext]):
    """A voice agent: ``name``, ``instructions``, ``tools``, ``handoffs``, ``output_guardrails``, ``voice``.

    ``instructions``: text, or a function (sync or async) of ``(context, agent)`` or of ``(agent)``.
    ``voice`` applies only until the model first speaks in a session (the API refuses a change after).
    """

    name: str
    instructions: Instructions = None
    tools: list[Tool] = field(default_factory=list)
    handoffs: list[Union[RealtimeAgent[Any], RealtimeHandoff]] = field(default_factory=list)
    output_guardrails: list[OutputGuardrail] = field(default_factory=list)
    voice: str | None = None
    #: Read by other agents' handoff tools: when to hand off to this one.
    handoff_description: str | None = None
    #: Anything else for ``session.update`` (e.g. ``{"tool_choice": "auto"}``).
    session_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("a RealtimeAgent needs a name, e.g. RealtimeAgent(name='Assistant')")
        if not (self.instructions is None or isinstance(self.instructions, str) or callable(self.instructions)):
            raise ConfigurationError(f"{self.name}: instructions must be text or a function (context, agent) returning text")
        for attribute in ("tools", "handoffs", "output_guardrails"):
            value = getattr(self, attribute)
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
                raise ConfigurationError(f"{attribute} must be a list, e.g. {attribute}=[...]")
            object.__setattr__(self, attribute, list(value))
        self.check()

    def check(self) -> None:
        """ConfigurationError if a tool, handoff or guardrail (appended since) is not one, or two tools share a name.
        The session checks each agent it applies."""
        for tool in self.tools:
            if not isinstance(tool, (FunctionTool, Mapping)):
                raise ConfigurationError(
                    f"{self.name}: a tool must be a @function_tool or a hosted tool dict, not {type(tool).__name__}"
                )
        for guardrail in self.output_guardrails:
            if not isinstance(guardrail, OutputGuardrail):
                raise ConfigurationError(f"{self.name}: output_guardrails take @output_guardrail functions")
        for handoff in self.handoffs:
            if not isinstance(handoff, (RealtimeAgent, RealtimeHandoff)):
                raise ConfigurationError(f"{self.name}: handoffs take RealtimeAgents (or realtime_handoff(...))")
        names = [tool.name for tool in self.function_tools] + [h.tool_name for h in self.handoff_tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(f"{self.name}: two tools are named {', '.join(duplicates)}; rename one (name_override=)")

    def clone(self, **changes: Any) -> RealtimeAgent[TContext]:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def function_tools(self) -> tuple[FunctionTool, ...]:
        return tuple(tool for tool in self.tools if isinstance(tool, FunctionTool))

    @property
    def handoff_tools(self) -> tuple[RealtimeHandoff, ...]:
        return tuple(h if isinstance(h, RealtimeHandoff) else realtime_handoff(h) for h in self.handoffs)

    async def get_instructions(self, context: RunContextWrapper[Any] | None = None) -> str | None:
        """The instructions as text: a function is called with ``(context, agent)`` (or ``(agent)``)."""
        if callable(self.instructions):
            if positional_count(self.instructions) >= 2:
                text = self.instructions(context or RunContextWrapper(None), self)
            else:
                text = self.instructions(self)
            if inspect.isawaitable(text):
                text = await text
            return str(text)
        return self.instructions

    async def get_system_prompt(self, run_context: RunContextWrapper[Any]) -> str | None:
        """``openai-agents``' name for :meth:`get_instructions`."""
        return await self.get_instructions(run_context)

    def tool_definitions(self) -> list[dict[str, Any]]:
        """The ``tools`` list of the session config: function tools, handoffs, hosted tools."""
        definitions = [tool.definition if isinstance(tool, FunctionTool) else dict(tool) for tool in self.tools]
        return definitions + [h.definition for h in self.handoff_tools]
