"""A key of the wrong kind is named for what it is, with what to pass instead, and never echoed."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from pyodide_realtime import ConfigurationError, OpenAIRealtimeWebSocket

KEY = "ek_secret_0123456789abcdef"


async def mint_key() -> str:
    return KEY


async def refused(api_key: Any) -> str:
    transport = OpenAIRealtimeWebSocket(url="ws://127.0.0.1:9/v1/realtime")  # refused before any socket
    with pytest.raises(ConfigurationError) as raised:
        await transport.connect(api_key=api_key)
    assert transport.status == "disconnected"
    message = str(raised.value)
    assert KEY not in message and "secret" not in message
    return message


def test_a_forgotten_await_is_named_and_the_coroutine_never_warns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail here
        message = asyncio.run(refused(mint_key()))
    assert "coroutine" in message and "forget `await`" in message and "api_key=mint_key" in message


@pytest.mark.parametrize(
    ("api_key", "says"),
    [
        ({"value": KEY, "expires_at": 1}, "pass the key's 'value'"),
        (KEY.encode(), "decode it"),
        (12345, "api_key is of type int"),
        (None, "no API key"),
        ("", "no API key"),
    ],
)
def test_a_key_of_the_wrong_kind_says_what_was_passed_and_what_is_wanted(api_key: Any, says: str) -> None:
    assert says in asyncio.run(refused(api_key))


def test_a_function_that_returns_the_minting_response_is_named_too() -> None:
    async def whole_response() -> dict[str, Any]:
        return {"value": KEY}

    assert "pass the key's 'value'" in asyncio.run(refused(whole_response))
