"""pyodide-realtime: a pure-Python client for the OpenAI Realtime API, in the browser (Pyodide) and CPython.

For a voice app, start with :class:`RealtimeSession` and a :class:`RealtimeAgent` (tools with
:func:`function_tool`); underneath is the transport, :class:`OpenAIRealtimeWebSocket` (or, in a page, :class:`OpenAIRealtimeWebRTC`), configured with
:class:`SessionConfig` (or a dict). In a page, :func:`start_voice` wires an :class:`AudioPlayer` and a
:class:`Microphone` to a transport. The local Realtime server is its own distribution,
``pyodide-realtime-server`` (CPython only).

The names below load on first use (PEP 562): ``import pyodide_realtime`` costs next to nothing, the
transport's names load the transport (with pydantic), and the audio package loads only when one of its
names is asked for (the session layer likewise). In Pyodide, where every imported module costs milliseconds at page start, that is
what a page that only needs text pays for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time _EXPORTS loads the same names lazily
    from ._interfaces import AudioFormat, AudioInput, AudioOutput, RealtimeSocket, SocketFactory, SocketHandler, SocketRequest
    from .agent import RealtimeAgent, RealtimeHandoff, realtime_handoff
    from .audio import AudioPlayer, EchoCancellationWarning, Microphone, PlaybackPosition, VoiceConversation, start_voice
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
        AudioCommitted,
        AudioDone,
        AudioInterrupted,
        ConnectionChange,
        ErrorEvent,
        FunctionCall,
        GenericServerEvent,
        InputAudioTimeout,
        InputSpeechStarted,
        InputSpeechStopped,
        InputTranscriptCompleted,
        InputTranscriptDelta,
        InputTranscriptFailed,
        ItemDeleted,
        ItemUpdate,
        MalformedServerEvent,
        McpApprovalRequest,
        McpToolCall,
        McpToolsListed,
        OutputTextDelta,
        RateLimits,
        ResponseCut,
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
        AssistantAudio,
        AssistantMessageItem,
        AssistantText,
        HistoryItems,
        InputAudio,
        InputImage,
        InputText,
        RealtimeItem,
        RealtimeMCPApprovalRequestItem,
        RealtimeMCPCallItem,
        RealtimeMCPListToolsItem,
        RealtimeToolCallItem,
        SystemMessageItem,
        UserMessageItem,
    )
    from .run_context import RealtimeEventInfo, RunContextWrapper, RunUsage, ToolContext
    from .runner import RealtimeRunner
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
        RealtimeRawModelEvent,
        RealtimeSessionEvent,
        RealtimeToolApprovalRequired,
        RealtimeToolEnd,
        RealtimeToolStart,
    )
    from .session_transport import SessionTransport
    from .tool import FunctionTool, function_tool
    from .transport import (
        RECONNECT_CLOSE_CODES,
        AudioDropped,
        ConnectionState,
        OpenAIRealtimeWebSocket,
        Reconnected,
        ReconnectFailed,
        Reconnecting,
        ReconnectPolicy,
    )
    from .webrtc import OpenAIRealtimeWebRTC

# Where each public name lives: a name is imported from its module on first access.
_EXPORTS: dict[str, str] = {
    "RealtimeAgent": ".agent",
    "RealtimeHandoff": ".agent",
    "realtime_handoff": ".agent",
    "RealtimeSession": ".session",
    "RealtimeRunner": ".runner",
    "RunContextWrapper": ".run_context",
    "ToolContext": ".run_context",
    "RunUsage": ".run_context",
    "RealtimeEventInfo": ".run_context",
    "SessionTransport": ".session_transport",
    "function_tool": ".tool",
    "FunctionTool": ".tool",
    "output_guardrail": ".guardrail",
    "OutputGuardrail": ".guardrail",
    "OutputGuardrailResult": ".guardrail",
    "GuardrailFunctionOutput": ".guardrail",
    "RealtimeItem": ".items",
    "HistoryItems": ".items",
    "InputText": ".items",
    "InputAudio": ".items",
    "InputImage": ".items",
    "AssistantText": ".items",
    "AssistantAudio": ".items",
    "UserMessageItem": ".items",
    "AssistantMessageItem": ".items",
    "SystemMessageItem": ".items",
    "RealtimeToolCallItem": ".items",
    "RealtimeMCPListToolsItem": ".items",
    "RealtimeMCPCallItem": ".items",
    "RealtimeMCPApprovalRequestItem": ".items",
    "RealtimeSessionEvent": ".session_events",
    "RealtimeAgentStartEvent": ".session_events",
    "RealtimeAgentEndEvent": ".session_events",
    "RealtimeHandoffEvent": ".session_events",
    "RealtimeToolStart": ".session_events",
    "RealtimeToolEnd": ".session_events",
    "RealtimeToolApprovalRequired": ".session_events",
    "RealtimeMCPToolsChanged": ".session_events",
    "RealtimeAudio": ".session_events",
    "RealtimeAudioEnd": ".session_events",
    "RealtimeAudioInterrupted": ".session_events",
    "RealtimeErrorEvent": ".session_events",
    "RealtimeHistoryAdded": ".session_events",
    "RealtimeHistoryUpdated": ".session_events",
    "RealtimeGuardrailTripped": ".session_events",
    "RealtimeInputAudioTimeoutTriggered": ".session_events",
    "RealtimeRawModelEvent": ".session_events",
    "OpenAIRealtimeWebSocket": ".transport",
    "OpenAIRealtimeWebRTC": ".webrtc",
    "ConnectionState": ".transport",
    "ReconnectPolicy": ".transport",
    "RECONNECT_CLOSE_CODES": ".transport",
    "AudioDropped": ".transport",
    "Reconnecting": ".transport",
    "Reconnected": ".transport",
    "ReconnectFailed": ".transport",
    "SessionConfig": ".config",
    "TurnDetection": ".config",
    "DEFAULT_SESSION_CONFIG": ".config",
    "TransportEvent": ".events",
    "TransportAudio": ".events",
    "AudioDone": ".events",
    "AudioInterrupted": ".events",
    "TranscriptDelta": ".events",
    "OutputTextDelta": ".events",
    "ItemUpdate": ".events",
    "ItemDeleted": ".events",
    "FunctionCall": ".events",
    "TurnStarted": ".events",
    "TurnDone": ".events",
    "ResponseCut": ".events",
    "Usage": ".events",
    "ConnectionChange": ".events",
    "ErrorEvent": ".events",
    "InputTranscriptDelta": ".events",
    "InputTranscriptCompleted": ".events",
    "InputTranscriptFailed": ".events",
    "InputSpeechStarted": ".events",
    "InputSpeechStopped": ".events",
    "AudioCommitted": ".events",
    "InputAudioTimeout": ".events",
    "RateLimits": ".events",
    "McpToolsListed": ".events",
    "McpApprovalRequest": ".events",
    "McpToolCall": ".events",
    "ServerEvent": ".events",
    "ServerEventBase": ".events",
    "GenericServerEvent": ".events",
    "MalformedServerEvent": ".events",
    "parse_server_event": ".events",
    "AudioPlayer": ".audio",
    "PlaybackPosition": ".audio",
    "Microphone": ".audio",
    "VoiceConversation": ".audio",
    "start_voice": ".audio",
    "EchoCancellationWarning": ".audio",
    "RealtimeError": ".errors",
    "UserError": ".errors",
    "ConfigurationError": ".errors",
    "InvalidStateError": ".errors",
    "UnsupportedError": ".errors",
    "RemoteError": ".errors",
    "ConnectionFailedError": ".errors",
    "ConnectionClosedError": ".errors",
    "ServerError": ".errors",
    "AudioFormat": "._interfaces",
    "AudioOutput": "._interfaces",
    "AudioInput": "._interfaces",
    "RealtimeSocket": "._interfaces",
    "SocketFactory": "._interfaces",
    "SocketHandler": "._interfaces",
    "SocketRequest": "._interfaces",
}
#: Subpackages and modules that ``pyodide_realtime.<name>`` reaches without an import statement.
_SUBMODULES = frozenset(
    {"agent", "audio", "config", "dialects", "errors", "events", "items", "session", "testing", "tool", "transport", "webrtc"}
)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


__all__ = [
    "__version__",
    # session: agents, tools, history
    "RealtimeAgent",
    "RealtimeHandoff",
    "realtime_handoff",
    "RealtimeSession",
    "RealtimeRunner",
    "RunContextWrapper",
    "ToolContext",
    "RunUsage",
    "RealtimeEventInfo",
    "SessionTransport",
    "function_tool",
    "FunctionTool",
    "output_guardrail",
    "OutputGuardrail",
    "OutputGuardrailResult",
    "GuardrailFunctionOutput",
    "RealtimeItem",
    "HistoryItems",
    "InputText",
    "InputAudio",
    "InputImage",
    "AssistantText",
    "AssistantAudio",
    "UserMessageItem",
    "AssistantMessageItem",
    "SystemMessageItem",
    "RealtimeToolCallItem",
    "RealtimeMCPListToolsItem",
    "RealtimeMCPCallItem",
    "RealtimeMCPApprovalRequestItem",
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
    "RealtimeRawModelEvent",
    # transport
    "OpenAIRealtimeWebSocket",
    "OpenAIRealtimeWebRTC",
    "ConnectionState",
    "ReconnectPolicy",
    "RECONNECT_CLOSE_CODES",
    "AudioDropped",
    "Reconnecting",
    "Reconnected",
    "ReconnectFailed",
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
    "ResponseCut",
    "Usage",
    "ConnectionChange",
    "ErrorEvent",
    "InputTranscriptDelta",
    "InputTranscriptCompleted",
    "InputTranscriptFailed",
    "InputSpeechStarted",
    "InputSpeechStopped",
    "AudioCommitted",
    "InputAudioTimeout",
    "RateLimits",
    "McpToolsListed",
    "McpApprovalRequest",
    "McpToolCall",
    "ServerEvent",
    "ServerEventBase",
    "GenericServerEvent",
    "MalformedServerEvent",
    "parse_server_event",
    # audio (browser only; importable anywhere)
    "AudioPlayer",
    "PlaybackPosition",
    "Microphone",
    "VoiceConversation",
    "start_voice",
    "EchoCancellationWarning",
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
