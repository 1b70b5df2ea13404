"""Keys out of the server's logs, tracebacks included.

uvicorn hands the ``websockets`` protocol its ``uvicorn.error`` logger, which logs every handshake
header at DEBUG, and a malformed handshake's traceback at DEBUG too: the exception's text quotes the
header, key and all (``invalid Sec-WebSocket-Protocol header: ... openai-insecure-api-key.<key>``).
The client's :class:`~pyodide_realtime._interfaces.RedactingFilter` rewrites a record's message; this
one also renders the traceback and the stack once, redacted, so that no handler formats them from
the live exception.
"""

from __future__ import annotations

import logging

from pyodide_realtime._interfaces import RedactingFilter, redact

#: The loggers uvicorn, the websockets protocol under it, and this server write to.
STACK_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server", "pyodide_realtime_server")

_TRACEBACKS = logging.Formatter()


class TracebackRedactingFilter(RedactingFilter):
    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if record.exc_info:
            # Formatter.format uses exc_text as given once it is set, and exc_info only to make it.
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install() -> None:
    """Attach the filter to each of :data:`STACK_LOGGERS` (once)."""
    for name in STACK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TracebackRedactingFilter) for f in logger.filters):
            logger.addFilter(TracebackRedactingFilter())
