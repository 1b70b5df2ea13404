"""Ephemeral keys: minted here (offline) or by OpenAI (with a real key), each good for one connection.

Keys are secrets: nothing here puts a key in a ``repr``, a log line or an error message.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyodide_realtime._interfaces import redact

EPHEMERAL_PREFIX = "ek_"
REGULAR_PREFIX = "sk-"
DEFAULT_KEY_TTL_S = 60.0
# Mirrors OpenAI's bounds on ``expires_after.seconds`` for client secrets.
MIN_KEY_TTL_S = 10
MAX_KEY_TTL_S = 7200
# Keys kept at once (a few hundred bytes each): a flood of mint requests cannot grow the server.
MAX_KEYS = 10_000
OPENAI_CLIENT_SECRETS_URL = "https://api.openai.com/v1/realtime/client_secrets"
UPSTREAM_TIMEOUT_S = 30.0
# An upstream error's ``code`` is passed to the page only if it looks like one (e.g. "invalid_api_key").
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

logger = logging.getLogger("pyodide_realtime_server")


@dataclass
class EphemeralKey:
    value: str = field(repr=False)
    expires_at: float
    session: dict[str, Any] | None
    used: bool = False


@dataclass(frozen=True)
class KeyCheck:
    """Outcome of presenting a key: ``ok``, or why not (a message safe to show; it names no key)."""

    ok: bool
    message: str = ""
    session: dict[str, Any] | None = None


class KeyStore:
    """Mints ``ek_`` keys and admits each once, before it expires."""

    def __init__(
        self, ttl_s: float = DEFAULT_KEY_TTL_S, *, accept_any_key: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self.accept_any_key = accept_any_key
        self._clock = clock
        self._keys: dict[str, EphemeralKey] = {}

    def __repr__(self) -> str:
        return f"KeyStore(ttl_s={self.ttl_s}, keys={len(self._keys)}, accept_any_key={self.accept_any_key})"

    @property
    def minted(self) -> int:
        return len(self._keys)

    @property
    def used(self) -> int:
        return sum(1 for key in self._keys.values() if key.used)

    def mint(self, session: dict[str, Any] | None = None, ttl_s: float | None = None) -> EphemeralKey:
        self._forget_stale()
        if len(self._keys) >= MAX_KEYS:
            # Used and expired ones go first; if every key is live and unused, the oldest does.
            spent = [v for v, k in self._keys.items() if k.used or self._clock() >= k.expires_at]
            for value in spent or [next(iter(self._keys))]:
                del self._keys[value]
        key = EphemeralKey(
            value=EPHEMERAL_PREFIX + secrets.token_hex(20),
            expires_at=self._clock() + (self.ttl_s if ttl_s is None else ttl_s),
            session=session,
        )
        self._keys[key.value] = key
        return key

    def check(self, value: str | None) -> KeyCheck:
        """Whether ``value`` may open a connection now. Does not use the key up (``claim`` does)."""
        if not value:
            return KeyCheck(
                False,
                "You didn't provide an API key. Send it as the subprotocol 'openai-insecure-api-key.<key>' "
                "or in an 'Authorization: Bearer <key>' header; mint one with POST /v1/realtime/client_secrets.",
            )
        key = self._keys.get(value)
        if key is None:
            if self.accept_any_key and value.startswith(REGULAR_PREFIX):
                return KeyCheck(True)
            return KeyCheck(False, "Incorrect API key provided. Mint an ephemeral key with POST /v1/realtime/client_secrets.")
        if key.used:
            return KeyCheck(
                False, "This ephemeral key was already used for a connection. Mint a new key for every connection attempt."
            )
        if self._clock() >= key.expires_at:
            return KeyCheck(False, "This ephemeral key has expired. Mint a new key shortly before connecting.")
        return KeyCheck(True, session=key.session)

    def claim(self, value: str) -> None:
        """Use the key up: called right after a passing ``check``, with no await in between, so that
        two handshakes racing with one key cannot both pass."""
        key = self._keys.get(value)
        if key is not None:
            key.used = True

    def release(self, value: str) -> None:
        """Undo ``claim`` when the handshake failed after all: the key opened no connection."""
        key = self._keys.get(value)
        if key is not None:
            key.used = False

    def _forget_stale(self) -> None:
        # Keep expired keys around a while, so that using one says "expired" rather than "incorrect".
        horizon = self._clock() - max(self.ttl_s, MAX_KEY_TTL_S)
        for value in [v for v, k in self._keys.items() if k.expires_at < horizon]:
            del self._keys[value]


Opener = Callable[..., Any]


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    body: bytes


class UpstreamMinter:
    """Mints real ephemeral keys at OpenAI with the regular key, which never leaves this process.

    ``opener`` is ``urllib.request.urlopen``'s signature (a test passes its own to see the request).
    """

    def __init__(self, api_key: str, *, url: str = OPENAI_CLIENT_SECRETS_URL, opener: Opener | None = None) -> None:
        self._api_key = api_key
        self.url = url
        self._opener = opener or urllib.request.urlopen

    def __repr__(self) -> str:
        return f"UpstreamMinter(url={self.url!r})"

    def build_request(self, payload: dict[str, Any]) -> urllib.request.Request:
        return urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )

    def mint(self, payload: dict[str, Any]) -> UpstreamAnswer:
        """Blocking: run it in a thread. OpenAI's key is passed through as it is; its errors are not
        (see ``_refusal``)."""
        try:
            with self._opener(self.build_request(payload), timeout=UPSTREAM_TIMEOUT_S) as response:
                answer = UpstreamAnswer(response.status, response.read())
        except urllib.error.HTTPError as exc:
            answer = UpstreamAnswer(exc.code, exc.read() or b"{}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            message = (
                f"Could not reach OpenAI to mint an ephemeral key ({type(exc).__name__}: {reason}). "
                "Check the network, or run with --offline."
            )
            return UpstreamAnswer(
                502,
                json.dumps(
                    {"error": {"type": "server_error", "code": "upstream_unreachable", "message": message, "param": None}}
                ).encode(),
            )
        return self._refusal(answer) if answer.status >= 400 else answer

    def _refusal(self, answer: UpstreamAnswer) -> UpstreamAnswer:
        """What the page hears of an upstream error: its status and ``code``, never its message (a 401
        quotes the regular key's prefix and last characters to every visitor). The message goes to
        this server's log, redacted."""
        try:
            error = json.loads(answer.body).get("error")
        except (ValueError, AttributeError, RecursionError):
            error = None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        code = code if isinstance(code, str) and _ERROR_CODE.match(code) and redact(code) == code else None
        upstream_message = error.get("message")
        if not isinstance(upstream_message, str):
            upstream_message = answer.body[:500].decode("utf-8", "replace")
        logger.warning(
            "OpenAI refused to mint an ephemeral key (HTTP %d, code %s): %s",
            answer.status,
            code,
            redact(upstream_message, [self._api_key]),
        )
        message = (
            f"OpenAI refused to mint an ephemeral key (HTTP {answer.status}"
            + (f", code '{code}'" if code else "")
            + "). The server's log says why."
        )
        type_ = "invalid_request_error" if answer.status < 500 else "server_error"
        body = {"error": {"type": type_, "code": code, "message": message, "param": None}}
        return UpstreamAnswer(answer.status, json.dumps(body).encode())
