"""The worker demo's Python (worker.html): demo_app's page, run in a PyScript worker.

Everything the page shows is ``demo_app``'s. One thing differs in a worker: its own address is a
``blob:`` URL, so the server's URLs resolve against the page with ``page_url``. The DOM is the page's,
reached through PyScript's ``window`` (which PyScript also puts in ``js.document``); the voice needs
nothing more: ``start_voice`` has the page host the worklets (through that same ``window``) and talks to
them over their own ports.
"""

from __future__ import annotations

import demo_app

from pyodide_realtime.audio import page_url


async def main() -> demo_app.Demo:
    return await demo_app.main(resolve=page_url)
