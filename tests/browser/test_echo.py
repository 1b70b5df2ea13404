"""A guard for echo: in a room where the microphone hears exactly what the speakers play
(``echo_room``), the microphone with the library's default constraints (``echoCancellation: true``)
must not hear a spoken reply that ``AudioPlayer`` plays, in Chromium and Firefox.

Each measurement plays the same reply (espeak-ng, as the local server speaks it) while the microphone
captures, waits for the player's end and then for a second of chunks more (the echo's tail), and
compares the energy heard with the energy played:
- ``whole``: over the whole reply, in dB down. A busy machine starves the browsers' audio threads, and
  a canceller then loses track for a second or two: at a load of 12-20 on 2 cores the whole figure fell
  to 3-28 dB in about 1 run in 3 (other seconds of the same runs 40-75 dB down); with the room's raised
  priority (``echo_room``), Firefox held 52-60 dB in 5 runs, Chromium fell to 12 and 26 dB in 2 of 5.
  So it is reported, not asserted.
- ``best``: the best second of the reply, in dB down. The assertion: above 30 dB means the player's
  sound is in the canceller's reference (a sound that is not is never removed: every second of it is
  heard at about 0 dB, as the controls show).

The controls, in the same test: the microphone with its processing off (Chromium and Firefox), and a
player on a caller's own 24 kHz AudioContext in Firefox, whose canceller does not hear it (the case
``EchoCancellationWarning`` warns of). WebKit is not in the room: see ``echo_room``.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from echo_room import ROOM_ENGINES, echo_room_engine
from engines import Engine, Page, in_page

#: A canceller cancels less on a busy machine (Chromium's best second fell to 27 dB beside two other test
#: workers, from 70-76 dB alone): the guard measures the library, so nothing runs beside it.
pytestmark = pytest.mark.alone

REPLY_TEXT = "The weather in Paris is sunny, with a light breeze from the west and twenty degrees."
PCM16_RATE = 24_000
#: A cancelled reply is heard at least this far down in its best second; the bar of the issue.
CANCELLED_DB = 30.0
#: A reply the canceller does not hear comes back at about 0 dB (measured -3.5 to +0.3: the automatic
#: gain control may lift it): below this, not cancelled at all.
NOT_CANCELLED_DB = 10.0
#: A second of the reply counts if it holds speech (its mean square above this: -50 dBFS).
SPEECH_ENERGY = (32768 * 10 ** (-50 / 20)) ** 2


@pytest.fixture(scope="module")
def reply() -> bytes:
    """The reply as the local server speaks it: PCM16 24 kHz."""
    from concurrent.futures import ThreadPoolExecutor

    from pyodide_realtime_server._speech import Synthesizer

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, Synthesizer("espeak").audio(REPLY_TEXT, "pcm16")).result()


@pytest.fixture(scope="module", params=ROOM_ENGINES)
def room_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with echo_room_engine(request.param, tmp_path_factory.mktemp(f"echo-room-{request.param}")) as started:
        yield started


@pytest.fixture(scope="module")
def room_page(room_engine: Engine, engine_server: Any) -> Iterator[Page]:
    page = room_engine.open(f"{engine_server.url.rstrip('/')}/engine.html")
    page.click()  # Firefox plays only after a click on the page
    try:
        yield page
    finally:
        page.close()


@in_page
async def _play_into_the_room(reply: bytes, player_rate: int, cancel: bool, player_first: bool) -> dict:
    """Play ``reply`` through an AudioPlayer while a Microphone captures; what the microphone heard.

    ``player_rate``: 0 for the library's own context, else a context of the caller's at that rate.
    ``cancel``: the library's default constraints, or all processing off. ``player_first``: the
    player exists before the microphone starts (else after, as start_voice makes them).
    """
    import asyncio
    import warnings

    import js

    from pyodide_realtime.audio import AudioPlayer, Microphone
    from pyodide_realtime.audio._context import EchoCancellationWarning
    from pyodide_realtime.audio._shim import js_object

    chunks: list[bytes] = []
    enough = asyncio.Event()
    wanted = [1]

    def keep(chunk: bytes) -> None:
        chunks.append(chunk)
        if len(chunks) >= wanted[0]:
            enough.set()

    async def chunks_more(count: int) -> None:
        wanted[0] = len(chunks) + count
        enough.clear()
        await enough.wait()

    async def make_player() -> AudioPlayer:
        context = js.AudioContext.new(js_object({"sampleRate": player_rate})) if player_rate else None
        return await AudioPlayer.create(context)

    options = {} if cancel else dict(echo_cancellation=False, noise_suppression=False, auto_gain_control=False)
    microphone = Microphone(keep, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EchoCancellationWarning)
        player = await make_player() if player_first else None
        await microphone.start()
        player = player or await make_player()
    try:
        await chunks_more(5)  # the capture runs
        start = len(chunks)
        player.play(reply, item_id="reply")
        player.finish("reply")
        await player.wait_ended("reply")
        await chunks_more(25)  # a second more: the echo's tail
    finally:
        microphone.stop()
        player.close()
        if player_rate:
            player.context.close()
    return dict(
        heard=b"".join(chunks[start:]),
        player_rate=int(player.sample_rate),
        warnings=[str(w.message) for w in caught if issubclass(w.category, EchoCancellationWarning)],
    )


def _energies(pcm: bytes) -> list[float]:
    """Sum of squares per second of PCM16 24 kHz audio."""
    samples = array("h", pcm)
    return [float(sum(s * s for s in samples[i : i + PCM16_RATE])) for i in range(0, len(samples), PCM16_RATE)]


def _db_down(played: float, heard: float) -> float:
    return 10 * math.log10(played / heard) if heard > 0 else math.inf


def _attenuation(reply: bytes, heard: bytes) -> tuple[float, float]:
    """How far down the microphone heard the reply: over the whole of it, and in its best second."""
    played, echoed = _energies(reply), _energies(heard)
    seconds = [
        _db_down(energy, echoed[i] if i < len(echoed) else 0.0)
        for i, energy in enumerate(played)
        if energy / PCM16_RATE > SPEECH_ENERGY
    ]
    return _db_down(sum(played), sum(echoed)), max(seconds)


def _measure(page: Page, reply: bytes, figure: Callable[[str, str], None], what: str, **path: Any) -> dict:
    options = dict(player_rate=0, cancel=True, player_first=False) | path
    result: dict = _play_into_the_room(page, reply, options["player_rate"], options["cancel"], options["player_first"])
    assert result["heard"], f"{what}: the microphone delivered nothing"
    result["whole"], result["best"] = _attenuation(reply, result["heard"])
    figure(f"{page.engine}, {what}", f"{result['whole']:.1f} dB down over the reply, {result['best']:.1f} dB in its best second")
    return result


def test_the_microphone_does_not_hear_the_player(
    room_page: Page, reply: bytes, timing_figure: Callable[[str, str], None]
) -> None:
    guarded = _measure(room_page, reply, timing_figure, "the library's player and microphone")
    control = _measure(room_page, reply, timing_figure, "the microphone's processing off", cancel=False)

    assert guarded["warnings"] == []
    assert guarded["best"] > CANCELLED_DB, guarded | {"heard": len(guarded["heard"])}
    # The room works: without the canceller, the microphone hears the reply as it was played.
    assert control["whole"] < NOT_CANCELLED_DB and control["best"] < NOT_CANCELLED_DB, control | {"heard": len(control["heard"])}


@pytest.mark.parametrize("player_first", [True, False], ids=["player-first", "microphone-first"])
def test_a_player_the_canceller_cannot_hear_is_warned_of(
    room_page: Page, reply: bytes, timing_figure: Callable[[str, str], None], player_first: bool
) -> None:
    """A caller's own 24 kHz context for the player: Firefox's canceller does not hear it, and the
    microphone warns (when it starts, or when the player comes later); Chromium's hears it."""
    result = _measure(room_page, reply, timing_figure, f"a player at 24 kHz ({'player' if player_first else 'microphone'} first)",
                      player_rate=PCM16_RATE, player_first=player_first)
    assert result["player_rate"] == PCM16_RATE
    summary = result | {"heard": len(result["heard"])}
    if room_page.engine == "firefox":
        assert result["whole"] < NOT_CANCELLED_DB and result["best"] < NOT_CANCELLED_DB, summary
        assert len(result["warnings"]) == 1, summary
        assert "24000 Hz" in result["warnings"][0] and "AudioPlayer.create() with no context" in result["warnings"][0]
    else:
        assert result["best"] > CANCELLED_DB and result["warnings"] == [], summary
