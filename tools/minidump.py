"""What a Chromium crash dump says about the crash: the signal, where it hit, and in which module.

    python tools/minidump.py DUMP...

Chromium's crash handler (crashpad) writes a minidump when a renderer dies; Debian's build keeps it
under ``$XDG_CONFIG_HOME/chromium/Crash Reports/`` and sends it nowhere. There are no symbols here, so
this reads only the dump's exception stream and module list (Microsoft's MINIDUMP_* layout, which
crashpad writes on Linux too, the signal number standing in the exception code): enough to tell a
V8 fatal error or an out-of-memory crash (SIGTRAP, SIGILL) from a memory fault (SIGSEGV at an address),
and an address inside Chromium from one in a system library.
"""

from __future__ import annotations

import signal
import struct
import sys
from pathlib import Path

MODULE_LIST_STREAM = 4
EXCEPTION_STREAM = 6
MODULE_SIZE = 108  # MINIDUMP_MODULE
CONTEXT_AT = 160  # the crashing thread's context, after MINIDUMP_EXCEPTION in the exception stream
RIP_AT = 0xF8  # in an x86-64 CONTEXT


def describe(path: Path) -> str:
    """One line: ``SIGSEGV (si_code 1) at 0x38 on thread 123, code at /usr/lib/chromium/chromium +0x1234``
    (the faulting address, then the instruction's module and offset, x86-64 only)."""
    try:
        data = path.read_bytes()
    except OSError as exc:  # moved or removed by the crash handler meanwhile
        return f"{path.name}: unreadable ({exc.strerror})"
    if data[:4] != b"MDMP":
        return f"{path.name}: not a minidump"
    try:
        count, directory = struct.unpack_from("<II", data, 8)
        streams: dict[int, int] = {}
        for index in range(count):
            kind, _size, at = struct.unpack_from("<III", data, directory + 12 * index)
            streams.setdefault(kind, at)
        if EXCEPTION_STREAM not in streams:
            return f"{path.name}: no exception recorded"
        at = streams[EXCEPTION_STREAM]
        thread, _, code, flags, _, address = struct.unpack_from("<IIIIQQ", data, at)
        try:
            name = signal.Signals(code).name
        except ValueError:
            name = f"signal {code}"
        line = f"{name} (si_code {flags}) at {address:#x} on thread {thread}"
        context_size, context_at = struct.unpack_from("<II", data, at + CONTEXT_AT)
        if context_size >= RIP_AT + 8:
            (rip,) = struct.unpack_from("<Q", data, context_at + RIP_AT)
            line += f", code at {_module_of(data, streams.get(MODULE_LIST_STREAM), rip)}"
        return line
    except struct.error:
        return f"{path.name}: a truncated minidump"


def _module_of(data: bytes, at: int | None, address: int) -> str:
    if at is None:
        return f"{address:#x}"
    (count,) = struct.unpack_from("<I", data, at)
    for index in range(count):
        base, size, _, _, name_at = struct.unpack_from("<QIIII", data, at + 4 + MODULE_SIZE * index)
        if base <= address < base + size:
            (length,) = struct.unpack_from("<I", data, name_at)
            module = data[name_at + 4 : name_at + 4 + length].decode("utf-16-le", "replace")
            return f"{module} +{address - base:#x}"
    return f"{address:#x} (in no loaded module)"


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"{argument}: {describe(Path(argument))}")
