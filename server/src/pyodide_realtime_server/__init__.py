"""The local Realtime server: a stand-in for the OpenAI Realtime API on loopback.

It serves the demo pages and the Pyodide dist, mints ephemeral keys (``POST
/v1/realtime/client_secrets``) and plays a simulated model over ``/v1/realtime`` in both protocol
dialects (GA and beta), so that the demo and every test run offline. Run it with
``pyodide-realtime-server`` (or ``python -m pyodide_realtime_server``); in tests use
``RealtimeServer`` (``async with``) or ``start_in_thread``.

The simulated model's replies are deterministic (see ``_model``): typed text is echoed ("You said:
..."), speech gets a fixed phrase, and "weather" (typed, or heard by the recognizer) with a
``get_weather`` tool makes a function call.

Names are imported on first use, so that the command line can say which dependency is missing
instead of failing with a traceback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import RealtimeServer, ServerThread, start_in_thread
    from ._errors import ClientEventError, PortInUseError, RealtimeServerError
    from ._model import AUDIO_REPLY, GREETING, MCP_TOOLS
    from ._state import ConnectionRecord, ServerState

_WHERE = {
    "RealtimeServer": "._app",
    "ServerThread": "._app",
    "start_in_thread": "._app",
    "ClientEventError": "._errors",
    "PortInUseError": "._errors",
    "RealtimeServerError": "._errors",
    "AUDIO_REPLY": "._model",
    "GREETING": "._model",
    "MCP_TOOLS": "._model",
    "ConnectionRecord": "._state",
    "ServerState": "._state",
}

__all__ = [
    "AUDIO_REPLY",
    "GREETING",
    "MCP_TOOLS",
    "ClientEventError",
    "ConnectionRecord",
    "PortInUseError",
    "RealtimeServer",
    "RealtimeServerError",
    "ServerState",
    "ServerThread",
    "start_in_thread",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
