"""What the simulated model answers: deterministic, so that tests can assert on it.

- The user typed text: "You said: <text>" (cut to ``MAX_ECHO_CHARS``).
- The user spoke (committed audio): ``AUDIO_REPLY``.
- The last item is a function's output: "The <name> tool says: <output>".
- Nothing yet: ``GREETING``.

Function calls, when the session (or the response) has function tools and ``tool_choice`` allows:
- the user's text names a tool (e.g. "please call get_time") -> that tool;
- the user's text contains "weather" and there is a tool named ``get_weather`` -> ``get_weather``
  with ``{"location": <the words after "in", else "San Francisco">}``;
- ``tool_choice`` "required" -> the first tool; ``{"type": "function", "name": N}`` -> tool N.
Arguments fill the tool's required parameters by JSON-schema type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

AUDIO_REPLY = "I heard you. This is the simulated model speaking."
GREETING = "Hello! This is the simulated model. How can I help?"
MAX_ECHO_CHARS = 200
WEATHER_TOOL = "get_weather"
DEFAULT_LOCATION = "San Francisco"
_LOCATION = re.compile(r"\bin ([A-Za-z][A-Za-z .'-]*)")
_PLACEHOLDERS: dict[str, Any] = {"string": "example", "number": 1, "integer": 1, "boolean": True, "array": [], "object": {}}


@dataclass(frozen=True)
class Speak:
    text: str


@dataclass(frozen=True)
class CallTool:
    name: str
    arguments: str  # JSON text, as the API streams it


def _text_of(item: dict[str, Any]) -> str | None:
    """The typed text of a user message, or None if it is audio."""
    texts = []
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text"):
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "input_audio":
            return None
    return " ".join(texts)


def _function_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # GA tools are {"type": "function", "name": ...}; older shapes nest {"function": {"name": ...}}.
    found: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            continue
        nested = tool.get("function")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else tool
        if isinstance(inner.get("name"), str):
            found.append(inner)
    return found


def _arguments(tool: dict[str, Any], user_text: str) -> str:
    if tool["name"] == WEATHER_TOOL:
        match = _LOCATION.search(user_text)
        location = match.group(1).strip(" .'-") if match else DEFAULT_LOCATION
        return json.dumps({"location": location or DEFAULT_LOCATION})
    schema = tool.get("parameters") or {}
    properties = schema.get("properties") or {}
    return json.dumps(
        {
            name: _PLACEHOLDERS.get((properties.get(name) or {}).get("type", "string"), "example")
            for name in schema.get("required") or []
        }
    )


def _choose_tool(tools: list[dict[str, Any]], tool_choice: Any, user_text: str) -> dict[str, Any] | None:
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
        return next((tool for tool in tools if tool["name"] == wanted), None)
    lowered = user_text.lower()
    for tool in tools:
        if tool["name"].lower() in lowered:
            return tool
    if "weather" in lowered:
        weather = next((tool for tool in tools if tool["name"] == WEATHER_TOOL), None)
        if weather is not None:
            return weather
    return tools[0] if tool_choice == "required" else None


def plan_reply(items: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any) -> Speak | CallTool:
    """The reply to the conversation so far (``items`` in order)."""
    for item in reversed(items):
        kind = item.get("type")
        if kind == "function_call_output":
            call = next((i for i in items if i.get("type") == "function_call" and i.get("call_id") == item.get("call_id")), None)
            name = call.get("name", "function") if call else "function"
            return Speak(f"The {name} tool says: {str(item.get('output', ''))[:MAX_ECHO_CHARS]}")
        if kind == "message" and item.get("role") == "user":
            text = _text_of(item)
            tool = _choose_tool(_function_tools(tools), tool_choice, text or "")
            if tool is not None:
                return CallTool(tool["name"], _arguments(tool, text or ""))
            if text is None:
                return Speak(AUDIO_REPLY)
            return Speak(f"You said: {text.strip()[:MAX_ECHO_CHARS]}")
    return Speak(GREETING)
