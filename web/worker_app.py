"""The worker demo's Python (worker.html): demo_app's page, run in a PyScript worker.

Everything the page shows is ``demo_app.Demo``'s. Two things differ in a worker: its own address is a
``blob:`` URL, so the server's URLs resolve against the page with ``page_url``; and the DOM is the
page's, reached through PyScript's ``window`` (which PyScript also puts in ``js.document``). The voice
itself needs nothing more: ``start_voice`` has the page host the worklets (through that same ``window``)
and talks to them over their own ports.
"""

from __future__ import annotations

import asyncio

import demo_app
from pyodide.http import pyfetch

from pyodide_realtime.audio import page_url


async def main() -> demo_app.Demo:
    """Wire the page, as ``demo_app.main`` does, with the server's URLs made absolute."""
    demo_app.MINT_URL = page_url("./v1/realtime/client_secrets")
    demo = demo_app.Demo()
    try:
        config = await (await pyfetch(page_url("./demo-config.json"))).json()
        demo_app.element("server-url").value = config["realtime_url"]
    except (OSError, ValueError):  # a static host without our server: the person types the URL
        demo.show_error("No /demo-config.json here: enter the Realtime server's URL.", "config")
    demo.listen("connect", "click", lambda _e: demo.spawn(demo.connect()))
    demo.listen("hang-up", "click", lambda _e: demo.hang_up())
    demo.listen("interrupt", "click", lambda _e: demo.interrupt())
    demo.listen("mute", "click", lambda _e: demo.toggle_mute())
    demo.listen("composer", "submit", lambda _e: demo.send_text())  # the form's onsubmit keeps the page
    demo.set_status("disconnected")
    demo.stats_task = asyncio.ensure_future(demo.show_stats())
    return demo
