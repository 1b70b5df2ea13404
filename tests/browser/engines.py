"""One page API over three browser engines: Chromium, Firefox and WebKit, all from Debian, all offline.

    with open_engine("firefox", tmp_path) as engine:
        page = engine.open(url)              # waits for the page's `window.pyodideReady`
        page.run_python("import sys; sys.version")
        page.eval_js("return 1 + 1")         # the body of an async function; JSON in, JSON out
        page.click()                         # a real user gesture (WebKit's Web Audio needs one)
        page.close()

    @in_page                                 # like pytest-pyodide's run_in_pyodide, in every engine:
    async def heard(data: bytes) -> float:   # the function runs in the page, its arguments and
        ...                                  # its result cross pickled
    heard(page, b"\x00\x01")

How each engine is driven, with what the issue measured to work on this machine:
- Chromium: Playwright with ``/usr/bin/chromium`` and tools/chromium.py's flags; its fake microphone plays
  a file of our tone (``--use-file-for-fake-audio-capture``).
- Firefox (``firefox-esr``): no geckodriver is installable, so its own remote agent is driven over
  WebDriver BiDi (``session.new``, ``browsingContext.navigate``, ``script.evaluate``) with
  ``websockets``. Audio goes to a PulseAudio null sink (without a sound server the AudioContext never
  leaves "suspended"); the microphone is Firefox's own fake device, a steady tone at our frequency.
- WebKit: WebKitGTK's ``MiniBrowser`` through selenium and ``WebKitWebDriver`` under Xvfb, with its
  mock capture device (a 150 Hz hum, beeps once a second). Web Audio starts only after a WebDriver click,
  and plays to a PulseAudio null sink of its own (without one GStreamer falls back to a fake sink).
  Its one window replaces a page by going to about:blank, with the page cache off so the page is gone.
  ``engine.renew()`` starts a new driver session, so a new MiniBrowser and web process (the tests do it
  per module: WebKitGTK never frees an AudioWorklet's thread); a call that meets a dead web process
  raises EngineError with MiniBrowser's "WebProcess CRASHED", and the next ``open`` starts a new session.

pytest-pyodide's ``@run_in_pyodide`` is how a test that only runs Python in Pyodide is written:
``pyodide_runner`` gives its ``selenium`` a page of these engines (its own ``PlaywrightChromeRunner`` for
Chromium, ``FirefoxBidiRunner`` and ``WebKitGTKRunner`` below for the others). The page API above stays for
what ``run_in_pyodide`` cannot express: a real click (Web Audio in Firefox and WebKit needs one), a page
nobody clicked (autoplay), the engines' audio devices as set up here (microphone tones, PulseAudio),
several pages or a page closed and reopened, and the in-page helpers (docs/engines.md).

Everything a test needs to know about an engine's differences is an attribute of its ``Engine``
(docs/engines.md says what each means for users): ``mic_tone_hz`` and ``mic_tone_amplitude`` (the steady
tone the microphone hears), ``autoplay_needs_gesture``, ``gesture_expires``, ``reads_output_latency``,
``offline_suspend``, ``worklet_answers_after_close``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from pytest_pyodide.runner import JavascriptException, PlaywrightChromeRunner, _BrowserBaseRunner, _SeleniumBaseRunner

from chromium import CHROMIUM, DEFAULT_FLAGS

ENGINES = ("chromium", "firefox", "webkit")
FIREFOX = "/usr/bin/firefox-esr"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
#: Debian packages per engine (build.sh installs them): a missing one is named in the error.
PACKAGES = {
    "firefox": {"firefox-esr": FIREFOX, "pulseaudio": "/usr/bin/pulseaudio"},
    "webkit": {"webkit2gtk-driver": WEBKIT_DRIVER, "xvfb": "/usr/bin/Xvfb", "pulseaudio": "/usr/bin/pulseaudio"},
}
#: Generous: Pyodide boots in 2-8 s depending on the engine, more on a busy machine.
READY_TIMEOUT_S = 90
SCRIPT_TIMEOUT_S = 60
#: WebKit answers a script that outlives SCRIPT_TIMEOUT_S itself; a command still unanswered this long
#: after it was sent means its web process hung (seen under load: its AudioWorklet and GStreamer source
#: threads spinning, nothing answered for ten minutes), and the session ends so that the run goes on.
WEBKIT_COMMAND_TIMEOUT_S = SCRIPT_TIMEOUT_S + 60
START_TIMEOUT_S = 30
#: What both the host's Python and the page's can read (3.11 and Pyodide's).
PICKLE_PROTOCOL = 5
#: The tone of Chromium's fake microphone (our file) and Firefox's (its fake device, told the frequency).
MIC_TONE_HZ = 440.0
CHROMIUM_MIC_AMPLITUDE = 0.5  # our file's
FIREFOX_MIC_AMPLITUDE = 0.1  # Firefox's fake device's, fixed
#: WebKit's mock microphone is not ours to set: a steady 150 Hz hum (amplitude 0.1) with a 3 kHz tone
#: (0.05) under it, and once a second a 70 ms beep (0.5) at 1500 Hz, then at 500 Hz, in turn
#: (measured, by spectrum; WebKit's MockRealtimeAudioSource). The hum is what a capture always holds.
WEBKIT_MOCK_HUM_HZ = 150.0
WEBKIT_MOCK_HUM_AMPLITUDE = 0.1

#: Firefox preferences: media without prompts, its fake microphone (a steady sine at
#: ``media.navigator.audio.fake_frequency``, amplitude 0.1: PulseAudio's sources came in bursts, a
#: monitor of the null sink as well as module-sine-source), and none of the background services that
#: would try the network. Its autoplay policy is left as users have it (audio waits for a click).
#: WebRTC on loopback: ICE may use 127.0.0.1 and shows real host addresses (not mDNS names).
FIREFOX_PREFS = {
    "media.navigator.permission.disabled": True,
    "media.navigator.streams.fake": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
}


class EngineError(RuntimeError):
    """An engine could not start, or a script failed in the page (the message is the page's)."""


def _js_call(body: str) -> str:
    """An expression that runs ``body`` as an async function and settles to a JSON string."""
    return (
        "(async () => {" + body + "})().then("
        "(value) => JSON.stringify({ok: value === undefined ? null : value}),"
        # V8's stack starts with the message; Firefox's and WebKit's do not: the message, then the stack.
        "(error) => JSON.stringify({error: String(error) + (error && error.stack && !error.stack.includes(String(error))"
        " ? '\\n' + error.stack : '')}))"
    )


def _wait_for_pyodide(page: Page) -> None:
    page.eval_js(
        f"const limit = Date.now() + {READY_TIMEOUT_S * 1000};"
        "while (!window.pyodideReady && !window.pyodideError && Date.now() < limit)"
        "  await new Promise((r) => setTimeout(r, 50));"
        "if (window.pyodideError) throw new Error('the page failed to start Pyodide: ' + window.pyodideError);"
        "if (!window.pyodideReady) throw new Error('Pyodide not ready in time');"
    )


def _settled(answer: str) -> Any:
    result = json.loads(answer)
    if "error" in result:
        raise EngineError(result["error"])
    return result["ok"]


class Page:
    """A page with Pyodide and our package loaded: evaluate JS or run Python in it."""

    def __init__(
        self, engine: str, evaluate: Callable[[str], str], click: Callable[[], None], close: Callable[[], None],
        navigate: Callable[[str], None],
    ) -> None:
        self.engine = engine
        self._evaluate = evaluate
        self._click = click
        self._close = close
        self._navigate = navigate
        #: What ``Engine.open`` loaded, for ``Engine.reopen``.
        self.url = ""
        self.waited_for_pyodide = False
        self.tests_run = 0  # tests that used this page in its web process (conftest's WebKit renewal)

    def eval_js(self, body: str) -> Any:
        """Run ``body`` as the body of an async function in the page; return its JSON-able result."""
        return _settled(self._evaluate(_js_call(body)))

    def run_python(self, code: str) -> Any:
        """Run ``code`` with ``pyodide.runPythonAsync`` (top-level await works); return the last
        expression's value converted to JSON (dicts, lists, str, numbers, None)."""
        return self.eval_js(
            f"const result = await pyodide.runPythonAsync({json.dumps(code)});"
            "return result && result.toJs ? result.toJs({dict_converter: Object.fromEntries}) : result;"
        )

    def call(self, source: str, name: str, args: tuple[Any, ...]) -> Any:
        """Define function ``name`` from ``source`` in a fresh namespace of the page, call it with ``args``
        (awaited if it is async) and return its result: both cross pickled (``in_page`` uses this)."""
        payload = base64.b64encode(pickle.dumps(args, protocol=PICKLE_PROTOCOL)).decode()
        answer = self.run_python(
            "async def _in_page_call():\n"
            "    import base64, inspect, pickle\n"
            "    namespace = {'__name__': '__in_page__'}\n"
            f"    exec({source!r}, namespace)\n"
            f"    result = namespace[{name!r}](*pickle.loads(base64.b64decode({payload!r})))\n"
            "    if inspect.isawaitable(result):\n"
            "        result = await result\n"
            f"    return base64.b64encode(pickle.dumps(result, protocol={PICKLE_PROTOCOL})).decode()\n"
            "await _in_page_call()"  # the page keeps only this small function, redefined at each call
        )
        return pickle.loads(base64.b64decode(answer))

    def click(self) -> None:
        """A real click on the page (a user activation), through the driver."""
        self._click()

    def navigate(self, url: str) -> None:
        """Load ``url`` in this page (its tab), waiting for its load event; Pyodide is not awaited."""
        self._navigate(url)

    def close(self) -> None:
        """Close the page (its tab; WebKit's one window goes to about:blank): its audio and sockets end."""
        self._close()


P = ParamSpec("P")
R = TypeVar("R")


def in_page(function: Callable[P, R]) -> Callable[Concatenate[Page, P], Any]:
    """Run ``function`` in a page, the way pytest-pyodide's ``run_in_pyodide`` runs it in Chromium:
    ``function(page, *args)`` sends its source (decorators dropped) and its pickled arguments, and
    returns its pickled result. Its imports go inside it; an exception in the page raises EngineError
    with the page's traceback."""
    lines = textwrap.dedent(inspect.getsource(function)).splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(("def ", "async def ")))
    source = "".join(lines[start:])

    @functools.wraps(function)
    def call(page: Page, *args: P.args, **kwargs: P.kwargs) -> Any:
        if kwargs:
            raise TypeError(f"{function.__name__} runs in a page: pass its arguments by position")
        return page.call(source, function.__name__, args)

    return call


class Engine:
    """A started browser engine. ``open(url)`` loads a page and waits until its Pyodide is ready."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: The steady tone the engine's microphone always hears, and its amplitude (set by the opener).
        self.mic_tone_hz = 0.0
        self.mic_tone_amplitude = 0.0
        #: An AudioContext starts only after a click on the page (Firefox's default; WebKit), and only
        #: within a few seconds of one (WebKit; there a page that captures the microphone may also play).
        #: Chromium runs with autoplay allowed (a flag). The ``page`` fixture clicks a Firefox page once.
        self.autoplay_needs_gesture = name != "chromium"
        self.gesture_expires = name == "webkit"
        #: The library reads the context's outputLatency: not in Firefox, whose read can freeze the page.
        self.reads_output_latency = name != "firefox"
        #: OfflineAudioContext.suspend(time) exists (a render paused at a frame): not in Firefox.
        self.offline_suspend = name != "firefox"
        #: An AudioWorklet still answers its port after its AudioContext closed (Firefox, WebKit), so
        #: query_heard_ms answers at once; Chromium's does not, and it answers from its timeout.
        self.worklet_answers_after_close = name != "chromium"
        #: A closed AudioPlayer closes the context it made; in WebKit it suspends it for the next player
        #: (WebKitGTK's web process can crash on closing a context whose worklet played).
        self.player_context_after_close = "suspended" if name == "webkit" else "closed"
        #: Chromium's Playwright browser, for pytest-pyodide's runner (``pyodide_runner``).
        self.playwright_browser: Any = None
        self._open: Callable[[str], Page] | None = None
        #: WebKit: its current driver session, and what starts the next one (``renew``).
        self._session: Callable[[], _WebKitSession] | None = None
        self._renew: Callable[[bool], None] | None = None

    @property
    def webdriver(self) -> Any:
        """WebKit's current selenium driver (a new one after ``renew()``), for pytest-pyodide's runner."""
        return self._session().driver if self._session is not None else None

    @property
    def crashed(self) -> bool:
        """WebKit: the current session's web process or driver died (the next ``open`` starts a new one)."""
        return self._session is not None and self._session().dead

    @property
    def web_process_pid(self) -> int | None:
        """WebKit: the process id of the current session's web process (None elsewhere, or if none runs)."""
        return self._session().web_process_pid() if self._session is not None else None

    def renew(self, if_used: bool = False) -> None:
        """WebKit: end the driver session and start a new one, with a new MiniBrowser and so a new web
        process; its pages are gone (``if_used``: only if a page or runner has driven the current one, or
        it died). Elsewhere nothing to do. WebKitGTK keeps every AudioWorklet thread it ever started until
        its web process ends (docs/engines.md): the tests renew it once per module, every few tests of a
        module's page (conftest.py), and as a page closes."""
        if self._renew is not None:
            self._renew(if_used)

    def reopen(self, page: Page) -> None:
        """A new session (``renew``) and ``page``'s URL loaded again in it, into the same ``page`` object:
        how a module's shared page goes on after its web process crashed."""
        self.renew()
        fresh = self.open(page.url, page.waited_for_pyodide)
        page.__dict__.update(fresh.__dict__)

    def open(self, url: str, wait_for_pyodide: bool = True) -> Page:
        """Load ``url``; unless told otherwise, wait for the page's ``window.pyodideReady``.

        In WebKit, a boot that fails on a WebAssembly trap (:func:`webkit_boot_fault`) loads once more in a
        new web process, with a warning. A second failure is the test's."""
        assert self._open is not None
        page = self._open(url)
        page.url, page.waited_for_pyodide = url, wait_for_pyodide
        if not wait_for_pyodide:
            return page
        try:
            _wait_for_pyodide(page)
        except EngineError as exc:
            if self.name != "webkit" or not webkit_boot_fault(str(exc)):
                raise
            warnings.warn(f"{str(exc)[:300]}; loading the page again in a new WebKit session", stacklevel=2)
            self.renew(False)
            page = self._open(url)
            page.url, page.waited_for_pyodide = url, wait_for_pyodide
            _wait_for_pyodide(page)
        return page


#: What JavaScriptCore says of the WebAssembly trap of :func:`webkit_boot_fault`.
WASM_TRAP = "RuntimeError: Out of bounds memory access"


def webkit_boot_fault(message: str) -> bool:
    """Whether a failed boot is the WebKit fault that a new web process gets past: a WebAssembly trap
    inside Pyodide's own start-up, before our package runs. Three fresh clones of 23 lost a page so, never
    alone, each in a different export: "RuntimeError: Out of bounds memory access (evaluating
    '_PyRun_SimpleString(r)')" twice, and once, in a first session, "Pyodide already fatally failed ...
    The cause of the fatal error was: RuntimeError: Out of bounds memory access (evaluating
    '__pyproxy_apply(t,e,n,o,s)')" while loading annotated-types. A Python error at boot is not it."""
    return "failed to start Pyodide" in message and WASM_TRAP in message


def _require(name: str) -> None:
    for package, path in PACKAGES.get(name, {}).items():
        if not Path(path).exists():
            raise EngineError(f"{path} is missing: install the Debian package {package} (./build.sh setup does)")


#: For WebRTC, Firefox's microphone is granted by a default permission, as a person who allowed it for
#: every site, rather than by disabling the permission check: with the check off, Firefox gathers only
#: the default route's address and the data channel never opens. A granted microphone also lets a page
#: play before any click, so only the engines that need it (``open_engine(..., webrtc=True)``) have it:
#: the others keep the autoplay policy as users have it.
FIREFOX_WEBRTC_PREFS = {
    "media.navigator.permission.disabled": False,
    "permissions.default.microphone": 1,
}


@contextlib.contextmanager
def open_engine(name: str, workdir: Path, mic_tone_hz: float = MIC_TONE_HZ, webrtc: bool = False) -> Iterator[Engine]:
    """Start engine ``name``; ``mic_tone_hz`` is the tone Chromium's and Firefox's fake microphones play,
    reported back as ``engine.mic_tone_hz`` (WebKit's mock plays its own). ``webrtc``: Firefox with
    ``FIREFOX_WEBRTC_PREFS`` (Chromium's flags serve both)."""
    _require(name)
    engine = Engine(name)
    if name == "firefox":
        with _firefox(engine, workdir, mic_tone_hz, FIREFOX_WEBRTC_PREFS if webrtc else {}) as ready:
            yield ready
        return
    opener = {"chromium": _chromium, "webkit": _webkit}[name]
    with opener(engine, workdir, mic_tone_hz) as ready:
        yield ready


# ---- Chromium: Playwright -----------------------------------------------------------------------------


@contextlib.contextmanager
def _chromium(engine: Engine, workdir: Path, mic_tone_hz: float) -> Iterator[Engine]:
    from playwright.sync_api import sync_playwright

    wav = workdir / "chromium-mic.wav"
    subprocess.run(
        ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(wav), "synth", "30", "sine", str(mic_tone_hz), "vol", str(CHROMIUM_MIC_AMPLITUDE)],
        check=True,
    )
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=[*DEFAULT_FLAGS, f"--use-file-for-fake-audio-capture={wav}"]
        )
        try:
            def open_page(url: str) -> Page:
                page = browser.new_page()

                def navigate(to: str) -> None:
                    page.goto(to)

                navigate(url)
                return Page("chromium", lambda expr: page.evaluate(expr), lambda: page.mouse.click(5, 5), page.close, navigate)

            engine.mic_tone_hz, engine.mic_tone_amplitude = mic_tone_hz, CHROMIUM_MIC_AMPLITUDE
            engine.playwright_browser = browser
            engine._open = open_page
            yield engine
        finally:
            browser.close()


# ---- Firefox: WebDriver BiDi over websockets ----------------------------------------------------------


class _Bidi:
    """A minimal WebDriver BiDi client: one command at a time, events skipped. ``browser_pid``: whose
    content processes' main threads a command that times out reports (where a hung page waits)."""

    def __init__(self, socket: Any, browser_pid: int | None = None) -> None:
        self._socket = socket
        self._next_id = 0
        self._browser_pid = browser_pid

    def command(self, method: str, params: dict[str, Any], timeout: float = SCRIPT_TIMEOUT_S) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                stacks = _main_thread_stacks(self._browser_pid) if self._browser_pid else ""
                raise TimeoutError(f"Firefox did not answer {method} within {timeout:.0f} s{stacks}") from None
            if message.get("id") != self._next_id:
                continue  # an event
            if message.get("type") == "error":
                raise EngineError(f"{method}: {message.get('error')}: {message.get('message')}")
            result: dict[str, Any] = message["result"]
            return result


@contextlib.contextmanager
def _pulseaudio(workdir: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio daemon with one null sink; yields the environment that reaches it.

    ``norewinds=1``: with rewinds, an AudioContext made after another one closed took 2 s to start
    (measured: 1.97 s each time, 20-60 ms without)."""
    folder = workdir / "pulse"
    folder.mkdir()
    socket = folder / "native"
    env = {**os.environ, "HOME": str(folder), "XDG_RUNTIME_DIR": str(folder), "PULSE_SERVER": f"unix:{socket}"}
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--log-target=stderr",
         "--load=module-null-sink sink_name=null norewinds=1",
         f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise EngineError("PulseAudio did not start (Firefox and WebKit play to its null sink)")
            time.sleep(0.1)
        yield env
    finally:
        daemon.terminate()
        daemon.wait(10)


@contextlib.contextmanager
def _firefox(engine: Engine, workdir: Path, mic_tone_hz: float, extra_prefs: dict[str, Any]) -> Iterator[Engine]:
    with _pulseaudio(workdir) as env:
        profile = workdir / "firefox-profile"
        profile.mkdir()
        prefs = {**FIREFOX_PREFS, "media.navigator.audio.fake_frequency": round(mic_tone_hz), **extra_prefs}
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
        )
        log = (workdir / "firefox.log").open("w+")
        process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port=0"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        bidi = None
        connections = contextlib.ExitStack()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            url = None
            while url is None:
                log.seek(0)
                found = re.search(r"WebDriver BiDi listening on (ws://\S+)", log.read())
                url = found.group(1) if found else None
                if url is None and (process.poll() is not None or time.monotonic() > deadline):
                    raise EngineError(f"Firefox did not start its remote agent; its log: {workdir / 'firefox.log'}")
                time.sleep(0.1)
            from websockets.sync.client import connect

            bidi = _Bidi(
                connections.enter_context(connect(url + "/session", max_size=None, open_timeout=START_TIMEOUT_S)),
                process.pid,
            )
            bidi.command("session.new", {"capabilities": {}})

            def open_page(page_url: str) -> Page:
                assert bidi is not None
                context = bidi.command("browsingContext.create", {"type": "tab"})["context"]

                def navigate(to: str) -> None:
                    assert bidi is not None
                    bidi.command("browsingContext.navigate", {"context": context, "url": to, "wait": "complete"})

                navigate(page_url)

                def evaluate(expression: str) -> str:
                    assert bidi is not None
                    result = bidi.command(
                        "script.evaluate",
                        {"expression": expression, "target": {"context": context}, "awaitPromise": True},
                    )
                    if result.get("type") == "exception":
                        raise EngineError(result["exceptionDetails"].get("text", "script failed"))
                    value: str = result["result"]["value"]
                    return value

                def click() -> None:
                    assert bidi is not None
                    actions = [{"type": "pointerMove", "x": 5, "y": 5}, {"type": "pointerDown", "button": 0},
                               {"type": "pointerUp", "button": 0}]
                    bidi.command("input.performActions", {"context": context, "actions": [
                        {"type": "pointer", "id": "mouse", "actions": actions}]})

                def close() -> None:
                    assert bidi is not None
                    bidi.command("browsingContext.close", {"context": context})

                return Page("firefox", evaluate, click, close, navigate)

            engine.mic_tone_hz, engine.mic_tone_amplitude = mic_tone_hz, FIREFOX_MIC_AMPLITUDE
            engine._open = open_page
            yield engine
        finally:
            if bidi is not None:
                with contextlib.suppress(Exception):
                    bidi.command("session.end", {}, timeout=5)
            connections.close()
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


# ---- WebKit: selenium + WebKitWebDriver + MiniBrowser under Xvfb --------------------------------------


@contextlib.contextmanager
def _xvfb(log: Path) -> Iterator[str]:
    """A private X display (Xvfb picks a free number and writes it to a pipe).

    ``-noreset``: by default an X server resets when its last client leaves, and drops the connections
    that arrive meanwhile. A new WebKit session quits one MiniBrowser (the display's only client) and
    starts the next: measured, 51 of 600 connections made just after a client left were dropped (none
    with ``-noreset``), and MiniBrowser said "cannot open display" (docs/engines.md)."""
    read_end, write_end = os.pipe()
    with log.open("w") as output:
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=output, stderr=output,
        )
    os.close(write_end)
    try:
        # Read up to the newline: Xvfb dies if the pipe closes between the number and its newline.
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            answer += chunk
        os.close(read_end)
        number = answer.decode().strip()
        if not number or server.poll() is not None:
            raise EngineError(f"Xvfb did not start (WebKit needs a display); its log: {log}")
        yield f":{number}"
        if server.poll() is not None:
            raise EngineError(f"Xvfb exited while in use (status {server.returncode}); its log: {log}")
    finally:
        server.terminate()
        server.wait(10)


#: What MiniBrowser writes to the driver's log when its web process dies (a crash or a kill).
WEB_PROCESS_CRASHED = "WebProcess CRASHED"


def _main_thread_stacks(browser_pid: int) -> str:
    """The main threads' top frames of a browser's page (content) processes, for a message: whether a page
    that stopped answering waits (a lock, a futex) or spins. Empty without gdb."""
    if not Path("/usr/bin/gdb").exists():
        return ""
    found, descendants, pids, examined = [], [browser_pid], [], 0
    while descendants:  # Firefox forks its page processes from a fork server, a child of its own
        pids += (children := [c for pid in descendants for c in _children(pid)])
        descendants = children
    for pid in pids:
        command = b""
        with contextlib.suppress(OSError):  # gone meanwhile: skipped, as is any process but a page's
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"-isForBrowser" not in command:
            continue
        examined += 1
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            trace = subprocess.run(
                ["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "bt 12"],
                capture_output=True, text=True, timeout=30,
            ).stdout
            frames = [line for line in trace.splitlines() if line.startswith("#")]
            if not any("g_main_context_iteration" in line for line in frames):  # not idle in its event loop
                found.append(f"page process {pid}:\n" + "\n".join(frames))
    if not examined:
        return ""
    if not found:
        return "; its page processes' main threads were all idle in their event loops (a promise never settled)"
    return "; its page processes' main threads, but the idle ones:\n" + "\n".join(found)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: WebKitWebDriver -> MiniBrowser -> its processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The command may hold spaces and parentheses: the fields after its last ")" are fixed.
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    return ""


class _WebKitSession:
    """One WebKitWebDriver with its own MiniBrowser, and so its own web process, and its own log."""

    def __init__(self, driver: Any, log: Path) -> None:
        self.driver = driver
        self.log = log
        self.dead = False
        self.hung = False  # a command went unanswered: its processes are killed, not asked to quit
        self.used = False  # a page or a runner has driven it
        # selenium waits for the driver's answer without a limit by default (the socket's default).
        driver.command_executor._client_config.timeout = WEBKIT_COMMAND_TIMEOUT_S

    def crash_report(self) -> str:
        """The log's line that says the web process died, or "" (WebKit says nothing else about it)."""
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                if WEB_PROCESS_CRASHED in line:
                    return line.strip()
        return ""

    def _await_crash_report(self) -> str:
        """The driver may answer before MiniBrowser has logged the crash (it answered "Could not parse script
        result" then): wait for the line while MiniBrowser runs, up to START_TIMEOUT_S."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (crash := self.crash_report()) and time.monotonic() < deadline:
            if self.web_process_pid() is not None and self._answers():
                return ""  # the page is alive: a script's own fault
            time.sleep(0.1)
        return crash

    def _answers(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.driver.execute_script("return true"))
        return False

    def web_process_pid(self) -> int | None:
        service = self.driver.service.process
        for browser in _children(service.pid):
            for child in _children(browser):
                if _command(child) == "WebKitWebProces":  # /proc's comm keeps 15 characters
                    return child
        return None

    def run(self, action: Callable[[], R]) -> R:
        """``action`` on the driver; a dead web process or driver raises EngineError, saying so (never retried)."""
        from selenium.common.exceptions import WebDriverException
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        if self.dead:
            raise EngineError(f"this WebKit session ended earlier ({self.crash_report() or 'its driver died'})")
        try:
            return action()
        except (WebDriverException, HTTPError) as exc:
            crash = self.crash_report()
            if not crash and "Could not parse script result" in str(exc):
                crash = self._await_crash_report()
            # A page crash ends the driver's session; a dead driver refuses connections.
            message = str(exc)
            if not (crash or "session deleted" in message or "invalid session id" in message or isinstance(exc, HTTPError)):
                raise
            self.dead = True
            self.hung = isinstance(exc, ReadTimeoutError) and not crash
            if crash:
                what = f"WebKit's web process crashed ({self.log}: {crash!r})"
            elif self.hung:
                timeout = self.driver.command_executor._client_config.timeout
                what = f"WebKit did not answer in {timeout:g} s, its own script timeout included: its web process hung"
            else:
                what = f"WebKit's driver session ended ({type(exc).__name__}: {message.strip()[:200]})"
            raise EngineError(f"{what}; the next page gets a new session") from exc

    def quit(self) -> None:
        if self.hung:  # it would not answer a quit either: its web process goes first (a crash, to it)
            with contextlib.suppress(OSError, TypeError):
                os.kill(self.web_process_pid(), signal.SIGKILL)  # type: ignore[arg-type]
        try:
            self.driver.quit()
        except Exception:  # noqa: BLE001 - a crashed session may refuse to quit: its driver is stopped below
            service = self.driver.service
            with contextlib.suppress(Exception):
                service.stop()


@contextlib.contextmanager
def _webkit(engine: Engine, workdir: Path, mic_tone_hz: float) -> Iterator[Engine]:
    from selenium import webdriver
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.webkitgtk.service import Service

    with _pulseaudio(workdir) as pulse, _xvfb(workdir / "xvfb.log") as display:
        options = webdriver.WebKitGTKOptions()
        options.binary_location = MINIBROWSER
        # No page cache: a closed page (navigated away from) would stay alive for "back", with its Pyodide
        # heap and audio; over a run the web process grew by hundreds of MB and the tests slowed.
        for flag in ("--automation", "--enable-webaudio=true", "--enable-media-stream=true",
                     "--enable-mock-capture-devices=true", "--enable-page-cache=false"):
            options.add_argument(flag)
        sessions: list[_WebKitSession] = []

        def started_driver(log: Path) -> Any:
            # The driver starts MiniBrowser with our environment.
            started_with = {"DISPLAY": display, "PULSE_SERVER": pulse["PULSE_SERVER"]}
            saved = {name: os.environ.get(name) for name in started_with}
            os.environ.update(started_with)
            # selenium waits for the new session without a limit (the sockets' default, read as the driver
            # is made): a full run hung for good when MiniBrowser could not open its display and the driver
            # waited for it. Bounded, the driver is stopped and the error says what its log said.
            default_timeout = socket.getdefaulttimeout()
            socket.setdefaulttimeout(START_TIMEOUT_S)
            try:
                with warnings.catch_warnings():
                    # selenium 4.50's own WebKitGTK driver hands its service URL to RemoteConnection by the
                    # argument RemoteConnection deprecates: nothing a caller can change.
                    warnings.filterwarnings("ignore", "setting remote_server_addr", DeprecationWarning)
                    return webdriver.WebKitGTK(
                        options=options, service=Service(executable_path=WEBKIT_DRIVER, log_output=str(log))
                    )
            except Exception as exc:  # noqa: BLE001 - any failure to start is told with the driver's log
                said = log.read_text(errors="replace").strip()[-600:] if log.exists() else ""
                raise EngineError(f"WebKit's driver started no session ({type(exc).__name__}: {str(exc)[:200]}); "
                                  f"its log ({log}): {said or 'empty'}") from exc
            finally:
                socket.setdefaulttimeout(default_timeout)
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

        def start_session() -> _WebKitSession:
            # One log per session, so that a crash is told to the session it ended.
            log = workdir / f"webkit-driver-{len(sessions) + 1}.log"
            driver = started_driver(log)
            driver.set_script_timeout(SCRIPT_TIMEOUT_S)
            session = _WebKitSession(driver, log)
            sessions.append(session)
            return session

        def renew(if_used: bool) -> None:
            if if_used and not sessions[-1].used and not sessions[-1].dead:
                return
            sessions[-1].quit()
            start_session()

        start_session()
        try:
            def open_page(url: str) -> Page:
                if sessions[-1].dead:  # a crash ended the last session: this page gets a new one
                    renew(False)
                session = sessions[-1]
                driver = session.driver
                if session.used:  # one window: a second page replaces the first
                    session.run(lambda: driver.get("about:blank"))
                session.used = True
                session.run(lambda: driver.get(url))

                def evaluate(expression: str) -> str:
                    value: str = session.run(lambda: driver.execute_async_script(
                        "const done = arguments[arguments.length - 1];"
                        f"({expression}).then(done);"
                    ))
                    return value

                def click() -> None:
                    # A pointer action at a point of the page: no element lookup (under load,
                    # WebKitWebDriver's findElement answered "Could not parse element info").
                    action = ActionBuilder(driver)
                    action.pointer_action.move_to_location(5, 5).click()
                    session.run(action.perform)

                def close() -> None:
                    # The page goes with its session (MiniBrowser and web process), not by a navigation to
                    # about:blank: tearing down a page whose audio had played crashed the web process
                    # there (a fresh clone lost test_autoplay's second page to it, as one before had). A
                    # crashed page is gone already; a page of an earlier session went with it.
                    if session is sessions[-1] and not session.dead:
                        renew(False)

                return Page("webkit", evaluate, click, close, lambda to: session.run(lambda: driver.get(to)))

            engine.mic_tone_hz, engine.mic_tone_amplitude = WEBKIT_MOCK_HUM_HZ, WEBKIT_MOCK_HUM_AMPLITUDE
            engine._session = lambda: sessions[-1]
            engine._renew = renew
            engine._open = open_page
            yield engine
        finally:
            sessions[-1].quit()


# ---- pytest-pyodide: its runner classes, over the engines started above ---------------------------------


class FirefoxBidiRunner(_BrowserBaseRunner):  # type: ignore[misc]
    """pytest-pyodide's runner contract over a Firefox tab driven by WebDriver BiDi (``script.evaluate`` with
    ``awaitPromise``, as the page API does): pytest-pyodide's own Firefox runners need geckodriver or
    Playwright's Firefox build, neither installable here."""

    browser = "firefox"
    runner = "bidi"

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        self._engine = engine
        self._url = "about:blank"
        super().__init__(**kwargs)

    def get_driver(self, jspi: bool = False) -> Page:
        if jspi:
            raise NotImplementedError("JSPI is not supported in Firefox")
        return self._engine.open("about:blank", wait_for_pyodide=False)

    def goto(self, page: str) -> None:
        self._url = page
        self.driver.navigate(page)

    def set_script_timeout(self, timeout: float) -> None:
        self.script_timeout = timeout  # a BiDi command waits SCRIPT_TIMEOUT_S at most

    def quit(self) -> None:
        self.driver.close()

    def refresh(self) -> None:
        self.driver.navigate(self._url)
        self.javascript_setup()

    def run_js_inner(self, code: str, check_code: str) -> Any:
        status, *rest = self.driver.eval_js(
            f"try {{ const result = await (async () => {{ {code}\n }})();\n{check_code}\nreturn [0, result]; }}"
            " catch (e) { return [1, e.toString(), e.stack]; }"
        )
        if status == 0:
            return rest[0]
        raise JavascriptException(rest[0], rest[1])


class WebKitGTKRunner(_SeleniumBaseRunner):  # type: ignore[misc]
    """pytest-pyodide's selenium runner on the engine's WebKitWebDriver session (MiniBrowser). WebKit is
    what pytest-pyodide calls ``safari`` (``xfail_browsers(safari=...)`` applies here). The one window is
    the engine's: quitting goes to about:blank and leaves the driver to the engine."""

    browser = "safari"

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        self._engine = engine
        super().__init__(**kwargs)

    def get_driver(self, jspi: bool = False) -> Any:
        if jspi:
            raise NotImplementedError("JSPI is not supported in WebKit")
        return self._engine.webdriver

    @property
    def driver(self) -> Any:
        """The engine's current driver: pytest-pyodide keeps ``self.driver`` from construction, and the
        engine starts a new session per module (and after a crash)."""
        return self._engine.webdriver

    @driver.setter
    def driver(self, value: Any) -> None:
        pass  # _BrowserBaseRunner.__init__ stores get_driver()'s answer: the property answers instead

    def run_js_inner(self, code: str, check_code: str) -> Any:
        session = self._engine._session
        assert session is not None
        return session().run(lambda: super(WebKitGTKRunner, self).run_js_inner(code, check_code))

    def set_script_timeout(self, timeout: float) -> None:
        self.script_timeout = timeout  # the engine's driver keeps its own (SCRIPT_TIMEOUT_S)

    def prepare_driver(self) -> None:
        session = self._engine._session
        assert session is not None
        session().used = True
        super().prepare_driver()

    def boot(self) -> None:
        """Load the page and Pyodide again, as construction did: after ``engine.renew()`` (a crash)."""
        self.prepare_driver()
        self.javascript_setup()
        self.load_pyodide()
        self.initialize_pyodide()
        self.save_state()
        self.restore_state()

    def quit(self) -> None:
        if not self._engine.crashed:  # a crashed page is gone already
            self.driver.get("about:blank")


def pyodide_runner(engine: Engine, server_url: str, dist_dir: Path) -> _BrowserBaseRunner:
    """A pytest-pyodide runner (what ``@run_in_pyodide`` calls ``selenium``) on a new page of ``engine``,
    which it shares instead of starting a browser per module as pytest-pyodide's fixtures would.

    The page is ``{server_url}/module_test.html`` (tests/browser/pages/: pytest-pyodide's bootstrap page,
    Pyodide from ``/pyodide``); the runner boots Pyodide there as pytest-pyodide does for every runtime.
    Chromium gets pytest-pyodide's own ``PlaywrightChromeRunner``, on the engine's Playwright browser
    (``/usr/bin/chromium``, tools/chromium.py's flags). ``quit()`` closes the page."""
    host, port = server_url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    common: dict[str, Any] = {"server_port": int(port), "server_hostname": host, "dist_dir": dist_dir}
    if engine.name == "chromium":
        return PlaywrightChromeRunner({"chrome": engine.playwright_browser}, **common)
    if engine.name == "firefox":
        return FirefoxBidiRunner(engine, **common)
    try:
        return WebKitGTKRunner(engine, **common)
    except JavascriptException as exc:
        # Its construction boots Pyodide: a trap there is the boot fault (reported as the trap, or as
        # Pyodide's "already fatally failed" when a later call of the boot met the wreck).
        if WASM_TRAP not in str(exc) and "Pyodide already fatally failed" not in str(exc):
            raise
        warnings.warn(f"{str(exc)[:300]}; booting the runner again in a new WebKit session", stacklevel=2)
        engine.renew(False)
        return WebKitGTKRunner(engine, **common)


def start_realtime_server(**options: Any) -> Any:
    """The local Realtime server in a thread (``start_in_thread``), wherever this checkout keeps it."""
    from pyodide_realtime_server import start_in_thread
    return start_in_thread(**options)
