"""Dialects: URLs, subprotocols, headers and key validation for GA and beta."""

from __future__ import annotations

import pytest

from pyodide_realtime import __version__
from pyodide_realtime.dialects import BETA, GA, auth_headers, get_dialect, realtime_url, subprotocols, validate_api_key
from pyodide_realtime.errors import ConfigurationError

SDK = f"openai-agents-sdk.pyodide-realtime-{__version__}"


@pytest.mark.parametrize(
    "dialect, protocols, beta_header",
    [
        (GA, ("realtime", "openai-insecure-api-key.ek_1", SDK), None),
        (BETA, ("realtime", "openai-insecure-api-key.ek_1", "openai-beta.realtime-v1", SDK), "realtime=v1"),
    ],
)
def test_browser_subprotocols_and_server_headers(dialect, protocols, beta_header) -> None:
    assert subprotocols(dialect, "ek_1") == protocols
    headers = auth_headers(dialect, "ek_1")
    assert headers["Authorization"] == "Bearer ek_1"
    assert headers.get("OpenAI-Beta") == beta_header
    assert headers["User-Agent"] == f"pyodide-realtime/{__version__}"
    assert headers["X-OpenAI-Agents-SDK"] == SDK


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"model": "gpt-realtime"}, "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ({"model": "a b/c"}, "wss://api.openai.com/v1/realtime?model=a%20b%2Fc"),
        ({"model": "m", "call_id": "rtc_1"}, "wss://api.openai.com/v1/realtime?call_id=rtc_1"),
        ({"model": "m", "default_url": "ws://local/x"}, "ws://local/x"),
        ({"model": "m", "call_id": "rtc_1", "url": "ws://given"}, "ws://given"),
        ({"model": "m", "call_id": "rtc_1", "default_url": "ws://ctor"}, "wss://api.openai.com/v1/realtime?call_id=rtc_1"),
    ],
)
def test_url_precedence(kwargs, expected) -> None:
    assert realtime_url(GA, **kwargs) == expected


def test_call_id_is_ga_only() -> None:
    with pytest.raises(ConfigurationError, match="GA"):
        realtime_url(BETA, model="m", call_id="rtc_1")


@pytest.mark.parametrize("key", ["sk-proj-AbC_123", "ek_68af!#$%&'*+-.^_`|~"])
def test_token_keys_pass(key: str) -> None:
    assert validate_api_key(key) == key


@pytest.mark.parametrize("key", ["ek_a b", "ek_\"quoted\"", "ek_é", "ek_x,y", "ek_x\r\n", "", None, 42])
def test_other_keys_are_refused_without_being_echoed(key) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_api_key(key)
    if isinstance(key, str) and key:
        assert key not in str(info.value)


def test_dialect_names() -> None:
    assert get_dialect("ga") is GA and get_dialect(BETA) is BETA
    assert (GA.name, GA.default_model) == ("ga", "gpt-realtime") and BETA.extra_subprotocols == ("openai-beta.realtime-v1",)
    with pytest.raises(ConfigurationError, match="'ga'"):
        get_dialect("gamma")
