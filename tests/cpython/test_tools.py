"""``function_tool`` on its own: the schema the model sees, validation, and failures as texts (never raised)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from pyodide_realtime import ConfigurationError, FunctionTool, RealtimeAgent, function_tool


@function_tool
def get_weather(location: str, unit: Literal["C", "F"] = "C", days: int = 1) -> dict[str, object]:
    """The weather in a city.

    Args:
        location: The city, e.g. Paris.
        unit: Celsius or Fahrenheit.
    """
    return {"location": location, "unit": unit, "days": days}


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    assert isinstance(get_weather, FunctionTool)
    assert get_weather.definition == {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris."},
                "unit": {"enum": ["C", "F"], "type": "string", "default": "C", "description": "Celsius or Fahrenheit."},
                "days": {"type": "integer", "default": 1},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
    }


class Place(BaseModel):
    city: str
    country: str = "FR"


def test_options_rename_describe_and_bound_a_tool() -> None:
    @function_tool(name_override="find", description_override="Find a place.", needs_approval=True, timeout=2)
    async def lookup(place: Place, limit: Annotated[int, Field(ge=1, le=5)] = 3) -> list[str]:
        return [place.city] * limit

    assert (lookup.name, lookup.description, lookup.needs_approval, lookup.timeout) == ("find", "Find a place.", True, 2)
    schema = lookup.params_json_schema
    assert schema["properties"]["limit"] == {"type": "integer", "default": 3, "maximum": 5, "minimum": 1}
    assert schema["$defs"]["Place"]["required"] == ["city"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: function_tool(lambda *args: None), "not allowed"),  # a lambda's name is "<lambda>"
        (lambda: function_tool(name_override="bad name!")(lambda: None), "not allowed"),
        (lambda: function_tool(name_override="f")(lambda *values: None), r"\*args"),
        (lambda: function_tool(name_override="f", timeout=0)(lambda: None), "timeout"),
        (lambda: function_tool(name_override="f", timeout=float("nan"))(lambda: None), "timeout"),
        (lambda: function_tool(name_override="f", needs_approval="yes")(lambda: None), "needs_approval"),  # type: ignore[call-overload]
        (lambda: function_tool(42), "needs a function"),  # type: ignore[call-overload]
    ],
)
def test_a_tool_that_cannot_be_described_is_refused_at_once(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()  # type: ignore[operator]


@pytest.mark.asyncio
async def test_valid_arguments_are_validated_then_passed() -> None:
    result = await get_weather.run('{"location": "Paris", "days": "3"}')
    assert result.failure is None
    assert json.loads(result.output) == {"location": "Paris", "unit": "C", "days": 3}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ("{}", "location: Field required"),
        ('{"location": "Paris", "unit": "K"}', "unit: Input should be 'C' or 'F'"),
        ('{"location": "Paris", "wind": true}', "wind: Extra inputs are not permitted"),
        ("not json", "Invalid JSON"),
        ('{"location": "' + "x" * 200_000 + '"}', "longer than"),
    ],
)
async def test_bad_arguments_become_an_error_text_and_the_function_does_not_run(arguments: str, problem: str) -> None:
    calls: list[str] = []

    @function_tool
    def record(location: str, unit: Literal["C", "F"] = "C") -> str:
        calls.append(location)
        return "ran"

    result = await record.run(arguments)
    assert result.failure is not None and result.failure.kind == "bad_arguments"
    assert problem in result.output and result.output.startswith("Error: ")
    assert calls == []


@pytest.mark.asyncio
async def test_a_raising_tool_gives_an_error_text() -> None:
    @function_tool
    def explode(x: int) -> str:
        raise ZeroDivisionError("no forecast today")

    result = await explode.run('{"x": 1}')
    assert result.failure is not None and result.failure.kind == "raised"
    assert isinstance(result.failure.exception, ZeroDivisionError)
    assert "ZeroDivisionError: no forecast today" in result.output


@pytest.mark.asyncio
async def test_a_slow_async_tool_times_out_and_is_cancelled() -> None:
    finished: list[bool] = []

    @function_tool(timeout=0.05)
    async def slow() -> str:
        await asyncio.sleep(5)
        finished.append(True)
        return "late"

    result = await slow.run("")
    assert result.failure is not None and result.failure.kind == "timeout"
    assert "did not finish within 0.05 s" in result.output
    await asyncio.sleep(0)
    assert finished == []
    # The session's timeout wins over the tool's own.
    assert (await slow.run("", timeout=0.01)).failure is not None


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [None, 5.0])
async def test_a_tools_own_timeout_error_is_a_failure_not_our_deadline(timeout: float | None) -> None:
    # An upstream service of the tool timed out: the model is told the tool failed, not that it was slow,
    # and with no deadline of ours nothing tries to format one.
    @function_tool(timeout=timeout)
    async def lookup(city: str) -> str:
        raise TimeoutError("the weather service timed out")

    @function_tool
    def lookup_now(city: str) -> str:
        raise TimeoutError("the weather service timed out")

    for tool in (lookup, lookup_now):
        result = await tool.run({"city": "Paris"})
        assert result.failure is not None and result.failure.kind == "raised", result
        assert "TimeoutError: the weather service timed out" in result.output and "did not finish" not in result.output


@pytest.mark.asyncio
async def test_outputs_that_are_not_text_are_sent_as_json() -> None:
    class Forecast(BaseModel):  # local: return hints are never resolved, so this works
        sky: str

    @function_tool
    async def forecast() -> Forecast:
        return Forecast(sky="clear")

    @function_tool
    def nothing() -> None:
        return None

    assert (await forecast.run("{}")).output == '{"sky":"clear"}'
    assert (await nothing.run("{}")).output == "null"


def test_a_parameter_type_that_cannot_be_resolved_says_where_to_define_it() -> None:
    class Local(BaseModel):
        x: int

    def uses_local(value: Local) -> str:
        return ""

    with pytest.raises(ConfigurationError, match="define the types it names at module level"):
        function_tool(uses_local)


def test_an_agent_refuses_what_is_not_a_tool_and_duplicate_names() -> None:
    with pytest.raises(ConfigurationError, match="must be a @function_tool"):
        RealtimeAgent(name="a", tools=[lambda: None])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="two tools are named get_weather"):
        RealtimeAgent(name="a", tools=[get_weather, get_weather])
    with pytest.raises(ConfigurationError, match="needs a name"):
        RealtimeAgent(name="")
    with pytest.raises(ConfigurationError, match="tools must be a list"):
        RealtimeAgent(name="a", tools=get_weather)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_first_parameter_annotated_as_the_run_context_gets_it_and_is_hidden_from_the_model() -> None:
    from pyodide_realtime import RunContextWrapper, ToolContext

    class LocalDeps:  # a local class: the string annotation cannot be resolved, and need not be
        name = "Ada"

    @function_tool
    def greet(ctx: RunContextWrapper[LocalDeps], greeting: str) -> str:
        return f"{greeting}, {ctx.context.name}"

    @function_tool
    async def call_id(ctx: ToolContext[LocalDeps]) -> str:
        return ctx.tool_call_id

    @function_tool
    def plain(ctx: str) -> str:  # named ctx, but not the context: the model fills it
        return ctx

    assert (greet.takes_context, call_id.takes_context, plain.takes_context) == (True, True, False)
    assert list(greet.params_json_schema["properties"]) == ["greeting"]
    assert call_id.params_json_schema["properties"] == {}
    assert list(plain.params_json_schema["properties"]) == ["ctx"]
    assert (await greet.run('{"greeting": "Hi"}', context=RunContextWrapper(LocalDeps()))).output == "Hi, Ada"
    assert (await call_id.run("{}", context=ToolContext(LocalDeps(), tool_call_id="c9"))).output == "c9"
    assert (await greet.run('{"greeting": "Hi"}')).failure is not None  # no context given: an empty one, and .name fails
