"""The worker demo's Python (worker.html): demo_app's page, run in a PyScript worker.

Everything the page shows is ``demo_app``'s. Two things differ in a worker: its own address is a
``blob:`` URL, so the server's URLs resolve against the page with ``page_url``; and the page's
``window`` is PyScript's proxy (which PyScript also puts in ``js.document``), through which every DOM
access is a synchronous round trip: demo_app paints through the page's ``demoView`` once per frame.
The voice needs nothing more: ``start_voice`` has the page host the worklets (through that same
``window``) and talks to them over their own ports.
"""

from __future__ import annotations

import demo_app
from pyscript import window  # type: ignore[import-not-found]

from pyodide_realtime.audio import page_url


async def main() -> demo_app.Demo:
    return await demo_app.main(resolve=page_url, window=window)
