"""Client events: encoding, and the check of an event against the API's client event schemas.

Every frame the core sends is encoded here, before any state changes, so an event JSON cannot carry
is refused with a ConfigurationError and leaves nothing half done.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["encode_event"]


def encode_event(event: Mapping[str, Any]) -> str:
    """``event`` as a text frame, or ConfigurationError (callers encode before they change any state)."""
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and the server would refuse the whole frame.
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError(f"the event cannot be sent as JSON: {exc}") from None
