"""One Realtime connection: the simulated model's conversation, audio buffer, VAD and responses.

Client events are handled one at a time, synchronously, in arrival order; only a response's
streaming runs as a task (it sleeps between audio chunks to keep its pace). Whoever ends a response
(its own task, ``response.cancel``, or the VAD's barge-in) emits the closing events at once, so a
``response.cancel`` followed by ``conversation.item.truncate`` is answered in that order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._audio import FORMATS, decode_from_wire
from ._dialect import WIRE_NAMES, ClientEventError, Dialect, SessionConfig, new_id, seed_session
from ._model import CallTool, Speak, plan_reply
from ._speech import Synthesizer
from ._state import ConnectionRecord
from ._vad import EnergyVad, SpeechStarted, SpeechStopped
from ._websocket import ServerWebSocket

CHUNK_MS = 100
TEXT_DELTA_MS = 60  # the simulated time a text delta "takes" at pace 1
MIN_COMMIT_MS = 100
FUNCTION_ARGUMENT_DELTAS = 3
TRANSCRIPT_FOR_AUDIO = "(speech, {ms} ms)"
AUDIO_TOKENS_PER_SECOND = 10
CHARS_PER_TOKEN = 4
RATE_LIMIT_REQUESTS = 5000
RATE_LIMIT_TOKENS = 40000

logger = logging.getLogger("pyodide_realtime.server")

SUPPORTED_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
)


JSON_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a decimal number",
    dict: "an object",
    list: "an array",
}


def _require(event: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    """``event[name]``, which must be present and of JSON type ``kind`` (a bool is not an integer)."""
    param = f"{where}{name}"
    if name not in event or event[name] is None:
        raise ClientEventError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    value = event[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        actual = JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        message = f"Invalid type for '{param}': expected {JSON_TYPE_NAMES[kind]}, but got {actual} instead."
        raise ClientEventError("invalid_type", message, param)
    return value


@dataclass
class ActiveResponse:
    id: str
    modality: str  # "audio" or "text"
    audio_format: str
    in_conversation: bool
    metadata: Any
    plan: Speak | CallTool | None = None
    item: dict[str, Any] | None = None  # the output item, once announced
    part_open: bool = False
    transcript: str = ""  # what has been streamed so far
    arguments: str = ""
    audio_ms: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class RealtimeSession:
    def __init__(
        self,
        socket: ServerWebSocket,
        record: ConnectionRecord,
        *,
        dialect: Dialect,
        model: str,
        initial_session: dict[str, Any] | None,
        synthesizer: Synthesizer,
        pace: float,
        on_truncate: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.socket = socket
        self.record = record
        self.dialect: Dialect = dialect
        self.names = WIRE_NAMES[dialect]
        self.config = SessionConfig(model, dialect)
        seed_session(self.config, initial_session)
        self.synthesizer = synthesizer
        self.pace = pace
        self.conversation_id = new_id("conv")
        self.items: list[dict[str, Any]] = []
        self.audio_ms: dict[tuple[str, int], float] = {}  # (item_id, content_index) -> audio sent
        self.buffer = bytearray()
        self.buffer_format = self.config.input_format
        self.vad = self._make_vad()
        self.speech_item_id: str | None = None
        self.active: ActiveResponse | None = None
        self._on_truncate = on_truncate

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.send({"type": "session.created", "session": self.config.render()})
        try:
            while (message := await self.socket.recv()) is not None:
                self.handle(message)
                await self.socket.drain()
        finally:
            if self.active is not None and self.active.task is not None:
                self.active.task.cancel()
            self.record.close_code = self.socket.close_code

    def send(self, event: dict[str, Any]) -> None:
        event = {"type": event["type"], "event_id": new_id("event"), **{k: v for k, v in event.items() if k != "type"}}
        self.record.log_sent(event["type"])
        self.socket.send(json.dumps(event))

    def send_error(self, error: ClientEventError, event_id: str | None) -> None:
        body = error.as_error(event_id)
        self.record.errors.append(body)
        self.send({"type": "error", "error": body})

    def handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.send_error(
                ClientEventError("invalid_json", "Binary frames are not supported: send events as JSON text frames."), None
            )
            return
        try:
            event = json.loads(message)
        except ValueError as exc:
            self.send_error(ClientEventError("invalid_json", f"The server could not parse the JSON of your event: {exc}."), None)
            return
        if not isinstance(event, dict):
            self.send_error(ClientEventError("invalid_json", "Each client event must be a JSON object with a 'type'."), None)
            return
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        self.record.log_received(event)
        try:
            kind = _require(event, "type", str)
            handler = getattr(self, "on_" + kind.replace(".", "_"), None) if kind in SUPPORTED_EVENTS else None
            if handler is None:
                supported = ", ".join(f"'{name}'" for name in SUPPORTED_EVENTS)
                raise ClientEventError("invalid_value", f"Invalid value: '{kind}'. Supported values are: {supported}.", "type")
            handler(event)
        except ClientEventError as error:
            self.send_error(error, event_id)

    # -- session and audio buffer ------------------------------------------------------------

    def _make_vad(self) -> EnergyVad | None:
        turn = self.config.turn_detection
        if turn is None:
            return None
        return EnergyVad(
            threshold=turn["threshold"],
            prefix_padding_ms=turn["prefix_padding_ms"],
            silence_duration_ms=turn["silence_duration_ms"],
        )

    def on_session_update(self, event: dict[str, Any]) -> None:
        self.config.update(_require(event, "session", dict))
        turn = self.config.turn_detection
        if turn is None:
            self.vad = None
        elif self.vad is None:
            self.vad = self._make_vad()
        else:  # keep the clock and any turn in progress
            self.vad.threshold = turn["threshold"]
            self.vad.prefix_padding_ms = turn["prefix_padding_ms"]
            self.vad.silence_duration_ms = turn["silence_duration_ms"]
        self.send({"type": "session.updated", "session": self.config.render()})

    def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(_require(event, "audio", str), validate=True)
        except binascii.Error:
            raise ClientEventError(
                "invalid_value", "Invalid value for 'audio': expected base64-encoded audio bytes.", "audio"
            ) from None
        if self.buffer_format != self.config.input_format:
            self.buffer.clear()  # the format changed: old bytes would be misread
            self.buffer_format = self.config.input_format
        self.buffer.extend(audio)
        if self.vad is None:
            return
        wire = FORMATS[self.buffer_format]
        for vad_event in self.vad.feed(decode_from_wire(audio, wire.name), wire.rate):
            if isinstance(vad_event, SpeechStarted):
                self._speech_started(vad_event)
            else:
                self._speech_stopped(vad_event)

    def _buffer_ms(self) -> float:
        return len(self.buffer) / FORMATS[self.buffer_format].bytes_per_ms

    def _speech_started(self, event: SpeechStarted) -> None:
        self.speech_item_id = new_id("item")
        self.send(
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": event.audio_start_ms, "item_id": self.speech_item_id}
        )
        turn = self.config.turn_detection or {}
        if self.active is not None and turn.get("interrupt_response", True):
            self._finish(self.active, "cancelled", reason="turn_detected")

    def _speech_stopped(self, event: SpeechStopped) -> None:
        item_id = self.speech_item_id or new_id("item")
        self.speech_item_id = None
        self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": event.audio_end_ms, "item_id": item_id})
        self._commit(item_id)
        turn = self.config.turn_detection or {}
        if turn.get("create_response", True) and self.active is None:
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
        previous = self.items[-1]["id"] if self.items else None
        self.buffer.clear()
        if self.vad is not None:
            self.vad.reset()
        self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self._add_item(item, previous)
        if self.config.transcription is not None:
            transcript = TRANSCRIPT_FOR_AUDIO.format(ms=duration_ms)
            item["content"][0]["transcript"] = transcript
            self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                }
            )

    def on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        if self.vad is not None:
            self.vad.reset()
        self.speech_item_id = None
        self.send({"type": "input_audio_buffer.cleared"})

    # -- conversation ------------------------------------------------------------------------

    def _find(self, item_id: str) -> dict[str, Any]:
        for item in self.items:
            if item["id"] == item_id:
                return item
        raise ClientEventError("invalid_value", f"Conversation item with item_id '{item_id}' does not exist.", "item_id")

    def _add_item(self, item: dict[str, Any], previous_item_id: str | None, *, done: bool = True) -> None:
        """Append ``item`` and announce it (GA: ``added`` and, if complete, ``done``; beta: ``created``)."""
        self.items.append(item)
        if self.dialect == "beta":
            self.send({"type": "conversation.item.created", "previous_item_id": previous_item_id, "item": item})
            return
        self.send({"type": "conversation.item.added", "previous_item_id": previous_item_id, "item": item})
        if done:
            self.send({"type": "conversation.item.done", "previous_item_id": previous_item_id, "item": item})

    def on_conversation_item_create(self, event: dict[str, Any]) -> None:
        given = _require(event, "item", dict)
        kind = _require(given, "type", str, "item.")
        item: dict[str, Any] = {
            "id": given.get("id") or new_id("item"),
            "object": "realtime.item",
            "type": kind,
            "status": "completed",
        }
        if any(existing["id"] == item["id"] for existing in self.items):
            raise ClientEventError("invalid_value", f"Conversation item with item_id '{item['id']}' already exists.", "item.id")
        if kind == "message":
            role = _require(given, "role", str, "item.")
            if role not in ("user", "assistant", "system"):
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', and 'system'.",
                    "item.role",
                )
            content = _require(given, "content", list, "item.")
            item.update(role=role, content=[dict(part) for part in content if isinstance(part, dict)])
        elif kind == "function_call_output":
            item.update(call_id=_require(given, "call_id", str, "item."), output=_require(given, "output", str, "item."))
        elif kind == "function_call":
            item.update(
                call_id=_require(given, "call_id", str, "item."),
                name=_require(given, "name", str, "item."),
                arguments=str(given.get("arguments", "")),
            )
        else:
            raise ClientEventError(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', and 'function_call_output'.",
                "item.type",
            )
        previous = event.get("previous_item_id")
        if previous not in (None, "root") and not any(existing["id"] == previous for existing in self.items):
            raise ClientEventError(
                "invalid_value", f"Conversation item with item_id '{previous}' does not exist.", "previous_item_id"
            )
        self._add_item(item, self.items[-1]["id"] if self.items else None)

    def on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self._find(_require(event, "item_id", str))
        self.send({"type": "conversation.item.retrieved", "item": item})

    def on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        item = self._find(_require(event, "item_id", str))
        self.items.remove(item)
        self.send({"type": "conversation.item.deleted", "item_id": item["id"]})

    def on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item = self._find(_require(event, "item_id", str))
        content_index = _require(event, "content_index", int)
        audio_end_ms = _require(event, "audio_end_ms", int)
        if audio_end_ms < 0:
            raise ClientEventError("invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.", "audio_end_ms")
        content = item.get("content") or []
        if (
            item.get("role") != "assistant"
            or not 0 <= content_index < len(content)
            or content[content_index].get("type") != self.names["audio_part"]
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
        truncation = {
            "connection_id": self.record.id,
            "item_id": item["id"],
            "content_index": content_index,
            "audio_end_ms": audio_end_ms,
            "audio_available_ms": round(available, 3),
            "response_active": self.active is not None and self.active.item is item,
        }
        self.record.truncations.append(truncation)
        if self._on_truncate is not None:
            self._on_truncate(truncation)
        # The real API drops the transcript of audio that was not heard; approximate by proportion.
        transcript = content[content_index].get("transcript") or ""
        kept = int(len(transcript) * audio_end_ms / available) if available else 0
        content[content_index]["transcript"] = transcript[:kept]
        self.audio_ms[(item["id"], content_index)] = float(audio_end_ms)
        self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    # -- responses ---------------------------------------------------------------------------

    def on_response_create(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        options = event.get("response") or {}
        if not isinstance(options, dict):
            raise ClientEventError("invalid_type", "Invalid type for 'response': expected an object.", "response")
        self._start_response(options)

    def on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise ClientEventError("response_cancel_not_active", "Cancellation failed: no active response found")
        self._finish(self.active, "cancelled", reason="client_cancelled")

    def _start_response(self, options: dict[str, Any]) -> None:
        modalities = options.get("output_modalities") or options.get("modalities")
        modality = self.config.modality
        if isinstance(modalities, list) and modalities:
            modality = "text" if set(modalities) == {"text"} else "audio"
        tools = options.get("tools", self.config.tools)
        tool_choice = options.get("tool_choice", self.config.tool_choice)
        in_conversation = options.get("conversation", "auto") != "none"
        response = ActiveResponse(new_id("resp"), modality, self.config.output_format, in_conversation, options.get("metadata"))
        history = self.items if in_conversation or "input" not in options else list(options.get("input") or [])
        response.plan = plan_reply(history, tools or [], tool_choice)
        self.active = response
        self.send({"type": "response.created", "response": self._response_object(response, "in_progress")})
        response.task = asyncio.get_running_loop().create_task(self._stream(response), name=f"stream {response.id}")

    def _response_object(self, response: ActiveResponse, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": details,
            "output": [response.item] if response.item is not None and status != "in_progress" else [],
            "conversation_id": self.conversation_id if response.in_conversation else None,
            **self.config.output_audio_description(),
            "max_output_tokens": "inf",
            "metadata": response.metadata,
            "usage": None,
        }
        if self.dialect == "ga":
            body["output_modalities"] = [response.modality]
        else:
            body["modalities"] = ["text"] if response.modality == "text" else ["audio", "text"]
        return body

    async def _sleep(self, simulated_ms: float) -> None:
        if self.pace > 0:
            await asyncio.sleep(simulated_ms / 1000 / self.pace)
        else:
            await asyncio.sleep(0)  # still yield, so that a cancel can get in between chunks

    def _announce_item(self, response: ActiveResponse, item: dict[str, Any]) -> None:
        response.item = item
        self.send({"type": "response.output_item.added", "response_id": response.id, "output_index": 0, "item": item})
        if response.in_conversation:
            self._add_item(item, self.items[-1]["id"] if self.items else None, done=False)

    async def _stream(self, response: ActiveResponse) -> None:
        try:
            if isinstance(response.plan, CallTool):
                await self._stream_call(response, response.plan)
            else:
                assert isinstance(response.plan, Speak)
                await self._stream_speech(response, response.plan.text)
            self._finish(response, "completed")
        except asyncio.CancelledError:
            pass  # whoever cancelled has already sent the closing events
        except Exception:
            logger.exception("the simulated model failed while streaming %s", response.id)
            self._finish(response, "failed")
        finally:
            await self.socket.drain()

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
        size = max(1, math.ceil(len(call.arguments) / FUNCTION_ARGUMENT_DELTAS))
        for start in range(0, len(call.arguments), size):
            delta = call.arguments[start : start + size]
            response.arguments += delta
            self.send(
                {
                    "type": "response.function_call_arguments.delta",
                    "response_id": response.id,
                    "item_id": item["id"],
                    "output_index": 0,
                    "call_id": item["call_id"],
                    "delta": delta,
                }
            )
            await self._sleep(TEXT_DELTA_MS)
        item["arguments"] = call.arguments
        self.send(
            {
                "type": "response.function_call_arguments.done",
                "response_id": response.id,
                "item_id": item["id"],
                "output_index": 0,
                "call_id": item["call_id"],
                "name": call.name,
                "arguments": call.arguments,
            }
        )

    async def _stream_speech(self, response: ActiveResponse, text: str) -> None:
        audio = await self.synthesizer.audio(text, response.audio_format) if response.modality == "audio" else b""
        part_type = self.names["audio_part"] if response.modality == "audio" else self.names["text_part"]
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._announce_item(response, item)
        ids = {"response_id": response.id, "item_id": item["id"], "output_index": 0, "content_index": 0}
        empty_part = {"type": part_type, "transcript": ""} if response.modality == "audio" else {"type": part_type, "text": ""}
        self.send({"type": "response.content_part.added", **ids, "part": empty_part})
        response.part_open = True
        words = [word + " " for word in text.split(" ")]
        words[-1] = words[-1].rstrip(" ")
        if response.modality == "text":
            for word in words:
                response.transcript += word
                self.send({"type": self.names["text_delta"], **ids, "delta": word})
                await self._sleep(TEXT_DELTA_MS)
            return
        item["content"] = [{"type": part_type, "transcript": ""}]
        wire = FORMATS[response.audio_format]
        chunk_bytes = int(wire.bytes_per_ms * CHUNK_MS)
        chunks = [audio[i : i + chunk_bytes] for i in range(0, len(audio), chunk_bytes)]
        sent_words = 0
        for index, chunk in enumerate(chunks):
            # Spread the transcript over the audio, a little ahead of it, as the real API does.
            due = math.ceil((index + 1) / len(chunks) * len(words))
            while sent_words < due:
                response.transcript += words[sent_words]
                self.send({"type": self.names["transcript_delta"], **ids, "delta": words[sent_words]})
                sent_words += 1
            self.send({"type": self.names["audio_delta"], **ids, "delta": base64.b64encode(chunk).decode("ascii")})
            chunk_ms = len(chunk) / wire.bytes_per_ms
            response.audio_ms += chunk_ms
            self.audio_ms[(item["id"], 0)] = response.audio_ms
            item["content"][0]["transcript"] = response.transcript
            await self.socket.drain()
            await self._sleep(chunk_ms)

    def _finish(self, response: ActiveResponse, status: str, reason: str | None = None) -> None:
        """Close ``response``: send the done events for whatever it had started, then ``response.done``."""
        if self.active is not response:
            return
        self.active = None
        if response.task is not None and response.task is not asyncio.current_task():
            response.task.cancel()
        item = response.item
        item_status = "completed" if status == "completed" else "incomplete"
        if item is not None and item["type"] == "message":
            ids = {"response_id": response.id, "item_id": item["id"], "output_index": 0, "content_index": 0}
            if response.modality == "audio":
                part = {"type": self.names["audio_part"], "transcript": response.transcript}
                if response.part_open:
                    self.send({"type": self.names["audio_done"], **ids})
                    self.send({"type": self.names["transcript_done"], **ids, "transcript": response.transcript})
            else:
                part = {"type": self.names["text_part"], "text": response.transcript}
                if response.part_open:
                    self.send({"type": self.names["text_done"], **ids, "text": response.transcript})
            item["content"] = [part]
            if response.part_open:
                self.send({"type": "response.content_part.done", **ids, "part": part})
        if item is not None:
            item["status"] = item_status
            self.send({"type": "response.output_item.done", "response_id": response.id, "output_index": 0, "item": item})
            if response.in_conversation and self.dialect == "ga":
                self.send({"type": "conversation.item.done", "item": item})
        details: dict[str, Any] | None = {"type": "cancelled", "reason": reason} if status == "cancelled" else None
        if status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "simulation_failed",
                    "message": "The simulated model failed; see the server log.",
                },
            }
        done = self._response_object(response, status, details)
        done["usage"] = self._usage(response)
        self.send({"type": "response.done", "response": done})
        self.send(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {
                        "name": "requests",
                        "limit": RATE_LIMIT_REQUESTS,
                        "remaining": RATE_LIMIT_REQUESTS - 1,
                        "reset_seconds": 0.012,
                    },
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
        input_text = (
            sum(len(json.dumps(item.get("content") or item.get("output") or "")) for item in self.items) // CHARS_PER_TOKEN
        )
        output_text = (len(response.transcript) + len(response.arguments)) // CHARS_PER_TOKEN
        output_audio = int(response.audio_ms / 1000 * AUDIO_TOKENS_PER_SECOND)
        return {
            "total_tokens": input_text + output_text + output_audio,
            "input_tokens": input_text,
            "output_tokens": output_text + output_audio,
            "input_token_details": {"text_tokens": input_text, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }


async def close_quietly(socket: ServerWebSocket) -> None:
    with contextlib.suppress(Exception):
        socket.close()
        await socket.drain()
