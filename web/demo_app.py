"""The demo's Python (index.html with PyScript, pyodide.html with plain Pyodide): a voice agent with one tool.

``RealtimeSession`` does the work (audio, tool calls, history of what was heard); this file renders it. The key
is an ephemeral ``ek_`` key minted by the page's own server. For tests (read-only): ``#status[data-status]``,
``#voice-state[data-state]``, ``#transcript > li.turn.{user,assistant,tool}#item-<id>``; a spoken reply's bubble
has ``data-audio-ms`` (received), ``data-heard-ms`` (played) and, once cut, ``data-cut-ms``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import create_proxy
from pyodide.http import pyfetch

from pyodide_realtime import RealtimeAgent, RealtimeSession, function_tool

MINT_URL = "./v1/realtime/client_secrets"  # same origin as the page
TICK_S = 0.05
LEVEL_DECAY = 0.7  # the meter falls back slowly between microphone chunks
STATES = {"listening": "Listening", "thinking": "Thinking…", "speaking": "Speaking", "off": "Not connected"}
ERROR_KINDS = {"transport": "connection", "mcp": "server"}  # other origins are their own kind
WHO = {"user": "You", "assistant": "Model", "tool": "Tool"}


@function_tool
def get_weather(location: str) -> dict[str, Any]:
    """The current weather in a city."""
    return {"location": location, "forecast": "sunny", "temperature_c": 18 + len(location) % 10}


AGENT = RealtimeAgent(name="Assistant", instructions="You are a friendly voice assistant. Be brief.", tools=[get_weather])


def el(name: str) -> Any:
    return js.document.getElementById(name)


class Demo:
    def __init__(self, mint_url: str = MINT_URL) -> None:
        self.mint_url = mint_url
        self.session: RealtimeSession | None = None
        self.entries: dict[str, Any] = {}  # item_id -> its <li> in #transcript
        self.level = 0.0  # the meter's, 0..1
        self.tasks: set[asyncio.Future[Any]] = set()  # held: asyncio keeps only weak references

    def show_error(self, message: str, kind: str) -> None:
        box = el("error")
        box.textContent, box.hidden, box.dataset.kind = message[:1].upper() + message[1:], False, kind

    def set_status(self, status: str) -> None:
        el("status").dataset.status = status
        el("status").textContent = {"disconnected": "Not connected", "connecting": "Connecting…"}.get(status, "Connected")
        el("connect").disabled = status != "disconnected"
        for name in ("hang-up", "interrupt", "send", "mute"):
            el(name).disabled = status != "connected"
        if not (self.session and self.session.voice and self.session.voice.microphone):
            el("mute").disabled = True

    async def mint_key(self) -> str:
        body = json.dumps({"session": {"type": "realtime", "model": self.session.transport.current_model}})
        try:
            answer = await pyfetch(self.mint_url, method="POST", headers={"Content-Type": "application/json"}, body=body)
        except OSError:
            raise RuntimeError("the demo server is not answering: is it still running? Start it and connect again.") from None
        if not answer.ok:
            raise RuntimeError(f"the server refused to mint a key ({answer.status}): {(await answer.text())[:200]}")
        return str((await answer.json())["value"])

    async def connect(self) -> None:
        el("error").hidden, self.entries = True, {}
        el("transcript").replaceChildren()
        self.session = session = RealtimeSession(AGENT, dialect=el("dialect").value, audio=True)
        url = el("server-url").value.strip()
        if url and "?" not in url:  # a given URL is used as it is; the beta API wants the model there
            url += f"?model={session.transport.current_model}"
        session.transport.on("connection_change", lambda change: self.set_status(change.status))
        session.on("history_updated", self.render)
        session.on("error", lambda e: self.show_error(e.message, ERROR_KINDS.get(e.origin, e.origin)))
        try:
            await session.connect(api_key=self.mint_key, url=url or None)
        except Exception as exc:  # shown to the person, who can fix the URL or start the server
            return self.show_error(f"Could not connect: {exc}", "connection")
        self.set_status(session.transport.status)  # the microphone is known now: Mute or not

    def send_text(self) -> None:
        if (text := el("message").value.strip()) and self.session is not None:
            self.session.send_message(text)
            el("message").value = ""

    def hang_up(self) -> None:
        el("error").hidden = True  # hanging up is not an error, and it ends the one shown
        if self.session is not None:
            self.session.close()

    def toggle_mute(self) -> None:
        self.session.mute(muted := not self.session.transport.muted)
        el("mute").textContent = "Unmute" if muted else "Mute"
        el("mute").setAttribute("aria-pressed", str(muted).lower())

    def render(self, event: Any) -> None:
        """One item changed: redraw its bubble; follow the server's order if an item came or went."""
        item = event.item
        role = "tool" if item and item.type == "function_call" else getattr(item, "role", None)
        if role in WHO and (item.item_id in self.entries or role != "assistant" or item.text or item.unheard_text):
            if (li := self.entries.get(item.item_id)) is None:
                li = self.entries[item.item_id] = el("transcript").appendChild(js.document.createElement("li"))
                li.id, li.className = f"item-{item.item_id}", f"turn {role}"
                li.innerHTML = f'<span class="who">{WHO[role]}</span><span class="text"></span> <span class="unheard"></span>'
            if role == "tool":
                result = f" → {item.output}" if item.output else " …"
                li.querySelector(".text").textContent = f"{item.name}({item.arguments}){result}"
            else:  # what was not heard of an interrupted reply stays, greyed
                li.querySelector(".text").textContent = item.text or ("🎤 …" if role == "user" else "")
                li.querySelector(".unheard").textContent = getattr(item, "unheard_text", "")
                li.classList.toggle("interrupted", getattr(item, "interrupted", False))
                if getattr(item, "heard_ms", None) is not None:
                    li.dataset.cutMs = int(item.heard_ms)
        if (order := [i.item_id for i in event.history if i.item_id in self.entries]) != list(self.entries):
            for gone in set(self.entries) - set(order):
                self.entries.pop(gone).remove()
            self.entries = {i: el("transcript").appendChild(self.entries[i]) for i in order}
        el("transcript").scrollTop = el("transcript").scrollHeight

    async def tick(self) -> None:
        """Every TICK_S: the voice state, the microphone level, the last turn's latency, how much was heard."""
        while True:
            await asyncio.sleep(TICK_S)
            session = self.session
            state = session.voice_state if session else "off"
            el("voice-state").dataset.state, el("voice-state").textContent = state, STATES[state]
            if session and session.last_turn_latency_ms is not None:
                el("latency").textContent = f"Last reply began {session.last_turn_latency_ms:.0f} ms after you stopped"
            el("mic-level").value = self.level = max(session.input_level if session else 0.0, self.level * LEVEL_DECAY)
            player = session.voice.player if session and session.voice else None
            spoken = [i for i in (session.history if player else ()) if getattr(i, "audio_ms", 0)]
            for reply in spoken[-2:]:  # the one playing, and the one that just ended
                if (li := self.entries.get(reply.item_id)) is not None:  # its underline grows as it is heard
                    heard = player.heard_ms(reply.item_id, 0) or 0.0
                    li.dataset.audioMs, li.dataset.heardMs = f"{reply.audio_ms:.1f}", f"{heard:.1f}"
                    li.style.setProperty("--heard", f"{min(1.0, heard / reply.audio_ms):.3f}")


async def main(resolve: Callable[[str], str] = str) -> Demo:
    """Wire the page (called once the page's Python is loaded). ``resolve`` makes the server's relative
    URLs absolute where the base is not the page (a worker's is a ``blob:`` URL: ``page_url``)."""
    demo = Demo(resolve(MINT_URL))
    try:
        el("server-url").value = (await (await pyfetch(resolve("./demo-config.json"))).json())["realtime_url"]
    except (OSError, ValueError):  # a static host without our server: the person types the URL
        el("advanced").open = True
        demo.show_error("No /demo-config.json here: enter the Realtime server's URL under Advanced.", "config")
    for name, event, handler in [
        ("connect", "click", lambda _e: demo.tasks.add(asyncio.ensure_future(demo.connect()))),
        ("hang-up", "click", lambda _e: demo.hang_up()),
        ("interrupt", "click", lambda _e: demo.session.interrupt()),
        ("mute", "click", lambda _e: demo.toggle_mute()),
        ("composer", "submit", lambda e: (e.preventDefault(), demo.send_text())),
    ]:
        el(name).addEventListener(event, create_proxy(handler))  # kept as long as the page lives
    demo.set_status("disconnected")
    el("boot").hidden = True
    demo.tasks.add(asyncio.ensure_future(demo.tick()))
    return demo
