"""What the simulated model answers: deterministic, so that tests can assert on it.

- The user typed text: "You said: <text>" (cut to ``MAX_ECHO_CHARS``).
- The user spoke (committed audio): ``AUDIO_REPLY``; what the recognizer heard (``_recognizer``)
  picks tools as typed text does.
- The last item is a function's output: "The <name> tool says: <output>".
- Nothing yet: ``GREETING``.

Function calls, when the session (or the response) has function tools and ``tool_choice`` allows:
- the user's text names a tool (e.g. "please call get_time") -> that tool;
- the user's text contains "weather" and there is a tool named ``get_weather`` -> ``get_weather``
  with ``{"location": <the words after "in", else "San Francisco">}``;
- ``tool_choice`` "required" -> the first tool; ``{"type": "function", "name": N}`` -> tool N.
Arguments fill the tool's required parameters by JSON-schema type.

Hosted MCP tools (``type: "mcp"``) are simulated with ``MCP_TOOLS``: text naming one of them
("roll dice", "roll_dice") calls it, after an approval request when ``require_approval`` says so; an
approval answer then gets the call (approved) or a refusal spoken (rejected); the call's output is
read back on the next response.
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


@dataclass(frozen=True)
class AskMcpApproval:
    server_label: str
    name: str
    arguments: str


@dataclass(frozen=True)
class CallMcp:
    server_label: str
    name: str
    arguments: str
    approval_request_id: str | None
    output: str


Plan = Speak | CallTool | AskMcpApproval | CallMcp

# The simulated MCP server's tools, whatever its server_label or server_url.
MCP_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "roll_dice",
        "description": "Roll a die with the given number of sides.",
        "input_schema": {"type": "object", "properties": {"sides": {"type": "integer"}}, "required": ["sides"]},
    },
    {
        "name": "echo",
        "description": "Answer with the text it is given.",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
)
DICE_SIDES = 6
DICE_ROLL = 4  # deterministic: tests assert on it


def mcp_tools_for(tool: dict[str, Any]) -> list[dict[str, Any]]:
    """The simulated tools an ``mcp`` tool entry lets the model see (its ``allowed_tools``)."""
    allowed = tool.get("allowed_tools")
    names = allowed.get("tool_names") if isinstance(allowed, dict) else allowed
    return [dict(t) for t in MCP_TOOLS if names is None or t["name"] in names]


def mcp_needs_approval(tool: dict[str, Any], name: str) -> bool:
    policy = tool.get("require_approval", "always")
    if isinstance(policy, str):
        return policy != "never"
    never = (policy.get("never") or {}).get("tool_names") or []
    always = (policy.get("always") or {}).get("tool_names") or []
    return name in always or name not in never


def _mcp_output(name: str, arguments: dict[str, Any]) -> str:
    if name == "roll_dice":
        return str(min(DICE_ROLL, int(arguments.get("sides") or DICE_SIDES)))
    return str(arguments.get("text", ""))


def _mcp_arguments(name: str, user_text: str) -> dict[str, Any]:
    if name == "roll_dice":
        sides = re.search(r"\b(\d+)\b", user_text)
        return {"sides": int(sides.group(1)) if sides else DICE_SIDES}
    return {"text": user_text.strip()[:MAX_ECHO_CHARS]}


def _choose_mcp(tools: list[dict[str, Any]], user_text: str) -> AskMcpApproval | CallMcp | None:
    lowered = user_text.lower()
    for tool in tools:
        if tool.get("type") != "mcp":
            continue
        for offered in mcp_tools_for(tool):
            name = offered["name"]
            if name in lowered or name.replace("_", " ") in lowered:
                arguments = json.dumps(_mcp_arguments(name, user_text))
                if mcp_needs_approval(tool, name):
                    return AskMcpApproval(tool["server_label"], name, arguments)
                return CallMcp(tool["server_label"], name, arguments, None, _mcp_output(name, json.loads(arguments)))
    return None


def _after_approval(items: list[dict[str, Any]], answer: dict[str, Any]) -> Plan:
    request = next(
        (i for i in items if i.get("type") == "mcp_approval_request" and i.get("id") == answer.get("approval_request_id")), None
    )
    if request is None:
        return Speak("I could not find the approval request you answered.")
    if not answer.get("approve"):
        return Speak(f"The {request['name']} call was not approved.")
    arguments = str(request.get("arguments") or "{}")
    return CallMcp(request["server_label"], request["name"], arguments, request["id"], _mcp_output(request["name"], json.loads(arguments)))


def _text_of(item: dict[str, Any]) -> tuple[str, bool]:
    """The words of a user message, and whether they were spoken (a recognized transcript)."""
    texts = []
    spoken = False
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text"):
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "input_audio":
            spoken = True
            texts.append(str(part.get("transcript") or ""))
    return " ".join(texts), spoken


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


def plan_reply(items: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: Any) -> Plan:
    """The reply to the conversation so far (``items`` in order)."""
    for item in reversed(items):
        kind = item.get("type")
        if kind == "mcp_approval_response":
            return _after_approval(items, item)
        if kind == "mcp_call":
            return Speak(f"The {item.get('name')} tool says: {str(item.get('output') or '')[:MAX_ECHO_CHARS]}")
        if kind == "function_call_output":
            call = next((i for i in items if i.get("type") == "function_call" and i.get("call_id") == item.get("call_id")), None)
            name = call.get("name", "function") if call else "function"
            return Speak(f"The {name} tool says: {str(item.get('output', ''))[:MAX_ECHO_CHARS]}")
        if kind == "message" and item.get("role") == "user":
            text, spoken = _text_of(item)
            tool = _choose_tool(_function_tools(tools), tool_choice, text)
            if tool is not None:
                return CallTool(tool["name"], _arguments(tool, text))
            mcp = _choose_mcp(tools, text) if tool_choice != "none" else None
            if mcp is not None:
                return mcp
            if spoken:
                return Speak(AUDIO_REPLY)
            return Speak(f"You said: {text.strip()[:MAX_ECHO_CHARS]}")
    return Speak(GREETING)
