"""The audio reference math (G.711, resampling, the capture low-pass) against independent values.

The expected values come from the ITU-T G.711 reconstruction formulas and companding laws, from
closed forms (a ramp, a sine, a filter's response), never from the code under test.
"""

from __future__ import annotations

import math
import random

import pytest

from pyodide_realtime.audio import g711
from pyodide_realtime.audio.resample import LinearResampler, lowpass_cascade, resampled_length

# ---- G.711 ----------------------------------------------------------------------------------------


def itu_ulaw(code: int) -> int:
    """G.711 µ-law reconstruction value (16-bit scale): bits inverted, then ((2m + 33) << e) - 33."""
    inverted = code ^ 0xFF
    exponent, mantissa = (inverted >> 4) & 7, inverted & 0x0F
    magnitude = (((2 * mantissa + 33) << exponent) - 33) * 4
    return -magnitude if inverted & 0x80 else magnitude


def itu_alaw(code: int) -> int:
    """G.711 A-law reconstruction value (16-bit scale): even bits inverted; segment 0 is linear."""
    inverted = code ^ 0x55
    segment, mantissa = (inverted >> 4) & 7, inverted & 0x0F
    magnitude = (2 * mantissa + 1 if segment == 0 else (2 * mantissa + 33) << (segment - 1)) * 8
    return magnitude if inverted & 0x80 else -magnitude


# Values printed in every G.711 decode table (and once given by the removed audioop module).
KNOWN_ULAW = {0x00: -32124, 0x80: 32124, 0x7F: 0, 0xFF: 0, 0xFE: 8, 0x7E: -8, 0xF0: 120, 0xEF: 132, 0x8F: 16764}
KNOWN_ALAW = {0xD5: 8, 0x55: -8, 0x00: -5504, 0x80: 5504, 0x2A: -32256, 0xAA: 32256, 0xD4: 24}


def test_decode_tables_match_the_itu_formulas_and_known_values():
    for code in range(256):
        assert g711.ulaw_to_linear(code) == itu_ulaw(code), hex(code)
        assert g711.alaw_to_linear(code) == itu_alaw(code), hex(code)
    for code, value in KNOWN_ULAW.items():
        assert g711.ulaw_to_linear(code) == value, hex(code)
    for code, value in KNOWN_ALAW.items():
        assert g711.alaw_to_linear(code) == value, hex(code)
    assert g711.ulaw_to_linear(g711.ULAW_SILENCE) == 0
    assert abs(g711.alaw_to_linear(g711.ALAW_SILENCE)) == 8  # A-law has no zero: +-8 is its silence


@pytest.mark.parametrize(
    ("decode", "law", "tolerance"),
    [
        # mu = 255; A = 87.6: the continuous companding curves that G.711's segments approximate.
        # Tolerance in codes: the chords of 8 segments stray that far from the smooth curve.
        (g711.ulaw_to_linear, lambda x: math.log1p(255 * x) / math.log1p(255), 2.0),
        (g711.alaw_to_linear, lambda x: (87.6 * x if x < 1 / 87.6 else 1 + math.log(87.6 * x)) / (1 + math.log(87.6)), 1.5),
    ],
)
def test_decoded_levels_follow_the_companding_law(decode, law, tolerance):
    levels = sorted({abs(decode(code)) for code in range(256)})
    assert len(levels) == 128
    top = levels[-1]
    for index, level in enumerate(levels):
        assert abs(index - 127 * law(level / top)) < tolerance, (index, level)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encoders_pick_the_decision_interval_of_each_sample(law):
    encode = getattr(g711, f"linear_to_{law}")
    decode = itu_ulaw if law == "ulaw" else itu_alaw

    def half_interval(code: int) -> int:
        if law == "ulaw":
            return 4 << (((code ^ 0xFF) >> 4) & 7)
        segment = ((code ^ 0x55) >> 4) & 7
        return 8 if segment == 0 else 8 << (segment - 1)

    top = max(decode(c) for c in range(256))
    for sample in range(-32768, 32768):
        code = encode(sample)
        if abs(sample) <= top:
            assert abs(sample - decode(code)) <= half_interval(code), (sample, hex(code))
        else:  # beyond the largest level: clipped to it
            assert decode(code) == math.copysign(top, sample), sample
    # Every code but µ-law's "negative zero" survives decode -> encode.
    for code in range(256):
        if (law, code) != ("ulaw", 0x7F):
            assert encode(decode(code)) == code, hex(code)


def test_byte_level_helpers_round_trip_pcm16_little_endian():
    samples = [0, 1, -1, 1000, -1000, 32767, -32768, 12345]
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    for encode, decode, law in [(g711.encode_ulaw, g711.decode_ulaw, itu_ulaw), (g711.encode_alaw, g711.decode_alaw, itu_alaw)]:
        codes = encode(pcm)
        assert len(codes) == len(samples)
        back = decode(codes)
        assert [int.from_bytes(back[i : i + 2], "little", signed=True) for i in range(0, len(back), 2)] == [
            law(c) for c in codes
        ]
    with pytest.raises(ValueError):
        g711.encode_ulaw(b"\x00\x01\x02")


# ---- resampling -------------------------------------------------------------------------------------

RATE_PAIRS = [(24000, 48000), (24000, 44100), (8000, 48000), (8000, 44100), (48000, 24000), (44100, 24000), (48000, 8000), (24000, 24000)]


def chunked(samples: list[float], rng: random.Random) -> list[list[float]]:
    out, i = [], 0
    while i < len(samples):
        n = rng.choice([1, 2, 7, 128, 480, 1000])
        out.append(samples[i : i + n])
        i += n
    return out


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_frame_count_and_output_do_not_depend_on_chunking(in_rate, out_rate):
    rng = random.Random(in_rate * 7 + out_rate)
    n = in_rate // 10 + 3  # 100 ms and a bit
    signal = [rng.uniform(-1, 1) for _ in range(n)]
    whole = LinearResampler(in_rate, out_rate).process(signal)
    resampler = LinearResampler(in_rate, out_rate)
    pieces = [y for chunk in chunked(signal, rng) for y in resampler.process(chunk)]
    assert len(whole) == len(pieces) == n * out_rate // in_rate == resampled_length(n, in_rate, out_rate)
    assert pieces == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize(("in_rate", "out_rate"), RATE_PAIRS)
def test_a_ramp_is_reproduced_exactly_at_each_output_position(in_rate, out_rate):
    # x[i] = i + 1 continues to x[-1] = 0 (the silence an item starts from), so linear interpolation
    # must give y[k] = position + 1 = (k + 1) * in_rate / out_rate exactly.
    n = in_rate // 20
    out = LinearResampler(in_rate, out_rate).process([float(i + 1) for i in range(n)])
    for k, y in enumerate(out):
        assert y == pytest.approx((k + 1) * in_rate / out_rate, rel=1e-12), k


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 48000), (24000, 44100), (8000, 48000)])
def test_a_sine_keeps_its_frequency_and_shape(in_rate, out_rate):
    freq = 440.0
    n = in_rate // 4
    rng = random.Random(1)
    signal = [math.sin(2 * math.pi * freq * i / in_rate) for i in range(n)]
    resampler = LinearResampler(in_rate, out_rate)
    out = [y for chunk in chunked(signal, rng) for y in resampler.process(chunk)]
    # Linear interpolation errs by at most h^2 / 8 * max|f''| (h = one input sample).
    bound = (2 * math.pi * freq / in_rate) ** 2 / 8 + 1e-9
    for k, y in enumerate(out):
        position = ((k + 1) * in_rate - out_rate) / out_rate
        if position >= 0:
            assert abs(y - math.sin(2 * math.pi * freq * position / in_rate)) <= bound, k


def tone_rms_through(filters, rate: int, freq: float, seconds: float = 0.2) -> float:
    signal = [math.sin(2 * math.pi * freq * i / rate) for i in range(int(rate * seconds))]
    for f in filters:
        signal = f.process(signal)
    settled = signal[len(signal) // 2 :]
    return math.sqrt(sum(v * v for v in settled) / len(settled)) * math.sqrt(2)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 24000), (44100, 24000), (48000, 8000)])
def test_capture_lowpass_is_a_4th_order_butterworth_below_the_output_nyquist(in_rate, out_rate):
    cutoff = 0.4 * out_rate

    def butterworth(freq: float) -> float:  # |H| of the analog prototype; the bilinear warp only helps
        return 1 / math.sqrt(1 + (freq / cutoff) ** 8)

    speech = 300.0
    assert tone_rms_through(lowpass_cascade(in_rate, out_rate), in_rate, speech) == pytest.approx(1.0, abs=0.01)
    above_nyquist = 0.75 * out_rate  # would alias to 0.25 * out_rate without the filter
    gain = tone_rms_through(lowpass_cascade(in_rate, out_rate), in_rate, above_nyquist)
    assert gain <= butterworth(above_nyquist) * 1.05
    assert gain < 0.1
    assert lowpass_cascade(24000, 48000) == []  # upsampling needs none


def test_decimation_with_the_lowpass_suppresses_aliases():
    in_rate, out_rate, freq = 48000, 24000, 18000.0  # 18 kHz would fold to 6 kHz
    signal = [math.sin(2 * math.pi * freq * i / in_rate) for i in range(in_rate // 5)]
    plain = LinearResampler(in_rate, out_rate).process(signal)
    filtered = signal
    for f in lowpass_cascade(in_rate, out_rate):
        filtered = f.process(filtered)
    clean = LinearResampler(in_rate, out_rate).process(filtered)

    def peak(xs: list[float]) -> float:
        return max(abs(v) for v in xs[len(xs) // 2 :])

    assert peak(plain) > 0.5  # the alias, at full strength (sampled at +-45 degrees)
    assert peak(clean) < 0.1
