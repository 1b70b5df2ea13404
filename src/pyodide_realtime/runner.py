"""``RealtimeRunner``: ``openai-agents``' way to start a session.

With the same calls::

    runner = RealtimeRunner(agent, config={"model_settings": {"voice": "marin"}})
    async with await runner.run(context=deps, model_config={"url": url, "api_key": key}) as session:
        await session.send_message("Hello")
        async for event in session: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .agent import RealtimeAgent
from .errors import ConfigurationError
from .session import RealtimeSession

__all__ = ["RealtimeRunner"]


class RealtimeRunner:
    """Makes :class:`RealtimeSession` objects for ``starting_agent``.

    ``model``: a transport to run every session on (e.g. a ``ScriptedRealtimeTransport`` in a test;
    default: a new :class:`OpenAIRealtimeWebSocket` per session). ``config``: ``openai-agents``'
    ``RealtimeRunConfig`` (``model_settings``, ``output_guardrails``, ``guardrails_settings``,
    ``tracing_disabled``, ``async_tool_calls``). ``options``: any other :class:`RealtimeSession` keyword
    (``tool_timeout``, ``hook_timeout``, ``audio``...), given to each session.
    """

    def __init__(
        self,
        starting_agent: RealtimeAgent[Any],
        *,
        model: Any = None,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(starting_agent, RealtimeAgent):
            raise ConfigurationError(f"RealtimeRunner needs a RealtimeAgent, not {type(starting_agent).__name__}")
        self._starting_agent = starting_agent
        self._model = model
        self._config = config
        self._options = options

    async def run(self, *, context: Any = None, model_config: Mapping[str, Any] | None = None) -> RealtimeSession:
        """A new session, not connected yet: ``async with`` it (or ``await session.enter()``) to connect.

        ``context``: your object (``RunContextWrapper.context`` in tools and hooks). ``model_config``:
        ``api_key``, ``url``, ``initial_model_settings``, ``call_id``.
        """
        return RealtimeSession(
            self._starting_agent,
            model=self._model,
            context=context,
            model_config=model_config,
            run_config=self._config,
            **self._options,
        )

