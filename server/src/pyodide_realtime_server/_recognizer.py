"""What the user said, for the simulated model: PocketSphinx (offline, its English model ships in the
``pocketsphinx`` wheel), with a small grammar and keyword spotting instead of its full language model.

The full model hears espeak-ng's "What is the weather in Paris?" as "what is that when the reply".
Two passes do better: a grammar of a few question words, the session's tool names (split at
underscores) and some city names gives the transcript ("what is the weather", "what is"...), and
keyword spotting of the tool names' longer words (5 letters or more: shorter ones false-alarm) finds
"weather" reliably at 24 kHz, 22 kHz and through G.711; a spotted word the grammar missed is added to
the transcript. The model acts on that text as on typed text. Optional: without ``pocketsphinx``
speech is not recognized (``available`` is False) and transcripts say only how long the speech was.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from array import array
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pyodide_realtime.audio.resample import LinearResampler, lowpass_cascade

from ._audio import pcm16_from_samples, rms

try:
    from pocketsphinx import Decoder
except ImportError:  # an optional dependency: pip install "pyodide-realtime-server[speech]"
    Decoder = None

RECOGNIZER_RATE = 16_000
# Words every grammar has: few, as every word more is one more way to mishear.
COMMON_WORDS = "what is the a in please call get tell me how are you hello it".split()
CITIES = ("paris", "london", "tokyo", "berlin")
MAX_GRAMMAR_WORDS = 100
MIN_KEYWORD_LETTERS = 5
KEYWORD_THRESHOLD = "1e-20"
SILENT_RMS = 30.0  # about -60 dBFS: quieter than any microphone's own noise
INITIAL_CMN = "40,3,-1,0,0,0,0,0,0,0,0,0,0"  # the English model's starting cepstral mean  # PocketSphinx's detection threshold for a keyword (lower: more hits)
GRAMMAR_CACHE = 16
_WORD = re.compile(r"[a-z]+")

_DECODING = threading.Lock()


def available() -> bool:
    return Decoder is not None


def grammar_words(tool_names: Iterable[str]) -> tuple[str, ...]:
    words = list(COMMON_WORDS) + list(CITIES)
    for name in tool_names:
        words += _WORD.findall(name.lower())
    return tuple(dict.fromkeys(words))[:MAX_GRAMMAR_WORDS]


def _new_decoder() -> Any:
    assert Decoder is not None
    # No language model (the grammar replaces it; loading it is most of a decoder's start-up), and no
    # noise removal: its estimate would carry from one utterance to the next.
    return Decoder(samprate=RECOGNIZER_RATE, loglevel="FATAL", lm=None, remove_noise=False)


def keywords(tool_names: Iterable[str]) -> tuple[str, ...]:
    found = [word for name in tool_names for word in _WORD.findall(name.lower()) if len(word) >= MIN_KEYWORD_LETTERS]
    return tuple(dict.fromkeys(found))


@lru_cache(maxsize=GRAMMAR_CACHE)
def _decoders(words: tuple[str, ...], spotted: tuple[str, ...]) -> tuple[Any, Any]:
    assert Decoder is not None
    grammar_decoder = _new_decoder()
    known = [word for word in words if all(grammar_decoder.lookup_word(part) for part in word.split())]
    grammar = "#JSGF V1.0;\ngrammar speech;\npublic <speech> = <word>* ;\n<word> = " + " | ".join(known) + " ;\n"
    grammar_decoder.add_jsgf_string("speech", grammar.encode())
    grammar_decoder.activate_search("speech")
    spotter = None
    listed = [word for word in spotted if grammar_decoder.lookup_word(word)]
    if listed:
        spotter = _new_decoder()
        with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as file:
            file.write("".join(f"{word} /{KEYWORD_THRESHOLD}/\n" for word in listed))
        try:
            spotter.add_kws("keywords", file.name)
        finally:
            os.unlink(file.name)
        spotter.activate_search("keywords")
    return grammar_decoder, spotter


def _decode(decoder: Any, pcm: bytes) -> Any:
    # Each utterance from the same starting cepstral mean: the decoder otherwise adapts it across
    # utterances, and what one connection said would change what the next one is heard to say.
    decoder.set_cmn(INITIAL_CMN)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return decoder


def to_recognizer_rate(samples: array[int], rate: int) -> array[int]:
    """``samples`` at 16 kHz, low-passed first when going down (the client's capture-path filter):
    unfiltered decimation folds 8-12 kHz hiss into the band the recognizer listens to."""
    floats: list[float] = [float(s) for s in samples]
    for stage in lowpass_cascade(rate, RECOGNIZER_RATE):
        floats = stage.process(floats)
    resampled = LinearResampler(rate, RECOGNIZER_RATE).process(floats)
    return array("h", (max(-32768, min(32767, round(v))) for v in resampled))


def recognize(samples: array[int], rate: int, tool_names: Iterable[str] = ()) -> str:
    """The words heard in ``samples`` (PCM16 at ``rate``), lower case; "" if none. Blocking: run it
    in a thread. Decoders are cached per vocabulary and shared by connections: one at a time."""
    if Decoder is None or rms(samples) < SILENT_RMS:
        return ""  # the decoder "hears" a short word in digital silence; there is nothing to hear
    names = tuple(tool_names)
    pcm = pcm16_from_samples(to_recognizer_rate(samples, rate))
    with _DECODING:
        grammar_decoder, spotter = _decoders(grammar_words(names), keywords(names))
        hypothesis = _decode(grammar_decoder, pcm).hyp()
        heard = str(hypothesis.hypstr).split() if hypothesis is not None else []
        spotted = [str(segment.word).strip() for segment in (_decode(spotter, pcm).seg() or [])] if spotter is not None else []
    for word in spotted:
        if word not in heard:
            heard.append(word)
    return " ".join(heard)

