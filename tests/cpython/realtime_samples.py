"""One realistic sample of every server event type of both dialects (GA: 46 types, beta: 34).

Each sample validates against the official ``openai`` SDK's models (test_protocol_table.py checks),
so the fuzz suite mutates real shapes and the table test covers the whole protocol.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

AUDIO = base64.b64encode(bytes(i % 251 for i in range(4800))).decode()  # 100 ms of PCM16

GA_USAGE = {
    "total_tokens": 277, "input_tokens": 127, "output_tokens": 150,
    "input_token_details": {"cached_tokens": 0, "text_tokens": 119, "audio_tokens": 8, "image_tokens": 0,
                            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
    "output_token_details": {"text_tokens": 30, "audio_tokens": 120},
}
BETA_USAGE = {
    "total_tokens": 277, "input_tokens": 127, "output_tokens": 150,
    "input_token_details": {"cached_tokens": 0, "text_tokens": 119, "audio_tokens": 8},
    "output_token_details": {"text_tokens": 30, "audio_tokens": 120},
}

ASSISTANT_ITEM = {"id": "item_a1", "object": "realtime.item", "type": "message", "status": "completed", "role": "assistant",
                  "content": [{"type": "output_audio", "transcript": "Hello there!"}]}
USER_ITEM = {"id": "item_u1", "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
             "content": [{"type": "input_audio", "transcript": "Hi."}]}
FUNCTION_CALL_ITEM = {"id": "item_f1", "object": "realtime.item", "type": "function_call", "status": "completed",
                      "name": "get_weather", "call_id": "call_1", "arguments": "{\"city\": \"Paris\"}"}
FUNCTION_OUTPUT_ITEM = {"id": "item_o1", "object": "realtime.item", "type": "function_call_output",
                        "call_id": "call_1", "output": "{\"temp\": 21}"}
MCP_LIST_TOOLS_ITEM = {"id": "item_m1", "type": "mcp_list_tools", "server_label": "docs",
                       "tools": [{"name": "search", "input_schema": {"type": "object"}, "description": "Search the docs"}]}
MCP_APPROVAL_REQUEST_ITEM = {"id": "item_m2", "type": "mcp_approval_request", "server_label": "docs",
                             "name": "search", "arguments": "{\"q\": \"realtime\"}"}
MCP_APPROVAL_RESPONSE_ITEM = {"id": "item_m3", "type": "mcp_approval_response", "approval_request_id": "item_m2",
                              "approve": True}
MCP_CALL_ITEM = {"id": "item_m4", "type": "mcp_call", "server_label": "docs", "name": "search",
                 "arguments": "{\"q\": \"realtime\"}", "approval_request_id": "item_m2", "output": "3 results"}

GA_SESSION = {
    "type": "realtime", "object": "realtime.session", "id": "sess_1", "model": "gpt-realtime",
    "output_modalities": ["audio"], "instructions": "Be brief.", "tools": [], "tool_choice": "auto",
    "max_output_tokens": "inf", "tracing": None, "prompt": None, "expires_at": 0, "include": None,
    "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None, "noise_reduction": None,
                  "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                     "silence_duration_ms": 200, "idle_timeout_ms": None, "create_response": True,
                                     "interrupt_response": True}},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
    },
}
BETA_SESSION = {
    "id": "sess_1", "object": "realtime.session", "model": "gpt-4o-realtime-preview", "modalities": ["text", "audio"],
    "instructions": "Be brief.", "voice": "ash", "input_audio_format": "pcm16", "output_audio_format": "pcm16",
    "input_audio_transcription": {"model": "whisper-1"},
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200},
    "tools": [], "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": "inf",
}


def _response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None, *, ga: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"id": "resp_1", "object": "realtime.response", "status": status, "output": output,
                                "conversation_id": "conv_1", "metadata": None, "usage": usage}
    if ga:
        response.update(output_modalities=["audio"], max_output_tokens="inf",
                        audio={"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}})
    else:
        response.update(modalities=["text", "audio"], voice="ash", output_audio_format="pcm16", temperature=0.8,
                        max_output_tokens="inf", status_details=None)
    return response


def _common(ga: bool) -> dict[str, dict[str, Any]]:
    usage = GA_USAGE if ga else BETA_USAGE
    # The beta API calls the model's audio content "audio", GA "output_audio".
    assistant = ASSISTANT_ITEM if ga else {**ASSISTANT_ITEM, "content": [{"type": "audio", "transcript": "Hello there!"}]}
    part = {"type": "audio", "transcript": ""}
    return {
        "error": {"type": "error", "event_id": "ev_1", "error": {
            "type": "invalid_request_error", "code": "invalid_value", "message": "Invalid value: 'x'.",
            "param": "session.voice", "event_id": "client_ev_1"}},
        "session.created": {"type": "session.created", "event_id": "ev_2", "session": GA_SESSION if ga else BETA_SESSION},
        "session.updated": {"type": "session.updated", "event_id": "ev_3", "session": GA_SESSION if ga else BETA_SESSION},
        "conversation.created": {"type": "conversation.created", "event_id": "ev_4",
                                 "conversation": {"id": "conv_1", "object": "realtime.conversation"}},
        "conversation.item.created": {"type": "conversation.item.created", "event_id": "ev_5",
                                      "previous_item_id": None, "item": USER_ITEM},
        "conversation.item.retrieved": {"type": "conversation.item.retrieved", "event_id": "ev_6", "item": USER_ITEM},
        "conversation.item.input_audio_transcription.completed": {
            "type": "conversation.item.input_audio_transcription.completed", "event_id": "ev_7", "item_id": "item_u1",
            "content_index": 0, "transcript": "Hi.",
            "usage": {"type": "tokens", "total_tokens": 22, "input_tokens": 13, "output_tokens": 9,
                      "input_token_details": {"text_tokens": 0, "audio_tokens": 13}}},
        "conversation.item.input_audio_transcription.delta": {
            "type": "conversation.item.input_audio_transcription.delta", "event_id": "ev_8", "item_id": "item_u1",
            "content_index": 0, "delta": "Hi"},
        "conversation.item.input_audio_transcription.failed": {
            "type": "conversation.item.input_audio_transcription.failed", "event_id": "ev_9", "item_id": "item_u1",
            "content_index": 0, "error": {"type": "transcription_error", "code": "audio_unintelligible",
                                          "message": "The audio could not be transcribed.", "param": None}},
        "conversation.item.truncated": {"type": "conversation.item.truncated", "event_id": "ev_10", "item_id": "item_a1",
                                        "content_index": 0, "audio_end_ms": 1500},
        "conversation.item.deleted": {"type": "conversation.item.deleted", "event_id": "ev_11", "item_id": "item_a1"},
        "input_audio_buffer.committed": {"type": "input_audio_buffer.committed", "event_id": "ev_12",
                                         "previous_item_id": "item_a0", "item_id": "item_u1"},
        "input_audio_buffer.cleared": {"type": "input_audio_buffer.cleared", "event_id": "ev_13"},
        "input_audio_buffer.speech_started": {"type": "input_audio_buffer.speech_started", "event_id": "ev_14",
                                              "audio_start_ms": 1000, "item_id": "item_u1"},
        "input_audio_buffer.speech_stopped": {"type": "input_audio_buffer.speech_stopped", "event_id": "ev_15",
                                              "audio_end_ms": 2000, "item_id": "item_u1"},
        "output_audio_buffer.started": {"type": "output_audio_buffer.started", "event_id": "ev_16", "response_id": "resp_1"},
        "output_audio_buffer.stopped": {"type": "output_audio_buffer.stopped", "event_id": "ev_17", "response_id": "resp_1"},
        "output_audio_buffer.cleared": {"type": "output_audio_buffer.cleared", "event_id": "ev_18", "response_id": "resp_1"},
        "response.created": {"type": "response.created", "event_id": "ev_19",
                             "response": _response("in_progress", [], None, ga=ga)},
        "response.done": {"type": "response.done", "event_id": "ev_20",
                          "response": _response("completed", [assistant], usage, ga=ga)},
        "response.output_item.added": {"type": "response.output_item.added", "event_id": "ev_21", "response_id": "resp_1",
                                       "output_index": 0, "item": {**assistant, "status": "in_progress", "content": []}},
        "response.output_item.done": {"type": "response.output_item.done", "event_id": "ev_22", "response_id": "resp_1",
                                      "output_index": 0, "item": assistant},
        "response.content_part.added": {"type": "response.content_part.added", "event_id": "ev_23", "response_id": "resp_1",
                                        "item_id": "item_a1", "output_index": 0, "content_index": 0, "part": part},
        "response.content_part.done": {"type": "response.content_part.done", "event_id": "ev_24", "response_id": "resp_1",
                                       "item_id": "item_a1", "output_index": 0, "content_index": 0,
                                       "part": {"type": "audio", "transcript": "Hello there!"}},
        "response.function_call_arguments.delta": {
            "type": "response.function_call_arguments.delta", "event_id": "ev_25", "response_id": "resp_1",
            "item_id": "item_f1", "output_index": 0, "call_id": "call_1", "delta": "{\"city\""},
        "response.function_call_arguments.done": {
            "type": "response.function_call_arguments.done", "event_id": "ev_26", "response_id": "resp_1",
            "item_id": "item_f1", "output_index": 0, "call_id": "call_1", "name": "get_weather",
            "arguments": "{\"city\": \"Paris\"}"},
        "rate_limits.updated": {"type": "rate_limits.updated", "event_id": "ev_27", "rate_limits": [
            {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 60},
            {"name": "tokens", "limit": 50000, "remaining": 49000, "reset_seconds": 60}]},
    }


def _deltas(prefix_audio: str, prefix_transcript: str, prefix_text: str, n: int) -> dict[str, dict[str, Any]]:
    where = {"response_id": "resp_1", "item_id": "item_a1", "output_index": 0, "content_index": 0}
    return {
        f"{prefix_audio}.delta": {"type": f"{prefix_audio}.delta", "event_id": f"ev_{n}", **where, "delta": AUDIO},
        f"{prefix_audio}.done": {"type": f"{prefix_audio}.done", "event_id": f"ev_{n + 1}", **where},
        f"{prefix_transcript}.delta": {"type": f"{prefix_transcript}.delta", "event_id": f"ev_{n + 2}", **where,
                                       "delta": "Hello"},
        f"{prefix_transcript}.done": {"type": f"{prefix_transcript}.done", "event_id": f"ev_{n + 3}", **where,
                                      "transcript": "Hello there!"},
        f"{prefix_text}.delta": {"type": f"{prefix_text}.delta", "event_id": f"ev_{n + 4}", **where, "delta": "Hello"},
        f"{prefix_text}.done": {"type": f"{prefix_text}.done", "event_id": f"ev_{n + 5}", **where, "text": "Hello there!"},
    }


def ga_samples() -> dict[str, dict[str, Any]]:
    samples = _common(ga=True)
    samples.update(_deltas("response.output_audio", "response.output_audio_transcript", "response.output_text", 30))
    mcp = {"response_id": "resp_1", "output_index": 1}
    samples.update({
        "conversation.item.added": {"type": "conversation.item.added", "event_id": "ev_40", "previous_item_id": "item_a0",
                                    "item": {**USER_ITEM, "status": "in_progress"}},
        "conversation.item.done": {"type": "conversation.item.done", "event_id": "ev_41", "previous_item_id": "item_a0",
                                   "item": USER_ITEM},
        "conversation.item.input_audio_transcription.segment": {
            "type": "conversation.item.input_audio_transcription.segment", "event_id": "ev_42", "item_id": "item_u1",
            "content_index": 0, "id": "seg_1", "text": "Hi.", "speaker": "A", "start": 0.0, "end": 0.6},
        "input_audio_buffer.timeout_triggered": {"type": "input_audio_buffer.timeout_triggered", "event_id": "ev_43",
                                                 "audio_start_ms": 13216, "audio_end_ms": 19232, "item_id": "item_u2"},
        "input_audio_buffer.dtmf_event_received": {"type": "input_audio_buffer.dtmf_event_received", "event_id": "ev_44",
                                                   "event": "5", "received_at": 1750000000},
        "mcp_list_tools.in_progress": {"type": "mcp_list_tools.in_progress", "event_id": "ev_45", "item_id": "item_m1"},
        "mcp_list_tools.completed": {"type": "mcp_list_tools.completed", "event_id": "ev_46", "item_id": "item_m1"},
        "mcp_list_tools.failed": {"type": "mcp_list_tools.failed", "event_id": "ev_47", "item_id": "item_m1"},
        "response.mcp_call_arguments.delta": {"type": "response.mcp_call_arguments.delta", "event_id": "ev_48", **mcp,
                                              "item_id": "item_m4", "delta": "{\"q\":"},
        "response.mcp_call_arguments.done": {"type": "response.mcp_call_arguments.done", "event_id": "ev_49", **mcp,
                                             "item_id": "item_m4", "arguments": "{\"q\": \"realtime\"}"},
        "response.mcp_call.in_progress": {"type": "response.mcp_call.in_progress", "event_id": "ev_50",
                                          "output_index": 1, "item_id": "item_m4"},
        "response.mcp_call.completed": {"type": "response.mcp_call.completed", "event_id": "ev_51",
                                        "output_index": 1, "item_id": "item_m4"},
        "response.mcp_call.failed": {"type": "response.mcp_call.failed", "event_id": "ev_52",
                                     "output_index": 1, "item_id": "item_m4"},
    })
    return copy.deepcopy(samples)


def beta_samples() -> dict[str, dict[str, Any]]:
    samples = _common(ga=False)
    samples.update(_deltas("response.audio", "response.audio_transcript", "response.text", 30))
    samples["transcription_session.updated"] = {
        "type": "transcription_session.updated", "event_id": "ev_60",
        "session": {"client_secret": {"value": "ek_redacted", "expires_at": 0}, "modalities": ["text", "audio"],
                    "input_audio_format": "pcm16", "input_audio_transcription": {"model": "gpt-4o-transcribe"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                       "silence_duration_ms": 200}}}
    return copy.deepcopy(samples)


#: Items inside events, by item type, for the item tests.
ITEMS: dict[str, dict[str, Any]] = {
    "message": ASSISTANT_ITEM, "function_call": FUNCTION_CALL_ITEM, "function_call_output": FUNCTION_OUTPUT_ITEM,
    "mcp_list_tools": MCP_LIST_TOOLS_ITEM, "mcp_approval_request": MCP_APPROVAL_REQUEST_ITEM,
    "mcp_approval_response": MCP_APPROVAL_RESPONSE_ITEM, "mcp_call": MCP_CALL_ITEM,
}
