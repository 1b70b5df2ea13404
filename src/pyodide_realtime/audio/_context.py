"""What the player and the microphone share about a live AudioContext: resuming it, with a limit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["RESUME_TIMEOUT_S", "resume_context"]

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
