"""One Realtime connection: the simulated model's conversation, audio buffer, VAD and responses.

Client events are checked against the API's schema (``_schema``, ``_rules``), then handled one at
a time, synchronously, in arrival order, by the handler ``HANDLERS`` names for their type; only a
response's streaming (and speech recognition) runs as a task. Whoever ends a response (its own
task, ``response.cancel``, or the VAD's barge-in) emits the closing events at once, so a
``response.cancel`` followed by ``conversation.item.truncate`` is answered in that order.

Everything a connection holds is bounded (items, audio buffer, logs) and released when it closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyodide_realtime._interfaces import FORMAT_RATES, bytes_per_ms
from pyodide_realtime.dialects import Dialect, WireNames, get_dialect

from ._audio import decode_from_wire, encode_for_wire
from ._errors import ClientEventError
from ._listener import Listener, RecognizerError
from ._model import AskMcpApproval, CallMcp, CallTool, Plan, mcp_tools_for, plan_reply
from ._output_buffer import OutputAudioBuffer
from ._peer import PeerLike
from ._rules import check_response_options
from ._schema import validate_client_event
from ._session_state import PART_TYPES, SEMANTIC_VAD_AS_SERVER_VAD, SessionState, new_id
from ._speech import Synthesizer
from ._state import ConnectionRecord
from ._vad import SpeechDetector, SpeechStarted

CHUNK_MS = 100
TEXT_DELTA_MS = 60  # the simulated time a text delta "takes" at pace 1
MCP_CALL_MS = 200  # the simulated time a hosted MCP call takes at pace 1
MIN_COMMIT_MS = 100
FUNCTION_ARGUMENT_DELTAS = 3
TRANSCRIPT_FOR_AUDIO = "(speech, {ms} ms)"  # when no recognizer is installed
AUDIO_TOKENS_PER_SECOND = 10
CHARS_PER_TOKEN = 4
RATE_LIMIT_REQUESTS = 5000
RATE_LIMIT_TOKENS = 40000
# Bounds per connection, in items and in characters: the oldest items go first (as the API's
# truncation drops them from the context); a buffer never committed stops growing with an error.
MAX_ITEMS = 1000
# The conversation's size, as JSON: far more than any model's context (a 32k-token context is about
# 128 kB of text), so only a client sending megabytes of items sees its oldest ones go early.
MAX_CONVERSATION_CHARS = 16 * 1024 * 1024
MAX_INPUT_BUFFER_MS = 15 * 60 * 1000
MAX_LOGGED_TYPE_CHARS = 64  # an event's type, quoted in the server's log

logger = logging.getLogger("pyodide_realtime_server")


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: ``schedule(delay_s, callback)``: run ``callback`` after ``delay_s`` of wall time, as the loop's
#: ``call_later``; tests pass their own to fire the idle timeout when they choose.
Schedule = Callable[[float, Callable[[], None]], Cancellable]


@dataclass
class ActiveResponse:
    id: str
    modality: str  # "audio" or "text"
    audio_format: str
    in_conversation: bool
    metadata: Any
    max_output_tokens: Any
    options: dict[str, Any]
    plan: Plan | None = None
    item: dict[str, Any] | None = None  # the output item being streamed, once announced
    finished_items: list[dict[str, Any]] = field(default_factory=list)  # earlier output items, done
    part_open: bool = False
    transcript: str = ""  # what has been streamed so far
    arguments: str = ""
    audio_ms: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Conversation:
    def __init__(
        self,
        peer: PeerLike,
        record: ConnectionRecord,
        *,
        dialect: Dialect,
        model: str | None,
        initial_session: dict[str, Any] | None,
        synthesizer: Synthesizer,
        pace: float,
        listener: Listener | None = None,
        schedule: Schedule | None = None,
        audio_track: bool = False,
    ) -> None:
        self.peer = peer
        self.listener = listener
        self.record = record
        self.dialect: Dialect = dialect
        self.names: WireNames = get_dialect(dialect).wire  # the client's spelling of each dialect's names
        self.session = SessionState(model, dialect).seed(initial_session)
        self.synthesizer = synthesizer
        self.pace = pace
        self._schedule = schedule
        self.conversation_id = new_id("conv")
        self.items: list[dict[str, Any]] = []
        self.item_chars: dict[str, int] = {}  # item id -> its JSON's size when added
        self.conversation_chars = 0
        self.audio_ms: dict[tuple[str, int], float] = {}  # (item_id, content_index) -> audio sent
        self.heard: dict[str, str] = {}  # user audio item id -> the words the recognizer heard
        self.recognitions: dict[str, asyncio.Task[None]] = {}
        self.listed_mcp: set[str] = set()  # server_labels whose tools were listed
        self.buffer = bytearray()
        self.buffer_format = self.session.input_format
        self.vad = self._make_vad()
        self.speech_item_id: str | None = None
        self.active: ActiveResponse | None = None
        self.model_spoke = False
        self._idle_timer: Cancellable | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Over WebRTC the reply's speech goes out on an audio track (fed from here), not in events.
        self.output = OutputAudioBuffer(self._output_started, self._output_stopped) if audio_track else None
        self._track_overflowed = False

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.send({"type": "session.created", "session": self.session.render()})
        self._list_mcp_tools()
        await self.peer.drain()
        try:
            while (message := await self.peer.recv()) is not None:
                self.handle(message)
                await self.peer.drain()
        finally:
            self.record.close_code = self.peer.close_code

    def release(self) -> None:
        """Forget everything this connection held (called when it closes, however it closed)."""
        self._disarm_idle_timer()
        for background in self._background:
            background.cancel()
        if self.active is not None and self.active.task is not None:
            self.active.task.cancel()
        for task in self.recognitions.values():
            task.cancel()
        if self.listener is not None:
            self.listener.forget(self.record.id)
        self.active = None
        self.items.clear()
        self.item_chars.clear()
        self.audio_ms.clear()
        self.heard.clear()
        self.recognitions.clear()
        self.buffer = bytearray()

    def send(self, event: dict[str, Any]) -> None:
        event = {"type": event["type"], "event_id": new_id("event"), **{k: v for k, v in event.items() if k != "type"}}
        self.record.log_sent(event["type"])
        self.peer.send(json.dumps(event))

    def send_error(self, error: ClientEventError, event_id: str | None) -> None:
        body = error.as_error(event_id)
        self.record.log_error(body)
        self.send({"type": "error", "error": body})

    def handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.send_error(
                ClientEventError("invalid_json", "Binary frames are not supported: send events as JSON text frames."), None
            )
            return
        try:
            event = json.loads(message)
        except RecursionError:
            self.send_error(ClientEventError("invalid_json", "The JSON of your event is nested too deeply."), None)
            return
        except ValueError as exc:
            self.send_error(ClientEventError("invalid_json", f"The server could not parse the JSON of your event: {exc}."), None)
            return
        if not isinstance(event, dict):
            self.send_error(ClientEventError("invalid_json", "Each client event must be a JSON object with a 'type'."), None)
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        self.record.log_received(event)
        if event.get("type") != "input_audio_buffer.append":
            self._disarm_idle_timer()  # the user did something: no need to prompt them
        try:
            validate_client_event(self.dialect, event)
            handler = HANDLERS.get(event["type"])
            if handler is None:
                raise ClientEventError(
                    "invalid_value", f"'{event['type']}' is only supported over WebRTC and SIP, not over a WebSocket.", "type"
                )
            handler(self, event)
        except ClientEventError as error:
            self.send_error(error, event_id)
        except Exception:
            # A defect of the simulation, not of the event: the API answers its own failures with a
            # server_error and keeps the connection, and so does this stand-in.
            logger.exception("the simulated model failed on a %s event", str(event.get("type"))[:MAX_LOGGED_TYPE_CHARS])
            self.send_error(
                ClientEventError(
                    "server_error",
                    "The server had an error while processing your event; the connection stays open. "
                    "Send the event again, or report it with the server's log.",
                    type_="server_error",
                ),
                event_id,
            )

    # -- session and audio buffer ------------------------------------------------------------

    def _vad_settings(self) -> dict[str, Any] | None:
        turn = self.session.turn_detection
        if turn is None:
            return None
        if turn["type"] == "semantic_vad":
            return dict(SEMANTIC_VAD_AS_SERVER_VAD)
        return {name: turn[name] for name in ("threshold", "prefix_padding_ms", "silence_duration_ms")}

    def _make_vad(self) -> SpeechDetector | None:
        settings = self._vad_settings()
        return SpeechDetector(**settings) if settings is not None else None

    def on_session_update(self, event: dict[str, Any]) -> None:
        self.session.update(event["session"], model_spoke=self.model_spoke, fresh=not self.items and self.active is None)
        settings = self._vad_settings()
        if settings is None:
            self.vad = None
        elif self.vad is None:
            self.vad = SpeechDetector(**settings)
        else:  # keep the clock and any turn in progress
            self.vad.configure(**settings)
        self.send({"type": "session.updated", "session": self.session.render()})
        self._list_mcp_tools()

    def _list_mcp_tools(self) -> None:
        """As the API does for a hosted MCP server it has not listed yet: an ``mcp_list_tools`` item."""
        for tool in self.session.tools:
            if tool.get("type") != "mcp" or tool["server_label"] in self.listed_mcp:
                continue
            self.listed_mcp.add(tool["server_label"])
            item = {"id": new_id("item"), "type": "mcp_list_tools", "server_label": tool["server_label"], "tools": mcp_tools_for(tool)}
            self.send({"type": "mcp_list_tools.in_progress", "item_id": item["id"]})
            self._add_item(item, done=False)
            self.send({"type": "mcp_list_tools.completed", "item_id": item["id"]})
            self.send({"type": "conversation.item.done", "previous_item_id": self._previous_id(item), "item": item})

    def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except ValueError:  # binascii.Error, or a non-ASCII character (which b64decode refuses first)
            raise ClientEventError(
                "invalid_value", "Invalid value for 'audio': expected base64-encoded audio bytes.", "audio"
            ) from None
        self._append_audio(audio)

    def append_track_audio(self, pcm24k: array[int]) -> None:
        """Microphone audio from the WebRTC track (decoded, 24 kHz): the path of ``input_audio_buffer.append``.

        A track never stops sending: a full buffer (no VAD, nothing committed) is said once, not 50
        times a second, and its audio is dropped until the buffer is committed or cleared.
        """
        try:
            self._append_audio(encode_for_wire(pcm24k, self.session.input_format))
            self._track_overflowed = False
        except ClientEventError as error:
            if not self._track_overflowed:
                self.send_error(error, None)
            self._track_overflowed = True

    def _append_audio(self, audio: bytes) -> None:
        if self.buffer_format != self.session.input_format:
            self.buffer.clear()  # the format changed: old bytes would be misread
            self.buffer_format = self.session.input_format
        if self._buffer_ms() + len(audio) / bytes_per_ms(self.buffer_format) > MAX_INPUT_BUFFER_MS:
            raise ClientEventError(
                "input_audio_buffer_full",
                f"The input audio buffer holds at most {MAX_INPUT_BUFFER_MS // 60000} minutes: commit or clear it.",
                "audio",
            )
        self.buffer.extend(audio)
        if self.vad is None:
            return
        for vad_event in self.vad.feed(decode_from_wire(audio, self.buffer_format), FORMAT_RATES[self.buffer_format]):
            if isinstance(vad_event, SpeechStarted):
                self._speech_started(vad_event.audio_start_ms)
            else:
                self._speech_stopped(vad_event.audio_end_ms)

    def _buffer_ms(self) -> float:
        return len(self.buffer) / bytes_per_ms(self.buffer_format)

    # -- idle timeout (server_vad's idle_timeout_ms) -------------------------------------------

    def _arm_idle_timer(self, reply_audio_ms: float) -> None:
        """As the API: the timeout runs from when the reply's audio has played (response.done plus
        its audio), in the server's simulated time (``pace``)."""
        turn = self.session.turn_detection
        if turn is None or turn.get("type") != "server_vad" or not turn.get("idle_timeout_ms") or self.session.type != "realtime":
            return
        self._disarm_idle_timer()
        delay_s = (reply_audio_ms + turn["idle_timeout_ms"]) / 1000 / (self.pace if self.pace > 0 else 1)
        schedule = self._schedule or asyncio.get_running_loop().call_later
        self._idle_timer = schedule(delay_s, self._idle_timeout)

    def _disarm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_timeout(self) -> None:
        self._idle_timer = None
        if self.active is not None or (self.vad is not None and self.vad.speaking):
            return
        item_id = new_id("item")
        end_ms = self.vad.position_ms if self.vad is not None else 0
        self.send(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": max(0, end_ms - round(self._buffer_ms())),
                "audio_end_ms": end_ms,
                "item_id": item_id,
            }
        )
        self._commit(item_id)
        self._start_response({})
        task = asyncio.get_running_loop().create_task(self.peer.drain())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _speech_started(self, audio_start_ms: int) -> None:
        self._disarm_idle_timer()
        self.speech_item_id = new_id("item")
        self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": self.speech_item_id})
        turn = self.session.turn_detection or {}
        if not turn.get("interrupt_response", True):
            return
        if self.active is not None:
            self._finish(self.active, "cancelled", reason="turn_detected")
        if self.output is not None and self.output.playing is not None:
            self._cut_output()  # over WebRTC the server stops the voice the user talks over

    def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self.speech_item_id or new_id("item")
        self.speech_item_id = None
        self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id})
        self._commit(item_id)
        turn = self.session.turn_detection or {}
        if self.session.type == "realtime" and turn.get("create_response", True) and self.active is None:
            self._start_response({})

    def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        if self._buffer_ms() < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms of audio, "
                f"but buffer only has {self._buffer_ms():.2f}ms of audio.",
            )
        self._commit(new_id("item"))

    def _commit(self, item_id: str) -> None:
        duration_ms = round(self._buffer_ms())
        audio, audio_format = bytes(self.buffer), self.buffer_format
        self.buffer.clear()
        if self.vad is not None:
            self.vad.reset()
        previous = self.items[-1]["id"] if self.items else None
        self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self._add_item(item)
        transcribe = self.session.transcription is not None or self.session.type == "transcription"
        if self.listener is not None or transcribe:
            task = asyncio.get_running_loop().create_task(
                self._recognize(item, audio, audio_format, duration_ms, transcribe), name=f"recognize {item_id}"
            )
            self.recognitions[item_id] = task
            task.add_done_callback(lambda _: self.recognitions.pop(item_id, None))

    async def _recognize(self, item: dict[str, Any], audio: bytes, audio_format: str, duration_ms: int, transcribe: bool) -> None:
        """What the user said: the model acts on it; with transcription on, the client sees it too."""
        if self.listener is not None:
            samples = decode_from_wire(audio, audio_format)
            tool_names = [str(t.get("name") or t.get("server_label") or "") for t in self.session.tools]
            try:
                text = await self.listener.recognize(samples, FORMAT_RATES[audio_format], tool_names, client=self.record.id)
            except RecognizerError:
                logger.exception("speech recognition failed for %s", item["id"])
                text = ""
            transcript = text.capitalize()
        else:
            transcript = TRANSCRIPT_FOR_AUDIO.format(ms=duration_ms)
        self.heard[item["id"]] = transcript
        if not transcribe or item not in self.items:
            return
        ids = {"item_id": item["id"], "content_index": 0}
        words = transcript.split(" ")
        for index, word in enumerate(words):
            self.send({"type": "conversation.item.input_audio_transcription.delta", **ids, "delta": word + (" " if index < len(words) - 1 else "")})
        item["content"][0]["transcript"] = transcript
        self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                **ids,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": round(duration_ms / 1000, 3)},
            }
        )
        await self.peer.drain()

    def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        if self.vad is not None:
            self.vad.reset()
        self.speech_item_id = None
        self.send({"type": "input_audio_buffer.cleared"})

    # -- conversation ------------------------------------------------------------------------

    def _find(self, item_id: str, param: str = "item_id") -> dict[str, Any]:
        for item in self.items:
            if item["id"] == item_id:
                return item
        raise ClientEventError("invalid_value", f"Conversation item with item_id '{item_id}' does not exist.", param)

    def _previous_id(self, item: dict[str, Any]) -> str | None:
        index = next(i for i, found in enumerate(self.items) if found is item)
        return self.items[index - 1]["id"] if index > 0 else None

    def _add_item(self, item: dict[str, Any], *, after: str | None = None, done: bool = True) -> None:
        """Insert ``item`` (at the end; first for ``after="root"``; else after that item) and announce
        it: GA ``added`` and, if complete, ``done``; beta ``created``."""
        if after is None:
            self.items.append(item)
        elif after == "root":
            self.items.insert(0, item)
        else:
            self.items.insert(self.items.index(self._find(after, "previous_item_id")) + 1, item)
        size = len(json.dumps(item))
        self.item_chars[item["id"]] = size
        self.conversation_chars += size
        while len(self.items) > 1 and (len(self.items) > MAX_ITEMS or self.conversation_chars > MAX_CONVERSATION_CHARS):
            dropped = next(old for old in self.items if old is not item)  # the oldest, never the new one
            self.items.remove(dropped)
            self._forget_item(dropped)
        previous = self._previous_id(item)
        self.send({"type": self.names.item_created, "previous_item_id": previous, "item": item})
        if done and self.dialect == "ga":  # beta has no conversation.item.done
            self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    def _forget_item(self, item: dict[str, Any]) -> None:
        self.conversation_chars -= self.item_chars.pop(item["id"], 0)
        self.heard.pop(item["id"], None)
        for key in [k for k in self.audio_ms if k[0] == item["id"]]:
            del self.audio_ms[key]

    def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        given: dict[str, Any] = event["item"]
        if "type" not in given:  # optional in the beta types, required by the API
            raise ClientEventError("missing_required_parameter", "Missing required parameter: 'item.type'.", "item.type")
        item = {"id": given.get("id") or new_id("item"), **{k: v for k, v in given.items() if k != "id"}}
        if item["type"] in ("message", "function_call", "function_call_output"):  # MCP items have neither
            item.setdefault("object", "realtime.item")
            item.setdefault("status", "completed")
        if any(existing["id"] == item["id"] for existing in self.items):
            raise ClientEventError("invalid_value", f"Conversation item with item_id '{item['id']}' already exists.", "item.id")
        previous = event.get("previous_item_id")
        if previous not in (None, "root"):
            self._find(previous, "previous_item_id")
        if item["type"] == "mcp_approval_response":
            request = next((i for i in self.items if i["id"] == item.get("approval_request_id")), None)
            if request is None or request.get("type") != "mcp_approval_request":
                raise ClientEventError(
                    "invalid_value",
                    f"No MCP approval request with id '{item.get('approval_request_id')}' in this conversation.",
                    "item.approval_request_id",
                )
        self._add_item(item, after=previous)

    def on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        self.send({"type": "conversation.item.retrieved", "item": self._find(event["item_id"])})

    def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item = self._find(event["item_id"])
        self.items.remove(item)
        self._forget_item(item)
        self.send({"type": "conversation.item.deleted", "item_id": item["id"]})

    def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self._find(event["item_id"])
        content_index: int = event["content_index"]
        audio_end_ms: int = event["audio_end_ms"]
        if audio_end_ms < 0:
            raise ClientEventError("invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.", "audio_end_ms")
        content = item.get("content") or []
        if (
            item.get("role") != "assistant"
            or not 0 <= content_index < len(content)
            or content[content_index].get("type") != self.names.audio_content
        ):
            raise ClientEventError(
                "invalid_value",
                "Only the audio content of an assistant message can be truncated: check item_id and content_index.",
                "content_index",
            )
        available = self.audio_ms.get((item["id"], content_index), 0.0)
        if audio_end_ms > available:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {math.floor(available)}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        self._truncate(item, content_index, audio_end_ms, available)

    def _truncate(self, item: dict[str, Any], content_index: int, audio_end_ms: int, available: float) -> None:
        content = item["content"]
        if self.record.logged:
            self.record.truncations.append(
                {
                    "connection_id": self.record.id,
                    "item_id": item["id"],
                    "content_index": content_index,
                    "audio_end_ms": audio_end_ms,
                    "audio_available_ms": round(available, 3),
                    "response_active": self.active is not None and self.active.item is item,
                }
            )
        # As the API reference says: truncating "will delete the server-side text transcript to
        # ensure there is not text in the context that hasn't been heard by the user".
        content[content_index]["transcript"] = ""
        self.audio_ms[(item["id"], content_index)] = float(audio_end_ms)
        self.send(
            {"type": "conversation.item.truncated", "item_id": item["id"], "content_index": content_index, "audio_end_ms": audio_end_ms}
        )

    # -- the output audio buffer (WebRTC) ----------------------------------------------------

    def on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        if self.output is None:
            raise ClientEventError(
                "invalid_value", "'output_audio_buffer.clear' is only supported over WebRTC and SIP, not over a WebSocket.", "type"
            )
        if self.active is not None and self.active.modality == "audio":
            self._finish(self.active, "cancelled", reason="client_cancelled")  # no more audio to come
        self._cut_output()

    def _cut_output(self) -> None:
        """Stop the track at once; truncate the item where its audio stopped going out; say so."""
        assert self.output is not None
        cut = self.output.clear()
        if cut is not None:
            item = next((i for i in self.items if i["id"] == cut.item_id), None)
            if item is not None and item.get("content"):
                available = self.audio_ms.get((item["id"], 0), 0.0)
                self._truncate(item, 0, min(cut.audio_end_ms, math.floor(available)), available)
        if self.output.last_response_id is not None:
            self.send({"type": "output_audio_buffer.cleared", "response_id": self.output.last_response_id})

    def _output_started(self, response_id: str) -> None:
        self.send({"type": "output_audio_buffer.started", "response_id": response_id})

    def _output_stopped(self, response_id: str) -> None:
        self.send({"type": "output_audio_buffer.stopped", "response_id": response_id})

    # -- responses ---------------------------------------------------------------------------

    def on_response_create(self, event: dict[str, Any]) -> None:
        if self.session.type == "transcription":
            raise ClientEventError("invalid_value", "A transcription session does not create responses.", "type")
        options: dict[str, Any] = event.get("response") or {}
        check_response_options(self.dialect, options)
        if self.active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        self._start_response(options)

    def on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise ClientEventError("response_cancel_not_active", "Cancellation failed: no active response found")
        self._finish(self.active, "cancelled", reason="client_cancelled")

    def _start_response(self, options: dict[str, Any]) -> None:
        modalities = options.get("output_modalities") or options.get("modalities")
        modality = self.session.modality
        if modalities:
            modality = "text" if list(modalities) == ["text"] else "audio"
        in_conversation = options.get("conversation", "auto") != "none"
        max_tokens = options.get("max_output_tokens", options.get("max_response_output_tokens", self.session.data["max_output_tokens"]))
        audio_format = "pcm16" if self.output is not None else self.session.output_format  # the track's, not the wire's
        response = ActiveResponse(new_id("resp"), modality, audio_format, in_conversation, options.get("metadata"), max_tokens, options)
        self.active = response
        self.send({"type": "response.created", "response": self._response_object(response, "in_progress")})
        response.task = asyncio.get_running_loop().create_task(self._stream(response), name=f"stream {response.id}")

    async def _plan(self, response: ActiveResponse) -> Plan:
        # Speech is acted on once it is recognized (the recognizer runs while the response starts).
        pending = [task for item_id, task in list(self.recognitions.items()) if any(i["id"] == item_id for i in self.items)]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        options = response.options
        if response.in_conversation or "input" not in options:
            history = self.items
        else:
            history = [dict(item) for item in options.get("input") or []]
        history = [self._with_heard(item) for item in history]
        return plan_reply(history, list(options.get("tools", self.session.tools)), options.get("tool_choice", self.session.tool_choice))

    def _with_heard(self, item: dict[str, Any]) -> dict[str, Any]:
        heard = self.heard.get(str(item.get("id")))
        if heard is None:
            return item
        return {**item, "content": [{**part, "transcript": heard} if part.get("type") == "input_audio" else part for part in item["content"]]}

    def _response_object(self, response: ActiveResponse, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": [*response.finished_items, *([response.item] if response.item is not None else [])] if status != "in_progress" else [],
            "conversation_id": self.conversation_id if response.in_conversation else None,
            **self.session.response_fields(response.modality, response.max_output_tokens),
            "metadata": response.metadata,
            "usage": None,
        }

    async def _sleep(self, simulated_ms: float) -> None:
        if self.pace > 0:
            await asyncio.sleep(simulated_ms / 1000 / self.pace)
        else:
            await asyncio.sleep(0)  # still yield, so that a cancel can get in between chunks

    @staticmethod
    def _output_index(response: ActiveResponse) -> int:
        return len(response.finished_items)

    def _close_item(self, response: ActiveResponse) -> None:
        """The current output item is done; the response goes on with another."""
        item = response.item
        assert item is not None
        self.send({"type": "response.output_item.done", "response_id": response.id, "output_index": self._output_index(response), "item": item})
        if response.in_conversation and self.dialect == "ga" and item in self.items:
            self.send({"type": "conversation.item.done", "previous_item_id": self._previous_id(item), "item": item})
        response.finished_items.append(item)
        response.item = None

    def _announce_item(self, response: ActiveResponse, item: dict[str, Any]) -> None:
        response.item = item
        self.send({"type": "response.output_item.added", "response_id": response.id, "output_index": self._output_index(response), "item": item})
        if response.in_conversation:
            self._add_item(item, done=False)

    async def _stream(self, response: ActiveResponse) -> None:
        try:
            plan = response.plan = await self._plan(response)
            if isinstance(plan, CallTool):
                await self._stream_call(response, plan)
            elif isinstance(plan, AskMcpApproval):
                self._announce_item(
                    response,
                    {"id": new_id("mcpr"), "type": "mcp_approval_request", "server_label": plan.server_label, "name": plan.name, "arguments": plan.arguments},
                )
            elif isinstance(plan, CallMcp):
                await self._stream_mcp_call(response, plan)
            else:
                await self._stream_speech(response, plan.text)
            self._finish(response, "completed")
        except asyncio.CancelledError:
            pass  # whoever cancelled has already sent the closing events
        except Exception:
            logger.exception("the simulated model failed while streaming %s", response.id)
            self._finish(response, "failed")
        finally:
            await self.peer.drain()

    async def _stream_call(self, response: ActiveResponse, call: CallTool) -> None:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": new_id("call"),
            "arguments": "",
        }
        self._announce_item(response, item)
        ids = {"response_id": response.id, "item_id": item["id"], "output_index": self._output_index(response), "call_id": item["call_id"]}
        size = max(1, math.ceil(len(call.arguments) / FUNCTION_ARGUMENT_DELTAS))
        for start in range(0, len(call.arguments), size):
            delta = call.arguments[start : start + size]
            response.arguments += delta
            self.send({"type": "response.function_call_arguments.delta", **ids, "delta": delta})
            await self._sleep(TEXT_DELTA_MS)
        item["arguments"] = call.arguments
        named = {"name": call.name} if self.dialect == "ga" else {}  # the beta event has no name
        self.send({"type": "response.function_call_arguments.done", **ids, **named, "arguments": call.arguments})

    async def _stream_mcp_call(self, response: ActiveResponse, call: CallMcp) -> None:
        item: dict[str, Any] = {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "server_label": call.server_label,
            "name": call.name,
            "arguments": "",
            "approval_request_id": call.approval_request_id,
            "output": None,
            "error": None,
        }
        self._announce_item(response, item)
        index = self._output_index(response)
        ids = {"response_id": response.id, "item_id": item["id"], "output_index": index}
        self.send({"type": "response.mcp_call_arguments.delta", **ids, "delta": call.arguments})
        item["arguments"] = call.arguments
        response.arguments = call.arguments
        self.send({"type": "response.mcp_call_arguments.done", **ids, "arguments": call.arguments})
        self.send({"type": "response.mcp_call.in_progress", "item_id": item["id"], "output_index": index})
        await self._sleep(MCP_CALL_MS)
        item["output"] = call.output
        self.send({"type": "response.mcp_call.completed", "item_id": item["id"], "output_index": index})
        # As the API does, the model goes on in the same response: it reads the tool's answer.
        self._close_item(response)
        await self._stream_speech(response, f"The {call.name} tool says: {call.output}")

    async def _stream_speech(self, response: ActiveResponse, text: str) -> None:
        audio = await self.synthesizer.audio(text, response.audio_format) if response.modality == "audio" else b""
        content_type = self.names.audio_content if response.modality == "audio" else self.names.text_content
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._announce_item(response, item)
        ids = {"response_id": response.id, "item_id": item["id"], "output_index": self._output_index(response), "content_index": 0}
        empty_part = {"type": PART_TYPES["audio"], "transcript": ""} if response.modality == "audio" else {"type": PART_TYPES["text"], "text": ""}
        self.send({"type": "response.content_part.added", **ids, "part": empty_part})
        response.part_open = True
        words = [word + " " for word in text.split(" ")]
        words[-1] = words[-1].rstrip(" ")
        if response.modality == "text":
            for word in words:
                response.transcript += word
                self.send({"type": self.names.text_delta, **ids, "delta": word})
                await self._sleep(TEXT_DELTA_MS)
            return
        item["content"] = [{"type": content_type, "transcript": ""}]
        chunk_bytes = bytes_per_ms(response.audio_format) * CHUNK_MS
        chunks = [audio[i : i + chunk_bytes] for i in range(0, len(audio), chunk_bytes)]
        sent_words = 0
        for index, chunk in enumerate(chunks):
            # Spread the transcript over the audio, a little ahead of it, as the real API does.
            due = math.ceil((index + 1) / len(chunks) * len(words))
            while sent_words < due:
                response.transcript += words[sent_words]
                self.send({"type": self.names.transcript_delta, **ids, "delta": words[sent_words]})
                sent_words += 1
            if self.output is not None:
                self.output.push(response.id, item["id"], chunk)
            else:
                self.send({"type": self.names.audio_delta, **ids, "delta": base64.b64encode(chunk).decode("ascii")})
            self.model_spoke = True
            chunk_ms = len(chunk) / bytes_per_ms(response.audio_format)
            response.audio_ms += chunk_ms
            self.audio_ms[(item["id"], 0)] = response.audio_ms
            item["content"][0]["transcript"] = response.transcript
            # Shielded: a cancel arriving mid-write must not lose a frame already taken off the queue.
            await asyncio.shield(self.peer.drain())
            await self._sleep(chunk_ms)

    def _finish(self, response: ActiveResponse, status: str, reason: str | None = None) -> None:
        """Close ``response``: send the done events for whatever it had started, then ``response.done``."""
        if self.active is not response:
            return
        self.active = None
        if self.output is not None:
            self.output.finish(response.id)
        if status == "completed":
            self._arm_idle_timer(response.audio_ms)
        if response.task is not None and response.task is not asyncio.current_task():
            response.task.cancel()
        item = response.item
        if item is not None and item["type"] == "message":
            ids = {"response_id": response.id, "item_id": item["id"], "output_index": self._output_index(response), "content_index": 0}
            if response.modality == "audio":
                content = {"type": self.names.audio_content, "transcript": response.transcript}
                part = {"type": PART_TYPES["audio"], "transcript": response.transcript}
                if response.part_open:
                    self.send({"type": self.names.audio_done, **ids})
                    self.send({"type": self.names.transcript_done, **ids, "transcript": response.transcript})
            else:
                content = {"type": self.names.text_content, "text": response.transcript}
                part = {"type": PART_TYPES["text"], "text": response.transcript}
                if response.part_open:
                    self.send({"type": self.names.text_done, **ids, "text": response.transcript})
            item["content"] = [content]
            if response.part_open:
                self.send({"type": "response.content_part.done", **ids, "part": part})
        if item is not None:
            if item["type"] in ("message", "function_call"):
                item["status"] = "completed" if status == "completed" else "incomplete"
            self.send(
                {"type": "response.output_item.done", "response_id": response.id, "output_index": self._output_index(response), "item": item}
            )
            if response.in_conversation and self.dialect == "ga" and item in self.items:
                self.send({"type": "conversation.item.done", "previous_item_id": self._previous_id(item), "item": item})
        details: dict[str, Any] | None = {"type": "cancelled", "reason": reason} if status == "cancelled" else None
        if status == "failed":
            details = {
                "type": "failed",
                "error": {"type": "server_error", "code": "simulation_failed"},
            }
        done = self._response_object(response, status, details)
        done["usage"] = self._usage(response)
        self.send({"type": "response.done", "response": done})
        self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": RATE_LIMIT_REQUESTS, "remaining": RATE_LIMIT_REQUESTS - 1, "reset_seconds": 0.012},
                    {
                        "name": "tokens",
                        "limit": RATE_LIMIT_TOKENS,
                        "remaining": RATE_LIMIT_TOKENS - done["usage"]["total_tokens"],
                        "reset_seconds": 1.2,
                    },
                ],
            }
        )

    def _usage(self, response: ActiveResponse) -> dict[str, Any]:
        input_text = sum(len(json.dumps(item.get("content") or item.get("output") or "")) for item in self.items) // CHARS_PER_TOKEN
        output_text = (len(response.transcript) + len(response.arguments)) // CHARS_PER_TOKEN
        output_audio = int(response.audio_ms / 1000 * AUDIO_TOKENS_PER_SECOND)
        return {
            "total_tokens": input_text + output_text + output_audio,
            "input_tokens": input_text,
            "output_tokens": output_text + output_audio,
            "input_token_details": {"text_tokens": input_text, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }


# Client event type -> handler. Types the schema knows but this server does not serve (beta
# transcription_session.update) are answered with an error, and so is output_audio_buffer.clear on
# a WebSocket (WebRTC/SIP only).
HANDLERS: dict[str, Callable[[Conversation, dict[str, Any]], None]] = {
    "session.update": Conversation.on_session_update,
    "input_audio_buffer.append": Conversation.on_input_audio_buffer_append,
    "input_audio_buffer.commit": Conversation.on_input_audio_buffer_commit,
    "input_audio_buffer.clear": Conversation.on_input_audio_buffer_clear,
    "conversation.item.create": Conversation.on_conversation_item_create,
    "conversation.item.retrieve": Conversation.on_conversation_item_retrieve,
    "conversation.item.truncate": Conversation.on_conversation_item_truncate,
    "conversation.item.delete": Conversation.on_conversation_item_delete,
    "response.create": Conversation.on_response_create,
    "response.cancel": Conversation.on_response_cancel,
    "output_audio_buffer.clear": Conversation.on_output_audio_buffer_clear,
}
