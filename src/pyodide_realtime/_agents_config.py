"""``openai-agents``' run config and model config, read as this session's options.

``RealtimeRunConfig`` (``model_settings``, ``output_guardrails``, ``guardrails_settings``,
``tracing_disabled``, ``async_tool_calls``) and ``RealtimeModelConfig`` (``api_key``, ``url``,
``initial_model_settings``, ``call_id``). A key this session does not take is refused with a message
that names the keys it takes: never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .guardrail import OutputGuardrail

__all__ = ["AgentsOptions", "RUN_CONFIG_KEYS", "MODEL_CONFIG_KEYS", "read_agents_options"]

#: The keys of ``openai-agents``' ``RealtimeRunConfig`` that a session takes.
RUN_CONFIG_KEYS = frozenset({"model_settings", "output_guardrails", "guardrails_settings", "tracing_disabled", "async_tool_calls"})
#: The keys of ``openai-agents``' ``RealtimeModelConfig`` that a session takes.
MODEL_CONFIG_KEYS = frozenset({"api_key", "url", "initial_model_settings", "call_id"})


@dataclass(frozen=True)
class AgentsOptions:
    """What the two configs say, in this session's terms (None: not said)."""

    settings: dict[str, Any]
    model: str | None
    url: str | None
    api_key: Any
    call_id: str | None
    debounce_chars: int | None
    guardrails: tuple[OutputGuardrail, ...]


def _keys(value: Mapping[str, Any] | None, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a dict, not {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigurationError(f"{what} has keys this session does not take: {', '.join(unknown)} (it takes: {', '.join(sorted(allowed))})")
    return dict(value)


def read_agents_options(run_config: Mapping[str, Any] | None, model_config: Mapping[str, Any] | None) -> AgentsOptions:
    """Both configs read and checked; ConfigurationError for what this session does not take."""
    run = _keys(run_config, RUN_CONFIG_KEYS, "run_config")
    connection = _keys(model_config, MODEL_CONFIG_KEYS, "model_config")
    if run.get("async_tool_calls", True) is not True:
        raise ConfigurationError("async_tool_calls=False is not supported: the tool calls of one response always run concurrently")
    # The model config's settings win over the run config's, as in agents.
    settings = {**(run.get("model_settings") or {}), **(connection.get("initial_model_settings") or {})}
    model = settings.pop("model_name", None)
    if run.get("tracing_disabled"):
        settings["tracing"] = None
    debounce = _keys(run.get("guardrails_settings"), frozenset({"debounce_text_length"}), "guardrails_settings").get("debounce_text_length")
    guardrails = tuple(run.get("output_guardrails") or ())
    if not all(isinstance(g, OutputGuardrail) for g in guardrails):
        raise ConfigurationError("run_config['output_guardrails'] takes @output_guardrail functions")
    return AgentsOptions(settings, model, connection.get("url"), connection.get("api_key"), connection.get("call_id"), debounce, guardrails)
