"""pyodide-realtime: a pure-Python client for the OpenAI Realtime API, in the browser (Pyodide) and CPython.

Start with :class:`OpenAIRealtimeWebSocket`; configure the session with :class:`SessionConfig` (or a dict).
In a page, :func:`start_voice` wires an :class:`AudioPlayer` and a :class:`Microphone` to it. The local
Realtime server (CPython only) is :mod:`pyodide_realtime.server`.
"""

from ._interfaces import AudioFormat, AudioInput, AudioOutput, RealtimeSocket, SocketFactory, SocketHandler, SocketRequest
from ._version import __version__
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
from .transport import ConnectionState, OpenAIRealtimeWebSocket

__all__ = [
    "__version__",
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
