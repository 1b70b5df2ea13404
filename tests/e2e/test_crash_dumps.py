"""The harness's account of a renderer crash: a failing e2e test names what each new minidump says
(conftest.py), so that a crash seen once in a full run tells its signal and where it hit."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from conftest import CRASH_HOME, DUMP_WAIT_S, launch  # this folder's (imported last, so "conftest" here)
from minidump import describe
from playwright.sync_api import Error as PlaywrightError

from chromium import await_crash_dumps


def test_a_crashed_renderer_leaves_a_dump_that_names_its_signal_and_the_code_it_hit(playwright: Any) -> None:
    started = time.time()
    browser = launch(playwright)
    try:
        page = browser.new_page()
        with contextlib.suppress(PlaywrightError):  # the navigation is aborted as the renderer dies
            page.goto("chrome://crash")  # Chromium's own debug page: a read at the null pointer
        new = await_crash_dumps(CRASH_HOME, started, DUMP_WAIT_S)
        assert new, f"no minidump under {CRASH_HOME} {DUMP_WAIT_S} s after the crash"
    finally:
        browser.close()
    said = describe(new[0])
    assert said.startswith("SIGSEGV (si_code 1) at 0x0 on thread "), said  # SEGV_MAPERR at the null pointer
    assert ", code at /usr/lib/chromium/chromium +0x" in said, said
