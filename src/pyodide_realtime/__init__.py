"""pyodide-realtime: a pure-Python client for the OpenAI Realtime API, in the browser (Pyodide) and CPython.

For a voice app, start with :class:`RealtimeSession` and a :class:`RealtimeAgent` (tools with
:func:`function_tool`); underneath is :class:`OpenAIRealtimeWebSocket`; configure the session with :class:`SessionConfig` (or a dict).
In a page, :func:`start_voice` wires an :class:`AudioPlayer` and a :class:`Microphone` to it. The local
Realtime server (CPython only) is :mod:`pyodide_realtime.server`.
"""

from ._interfaces import AudioFormat, AudioInput, AudioOutput, RealtimeSocket, SocketFactory, SocketHandler, SocketRequest
from ._version import __version__
from .agent import RealtimeAgent, RealtimeHandoff, realtime_handoff
from .audio import AudioPlayer, Microphone, PlaybackPosition, VoiceConversation, start_voice
from .config import DEFAULT_SESSION_CONFIG, SessionConfig, TurnDetection
from .errors import (
    ConfigurationError,
    ConnectionClosedError,
    ConnectionFailedError,
    InvalidStateError,
    RealtimeError,
    RemoteError,
    ServerError,
    UnsupportedError,
    UserError,
)
from .events import (
    AudioDone,
    AudioInterrupted,
    ConnectionChange,
    ErrorEvent,
    FunctionCall,
    GenericServerEvent,
    ItemDeleted,
    ItemUpdate,
    OutputTextDelta,
    ServerEvent,
    ServerEventBase,
    TranscriptDelta,
    TransportAudio,
    TransportEvent,
    TurnDone,
    TurnStarted,
    Usage,
    parse_server_event,
)
from .guardrail import GuardrailFunctionOutput, OutputGuardrail, OutputGuardrailResult, output_guardrail
from .items import (
    AssistantMessageItem,
    RealtimeItem,
    RealtimeMCPApprovalRequestItem,
    RealtimeMCPCallItem,
    RealtimeMCPListToolsItem,
    RealtimeToolCallItem,
    SystemMessageItem,
    UserMessageItem,
)
from .session import RealtimeSession
from .session_events import (
    RealtimeAgentEndEvent,
    RealtimeAgentStartEvent,
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeErrorEvent,
    RealtimeGuardrailTripped,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTimeoutTriggered,
    RealtimeMCPToolsChanged,
    RealtimeSessionEvent,
    RealtimeToolApprovalRequired,
    RealtimeToolEnd,
    RealtimeToolStart,
)
from .tool import FunctionTool, function_tool
from .transport import ConnectionState, OpenAIRealtimeWebSocket

__all__ = [
    "__version__",
    # session: agents, tools, history
    "RealtimeAgent",
    "RealtimeSession",
    "function_tool",
    "FunctionTool",
    "RealtimeHandoff",
    "realtime_handoff",
    "output_guardrail",
    "OutputGuardrail",
    "OutputGuardrailResult",
    "GuardrailFunctionOutput",
    # session history items
    "RealtimeItem",
    "UserMessageItem",
    "AssistantMessageItem",
    "SystemMessageItem",
    "RealtimeToolCallItem",
    "RealtimeMCPListToolsItem",
    "RealtimeMCPCallItem",
    "RealtimeMCPApprovalRequestItem",
    # session events
    "RealtimeSessionEvent",
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
    # transport
    "OpenAIRealtimeWebSocket",
    "ConnectionState",
    # session config
    "SessionConfig",
    "TurnDetection",
    "DEFAULT_SESSION_CONFIG",
    # events
    "TransportEvent",
    "TransportAudio",
    "AudioDone",
    "AudioInterrupted",
    "TranscriptDelta",
    "OutputTextDelta",
    "ItemUpdate",
    "ItemDeleted",
    "FunctionCall",
    "TurnStarted",
    "TurnDone",
    "Usage",
    "ConnectionChange",
    "ErrorEvent",
    "ServerEvent",
    "ServerEventBase",
    "GenericServerEvent",
    "parse_server_event",
    # audio (browser only; importable anywhere)
    "AudioPlayer",
    "PlaybackPosition",
    "Microphone",
    "VoiceConversation",
    "start_voice",
    # errors
    "RealtimeError",
    "UserError",
    "ConfigurationError",
    "InvalidStateError",
    "UnsupportedError",
    "RemoteError",
    "ConnectionFailedError",
    "ConnectionClosedError",
    "ServerError",
    # interfaces (seams for your own socket or audio devices)
    "AudioFormat",
    "AudioOutput",
    "AudioInput",
    "RealtimeSocket",
    "SocketFactory",
    "SocketHandler",
    "SocketRequest",
]
