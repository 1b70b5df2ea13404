"""The sans-I/O Realtime protocol: all the state and decisions, no socket, no clock, no asyncio, no js.

Everything that affects the protocol's state lives in :class:`RealtimeProtocol`. An I/O layer drives it
in this order:

1. ``connection_opening()`` when it starts opening a socket, then ``connection_opened(config)`` when
   the socket is open (or ``connection_closed()`` if it failed);
2. ``receive(text, now_ms=..., heard_ms=...)`` for every text frame, and the app's calls
   (``send_message``, ``send_audio``, ``interrupt(now_ms, ...)``, ...) as they come;
3. after each of those: send every string of ``data_to_send()`` as a text frame, and hand every
   ``(name, payload)`` of ``events_received()`` to listeners (the order matters: data first, so a
   listener that calls back into the protocol sees its earlier output already on the wire);
4. ``connection_closed()`` once the socket is gone.

Time (``now_ms``) and the playback position (``heard_ms``) are arguments: the core never reads a clock.
A call that does not fit the state raises :class:`InvalidStateError` naming both, and changes nothing.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._emitter import WANT_ALL
from ._interfaces import AudioFormat, bytes_per_ms
from .config import (
    DEFAULT_SESSION_CONFIG,
    SessionConfig,
    wire_interrupt_response,
    wire_output_audio_format,
    wire_tracing,
)
from .dialects import DialectSpec, get_dialect
from .errors import ConfigurationError, InvalidStateError, ServerError
from .events import (
    AudioDone,
    AudioInterrupted,
    ConnectionChange,
    ConnectionStatus,
    ConversationItemDeleted,
    ConversationItemEvent,
    ConversationItemTruncated,
    ErrorEvent,
    FunctionCall,
    InputAudioTranscriptionCompleted,
    ItemDeleted,
    ItemUpdate,
    MalformedServerEvent,
    OutputItemEvent,
    OutputTextDelta,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseEvent,
    ResponseTextDelta,
    ServerErrorEvent,
    ServerEventBase,
    SessionEvent,
    SpeechStarted,
    TranscriptDelta,
    TransportAudio,
    TurnDone,
    TurnStarted,
    Usage,
    parse_server_event,
)

__all__ = ["RealtimeProtocol", "HeardMs", "MAX_AUDIO_APPEND_BYTES"]

logger = logging.getLogger("pyodide_realtime")

#: Raw bytes per ``input_audio_buffer.append``: bounds each base64 string (about 128 KiB of text) and
#: is a multiple of 6, so chunks split on whole PCM16 samples and on base64 quanta.
MAX_AUDIO_APPEND_BYTES = 96 * 1024
#: Items whose audio we already truncated; their late deltas are dropped. Bounded: only the last few
#: matter, as a cancelled response stops within a handful of deltas.
_MAX_TRUNCATED_KEYS = 64
_RESPONSE_CREATE_ID_PREFIX = "pyrt_response_create_"
#: Our ``response.create`` events kept by event_id, to send again one the server refused because a
#: response of its own (server VAD) started first. Only the last few can still be answered.
_MAX_RECENT_CREATES = 8
#: The error the server answers a ``response.create`` with while another response runs.
_ACTIVE_RESPONSE_ERROR = "conversation_already_has_active_response"

#: How much of an item was heard: a function answering per (item_id, content_index) (an
#: AudioOutput's ``heard_ms``); or a number, the ms heard counted from the start of the oldest audio
#: still tracked (audio that finished playing is forgotten, so with one item playing it is the ms of
#: that item heard, as the reference's ``_interrupt(elapsedTime)`` takes it); None means estimate
#: from the wall clock as the reference does.
HeardMs = float | int | Callable[[str, int], float | None] | None

_UNSET: Any = object()


def _encode(event: Mapping[str, Any]) -> str:
    """``event`` as a text frame, or ConfigurationError (callers encode before they change any state)."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the event cannot be sent as JSON: {exc}") from None


@dataclass
class _Segment:
    """The audio of one (item, content index), in arrival order within one playback."""

    item_id: str
    content_index: int
    response_id: str
    received_ms: float = 0.0
    done: bool = False


@dataclass
class _HeldCreate:
    event: dict[str, Any]
    manual: bool


# Text deltas by server type (both dialects' names): the name to emit and the record to emit.
_TEXT_DELTAS: dict[str, tuple[str, type[TranscriptDelta] | type[OutputTextDelta]]] = {
    "response.output_audio_transcript.delta": ("audio_transcript_delta", TranscriptDelta),
    "response.audio_transcript.delta": ("audio_transcript_delta", TranscriptDelta),
    "response.output_text.delta": ("output_text_delta", OutputTextDelta),
    "response.text.delta": ("output_text_delta", OutputTextDelta),
}


class RealtimeProtocol:
    """The Realtime protocol state of one transport (it survives reconnects; each connection resets it)."""

    def __init__(self, dialect: str | DialectSpec = "ga", *, model: str | None = None) -> None:
        self.dialect: DialectSpec = get_dialect(dialect)
        self.model: str = model or self.dialect.default_model
        #: When False, ``input_audio_buffer.speech_started`` only emits; the I/O layer interrupts
        #: itself (a transport whose ``_interrupt`` hook is overridden does that).
        self.auto_interrupt: bool = True
        #: The event names the I/O layer delivers to someone (``EventEmitter.wanted``); None: all.
        #: ``*`` and per-type events are made only when wanted.
        self.wanted: Container[str] | None = None
        self._status: ConnectionStatus = "disconnected"
        self._config: SessionConfig = DEFAULT_SESSION_CONFIG[self.dialect.name]
        self._tracing: Any = _UNSET
        self._server_session: dict[str, Any] = {}
        self._output_format: AudioFormat = self._config.output_audio_format or "pcm16"
        self._bytes_per_ms = bytes_per_ms(self._output_format)
        self._to_send: list[str] = []
        self._events: list[tuple[str, Any]] = []
        # Playback (interruption) state.
        self._segments: list[_Segment] = []
        self._first_audio_ms: float | None = None
        self._truncated: deque[tuple[str, int]] = deque(maxlen=_MAX_TRUNCATED_KEYS)
        # Response sequencing.
        self._response_running = False
        self._cancel_requested = False
        self._create_in_flight: str | None = None
        self._held: deque[_HeldCreate] = deque()
        self._recent_creates: deque[_HeldCreate] = deque(maxlen=_MAX_RECENT_CREATES)
        self._create_counter = 0
        self._handlers = self._build_handlers()

    # Output -----------------------------------------------------------------------------------------
    def data_to_send(self) -> list[str]:
        """JSON text frames to send, oldest first; the list is handed over and emptied."""
        out, self._to_send = self._to_send, []
        return out

    def events_received(self) -> list[tuple[str, Any]]:
        """``(name, payload)`` pairs to emit, oldest first; handed over and emptied."""
        out, self._events = self._events, []
        return out

    # State the transport reads -----------------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def session_config(self) -> SessionConfig:
        """Everything configured on this connection so far (defaults, then your configs merged in)."""
        return self._config

    @property
    def server_session(self) -> dict[str, Any]:
        """The last session the server reported (``session.created``/``session.updated``)."""
        return self._server_session

    @property
    def output_audio_format(self) -> AudioFormat:
        """The format of received audio: what the server reported, else what was configured."""
        return self._output_format

    def _update_output_format(self) -> None:
        # Cached: it is read for every audio delta.
        self._output_format = (
            wire_output_audio_format(self._server_session) or self._config.output_audio_format or "pcm16"
        )
        self._bytes_per_ms = bytes_per_ms(self._output_format)

    @property
    def server_cancels_on_speech(self) -> bool:
        """True when ``turn_detection.interrupt_response`` is on: the server cancels by itself."""
        reported = wire_interrupt_response(self._server_session)
        if reported is not None:
            return reported
        return bool(self._config.interrupt_response)

    @property
    def response_running(self) -> bool:
        return self._response_running

    @property
    def held_response_creates(self) -> int:
        """``response.create`` events waiting for the running response to finish."""
        return len(self._held)

    @property
    def audio_received_ms(self) -> float:
        """Milliseconds of audio received in the current playback (0 when nothing is tracked)."""
        return sum(s.received_ms for s in self._segments)

    @property
    def current_item(self) -> tuple[str, int] | None:
        """(item_id, content_index) of the audio received last, if it is still tracked."""
        return (self._segments[-1].item_id, self._segments[-1].content_index) if self._segments else None

    @property
    def first_audio_ms(self) -> float | None:
        return self._first_audio_ms

    # Connection milestones ---------------------------------------------------------------------------
    def connection_opening(self) -> None:
        """A socket is being opened."""
        self._require({"disconnected"}, "connection_opening()")
        self._status = "connecting"
        self._emit("connection_change", ConnectionChange("connecting"))

    def check_session_config(
        self, session_config: SessionConfig | Mapping[str, Any] | None, *, model: str | None = None
    ) -> SessionConfig:
        """What ``connection_opened(session_config)`` would configure (the defaults, ``session_config``
        and the model merged), or ConfigurationError if it cannot be sent: a field this dialect does
        not have, a value JSON cannot carry. Changes nothing; an I/O layer calls it before opening."""
        initial = SessionConfig.coerce(session_config)
        config = DEFAULT_SESSION_CONFIG[self.dialect.name].merged(initial).merged({"model": model or self.model})
        _encode(config.to_wire(self.dialect))  # tracing included: it is sent after session.created
        return config

    def connection_opened(self, session_config: SessionConfig | Mapping[str, Any] | None = None) -> None:
        """The socket is open: emit ``connected`` and send the merged session config (with the model)."""
        self._require({"connecting", "disconnected"}, "connection_opened()")
        config = self.check_session_config(session_config)
        update = self._session_update(config)
        self._reset_connection_state()
        self._tracing = config.tracing if config.is_set("tracing") else _UNSET
        self._config = config
        self._update_output_format()
        self._status = "connected"
        self._emit("connection_change", ConnectionChange("connected"))
        self._emit("connected", ConnectionChange("connected"))
        self._to_send.append(update)

    def connection_closed(self) -> None:
        """The socket is gone (closed, failed, or never opened). Idempotent."""
        self._reset_connection_state()
        if self._status == "disconnected":
            return
        self._status = "disconnected"
        self._emit("connection_change", ConnectionChange("disconnected"))
        self._emit("disconnected", ConnectionChange("disconnected"))

    def _reset_connection_state(self) -> None:
        self._server_session = {}
        self._update_output_format()
        self._reset_playback()
        self._truncated.clear()
        self._response_running = False
        self._cancel_requested = False
        self._create_in_flight = None
        self._held.clear()
        self._recent_creates.clear()

    # Input from the server ---------------------------------------------------------------------------
    def receive(
        self, data: str | bytes | bytearray | memoryview, *, now_ms: float = 0.0, heard_ms: HeardMs = None
    ) -> ServerEventBase | None:
        """Handle one text frame. ``now_ms`` timestamps audio; ``heard_ms`` serves an automatic interrupt.

        Returns the parsed event, or None for a frame that is not a JSON object with a ``type`` (it is
        ignored: a peer's garbage never raises into the socket's event loop) or that arrived while
        not connected.
        """
        if self._status != "connected":
            # Frames of a socket that is no longer ours (the I/O layer should not pass them at all).
            return None
        event = parse_server_event(data)
        if event is None:
            logger.debug("ignored a text frame that is not a Realtime event")
            return None
        # ``*`` and the per-type events only drive listeners: skip the ones nobody wants.
        wanted = self.wanted
        everything = wanted is None or WANT_ALL in wanted
        if everything or "*" in wanted:  # type: ignore[operator]
            self._events.append(("*", event))
        # An ``error`` is emitted by its handler, as ErrorEvent (unless the core handled it); a
        # malformed event only as an ``error`` (its type's listeners could not read it).
        kind = type(event)
        if kind is not ServerErrorEvent and kind is not MalformedServerEvent and (everything or event.type in wanted):  # type: ignore[operator]
            self._events.append((event.type, event))
        # One dict lookup by class: a chain of isinstance checks costs microseconds per event in
        # Pyodide, where every audio delta passes through here.
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(event, now_ms, heard_ms)
            except Exception as exc:  # noqa: BLE001 - the last line of defence, reported below
                # A frame must never raise into the socket's event loop: report it as an error event.
                logger.debug("handling a %r event failed", event.type, exc_info=True)
                self._emit("error", ErrorEvent(_handler_failure(event, exc)))
        return event

    def _build_handlers(self) -> dict[type[ServerEventBase], Callable[[Any, float, HeardMs], None]]:
        return {
            ResponseAudioDelta: self._on_audio_delta,
            ResponseTextDelta: self._on_text_delta,
            ResponseAudioDone: lambda event, _now, _heard: self._on_audio_done(event),
            ResponseEvent: lambda event, _now, _heard: (
                self._on_response_created(event) if event.type == "response.created" else self._on_response_done(event)
            ),
            SpeechStarted: self._on_speech_started,
            OutputItemEvent: lambda event, _now, _heard: self._on_output_item(event),
            ConversationItemEvent: lambda event, _now, _heard: self._on_conversation_item(event),
            ConversationItemDeleted: lambda event, _now, _heard: self._emit("item_deleted", ItemDeleted(event.item_id)),
            # The item changed (a transcript arrived, audio was cut): fetch it whole rather than
            # rebuild it from partials; the answer comes back as conversation.item.retrieved.
            InputAudioTranscriptionCompleted: self._retrieve_item,
            ConversationItemTruncated: self._retrieve_item,
            SessionEvent: lambda event, _now, _heard: self._on_session(event),
            ServerErrorEvent: lambda event, _now, _heard: self._on_error(event),
            MalformedServerEvent: lambda event, _now, _heard: self._on_malformed(event),
        }

    def _on_malformed(self, event: MalformedServerEvent) -> None:
        """Report it, then advance the state as far as its type and the fields that did fit allow."""
        self._emit("error", ErrorEvent(event))
        data = event.data
        response = data.get("response")
        response = response if isinstance(response, Mapping) else {}
        if event.type == "response.created":
            self._on_response_created(ResponseEvent(type="response.created", response=_response_fields(response)))
        elif event.type == "response.done":
            # Whatever its shape, a response.done ends the response and releases the queue.
            self._on_response_done(ResponseEvent(type="response.done", response=_response_fields(response)))

    def _on_speech_started(self, event: SpeechStarted, now_ms: float, heard_ms: HeardMs) -> None:
        if self.auto_interrupt:
            self.interrupt(now_ms, heard_ms, cancel=not self.server_cancels_on_speech)

    def _retrieve_item(self, event: InputAudioTranscriptionCompleted | ConversationItemTruncated, _now: float, _heard: HeardMs) -> None:
        self._send({"type": "conversation.item.retrieve", "item_id": event.item_id})

    def _on_session(self, event: SessionEvent) -> None:
        self._server_session = event.session
        self._update_output_format()
        if event.type == "session.created":
            self._send_tracing_update()

    # Audio out ---------------------------------------------------------------------------------------
    def _on_audio_delta(self, event: ResponseAudioDelta, now_ms: float, heard_ms: HeardMs = None) -> None:
        key = (event.item_id, event.content_index)
        if key in self._truncated:
            return  # late audio of an item we already cut: never play it
        segment = self._segments[-1] if self._segments else None
        if segment is None or (segment.item_id, segment.content_index) != key:
            self._drop_finished_segments(now_ms, heard_ms)
            if not self._segments:
                self._first_audio_ms = now_ms
            segment = _Segment(event.item_id, event.content_index, event.response_id)
            self._segments.append(segment)
        segment.received_ms += len(event.delta) / self._bytes_per_ms
        self._events.append(("audio", TransportAudio(event.delta, event.response_id, event.item_id, event.content_index)))

    def _drop_finished_segments(self, now_ms: float, heard_ms: HeardMs) -> None:
        """Forget audio that finished arriving and finished playing: by what the player heard when it
        knows the item (playback may lag arrival by far), else by the wall clock."""
        while self._segments and self._first_audio_ms is not None:
            head = self._segments[0]
            if not head.done:
                return
            heard = heard_ms(head.item_id, head.content_index) if callable(heard_ms) else None
            if heard is None:
                heard = now_ms - self._first_audio_ms
            if heard < head.received_ms:
                return
            self._segments.pop(0)
            # The next segment started playing when this one ended.
            self._first_audio_ms += head.received_ms
        if not self._segments:
            self._first_audio_ms = None

    def _on_audio_done(self, event: ResponseAudioDone) -> None:
        for segment in self._segments:
            if segment.item_id == event.item_id and segment.content_index == event.content_index:
                segment.done = True
        self._emit("audio_done", AudioDone(event.response_id, event.item_id, event.content_index))

    def _on_text_delta(self, event: ResponseTextDelta, _now: float = 0.0, _heard: HeardMs = None) -> None:
        emitted = _TEXT_DELTAS.get(event.type)
        if emitted is not None:
            name, record = emitted
            self._events.append((name, record(event.delta, event.item_id, event.response_id)))

    def _reset_playback(self) -> None:
        self._segments = []
        self._first_audio_ms = None

    # Interruption ------------------------------------------------------------------------------------
    def interrupt(self, now_ms: float, heard_ms: HeardMs = None, cancel: bool = True) -> bool:
        """Stop the model's audio where the user stopped hearing it.

        Sends ``response.cancel`` if ``cancel`` and a response is running (and no cancel is pending),
        then, if any received audio had not finished playing, emits ``audio_interrupted`` and sends one
        ``conversation.item.truncate`` per such item with an integer ``audio_end_ms`` clamped to the
        audio received. Returns True if audio was truncated. Does nothing while disconnected.
        """
        if self._status != "connected":
            return False
        if cancel:
            self.cancel_response()
        truncations = self._truncation_points(now_ms, heard_ms)
        self._reset_playback()
        if not truncations:
            return False
        self._emit("audio_interrupted", AudioInterrupted(tuple(truncations)))
        for item_id, content_index, end_ms in truncations:
            self._truncated.append((item_id, content_index))
            self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": content_index,
                    "audio_end_ms": end_ms,
                }
            )
        return True

    def _truncation_points(self, now_ms: float, heard_ms: HeardMs) -> list[tuple[str, int, int]]:
        if not self._segments or self._first_audio_ms is None:
            return []
        # Playback is sequential: each segment starts playing when the one before it ends.
        position = float(heard_ms) if isinstance(heard_ms, (int, float)) else now_ms - self._first_audio_ms
        points: list[tuple[str, int, int]] = []
        offset = 0.0
        for segment in self._segments:
            heard = heard_ms(segment.item_id, segment.content_index) if callable(heard_ms) else None
            if heard is None:
                heard = position - offset
            offset += segment.received_ms
            heard = min(max(heard, 0.0), segment.received_ms)
            if segment.done and heard >= segment.received_ms:
                continue  # it played to the end: nothing to cut
            points.append((segment.item_id, segment.content_index, math.floor(heard)))
        return points

    def cancel_response(self) -> bool:
        """Send ``response.cancel`` if a response is running and none was sent for it yet."""
        if self._status != "connected" or not self._response_running or self._cancel_requested:
            return False
        self._cancel_requested = True
        self._send({"type": "response.cancel"})
        return True

    # Responses ---------------------------------------------------------------------------------------
    def _on_response_created(self, event: ResponseEvent) -> None:
        self._response_running = True
        self._cancel_requested = False
        self._create_in_flight = None
        self._emit("turn_started", TurnStarted(str(event.response.get("id") or ""), event.model_dump()))

    def _on_response_done(self, event: ResponseEvent) -> None:
        self._response_running = False
        self._cancel_requested = False
        self._create_in_flight = None
        raw_id = event.response.get("id")
        response_id = raw_id if isinstance(raw_id, str) else ""
        # No more audio will come for this response (cancelled ones may never send audio.done).
        for segment in self._segments:
            if segment.response_id == response_id or not response_id:
                segment.done = True
        self._truncated.clear()
        usage = _usage(event.response.get("usage"))
        self._emit("usage_update", usage)
        output = event.response.get("output")
        status = event.response.get("status")
        self._emit("turn_done", TurnDone(response_id, status if isinstance(status, str) else None,
                                         tuple(output) if isinstance(output, list) else (), usage))
        self._release_held_create()

    def _on_error(self, event: ServerErrorEvent) -> None:
        error = event.error
        if error.code == _ACTIVE_RESPONSE_ERROR and self._retry_create(error.event_id):
            return
        self._emit("error", ErrorEvent(event))
        if self._create_in_flight is None:
            return
        names_ours = error.event_id == self._create_in_flight
        # An error without an event_id that is clearly about response.create also frees the slot.
        about_create = error.event_id is None and (
            "response_create" in (error.code or "") or "response.create" in (error.message or "")
        )
        if names_ours or about_create:
            self._create_in_flight = None
            self._release_held_create()

    def _retry_create(self, event_id: str | None) -> bool:
        """Put our refused ``response.create`` back at the head of the queue; False if it is not ours.

        A response the server started by itself (server VAD) crossed ours: ours is sent again when
        that one is done. Not emitted as an error: it is handled, and ``*`` still shows it.
        """
        held = next((h for h in self._recent_creates if h.event.get("event_id") == event_id), None)
        if event_id is None or held is None:
            return False
        self._recent_creates.remove(held)
        if self._create_in_flight == event_id:
            self._create_in_flight = None
        if held.manual or not self._held or self._held[0].manual:
            self._held.appendleft(held)  # a parameterless request already waiting serves for both
        self._release_held_create()
        return True

    def request_response(self, response: Mapping[str, Any] | None = None) -> None:
        """Ask for a response; held while one is running (see the module notes on sequencing)."""
        event: dict[str, Any] = {"type": "response.create"}
        if response is not None:
            event["response"] = dict(response)
        self._require({"connected"}, "request_response()")
        self._request_create(event, manual=response is not None)

    def _request_create(self, event: dict[str, Any], *, manual: bool) -> None:
        if not self._held and not self._response_running and self._create_in_flight is None:
            self._dispatch_create(_HeldCreate(event, manual))
            return
        # Parameterless requests made while waiting collapse into one; requests with parameters are
        # each honoured, in order.
        if not manual and self._held and not self._held[-1].manual:
            return
        _encode(event)  # refused now, not when it is released from inside a server event
        self._held.append(_HeldCreate(event, manual))

    def _dispatch_create(self, held: _HeldCreate) -> None:
        event_id = held.event.get("event_id")
        tagged = isinstance(event_id, str)
        if not tagged:
            event_id = f"{_RESPONSE_CREATE_ID_PREFIX}{self._create_counter + 1}"
            held = _HeldCreate({**held.event, "event_id": event_id}, held.manual)
        text = _encode(held.event)
        if not tagged:
            self._create_counter += 1
        self._create_in_flight = event_id
        self._recent_creates.append(held)
        self._to_send.append(text)

    def _release_held_create(self) -> None:
        if self._held and not self._response_running and self._create_in_flight is None:
            self._dispatch_create(self._held.popleft())

    # App calls ---------------------------------------------------------------------------------------
    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event as is (``response.create`` goes through the sequencing)."""
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ConfigurationError("an event must be a dict with a string 'type', e.g. {'type': 'response.cancel'}")
        self._require({"connected"}, f"send_event({event['type']!r})")
        event = dict(event)
        if event["type"] == "response.create":
            self._request_create(event, manual=True)
            return
        text = _encode(event)
        if event["type"] == "response.cancel":
            if self._cancel_requested:
                return  # a second cancel only earns response_cancel_not_active
            self._cancel_requested = self._response_running
        self._to_send.append(text)

    def send_audio(self, pcm: bytes | bytearray | memoryview, *, commit: bool = False) -> None:
        """Append audio to the input buffer (and commit it). Ignored unless connected, as the seed does."""
        if self._status != "connected":
            return
        view = memoryview(pcm).cast("B")
        for start in range(0, len(view), MAX_AUDIO_APPEND_BYTES):
            chunk = binascii.b2a_base64(view[start : start + MAX_AUDIO_APPEND_BYTES], newline=False)
            # base64 needs no JSON escaping: build the frame without a dict and a dumps.
            self._to_send.append('{"type":"input_audio_buffer.append","audio":"' + chunk.decode("ascii") + '"}')
        if commit:
            self._send({"type": "input_audio_buffer.commit"})

    def send_message(
        self,
        message: str | Mapping[str, Any],
        other_event_data: Mapping[str, Any] | None = None,
        *,
        trigger_response: bool = True,
    ) -> None:
        """Add a user message (text, or a message dict with text/image content), then ask for a response."""
        self._require({"connected"}, "send_message()")
        item = _user_message_item(message)
        self._send({"type": "conversation.item.create", "item": item, **dict(other_event_data or {})})
        if trigger_response:
            self._request_create({"type": "response.create"}, manual=False)

    def add_image(self, image_url: str, *, trigger_response: bool = True) -> None:
        """Add an image (a data: URL or an https URL) as a user message."""
        if not isinstance(image_url, str) or not image_url:
            raise ConfigurationError("add_image() needs the image as a data: URL or an https URL string")
        self.send_message(
            {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": image_url}]},
            trigger_response=trigger_response,
        )

    def update_session_config(self, config: SessionConfig | Mapping[str, Any]) -> None:
        """Merge ``config`` into the session (each field given replaces that field) and send it.

        The voice is sent only when ``config`` names it: once the model has spoken, the server
        refuses any ``session.update`` that carries a voice (``cannot_update_voice``), even the same.
        """
        update = SessionConfig.coerce(config)
        merged = self._config.merged(update)
        self._require({"connected"}, "update_session_config()")
        text = self._session_update(merged, exclude=() if update.is_set("voice") else ("voice",))
        self._config = merged
        self._update_output_format()
        self._to_send.append(text)

    def send_function_call_output(
        self, call: FunctionCall | Mapping[str, Any], output: Any, *, start_response: bool = True
    ) -> None:
        """Answer a ``function_call`` with its output, then (by default) ask for a response."""
        call_id, item_id, name, arguments, previous = _call_fields(call)
        try:
            text = output if isinstance(output, str) else json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"the function call output cannot be sent as JSON: {exc}; pass a string") from None
        self._require({"connected"}, "send_function_call_output()")
        self._send(
            {"type": "conversation.item.create", "item": {"type": "function_call_output", "output": text, "call_id": call_id}}
        )
        self._emit(
            "item_update",
            ItemUpdate(
                item_id=item_id,
                type="function_call",
                status="completed",
                previous_item_id=previous,
                name=name,
                arguments=arguments,
                call_id=call_id,
                output=text,
            ),
        )
        if start_response:
            self._request_create({"type": "response.create"}, manual=False)

    def reset_history(self, old_items: Iterable[ItemUpdate | Mapping[str, Any]], new_items: Iterable[ItemUpdate | Mapping[str, Any]]) -> None:
        """Make the server's conversation match ``new_items``: delete what went or changed, re-add it."""
        old = {item["item_id"]: item for item in map(_history_item, old_items)}
        new = {item["item_id"]: item for item in map(_history_item, new_items)}
        self._require({"connected"}, "reset_history()")
        changed = [i for i, item in new.items() if i in old and old[i] != item]
        # The API has no item update: a changed item is deleted and created again. Every frame is
        # encoded before any is queued, so an item JSON cannot carry leaves nothing half done.
        frames = [_encode({"type": "conversation.item.delete", "item_id": i}) for i in [i for i in old if i not in new] + changed]
        for item_id in [i for i in new if i not in old] + changed:
            item = new[item_id]
            if item["type"] != "message":
                logger.warning("reset_history: %s items cannot be re-created; skipped %s", item["type"], item_id)
                continue
            entry: dict[str, Any] = {"type": "message", "role": item["role"], "content": item["content"], "id": item_id}
            if item["role"] != "system" and item.get("status"):
                entry["status"] = item["status"]
            frames.append(_encode({"type": "conversation.item.create", "item": entry}))
        self._to_send.extend(frames)

    # Session and tracing -----------------------------------------------------------------------------
    def _session_update(self, config: SessionConfig, exclude: tuple[str, ...] = ()) -> str:
        # Tracing is sent once, after session.created: re-sending it on every update is refused
        # once the server has a tracing config.
        session = config.to_wire(self.dialect, include_tracing=False, exclude=exclude)
        return _encode({"type": "session.update", "session": session})

    def _send_tracing_update(self) -> None:
        wanted = "auto" if self._tracing is _UNSET else self._tracing
        current = wire_tracing(self._server_session)
        if isinstance(wanted, Mapping) and isinstance(current, Mapping) and dict(current) != dict(wanted):
            logger.warning("the session already has a different tracing config; it cannot change, so it was kept")
            return
        session: dict[str, Any] = {"tracing": wanted}
        if self.dialect.name == "ga":
            session = {"type": "realtime", **session}
        self._send({"type": "session.update", "session": session})

    # Items -------------------------------------------------------------------------------------------
    def _on_output_item(self, event: OutputItemEvent) -> None:
        item = event.item
        kind = item.get("type")
        if kind == "function_call" and item.get("status") == "completed":
            # Shown as in progress until its output is sent.
            self._emit("item_update", _item_update(item, status="in_progress"))
            self._emit(
                "function_call",
                FunctionCall(
                    id=str(item.get("id") or ""),
                    call_id=str(item.get("call_id") or ""),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                    response_id=event.response_id,
                ),
            )
        elif kind == "message":
            default = "completed" if event.type == "response.output_item.done" else "in_progress"
            self._emit("item_update", _item_update(item, status=item.get("status") or default))

    def _on_conversation_item(self, event: ConversationItemEvent) -> None:
        item = event.item
        if item.get("type") != "message":
            return
        previous = None if event.type == "conversation.item.retrieved" else event.previous_item_id
        default = "in_progress" if event.type == "conversation.item.added" else "completed"
        self._emit("item_update", _item_update(item, status=item.get("status") or default, previous_item_id=previous))

    # Plumbing ----------------------------------------------------------------------------------------
    def _send(self, event: Mapping[str, Any]) -> None:
        self._to_send.append(_encode(event))

    def _emit(self, name: str, payload: Any) -> None:
        self._events.append((name, payload))

    def _require(self, allowed: set[str], call: str) -> None:
        if self._status not in allowed:
            hint = "await connect() first" if self._status != "connected" else "close() first"
            raise InvalidStateError(f"{call} cannot run while the transport is {self._status}: {hint}")


# Helpers ---------------------------------------------------------------------------------------------
def _handler_failure(event: ServerEventBase, exc: Exception) -> ServerError:
    message = f"a {event.type!r} event could not be handled ({type(exc).__name__}: {exc})"
    return ServerError(message, error={"type": "client_error", "code": "event_not_handled", "message": message,
                                       "event_id": event.event_id, "event_type": event.type})


def _count(value: Any) -> int:
    """A token count as the server should send it (a non-negative int), else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    return 0


def _details(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _response_fields(response: Mapping[str, Any]) -> dict[str, Any]:
    """What the core reads of a response object, each field of the right type or left out."""
    fields: dict[str, Any] = {}
    for name, kind in (("id", str), ("status", str), ("output", list), ("usage", dict)):
        if isinstance(response.get(name), kind):
            fields[name] = response[name]
    return fields


def _usage(raw: Any) -> Usage:
    raw = raw if isinstance(raw, Mapping) else {}
    input_tokens = _count(raw.get("input_tokens"))
    output_tokens = _count(raw.get("output_tokens"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        # GA says *_token_details, beta *_tokens_details.
        input_tokens_details=_details(raw.get("input_token_details") or raw.get("input_tokens_details")),
        output_tokens_details=_details(raw.get("output_token_details") or raw.get("output_tokens_details")),
    )


def _item_update(item: Mapping[str, Any], *, status: Any, previous_item_id: str | None = None) -> ItemUpdate:
    content = item.get("content")
    return ItemUpdate(
        item_id=str(item.get("id") or ""),
        type=str(item.get("type") or ""),
        role=item.get("role"),
        status=status,
        content=tuple(content) if isinstance(content, list) else (),
        previous_item_id=previous_item_id,
        name=item.get("name"),
        arguments=item.get("arguments"),
        call_id=item.get("call_id"),
        output=item.get("output"),
        raw=dict(item),
    )


def _content_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "input_text", "text": part}
    if not isinstance(part, Mapping):
        raise ConfigurationError(f"message content must be strings or dicts, not {type(part).__name__}")
    copy: dict[str, Any] = {str(key): value for key, value in part.items()}
    if copy.get("type") == "input_image" and "image_url" not in copy and "image" in copy:
        # The JS SDK's user-input shape says "image"; the wire says "image_url".
        copy["image_url"] = copy.pop("image")
    return copy


def _user_message_item(message: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, str):
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": message}]}
    if not isinstance(message, Mapping):
        raise ConfigurationError("send_message() takes a string or a message dict with 'content'")
    content = message.get("content")
    parts = [content] if isinstance(content, (str, Mapping)) else list(content or [])
    if not parts:
        raise ConfigurationError("a message needs content, e.g. {'content': [{'type': 'input_text', 'text': 'hi'}]}")
    return {**dict(message), "type": message.get("type", "message"), "role": message.get("role", "user"),
            "content": [_content_part(p) for p in parts]}


def _call_fields(call: FunctionCall | Mapping[str, Any]) -> tuple[str, str, str | None, str | None, str | None]:
    if isinstance(call, FunctionCall):
        return call.call_id, call.id, call.name, call.arguments, call.previous_item_id
    if isinstance(call, Mapping):
        call_id = call.get("call_id") or call.get("callId")
        if isinstance(call_id, str) and call_id:
            return (call_id, str(call.get("id") or call.get("item_id") or ""), call.get("name"),
                    call.get("arguments"), call.get("previous_item_id"))
    raise ConfigurationError("send_function_call_output() needs the FunctionCall event (or a dict with 'call_id')")


def _history_item(item: ItemUpdate | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, ItemUpdate):
        return {"item_id": item.item_id, "type": item.type, "role": item.role, "content": list(item.content),
                "status": item.status}
    if isinstance(item, Mapping):
        item_id = item.get("item_id") or item.get("itemId") or item.get("id")
        if isinstance(item_id, str) and item_id:
            return {"item_id": item_id, "type": item.get("type", "message"), "role": item.get("role"),
                    "content": list(item.get("content") or []), "status": item.get("status")}
    raise ConfigurationError("history items must be ItemUpdate events or dicts with an 'item_id'")
