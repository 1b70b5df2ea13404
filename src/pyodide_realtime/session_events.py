"""What a :class:`~pyodide_realtime.session.RealtimeSession` emits: small frozen classes, ``event.type`` a string.

The names and attributes are ``openai-agents``' (``agents.realtime.events``): every event has ``type``
and ``info`` (``info.context`` is the session's :class:`~pyodide_realtime.run_context.RunContextWrapper`).
Errors of every origin (server, tool, guardrail, transport, audio, microphone, mcp, hook) come as one
:class:`RealtimeErrorEvent` whose ``message`` says what failed and what to do. ``openai-agents`` names
that class ``RealtimeError``; here ``RealtimeError`` is the base of the exceptions (see the README's
"Coming from openai-agents"): test ``event.type == "error"`` and read ``event.error`` in code for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

from .items import RealtimeItem

if TYPE_CHECKING:
    from .agent import RealtimeAgent
    from .events import TransportAudio
    from .guardrail import OutputGuardrailResult
    from .run_context import RealtimeEventInfo
    from .tool import FunctionTool

__all__ = [
    "RealtimeAgentStartEvent",
    "RealtimeAgentEndEvent",
    "RealtimeHandoffEvent",
    "RealtimeToolStart",
    "RealtimeToolEnd",
    "RealtimeToolApprovalRequired",
    "RealtimeMCPToolsChanged",
    "RealtimeAudio",
    "RealtimeAudioEnd",
    "RealtimeAudioInterrupted",
    "RealtimeErrorEvent",
    "RealtimeHistoryAdded",
    "RealtimeHistoryUpdated",
    "RealtimeGuardrailTripped",
    "RealtimeInputAudioTimeoutTriggered",
    "RealtimeRawModelEvent",
    "RealtimeSessionEvent",
    "ErrorOrigin",
]

#: Where an error came from (:attr:`RealtimeErrorEvent.origin`).
ErrorOrigin = Literal["server", "tool", "guardrail", "transport", "audio", "microphone", "mcp", "hook"]


@dataclass(frozen=True, slots=True)
class RealtimeAgentStartEvent:
    """The agent started a reply (a response began)."""

    agent: RealtimeAgent[Any]
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["agent_start"] = "agent_start"


@dataclass(frozen=True, slots=True)
class RealtimeAgentEndEvent:
    """The agent's reply ended (the response is done)."""

    agent: RealtimeAgent[Any]
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["agent_end"] = "agent_end"


@dataclass(frozen=True, slots=True)
class RealtimeHandoffEvent:
    """The model handed off: ``to_agent`` speaks now (its instructions and tools are applied)."""

    from_agent: RealtimeAgent[Any]
    to_agent: RealtimeAgent[Any]
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["handoff"] = "handoff"


@dataclass(frozen=True, slots=True)
class RealtimeToolStart:
    """A tool call starts (after its approval, if it needed one); ``arguments`` is the model's JSON text."""

    agent: RealtimeAgent[Any]
    tool: FunctionTool
    call_id: str
    arguments: str
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["tool_start"] = "tool_start"


@dataclass(frozen=True, slots=True)
class RealtimeToolEnd:
    """A tool call finished; ``output`` is what the model got (an error text if ``failed``)."""

    agent: RealtimeAgent[Any]
    tool: FunctionTool
    call_id: str
    output: str
    failed: bool = False
    #: The call's arguments, as JSON text.
    arguments: str = ""
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["tool_end"] = "tool_end"


@dataclass(frozen=True, slots=True)
class RealtimeToolApprovalRequired:
    """A call waits for ``session.approve_tool_call(call_id)`` or ``reject_tool_call(call_id)``.

    ``kind`` is ``"function"`` (a ``needs_approval`` tool; ``tool`` is set) or ``"mcp"`` (a hosted MCP
    tool; ``call_id`` is the server's approval request id and ``server_label`` names the server).
    """

    agent: RealtimeAgent[Any]
    call_id: str
    name: str
    arguments: str
    kind: Literal["function", "mcp"] = "function"
    tool: FunctionTool | None = None
    server_label: str | None = None
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["tool_approval_required"] = "tool_approval_required"


@dataclass(frozen=True, slots=True)
class RealtimeMCPToolsChanged:
    """A hosted MCP server listed its tools (``tools``: every MCP tool known in this session)."""

    server_label: str
    tools: tuple[dict[str, Any], ...]
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["mcp_tools_changed"] = "mcp_tools_changed"


@dataclass(frozen=True, slots=True)
class RealtimeAudio:
    """Model audio (already playing if the session has a player). ``audio`` is the transport's event
    (``data``: the decoded bytes, ``response_id``, ``item_id``, ``content_index``, ``audio_format``);
    ``event.data`` is short for ``event.audio.data``."""

    audio: TransportAudio = field(repr=False)
    item_id: str
    content_index: int
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["audio"] = "audio"

    @property
    def data(self) -> bytes:
        return self.audio.data


@dataclass(frozen=True, slots=True)
class RealtimeAudioEnd:
    """The server sent the last audio of this item (it may still be playing)."""

    item_id: str
    content_index: int
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["audio_end"] = "audio_end"


@dataclass(frozen=True, slots=True)
class RealtimeAudioInterrupted:
    """Playback stopped; ``heard_ms`` of the item had been played (the history item is trimmed to it)."""

    item_id: str
    content_index: int
    heard_ms: float
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["audio_interrupted"] = "audio_interrupted"


@dataclass(frozen=True, slots=True)
class RealtimeErrorEvent:
    """Something failed. ``origin`` says where; ``message`` says what failed and what to do.

    ``exception`` is the underlying error when there is one; ``call_id``/``item_id`` what it concerns.
    """

    origin: ErrorOrigin
    message: str
    exception: BaseException | None = field(default=None, compare=False)
    call_id: str | None = None
    item_id: str | None = None
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["error"] = "error"

    @property
    def error(self) -> BaseException | str:
        """``openai-agents`` names the payload ``error``."""
        return self.exception if self.exception is not None else self.message


@dataclass(frozen=True, slots=True)
class RealtimeHistoryAdded:
    """A new item is in the history (``history_updated`` follows, and again at each of its changes)."""

    item: RealtimeItem
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["history_added"] = "history_added"


@dataclass(frozen=True, slots=True)
class RealtimeHistoryUpdated:
    """The history changed (``item`` is the item that changed); ``history`` is all of it, in order."""

    history: Sequence[RealtimeItem]  # a HistoryItems snapshot: immutable, equal to the tuple of its items
    item: RealtimeItem | None = None
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["history_updated"] = "history_updated"


@dataclass(frozen=True, slots=True)
class RealtimeGuardrailTripped:
    """An output guardrail tripped: the reply was interrupted. ``message`` is the text it judged."""

    guardrail_results: tuple[OutputGuardrailResult, ...]
    message: str
    item_id: str
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["guardrail_tripped"] = "guardrail_tripped"


@dataclass(frozen=True, slots=True)
class RealtimeInputAudioTimeoutTriggered:
    """The server's idle timeout fired: the user said nothing for a while."""

    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["input_audio_timeout_triggered"] = "input_audio_timeout_triggered"


@dataclass(frozen=True, slots=True)
class RealtimeRawModelEvent:
    """A server event as the transport parsed it (``data.type`` is the server's type). In CPython for
    every server event; in a page only with ``RealtimeSession(raw_model_events=True)`` or for
    ``on("raw_model_event")`` listeners (each event's cost counts there). Server ``error`` events come
    as ``error`` events instead, their text redacted."""

    data: Any = field(repr=False)
    #: The run context (set by the session as it emits the event).
    info: RealtimeEventInfo | None = field(default=None, compare=False, repr=False, kw_only=True)
    type: Literal["raw_model_event"] = "raw_model_event"


RealtimeSessionEvent = Union[
    RealtimeAgentStartEvent,
    RealtimeAgentEndEvent,
    RealtimeHandoffEvent,
    RealtimeToolStart,
    RealtimeToolEnd,
    RealtimeToolApprovalRequired,
    RealtimeMCPToolsChanged,
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeErrorEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeGuardrailTripped,
    RealtimeInputAudioTimeoutTriggered,
    RealtimeRawModelEvent,
]
