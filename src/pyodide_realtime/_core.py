"""The sans-I/O Realtime protocol: all the state and decisions, no socket, no clock, no asyncio, no js.

Everything that affects the protocol's state lives in :class:`RealtimeProtocol`. An I/O layer drives it
in this order:

1. ``connection_opening()`` when it starts opening a socket, then ``connection_opened(config)`` when
   the socket is open (or ``connection_closed()`` if it failed);
2. ``receive(text, now_ms=..., heard_ms=...)`` for every text frame, and the app's calls
   (``send_message``, ``send_audio``, ``interrupt(now_ms, ...)``, ...) as they come;
3. after each of those: if ``playback_stop_expected()``, stop the player and call
   ``playback_stopped(now_ms)``; then send every string of ``data_to_send()`` as a text frame, and
   hand every ``(name, payload)`` of ``events_received()`` to listeners (the order matters: data
   first, so a listener that calls back into the protocol sees its earlier output already on the
   wire); after a ``receive``, when ``has_output`` is False, 3 and 4 have nothing to do;
4. after a ``receive``, once the listeners ran: if ``barge_in_expected()`` returns a hint, the user
   spoke over the model: interrupt (``interrupt(now_ms, cancel=hint.cancel_response)``, or a hook of
   the I/O layer's that ends there), then 3 again;
5. ``connection_closed()`` once the socket is gone.

The core decides; the I/O layer acts on its hints (as websockets' connection reads its protocol's
``close_expected()``). Time (``now_ms``) is an argument: the core never reads a clock of its own (a
``receive`` may be handed the I/O layer's clock, to call only when the frame needs the time). The playback
position comes from the player's :class:`~._playback.PlaybackPort`, handed over once
(``attach_playback``); the core only reads it. A call that does not fit the state raises
:class:`InvalidStateError` naming both, and changes nothing.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import os
from collections.abc import Callable, Container, Iterable, Mapping
from functools import partial
from typing import Any, NamedTuple

from pydantic import ValidationError

from ._client_events import encode_event, validate_client_event
from ._emitter import WANT_ALL
from ._history_edits import HistoryInput, call_fields, plan_reset_history, user_message_item
from ._interfaces import AudioFormat, redact
from ._playback import HeardMs, HeardSource, NowMs, Playback, PlaybackPort
from ._responses import ResponseSequencer
from .config import (
    DEFAULT_SESSION_CONFIG,
    SessionConfig,
    normalize_audio_format,
    wire_interrupt_response,
    wire_output_audio_format,
    wire_tracing,
)
from .dialects import DIALECTS, DialectSpec, get_dialect
from .errors import ConfigurationError, InvalidStateError, ServerError
from .events import (
    AudioCommitted,
    AudioDone,
    AudioInterrupted,
    ConnectionChange,
    ConnectionStatus,
    ConversationItemDeleted,
    ConversationItemEvent,
    ConversationItemTruncated,
    ErrorEvent,
    FunctionCall,
    InputAudioBufferCommitted,
    InputAudioTimeout,
    InputAudioTimeoutTriggered,
    InputAudioTranscriptionCompleted,
    InputAudioTranscriptionFailed,
    InputSpeechStarted,
    InputSpeechStopped,
    InputTranscriptCompleted,
    InputTranscriptDelta,
    InputTranscriptFailed,
    ItemBase,
    ItemDeleted,
    ItemUpdate,
    MalformedServerEvent,
    McpApprovalRequest,
    McpCallEvent,
    McpListToolsEvent,
    McpToolCall,
    McpToolsListed,
    OutputItemEvent,
    OutputTextDelta,
    RateLimits,
    RateLimitsUpdated,
    Response,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseCut,
    ResponseEvent,
    ResponseTextDelta,
    ServerErrorEvent,
    ServerEventBase,
    SessionEvent,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TransportAudio,
    TurnDone,
    TurnStarted,
    Usage,
    build_parser,
    parse_server_event,
)

__all__ = ["RealtimeProtocol", "BargeIn", "HeardMs", "PlaybackPort", "MAX_AUDIO_APPEND_BYTES", "CUT_STATUS"]

logger = logging.getLogger("pyodide_realtime")

#: Raw bytes per ``input_audio_buffer.append``: bounds each base64 string (about 128 KiB of text) and
#: is a multiple of 6, so chunks split on whole PCM16 samples and on base64 quanta.
MAX_AUDIO_APPEND_BYTES = 96 * 1024
#: ``TurnDone.status`` of a response the connection cut (closed before its ``response.done``). Not an
#: API status: the API's own ones (completed, cancelled, failed, incomplete) come from the server.
CUT_STATUS = "cut"

_UNSET: Any = object()
_encode = encode_event
#: ``TransportAudio(...)`` runs the NamedTuple's generated Python ``__new__``; ``tuple.__new__`` builds
#: the same record in C (a Python call less per audio delta). Every field is given, in order.
_audio_record = partial(tuple.__new__, TransportAudio)


# Text deltas by server type (each dialect's names, as its spec writes them; a client accepts either):
# the name to emit and the record to emit.
_TEXT_DELTAS: dict[str, tuple[str, type[TranscriptDelta] | type[OutputTextDelta]]] = {
    **{d.wire.transcript_delta: ("audio_transcript_delta", TranscriptDelta) for d in DIALECTS},
    **{d.wire.text_delta: ("output_text_delta", OutputTextDelta) for d in DIALECTS},
}
_AUDIO_DONE_TYPES = frozenset(d.wire.audio_done for d in DIALECTS)
#: Events whose text may quote the key (see ``_redacted``): one set lookup per frame, not two checks.
_REDACTED_KINDS: frozenset[type[ServerEventBase]] = frozenset({ServerErrorEvent, MalformedServerEvent})


class BargeIn(NamedTuple):
    """The hint ``barge_in_expected()`` hands over: the user spoke over the model, interrupt now;
    ``cancel_response`` is False when the server cancels by itself (``interrupt_response``)."""

    cancel_response: bool


class _PendingStop(NamedTuple):
    """An interruption waiting for the player to stop; ``source`` is set when it measures after."""

    source: HeardSource | None


class RealtimeProtocol:
    """The Realtime protocol state of one transport (it survives reconnects; each connection resets it).

    The state lives in three places, each changed only by its own methods: the connection status
    (here), the response sequencing (:class:`~._responses.ResponseSequencer`) and the playback
    (:class:`~._playback.Playback`). This class parses, dispatches and encodes.
    """

    def __init__(self, dialect: str | DialectSpec = "ga", *, model: str | None = None) -> None:
        self.dialect: DialectSpec = get_dialect(dialect)
        self.model: str = model or self.dialect.default_model
        #: The event names the I/O layer delivers to someone (``EventEmitter.wanted``); None: all.
        #: ``*``, the per-type events and the text deltas are made only when wanted.
        self.wanted: Container[str] | None = None
        self._status: ConnectionStatus = "disconnected"
        self._config: SessionConfig = DEFAULT_SESSION_CONFIG[self.dialect.name]
        self._tracing: Any = _UNSET
        self._server_session: dict[str, Any] = {}
        self._output_format: AudioFormat = self._config.output_audio_format or "pcm16"
        self._to_send: list[str] = []
        self._events: list[tuple[str, Any]] = []
        self._playback = Playback()
        self._responses = ResponseSequencer()
        #: What must never reach an event or a log: the key of the connection (set by the I/O layer
        #: when it opens one; kept out of every repr).
        self.secrets: tuple[str, ...] = ()
        self._barge_in: BargeIn | None = None
        self._stop: _PendingStop | None = None
        self._handlers = self._build_handlers()
        #: ``events.build_parser()``'s known-events validator once connected (built by then: not at import).
        self._validate_known: Callable[[Any], ServerEventBase | None] = parse_server_event

    # Output -----------------------------------------------------------------------------------------
    def data_to_send(self) -> list[str]:
        """JSON text frames to send, oldest first; the list is handed over and emptied."""
        out, self._to_send = self._to_send, []
        return out

    def events_received(self) -> list[tuple[str, Any]]:
        """``(name, payload)`` pairs to emit, oldest first; handed over and emptied."""
        out, self._events = self._events, []
        return out

    @property
    def has_output(self) -> bool:
        """Whether ``data_to_send()``, ``events_received()`` or ``barge_in_expected()`` has anything: after
        a ``receive`` that made nothing (most text deltas nobody listens to), the I/O layer may skip
        step 3 and 4 (in Pyodide every call per event counts)."""
        if self._to_send or self._events or self._barge_in is not None:  # no bool() call: asked per frame
            return True
        return False

    # Hints: what the I/O layer must do ----------------------------------------------------------------
    def barge_in_expected(self) -> BargeIn | None:
        """After ``receive``: a :class:`BargeIn` if the user started speaking over the model (server VAD's
        ``speech_started``), else None. Handed over once. The I/O layer interrupts once the listeners of
        ``speech_started`` ran (as the seed does), through its own hook if it has one."""
        hint = self._barge_in
        if hint is None:  # asked after every frame: the common answer first
            return None
        self._barge_in = None
        return hint if self._status == "connected" else None

    def playback_stop_expected(self) -> bool:
        """True when an interruption needs the player stopped: the I/O layer stops it, then calls
        ``playback_stopped``, before it sends ``data_to_send()``."""
        return self._stop is not None

    def playback_stopped(self, now_ms: float) -> None:
        """The player was stopped (see ``playback_stop_expected``). A player that stops where it says it
        was heard is measured now, so the truncation is where its sound stopped. Never raises."""
        pending, self._stop = self._stop, None
        if pending is not None and pending.source is not None and self._status == "connected":
            self._truncate(now_ms, pending.source)

    def attach_playback(self, port: PlaybackPort | None) -> None:
        """Read what was heard from ``port`` (see :class:`~._playback.PlaybackPort`; None: estimate
        from the wall clock). Handed over once, when a player is attached; it survives reconnects."""
        self._playback.attach(port)

    # State the transport reads -----------------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        """The connection status: the one place it is kept (the I/O layer asks here)."""
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
        """The session's format of received audio: what the server reported, else what was configured.
        A response with its own format says so in each ``audio`` event (``TransportAudio.audio_format``)."""
        return self._output_format

    def _update_output_format(self) -> None:
        # Cached: it is read for every new audio segment.
        self._output_format = (
            wire_output_audio_format(self._server_session) or self._config.output_audio_format or "pcm16"
        )

    @property
    def server_cancels_on_speech(self) -> bool:
        """True when ``turn_detection.interrupt_response`` is on: the server cancels by itself."""
        reported = wire_interrupt_response(self._server_session)
        if reported is not None:
            return reported
        return bool(self._config.interrupt_response)

    @property
    def response_running(self) -> bool:
        """True from ``response.created`` to ``response.done`` (or the close that cut it)."""
        return self._responses.running

    @property
    def response_state(self) -> str:
        """The sequencing state: ``idle``, ``requested``, ``running`` or ``cancelling``."""
        return self._responses.state.value

    @property
    def held_response_creates(self) -> int:
        """``response.create`` events waiting for the running response to finish."""
        return self._responses.held

    @property
    def audio_received_ms(self) -> float:
        """Milliseconds of audio received in the current playback (0 when nothing is tracked)."""
        return self._playback.received_ms

    @property
    def current_item(self) -> tuple[str, int] | None:
        """(item_id, content_index) of the audio received last, if it is still tracked."""
        return self._playback.current_item

    @property
    def first_audio_ms(self) -> float | None:
        """When the oldest audio still tracked started arriving (the wall-clock estimate starts there)."""
        return self._playback.first_audio_ms

    def change_model(self, model: str) -> None:
        """The model of the next connection. InvalidStateError (nothing changed) unless disconnected:
        a connection keeps the model it was opened with."""
        if self._status != "disconnected":
            raise InvalidStateError(f"the model cannot change while the transport is {self._status}: close() first")
        self.model = model

    # Connection milestones ---------------------------------------------------------------------------
    def connection_opening(self) -> None:
        """A socket is being opened: emits ``connection_change``. Sends nothing. InvalidStateError
        unless disconnected."""
        self._require({"disconnected"}, "connection_opening()")
        self._status = "connecting"
        self._emit("connection_change", ConnectionChange("connecting"))

    def check_session_config(
        self, session_config: SessionConfig | Mapping[str, Any] | None, *, model: str | None = None
    ) -> SessionConfig:
        """What ``connection_opened(session_config)`` would configure (the defaults, ``session_config``
        and the model merged), or ConfigurationError if it cannot be sent: a field this dialect does
        not have, a value JSON cannot carry. Changes nothing, sends nothing; an I/O layer calls it
        before opening."""
        initial = SessionConfig.coerce(session_config)
        config = DEFAULT_SESSION_CONFIG[self.dialect.name].merged(initial).merged({"model": model or self.model})
        _encode(config.to_wire(self.dialect))  # tracing included: it is sent after session.created
        return config

    def connection_opened(self, session_config: SessionConfig | Mapping[str, Any] | None = None) -> None:
        """The socket is open: emits ``connection_change`` and ``connected``, sends ``session.update``
        with the merged session config (and the model). ConfigurationError (nothing changed) for a
        config that cannot be sent; InvalidStateError when already connected."""
        self._require({"connecting", "disconnected"}, "connection_opened()")
        config = self.check_session_config(session_config)
        update = self._session_update(config)
        self._reset_connection_state()
        self._validate_known = build_parser()[0]
        self._tracing = config.tracing if config.is_set("tracing") else _UNSET
        self._config = config
        self._update_output_format()
        self._status = "connected"
        self._emit("connection_change", ConnectionChange("connected"))
        self._emit("connected", ConnectionChange("connected"))
        self._to_send.append(update)

    def connection_closed(self) -> None:
        """The socket is gone (closed, failed, or never opened). Idempotent; never raises.

        A response that was running is reported cut: ``response_cut`` (:class:`ResponseCut`) and a
        ``turn_done`` with status ``"cut"``, so nobody waits for its ``response.done``. Then
        ``connection_change`` and ``disconnected``.
        """
        cut = self._responses.closed()
        self._reset_connection_state()
        if self._status == "disconnected":
            return
        if cut is not None:
            self._emit("response_cut", ResponseCut(cut))
            self._emit("turn_done", TurnDone(cut, CUT_STATUS, (), Usage()))
        self._status = "disconnected"
        self._emit("connection_change", ConnectionChange("disconnected"))
        self._emit("disconnected", ConnectionChange("disconnected"))

    def _reset_connection_state(self) -> None:
        self._barge_in = None
        self._stop = None
        self._server_session = {}
        self._update_output_format()
        self._playback.reset()
        self._responses.closed()

    # Input from the server ---------------------------------------------------------------------------
    def receive(
        self, data: str | bytes | bytearray | memoryview, *, now_ms: NowMs = 0.0, heard_ms: HeardMs = None
    ) -> ServerEventBase | None:
        """Handle one text frame. ``now_ms`` timestamps audio: the time the frame arrived, or a function
        that reads the clock, called only if this frame needs the time (see :data:`~._playback.NowMs`); ``heard_ms`` (see :data:`HeardMs`; None:
        the attached port) says what was heard when a new item's audio arrives.

        Never raises. Returns the parsed event, or None for a frame that is not a JSON object with a
        ``type`` (ignored) or that arrived while not connected. A known type whose fields do not fit
        is a :class:`MalformedServerEvent`: emitted as ``*`` and ``error``, and the state still
        advances as far as it allows (a ``response.done`` of any shape ends the response). Whatever
        the handling sends back is in ``data_to_send()``.
        """
        if self._status != "connected":
            # Frames of a socket that is no longer ours (the I/O layer should not pass them at all).
            return None
        try:
            # The known-events validator, called in this frame (in Pyodide a Python call per event
            # counts); whatever it refuses goes all the way through parse_server_event, validated again.
            event = self._validate_known(data)
        except (ValidationError, TypeError):
            event = parse_server_event(data)
        if event is None:
            logger.debug("ignored a text frame that is not a Realtime event")
            return None
        kind = type(event)
        # ``*`` and the per-type events only drive listeners: skip the ones nobody wants. An ``error``
        # is emitted by its handler, as ErrorEvent (unless the core handled it); a malformed event only
        # as an ``error`` (its type's listeners could not read it).
        wanted = self.wanted
        if kind in _REDACTED_KINDS:
            event = self._redacted(event, data)
            if wanted is None or WANT_ALL in wanted or "*" in wanted:
                self._events.append(("*", event))
        elif wanted is None or WANT_ALL in wanted:
            self._events += (("*", event), (event.type, event))
        else:
            if "*" in wanted:
                self._events.append(("*", event))
            if event.type in wanted:
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

    def _redacted(self, event: ServerEventBase, data: str | bytes | bytearray | memoryview) -> ServerEventBase:
        """``event`` parsed again from its frame with the key (and anything key-like) replaced: a
        server's error may quote the key it refused (``invalid_api_key``), and its text travels on into
        messages, reprs and logs. Only errors and malformed events: other events are the server's data."""
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        clean = redact(text, self.secrets)
        if clean == text:
            return event
        return parse_server_event(clean) or event

    def _build_handlers(self) -> dict[type[ServerEventBase], Callable[[Any, NowMs, HeardMs], None]]:
        return {
            ResponseAudioDelta: self._on_audio_delta,
            ResponseTextDelta: self._on_text_delta,
            ResponseAudioDone: lambda event, _now, _heard: self._on_audio_done(event),
            ResponseEvent: lambda event, _now, _heard: (
                self._on_response_created(event) if event.type == "response.created" else self._on_response_done(event)
            ),
            SpeechStarted: self._on_speech_started,
            SpeechStopped: lambda event, _now, _heard: self._emit(
                "speech_stopped", InputSpeechStopped(event.item_id, event.audio_end_ms)),
            InputAudioBufferCommitted: lambda event, _now, _heard: self._emit(
                "audio_committed", AudioCommitted(event.item_id, event.previous_item_id)),
            InputAudioTimeoutTriggered: lambda event, _now, _heard: self._emit(
                "input_audio_timeout", InputAudioTimeout(event.item_id, event.audio_start_ms, event.audio_end_ms)),
            RateLimitsUpdated: lambda event, _now, _heard: self._emit(
                "rate_limits_updated", RateLimits(tuple(event.rate_limits))),
            OutputItemEvent: lambda event, _now, _heard: self._on_output_item(event),
            ConversationItemEvent: lambda event, _now, _heard: self._on_conversation_item(event),
            ConversationItemDeleted: lambda event, _now, _heard: self._emit("item_deleted", ItemDeleted(event.item_id)),
            InputAudioTranscriptionCompleted: self._on_transcription_completed,
            InputAudioTranscriptionFailed: lambda event, _now, _heard: self._emit(
                "input_audio_transcription_failed",
                InputTranscriptFailed(event.item_id, event.content_index, event.error.model_dump())),
            # The item changed (audio was cut; an MCP call or tool list is under way): fetch it whole
            # rather than rebuild it from partials; it comes back as conversation.item.retrieved.
            ConversationItemTruncated: self._retrieve_changed_item,
            McpCallEvent: lambda event, now, heard: (
                self._retrieve_changed_item(event, now, heard) if event.type == "response.mcp_call.in_progress" else None),
            McpListToolsEvent: lambda event, now, heard: (
                self._retrieve_changed_item(event, now, heard) if event.type == "mcp_list_tools.in_progress" else None),
            SessionEvent: lambda event, _now, _heard: self._on_session(event),
            ServerErrorEvent: lambda event, _now, _heard: self._on_error(event),
            MalformedServerEvent: lambda event, _now, _heard: self._on_malformed(event),
        }

    def _on_malformed(self, event: MalformedServerEvent) -> None:
        """Report it, then advance the state as far as its type and the fields that did fit allow."""
        self._emit("error", ErrorEvent(event))
        data = event.data
        raw = data.get("response")
        response = raw if isinstance(raw, Mapping) else {}
        raw_id = response.get("id")
        response_id = raw_id if isinstance(raw_id, str) else ""
        if event.type == "response.created":
            self._start_response(response_id, _response_output_format(response), {"type": event.type, "response": dict(response)})
        elif event.type == "response.done":
            # Whatever its shape, a response.done ends the response and releases the queue.
            status, output = response.get("status"), response.get("output")
            self._end_response(response_id, status if isinstance(status, str) else None,
                               tuple(output) if isinstance(output, list) else (), response.get("usage"))
        elif event.type in _AUDIO_DONE_TYPES:
            item_id, content_index = data.get("item_id"), data.get("content_index", 0)
            if isinstance(item_id, str) and type(content_index) is int:
                self._playback.audio_done(item_id, content_index)

    def _on_speech_started(self, event: SpeechStarted, _now: NowMs, _heard: HeardMs) -> None:
        self._emit("speech_started", InputSpeechStarted(event.item_id, event.audio_start_ms))
        # Barge-in: the user spoke over the model. Cancel only if the server will not by itself (a
        # second cancel earns response_cancel_not_active); the I/O layer acts on the hint.
        self._barge_in = BargeIn(cancel_response=not self.server_cancels_on_speech)

    def _retrieve_changed_item(self, event: Any, _now: NowMs, _heard: HeardMs) -> None:
        if event.item_id:
            self._send({"type": "conversation.item.retrieve", "item_id": event.item_id})

    def _on_transcription_completed(self, event: InputAudioTranscriptionCompleted, now: NowMs, heard: HeardMs) -> None:
        self._emit("input_audio_transcription_completed",
                   InputTranscriptCompleted(event.item_id, event.content_index, event.transcript))
        # The user's item now has its transcript: fetch it whole (item_update follows).
        self._retrieve_changed_item(event, now, heard)

    def _on_session(self, event: SessionEvent) -> None:
        self._server_session = event.session.to_dict()
        self._update_output_format()
        if event.type == "session.created":
            self._send_tracing_update()

    # Audio out ---------------------------------------------------------------------------------------
    def _on_audio_delta(self, event: ResponseAudioDelta, now_ms: NowMs, heard_ms: HeardMs = None) -> None:
        segment = self._playback.audio(
            event.item_id, event.content_index, event.response_id, len(event.delta), now_ms, heard_ms, self._output_format
        )
        if segment is not None:
            self._events.append(("audio", _audio_record((event.delta, event.response_id, event.item_id,
                                                          event.content_index, segment.audio_format, segment.received_ms))))

    def _on_audio_done(self, event: ResponseAudioDone) -> None:
        self._playback.audio_done(event.item_id, event.content_index)
        self._emit("audio_done", AudioDone(event.response_id, event.item_id, event.content_index))

    def _on_text_delta(self, event: ResponseTextDelta, _now: NowMs = 0.0, _heard: HeardMs = None) -> None:
        # Half of a reply's events: made only when someone listens (as ``*`` and the per-type events).
        wanted = self.wanted
        emitted = _TEXT_DELTAS.get(event.type)
        if emitted is not None:
            name, record = emitted
            if wanted is None or name in wanted or WANT_ALL in wanted:
                self._events.append((name, record(event.delta, event.item_id, event.response_id)))
        elif event.type == "conversation.item.input_audio_transcription.delta":
            name = "input_audio_transcription_delta"
            if wanted is None or name in wanted or WANT_ALL in wanted:
                self._events.append((name, InputTranscriptDelta(event.item_id, event.content_index, event.delta)))

    # Interruption ------------------------------------------------------------------------------------
    def interrupt(self, now_ms: float, heard_ms: HeardMs = None, cancel: bool = True) -> bool:
        """Stop the model's audio where the user stopped hearing it.

        Sends ``response.cancel`` if ``cancel`` and a response is running (and no cancel is pending),
        then, if any received audio had not finished playing, emits ``audio_interrupted`` and sends one
        ``conversation.item.truncate`` per such item with an integer ``audio_end_ms`` clamped to the
        audio received. An item whose audio finished playing is never truncated (the player's
        ``finished`` decides when it has one). ``heard_ms`` (see :data:`HeardMs`) replaces the
        attached port for this call.

        The player is stopped through the hint ``playback_stop_expected()``: after the measure if
        something was cut (the seed's order), or, for a port that ``stops_where_heard``, before it:
        then the measure waits for ``playback_stopped(now_ms)``. Returns True if audio was truncated
        (or, waiting for the stop, may be). Does nothing while disconnected; never raises.
        """
        if self._status != "connected":
            return False
        if cancel:
            self.cancel_response()
        source = self._playback.source(heard_ms)
        if self._playback.stops_first(source):
            self._stop = _PendingStop(source)
            return True
        if not self._truncate(now_ms, source):
            return False
        if self._stop is None:
            self._stop = _PendingStop(None)
        return True

    def _truncate(self, now_ms: float, source: HeardSource) -> bool:
        truncations = self._playback.interrupt(now_ms, source)
        if not truncations:
            return False
        self._emit("audio_interrupted", AudioInterrupted(tuple(truncations)))
        for item_id, content_index, end_ms in truncations:
            self._send(
                {"type": "conversation.item.truncate", "item_id": item_id, "content_index": content_index, "audio_end_ms": end_ms}
            )
        return True

    def cancel_response(self) -> bool:
        """Send ``response.cancel`` if a response is running and none was sent for it yet; returns
        whether it was sent. Does nothing while disconnected; never raises."""
        if self._status != "connected" or not self._responses.running:
            return False
        if not self._responses.cancel():
            return False
        self._send(self._responses.cancel_event())
        return True

    # Responses ---------------------------------------------------------------------------------------
    def _on_response_created(self, event: ResponseEvent) -> None:
        response = event.response
        self._start_response(response.id, _response_output_format(response), event.model_dump())

    def _start_response(self, response_id: str, audio_format: AudioFormat | None, provider_data: dict[str, Any]) -> None:
        if self._responses.finished(response_id):
            # Its response.done came first (reordered on the way): it is over. Starting it would hold
            # every later response.create for a done that never comes.
            logger.debug("ignored the response.created of %r, which is done already", response_id)
            return
        self._to_send.extend(self._responses.created(response_id))
        if audio_format is None and self._responses.answered is not None:
            # Not echoed: the format our response.create asked for, if it named one.
            asked = self._responses.answered.get("response")
            audio_format = _response_output_format(asked) if isinstance(asked, Mapping) else None
        self._playback.response_format(response_id, audio_format)
        self._emit("turn_started", TurnStarted(response_id, provider_data))

    def _on_response_done(self, event: ResponseEvent) -> None:
        response = event.response
        # TurnDone.output keeps the items as the server sent them (typed ones are in the event).
        output = tuple(item.to_dict() for item in response.output)
        self._end_response(response.id, response.status, output, None if response.usage is None else response.usage.to_dict())

    def _end_response(self, response_id: str, status: str | None, output: tuple[Any, ...], usage_raw: Any) -> None:
        released = self._responses.done(response_id)
        self._playback.response_done(response_id)
        usage = _usage(usage_raw)
        self._emit("usage_update", usage)
        self._emit("turn_done", TurnDone(response_id, status, output, usage))
        self._to_send.extend(released)

    def _on_error(self, event: ServerErrorEvent) -> None:
        error = event.error
        handled, frames = self._responses.server_error(error.code, error.event_id, error.message)
        if not handled:
            self._emit("error", ErrorEvent(event))
        self._to_send.extend(frames)

    def request_response(self, response: Mapping[str, Any] | None = None) -> None:
        """Ask for a response: sends ``response.create`` (with ``response`` as its parameters) now, or
        holds it while a response runs or one is requested; it is sent when that one is done.
        Parameterless requests made while waiting collapse into one. ConfigurationError for
        parameters JSON cannot carry, InvalidStateError unless connected (nothing changes)."""
        event: dict[str, Any] = {"type": "response.create"}
        if response is not None:
            event["response"] = dict(response)
        self._require({"connected"}, "request_response()")
        self._request_create(event, manual=response is not None)

    def _request_create(self, event: dict[str, Any], *, manual: bool) -> None:
        self._to_send.extend(self._responses.request(event, manual=manual))

    # App calls ---------------------------------------------------------------------------------------
    def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event (a dict with a string ``type``). ``response.create`` goes through the
        sequencing (held while a response runs); a second ``response.cancel`` for the same response
        is not sent. ConfigurationError for an event that is not a client event of this dialect (an
        unknown type or field: the message names the nearest known one) or that JSON cannot carry;
        InvalidStateError unless connected. Nothing is sent on an error."""
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ConfigurationError("an event must be a dict with a string 'type', e.g. {'type': 'response.cancel'}")
        validate_client_event(event, self.dialect.name)
        self._require({"connected"}, f"send_event({event['type']!r})")
        event = dict(event)
        if event["type"] == "response.create":
            self._request_create(event, manual=True)
            return
        text = _encode(event)
        if event["type"] == "response.cancel" and not self._responses.cancel(explicit=True):
            return
        self._to_send.append(text)

    def send_audio(self, pcm: bytes | bytearray | memoryview, commit: bool = False) -> None:
        """Append audio to the input buffer: ``input_audio_buffer.append`` frames of at most
        :data:`MAX_AUDIO_APPEND_BYTES` each (then ``input_audio_buffer.commit`` if ``commit``). Ignored
        unless connected, as the seed does; never raises for audio."""
        if self._status != "connected":
            return
        view = memoryview(pcm).cast("B")
        for start in range(0, len(view), MAX_AUDIO_APPEND_BYTES):
            chunk = binascii.b2a_base64(view[start : start + MAX_AUDIO_APPEND_BYTES], newline=False)
            # base64 needs no JSON escaping: build the frame without a dict and a dumps.
            self._to_send.append('{"type":"input_audio_buffer.append","audio":"' + chunk.decode("ascii") + '"}')
        if commit:
            self._send({"type": "input_audio_buffer.commit"})

    def commit_audio(self) -> None:
        """Sends ``input_audio_buffer.commit``: the audio appended so far becomes a user item (push to
        talk). InvalidStateError unless connected."""
        self._require({"connected"}, "commit_audio()")
        self._send({"type": "input_audio_buffer.commit"})

    def clear_audio(self) -> None:
        """Sends ``input_audio_buffer.clear``: the audio appended and not committed is dropped.
        InvalidStateError unless connected."""
        self._require({"connected"}, "clear_audio()")
        self._send({"type": "input_audio_buffer.clear"})

    def delete_item(self, item_id: str) -> None:
        """Sends ``conversation.item.delete``. ConfigurationError for an empty or non-string id,
        InvalidStateError unless connected."""
        self._require({"connected"}, "delete_item()")
        self._send({"type": "conversation.item.delete", "item_id": _item_id(item_id, "delete_item")})

    def retrieve_item(self, item_id: str) -> None:
        """Sends ``conversation.item.retrieve``; the item comes back as ``item_update``.
        ConfigurationError for an empty or non-string id, InvalidStateError unless connected."""
        self._require({"connected"}, "retrieve_item()")
        self._send({"type": "conversation.item.retrieve", "item_id": _item_id(item_id, "retrieve_item")})

    def truncate_item(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Sends ``conversation.item.truncate``: the item's audio (and transcript) is cut at
        ``audio_end_ms``. ConfigurationError for a bad id or a negative/non-integer index or
        position, InvalidStateError unless connected."""
        self._require({"connected"}, "truncate_item()")
        for name, value in (("content_index", content_index), ("audio_end_ms", audio_end_ms)):
            if type(value) is not int or value < 0:
                raise ConfigurationError(f"truncate_item() needs {name} as an int >= 0, not {value!r}")
        self._send({"type": "conversation.item.truncate", "item_id": _item_id(item_id, "truncate_item"),
                    "content_index": content_index, "audio_end_ms": audio_end_ms})

    def send_mcp_response(self, approval_request_id: str, approve: bool, reason: str | None = None) -> None:
        """Answer an ``mcp_approval_request``: sends ``conversation.item.create`` with an
        ``mcp_approval_response`` item (with its own ``id``) placed after the request
        (``previous_item_id``). It starts no response: ``request_response()`` runs (or declines) the call.
        ConfigurationError for a bad id, ``approve`` that is not a bool or a non-string reason;
        InvalidStateError unless connected."""
        self._require({"connected"}, "send_mcp_response()")
        if not isinstance(approve, bool):
            raise ConfigurationError(f"send_mcp_response() needs approve=True or False, not {approve!r}")
        if reason is not None and not isinstance(reason, str):
            raise ConfigurationError("send_mcp_response() takes reason as a string")
        request_id = _item_id(approval_request_id, "send_mcp_response")
        # The API's schema requires the answer's own item id (the JS transport sends none, and a server
        # that checks the schema refuses it); 24 characters, within the API's 32.
        item: dict[str, Any] = {"type": "mcp_approval_response", "id": f"mcpresp_{os.urandom(8).hex()}",
                                "approval_request_id": request_id, "approve": approve}
        if reason is not None:
            item["reason"] = reason
        self._send({"type": "conversation.item.create", "previous_item_id": request_id, "item": item})

    def send_message(
        self,
        message: str | Mapping[str, Any],
        other_event_data: Mapping[str, Any] | None = None,
        trigger_response: bool = True,
    ) -> None:
        """Add a user message (text, or a message dict with text/image content), then ask for a response.

        Sends ``conversation.item.create`` (with ``other_event_data`` merged into the event), then a
        ``response.create`` unless ``trigger_response`` is False (held while a response runs).
        ConfigurationError for a message that is not text or a dict with content, or that JSON cannot
        carry, or an image in the beta dialect (it has none); InvalidStateError unless connected. Nothing
        is sent on an error."""
        self._require({"connected"}, "send_message()")
        item = user_message_item(message)
        if self.dialect.name == "beta" and any(
            isinstance(part, Mapping) and part.get("type") == "input_image" for part in item.get("content") or ()
        ):
            raise ConfigurationError(
                "the beta dialect has no image input (its server refuses input_image): create the transport "
                "with dialect='ga' to send images"
            )
        self._send({"type": "conversation.item.create", "item": item, **dict(other_event_data or {})})
        if trigger_response:
            self._request_create({"type": "response.create"}, manual=False)

    def add_image(self, image_url: str, trigger_response: bool = True) -> None:
        """Add an image (a data: URL or an https URL) as a user message: sends what ``send_message``
        sends, with one ``input_image`` part. ConfigurationError for an empty or non-string URL, or in
        the beta dialect (it has no image input); InvalidStateError unless connected."""
        if not isinstance(image_url, str) or not image_url:
            raise ConfigurationError("add_image() needs the image as a data: URL or an https URL string")
        self.send_message(
            {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": image_url}]},
            trigger_response=trigger_response,
        )

    def update_session_config(self, config: SessionConfig | Mapping[str, Any]) -> None:
        """Merge ``config`` into the session (each field given replaces that field) and send it as a
        ``session.update``. ConfigurationError (nothing changed) for an invalid config, a field this
        dialect does not have or a value JSON cannot carry; InvalidStateError unless connected.

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
        self, call: FunctionCall | Mapping[str, Any], output: Any, start_response: bool = True
    ) -> None:
        """Answer a ``function_call`` with its output: sends ``conversation.item.create`` with a
        ``function_call_output`` item (``output`` as JSON unless it is a string), emits its
        ``item_update``, then (by default) asks for a response. ConfigurationError for a call without a
        ``call_id`` or an output JSON cannot carry, InvalidStateError unless connected."""
        call_id, item_id, name, arguments, previous = call_fields(call)
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

    def reset_history(self, old_items: Iterable[HistoryInput], new_items: Iterable[HistoryInput]) -> None:
        """Make the server's conversation match ``new_items``, as the JS transport (0.20) does.

        Items: the session's own (``session.history``), ``ItemUpdate`` events or dicts (give old and new in
        the same kind). Sends ``conversation.item.delete`` for each item that went or changed (the API has no
        item update), then ``conversation.item.create`` for each added or changed one, in the new order: one
        that must land before an item the server keeps names the item it follows (``previous_item_id``,
        ``"root"`` for the start), so an edited or inserted item keeps its place. A session's spoken reply
        goes as the text that was heard, a spoken user turn as its transcript, a function call with its
        output as both items. ConfigurationError, before anything is sent, for what cannot be created (see
        ``_history_edits``): a dict's assistant audio, an MCP item added or changed, an image in beta, items
        JSON cannot carry. InvalidStateError unless connected.
        """
        frames = [_encode(event) for event in plan_reset_history(old_items, new_items, self.dialect.name)]
        self._require({"connected"}, "reset_history()")
        # Every frame is encoded before any is queued, so an item JSON cannot carry leaves nothing half done.
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
        kind = item.type
        done = event.type == "response.output_item.done"
        if kind == "function_call" and item.status == "completed":
            # Shown as in progress until its output is sent.
            self._emit("item_update", _item_update(item, status="in_progress"))
            self._emit(
                "function_call",
                FunctionCall(
                    id=item.id or "",
                    call_id=str(item.get("call_id") or ""),
                    name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                    response_id=event.response_id,
                ),
            )
        elif kind in _MCP_CALL_TYPES:
            self._emit("item_update", _item_update(item, status="completed" if done else "in_progress"))
        elif kind == "message":
            default = "completed" if done else "in_progress"
            self._emit("item_update", _item_update(item, status=item.status or default))

    def _on_conversation_item(self, event: ConversationItemEvent) -> None:
        item = event.item
        kind = item.type
        done = event.type == "conversation.item.done"
        if kind == "mcp_list_tools":
            # Only once done are the tools there; not an item of the history (as the JS transport).
            if done:
                tools = item.get("tools")
                self._emit("mcp_tools_listed", McpToolsListed(str(item.get("server_label") or ""),
                                                              tuple(tools) if isinstance(tools, list) else (), item.id or ""))
            return
        if kind in _MCP_CALL_TYPES:
            update = _item_update(item, status="completed" if done else "in_progress")
            self._emit("item_update", update)
            if done:
                self._emit("mcp_tool_call_completed", McpToolCall(
                    update.item_id, str(item.get("server_label") or ""), update.name or "", update.arguments or "",
                    update.output, item.get("error")))
            return
        if kind == "mcp_approval_request":
            if done:
                update = _item_update(item, status="in_progress")
                self._emit("item_update", update)
                self._emit("mcp_approval_request", McpApprovalRequest(
                    update.item_id, str(item.get("server_label") or ""), update.name or "", update.arguments or ""))
            return
        if kind not in _HISTORY_ITEM_TYPES:
            return
        previous = None if event.type == "conversation.item.retrieved" else event.previous_item_id
        default = "in_progress" if event.type == "conversation.item.added" else "completed"
        self._emit("item_update", _item_update(item, status=item.status or default, previous_item_id=previous))

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
def _item_id(value: Any, call: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{call}() needs the item's id as a non-empty string, not {value!r}")
    return value


def _response_output_format(response: Response | Mapping[str, Any]) -> AudioFormat | None:
    """A response's own output format (GA ``audio.output.format``, beta ``output_audio_format``)."""
    audio = response.get("audio")
    value = audio.get("output", {}).get("format") if isinstance(audio, Mapping) and isinstance(audio.get("output"), Mapping) else None
    if value is None:
        value = response.get("output_audio_format")
    if value is None:
        return None
    try:
        return normalize_audio_format(value)
    except ConfigurationError:
        return None


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


#: Item types whose conversation.item.* events become item_update (MCP ones are handled apart). Not
#: function_call: its item_update comes from response.output_item.done and send_function_call_output
#: (with the output), as in the JS transport; the server's copy would erase the output.
_HISTORY_ITEM_TYPES = frozenset({"message", "function_call_output", "mcp_approval_response"})
_MCP_CALL_TYPES = frozenset({"mcp_call", "mcp_tool_call"})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _item_update(item: ItemBase, *, status: Any, previous_item_id: str | None = None) -> ItemUpdate:
    content = item.get("content")
    return ItemUpdate(
        item_id=item.id or "",
        type=item.type,
        role=item.get("role"),
        status=status,
        content=tuple(content) if isinstance(content, list) else (),
        previous_item_id=previous_item_id,
        name=_text(item.get("name")),
        arguments=_text(item.get("arguments")),
        call_id=_text(item.get("call_id")),
        output=_text(item.get("output")),
        raw=item.to_dict(),
    )
