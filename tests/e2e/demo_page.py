"""What the e2e tests read from a demo page (any of the three) and from the server behind it."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

SERVER_WAIT_S = 5.0


def server_state(server: Any) -> dict[str, Any]:
    """``GET /_test/state``: what the server saw, as the browser's peer."""
    with urllib.request.urlopen(server.url + "_test/state", timeout=5) as answer:
        state: dict[str, Any] = json.load(answer)
    return state


def figures(page: Any, item_id: str) -> dict[str, str]:
    """A reply bubble's playback figures (read-only ``data-*``: audioMs received, heardMs played, cutMs)."""
    found: dict[str, str] = page.evaluate("(id) => ({...document.getElementById('item-' + id).dataset})", item_id)
    return found


def wait_for_truncation(server: Any, item_id: str) -> dict[str, Any]:
    """The server's record of the ``conversation.item.truncate`` for ``item_id`` (it may lag the page)."""
    deadline = time.monotonic() + SERVER_WAIT_S
    while time.monotonic() < deadline:
        found = [t for t in server_state(server)["truncations"] if t["item_id"] == item_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"the server saw no conversation.item.truncate for {item_id}")
