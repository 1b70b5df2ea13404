"""Output guardrails: checks that run on the model's transcript as it grows, and stop a reply that trips one.

A guardrail is a function ``(agent, text)`` or, as in ``openai-agents``, ``(context, agent, text)``,
returning ``GuardrailFunctionOutput | bool`` (sync or async); ``True`` (or ``tripwire_triggered=True``)
trips it. The session runs an agent's guardrails each time the reply's
transcript has grown by ``guardrail_debounce_chars`` and once more when the reply is complete; a trip
interrupts the reply, emits a ``guardrail_tripped`` event and, once the cut reply is done, tells the
model which guardrail fired (a user message ``guardrail triggered: <names>``, as ``openai-agents`` does).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from .errors import ConfigurationError
from .run_context import RunContextWrapper
from .tool import positional_count

if TYPE_CHECKING:
    from .agent import RealtimeAgent

__all__ = ["GuardrailFunctionOutput", "OutputGuardrail", "OutputGuardrailResult", "output_guardrail"]

GuardrailFunction = Callable[..., "GuardrailFunctionOutput | bool | Awaitable[GuardrailFunctionOutput | bool]"]


@dataclass(frozen=True, slots=True)
class GuardrailFunctionOutput:
    """What a guardrail function found: ``tripwire_triggered`` stops the reply; ``output_info`` says why."""

    tripwire_triggered: bool
    output_info: Any = None


@dataclass(frozen=True, slots=True)
class OutputGuardrailResult:
    """One guardrail's verdict on one text."""

    guardrail: OutputGuardrail
    agent: RealtimeAgent[Any]
    text: str
    output: GuardrailFunctionOutput


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it holds functions and dicts)
class OutputGuardrail:
    """A named check of the model's output (make one with :func:`output_guardrail`)."""

    guardrail_function: GuardrailFunction = field(repr=False)
    name: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.guardrail_function):
            raise ConfigurationError("an output guardrail needs a function (agent, text) -> bool or GuardrailFunctionOutput")

    def get_name(self) -> str:
        return str(self.name or getattr(self.guardrail_function, "__name__", "guardrail"))

    async def run(self, agent: RealtimeAgent[Any], text: str, context: RunContextWrapper[Any] | None = None) -> OutputGuardrailResult:
        """Run the check (exceptions propagate: the session reports them as guardrail errors)."""
        if positional_count(self.guardrail_function) >= 3:
            verdict = self.guardrail_function(context or RunContextWrapper(None), agent, text)
        else:
            verdict = self.guardrail_function(agent, text)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if isinstance(verdict, bool):
            verdict = GuardrailFunctionOutput(tripwire_triggered=verdict)
        if not isinstance(verdict, GuardrailFunctionOutput):
            raise ConfigurationError(
                f"guardrail {self.get_name()} returned {type(verdict).__name__}: return a bool or a GuardrailFunctionOutput"
            )
        return OutputGuardrailResult(self, agent, text, verdict)


@overload
def output_guardrail(func: GuardrailFunction, /) -> OutputGuardrail: ...


@overload
def output_guardrail(*, name: str | None = None) -> Callable[[GuardrailFunction], OutputGuardrail]: ...


def output_guardrail(
    func: GuardrailFunction | None = None, /, *, name: str | None = None
) -> OutputGuardrail | Callable[[GuardrailFunction], OutputGuardrail]:
    """``@output_guardrail`` (or ``@output_guardrail(name=...)``) on a function ``(agent, text) -> bool``."""
    if func is not None:
        return OutputGuardrail(func, name)
    return lambda inner: OutputGuardrail(inner, name)
