"""``RealtimeAgent``: what the model should be (instructions, tools, voice) and whom it may hand off to.

An agent is plain data; a :class:`~pyodide_realtime.session.RealtimeSession` applies it to the
connection with one ``session.update``. Handoffs become tools named ``transfer_to_<agent name>``;
when the model calls one, the session switches to that agent.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import ConfigurationError
from .guardrail import OutputGuardrail
from .tool import FunctionTool

__all__ = ["RealtimeAgent", "RealtimeHandoff", "realtime_handoff"]

#: An agent's ``instructions``: text, or a function of the agent (sync or async) that returns it.
Instructions = str | Callable[["RealtimeAgent"], str | Awaitable[str]] | None
#: A hosted tool (``{"type": "mcp", "server_label": ..., "server_url": ...}``) is passed through as a dict.
Tool = FunctionTool | Mapping[str, Any]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class RealtimeHandoff:
    """A tool that hands the conversation to ``agent`` (make one with :func:`realtime_handoff`)."""

    agent: RealtimeAgent
    tool_name: str
    tool_description: str

    @property
    def definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.tool_name,
            "description": self.tool_description,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        }


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "agent"


def realtime_handoff(
    agent: RealtimeAgent, *, tool_name_override: str | None = None, tool_description_override: str | None = None
) -> RealtimeHandoff:
    """A handoff to ``agent``; its tool is ``transfer_to_<agent name>`` unless overridden."""
    if not isinstance(agent, RealtimeAgent):
        raise ConfigurationError(f"a handoff goes to a RealtimeAgent, not {type(agent).__name__}")
    name = tool_name_override or f"transfer_to_{_snake(agent.name)}"[:64]
    description = tool_description_override or (
        f"Hand off to the {agent.name} agent to handle the request."
        + (f" {agent.handoff_description}" if agent.handoff_description else "")
    )
    return RealtimeHandoff(agent, name, description)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class RealtimeAgent:
    """A voice agent: ``name``, ``instructions``, ``tools``, ``handoffs``, ``output_guardrails``, ``voice``.

    ``voice`` applies only until the model first speaks in a session (the API refuses a change after).
    """

    name: str
    instructions: Instructions = None
    tools: Sequence[Tool] = ()
    handoffs: Sequence[Union[RealtimeAgent, RealtimeHandoff]] = ()
    output_guardrails: Sequence[OutputGuardrail] = ()
    voice: str | None = None
    #: Read by other agents' handoff tools: when to hand off to this one.
    handoff_description: str | None = None
    #: Anything else for ``session.update`` (e.g. ``{"tool_choice": "auto"}``).
    session_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("a RealtimeAgent needs a name, e.g. RealtimeAgent(name='Assistant')")
        for attribute in ("tools", "handoffs", "output_guardrails"):
            value = getattr(self, attribute)
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
                raise ConfigurationError(f"{attribute} must be a list, e.g. {attribute}=[...]")
            object.__setattr__(self, attribute, tuple(value))
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

    def clone(self, **changes: Any) -> RealtimeAgent:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def function_tools(self) -> tuple[FunctionTool, ...]:
        return tuple(tool for tool in self.tools if isinstance(tool, FunctionTool))

    @property
    def handoff_tools(self) -> tuple[RealtimeHandoff, ...]:
        return tuple(h if isinstance(h, RealtimeHandoff) else realtime_handoff(h) for h in self.handoffs)

    async def get_instructions(self) -> str | None:
        if callable(self.instructions):
            text = self.instructions(self)
            if inspect.isawaitable(text):
                text = await text
            return str(text)
        return self.instructions

    def tool_definitions(self) -> list[dict[str, Any]]:
        """The ``tools`` list of the session config: function tools, handoffs, hosted tools."""
        definitions = [tool.definition if isinstance(tool, FunctionTool) else dict(tool) for tool in self.tools]
        return definitions + [h.definition for h in self.handoff_tools]
