"""Giving freed memory back to the system when a connection closes.

A connection may have held hundreds of megabytes (events of up to 21 MB each, their echoes, the
conversation). Python frees them when the connection ends, but glibc's allocator keeps freed heap
memory for reuse, and after large frees it raises its own threshold for using separate mappings, so
the server's resident memory stayed at its peak (measured: +560 MB after 100 events carrying a
15 MB string, all of it free). Part of it also waits for the cyclic garbage collector (a connection's
objects refer to each other). So a connection that received much is followed by a collection and
``malloc_trim``, which hands the free pages back; a small one is not worth a full collection.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from functools import cache

#: A connection that received at least this much is followed by a collection and a trim.
RELEASE_AFTER_CHARS = 4 * 1024 * 1024


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    return None


def release_free_memory() -> None:
    """Collect cyclic garbage, then return the allocator's free memory to the system (glibc on Linux)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
