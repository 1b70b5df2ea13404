"""The local Realtime server: a stand-in for the OpenAI Realtime API on loopback.

It serves the demo pages and the Pyodide dist, mints ephemeral keys (``POST
/v1/realtime/client_secrets``) and plays a simulated model over ``/v1/realtime`` in both protocol
dialects (GA and beta), so that the demo and every test run offline. Run it with
``python -m pyodide_realtime.server``; in tests use ``RealtimeServer`` (``async with``) or
``start_in_thread``.

The simulated model's replies are deterministic (see ``_model``): typed text is echoed ("You said:
..."), speech gets a fixed phrase, and "weather" with a ``get_weather`` tool makes a function call.
"""

from __future__ import annotations

from ._app import RealtimeServer, ServerThread, start_in_thread
from ._model import AUDIO_REPLY, GREETING
from ._state import ConnectionRecord, ServerState

__all__ = ["AUDIO_REPLY", "GREETING", "ConnectionRecord", "RealtimeServer", "ServerState", "ServerThread", "start_in_thread"]
