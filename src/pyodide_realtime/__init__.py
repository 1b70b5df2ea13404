"""pyodide-realtime: a pure-Python client for the OpenAI Realtime API, in the browser (Pyodide) and CPython.

Start with :class:`OpenAIRealtimeWebSocket`; configure the session with :class:`SessionConfig` (or a dict).
In a page, :func:`start_voice` wires an :class:`AudioPlayer` and a :class:`Microphone` to it. The local
Realtime server (CPython only) is :mod:`pyodide_realtime.server`.

The names below load on first use (PEP 562): ``import pyodide_realtime`` costs next to nothing, the
transport's names load the transport (with pydantic), and the audio package loads only when one of its
names is asked for. In Pyodide, where every imported module costs milliseconds at page start, that is
what a page that only needs text pays for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time _EXPORTS loads the same names lazily
    from ._interfaces import AudioFormat, AudioInput, AudioOutput, RealtimeSocket, SocketFactory, SocketHandler, SocketRequest
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

# Where each public name lives: a name is imported from its module on first access.
_EXPORTS: dict[str, str] = {
    "AudioFormat": "._interfaces",
    "AudioInput": "._interfaces",
    "AudioOutput": "._interfaces",
    "RealtimeSocket": "._interfaces",
    "SocketFactory": "._interfaces",
    "SocketHandler": "._interfaces",
    "SocketRequest": "._interfaces",
    "AudioPlayer": ".audio",
    "Microphone": ".audio",
    "PlaybackPosition": ".audio",
    "VoiceConversation": ".audio",
    "start_voice": ".audio",
    "DEFAULT_SESSION_CONFIG": ".config",
    "SessionConfig": ".config",
    "TurnDetection": ".config",
    "ConfigurationError": ".errors",
    "ConnectionClosedError": ".errors",
    "ConnectionFailedError": ".errors",
    "InvalidStateError": ".errors",
    "RealtimeError": ".errors",
    "RemoteError": ".errors",
    "ServerError": ".errors",
    "UnsupportedError": ".errors",
    "UserError": ".errors",
    "AudioDone": ".events",
    "AudioInterrupted": ".events",
    "ConnectionChange": ".events",
    "ErrorEvent": ".events",
    "FunctionCall": ".events",
    "GenericServerEvent": ".events",
    "ItemDeleted": ".events",
    "ItemUpdate": ".events",
    "OutputTextDelta": ".events",
    "ServerEvent": ".events",
    "ServerEventBase": ".events",
    "TranscriptDelta": ".events",
    "TransportAudio": ".events",
    "TransportEvent": ".events",
    "TurnDone": ".events",
    "TurnStarted": ".events",
    "Usage": ".events",
    "parse_server_event": ".events",
    "ConnectionState": ".transport",
    "OpenAIRealtimeWebSocket": ".transport",
}
#: Subpackages and modules that ``pyodide_realtime.<name>`` reaches without an import statement.
_SUBMODULES = frozenset({"audio", "config", "dialects", "errors", "events", "transport"})


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
