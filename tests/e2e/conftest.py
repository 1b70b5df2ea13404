"""End-to-end tests: Playwright drives the demo pages in Debian's headless Chromium, like a person.

The local Realtime server (in a thread) serves web/ and the offline dist/ (``./build.sh dist`` makes
it); the browser's fake microphone plays a WAV of espeak-ng speech. Every test here is marked ``e2e``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from minidump import describe

from chromium import CHROMIUM, GRANT_MEDIA_FLAG, MEDIA_FLAGS, OFFLINE_FLAGS, await_crash_dumps, crash_env

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
PYODIDE_DIST = ROOT / "dist" / "pyodide"
PYSCRIPT_DIST = ROOT / "dist" / "pyscript"

#: The simulated model streams audio this many times faster than real time: the page plays it in real
#: time, so a reply is still arriving (and can be interrupted) while the first second is heard.
SERVER_PACE = 2.0
SPOKEN_TEXT = "Hello, can you hear me?"
SPOKEN_QUESTION = "What is the weather in Paris?"
MIC_RATE_HZ = 48000
SILENCE_BEFORE_S = 0.3
#: Chromium loops the file: the silence after the speech lets the server's VAD end the turn, and is longer
#: than any test, so the speech never comes round again (at 15 s, a busy machine let it into a test's
#: typed turn).
SILENCE_AFTER_S = 120.0

BASE_ARGS = [*OFFLINE_FLAGS, *MEDIA_FLAGS]  # no GRANT_MEDIA_FLAG: one test wants the refusal
#: Where this process's Chromiums write a dead renderer's minidump: a failing test names what each one
#: written since it started says (twice in full runs, never alone, a page crashed while Pyodide booted,
#: and its stderr said nothing).
CRASH_HOME = Path(tempfile.gettempdir()) / f"pyrt-e2e-chromium-{os.getpid()}"
#: The crash handler writes a dump while the browser already reports the page gone.
DUMP_WAIT_S = 5.0
_STARTED = pytest.StashKey[float]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: {hint}")
    return path


def _speech_wav(folder: Path, text: str) -> Path:
    """espeak-ng saying ``text``, 48 kHz mono, silence before and after: what a fake microphone plays."""
    raw, wav = folder / "speech-raw.wav", folder / "speech.wav"
    subprocess.run([_need("espeak-ng", "./build.sh setup installs it"), "-w", str(raw), text], check=True)
    subprocess.run(
        [_need("sox", "./build.sh setup installs it"), str(raw), "-r", str(MIC_RATE_HZ), "-c", "1", "-b", "16", str(wav),
         "pad", str(SILENCE_BEFORE_S), str(SILENCE_AFTER_S)],
        check=True,
    )
    return wav


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone says: ``SPOKEN_TEXT``."""
    return _speech_wav(tmp_path_factory.mktemp("mic"), SPOKEN_TEXT)


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken question that needs the demo's tool: ``SPOKEN_QUESTION``."""
    return _speech_wav(tmp_path_factory.mktemp("question"), SPOKEN_QUESTION)


@pytest.fixture(scope="session")
def demo_server() -> Iterator[Any]:
    """The local Realtime server serving web/ with /pyodide and /pyscript from dist/."""
    from pyodide_realtime_server import start_in_thread

    for folder, what in ((PYODIDE_DIST, "pyodide-lock.json"), (PYSCRIPT_DIST, "core.js")):
        if not (folder / what).is_file():
            raise RuntimeError(f"{folder / what} is missing: run ./build.sh dist first")
    server = start_in_thread(
        web_root=WEB, mounts={"/pyodide": PYODIDE_DIST, "/pyscript": PYSCRIPT_DIST}, pace=SERVER_PACE
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # The browsers' own stderr through the driver's, into a failing test's captured output: after a
    # "Page crashed" (twice in full runs, never alone) it shows what the renderer said as it died.
    with mock.patch.dict(os.environ, {"DEBUG": "pw:browser"}):
        driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


def launch(playwright: Any, *extra_args: str) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *extra_args], env=crash_env(CRASH_HOME))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failing e2e test's report says what each minidump written since it started said (tools/minidump.py)."""
    report: pytest.TestReport = yield
    if call.when == "setup":
        item.stash[_STARTED] = call.start
    if report.failed:
        crashed = "crash" in str(report.longrepr).lower()
        dumps = await_crash_dumps(CRASH_HOME, item.stash.get(_STARTED, call.start), DUMP_WAIT_S if crashed else 0.0)
        if dumps:
            report.sections.append(("Chromium crash dumps", "\n".join(f"{dump}: {describe(dump)}" for dump in dumps)))
    return report


@contextlib.contextmanager
def _hearing(playwright: Any, wav: Path) -> Iterator[Any]:
    """Chromium whose fake microphone plays ``wav`` (in a loop)."""
    browser = launch(playwright, GRANT_MEDIA_FLAG, f"--use-file-for-fake-audio-capture={wav}")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browser_with_mic(playwright: Any, speech_wav: Path) -> Iterator[Any]:
    """Chromium whose fake microphone says ``SPOKEN_TEXT``."""
    with _hearing(playwright, speech_wav) as browser:
        yield browser


@pytest.fixture
def browser_asking(playwright: Any, question_wav: Path) -> Iterator[Any]:
    """Chromium whose fake microphone asks ``SPOKEN_QUESTION``."""
    with _hearing(playwright, question_wav) as browser:
        yield browser


@pytest.fixture
def browser_mic_denied(playwright: Any) -> Iterator[Any]:
    """Chromium that refuses the microphone: without the fake permission UI, headless Chromium denies
    the prompt (the same on every machine, whatever devices it has)."""
    browser = launch(playwright)
    try:
        yield browser
    finally:
        browser.close()
