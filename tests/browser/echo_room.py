"""A perfect-echo room: every sound a browser plays comes back, unchanged, as its microphone.

    with echo_room_engine("firefox", tmp_path) as engine:
        page = engine.open(url)    # a page of engines.Page, whose getUserMedia opens the room's microphone

A private PulseAudio daemon has one null sink (the speakers); the sink's monitor is the default source
(the microphone), so the microphone hears exactly what was played, with no noise and no room. The browser
is started for it with real devices: no fake microphone (Chromium's ``--use-fake-device-for-media-stream``,
Firefox's ``media.navigator.streams.fake``), the permission still granted without a prompt. What the
echo canceller removes is then all that stands between the speakers and the microphone.

Chromium and Firefox only. WebKitGTK 2.50 (MiniBrowser with real devices, in such a room) reports
``echoCancellation: true`` on the track, yet its microphone heard an AudioPlayer's reply 0.3 dB down (2.5 dB
in the best second), the same as with the processing off: it removes nothing Web Audio plays, so there is
nothing to guard there (docs/engines.md). Safari on Apple's systems captures through their own voice
processing, which this machine cannot run.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from chromium import CHROMIUM, DEFAULT_FLAGS
from engines import (
    FIREFOX,
    FIREFOX_PREFS,
    START_TIMEOUT_S,
    Engine,
    EngineError,
    Page,
    _Bidi,
    _pulseaudio,
)

ROOM_ENGINES = ("chromium", "firefox")
#: The null sink that engines' PulseAudio loads (the speakers), and the room's microphone: a source that
#: remaps the sink's monitor, since Chromium lists no monitor source as a microphone.
SPEAKERS = "null"
MICROPHONE = "room_microphone"
#: Chromium's flag for its fake capture devices: without it, getUserMedia opens PulseAudio's default source.
FAKE_DEVICE_FLAG = "--use-fake-device-for-media-stream"
#: Playwright mutes a headless Chromium's audio, and the room would hear nothing.
MUTE_FLAG = "--mute-audio"
#: The niceness of the room's processes (PulseAudio, the browser): see ``_audio_priority``.
AUDIO_NICENESS = -10
#: Firefox's pref for its fake devices.
FAKE_STREAMS_PREF = "media.navigator.streams.fake"


@contextlib.contextmanager
def echo_room(workdir: Path) -> Iterator[dict[str, str]]:
    """A PulseAudio daemon whose default source is its null sink's monitor; yields the environment."""
    with _pulseaudio(workdir) as env:
        for command in (
            ["load-module", "module-remap-source", f"master={SPEAKERS}.monitor", f"source_name={MICROPHONE}"],
            ["set-default-source", MICROPHONE],
        ):
            subprocess.run(["pactl", *command], env=env, check=True, capture_output=True)
        yield env


@contextlib.contextmanager
def echo_room_engine(name: str, workdir: Path) -> Iterator[Engine]:
    """Engine ``name`` ("chromium" or "firefox") started in its own echo room, with real devices."""
    if name not in ROOM_ENGINES:
        raise EngineError(f"no echo room for {name!r}: only {', '.join(ROOM_ENGINES)}")
    engine = Engine(name)
    with contextlib.ExitStack() as stack:
        with _audio_priority():  # what starts here keeps it; this process gets its own back
            env = stack.enter_context(echo_room(workdir))
            if name == "chromium":
                stack.enter_context(_chromium(engine, env))
            else:
                stack.enter_context(_firefox(engine, env, workdir))
        yield engine


@contextlib.contextmanager
def _audio_priority() -> Iterator[None]:
    """Processes started inside run at a raised priority (they inherit it); this one gets its own back.

    Browsers give their audio threads real-time priority through the desktop's RealtimeKit, which a
    test machine lacks: starved of CPU by a busy machine, a canceller then loses track of the echo for
    seconds. A raised priority (root only) stands in for it."""
    import os

    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, AUDIO_NICENESS)
    except PermissionError:
        pass  # not root: the room works, with more seconds lost on a busy machine
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


@contextlib.contextmanager
def _chromium(engine: Engine, env: dict[str, str]) -> Iterator[Engine]:
    from playwright.sync_api import sync_playwright

    flags = [flag for flag in DEFAULT_FLAGS if flag != FAKE_DEVICE_FLAG]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=flags, ignore_default_args=[MUTE_FLAG], env=env
        )
        try:
            def open_page(url: str) -> Page:
                page = browser.new_page()
                page.goto(url)
                return Page("chromium", page.evaluate, lambda: page.mouse.click(5, 5), page.close, page.goto)

            engine._open = open_page
            yield engine
        finally:
            browser.close()


@contextlib.contextmanager
def _firefox(engine: Engine, env: dict[str, str], workdir: Path) -> Iterator[Engine]:
    from websockets.sync.client import connect

    profile = workdir / "firefox-profile"
    profile.mkdir()
    prefs = {**FIREFOX_PREFS, FAKE_STREAMS_PREF: False}
    (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
    log_path = workdir / "firefox.log"
    with log_path.open("w+") as log, contextlib.ExitStack() as stack:
        process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port=0"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        stack.callback(_end, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        found = None
        while found is None:
            log.seek(0)
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", log.read())
            if found is None and (process.poll() is not None or time.monotonic() > deadline):
                raise EngineError(f"Firefox did not start its remote agent; its log: {log_path}")
            time.sleep(0.1)
        bidi = _Bidi(stack.enter_context(connect(found.group(1) + "/session", max_size=None, open_timeout=START_TIMEOUT_S)))
        bidi.command("session.new", {"capabilities": {}})

        def open_page(url: str) -> Page:
            tab = bidi.command("browsingContext.create", {"type": "tab"})["context"]

            def navigate(to: str) -> None:
                bidi.command("browsingContext.navigate", {"context": tab, "url": to, "wait": "complete"})

            navigate(url)

            def evaluate(expression: str) -> str:
                result = bidi.command(
                    "script.evaluate", {"expression": expression, "target": {"context": tab}, "awaitPromise": True}
                )
                if result.get("type") == "exception":
                    raise EngineError(result["exceptionDetails"].get("text", "script failed"))
                value: str = result["result"]["value"]
                return value

            def click() -> None:
                pointer = [{"type": "pointerMove", "x": 5, "y": 5}, {"type": "pointerDown", "button": 0},
                           {"type": "pointerUp", "button": 0}]
                bidi.command("input.performActions",
                             {"context": tab, "actions": [{"type": "pointer", "id": "mouse", "actions": pointer}]})

            return Page("firefox", evaluate, click, lambda: bidi.command("browsingContext.close", {"context": tab}), navigate)

        engine._open = open_page
        yield engine


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
