"""What the player and the microphone share about live AudioContexts: resuming one, with a limit; and
whether the microphone's echo canceller hears what a player plays.

Echo cancellation removes from the microphone what the page plays, but only what the canceller is
given as its reference. Measured in a room where the microphone hears exactly what is played
(tests/browser/test_echo.py): Chromium's canceller hears every context of the page, at any rate;
Firefox's hears only the contexts at the rate its microphone runs at (the device's, a default
``new AudioContext()``'s): a player on a context of another rate (a caller's own 24 kHz context, say)
is heard by the microphone as if nothing cancelled it, and the model then hears itself.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterable
from typing import Any

__all__ = [
    "RESUME_TIMEOUT_S",
    "resume_context",
    "EchoCancellationWarning",
    "cancels_any_rate",
    "echo_not_cancelled",
    "warn_if_not_cancelled",
    "PlayerWatch",
]

logger = logging.getLogger(__name__)

#: How long ``create``/``start`` wait for a suspended context to resume before going on without sound
#: (a page without a user gesture stays suspended; resume from a click handler then).
RESUME_TIMEOUT_S = 1.0


async def resume_context(context: Any, timeout: float | None, still_suspended: str) -> bool:
    """Resume ``context`` (a JS AudioContext) if it is suspended, waiting at most ``timeout`` seconds.

    The browser's autoplay policy may keep the promise pending until a user gesture, so a limit is
    needed; if it passes, ``still_suspended`` (what the person should do) is logged as a warning.
    True if the context is running afterwards.
    """
    if str(context.state) == "suspended":
        try:
            await asyncio.wait_for(asyncio.ensure_future(context.resume()), timeout)
        except asyncio.TimeoutError:
            logger.warning(still_suspended)
    return str(context.state) == "running"


class EchoCancellationWarning(UserWarning):
    """A player plays where the microphone's echo canceller cannot hear it: the microphone (and so the
    model) hears the player's sound in full. The caller's set-up causes it, and can change it."""


def cancels_any_rate(user_agent: str) -> bool:
    """False for Firefox, whose canceller hears only contexts at its microphone's rate."""
    return "Firefox/" not in user_agent


def echo_not_cancelled(user_agent: str, player_rate: int, microphone_rate: int) -> bool:
    """True where a player at ``player_rate`` Hz escapes the echo canceller of a microphone whose
    audio runs at ``microphone_rate`` Hz (in Firefox, the rate of a default AudioContext)."""
    return not cancels_any_rate(user_agent) and player_rate != microphone_rate


def warn_if_not_cancelled(user_agent: str, player_rates: Iterable[int], microphone_rate: int) -> None:
    """An ``EchoCancellationWarning`` for each player rate the canceller does not hear (see above)."""
    for rate in player_rates:
        if echo_not_cancelled(user_agent, rate, microphone_rate):
            warnings.warn(
                f"the microphone's echo canceller does not hear an AudioPlayer whose AudioContext runs at "
                f"{rate} Hz: Firefox cancels only what plays at its microphone's rate ({microphone_rate} Hz "
                "here), so the microphone, and the model, hear the player's sound in full. Let the library "
                "make the player's context (AudioPlayer.create() with no context, or start_voice), or make "
                "yours without a sampleRate (new AudioContext() runs at the microphone's rate).",
                EchoCancellationWarning,
                stacklevel=2,
            )


class PlayerWatch:
    """While a microphone that cancels echo runs on the page: checks the page's players (those there
    now, and each one made later, as the shim tells) against it, in engines where the rate matters."""

    def __init__(self, shim: Any, user_agent: str, microphone_rate: int) -> None:
        from pyodide.ffi import create_proxy

        self._user_agent = user_agent
        self._rate = microphone_rate
        warn_if_not_cancelled(user_agent, (int(rate) for rate in shim.playerRates()), microphone_rate)
        self._proxy = create_proxy(self._player_made)
        self._unwatch = shim.watchPlayers(self._proxy)

    def _player_made(self, rate: float) -> None:
        warn_if_not_cancelled(self._user_agent, (int(rate),), self._rate)

    def close(self) -> None:
        self._unwatch()
        self._proxy.destroy()
