"""Test agents in CPython with no server and no clock: a scripted transport and server-event builders.

:class:`ScriptedRealtimeTransport` is the real :class:`~pyodide_realtime.transport.OpenAIRealtimeWebSocket`
over an in-memory socket. Each client event the transport sends is matched against the next
:class:`RealtimeStep`'s ``expect``; a match delivers the step's ``emit`` server events back, as if the
server had answered. Events are delivered in order through the event loop (``call_soon``), never
after a delay, so a test waits on the session's events and nothing else::

    from pyodide_realtime import RealtimeAgent, RealtimeSession, function_tool
    from pyodide_realtime.testing import RealtimeStep, ScriptedRealtimeTransport, function_call, spoken_reply

    transport = ScriptedRealtimeTransport([
        RealtimeStep(expect="response.create", emit=function_call("get_weather", '{"city": "Paris"}')),
        RealtimeStep(expect="response.create", emit=spoken_reply("Sunny in Paris.")),
    ])
    session = RealtimeSession(RealtimeAgent(name="A", tools=[get_weather]), transport=transport)
    await session.connect()
    session.send_message("Weather in Paris?")
    async for event in session: ...            # tool_start, tool_end, the reply's audio and history
    transport.assert_complete()

``expect`` is a client event type (``"response.create"``), a dict that the sent event must contain
(compared key by key, recursively), or a function of the sent event returning a bool. ``emit`` holds
server events as the API sends them (dicts, GA names), or functions of the sent event that return one
event or a list (to echo an id). :meth:`ScriptedRealtimeTransport.emit` delivers server events at any
time (the model speaking first, a VAD event), :meth:`~ScriptedRealtimeTransport.drop` loses the connection. ``sent`` keeps every
client event, parsed. Non-strict by default: a sent event that does not match the next step is kept
in ``sent`` and skipped; ``strict=True`` records it in ``unexpected`` (``assert_complete`` fails).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from ._interfaces import ABNORMAL_CLOSURE, NORMAL_CLOSURE, SocketHandler, SocketRequest
from .errors import ConnectionClosedError
from .transport import ApiKey, OpenAIRealtimeWebSocket, ReconnectPolicy

__all__ = [
    "RealtimeStep",
    "ScriptedRealtimeTransport",
    "ScriptError",
    "UnexpectedSend",
    "UnconsumedSteps",
    "ScriptedPlayer",
    "spoken_reply",
    "function_call",
    "server_error",
]

#: A server event to deliver: a dict, or a function of the client event that triggered it.
ServerEventSource = Union[Mapping[str, Any], Callable[[dict[str, Any]], "Mapping[str, Any] | Sequence[Mapping[str, Any]]"]]
#: What a step expects: a client event type, a dict the event must contain, or a predicate.
Expectation = Union[str, Mapping[str, Any], Callable[[dict[str, Any]], bool]]

#: The URL a scripted transport reports (nothing is ever opened there).
SCRIPTED_URL = "ws://127.0.0.1/scripted"
#: The key a scripted transport connects with when none is given (it goes nowhere). It has an ephemeral
#: key's form, which is the only form a transport takes in a page.
SCRIPTED_KEY = "ek_scripted_test_key"
#: PCM16 24 kHz: bytes of audio per millisecond.
_PCM16_BYTES_PER_MS = 48


class ScriptError(AssertionError):
    """A script was not followed: an unexpected send (strict) or steps left over."""


class UnexpectedSend(ScriptError):
    """A client event did not match the next step (``strict=True``)."""


class UnconsumedSteps(ScriptError):
    """The test ended with steps whose ``expect`` never matched."""


@dataclass(frozen=True)
class RealtimeStep:
    """One expected client event (``expect``) and the server events it triggers (``emit``)."""

    expect: Expectation
    emit: Sequence[ServerEventSource] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not (isinstance(self.expect, (str, Mapping)) or callable(self.expect)):
            raise TypeError("expect takes a client event type, a dict to match, or a function of the event")
        object.__setattr__(self, "emit", tuple(self.emit))

    def matches(self, event: dict[str, Any]) -> bool:
        if isinstance(self.expect, str):
            return event.get("type") == self.expect
        if isinstance(self.expect, Mapping):
            return _contains(event, self.expect)
        return bool(self.expect(event))


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return bool(actual == expected)


class _ScriptedSocket:
    """The in-memory socket of one connection: sends go to the script, never to a network."""

    def __init__(self, owner: ScriptedRealtimeTransport, handler: SocketHandler) -> None:
        self._owner = owner
        self.handler = handler
        self.closed = False
        self.buffered_amount = 0

    def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionClosedError("the scripted connection is closed")
        self._owner._client_event(self, json.loads(text))

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        self.closed = True


class ScriptedRealtimeTransport(OpenAIRealtimeWebSocket):
    """A real transport over an in-memory socket that follows a script (see the module docstring).

    ``steps``: the script. ``connect_events``: what the server sends as each connection opens
    (default: a ``session.created``). ``echo_items``: answer each ``conversation.item.create`` as the
    server does (``conversation.item.added`` and ``done``, with an id), so that user messages and tool
    outputs reach the history. A scripted ``conversation.item.added`` without ``previous_item_id`` is
    placed after the last item, as the server places it. ``reconnect``: as for the transport (a reconnect opens a new
    in-memory connection; ``ReconnectPolicy(initial_delay_s=0)`` makes it wait for nothing).
    """

    def __init__(
        self,
        steps: Iterable[RealtimeStep] = (),
        *,
        connect_events: Iterable[ServerEventSource] | None = None,
        strict: bool = False,
        echo_items: bool = True,
        dialect: str = "ga",
        reconnect: ReconnectPolicy | bool | None = False,
    ) -> None:
        super().__init__(url=SCRIPTED_URL, dialect=dialect, create_websocket=self._open_socket, reconnect=reconnect)
        self._steps: deque[RealtimeStep] = deque(steps)
        for step in self._steps:
            if not isinstance(step, RealtimeStep):
                raise TypeError(f"steps take RealtimeStep objects, not {type(step).__name__}")
        self._connect_events = tuple(connect_events) if connect_events is not None else (_session_created,)
        self._strict = strict
        self._echo_items = echo_items
        self._last_item_id: str | None = None
        self._socket_now: _ScriptedSocket | None = None
        self._pending: deque[tuple[_ScriptedSocket, str]] = deque()
        self._delivering = False
        self._scheduled = False
        #: Every client event sent, parsed, in order (all connections).
        self.sent: list[dict[str, Any]] = []
        #: Client events that did not match the next step (``strict=True`` only).
        self.unexpected: list[dict[str, Any]] = []
        #: How many connections were opened (reconnects included).
        self.connections = 0

    async def connect(self, api_key: ApiKey | None = None, *args: Any, **kwargs: Any) -> None:
        """Open a scripted connection (no key needed); otherwise as the real ``connect``, with its checks."""
        await super().connect(api_key if api_key is not None else SCRIPTED_KEY, *args, **kwargs)

    # The script ------------------------------------------------------------------------------------
    @property
    def remaining_steps(self) -> int:
        """Steps whose ``expect`` has not matched yet."""
        return len(self._steps)

    def sent_types(self) -> list[str]:
        """The ``type`` of every client event sent, in order."""
        return [str(event.get("type")) for event in self.sent]

    def assert_complete(self) -> None:
        """Raise :class:`UnexpectedSend` or :class:`UnconsumedSteps` unless the script ran as written."""
        if self.unexpected:
            raise UnexpectedSend(f"{len(self.unexpected)} client event(s) did not match the script; the first: {self.unexpected[0]}")
        if self._steps:
            raise UnconsumedSteps(f"{len(self._steps)} step(s) never matched; the next expects {self._steps[0].expect!r}")

    def add_steps(self, *steps: RealtimeStep) -> None:
        """Append steps to the script."""
        self._steps.extend(steps)

    def emit(self, *events: Mapping[str, Any]) -> None:
        """Deliver server events now (in order, after any already waiting). RuntimeError when not connected."""
        socket = self._socket_now
        if socket is None or socket.closed:
            raise RuntimeError("the scripted transport is not connected: connect() first")
        for event in events:
            self._pending.append((socket, self._encode(event)))
        if not self._delivering:
            self._deliver()

    def drop(self, code: int = ABNORMAL_CLOSURE, reason: str = "scripted drop") -> None:
        """Lose the connection as a network would (the socket reports ``close(code)``)."""
        socket = self._socket_now
        if socket is None or socket.closed:
            return
        socket.closed = True
        self._socket_now = None
        socket.handler.on_close(code, reason)

    async def idle(self) -> None:
        """Return once every scheduled delivery has been made (loop turns only, no clock)."""
        while self._pending or self._scheduled or self._delivering:
            await asyncio.sleep(0)

    # The in-memory connection --------------------------------------------------------------------------
    def _open_socket(self, request: SocketRequest, handler: SocketHandler) -> _ScriptedSocket:
        socket = _ScriptedSocket(self, handler)
        self._socket_now = socket
        self.connections += 1
        loop = asyncio.get_running_loop()

        def opened() -> None:
            if socket.closed:
                return
            handler.on_open("realtime")
            for source in self._connect_events:
                for event in _produce(source, {}):
                    self._pending.append((socket, self._encode(event)))
            self._schedule()

        loop.call_soon(opened)
        return socket

    def _client_event(self, socket: _ScriptedSocket, event: dict[str, Any]) -> None:
        self.sent.append(event)
        if self._echo_items and event.get("type") == "conversation.item.create" and isinstance(event.get("item"), dict):
            item = {"status": "completed", **event["item"]}
            item.setdefault("id", _next_id("item"))
            for kind in ("conversation.item.added", "conversation.item.done"):
                self._pending.append((socket, self._encode({"type": kind, "item": item})))
            self._schedule()
        step = self._steps[0] if self._steps else None
        if step is None or not step.matches(event):
            if self._strict:
                self.unexpected.append(event)
            return
        self._steps.popleft()
        for source in step.emit:
            for produced in _produce(source, event):
                self._pending.append((socket, self._encode(produced)))
        self._schedule()

    def _encode(self, event: Mapping[str, Any]) -> str:
        """The event as JSON; an item added without ``previous_item_id`` goes after the last one."""
        if event.get("type") == "conversation.item.added" and isinstance(event.get("item"), Mapping):
            if "previous_item_id" not in event:
                event = {**event, "previous_item_id": self._last_item_id}
            self._last_item_id = event["item"].get("id") or self._last_item_id
        return json.dumps(event)

    def _schedule(self) -> None:
        # Never delivered inside send(): the transport may be in the middle of handling an event.
        if not self._scheduled and not self._delivering:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        self._delivering = True
        try:
            while self._pending:
                socket, text = self._pending.popleft()
                if not socket.closed:
                    socket.handler.on_message(text)
        finally:
            self._delivering = False


def _produce(source: ServerEventSource, trigger: dict[str, Any]) -> list[Mapping[str, Any]]:
    if callable(source):
        made = source(trigger)
        return [made] if isinstance(made, Mapping) else list(made)
    return [source]


def _session_created(_trigger: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.created", "event_id": "event_scripted_0", "session": {"type": "realtime", "id": "sess_scripted"}}


# Server events a script can emit ---------------------------------------------------------------------
_ids = itertools.count(1)


def _next_id(prefix: str) -> str:
    return f"{prefix}_scripted_{next(_ids)}"


def spoken_reply(
    text: str,
    *,
    audio_ms: int = 100,
    chunks: int = 1,
    response_id: str | None = None,
    item_id: str | None = None,
    previous_item_id: str | None = None,
    status: str = "completed",
    usage: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The server events of a response that speaks ``text``: ``audio_ms`` of quiet PCM16 in ``chunks``
    deltas, the transcript word by word, then ``response.done`` (with ``usage``, if given)."""
    response_id = response_id or _next_id("resp")
    item_id = item_id or _next_id("item")
    base = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item},
        _added(item, previous_item_id),
    ]
    total = audio_ms * _PCM16_BYTES_PER_MS
    words = text.split(" ")
    for n in range(max(chunks, len(words))):
        if n < chunks:
            size = total // chunks + (total % chunks if n == chunks - 1 else 0)
            events.append({"type": "response.output_audio.delta", **base, "delta": base64.b64encode(bytes(size)).decode()})
        if n < len(words):
            piece = words[n] if n == 0 else " " + words[n]
            events.append({"type": "response.output_audio_transcript.delta", **base, "delta": piece})
    done_item = {**item, "status": status, "content": [{"type": "output_audio", "transcript": text}]}
    events += [
        {"type": "response.output_audio.done", **base},
        {"type": "response.output_audio_transcript.done", **base, "transcript": text},
        {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": done_item},
        {"type": "conversation.item.done", "item": done_item},
        _response_done(response_id, status, [done_item], usage),
    ]
    return events


def function_call(
    name: str,
    arguments: str | Mapping[str, Any] = "{}",
    *,
    call_id: str | None = None,
    response_id: str | None = None,
    item_id: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The server events of a response whose output is one function call (``arguments`` as JSON text or a dict)."""
    return function_calls([(name, arguments, call_id)], response_id=response_id, item_id=item_id, usage=usage)


def function_calls(
    calls: Sequence[tuple[str, str | Mapping[str, Any], str | None]],
    *,
    response_id: str | None = None,
    item_id: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """One response calling several tools: ``(name, arguments, call_id or None)`` each."""
    response_id = response_id or _next_id("resp")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress", "output": []}}
    ]
    items = []
    for index, (name, arguments, call_id) in enumerate(calls):
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        item = {
            "id": (item_id if index == 0 and item_id else None) or _next_id("fc"),
            "type": "function_call",
            "status": "completed",
            "name": name,
            "call_id": call_id or _next_id("call"),
            "arguments": text,
        }
        items.append(item)
        events += [
            _added({**item, "status": "in_progress", "arguments": ""}, None),
            {"type": "response.output_item.done", "response_id": response_id, "output_index": index, "item": item},
        ]
    events.append(_response_done(response_id, "completed", items, usage))
    return events


def _added(item: dict[str, Any], previous_item_id: str | None) -> dict[str, Any]:
    event = {"type": "conversation.item.added", "item": item}
    return event if previous_item_id is None else {**event, "previous_item_id": previous_item_id}


def server_error(message: str, *, code: str | None = None, error_type: str = "invalid_request_error") -> dict[str, Any]:
    """A server ``error`` event."""
    return {"type": "error", "error": {"type": error_type, "code": code, "message": message, "param": None, "event_id": None}}


def _response_done(response_id: str, status: str, output: list[dict[str, Any]], usage: Mapping[str, int] | None) -> dict[str, Any]:
    response: dict[str, Any] = {"id": response_id, "status": status, "output": output}
    if usage is not None:
        response["usage"] = {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "total_tokens": usage.get("total_tokens", usage.get("input_tokens", 0) + usage.get("output_tokens", 0)),
        }
    return {"type": "response.done", "response": response}


class ScriptedPlayer:
    """An audio output whose ``heard_ms`` the test sets: interruptions are measured with no clock.

    ``heard[item_id] = ms`` says how much of an item has been played; ``played`` keeps what was queued.
    """

    stops_where_heard = True

    def __init__(self) -> None:
        self.heard: dict[str, float] = {}
        self.played: list[tuple[str, int, int]] = []
        self.stops = 0

    def play(self, data: bytes, *, item_id: str, content_index: int, audio_format: str) -> None:
        self.played.append((item_id, content_index, len(data)))

    def heard_ms(self, item_id: str, content_index: int) -> float | None:
        return self.heard.get(item_id)

    def stop(self) -> None:
        self.stops += 1
