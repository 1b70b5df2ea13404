"""The demo's Python (index.html with PyScript, pyodide.html with plain Pyodide, worker.html in a worker).

``RealtimeSession`` does the work (audio, tool calls, history of what was heard); this file renders it. The key
is an ephemeral ``ek_`` key minted by the page's own server. For tests (read-only): ``#status[data-status]``,
``#voice-state[data-state]``, ``#transcript > li.turn.{user,assistant,tool}#item-<id>``; a spoken reply's bubble
has ``data-audio-ms`` (received), ``data-heard-ms`` (played) and, once cut, ``data-cut-ms``; ``#error``
has ``data-kind``, a sentence for the person in ``.message`` and the library's words in ``.details``.

The page is redrawn when something changed (an event of the session, a click, a microphone chunk loud
enough to move the meter), at most once per frame, in one call to the page's ``demoView.paint``
(demo_view.js): in a worker each DOM access is a synchronous round trip to the page, so there a paint is
one message instead, and so is a click (worker_app.py). Only while something moves (a reply plays, the
meter falls back, a reply is awaited) does it look again every frame; an idle
page, or a live microphone that hears silence, costs no frame. ``demo`` (the page's global scope where
its Python runs: the page's, or the worker's) is the running ``Demo``, for the console and for tests
(read-only: ``demo.frames`` counts the frames drawn).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import js
from pyodide.ffi import create_proxy
from pyodide.http import pyfetch

from pyodide_realtime.dialects import get_dialect
from pyodide_realtime.errors import ConnectionClosedError, ServerError

if TYPE_CHECKING:
    from pyodide_realtime import RealtimeAgent, RealtimeSession

MINT_URL = "./v1/realtime/client_secrets"  # same origin as the page
FRAME_S = 0.05  # at most one paint per frame
WARM_UP_S = 2 * FRAME_S  # after the ready page was painted
LEVEL_DECAY = 0.7  # the meter falls back slowly between microphone chunks
LEVEL_STEP = 0.02  # the meter's resolution: a fading level reaches 0, and the page stops repainting it
#: What #voice-state shows: the session's voice_state, told apart where the session says "listening".
STATES = {
    "listening": "Listening", "muted": "Muted", "no-mic": "Microphone off", "starting": "Starting audio…",
    "thinking": "Thinking…", "speaking": "Speaking", "off": "Not connected",
}
WHO = {"user": "You", "assistant": "Model", "tool": "Tool"}
STATUS_TEXT = {"disconnected": "Not connected", "connecting": "Connecting…", "connected": "Connected"}
BUTTONS = ("hang-up", "interrupt", "send", "mute")


def get_weather(location: str) -> dict[str, Any]:
    """The current weather in a city."""
    return {"location": location, "forecast": "sunny", "temperature_c": 18 + len(location) % 10}


def load_session_layer() -> tuple[type[RealtimeSession], RealtimeAgent]:
    """The session layer (pydantic with it: most of what Python imports here) and the demo's agent.

    Loaded after the page is ready, not before: the page shows sooner, and the import runs while the person
    looks at it (or, on an early Connect, while the key is minted). Imported once; later calls are cheap.
    """
    from pyodide_realtime import RealtimeAgent, RealtimeSession, function_tool

    global AGENT
    if AGENT is None:
        AGENT = RealtimeAgent(name="Assistant", instructions="You are a friendly voice assistant. Be brief.",
                              tools=[function_tool(get_weather)])
    return RealtimeSession, AGENT


AGENT: RealtimeAgent | None = None


def el(name: str) -> Any:
    return js.document.getElementById(name)


def webrtc_address(url: str, dialect: str) -> str:
    """Where the WebRTC offer goes for the Realtime WebSocket ``url`` under Advanced: the same server
    over HTTP(S), at ``/v1/realtime/calls`` (GA) or ``/v1/realtime`` (beta)."""
    scheme, sep, rest = url.partition("://")
    http = {"ws": "http", "wss": "https"}.get(scheme.lower(), scheme)
    address = f"{http}{sep}{rest}"
    if dialect == "ga" and "?" not in address and address.rstrip("/").endswith("/v1/realtime"):
        address = address.rstrip("/") + "/calls"
    return address


def explain(error: Any, status: str) -> tuple[str, str]:
    """(kind, a sentence for the person: what happened and what to do) for a session's error event."""
    exc, origin = error.exception, error.origin
    if origin == "microphone":
        return "microphone", ("The microphone is off: the browser did not allow it. You can still type; to talk, allow "
                              "the microphone for this page, then Hang up and Connect.")
    if origin == "audio":
        return "audio", "Sound is off: this browser could not start audio. You can still type, and read the replies."
    if isinstance(exc, ConnectionClosedError) or (origin == "transport" and status != "connected"):
        return "connection", ("The connection to the server was lost. Check that the server is still running, "
                              "then press Connect to start again.")
    if isinstance(exc, ServerError):
        return "server", "The server refused a request; the conversation goes on."
    if origin == "tool":
        return "tool", "A tool failed; the model was told, and the conversation goes on."
    return origin, error.message[:1].upper() + error.message[1:]


class View:
    """What the page shows: each change is kept until the next paint, and only what differs from
    what the page shows now is sent (a value set back before the paint sends nothing)."""

    def __init__(self, painter: Any) -> None:
        self.painter = painter  # the page's demoView, or a worker's messages to it
        self.shown: dict[tuple[str, str, str], Any] = {}
        self.pending: dict[tuple[str, str, str], Any] = {}
        self.bubbles: list[list[str]] = []
        self.order: list[str] | None = None
        self.scroll = False
        self.on_change: Callable[[], None] = lambda: None

    def set(self, target: str, kind: str, name: str, value: Any) -> None:
        key = (target, kind, name)
        if key in self.pending or self.shown.get(key, self) != value:
            self.pending[key] = value
            self.on_change()

    def text(self, target: str, value: str) -> None:
        self.set(target, "text", "", value)

    def bubble(self, item_id: str, role: str) -> None:
        self.bubbles.append([item_id, role, WHO[role]])
        self.scroll = True
        self.on_change()

    def reorder(self, order: list[str]) -> None:
        self.order, self.scroll = order, True
        kept = {f"item-{item_id}" for item_id in order}  # forget what the page showed of the bubbles that went
        self.shown = {k: v for k, v in self.shown.items() if not k[0].startswith("item-") or k[0].split()[0] in kept}
        self.on_change()

    def paint(self) -> None:
        sets = [[*key, value] for key, value in self.pending.items() if self.shown.get(key, self) != value]
        if not (sets or self.bubbles or self.order is not None or self.scroll):
            return
        self.painter.paint(json.dumps({"bubbles": self.bubbles, "order": self.order, "sets": sets, "scroll": self.scroll}))
        self.shown.update(self.pending)
        self.pending, self.bubbles, self.order, self.scroll = {}, [], None, False


class Demo:
    def __init__(self, painter: Any, mint_url: str = MINT_URL) -> None:
        self.mint_url = mint_url
        self.view = View(painter)
        self.view.on_change = self.redraw
        self.session: RealtimeSession | None = None
        self.entries: list[str] = []  # the item ids with a bubble, in the page's order
        self.changed: dict[str, Any] = {}  # item id -> its latest snapshot, not yet drawn
        self.history: tuple[Any, ...] = ()
        self.level = 0.0  # the meter's, 0..1
        self.heard_level = 0.0  # the loudest microphone chunk since the last frame, 0..1
        self.frames = 0  # frames drawn
        self.state = "off"  # what #voice-state shows
        self.starting = False  # connect() is opening the player and the microphone
        self.frame: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Future[Any]] = set()  # held: asyncio keeps only weak references

    # Drawing -------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Something changed: draw it at the next frame (one frame for any number of changes)."""
        if self.frame is None:
            self.frame = asyncio.get_running_loop().call_later(FRAME_S, self.draw)

    def draw_now(self) -> None:
        if self.frame is not None:
            self.frame.cancel()
        self.draw()

    def draw(self) -> None:
        self.frame = None
        self.frames += 1
        moving = self.draw_voice()
        self.draw_items()
        self.view.paint()
        if moving:  # a reply plays or the microphone is live: look again at the next frame
            self.redraw()

    def draw_voice(self) -> bool:
        """The voice state, the meter, the latency line and the playing replies; True while they move."""
        session = self.session
        status = session.transport.status if session else "disconnected"
        voice = session.voice if session else None
        mic = voice.microphone if voice else None
        live = mic is not None and not session.transport.muted
        state = session.voice_state if session else "off"
        if state == "listening":
            state = "starting" if self.starting else "muted" if mic and not live else "listening" if live else "no-mic"
        if state == "speaking" and self.state == "thinking" and session.last_turn_latency_ms is not None:
            self.view.text("latency", f"Last reply began {session.last_turn_latency_ms:.0f} ms after you stopped speaking")
        self.state = state
        self.view.set("voice-state", "data", "state", state)
        self.view.text("voice-state", STATES[state])
        level, self.heard_level = self.heard_level, 0.0  # taken even when muted: what was said before stays unsaid
        self.level = max(level, self.level * LEVEL_DECAY) if live else 0.0
        if self.level < LEVEL_STEP:
            self.level = 0.0
        self.view.set("mic-level", "prop", "value", round(self.level / LEVEL_STEP) * LEVEL_STEP)
        self.view.set("mute", "prop", "disabled", status != "connected" or mic is None)
        self.view.text("mute", "Unmute" if mic and not live else "Mute")
        self.view.set("mute", "attr", "aria-pressed", "true" if mic and not live else "false")
        player = voice.player if voice else None
        spoken = [i for i in (session.history if player else ()) if getattr(i, "audio_ms", 0)]
        for reply in spoken[-2:]:  # the one playing, and the one that just ended
            if reply.item_id in self.entries:  # its underline grows as it is heard
                heard = player.heard_ms(reply.item_id, 0) or 0.0
                target = f"item-{reply.item_id}"
                self.view.set(target, "data", "audioMs", f"{reply.audio_ms:.1f}")
                self.view.set(target, "data", "heardMs", f"{heard:.1f}")
                self.view.set(target, "style", "--heard", f"{min(1.0, heard / reply.audio_ms):.3f}")
        playing = player is not None and player.playing is not None
        return status == "connected" and (playing or self.level > 0 or state in ("thinking", "starting"))

    def listen(self, session: RealtimeSession) -> None:
        """Wake the meter when the microphone hears something: each chunk, once the session measured it
        on its way to the server, draws a frame only if the meter would show it (silence draws none)."""
        mic = session.voice.microphone if session.voice else None
        send = mic.on_chunk if mic else None
        if mic is None or send is None:
            return

        def heard(chunk: bytes) -> Any:
            sent = send(chunk)
            if (level := session.input_level) >= LEVEL_STEP:
                self.heard_level = max(self.heard_level, level)
                self.redraw()
            return sent

        mic.on_chunk = heard

    def on_history(self, event: Any) -> None:
        if event.item is not None:
            self.changed[event.item.item_id] = event.item
        self.history = event.history
        self.redraw()

    def draw_items(self) -> None:
        """The bubbles of the items that changed; the server's order if an item came or went."""
        changed, self.changed = self.changed, {}
        for item in changed.values():
            role = "tool" if item.type == "function_call" else getattr(item, "role", None)
            if role not in WHO or not (item.item_id in self.entries or role != "assistant" or item.text or item.unheard_text):
                continue
            target = f"item-{item.item_id}"
            if item.item_id not in self.entries:
                self.entries.append(item.item_id)
                self.view.bubble(item.item_id, role)
            if role == "tool":
                self.view.text(f"{target} .text", f"{item.name}({item.arguments}){f' → {item.output}' if item.output else ' …'}")
                continue
            # what was not heard of an interrupted reply stays, greyed
            self.view.text(f"{target} .text", item.text or ("🎤 …" if role == "user" else ""))
            self.view.text(f"{target} .unheard", getattr(item, "unheard_text", ""))
            self.view.set(target, "class", "interrupted", getattr(item, "interrupted", False))
            if getattr(item, "heard_ms", None) is not None:
                self.view.set(target, "data", "cutMs", str(int(item.heard_ms)))
        if (order := [i.item_id for i in self.history if i.item_id in self.entries]) != self.entries:
            self.entries = order
            self.view.reorder(order)

    # What the person sees and does ---------------------------------------------------------------
    def field(self, name: str, value: str | None = None) -> str | None:
        """The page's form field ``name``: its value (None if the page has none), set to ``value`` first if
        given. Through the painter (demoView.value): from a worker one call, not an element's proxy."""
        found = self.view.painter.value(name, value)
        return None if found is None else str(found)

    def show_error(self, kind: str, sentence: str, details: str = "") -> None:
        if details:
            js.console.error(f"demo: {kind}: {details}")
        self.view.set("error", "prop", "hidden", False)
        self.view.set("error", "data", "kind", kind)
        self.view.text("error .message", sentence)
        self.view.text("error .details", details)
        self.view.set("error-details", "prop", "hidden", not details)

    def on_error(self, error: Any) -> None:
        self.show_error(*explain(error, self.session.transport.status if self.session else "disconnected"), error.message)

    def hide_error(self) -> None:
        self.view.set("error", "prop", "hidden", True)

    def set_status(self, status: str) -> None:
        self.view.set("status", "data", "status", status)
        self.view.text("status", STATUS_TEXT.get(status, status))
        self.view.set("connect", "prop", "disabled", status != "disconnected")
        for name in BUTTONS:
            self.view.set(name, "prop", "disabled", status != "connected")
        self.redraw()  # the mute button and the voice state follow

    async def mint_key(self, model: str) -> str:
        body = json.dumps({"session": {"type": "realtime", "model": model}})
        try:
            answer = await pyfetch(self.mint_url, method="POST", headers={"Content-Type": "application/json"}, body=body)
        except OSError:
            raise RuntimeError("the demo server is not answering: is it still running? Start it and connect again.") from None
        if not answer.ok:
            raise RuntimeError(f"the server refused to mint a key ({answer.status}): {(await answer.text())[:200]}")
        return str((await answer.json())["value"])

    async def connect(self) -> None:
        self.hide_error()
        self.entries, self.changed, self.history = [], {}, ()
        self.view.reorder([])
        self.view.text("latency", "")
        # The switch under Advanced; a page without it (getElementById gives JS null) talks WebSocket.
        kind = "webrtc" if self.field("transport") == "webrtc" else "websocket"
        dialect = self.field("dialect") or "ga"
        # The key's request leaves first: the server answers while the session layer loads (if it has not yet).
        minted = asyncio.ensure_future(self.mint_key(get_dialect(dialect).default_model))
        await asyncio.sleep(0)
        try:
            session_class, agent = load_session_layer()
        except BaseException:
            minted.cancel()
            raise
        self.session = session = session_class(agent, dialect=dialect, audio=True, transport=kind)
        url = typed = (self.field("server-url") or "").strip()
        if url and kind == "webrtc":
            url = webrtc_address(url, dialect)
        if url and "?" not in url:  # a given URL is used as it is; the beta API wants the model there
            url += f"?model={session.transport.current_model}"
        session.transport.on("connection_change", lambda change: self.set_status(change.status))
        session.transport.on("*", lambda _event: self.redraw())  # the voice state follows the server's events
        session.on("history_updated", self.on_history)
        session.on("error", self.on_error)
        self.starting = True
        try:
            await session.connect(api_key=self.keys(minted, session), url=url or None)
        except Exception as exc:  # shown to the person, who can fix the URL or start the server
            return self.show_error("connection", f"Could not connect to {typed or 'the server'}. Check that the server is running and "
                                   "the address under Advanced is right, then press Connect again.", str(exc))
        else:
            self.listen(session)
        finally:
            self.starting = False
            self.redraw()
            if not minted.done():  # the connection failed before it asked for the key
                minted.cancel()
            elif not minted.cancelled():
                minted.exception()  # a failure it never asked for is no unhandled one

    def keys(self, first: asyncio.Future[str], session: RealtimeSession) -> Callable[[], Awaitable[str]]:
        """The session's key function: the key minted at the click, then a fresh one for each reconnect."""
        early = [first]
        return lambda: early.pop() if early else self.mint_key(session.transport.current_model)

    def send_text(self) -> None:
        if (text := (self.field("message") or "").strip()) and self.session is not None:
            self.session.send_message(text)
            self.field("message", "")
            self.view.text("latency", "")  # the latency line is about a spoken turn

    def hang_up(self) -> None:
        self.hide_error()  # hanging up is not an error, and it ends the one shown
        if self.session is not None:
            self.session.close()

    def toggle_mute(self) -> None:
        if self.session is not None:
            self.session.mute(not self.session.transport.muted)
            self.redraw()

    def interrupt(self) -> None:
        if self.session is not None:
            self.session.interrupt()
            self.redraw()


def page_view(window: Any = None) -> Any:
    """The page's ``demoView`` (demo_view.js), from ``window`` (a worker passes PyScript's) or this page."""
    view = getattr(window or js, "demoView", None)
    if view is None:
        raise RuntimeError("the page must load demo_view.js (<script src=\"./demo_view.js\"></script>) before demo_app runs")
    return view


async def main(resolve: Callable[[str], str] = str, painter: Any = None) -> Demo:
    """Wire the page (called once the page's Python is loaded). ``resolve`` makes the server's relative
    URLs absolute where the base is not the page (a worker's is a ``blob:`` URL: ``page_url``);
    ``painter`` takes each paint (``paint(json)``): the page's ``demoView``, unless a worker passes its own,
    which also hears the page's clicks for it (``forward({(element id, event type): action})``)."""
    demo = Demo(page_view() if painter is None else painter, resolve(MINT_URL))
    js.demo = demo
    try:
        demo.field("server-url", (await (await pyfetch(resolve("./demo-config.json"))).json())["realtime_url"])
    except (OSError, ValueError):  # a static host without our server: the person types the URL
        el("advanced").open = True
        demo.show_error("config", "This server does not say where the Realtime server is: enter its address under Advanced.",
                        "no /demo-config.json here")
    actions: dict[tuple[str, str], Callable[[], Any]] = {
        ("connect", "click"): lambda: demo.tasks.add(asyncio.ensure_future(demo.connect())),
        ("hang-up", "click"): demo.hang_up,
        ("interrupt", "click"): demo.interrupt,
        ("mute", "click"): demo.toggle_mute,
        ("composer", "submit"): demo.send_text,
    }
    if painter is None:
        for (name, event), act in actions.items():  # kept as long as the page lives
            el(name).addEventListener(event, create_proxy(lambda e, act=act: (e.preventDefault(), act())))
    else:  # a worker's: the page's listeners tell it (a listener here would probe each event through the proxy)
        painter.forward(actions)
    demo.set_status("disconnected")
    demo.view.set("boot", "prop", "hidden", True)
    demo.draw_now()  # ready: shown now, not a frame later
    # The session layer loads once the page is drawn; a Connect pressed meanwhile waits for it.
    asyncio.get_running_loop().call_later(WARM_UP_S, load_session_layer)
    return demo
