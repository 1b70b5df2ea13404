"""The CPython backend: the ``websockets`` asyncio client, authenticated with headers.

For servers (a key never reaches a browser) and for fast tests. ``send`` is synchronous, as the
transport needs: frames go to a queue that one writer task drains in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from typing import Any

from ._interfaces import NORMAL_CLOSURE, OPEN_TIMEOUT_S, SocketHandler, SocketRequest, safe_url
from .errors import ConnectionClosedError, ConnectionFailedError, UnsupportedError

__all__ = ["CPythonSocket", "create_cpython_socket"]

logger = logging.getLogger("pyodide_realtime")

#: What browsers report when a socket dies without a close frame; used for the same case here.
ABNORMAL_CLOSURE = 1006
#: Our close code when sending failed: the server may not have everything we meant to send.
INTERNAL_ERROR = 1011
# Server messages may quote a (masked) key: never repeat anything that looks like one.
_KEY_LIKE = re.compile(r"\b(?:sk|ek|rk)[-_][^\s\"',]*")


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return _KEY_LIKE.sub("<redacted>", text)


class CPythonSocket:
    """One ``websockets`` client connection. Made by :func:`create_cpython_socket` inside a running loop."""

    def __init__(self, request: SocketRequest, handler: SocketHandler) -> None:
        try:
            from websockets.asyncio.client import connect
            from websockets.exceptions import ConnectionClosed
        except ImportError:  # pragma: no cover - depends on the environment
            raise UnsupportedError(
                "the CPython backend needs the websockets package: pip install 'pyodide-realtime[cpython]'"
            ) from None
        self._connect = connect
        self._connection_closed = ConnectionClosed
        self._request = request
        self._handler = handler
        self._url = safe_url(request.url)
        self._secrets = [v.split(" ", 1)[-1] for k, v in request.headers.items() if k.lower() == "authorization"]
        self._outgoing: deque[str] = deque()
        self._wake = asyncio.Event()
        self._ws: Any = None
        self._close_args: tuple[int, str] | None = None
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    # The RealtimeSocket protocol ------------------------------------------------------------------
    def send(self, text: str) -> None:
        if self.closed or self._close_args is not None:
            raise ConnectionClosedError(f"the WebSocket to {self._url} is closed")
        self._outgoing.append(text)
        self._wake.set()

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        if self.closed or self._close_args is not None:
            return
        self._close_args = (code, reason)
        self._wake.set()
        if self._ws is None:
            # Still opening: give up on the handshake.
            self._task.cancel()

    # The connection's life ------------------------------------------------------------------------
    async def _run(self) -> None:
        code, reason = ABNORMAL_CLOSURE, ""
        try:
            headers = dict(self._request.headers)
            has_agent = any(k.lower() == "user-agent" for k in headers)
            try:
                ws = await self._connect(
                    self._request.url,
                    additional_headers=headers,
                    user_agent_header=None if has_agent else "pyodide-realtime",
                    open_timeout=OPEN_TIMEOUT_S,
                    max_size=None,
                )
            except asyncio.CancelledError:
                code, reason = self._close_args or (NORMAL_CLOSURE, "")
                raise
            except Exception as exc:
                self._report(self._connect_error(exc))
                return
            self._ws = ws
            if self._close_args is not None:
                await ws.close(*self._close_args)
                code, reason = self._close_args
                return
            self._call(self._handler.on_open, ws.subprotocol or "")
            writer = asyncio.get_running_loop().create_task(self._write(ws))
            try:
                async for message in ws:
                    if isinstance(message, str):
                        self._call(self._handler.on_message, message)
                    else:
                        self._call(self._handler.on_binary, len(message))
            except Exception as exc:  # ConnectionClosedError: a close without a close frame
                logger.debug("the WebSocket to %s failed: %s", self._url, type(exc).__name__)
            finally:
                writer.cancel()
            code = ws.close_code if ws.close_code is not None else ABNORMAL_CLOSURE
            reason = ws.close_reason or ""
        finally:
            self.closed = True
            self._call(self._handler.on_close, code, reason)

    async def _write(self, ws: Any) -> None:
        try:
            while True:
                while self._outgoing:
                    await ws.send(self._outgoing[0])
                    self._outgoing.popleft()
                if self._close_args is not None:
                    await ws.close(*self._close_args)
                    return
                self._wake.clear()
                await self._wake.wait()
        except Exception as exc:
            # Nobody awaits this task: report here, or the frames would vanish without a word. The
            # connection cannot be trusted with later frames either, so it ends.
            lost = len(self._outgoing)
            self._outgoing.clear()
            self._close_args = self._close_args or (INTERNAL_ERROR, "send failed")
            self._report(self._send_error(exc, lost))
            with contextlib.suppress(Exception):
                await ws.close(*self._close_args)

    def _send_error(self, exc: Exception, lost: int) -> ConnectionClosedError:
        detail = _redact(f"{type(exc).__name__}: {exc}", self._secrets)
        if isinstance(exc, self._connection_closed):
            # The connection ended under the writer (a close frame, or none: 1006).
            close = exc.rcvd
            code, reason = (close.code, close.reason) if close is not None else (ABNORMAL_CLOSURE, "")
            return ConnectionClosedError(
                f"the WebSocket to {self._url} closed (code {code}{', ' + reason if reason else ''}) before "
                f"{lost} event(s) were sent ({detail})",
                code=code,
                reason=reason,
            )
        return ConnectionClosedError(
            f"sending to {self._url} failed ({detail}); {lost} event(s) were not sent and the connection was closed",
            code=INTERNAL_ERROR,
        )

    def _report(self, error: BaseException) -> None:
        self._call(self._handler.on_error, error)

    @staticmethod
    def _call(callback: Any, *args: Any) -> None:
        # A handler's failure must not end the reader loop (and with it the connection).
        try:
            callback(*args)
        except Exception:
            logger.exception("the socket handler raised")

    def _connect_error(self, exc: BaseException) -> ConnectionFailedError:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status is not None:
            body = getattr(response, "body", b"") or b""
            detail = _redact(bytes(body[:500]).decode("utf-8", "replace").strip(), self._secrets)
            return ConnectionFailedError(
                f"the server at {self._url} refused the WebSocket with HTTP {status}"
                + (f": {detail}" if detail else "")
                + (" (check the API key)" if status in (401, 403) else ""),
                code=ABNORMAL_CLOSURE,
            )
        if isinstance(exc, TimeoutError):
            return ConnectionFailedError(f"opening the WebSocket to {self._url} timed out after {OPEN_TIMEOUT_S:g} s")
        text = _redact(str(exc), self._secrets)
        return ConnectionFailedError(f"could not open a WebSocket to {self._url}: {type(exc).__name__}: {text}")


def create_cpython_socket(request: SocketRequest, handler: SocketHandler) -> CPythonSocket:
    """The default ``create_websocket`` outside Pyodide (call it with an event loop running)."""
    return CPythonSocket(request, handler)
