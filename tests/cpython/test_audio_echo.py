"""The decision behind ``EchoCancellationWarning``, without a browser: which engine's echo canceller
misses a player at which rate (measured in a room where the microphone hears all that plays:
tests/browser/test_echo.py)."""

from __future__ import annotations

import warnings

import pytest

from pyodide_realtime.audio._context import EchoCancellationWarning, echo_not_cancelled, warn_if_not_cancelled

#: The user agents of the engines as the browser tests run them (Chromium 156, Firefox ESR 153, WebKitGTK 2.50).
CHROMIUM = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0"
WEBKIT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/60.5 Safari/605.1.15"


@pytest.mark.parametrize(
    ("user_agent", "player_rate", "microphone_rate", "missed"),
    [
        (FIREFOX, 24000, 44100, True),  # a caller's own 24 kHz context: measured heard in full
        (FIREFOX, 48000, 44100, True),  # any other rate, higher too
        (FIREFOX, 44100, 44100, False),  # the library's context (the default rate): measured cancelled
        (CHROMIUM, 24000, 48000, False),  # Chromium's canceller hears every context of the page
        (CHROMIUM, 44100, 48000, False),  # the library's own set-up there: player 44.1 kHz, microphone 48 kHz
        (WEBKIT, 24000, 44100, False),  # WebKitGTK cancels no player at any rate (measured): no rate to warn of
    ],
)
def test_only_firefox_misses_a_player_at_another_rate(user_agent, player_rate, microphone_rate, missed):
    assert echo_not_cancelled(user_agent, player_rate, microphone_rate) is missed


def test_the_warning_names_the_rates_and_what_to_do():
    with pytest.warns(EchoCancellationWarning) as caught:
        warn_if_not_cancelled(FIREFOX, [44100, 24000], 44100)
    assert len(caught) == 1  # the player at the microphone's rate is heard: no warning for it
    message = str(caught[0].message)
    assert "24000 Hz" in message and "(44100 Hz here)" in message
    assert "AudioPlayer.create() with no context" in message and "new AudioContext()" in message
    assert issubclass(EchoCancellationWarning, UserWarning)  # shown by default, filterable by category


def test_no_warning_where_the_canceller_hears_the_player():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_not_cancelled(CHROMIUM, [24000, 44100], 48000)
        warn_if_not_cancelled(FIREFOX, [44100], 44100)
        warn_if_not_cancelled(FIREFOX, [], 44100)
