"""What the e2e tests read from a demo page (any of the three) and from the server behind it, and how
they press Interrupt and time it."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from typing import Any

SERVER_WAIT_S = 5.0
STEP_TIMEOUT_MS = 30_000

#: Records, on the page, when each click on Interrupt happened (Date.now(): the clock Python's
#: time.time() reads), before the page's Python (on the page or in a worker) hears of it.
CLICK_MARKS = """
window.interruptClicks = [];
addEventListener("click", (e) => { if (e.target.id === "interrupt") window.interruptClicks.push(Date.now()); }, true);
"""


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


class SentFrames:
    """Every frame a page's WebSockets send (its worker's too), with when Python heard of it (ms, the
    clock of Date.now()): from the click mark to the truncate leaving the browser."""

    def __init__(self, page: Any) -> None:
        self.frames: list[tuple[float, str]] = []
        self.sockets: list[Any] = []
        page.on("websocket", self._opened)

    def _opened(self, socket: Any) -> None:
        self.sockets.append(socket)
        socket.on("framesent", lambda payload: self.frames.append((time.time() * 1000, str(payload))))

    def of_type(self, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        marker = f'"type":"{event_type}"'
        return [(at, json.loads(text)) for at, text in self.frames if marker in text.replace(" ", "")]

    def press_interrupt(self, page: Any, *, double: bool = False) -> float:
        """Press Interrupt (twice in a row if ``double``) and wait for the truncate it sends; returns
        the ms from the click to that frame."""
        truncates = len(self.of_type("conversation.item.truncate"))

        def is_truncate(payload: Any) -> bool:
            return '"conversation.item.truncate"' in str(payload).replace(": ", ":")

        with self.sockets[-1].expect_event("framesent", predicate=is_truncate, timeout=STEP_TIMEOUT_MS):
            (page.dblclick if double else page.click)("#interrupt")
        clicks: list[float] = page.evaluate("window.interruptClicks")
        clicked = clicks[-2] if double else clicks[-1]
        sent = self.of_type("conversation.item.truncate")[truncates:]
        return sent[0][0] - clicked


def latency_summary(latencies: list[float]) -> str:
    return (f"click to truncate over {len(latencies)} presses: median {statistics.median(latencies):.0f} ms, "
            f"best {min(latencies):.0f}, worst {max(latencies):.0f} (" + ", ".join(f"{x:.0f}" for x in latencies) + ")")
