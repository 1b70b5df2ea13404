"""The demo's Python, shared by index.html (PyScript) and pyodide.html (plain Pyodide).

A voice conversation: ``OpenAIRealtimeWebSocket`` talks to the server, ``start_voice`` plays the
model and streams the microphone; this file only wires the page to them. The key is an ephemeral
``ek_`` key minted by the page's own server (``POST /v1/realtime/client_secrets``), never a real one.

For tests (read-only): ``#status[data-status]``, ``#transcript > li.turn.{user,assistant,tool}`` with
``id="item-<item_id>"``, and the player's figures as ``data-*`` on ``#player-stats``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import js
from pyodide.ffi import create_proxy
from pyodide.http import pyfetch

from pyodide_realtime import OpenAIRealtimeWebSocket, UnsupportedError
from pyodide_realtime.audio import VoiceConversation, bytes_per_ms, start_voice

MINT_URL = "./v1/realtime/client_secrets"  # same origin as the page
STATS_EVERY_S = 0.1
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
SESSION = {"instructions": "You are a friendly voice assistant. Keep answers short.", "tools": [WEATHER_TOOL]}


def get_weather(location: str) -> dict[str, Any]:
    """The tool the model calls; a real page would ask a weather service."""
    return {"location": location, "forecast": "sunny", "temperature_c": 18 + len(location) % 10}


def element(name: str) -> Any:
    return js.document.getElementById(name)


class Demo:
    def __init__(self) -> None:
        self.transport: OpenAIRealtimeWebSocket | None = None
        self.voice: VoiceConversation | None = None
        self.hanging_up = False
        self.audio_keys: list[tuple[str, int]] = []
        self.entries: dict[str, Any] = {}  # item_id -> its <li> in #transcript
        self.stats: dict[str, Any] = {"chunks": 0, "received-ms": 0.0}
        self._proxies: list[Any] = []  # live as long as the page: never destroyed
        self.stats_task: asyncio.Future[None] | None = None  # held: asyncio keeps only weak references
        self.tasks: set[asyncio.Future[None]] = set()  # the buttons' tasks, held until they end

    def listen(self, name: str, event: str, handler: Any) -> None:
        proxy = create_proxy(handler)
        self._proxies.append(proxy)
        element(name).addEventListener(event, proxy)

    def spawn(self, coroutine: Any) -> None:
        """Run a button's coroutine as a held task; whatever it raises is shown, never lost."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.task_done)

    def task_done(self, task: asyncio.Future[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.show_error(f"Something went wrong: {task.exception()}", "internal")

    def show_error(self, message: str, kind: str) -> None:
        box = element("error")
        box.textContent, box.hidden = message, False
        box.dataset.kind = kind

    def set_status(self, status: str) -> None:
        element("status").dataset.status = status
        element("status").textContent = {"disconnected": "Not connected", "connecting": "Connecting…"}.get(status, "Connected")
        element("connect").disabled = status != "disconnected"
        for name in ("hang-up", "interrupt", "mute", "send"):
            element(name).disabled = status != "connected"

    # Connecting ------------------------------------------------------------------------------------
    async def mint_key(self) -> str:
        body = json.dumps({"session": {"type": "realtime", "model": self.transport.current_model}})
        try:
            response = await pyfetch(MINT_URL, method="POST", headers={"Content-Type": "application/json"}, body=body)
        except OSError:
            raise RuntimeError("The demo server is not answering: is it still running? Start it and connect again.") from None
        payload = await response.json()
        if not response.ok:
            message = (payload.get("error") or {}).get("message") or response.status_text
            raise RuntimeError(f"The server refused to mint a key ({response.status}): {message}")
        return str(payload["value"])

    async def connect(self) -> None:
        element("error").hidden = True
        self.hanging_up = False
        self.transport = transport = OpenAIRealtimeWebSocket(dialect=element("dialect").value)
        for name, handler in [
            ("connection_change", lambda change: self.set_status(change.status)),
            ("disconnected", self.on_disconnected),
            ("item_update", self.on_item),
            ("audio_transcript_delta", self.on_delta),
            ("output_text_delta", self.on_delta),
            ("function_call", self.on_function_call),
            ("audio", self.on_audio),
            ("audio_interrupted", self.on_interrupted),
            ("error", lambda event: self.show_error(str(event.exception), "server")),
        ]:
            transport.on(name, handler)
        try:
            url = element("server-url").value.strip()
            if url and "?" not in url:  # a given URL is used as it is; the beta API wants the model there
                url += f"?model={transport.current_model}"
            await transport.connect(api_key=self.mint_key, url=url or None, initial_session_config=SESSION)
        except Exception as exc:  # shown to the person, who can fix the URL or start the server
            self.show_error(f"Could not connect: {exc}", "connection")
            self.set_status("disconnected")
            return
        try:
            voice = await self.start_voice(transport)
        except Exception as exc:  # no audio output at all (no device?): typing still works
            if self.is_current(transport):
                self.show_error(f"Audio is off: {exc}. You can still type.", "audio")
            return
        if not self.is_current(transport):
            voice.close()  # hung up (or connected anew) while the microphone prompt was open
            return
        self.voice = voice
        element("mute").textContent = "Mute" if voice.microphone else "No microphone"
        element("mute").disabled = voice.microphone is None

    async def start_voice(self, transport: OpenAIRealtimeWebSocket) -> VoiceConversation:
        try:
            return await start_voice(transport)
        except UnsupportedError as exc:  # no microphone, or access denied: typing still works
            if self.is_current(transport):
                self.show_error(f"Voice input is off: {exc}. You can still type.", "microphone")
            return await start_voice(transport, microphone=False)

    def is_current(self, transport: OpenAIRealtimeWebSocket) -> bool:
        """Whether ``transport`` is still the page's live connection (the person may hang up any time)."""
        return transport is self.transport and transport.status == "connected"

    def hang_up(self) -> None:
        self.hanging_up = True
        element("error").hidden = True
        if self.transport is not None:
            self.transport.close()

    def on_disconnected(self, _change: Any) -> None:
        if self.voice is not None:
            self.voice.close()
            self.voice = None
        element("mute").textContent = "Mute"
        element("mute").setAttribute("aria-pressed", "false")
        if not self.hanging_up:
            self.show_error("The connection closed (did the server stop?). Press Connect to start again.", "connection")

    # The conversation ------------------------------------------------------------------------------
    def entry(self, item_id: str, role: str) -> Any:
        li = self.entries.get(item_id)
        if li is None:
            li = self.entries[item_id] = js.document.createElement("li")
            li.id, li.className = f"item-{item_id}", f"turn {role}"
            li.innerHTML = '<span class="who"></span><span class="text"></span>'
            li.firstChild.textContent = {"user": "You", "assistant": "Model"}.get(role, "Tool")
            element("transcript").appendChild(li)
        element("transcript").scrollTop = element("transcript").scrollHeight
        return li.lastChild

    def on_item(self, item: Any) -> None:
        if item.type == "function_call":
            result = f" → {item.output}" if item.output else " …"
            self.entry(item.item_id, "tool").textContent = f"{item.name}({item.arguments}){result}"
        elif item.type == "message" and item.role in ("user", "assistant"):
            parts = [part.get("text") or part.get("transcript") or "" for part in item.content if isinstance(part, dict)]
            text = "".join(parts) or ("🎤 …" if item.role == "user" else "")
            if text:
                self.entry(item.item_id, item.role).textContent = text
            if item.status == "incomplete":
                self.entry(item.item_id, item.role).parentElement.classList.add("interrupted")

    def on_delta(self, delta: Any) -> None:
        self.entry(delta.item_id, "assistant").textContent += delta.delta

    def on_function_call(self, call: Any) -> None:
        if call.name != "get_weather":
            return
        output = get_weather(**json.loads(call.arguments or "{}"))
        self.transport.send_function_call_output(call, json.dumps(output))

    def send_text(self) -> None:
        box = element("message")
        if box.value.strip() and self.transport is not None:
            self.transport.send_message(box.value.strip())
            box.value = ""

    def interrupt(self) -> None:
        playing = self.voice.player.playing if self.voice else None
        self.stats["heard-at-interrupt"] = playing.heard_ms if playing else ""
        self.transport.interrupt()

    def toggle_mute(self) -> None:
        if self.voice is not None and self.voice.microphone is not None:
            self.transport.mute(not self.transport.muted)
            element("mute").textContent = "Unmute" if self.transport.muted else "Mute"
            element("mute").setAttribute("aria-pressed", str(self.transport.muted).lower())

    # Player figures --------------------------------------------------------------------------------
    def on_audio(self, audio: Any) -> None:
        key = (audio.item_id, audio.content_index)
        if key not in self.audio_keys:
            self.audio_keys.append(key)
        self.stats["chunks"] += 1
        self.stats["item"] = audio.item_id
        self.stats["received-ms"] += len(audio.data) / bytes_per_ms(self.transport.protocol.output_audio_format)

    def on_interrupted(self, event: Any) -> None:
        for item_id, _index, end_ms in event.truncated:
            self.stats.update({"truncate-item": item_id, "truncate-ms": end_ms})
            self.entry(item_id, "assistant").parentElement.classList.add("interrupted")

    async def show_stats(self) -> None:
        line = element("player-stats")
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            player = self.voice.player if self.voice else None
            if player is not None and self.audio_keys:
                heard = [player.heard_ms(*key) or 0.0 for key in self.audio_keys]
                self.stats.update({"played-ms": sum(heard), "heard-ms": heard[-1], "underruns": player.underruns})
            for name, value in self.stats.items():
                line.setAttribute(f"data-{name}", f"{value:.1f}" if isinstance(value, float) else str(value))
            s = self.stats
            line.textContent = (
                f"audio: {s['chunks']} chunks, {s['received-ms']:.0f} ms received, {s.get('played-ms', 0):.0f} ms played"
                + (f" · cut at {s['truncate-ms']} ms" if "truncate-ms" in s else "")
            )


async def main() -> Demo:
    """Wire the page (called once the page's Python is loaded)."""
    demo = Demo()
    try:
        config = await (await pyfetch("./demo-config.json")).json()
        element("server-url").value = config["realtime_url"]
    except (OSError, ValueError):  # a static host without our server: the person types the URL
        demo.show_error("No /demo-config.json here: enter the Realtime server's URL.", "config")
    demo.listen("connect", "click", lambda _e: demo.spawn(demo.connect()))
    demo.listen("hang-up", "click", lambda _e: demo.hang_up())
    demo.listen("interrupt", "click", lambda _e: demo.interrupt())
    demo.listen("mute", "click", lambda _e: demo.toggle_mute())
    demo.listen("composer", "submit", lambda e: (e.preventDefault(), demo.send_text()))
    demo.set_status("disconnected")
    demo.stats_task = asyncio.ensure_future(demo.show_stats())
    return demo
