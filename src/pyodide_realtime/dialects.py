"""The two dialects of the Realtime API: GA (today's) and beta (the seed's, npm <= 0.0.17).

What differs between them is named here once: the default model, the WebSocket subprotocols and
headers, the URLs, and the names of server events and content parts that were renamed
(:class:`WireNames`; a client accepts either dialect's, so it reads both from :data:`DIALECTS`). The
session shape differs too (``config.py``); ``events.py`` models both dialects' events side by side.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from ._platform import in_browser
from ._version import __version__
from .errors import ConfigurationError

__all__ = [
    "Dialect",
    "DialectSpec",
    "WireNames",
    "DIALECTS",
    "GA",
    "BETA",
    "get_dialect",
    "DEFAULT_BASE_URL",
    "SDK_TOKEN",
    "EPHEMERAL_KEY_PREFIX",
    "validate_api_key",
    "check_url",
    "is_loopback_host",
    "realtime_url",
    "check_webrtc_url",
    "webrtc_url",
    "DEFAULT_WEBRTC_URLS",
    "subprotocols",
    "auth_headers",
]

Dialect = Literal["ga", "beta"]

DEFAULT_BASE_URL = "wss://api.openai.com/v1/realtime"
#: Where a WebRTC offer goes (the SDP as ``application/sdp``): GA ``POST /v1/realtime/calls``; beta
#: ``POST /v1/realtime?model=...``.
DEFAULT_WEBRTC_URLS: dict[str, str] = {
    "ga": "https://api.openai.com/v1/realtime/calls",
    "beta": "https://api.openai.com/v1/realtime",
}
#: Sent as a subprotocol (browsers) and a header (servers) so the API can tell which client spoke.
SDK_TOKEN = f"openai-agents-sdk.pyodide-realtime-{__version__}"
USER_AGENT = f"pyodide-realtime/{__version__}"
#: Ephemeral client keys minted by ``POST /v1/realtime/client_secrets`` start with this.
EPHEMERAL_KEY_PREFIX = "ek_"
REALTIME_SUBPROTOCOL = "realtime"
INSECURE_KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."

# RFC 7230 "tchar": the key rides in a subprotocol token, so anything else would corrupt the handshake
# (or be refused by the browser with a message that repeats the key).
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class WireNames:
    """The server events and content part types whose names differ between the dialects."""

    audio_delta: str
    audio_done: str
    transcript_delta: str
    transcript_done: str
    text_delta: str
    text_done: str
    item_created: str
    audio_content: str  # an assistant message's audio part
    text_content: str  # its text part


@dataclass(frozen=True)
class DialectSpec:
    """What one dialect calls things."""

    name: Dialect
    default_model: str
    extra_subprotocols: tuple[str, ...]
    extra_headers: tuple[tuple[str, str], ...]
    supports_call_id: bool
    wire: WireNames


GA = DialectSpec(
    name="ga",
    default_model="gpt-realtime",
    extra_subprotocols=(),
    extra_headers=(),
    supports_call_id=True,
    wire=WireNames(
        audio_delta="response.output_audio.delta",
        audio_done="response.output_audio.done",
        transcript_delta="response.output_audio_transcript.delta",
        transcript_done="response.output_audio_transcript.done",
        text_delta="response.output_text.delta",
        text_done="response.output_text.done",
        item_created="conversation.item.added",
        audio_content="output_audio",
        text_content="output_text",
    ),
)

BETA = DialectSpec(
    name="beta",
    default_model="gpt-4o-realtime-preview",
    extra_subprotocols=("openai-beta.realtime-v1",),
    extra_headers=(("OpenAI-Beta", "realtime=v1"),),
    supports_call_id=False,
    wire=WireNames(
        audio_delta="response.audio.delta",
        audio_done="response.audio.done",
        transcript_delta="response.audio_transcript.delta",
        transcript_done="response.audio_transcript.done",
        text_delta="response.text.delta",
        text_done="response.text.done",
        item_created="conversation.item.created",
        audio_content="audio",
        text_content="text",
    ),
)

#: Both dialects, GA first.
DIALECTS: tuple[DialectSpec, ...] = (GA, BETA)
_DIALECTS: dict[str, DialectSpec] = {d.name: d for d in DIALECTS}


def get_dialect(dialect: str | DialectSpec) -> DialectSpec:
    """The spec for ``"ga"`` or ``"beta"``."""
    if isinstance(dialect, DialectSpec):
        return dialect
    try:
        return _DIALECTS[dialect]
    except (KeyError, TypeError):
        raise ConfigurationError(f"unknown dialect {dialect!r}: use 'ga' (today's API) or 'beta'") from None


def _not_a_key(api_key: object) -> str:
    """What was passed instead of a key, and what is wanted; never the value itself (it may hold the key)."""
    wanted = "pass api_key= (a string, or a function returning one) to the transport or to connect()"
    if api_key is None or api_key == "":
        return f"no API key: {wanted}"
    if inspect.iscoroutine(api_key):
        api_key.close()  # it will never run: no "never awaited" warning on top of this error
    if inspect.isawaitable(api_key):
        return (
            "api_key is a coroutine, not a key: did you forget `await` (api_key=await mint_key())? "
            "Or pass the function itself (api_key=mint_key), and each connect calls it"
        )
    if isinstance(api_key, Mapping):
        return (
            "api_key is a dict, not a key: pass the key's 'value' (the 'ek_...' string of the minting "
            "response: api_key=response['value'])"
        )
    if isinstance(api_key, (bytes, bytearray, memoryview)):
        return "api_key is bytes, not a str: decode it (api_key=key.decode())"
    return f"api_key is of type {type(api_key).__name__}, not a key: {wanted}"


def validate_api_key(api_key: object) -> str:
    """Return ``api_key`` if it can travel in a subprotocol token or header; never echo it."""
    if not isinstance(api_key, str) or not api_key:
        raise ConfigurationError(_not_a_key(api_key))
    if not _TOKEN_CHARS.issuperset(api_key):
        raise ConfigurationError(
            "the API key contains characters that cannot be sent in a WebSocket handshake "
            "(spaces, quotes, newlines or non-ASCII); check that it was copied whole and nothing else"
        )
    return api_key


#: The only schemes a Realtime URL may have; ``ws`` (plaintext) only to this machine unless opted in.
SECURE_SCHEME = "wss"
PLAIN_SCHEME = "ws"
#: The option that allows ``ws://`` to another machine (named once: error messages cite it).
INSECURE_TRANSPORT_OPTION = "allow_insecure_transport"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``: traffic that never leaves this machine, where
    plaintext ``ws://`` exposes nothing. ``*.localhost`` too, but only in a browser: browsers resolve
    such names to loopback themselves, while CPython asks the system resolver, which may send them
    to DNS."""
    host = host.lower().rstrip(".")
    if host == "localhost" or (host.endswith(".localhost") and in_browser()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object, *, allow_insecure_transport: bool = False) -> str:
    """Return ``url`` if the key may travel to it: ``wss://`` anywhere, ``ws://`` only to a loopback host
    (or anywhere with ``allow_insecure_transport=True``), never with ``user:password@`` in it.

    Raises ConfigurationError otherwise; the message never repeats the URL's credentials or query.
    """
    return _check_url(url, (SECURE_SCHEME, PLAIN_SCHEME), DEFAULT_BASE_URL, allow_insecure_transport)


def check_webrtc_url(url: object, *, allow_insecure_transport: bool = False) -> str:
    """As :func:`check_url`, for the URL a WebRTC offer is posted to: ``https://``, or ``http://`` to a
    loopback host (or anywhere with ``allow_insecure_transport=True``)."""
    return _check_url(url, ("https", "http"), DEFAULT_WEBRTC_URLS["ga"], allow_insecure_transport)


def _check_url(url: object, schemes: tuple[str, str], example: str, allow_insecure_transport: bool) -> str:
    secure, plain = schemes
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"the URL must be a non-empty string such as '{example}', not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - parses the port: a bad one raises ValueError here, not in the backend
    except ValueError:
        raise ConfigurationError(
            f"the URL is malformed (check the host and the port); expected something like '{example}'"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        shown = scheme[:16] + "://" if scheme else "no scheme"
        raise ConfigurationError(
            f"a Realtime URL starts with {secure}:// (or {plain}:// to this machine), not {shown}: e.g. '{example}'"
        )
    if "@" in parts.netloc:
        raise ConfigurationError(
            "the URL carries credentials (user:password@host): a key there would be sent and logged in clear. "
            "Remove them and pass the key as api_key="
        )
    if not host:
        raise ConfigurationError(f"the URL has no host: expected something like '{example}'")
    if scheme == plain and not allow_insecure_transport and not is_loopback_host(host):
        raise ConfigurationError(
            f"refusing {plain}:// to {host}: the API key and the conversation would cross the network unencrypted. "
            f"Use {secure}://, or, on a network you trust, create the transport with {INSECURE_TRANSPORT_OPTION}=True"
        )
    return url


def realtime_url(dialect: DialectSpec, *, model: str, url: str | None = None, call_id: str | None = None,
                 default_url: str | None = None) -> str:
    """The URL to open: ``url`` wins, then a ``call_id`` (GA only), then ``default_url``, then the API's."""
    if url:
        return url
    if call_id:
        if not dialect.supports_call_id:
            raise ConfigurationError("call_id needs the GA dialect: create the transport with dialect='ga'")
        return f"{DEFAULT_BASE_URL}?call_id={quote(call_id, safe='')}"
    if default_url:
        return default_url
    return f"{DEFAULT_BASE_URL}?model={quote(model, safe='')}"


def webrtc_url(dialect: DialectSpec, *, model: str, url: str | None = None, call_id: str | None = None,
               default_url: str | None = None) -> str:
    """The URL a WebRTC offer is posted to: ``url`` wins, then ``default_url``, then the API's (GA's
    takes the model in the session, beta's in its query). A ``call_id`` has no place here: a WebRTC connect
    makes the call (a server joins one with a WebSocket and ``call_id``)."""
    if call_id:
        raise ConfigurationError(
            "call_id joins a call over a WebSocket (your server's side of it); a WebRTC connect makes the call itself: drop call_id"
        )
    if url or default_url:
        return url or default_url or ""
    if dialect.name == "beta":  # the beta endpoint takes the model in its query
        return f"{DEFAULT_WEBRTC_URLS['beta']}?model={quote(model, safe='')}"
    return DEFAULT_WEBRTC_URLS["ga"]


def subprotocols(dialect: DialectSpec, api_key: str) -> tuple[str, ...]:
    """What a browser offers: authentication travels in a subprotocol, as browsers cannot set headers."""
    return (REALTIME_SUBPROTOCOL, INSECURE_KEY_SUBPROTOCOL_PREFIX + api_key, *dialect.extra_subprotocols, SDK_TOKEN)


def auth_headers(dialect: DialectSpec, api_key: str) -> dict[str, str]:
    """What a server-side client sends instead of subprotocols."""
    headers = {"Authorization": f"Bearer {api_key}"}
    headers.update(dialect.extra_headers)
    headers["User-Agent"] = USER_AGENT
    headers["X-OpenAI-Agents-SDK"] = SDK_TOKEN
    return headers
