"""The worker demo's Python (worker.html): demo_app's page, run in a PyScript worker.

Everything the page shows is ``demo_app``'s. Two things differ in a worker: its own address is a
``blob:`` URL, so the server's URLs resolve against the page with ``page_url``; and the page's
``window`` is PyScript's proxy (which PyScript also puts in ``js.document``), through which every DOM
access is a synchronous round trip: the worker waits (Atomics.wait) until the page answered, and each
proxied call takes several of them. So demo_app paints through ``ChannelPainter``: one message per paint
on a BroadcastChannel that the page's ``demoView`` listens to, which neither blocks the worker nor wakes
the page more than once. The voice needs nothing more: ``start_voice`` has the page host the worklets
(through that same ``window``) and talks to them over their own ports.
"""

from __future__ import annotations

import secrets
from typing import Any

import demo_app
import js
from pyscript import window  # type: ignore[import-not-found]

from pyodide_realtime.audio import page_url


class ChannelPainter:
    """demo_app's painter in a worker: each paint goes to the page as one message, painted there on
    arrival (demo_view.js ``listen``), in the order sent."""

    def __init__(self, view: Any) -> None:
        name = f"demo-view-{secrets.token_hex(8)}"  # this worker's own: another tab of the demo has another
        view.listen(name)  # the one synchronous call: the page listens before the first paint is posted
        self.channel = js.BroadcastChannel.new(name)

    def paint(self, update: str) -> None:
        self.channel.postMessage(update)


async def main() -> demo_app.Demo:
    return await demo_app.main(resolve=page_url, painter=ChannelPainter(demo_app.page_view(window)))
