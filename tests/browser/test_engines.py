"""The page API itself (engines.py): what a test may rely on whatever ran before it in the engine."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import Engine, EngineError, _xvfb, webkit_boot_fault

#: A page that tells, as it goes away, whether the engine kept it (a back/forward cache).
GOING_AWAY = (
    b"<!doctype html><title>going away</title><script>"
    b"addEventListener('pagehide', (e) => navigator.sendBeacon('/gone?persisted=' + e.persisted));"
    b"</script>"
)


class _Beacons(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[str] = []
        self.arrived = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Beacons

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(GOING_AWAY)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(self.path)
        self.server.arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def beacons() -> Iterator[_Beacons]:
    server = _Beacons()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_closed_page_is_gone_not_kept_in_a_back_forward_cache(engine: Engine, beacons: _Beacons) -> None:
    # A page kept alive after close() would keep its Pyodide heap, its AudioContexts and its timers in the
    # engine for the rest of the run (WebKit keeps pages for "back" unless told not to: its tests then ran
    # slower, the longer the run).
    page = engine.open(beacons.url + "/", wait_for_pyodide=False)
    page.eval_js("return document.readyState")
    page.close()
    assert beacons.arrived.wait(10), "the page sent nothing as it went away"
    assert beacons.received == ["/gone?persisted=false"]


def test_the_engine_reaches_nothing_but_loopback(engine: Engine, beacons: _Beacons) -> None:
    # The browsers run inside the tests' network namespace too (tests/cpython/test_offline.py): a fetch
    # from the page to another address fails at once, as a network error.
    page = engine.open(beacons.url + "/", wait_for_pyodide=False)
    try:
        outcome = page.eval_js(
            "try { await fetch('http://192.0.2.1/', {cache: 'no-store'}); return 'reached'; }"
            " catch (error) { return error.name; }"
        )
    finally:
        page.close()
    assert outcome == "TypeError"  # a network error (fetch's only kind), before any answer


# ---- WebKit: a web process per module, and one crash costs one test ---------------------------------
# WebKitGTK keeps every AudioWorklet thread it ever started until its web process ends, and a long-lived
# web process crashed (docs/engines.md). These run on a WebKit engine of their own, killed at will.


@pytest.fixture(scope="module")
def own_webkit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from engines import open_engine

    with open_engine("webkit", tmp_path_factory.mktemp("own-webkit")) as started:
        yield started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_renewed_webkit_session_has_a_new_web_process_and_the_old_one_is_gone(
    own_webkit: Engine, beacons: _Beacons
) -> None:
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    first = own_webkit.web_process_pid
    assert first is not None and page.eval_js("return 1 + 1") == 2
    own_webkit.renew()
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    second = own_webkit.web_process_pid
    assert page.eval_js("return 2 + 2") == 4
    assert second is not None and second != first
    assert not _alive(first)  # the old session's MiniBrowser and web process ended with it
    page.close()


def test_a_killed_web_process_fails_its_call_saying_so_and_the_next_page_works(
    own_webkit: Engine, beacons: _Beacons
) -> None:
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    victim = own_webkit.web_process_pid
    assert victim is not None
    # Killed: MiniBrowser reports it as the crash seen in the suite (a SIGSEGV sent from outside does
    # nothing: JavaScriptCore handles SIGSEGV itself, for WebAssembly).
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(EngineError, match="WebKit's web process crashed .*WebProcess CRASHED"):
        page.eval_js("return 1")
    assert own_webkit.crashed
    with pytest.raises(EngineError, match="ended earlier"):  # the dead page never answers again
        page.eval_js("return 1")
    page.close()  # closing a crashed page is no error
    fresh = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    assert fresh.eval_js("return 3 + 3") == 6
    assert own_webkit.web_process_pid not in (None, victim) and not own_webkit.crashed
    fresh.close()


def test_a_module_page_and_a_pyodide_runner_go_on_in_a_new_session_after_a_crash(
    own_webkit: Engine, engine_server: Any, request: pytest.FixtureRequest
) -> None:
    from engines import pyodide_runner

    page = own_webkit.open(f"{engine_server.url.rstrip('/')}/engine.html")
    os.kill(own_webkit.web_process_pid or 0, signal.SIGKILL)
    with pytest.raises(EngineError, match="web process crashed"):
        page.run_python("1 + 1")
    own_webkit.reopen(page)  # what the autouse fixture does for the module's ``page``
    assert page.run_python("1 + 1") == 2  # the same object, Pyodide loaded again
    page.close()
    # pytest-pyodide's runner follows the engine's current driver, made before or after a renewal.
    runner = pyodide_runner(own_webkit, engine_server.url, request.config.option.dist_dir)
    assert runner.run("1 + 2") == 3
    os.kill(own_webkit.web_process_pid or 0, signal.SIGKILL)
    with pytest.raises(EngineError, match="web process crashed"):
        runner.run("1")
    own_webkit.renew()
    runner.boot()
    assert runner.run("2 + 3") == 5
    runner.quit()


def test_a_module_renews_only_a_session_that_a_page_drove(own_webkit: Engine, beacons: _Beacons) -> None:
    # What the ``engine`` fixture does as a module starts: a used session is replaced (a module never meets
    # an earlier module's web process); an unused one is kept (no MiniBrowser started for nothing).
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    used = own_webkit.web_process_pid
    page.close()
    own_webkit.renew(if_used=True)
    fresh_driver = own_webkit.webdriver
    own_webkit.renew(if_used=True)
    assert own_webkit.webdriver is fresh_driver
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    assert own_webkit.web_process_pid not in (None, used)
    page.close()


#: Two modules run by a pytest of their own, on the fixtures of tests/browser/conftest.py, in WebKit.
_INNER_CONFTEST = """
import importlib.util
spec = importlib.util.spec_from_file_location("browser_conftest", {conftest!r})
browser_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(browser_conftest)
globals().update({{k: v for k, v in vars(browser_conftest).items() if not k.startswith("__")}})
"""
_INNER_FIRST_MODULE = """
import os, signal
from pathlib import Path

def test_a_crash(engine, page):
    Path("first-pid").write_text(str(engine.web_process_pid))
    os.kill(engine.web_process_pid, signal.SIGKILL)
    page.eval_js("return 1")

def test_the_next_test_of_the_module(engine, page):
    assert page.run_python("1 + 1") == 2
    Path("recovered-pid").write_text(str(engine.web_process_pid))
"""
_INNER_SECOND_MODULE = """
from pathlib import Path

def test_the_next_module(engine, page):
    assert page.run_python("2 + 2") == 4
    Path("second-pid").write_text(str(engine.web_process_pid))
"""


def test_through_the_fixtures_a_crash_fails_one_test_and_each_module_has_its_own_web_process(
    tmp_path: Path,
) -> None:
    # The conftest's own fixtures, in a pytest of their own (a crash on purpose must not touch this run).
    browser = Path(__file__).resolve().parent
    root = browser.parents[1]
    (tmp_path / "conftest.py").write_text(_INNER_CONFTEST.format(conftest=str(browser / "conftest.py")))
    (tmp_path / "test_first.py").write_text(textwrap.dedent(_INNER_FIRST_MODULE))
    (tmp_path / "test_second.py").write_text(textwrap.dedent(_INNER_SECOND_MODULE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(browser), str(root / "tools"), str(root / "src")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "webkit", "--rootdir", str(tmp_path),
         "-c", os.devnull, "--basetemp", str(tmp_path / "tmp"), "-W", "ignore::DeprecationWarning", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    report = run.stdout + run.stderr
    # The crash fails its own test, loudly, with MiniBrowser's word for it; it is not retried or skipped.
    assert "1 failed, 2 passed" in report, report
    assert "FAILED test_first.py::test_a_crash[webkit]" in report, report
    assert "WebKit's web process crashed" in report and "WebProcess CRASHED" in report, report
    first, recovered, second = ((tmp_path / name).read_text() for name in ("first-pid", "recovered-pid", "second-pid"))
    assert len({first, recovered, second}) == 3 and "None" not in (first, recovered, second)


def test_a_hung_web_process_fails_its_call_in_bounded_time_and_the_next_page_works(
    own_webkit: Engine, beacons: _Beacons
) -> None:
    page = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)
    victim = own_webkit.web_process_pid
    assert victim is not None
    # Stopped, it answers nothing, not even the driver's own script timeout: as a web process whose
    # audio threads spin. The command's limit ends the wait (made short here), not the test's timeout.
    own_webkit.webdriver.command_executor._client_config.timeout = 5
    os.kill(victim, signal.SIGSTOP)
    try:
        with pytest.raises(EngineError, match="WebKit did not answer in 5 s.*its web process hung"):
            page.eval_js("return 1")
        assert own_webkit.crashed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    fresh = own_webkit.open(beacons.url + "/", wait_for_pyodide=False)  # a new session
    assert fresh.eval_js("return 3 + 3") == 6
    assert not _alive(victim)  # killed with the hung session, not left spinning
    fresh.close()


def test_the_webkit_boot_fault_is_told_from_other_boot_failures() -> None:
    # The three WebKit boots that fresh clones lost, as the page reported them, and what is not that fault.
    trap = "Out of bounds memory access (evaluating '{}')"
    direct = "Error: the page failed to start Pyodide: RuntimeError: " + trap.format("_PyRun_SimpleString(r)")
    fatal = (
        "Error: the page failed to start Pyodide: Error: Pyodide already fatally failed and can no longer be used.\n"
        "Pyodide has suffered a fatal error. Please report this to the Pyodide maintainers.\n"
        "The cause of the fatal error was:\nRuntimeError: " + trap.format("__pyproxy_apply(t,e,n,o,s)") + "\n"
        "The following error occurred while loading annotated-types:\n" + trap.format("__pyproxy_apply(t,e,n,o,s)")
    )
    assert webkit_boot_fault(direct) and webkit_boot_fault(fatal)
    python_error = "Error: the page failed to start Pyodide: PythonError: Traceback ...\nRuntimeError: no running event loop"
    assert not webkit_boot_fault(python_error)
    assert not webkit_boot_fault("Error: Pyodide not ready in time")
    assert not webkit_boot_fault("RuntimeError: " + trap.format("_PyRun_SimpleString(r)"))  # in a test, not at boot


def _x_connection_setup(display: str) -> str:
    """An X11 connection setup on ``display``'s socket, as a client opening the display makes it: "ok", or
    how the server answered (a refusal's reason, or the connection closed or reset unanswered)."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        try:
            client.connect(f"/tmp/.X11-unix/X{display.lstrip(':')}")
            client.sendall(b"l\0" + struct.pack("<HHHHxx", 11, 0, 0, 0))  # little-endian, X11.0, no auth
            head = client.recv(8)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        if not head:
            return "closed unanswered"
        return "ok" if head[0] == 1 else f"refused: {client.recv(head[1] + 64)[: head[1]]!r}"


def test_the_webkit_display_serves_a_client_that_comes_just_after_the_last_one_left(tmp_path: Path) -> None:
    # A new WebKit session quits one MiniBrowser, the display's only client, and starts the next. An X server
    # that resets when its last client leaves dropped such clients ("cannot open display" in 2 full runs).
    with _xvfb(tmp_path / "xvfb.log") as display:
        answers = [_x_connection_setup(display) for _ in range(200)]
    dropped = [answer for answer in answers if answer != "ok"]
    assert not dropped, f"{len(dropped)} of 200 clients, each alone on the display, were not served: {dropped[:5]}"
