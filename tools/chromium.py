"""How every test and benchmark starts Debian's headless Chromium: one list of flags for all of them."""

import os
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

#: Without these, Chromium on a machine with no network tries Google's services at every start.
OFFLINE_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: WebRTC on loopback: without the first, Chromium gathers no 127.0.0.1 candidate (a data channel to a
#: local peer never opens); without the second, it hides its host candidates behind mDNS names.
WEBRTC_FLAGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
#: Audio plays without a user gesture, getUserMedia gets a fake device, and WebRTC works on loopback.
MEDIA_FLAGS = [
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    *WEBRTC_FLAGS,
]
#: ...and the permission prompt is answered "allow" (leave it out to test a refusal).
GRANT_MEDIA_FLAG = "--use-fake-ui-for-media-stream"
#: The transport benchmark calls gc() before each measured segment (bench/transport_bench.js).
EXPOSE_GC_FLAG = "--js-flags=--expose-gc"

DEFAULT_FLAGS = [EXPOSE_GC_FLAG, *OFFLINE_FLAGS, *MEDIA_FLAGS, GRANT_MEDIA_FLAG]


def crash_env(folder: Path) -> dict[str, str]:
    """The environment for a Chromium whose crash handler writes its minidumps under ``folder``: Debian's
    build keeps them in ``$XDG_CONFIG_HOME/chromium/Crash Reports/`` and uploads nothing
    (``--crash-dumps-dir`` is not read there). tools/minidump.py tells what one says."""
    return {**os.environ, "XDG_CONFIG_HOME": str(folder)}


def crash_dumps(folder: Path, since: float = 0.0) -> list[Path]:
    """The minidumps a Chromium started with ``crash_env(folder)`` has written since ``since`` (a
    ``time.time()``), oldest first."""
    reports, found = folder / "chromium" / "Crash Reports", []
    # Finished dumps only: the handler writes one in new/, then moves it to pending/ (an upload would
    # move it on to completed/).
    for dump in [*(reports / "pending").glob("*.dmp"), *(reports / "completed").glob("*.dmp")]:
        try:
            written = dump.stat().st_mtime
        except FileNotFoundError:  # moved on meanwhile: found there next time
            continue
        if written >= since:
            found.append((written, dump))
    return [dump for _, dump in sorted(found)]


def await_crash_dumps(folder: Path, since: float, timeout: float) -> list[Path]:
    """``crash_dumps(folder, since)``, waited for up to ``timeout`` seconds while there are none: the crash
    handler finishes a dump after the browser has already reported the page gone."""
    deadline = time.monotonic() + timeout
    while not (dumps := crash_dumps(folder, since)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return dumps
