"""The browser backend: the page's own ``WebSocket``, driven from Pyodide.

Authentication rides on the WebSocket subprotocols (a browser cannot set headers). Text frames cross
into Python as UTF-8 bytes written by ``_socket_shim.js`` into one reused ``bytearray`` (see
notes/performance.md: a ``str`` per message costs more than the JS reference spends per event).

Every ``create_proxy`` made here is owned by ``_ProxyRegistry`` and destroyed when the socket closes, so
nothing grows per message or per connection.

A handshake whose answer selects none of the offered subprotocols fails here, as it fails in Chromium
(the WHATWG WebSocket spec says so): Firefox and WebKit open such a socket (docs/engines.md).
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Any

from ._interfaces import (
    ABNORMAL_CLOSURE,
    MESSAGE_TOO_BIG,
    NORMAL_CLOSURE,
    SocketHandler,
    SocketRequest,
    redact,
    safe_url,
)
from .errors import ConfigurationError, ConnectionClosedError, ConnectionFailedError

__all__ = ["BrowserSocket", "create_browser_socket"]

logger = logging.getLogger("pyodide_realtime")

#: Start big enough for a 100 ms PCM16 audio delta (about 6.6 KB of JSON) with room to spare; grows
#: on demand, never shrinks (one allocation for the connection's life).
INITIAL_BUFFER_BYTES = 64 * 1024
#: Room past the size bound that proves a message over it (the shim's UTF8_SLACK: encodeInto stops
#: before a character of up to 4 bytes that does not fit).
UTF8_SLACK = 4

@functools.cache
def shim_function(resource: str) -> Any:
    """The function a shim file of this package evaluates to, evaluated once per interpreter."""
    from pyodide.code import run_js

    return run_js(resources.files(__package__).joinpath(resource).read_text(encoding="utf-8"))


class _ProxyRegistry:
    """Owns the JS proxies of one socket; ``destroy_all`` is idempotent."""

    def __init__(self) -> None:
        self._proxies: list[Any] = []

    def proxy(self, obj: Any) -> Any:
        from pyodide.ffi import create_proxy

        p = create_proxy(obj)
        self._proxies.append(p)
        return p

    def __len__(self) -> int:
        return len(self._proxies)

    def destroy(self, proxy: Any) -> None:
        self._proxies.remove(proxy)
        proxy.destroy()

    def destroy_all(self) -> None:
        proxies, self._proxies = self._proxies, []
        for p in proxies:
            p.destroy()

    def destroy_soon(self) -> None:
        """``destroy_all`` once the running callback returned (it may be one of these proxies' own)."""
        try:
            import asyncio

            asyncio.get_running_loop().call_soon(self.destroy_all)
        except RuntimeError:
            self.destroy_all()


class ProxyOwner:
    """A JS object's Python side: its proxies (``_proxies``) go when it closes."""

    _proxies: _ProxyRegistry
    closed: bool

    @property
    def live_proxies(self) -> int:
        """How many JS proxies this object still holds (0 once closed)."""
        return len(self._proxies)

    def _release(self) -> None:
        self.closed = True
        self._proxies.destroy_all()

    def _release_soon(self) -> None:
        self.closed = True
        self._proxies.destroy_soon()  # we may be inside one of the proxies' own calls


class BrowserSocket(ProxyOwner):
    """One ``js.WebSocket`` and the proxies it needs. Made by :func:`create_browser_socket`."""

    def __init__(self, request: SocketRequest, handler: SocketHandler) -> None:
        from pyodide.ffi import JsException, to_js

        self._handler = handler
        self._url = safe_url(request.url)
        self._secrets = request.secrets
        self._max_bytes = request.max_message_bytes
        self._offered = tuple(request.subprotocols)
        #: The browser opened the socket, but with no subprotocol we offered: a failed handshake.
        self._refused_open = False
        initial = INITIAL_BUFFER_BYTES if self._max_bytes is None else min(INITIAL_BUFFER_BYTES, self._max_bytes + UTF8_SLACK)
        self._buffer = bytearray(initial)
        self._proxies = _ProxyRegistry()
        self._opened = False
        self.closed = False
        callbacks = to_js(
            {
                "message": self._proxies.proxy(self._on_message),
                "grow": self._proxies.proxy(self._grow),
                "binary": self._proxies.proxy(self._on_binary),
                "tooBig": self._proxies.proxy(self._on_too_big),
                "open": self._proxies.proxy(self._on_open),
                "error": self._proxies.proxy(self._on_error),
                "close": self._proxies.proxy(self._on_close),
            },
            dict_converter=_js_object,
        )
        self._buffer_proxy = self._proxies.proxy(self._buffer)
        try:
            self._js = shim_function("_socket_shim.js")(
                request.url, to_js(list(request.subprotocols)), self._buffer_proxy, callbacks, self._max_bytes or 0
            )
        except JsException as exc:
            self._release()
            # A SyntaxError here means the URL or a protocol token is malformed; its text may hold
            # the key, so it is not repeated.
            if getattr(exc, "name", "") == "SyntaxError":
                raise ConfigurationError(
                    f"the browser refused to open a WebSocket to {self._url}: the URL or a subprotocol "
                    "token (built from the API key) is malformed; check both"
                ) from None
            raise ConnectionFailedError(f"the browser could not open a WebSocket to {self._url}") from None

    # Called from JS: a handler's exception is logged here, never thrown into the page's event loop.
    def _on_message(self, size: int) -> None:
        if self._refused_open:  # closing: nothing of a failed handshake is read
            return
        try:
            self._handler.on_message(self._buffer[:size])
        except Exception:
            logger.exception("the socket handler raised on a message")

    def _on_open(self, protocol: str) -> None:
        if self._offered and str(protocol) not in self._offered:
            # Firefox and WebKit open a socket whose handshake selected no subprotocol; Chromium fails
            # it (error, then close 1006). Fail it here too, the same way, in every engine.
            self._refused_open = True
            self._js.close(NORMAL_CLOSURE, "no subprotocol selected")
            try:
                self._handler.on_error(
                    ConnectionFailedError(
                        f"the server at {self._url} accepted the WebSocket without selecting a subprotocol: it is not "
                        "a Realtime endpoint, or a proxy between dropped the Sec-WebSocket-Protocol header"
                    )
                )
            except Exception:
                logger.exception("the socket handler raised on error")
            return
        self._opened = True
        try:
            self._handler.on_open(str(protocol))
        except Exception:
            logger.exception("the socket handler raised on open")

    def _on_binary(self, size: int) -> None:
        if self._refused_open:
            return
        try:
            self._handler.on_binary(int(size))
        except Exception:
            logger.exception("the socket handler raised on a binary frame")

    def _on_too_big(self, at_least: int) -> None:
        # The shim has closed the socket (with 4009: a page may not send 1009) without copying a byte.
        try:
            self._handler.on_error(
                ConnectionClosedError(
                    f"the server at {self._url} sent a message of at least {int(at_least)} bytes, more than the "
                    f"transport's max_message_bytes ({self._max_bytes}); it was not read and the connection was closed",
                    code=MESSAGE_TOO_BIG,
                    reason="message too big",
                )
            )
        except Exception:
            logger.exception("the socket handler raised on an oversized message")

    def _grow(self, min_bytes: int) -> Any:
        # The shim released the old buffer's view before this call and drops its proxy after it.
        old_proxy = self._buffer_proxy
        size = max(min_bytes, 2 * len(self._buffer))
        if self._max_bytes is not None:
            size = max(min_bytes, min(size, self._max_bytes + UTF8_SLACK))  # never more than the bound needs
        self._buffer = bytearray(size)
        self._buffer_proxy = self._proxies.proxy(self._buffer)
        self._proxies.destroy(old_proxy)
        return self._buffer_proxy

    def _on_error(self) -> None:
        # The browser gives no reason for a WebSocket error, by design; a close event always follows
        # with the code. Once open, that close says more (1006, with words), so it alone reports;
        # before open, the error fails the connect at once.
        if self._opened or self._refused_open:  # reported already: at the failed handshake
            logger.debug("the browser reported a WebSocket error on %s; its close event follows", self._url)
            return
        try:
            self._handler.on_error(ConnectionFailedError(f"the browser reported a WebSocket error on {self._url}"))
        except Exception:
            logger.exception("the socket handler raised on error")

    def _on_close(self, code: int, reason: str) -> None:
        if self._refused_open:  # the handshake failed: what Chromium reports for it
            code, reason = ABNORMAL_CLOSURE, ""
        try:
            self._handler.on_close(int(code), redact(str(reason), self._secrets))
        except Exception:
            logger.exception("the socket handler raised on close")
        finally:
            self._release_soon()

    # The RealtimeSocket protocol ------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Send a text frame; raises ConnectionClosedError once the socket is closed."""
        if self.closed:
            raise ConnectionClosedError(f"the WebSocket to {self._url} is closed")
        self._js.send(text)

    @property
    def buffered_amount(self) -> int:
        """The page's ``WebSocket.bufferedAmount``: bytes sent by the page but not yet on the network."""
        return 0 if self.closed else int(self._js.bufferedAmount())

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        if not self.closed:
            self._js.close(code, reason)



def _js_object(entries: Any) -> Any:
    import js

    return js.Object.fromEntries(entries)


def create_browser_socket(request: SocketRequest, handler: SocketHandler) -> BrowserSocket:
    """The default ``create_websocket`` in Pyodide."""
    return BrowserSocket(request, handler)
