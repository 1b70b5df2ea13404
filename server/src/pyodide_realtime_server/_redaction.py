"""Keys out of the server's logs, tracebacks included.

uvicorn hands the ``websockets`` protocol its ``uvicorn.error`` logger, which logs every handshake
header at DEBUG, and a malformed handshake's traceback at DEBUG too: the exception's text quotes the
header, key and all (``invalid Sec-WebSocket-Protocol header: ... openai-insecure-api-key.<key>``).
The client's :class:`~pyodide_realtime._interfaces.RedactingFilter` rewrites a record's message, its
traceback and its stack; this module attaches it to every logger the server's stack writes to.
"""

from __future__ import annotations

import logging

from pyodide_realtime._interfaces import RedactingFilter

#: The loggers uvicorn, the websockets protocol under it, and this server write to.
STACK_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server", "pyodide_realtime_server")


def install() -> None:
    """Attach the filter to each of :data:`STACK_LOGGERS` (once)."""
    for name in STACK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
