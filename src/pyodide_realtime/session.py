"""``RealtimeSession``: an agent on a Realtime connection, with tools, approvals, handoffs, guardrails and history.

Built only on the transport's public API (:class:`~pyodide_realtime.session_transport.SessionTransport`,
which :class:`~pyodide_realtime.transport.OpenAIRealtimeWebSocket` has), so it runs wherever the
transport runs (a page, a worker, CPython)::

    session = RealtimeSession(agent)             # in a page: player and microphone wired on connect
    await session.connect(api_key=mint_key)
    session.send_message("What's the weather in Paris?")
    async for event in session:                  # typed events; event.type is a string
        if event.type == "history_updated":
            render(session.history)

Tool calls of one response run concurrently; each output is sent as it is ready and the next
response is requested once, when the response is done and every call of it has answered.

The methods that are coroutines in ``openai-agents`` (``send_message``, ``send_audio``, ``interrupt``,
``approve_tool_call``, ``reject_tool_call``, ``update_agent``, ``update_history``, ``close``) work
awaited or not: they act when called and return an awaitable (``await`` is optional, and never warns).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import operator
import os
import time
from array import array
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ._agents_config import read_agents_options
from ._awaitables import DONE, Done, Running
from ._client_events import MAX_SENT_MESSAGE_BYTES
from ._emitter import EventEmitter, Handler
from ._event_queue import EventQueue
from ._history import EVENT_TYPES as HISTORY_EVENT_TYPES
from ._history import History, HistoryChange
from ._interfaces import redact
from ._platform import in_browser
from .agent import RealtimeAgent, RealtimeHandoff
from .config import SessionConfig
from .errors import ConfigurationError, InvalidStateError, ServerError
from .events import (
    AudioDone,
    AudioInterrupted,
    ErrorEvent,
    FunctionCall,
    MalformedServerEvent,
    TransportAudio,
    TurnDone,
    TurnStarted,
)
from .guardrail import OutputGuardrail, OutputGuardrailResult
from .items import AssistantMessageItem, RealtimeItem, RealtimeMCPApprovalRequestItem, RealtimeMCPListToolsItem
from .run_context import RealtimeEventInfo, RunContextWrapper, ToolContext
from .session_events import (
    ErrorOrigin,
    RealtimeAgentEndEvent,
    RealtimeAgentStartEvent,
    RealtimeAudio,
    RealtimeAudioEnd,
    RealtimeAudioInterrupted,
    RealtimeErrorEvent,
    RealtimeGuardrailTripped,
    RealtimeHandoffEvent,
    RealtimeHistoryAdded,
    RealtimeHistoryUpdated,
    RealtimeInputAudioTimeoutTriggered,
    RealtimeMCPToolsChanged,
    RealtimeRawModelEvent,
    RealtimeSessionEvent,
    RealtimeToolApprovalRequired,
    RealtimeToolEnd,
    RealtimeToolStart,
)
from .session_transport import SESSION_TRANSPORT_METHODS, SessionTransport
from .tool import FunctionTool, OwnTimeout, ToolFailure, ToolResult, own_timeouts_apart, raised_result
from .transport import ApiKey, OpenAIRealtimeWebSocket

__all__ = [
    "RealtimeSession",
    "VoiceState",
    "DEFAULT_GUARDRAIL_DEBOUNCE_CHARS",
    "DEFAULT_HOOK_TIMEOUT_S",
    "MAX_QUEUED_EVENTS",
    "MAX_QUEUED_BYTES",
]

#: What the agent is doing, as a page shows it (see :attr:`RealtimeSession.voice_state`).
VoiceState = Literal["off", "listening", "thinking", "speaking"]

logger = logging.getLogger("pyodide_realtime")

#: Guardrails run each time a reply's transcript grew by this many characters (and when it ends).
DEFAULT_GUARDRAIL_DEBOUNCE_CHARS = 100
#: Events kept for ``async for event in session``; past this the oldest are dropped (nobody reads them).
MAX_QUEUED_EVENTS = 1000
#: Bytes of audio (``audio`` events, and the deltas of ``raw_model_event``s) kept for ``async for``;
#: past this, audio events are dropped first (they already played, or nobody reads them): 8 MiB is
#: about 87 s of PCM16 at 24 kHz.
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: Seconds a user hook (``needs_approval``, ``instructions()``, ``is_enabled``, ``on_handoff``, a
#: guardrail) may take when it is async; past it, what waited on it fails with an error that says so.
DEFAULT_HOOK_TIMEOUT_S = 10.0
#: What the model is told after a guardrail stopped its reply (``openai-agents``' words).
GUARDRAIL_FEEDBACK = "guardrail triggered: {names}"
#: Tool calls of one session that may wait or run at once; more are answered with an error text.
MAX_PENDING_CALLS = 64
#: A response that ended so (interrupted, failed) is not continued after its tool calls: the user moved on.
_NOT_CONTINUED = frozenset({"cancelled", "failed"})
_PCM16_FULL_SCALE = 32768.0


@dataclass
class _Turn:
    """One response's tool calls: the next response is requested once it is done and all answered."""

    pending: int = 0
    answered: int = 0
    done: bool = False
    status: str | None = None
    continued: bool = False


@dataclass
class _Approval:
    future: asyncio.Future[tuple[bool, str | None]]
    name: str
    kind: str = "function"
    server_label: str | None = None


_T = TypeVar("_T")


#: The transports a session can make by name.
TransportName = Literal["websocket", "webrtc"]
TRANSPORT_NAMES: tuple[TransportName, ...] = ("websocket", "webrtc")


def _make_transport(kind: TransportName, *, url: str | None, model: str | None, dialect: str, microphone: bool) -> Any:
    if kind == "webrtc":
        from .webrtc import OpenAIRealtimeWebRTC

        return OpenAIRealtimeWebRTC(url=url, model=model, dialect=dialect, microphone=microphone)
    return OpenAIRealtimeWebSocket(url=url, model=model, dialect=dialect)


def _is_transport(value: object) -> bool:
    return isinstance(value, (OpenAIRealtimeWebSocket, SessionTransport)) and all(
        callable(getattr(value, name, None)) for name in SESSION_TRANSPORT_METHODS
    )


async def _resolved(value: Any) -> Any:
    """``value``, awaited if it is awaitable (a hook may be sync or async)."""
    return await value if inspect.isawaitable(value) else value


def _weight(event: RealtimeSessionEvent) -> int:
    """Bytes of audio an event holds (what bounds the queue of unread events)."""
    if isinstance(event, RealtimeAudio):
        return len(event.audio.data)
    if isinstance(event, RealtimeRawModelEvent):
        delta = getattr(event.data, "delta", None)
        return len(delta) if isinstance(delta, (str, bytes)) and event.data.type.endswith("audio.delta") else 0
    return 0


def _cancelled_by_owner() -> bool:
    """Whether the running task itself is being cancelled (close()), not only something it awaited."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


class RealtimeSession:
    """An agent talking over one Realtime connection (see the module docstring).

    ``agent``: the agent that speaks first. ``transport``: the transport to use (its listeners are
    added now; an :class:`OpenAIRealtimeWebSocket`, an :class:`OpenAIRealtimeWebRTC`, a
    ``ScriptedRealtimeTransport`` in tests, or any :class:`SessionTransport`), or which one the session
    makes from ``url``/``model``/``dialect``: ``"websocket"`` (the default) or ``"webrtc"`` (a page only;
    the transport then plays and captures the audio itself);
    and ``connect`` starts the page's player and microphone (in a browser, unless ``audio=False``;
    ``microphone=False`` for playback only). ``config``: the rest of the session config (turn
    detection, transcription...); the agent's instructions, tools and voice win over it.

    ``context``: your object, handed to tools, hooks and guardrails as ``RunContextWrapper.context``.
    ``tool_timeout``: seconds for every async tool (None: each tool's own). ``hook_timeout``: seconds
    for each async user hook (None: no limit). ``guardrail_debounce_chars``: guardrails run each time
    the reply grew by this many characters. ``restore_history_on_reconnect``: after the transport
    reconnects, put the conversation as heard back into the new server session (``reset_history``).
    ``max_queued_events``/``max_queued_bytes``: the bound of unread events (see :attr:`dropped_events`).
    ``raw_model_events``: put a ``raw_model_event`` for every server event in ``async for`` (default:
    in CPython yes, as ``openai-agents`` does; in a page no, where each event's cost counts;
    ``on("raw_model_event", ...)`` listeners get them either way).

    As in ``openai-agents``: ``model=`` may be a transport instead of a model name, and
    ``model_config`` (``api_key``, ``url``, ``initial_model_settings``, ``call_id``) and ``run_config``
    (``model_settings``, ``output_guardrails``, ``guardrails_settings``, ``tracing_disabled``,
    ``async_tool_calls``) are taken; any other key is refused.
    """

    def __init__(
        self,
        agent: RealtimeAgent[Any] | None = None,
        *,
        transport: OpenAIRealtimeWebSocket | SessionTransport | TransportName | None = None,
        config: SessionConfig | Mapping[str, Any] | None = None,
        api_key: ApiKey | None = None,
        url: str | None = None,
        model: str | OpenAIRealtimeWebSocket | SessionTransport | None = None,
        dialect: str = "ga",
        audio: bool | None = None,
        microphone: bool = True,
        tool_timeout: float | None = None,
        hook_timeout: float | None = DEFAULT_HOOK_TIMEOUT_S,
        guardrail_debounce_chars: int = DEFAULT_GUARDRAIL_DEBOUNCE_CHARS,
        context: Any = None,
        model_config: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        restore_history_on_reconnect: bool = True,
        max_queued_events: int = MAX_QUEUED_EVENTS,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        raw_model_events: bool | None = None,
    ) -> None:
        if agent is None:
            raise ConfigurationError("RealtimeSession needs an agent: RealtimeSession(agent), or RealtimeRunner(agent).run()")
        if not isinstance(agent, RealtimeAgent):
            raise ConfigurationError(
                f"RealtimeSession needs a RealtimeAgent first, not {type(agent).__name__} "
                "(openai-agents' RealtimeSession(model, agent) order is RealtimeSession(agent, model=transport) here)"
            )
        if model is not None and not isinstance(model, str):
            if not _is_transport(model):
                raise ConfigurationError(
                    f"model= takes the model's name (a str) or a transport (an OpenAIRealtimeWebSocket), not {type(model).__name__}; "
                    "openai-agents' model classes do not run here: drop model= or pass OpenAIRealtimeWebSocket(...)"
                )
            if transport is not None:
                raise ConfigurationError("pass the transport once: as transport= or as model=, not both")
            transport, model = model, None
        kind: TransportName = "websocket"
        if isinstance(transport, str):
            if transport not in TRANSPORT_NAMES:
                raise ConfigurationError(f"transport= takes 'websocket', 'webrtc' or a transport object, not {transport!r}")
            kind = "webrtc" if transport == "webrtc" else "websocket"
            transport = None
        if transport is not None and not _is_transport(transport):
            raise ConfigurationError(
                f"transport= takes 'websocket', 'webrtc', an OpenAIRealtimeWebSocket (or an object with the methods of "
                f"SessionTransport), not {type(transport).__name__}"
            )
        for name, value, low in (
            ("guardrail_debounce_chars", guardrail_debounce_chars, 1),
            ("max_queued_events", max_queued_events, 1),
            ("max_queued_bytes", max_queued_bytes, 0),
        ):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ConfigurationError(f"{name} must be an int >= {low}, not {value!r}")
        if hook_timeout is not None and not (isinstance(hook_timeout, (int, float)) and hook_timeout > 0 and math.isfinite(hook_timeout)):
            raise ConfigurationError(f"hook_timeout must be a positive number of seconds or None, not {hook_timeout!r}")
        agents = read_agents_options(run_config, model_config)
        model = model or agents.model
        url = url or agents.url
        if agents.debounce_chars is not None:
            guardrail_debounce_chars = agents.debounce_chars
        if not (isinstance(guardrail_debounce_chars, int) and guardrail_debounce_chars > 0):
            raise ConfigurationError("guardrail_debounce_chars must be a positive number of characters")
        self._config = SessionConfig.coerce(agents.settings).merged(config)
        self._agent = agent
        self._owns_transport = transport is None
        self.transport: Any = transport or _make_transport(kind, url=url, model=model, dialect=dialect, microphone=microphone)
        self._connect_url = None if self._owns_transport else url
        self._connect_model = None if self._owns_transport else model
        self._call_id = agents.call_id
        self._api_key = api_key if api_key is not None else agents.api_key
        self._audio = in_browser() if audio is None else bool(audio)
        self._microphone = microphone
        self._tool_timeout = tool_timeout
        self._hook_timeout = hook_timeout
        self._debounce = guardrail_debounce_chars
        self._extra_guardrails = agents.guardrails
        self._restore_history = bool(restore_history_on_reconnect)
        #: Your ``context``, wrapped (``.context``), with the session's running token totals (``.usage``).
        self.context_wrapper: RunContextWrapper[Any] = RunContextWrapper(context)
        self._info = RealtimeEventInfo(self.context_wrapper)
        #: The page's player and microphone (a ``VoiceConversation``) once ``connect`` started them.
        self.voice: Any = None
        self._history = History()
        self._emitter = EventEmitter(self._on_listener_error)
        self._queue: EventQueue[RealtimeSessionEvent] = EventQueue(max_queued_events, max_queued_bytes, _weight)
        self._raw_events = not in_browser() if raw_model_events is None else bool(raw_model_events)
        self._closed = False
        self._spoken = False  # the model has produced audio: the voice can no longer change
        self._turns: dict[str, _Turn] = {}
        self._calls: dict[str, FunctionCall] = {}  # call_id -> the call running (or waiting) under it
        self._approvals: dict[str, _Approval] = {}
        self._always: dict[str, bool] = {}  # tool name -> approved (True) / rejected (False) for the session
        self._tasks: set[asyncio.Task[Any]] = set()
        self._offered_tools: dict[str, FunctionTool] = {}
        self._offered_handoffs: dict[str, RealtimeHandoff] = {}
        self._guarded: dict[str, int] = {}  # assistant item id -> transcript length last checked
        self._guarding: set[str] = set()  # items whose guardrails run now (at most one run each)
        self._guard_next: dict[str, str] = {}  # item id -> the latest text to judge once that run ends
        self._tripped: set[str] = set()
        self._running_response: str | None = None
        self._feedback_after: dict[str, str] = {}  # response id -> guardrail feedback sent at its response.done
        self._mcp_tools: dict[str, tuple[dict[str, Any], ...]] = {}
        self._turn_ended_at: float | None = None  # when the user's turn ended, until the reply is heard
        self._receiving_audio = False
        self._response_audio = False  # the running response has sent audio
        self._input_level = 0.0
        #: Milliseconds from the end of the user's last turn to the first audio of the reply heard
        #: (played, with the page's player; received, without one). None until a turn was measured.
        self.last_turn_latency_ms: float | None = None
        self._unsubscribe = [
            self.transport.on(name, handler)
            for name, handler in (
                ("*", self._on_server_event),
                ("audio", self._on_audio),
                ("audio_done", self._on_audio_done),
                ("audio_interrupted", self._on_audio_interrupted),
                ("function_call", self._on_function_call),
                ("turn_started", self._on_turn_started),
                ("turn_done", self._on_turn_done),
                ("error", self._on_transport_error),
                ("disconnected", self._on_disconnected),
                ("reconnected", self._on_reconnected),
                ("reconnect_failed", self._on_reconnect_failed),
            )
        ]
        if self.transport.status == "connected":
            self._spawn(self._apply_agent(agent, initial=False))

    # State ---------------------------------------------------------------------------------------
    @property
    def agent(self) -> RealtimeAgent[Any]:
        """The agent speaking now (it changes on a handoff or ``update_agent``)."""
        return self._agent

    @property
    def history(self) -> Sequence[RealtimeItem]:
        """Every item of the conversation, in the server's order: an immutable snapshot, equal to the tuple
        of its items, that costs O(blocks) rather than O(items) to take (see ``history_updated``)."""
        return self._history.snapshot

    @property
    def pending_approvals(self) -> tuple[str, ...]:
        """Call ids (or MCP approval request ids) waiting for ``approve_tool_call``/``reject_tool_call``."""
        return tuple(self._approvals)

    @property
    def model(self) -> Any:
        """The transport (``openai-agents`` calls its transport the session's model)."""
        return self.transport

    @property
    def usage(self) -> Any:
        """The session's running token totals (``context_wrapper.usage``): ``requests``, ``input_tokens``,
        ``output_tokens``, ``total_tokens``, added up at each ``response.done``."""
        return self.context_wrapper.usage

    @property
    def dropped_events(self) -> int:
        """Events dropped unread: past ``max_queued_events`` the oldest, past ``max_queued_bytes`` of
        audio the newest audio. Listeners (``on``) got them all; only ``async for`` missed them."""
        return self._queue.dropped

    # Connecting ----------------------------------------------------------------------------------
    async def connect(
        self, api_key: ApiKey | None = None, *, url: str | None = None, model: str | None = None, timeout: float | None = None
    ) -> RealtimeSession:
        """Connect with the agent's config; in a page (unless ``audio=False``) start player and microphone.

        ``api_key`` as for the transport: a key, or a sync/async function returning one (mint an
        ephemeral ``ek_`` key for a page). Returns the session. Raises what ``transport.connect`` raises.
        """
        if self._closed:
            raise InvalidStateError("this session was closed: make a new RealtimeSession")
        config, tools, handoffs = await self._agent_config(self._agent, with_voice=True)
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        if self._call_id is not None:
            options["call_id"] = self._call_id
        self._queue.reopen()
        await self.transport.connect(
            api_key=api_key if api_key is not None else self._api_key,
            model=model or self._connect_model,
            url=url or self._connect_url,
            initial_session_config=self._config.merged(config),
            **options,
        )
        self._offered_tools, self._offered_handoffs = tools, handoffs
        if self._audio and self.voice is None and not getattr(self.transport, "owns_audio_devices", False):
            await self._start_voice()
        return self

    async def _start_voice(self) -> None:
        from .audio import start_voice  # browser only: imported when a page asks for voice

        transport = self.transport
        try:
            voice = await start_voice(transport, microphone=self._microphone)
        except Exception as exc:  # no microphone (refused, absent) or no audio output at all: try without the mic
            if not self._microphone:
                self._error("audio", f"audio is off: {exc}. You can still type", exc)
                return
            try:
                voice = await start_voice(transport, microphone=False)
            except Exception as again:  # the audio output itself failed: the microphone was not the cause
                self._error("audio", f"audio is off: {again}. You can still type", again)
                return
            if not self._closed:
                self._error(
                    "microphone",
                    f"voice input is off: {exc}. You can still type; to ask for the microphone again, close this session "
                    "and connect a new one",
                    exc,
                )
        if self._closed or transport.status != "connected":
            voice.close()  # hung up while the microphone prompt was open
            return
        self.voice = voice
        mic = voice.microphone
        send = mic.on_chunk if mic is not None else None
        if mic is not None and send is not None and mic.audio_format == "pcm16":

            def metered(chunk: bytes) -> Any:  # the level meter hears each chunk on its way to the server
                self._measure(chunk)
                return send(chunk)

            mic.on_chunk = metered

    def _measure(self, chunk: bytes) -> None:
        samples = array("h", chunk[: len(chunk) // 2 * 2])
        if samples:
            rms = math.sqrt(sum(map(operator.mul, samples, samples)) / len(samples)) / _PCM16_FULL_SCALE
            self._input_level = max(self._input_level, min(1.0, math.sqrt(rms)))

    # Voice state ---------------------------------------------------------------------------------
    @property
    def voice_state(self) -> VoiceState:
        """``off`` (not connected), ``listening``, ``thinking`` (the user's turn ended and no reply is heard
        yet) or ``speaking`` (the reply's audio plays; without a player: arrives).

        Reading it also measures :attr:`last_turn_latency_ms` when a reply has begun playing: a page polls it.
        """
        if self.transport.status != "connected":
            return "off"
        played = self._played_ms()
        if played is None:
            return "thinking" if self._turn_ended_at is not None else "listening"
        self._measure_latency(played)
        return "speaking"

    def _measure_latency(self, played_ms: float) -> None:
        if self._turn_ended_at is not None:  # the reply began playing ``played_ms`` ago
            self.last_turn_latency_ms = max(0.0, _now_ms() - played_ms - self._turn_ended_at)
            self._turn_ended_at = None

    def _played_ms(self) -> float | None:
        """How long the reply now sounding has played; None when nothing sounds."""
        player = getattr(self.voice, "player", None)
        if player is None:
            return 0.0 if self._receiving_audio else None
        playing = player.playing
        return None if playing is None else float(playing.heard_ms)

    @property
    def input_level(self) -> float:
        """The microphone's loudest chunk since the last read, 0..1 (the square root of its RMS: nearer to
        how loud it sounds); 0 without the session's microphone."""
        level, self._input_level = self._input_level, 0.0
        return level

    def _end_turn(self) -> None:
        self._turn_ended_at = _now_ms()

    def close(self) -> Done:
        """Hang up: stop tool calls and approvals, release player and microphone, close the connection.

        ``async for`` loops end after the events already queued. Idempotent. Returns at once, awaited or
        not: a tool that ignores its cancellation runs on, unheard (its output is never sent).
        """
        if self._closed:
            return DONE
        self._closed = True
        self._stop_work()
        if self._owns_transport or self.transport.status != "disconnected" or self.transport.reconnecting:
            self.transport.close()  # a pending reconnect too: nobody would listen to its connection
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._end()
        return DONE

    def _stop_work(self) -> None:
        self._stop_calls()
        if self.voice is not None:
            voice, self.voice = self.voice, None
            try:
                voice.close()
            except Exception as exc:  # releasing devices must not stop the hang-up
                logger.warning("closing the audio failed: %s", exc)

    def _stop_calls(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for approval in self._approvals.values():
            if not approval.future.done():
                approval.future.cancel()
        self._approvals.clear()
        self._turns.clear()
        self._calls.clear()

    async def __aenter__(self) -> RealtimeSession:
        """Connect unless connected (as ``openai-agents`` does); close on exit.

        The key is the session's ``api_key`` (or ``model_config["api_key"]``), else the given transport's
        own, else (CPython, a transport the session made) the ``OPENAI_API_KEY`` environment variable.
        """
        if self.transport.status == "disconnected":
            key = self._api_key
            if key is None and self._owns_transport and not in_browser():  # a given transport keeps its own key
                key = os.environ.get("OPENAI_API_KEY") or None
            await self.connect(key)
        return self

    async def enter(self) -> RealtimeSession:
        """``async with`` without the block: connect (see ``__aenter__``); call ``close()`` when done."""
        return await self.__aenter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # Talking -------------------------------------------------------------------------------------
    def send_message(self, message: str | Mapping[str, Any]) -> Done:
        """Add a user message (text, or a message dict) and ask the agent to reply. ConfigurationError for
        a malformed message, InvalidStateError unless connected (both raised here, awaited or not)."""
        self.transport.send_message(message)
        self._end_turn()
        return DONE

    def send_audio(self, audio: bytes | bytearray | memoryview, *, commit: bool = False) -> Done:
        """Append microphone audio (PCM16 24 kHz mono by default); ``commit`` ends the user's turn.
        Ignored unless connected."""
        self.transport.send_audio(audio, commit=commit)
        if commit:
            self._end_turn()
        return DONE

    def interrupt(self) -> Done:
        """Stop the agent: cancel its reply and cut its audio where the user stopped hearing it (the
        history item keeps the part heard). Does nothing when nothing is playing or running."""
        self.transport.interrupt()
        return DONE

    def mute(self, muted: bool) -> None:
        """Mute or unmute the microphone (raises UnsupportedError without one)."""
        self.transport.mute(muted)

    def update_agent(self, agent: RealtimeAgent[Any]) -> Running:
        """Switch to ``agent``: its instructions and tools (and voice, until the model first spoke).

        ConfigurationError at once for a non-agent. The switch runs as a task (its instructions may be
        async): ``await`` it to wait and to get its error (a hook that failed or timed out); not
        awaited, an error comes as an ``error`` event of origin ``hook``.
        """
        if not isinstance(agent, RealtimeAgent):
            raise ConfigurationError(f"update_agent() takes a RealtimeAgent, not {type(agent).__name__}")
        agent.check()
        return Running(self._start(self._apply_agent(agent, initial=False), f"switching to {agent.name}"))

    def update_history(
        self, history: Sequence[RealtimeItem] | Callable[[tuple[RealtimeItem, ...]], Sequence[RealtimeItem]]
    ) -> Done:
        """Make the server's conversation ``history`` (items of :attr:`history`, kept, dropped or
        reordered, and new ones), or ``history(current)``'s result. Sends the deletions and creations
        through ``transport.reset_history``; the local history follows the server's events. Raises what
        that raises (ConfigurationError for an item it cannot send, InvalidStateError unless connected)."""
        current = self.history
        wanted = history(tuple(current)) if callable(history) else history
        if isinstance(wanted, (str, bytes, Mapping)) or not isinstance(wanted, Sequence):
            raise ConfigurationError("update_history() takes a list of history items (or a function returning one)")
        self.transport.reset_history(current, list(wanted))
        return DONE

    async def _hook(self, awaitable: Awaitable[_T], what: str) -> _T:
        """Await a user hook within ``hook_timeout``; its own TimeoutError stays its own."""
        if self._hook_timeout is None:
            return await awaitable
        try:
            return await asyncio.wait_for(own_timeouts_apart(awaitable), self._hook_timeout)
        except OwnTimeout as wrapped:
            raise (wrapped.__cause__ or wrapped) from None
        except TimeoutError:
            raise TimeoutError(
                f"{what} did not answer within {self._hook_timeout:g} s; make it answer sooner, or pass a longer hook_timeout="
            ) from None

    async def _agent_config(
        self, agent: RealtimeAgent[Any], *, with_voice: bool
    ) -> tuple[dict[str, Any], dict[str, FunctionTool], dict[str, RealtimeHandoff]]:
        """The session config of ``agent`` and the tools and handoffs it offers (``is_enabled`` asked now)."""
        agent.check()
        context = self.context_wrapper
        tools: dict[str, FunctionTool] = {}
        definitions: list[dict[str, Any]] = []
        for tool in agent.tools:
            if not isinstance(tool, FunctionTool):
                definitions.append(dict(tool))
            elif await self._hook(tool.enabled(context, agent), f"is_enabled of {tool.name}"):
                tools[tool.name] = tool
                definitions.append(tool.definition)
        handoffs: dict[str, RealtimeHandoff] = {}
        for handoff in agent.handoff_tools:
            if await self._hook(handoff.enabled(context, agent), f"is_enabled of {handoff.tool_name}"):
                handoffs[handoff.tool_name] = handoff
                definitions.append(handoff.definition)
        config: dict[str, Any] = {**agent.session_config, "tools": definitions}
        instructions = await self._hook(agent.get_instructions(context), f"the instructions of {agent.name}")
        if instructions is not None:
            config["instructions"] = instructions
        if agent.voice is not None and with_voice:
            config["voice"] = agent.voice
        return config, tools, handoffs

    async def _apply_agent(self, agent: RealtimeAgent[Any], *, initial: bool) -> None:
        voice_allowed = not self._spoken
        if agent.voice is not None and agent.voice != self._agent.voice and not voice_allowed:
            logger.warning("%s keeps the session's voice: the API refuses a voice change once the model has spoken", agent.name)
        config, tools, handoffs = await self._agent_config(agent, with_voice=voice_allowed and agent.voice is not None)
        self._agent = agent
        self._offered_tools, self._offered_handoffs = tools, handoffs
        if self.transport.status == "connected":
            self.transport.update_session_config(config)

    # Approvals -----------------------------------------------------------------------------------
    def approve_tool_call(self, call_id: str, *, always: bool = False) -> Done:
        """Let a waiting call run (``always``: every later call of that tool too, in this session).
        InvalidStateError for a call id that is not waiting (answered already, or never asked); after
        ``close()`` it does nothing."""
        self._answer(call_id, True, None, always)
        return DONE

    def reject_tool_call(self, call_id: str, *, always: bool = False, rejection_message: str | None = None) -> Done:
        """Refuse a waiting call; the model is told (``rejection_message``, or a default text).
        InvalidStateError for a call id that is not waiting; after ``close()`` it does nothing."""
        self._answer(call_id, False, rejection_message, always)
        return DONE

    def _answer(self, call_id: str, approve: bool, message: str | None, always: bool) -> None:
        if self._closed:  # hung up: every call ended unanswered; a late button press has nothing to answer
            return
        approval = self._approvals.pop(call_id, None)
        if approval is None:
            raise InvalidStateError(
                f"no tool call {call_id!r} is waiting for approval (waiting: {', '.join(self._approvals) or 'none'}); "
                "answer the call_id of a tool_approval_required event once"
            )
        if always:
            self._always[approval.name] = approve
        if approval.kind == "mcp":
            self._answer_mcp(call_id, approve, message)
        elif not approval.future.done():
            approval.future.set_result((approve, message))

    def _answer_mcp(self, request_id: str, approve: bool, reason: str | None) -> None:
        self.transport.send_mcp_response(request_id, approve, reason or None)
        self._apply_history(self._history.approval(request_id, approve))
        # An item alone starts no response: ask for the one that runs (or declines) the tool call.
        self.transport.request_response()

    # Iterating -----------------------------------------------------------------------------------
    def on(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of ``event_type`` (sync or async); returns an unsubscribe."""
        return self._emitter.on(event_type, handler)

    def off(self, event_type: str, handler: Handler | None = None) -> None:
        self._emitter.off(event_type, handler)

    def __aiter__(self) -> RealtimeSession:
        return self

    async def __anext__(self) -> RealtimeSessionEvent:
        """The next event; the loop ends once the session is closed or disconnected and all were read."""
        return await self._queue.get()

    def _emit(self, event: RealtimeSessionEvent) -> None:
        # Events are frozen; the context they happened in is set here, the one place all pass through.
        object.__setattr__(event, "info", self._info)
        self._queue.put(event)
        self._emitter.emit(event.type, event)

    def _end(self) -> None:
        self._queue.end()

    def _error(
        self,
        origin: ErrorOrigin,
        message: str,
        exception: BaseException | None = None,
        *,
        call_id: str | None = None,
        item_id: str | None = None,
    ) -> None:
        # A server's error text may quote the key (invalid_api_key does): redacted before any record or event.
        message = redact(message)
        logger.warning("%s error: %s", origin, message)
        self._emit(RealtimeErrorEvent(origin, message, exception, call_id, item_id))

    def _on_listener_error(self, name: str, error: BaseException) -> None:
        if name != "error":  # an error listener that raises must not loop
            self._error("transport", f"a listener for {name!r} raised {type(error).__name__}: {error}; fix the listener", error)

    # Transport events ----------------------------------------------------------------------------
    def _on_server_event(self, event: Any) -> None:
        kind = event.type
        # Made only when wanted (in a page every event's cost counts). A server error comes as an
        # error event instead, its text redacted.
        if kind != "error" and (self._raw_events or "raw_model_event" in self._emitter.wanted):
            self._emit(RealtimeRawModelEvent(event))
        if kind in HISTORY_EVENT_TYPES:
            data = event.model_dump()
            self._apply_history(self._history.receive(kind, data, frozenset(event.model_fields_set)))
            if kind == "conversation.item.input_audio_transcription.failed":
                detail = (data.get("error") or {}).get("message") or "no detail"
                self._error(
                    "server",
                    f"the user's speech could not be transcribed ({detail}); the reply still comes",
                    item_id=data.get("item_id"),
                )
        elif kind == "input_audio_buffer.speech_stopped":
            self._end_turn()  # the server's VAD heard the end of the user's speech
        elif kind == "input_audio_buffer.speech_started":
            self._turn_ended_at = None
        elif kind == "input_audio_buffer.timeout_triggered":
            self._emit(RealtimeInputAudioTimeoutTriggered())
        elif kind in ("response.mcp_call.failed", "mcp_list_tools.failed"):
            self._error(
                "mcp",
                f"a hosted MCP tool failed ({kind}); check the MCP server's URL and its tools",
                item_id=getattr(event, "item_id", None),
            )

    def _apply_history(self, changes: list[HistoryChange]) -> None:
        for change in changes:
            item = change.item
            if change.added:
                self._emit(RealtimeHistoryAdded(item))
                if isinstance(item, RealtimeMCPApprovalRequestItem):
                    self._mcp_approval(item)
            if isinstance(item, RealtimeMCPListToolsItem) and item.tools and self._mcp_tools.get(item.item_id) != item.tools:
                self._mcp_tools[item.item_id] = item.tools
                every = tuple(tool for tools in self._mcp_tools.values() for tool in tools)
                self._emit(RealtimeMCPToolsChanged(item.server_label, every))
            if change.removed:
                self._guarded.pop(item.item_id, None)
                self._guard_next.pop(item.item_id, None)
                self._tripped.discard(item.item_id)
            elif isinstance(item, AssistantMessageItem):
                self._check_guardrails(item)
        if changes:
            self._emit(RealtimeHistoryUpdated(self._history.snapshot, changes[-1].item))

    def _on_audio(self, audio: TransportAudio) -> None:
        self._spoken = True
        self._receiving_audio = self._response_audio = True
        if self.voice is None:  # no player to say when it sounds: the first audio received counts
            self._measure_latency(0.0)
        self._apply_history(self._history.audio_received(audio.item_id, audio.received_ms))  # the core's count
        self._emit(RealtimeAudio(audio, audio.item_id, audio.content_index))

    def _on_audio_done(self, done: AudioDone) -> None:
        self._receiving_audio = False
        self._emit(RealtimeAudioEnd(done.item_id, done.content_index))

    def _on_audio_interrupted(self, interrupted: AudioInterrupted) -> None:
        self._receiving_audio = False
        for item_id, content_index, end_ms in interrupted.truncated:
            self._apply_history(self._history.interrupted(item_id, float(end_ms)))
            self._emit(RealtimeAudioInterrupted(item_id, content_index, float(end_ms)))

    def _on_turn_started(self, turn: TurnStarted) -> None:
        self._response_audio = False
        self._running_response = turn.response_id
        self._emit(RealtimeAgentStartEvent(self._agent))

    def _on_turn_done(self, done: TurnDone) -> None:
        self._receiving_audio = False
        if self._running_response == done.response_id:
            self._running_response = None
        if done.status != "cut":  # a response lost with the connection was never counted
            self.context_wrapper.usage.add(done.usage)
        turn = self._turns.get(done.response_id)
        if turn is None and not self._response_audio:
            self._turn_ended_at = None  # a reply with nothing to hear and no tool to wait for: not thinking any more
        if turn is not None:
            turn.done, turn.status = True, done.status
            self._maybe_continue(done.response_id, turn)
        for item in done.output:
            item_id = item.get("id") if isinstance(item, Mapping) else None
            current = self._history.get(item_id) if isinstance(item_id, str) else None
            if isinstance(current, AssistantMessageItem):
                self._check_guardrails(current, final=True)
        self._emit(RealtimeAgentEndEvent(self._agent))
        feedback = self._feedback_after.pop(done.response_id, None)
        if feedback is not None:  # the cut reply is done: now the model may hear why
            self._send_feedback(feedback)

    def _on_transport_error(self, error: ErrorEvent) -> None:
        exception = error.exception
        if isinstance(exception, ServerError):  # the server refused something that was sent
            code = exception.code or exception.error.get("type") or "error"
            if isinstance(error.error, MalformedServerEvent):  # not a refusal: nothing the app sent was wrong
                self._error("server", f"{error.error.message}; it was used as far as it fits, and the session goes on", exception)
                return
            self._error(
                "server",
                f"the server refused a request ({code}): {exception}. The session goes on; fix the request that caused it",
                exception,
            )
        else:
            # Its own words say what happened and what to do; the status read now may be the one it ends.
            self._error("transport", str(exception), exception)

    def _on_disconnected(self, _change: Any) -> None:
        if self.transport.reconnecting:
            # The transport comes back by itself (reconnect=): the lost response's calls and approvals
            # end, the voice and the loops stay for the new connection (reconnect_failed ends them).
            self._stop_calls()
            return
        self._stop_work()
        self._end()

    def _on_reconnected(self, _reconnected: Any) -> None:
        # The new server session starts empty: give it the conversation as the user heard it.
        items = list(self.history)
        if not self._restore_history or not items:
            return
        try:
            self.transport.reset_history((), items)
        except Exception as exc:  # the conversation goes on, without its past
            self._error(
                "transport",
                f"the conversation could not be restored after the reconnect ({exc}); the model starts afresh",
                exc,
            )

    def _on_reconnect_failed(self, _failed: Any) -> None:
        self._stop_work()
        self._end()

    # Tool calls ----------------------------------------------------------------------------------
    def _on_function_call(self, call: FunctionCall) -> None:
        if call.call_id in self._calls:
            # Two calls under one id: an approval or an output could then reach the wrong one. The
            # first runs as it was shown; this one is refused, and the model is told.
            text = f"Error: call_id {call.call_id!r} is already used by a running call; this call was not run. Use a new call_id"
            self._error("tool", f"the model reused call_id {call.call_id!r} while that call runs; the second call ({call.name}) was not run", call_id=call.call_id)
            if self.transport.status == "connected":
                self.transport.send_function_call_output(call, text, start_response=False)
            return
        turn = self._turns.setdefault(call.response_id, _Turn())
        if sum(t.pending for t in self._turns.values()) >= MAX_PENDING_CALLS:
            self._finish_call(
                call, turn, ToolResult(f"Error: too many tool calls at once (over {MAX_PENDING_CALLS}); try again later")
            )
            return
        turn.pending += 1
        self._calls[call.call_id] = call
        self._spawn(self._run_call(call, turn))

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)  # held: asyncio keeps only weak references to tasks
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._error("transport", f"the session failed internally ({type(exc).__name__}: {exc}); please report it", exc)

    def _start(self, coroutine: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        """A task for work a user may await (its error reaches the awaiter, and an ``error`` event)."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                self._error("hook", f"{what} failed ({type(exc).__name__}: {exc})", exc)

        task.add_done_callback(done)
        return task

    async def _run_call(self, call: FunctionCall, turn: _Turn) -> None:
        try:
            await self._answer_call(call, turn)
        finally:
            if self._calls.get(call.call_id) is call:
                del self._calls[call.call_id]

    async def _answer_call(self, call: FunctionCall, turn: _Turn) -> None:
        agent = self._agent
        handoff = self._offered_handoffs.get(call.name)
        tool = self._offered_tools.get(call.name)
        try:
            if handoff is not None:
                result = await self._handoff(agent, handoff, call)
            elif tool is None:
                known = ", ".join([*self._offered_tools, *self._offered_handoffs]) or "none"
                failure = ToolFailure(
                    "unknown_tool", f"there is no tool named {call.name!r} (the tools are: {known}); call one of those"
                )
                result = ToolResult(f"Error: {failure.message}", failure)
            else:
                result = await self._call_tool(agent, tool, call)
        except asyncio.CancelledError as exc:
            if _cancelled_by_owner():  # the session is closing: the call ends unanswered
                turn.pending -= 1
                raise
            result = raised_result(call.name, exc)  # the tool awaited something someone else cancelled
        except Exception as exc:  # needs_approval raised, a handoff's agent could not be applied...
            result = raised_result(call.name, exc)
        if result.failure is not None:
            self._error(
                "tool", f"tool call {call.name} failed: {result.failure.message}", result.failure.exception, call_id=call.call_id
            )
        turn.pending -= 1
        try:
            self._finish_call(call, turn, result)
        except Exception as exc:  # the output could not be sent (the connection went): say so, end the turn
            self._error("transport", f"the output of {call.name} could not be sent ({exc}); the reply stops here", exc)
            self._turns.pop(call.response_id, None)

    async def _call_tool(self, agent: RealtimeAgent[Any], tool: FunctionTool, call: FunctionCall) -> ToolResult:
        values = tool.parse_arguments(call.arguments)
        if isinstance(values, ToolFailure):
            return ToolResult(f"Error: {values.message}", values)
        needed = tool.approval_needed(values, self.context_wrapper, call.call_id)
        if await self._hook(needed, f"needs_approval of {tool.name}"):
            approved, message = await self._approval(agent, tool, call)
            if not approved:
                text = message or f"The user did not allow {tool.name} to run; do not call it again for this request."
                # Not an error: the person said no. The model is told, and the call ends.
                self._emit(RealtimeToolEnd(agent, tool, call.call_id, text, failed=True, arguments=call.arguments))
                return ToolResult(text)
        self._emit(RealtimeToolStart(agent, tool, call.call_id, call.arguments))
        wrapper = self.context_wrapper
        context = ToolContext(wrapper.context, wrapper.usage, tool.name, call.call_id, call.arguments)
        result = await tool.run(values, timeout=self._tool_timeout, context=context)
        failed = result.failure is not None
        self._emit(RealtimeToolEnd(agent, tool, call.call_id, result.output, failed=failed, arguments=call.arguments))
        return result

    async def _approval(self, agent: RealtimeAgent[Any], tool: FunctionTool, call: FunctionCall) -> tuple[bool, str | None]:
        if tool.name in self._always:
            return self._always[tool.name], None
        future: asyncio.Future[tuple[bool, str | None]] = asyncio.get_running_loop().create_future()
        self._approvals[call.call_id] = _Approval(future, tool.name)
        self._emit(RealtimeToolApprovalRequired(agent, call.call_id, tool.name, call.arguments, "function", tool))
        try:
            return await future
        finally:
            self._approvals.pop(call.call_id, None)

    def _mcp_approval(self, item: RealtimeMCPApprovalRequestItem) -> None:
        if item.name in self._always:
            self._answer_mcp(item.item_id, self._always[item.name], None)
            return
        future: asyncio.Future[tuple[bool, str | None]] = asyncio.get_running_loop().create_future()
        self._approvals[item.item_id] = _Approval(future, item.name, "mcp", item.server_label)
        self._emit(
            RealtimeToolApprovalRequired(self._agent, item.item_id, item.name, item.arguments, "mcp", None, item.server_label)
        )

    async def _handoff(self, from_agent: RealtimeAgent[Any], handoff: RealtimeHandoff, call: FunctionCall) -> ToolResult:
        value = handoff.parse_input(call.arguments)
        if handoff.on_handoff is not None:
            arguments = (self.context_wrapper, value) if handoff.input_type is not None else (self.context_wrapper,)
            await self._hook(_resolved(handoff.on_handoff(*arguments)), f"on_handoff of {handoff.tool_name}")
        await self._apply_agent(handoff.agent, initial=False)
        self._emit(RealtimeHandoffEvent(from_agent, handoff.agent))
        return ToolResult(json.dumps({"assistant": handoff.agent.name}))

    def _finish_call(self, call: FunctionCall, turn: _Turn, result: ToolResult) -> None:
        if self.transport.status != "connected":
            logger.info("the output of %s was not sent: the session is disconnected", call.name)
            return
        output = result.output
        try:
            self.transport.send_function_call_output(call, output, start_response=False)
        except ConfigurationError as exc:
            # An output over the client-event bound (MAX_SENT_MESSAGE_BYTES) is refused before sending:
            # the model hears a short error naming the limit instead, so the turn goes on.
            output = f"Error: the output of {call.name} was not sent: {len(output)} characters, over the {MAX_SENT_MESSAGE_BYTES}-byte limit of a client event. Return less"
            self._error("tool", f"{call.name} returned an output the transport refused ({exc}); the model was told it was too large", exc, call_id=call.call_id)
            self.transport.send_function_call_output(call, output, start_response=False)
        self._apply_history(self._history.call_output(call.call_id, output))
        turn.answered += 1
        self._maybe_continue(call.response_id, turn)

    def _maybe_continue(self, response_id: str, turn: _Turn) -> None:
        if not turn.done or turn.pending > 0:
            return
        self._turns.pop(response_id, None)
        if turn.answered and not turn.continued and turn.status not in _NOT_CONTINUED:
            turn.continued = True
            self.transport.request_response()

    # Guardrails ----------------------------------------------------------------------------------
    def _guardrails(self) -> tuple[OutputGuardrail, ...]:
        own = tuple(self._agent.output_guardrails)
        return own + tuple(g for g in self._extra_guardrails if g not in own)

    def _check_guardrails(self, item: AssistantMessageItem, *, final: bool = False) -> None:
        if not self._guardrails() or item.item_id in self._tripped or item.heard_ms is not None:
            return
        text = item.text
        checked = self._guarded.get(item.item_id, 0)
        if len(text) == checked or (not final and item.status != "completed" and len(text) - checked < self._debounce):
            return
        self._guarded[item.item_id] = len(text)
        if item.item_id in self._guarding:
            self._guard_next[item.item_id] = text  # one run per item: it judges the latest text next
            return
        self._start_guardrails(item.item_id, text)

    def _start_guardrails(self, item_id: str, text: str) -> None:
        self._guarding.add(item_id)
        self._spawn(self._run_guardrails(self._agent, item_id, text))

    async def _run_guardrails(self, agent: RealtimeAgent[Any], item_id: str, text: str) -> None:
        try:
            await self._judge(agent, item_id, text)
        except asyncio.CancelledError:
            self._guard_next.pop(item_id, None)
            raise
        finally:
            self._guarding.discard(item_id)
        latest = self._guard_next.pop(item_id, None)
        if latest is not None and item_id not in self._tripped and not self._closed:
            self._start_guardrails(item_id, latest)

    async def _judge(self, agent: RealtimeAgent[Any], item_id: str, text: str) -> None:
        results: list[OutputGuardrailResult] = []
        for guardrail in self._guardrails():
            try:
                results.append(await self._hook(guardrail.run(agent, text, self.context_wrapper), f"guardrail {guardrail.get_name()}"))
            except Exception as exc:  # a broken guardrail is reported; the others still judge
                self._error(
                    "guardrail",
                    f"guardrail {guardrail.get_name()} raised {type(exc).__name__}: {exc}; fix it (the reply was not stopped)",
                    exc,
                    item_id=item_id,
                )
        tripped = tuple(result for result in results if result.output.tripwire_triggered)
        if not tripped or item_id in self._tripped:
            return
        self._tripped.add(item_id)
        self._guard_next.pop(item_id, None)
        running = self._running_response
        self.interrupt()
        self._emit(RealtimeGuardrailTripped(tripped, text, item_id))
        feedback = GUARDRAIL_FEEDBACK.format(names=", ".join(result.guardrail.get_name() for result in tripped))
        if running is not None:
            self._feedback_after[running] = feedback  # sent once the cancelled response is done
        else:
            self._send_feedback(feedback)

    def _send_feedback(self, text: str) -> None:
        if self.transport.status != "connected":
            return
        try:
            self.transport.send_message(text)
        except Exception as exc:  # the connection went meanwhile
            self._error("guardrail", f"the model could not be told which guardrail tripped ({exc})", exc)

    def __repr__(self) -> str:
        return f"<RealtimeSession agent={self._agent.name!r} {self.transport.status} items={len(self.history)}>"


def _now_ms() -> float:
    return time.monotonic() * 1000.0
