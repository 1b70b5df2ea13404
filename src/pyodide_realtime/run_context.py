"""The run context: your own object, handed to tools, instructions, approvals, handoffs and guardrails.

As in ``openai-agents``: ``RealtimeRunner(agent).run(context=my_object)`` (or
``RealtimeSession(agent, context=my_object)``) wraps ``my_object`` in a :class:`RunContextWrapper`;
``wrapper.context`` is it, and ``wrapper.usage`` the session's running token totals. A tool whose first
parameter is annotated ``RunContextWrapper`` (or :class:`ToolContext`, which also names the call) gets
it; the model never sees that parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["RunContextWrapper", "ToolContext", "RunUsage", "RealtimeEventInfo", "TContext"]

#: The type of your own context object (``run(context=...)``), as tools see it in ``RunContextWrapper.context``.
TContext = TypeVar("TContext")


@dataclass
class RunUsage:
    """Token totals of the session so far: one ``request`` per response, tokens as the server counted them."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def add(self, usage: Any) -> None:
        """Add one response's usage (anything with ``input_tokens``, ``output_tokens``, ``total_tokens``)."""
        self.requests += 1
        self.input_tokens += int(getattr(usage, "input_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "output_tokens", 0) or 0)
        self.total_tokens += int(getattr(usage, "total_tokens", 0) or 0)


@dataclass
class RunContextWrapper(Generic[TContext]):
    """Your ``context`` object and the session's ``usage`` totals (updated at each ``response.done``)."""

    context: TContext
    usage: RunUsage = field(default_factory=RunUsage)


@dataclass
class ToolContext(RunContextWrapper[TContext]):
    """The run context as a tool call sees it: also the tool's name, the call's id and its arguments (JSON)."""

    tool_name: str = ""
    tool_call_id: str = ""
    tool_arguments: str = ""


@dataclass(frozen=True)
class RealtimeEventInfo:
    """Attached to every session event as ``event.info``: the run context it happened in."""

    context: RunContextWrapper[Any]
