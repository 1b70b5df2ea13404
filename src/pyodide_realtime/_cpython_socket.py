"""The CPython backend: the ``websockets`` asyncio client, authenticated with headers.

For servers (a key never reaches a browser) and for fast tests. ``send`` is synchronous, as the
transport needs: frames go to a queue that one writer task drains in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from ._interfaces import (
    ABNORMAL_CLOSURE,
    INTERNAL_ERROR,
    KEEPALIVE_TIMEOUT_REASON,
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    OPEN_TIMEOUT_S,
    RedactingLogger,
    SocketHandler,
    SocketRequest,
    describe_close,
    redact,
    safe_url,
)
from .errors import ConnectionClosedError, ConnectionFailedError, UnsupportedError

__all__ = ["CPythonSocket", "create_cpython_socket", "PING_INTERVAL_S", "PING_TIMEOUT_S", "CLOSE_TIMEOUT_S"]

logger = logging.getLogger("pyodide_realtime")

#: Keepalive: a ping every PING_INTERVAL_S seconds; no pong within PING_TIMEOUT_S ends the connection
#: (websockets' defaults, named here so that the error can say how long it waited).
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
#: How long a closing handshake may wait for the peer (also after a missing pong) before the TCP
#: connection is cut: so a stalled peer is reported after about PING_INTERVAL_S + PING_TIMEOUT_S + this.
CLOSE_TIMEOUT_S = 10.0


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
        self._secrets = request.secrets
        self._outgoing: deque[str] = deque()
        self._outgoing_bytes = 0
        self._wake = asyncio.Event()
        self._ws: Any = None
        self._close_args: tuple[int, str] | None = None
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    # The RealtimeSocket protocol ------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Queue ``text`` for the writer task; raises ConnectionClosedError once the socket is closed."""
        if self.closed or self._close_args is not None:
            raise ConnectionClosedError(f"the WebSocket to {self._url} is closed")
        self._outgoing.append(text)
        self._outgoing_bytes += _size(text)
        self._wake.set()

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by ``send`` but not yet handed to the network: our queue plus the OS transport's
        write buffer (what the browser calls ``bufferedAmount``)."""
        amount = self._outgoing_bytes
        transport = getattr(self._ws, "transport", None)
        if transport is not None:
            with contextlib.suppress(Exception):  # a closed transport has no buffer to report
                amount += transport.get_write_buffer_size()
        return amount

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
                    max_size=self._request.max_message_bytes,
                    ping_interval=PING_INTERVAL_S,
                    ping_timeout=PING_TIMEOUT_S,
                    close_timeout=CLOSE_TIMEOUT_S,
                    # websockets logs every handshake header at DEBUG, the Authorization one too.
                    logger=RedactingLogger(logging.getLogger("websockets.client"), self._secrets),
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
            except Exception as exc:  # websockets' ConnectionClosedError: we or the network ended it
                failure = self._closed_by_us(exc)
                if failure is not None:
                    self._report(failure)
                logger.debug("the WebSocket to %s failed: %s", self._url, type(exc).__name__)
            finally:
                writer.cancel()
            code = ws.close_code if ws.close_code is not None else ABNORMAL_CLOSURE
            reason = redact(ws.close_reason or "", self._secrets)
        finally:
            self.closed = True
            self._call(self._handler.on_close, code, reason)

    async def _write(self, ws: Any) -> None:
        try:
            while True:
                while self._outgoing:
                    await ws.send(self._outgoing[0])
                    self._outgoing_bytes -= _size(self._outgoing.popleft())
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
            self._outgoing_bytes = 0
            self._close_args = self._close_args or (INTERNAL_ERROR, "send failed")
            self._report(self._send_error(exc, lost))
            with contextlib.suppress(Exception):
                await ws.close(*self._close_args)

    def _closed_by_us(self, exc: Exception) -> ConnectionClosedError | None:
        """Why websockets itself failed the connection, in words, when it did: a message over the
        bound (it sent 1009) or a peer that stopped answering pings. None for a close by the peer."""
        sent = getattr(exc, "sent", None)
        if not isinstance(exc, self._connection_closed) or sent is None or getattr(exc, "rcvd_then_sent", None):
            return None
        if sent.code == MESSAGE_TOO_BIG:
            return ConnectionClosedError(
                f"the server at {self._url} sent a message of more than {self._request.max_message_bytes} bytes "
                "(the transport's max_message_bytes); it was not read and the connection was closed with 1009",
                code=MESSAGE_TOO_BIG,
                reason="message too big",
            )
        if sent.code == INTERNAL_ERROR and sent.reason == KEEPALIVE_TIMEOUT_REASON:
            return ConnectionClosedError(
                f"no pong from {self._url} within {PING_TIMEOUT_S:g} s of a keepalive ping: the server or the "
                "network stalled, and the connection was closed (keepalive timeout)",
                code=INTERNAL_ERROR,
                reason=KEEPALIVE_TIMEOUT_REASON,
            )
        return None

    def _send_error(self, exc: Exception, lost: int) -> ConnectionClosedError:
        detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)
        if isinstance(exc, self._connection_closed):
            # The connection ended under the writer (a close frame, or none: 1006).
            close = exc.rcvd
            code, reason = (close.code, close.reason) if close is not None else (ABNORMAL_CLOSURE, "")
            return ConnectionClosedError(
                f"the WebSocket to {self._url} closed ({describe_close(code, reason)}) before "
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
            detail = redact(bytes(body[:500]).decode("utf-8", "replace").strip(), self._secrets)
            return ConnectionFailedError(
                f"the server at {self._url} refused the WebSocket with HTTP {status}"
                + (f": {detail}" if detail else "")
                + (" (check the API key)" if status in (401, 403) else ""),
                code=ABNORMAL_CLOSURE,
                http_status=int(status),
            )
        if isinstance(exc, TimeoutError):
            return ConnectionFailedError(f"opening the WebSocket to {self._url} timed out after {OPEN_TIMEOUT_S:g} s")
        text = redact(str(exc), self._secrets)
        return ConnectionFailedError(f"could not open a WebSocket to {self._url}: {type(exc).__name__}: {text}")


def _size(text: object) -> int:
    # Characters count as bytes: JSON with base64 audio is ASCII. Anything else fails in the writer,
    # which reports it; counting must not fail first.
    return len(text) if isinstance(text, str) else 0


def create_cpython_socket(request: SocketRequest, handler: SocketHandler) -> CPythonSocket:
    """The default ``create_websocket`` outside Pyodide (call it with an event loop running)."""
    return CPythonSocket(request, handler)
