"""The worker demo's Python (worker.html): demo_app's page, run in a PyScript worker.

Everything the page shows is ``demo_app``'s. Two things differ in a worker: its own address is a
``blob:`` URL, so the server's URLs resolve against the page with ``page_url``; and the page's
``window`` is PyScript's proxy (which PyScript also puts in ``js.document``), through which every DOM
access is a synchronous round trip: the worker waits (Atomics.wait) until the page answered, and one
proxied call takes several of them (a DOM event handed to a listener added from here, dozens: Pyodide
probes the event's proxy). So the worker and its page talk over a BroadcastChannel (``PageChannel``):
each paint is one message, painted on arrival, and each click one message back; neither side waits.
The voice needs nothing more: ``start_voice`` has the page host the worklets (through that same
``window``) and talks to them over their own ports.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import demo_app
import js
from pyodide.ffi import create_proxy
from pyscript import window  # type: ignore[import-not-found]

from pyodide_realtime.audio import page_url


class PageChannel:
    """demo_app's painter in a worker: paints go to the page's ``demoView`` (demo_view.js) as messages,
    and the page's clicks come back the same way. Synchronous calls are left for setting it up and for
    a form field's value (one each: at Connect, and per typed message)."""

    def __init__(self, view: Any) -> None:
        name = f"demo-view-{secrets.token_hex(8)}"  # this worker's own: another tab of the demo has another
        self.view = view
        self.actions: dict[tuple[str, str], Callable[[], Any]] = {}
        self.channel = js.BroadcastChannel.new(name)
        self.channel.onmessage = create_proxy(self._heard)  # kept as long as the page lives
        view.listen(name)  # the page listens before the first paint is posted

    def paint(self, update: str) -> None:
        self.channel.postMessage(update)

    def value(self, name: str, value: str | None = None) -> str | None:
        return self.view.value(name, value)  # type: ignore[no-any-return]

    def forward(self, actions: dict[tuple[str, str], Callable[[], Any]]) -> None:
        """Run ``actions[(element id, event type)]`` when the page's element has that event."""
        self.actions = dict(actions)
        self.view.forward(json.dumps(list(actions)))

    def _heard(self, event: Any) -> None:
        name, kind = str(event.data).split(" ")
        self.actions[name, kind]()


async def main() -> demo_app.Demo:
    return await demo_app.main(resolve=page_url, painter=PageChannel(demo_app.page_view(window)))
