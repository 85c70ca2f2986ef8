"""DehumStage: detects 50 or 60 Hz mains hum and removes it with its harmonics; leaves other sounds alone."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from scipy.signal import butter, sosfiltfilt

from speakup_fx.stages.dehum import DehumStage

RATE = 48_000
DURATION_S = 5.0


def component_db(x: np.ndarray, frequency_hz: float) -> float:
    """Amplitude (dB) of the ``frequency_hz`` component over the last 3 s (Hann-windowed DFT)."""
    tail = x[0, -3 * RATE :].astype(np.float64)
    t = np.arange(tail.size) / RATE
    window = np.hanning(tail.size)
    return 20 * np.log10(2 * abs(np.sum(tail * window * np.exp(-2j * np.pi * frequency_hz * t))) / window.sum() + 1e-12)


@pytest.mark.parametrize("mains_hz", [50, 60])
def test_hum_and_harmonics_are_removed_by_at_least_20_db(mains_hz):
    hum = synthetic.hum(mains_hz, DURATION_S, RATE)
    audio = (synthetic.speech_like(DURATION_S, RATE, 1) + hum).astype(np.float32)
    stage = DehumStage(1, {"dehum_amount": 1.0})
    out = stage.process(audio)
    assert stage.mains_hz == mains_hz
    for harmonic in range(1, 7):
        frequency_hz = harmonic * mains_hz
        assert component_db(out, frequency_hz) <= component_db(hum, frequency_hz) - 20.0


def test_speech_is_barely_changed_outside_the_notches():
    hum = synthetic.hum(60, DURATION_S, RATE)
    speech = synthetic.speech_like(DURATION_S, RATE, 1)
    out = DehumStage(1, {}).process((speech + hum).astype(np.float32))
    spectrum_in = np.abs(np.fft.rfft(speech[0, -3 * RATE :]))
    spectrum_out = np.abs(np.fft.rfft(out[0, -3 * RATE :]))
    bands = np.geomspace(300, 6000, 13)  # third-octave-ish bands, away from the hum's low harmonics
    frequencies = np.fft.rfftfreq(3 * RATE, 1 / RATE)
    for low, high in zip(bands[:-1], bands[1:]):
        band = (frequencies >= low) & (frequencies < high)
        change_db = 10 * np.log10(np.sum(spectrum_out[band] ** 2) / np.sum(spectrum_in[band] ** 2))
        assert abs(change_db) < 0.5


def test_a_1_khz_tone_without_hum_passes_untouched():
    tone = synthetic.sine(1000.0, DURATION_S, RATE)
    stage = DehumStage(1, {})
    np.testing.assert_array_equal(stage.process(tone), tone)
    assert stage.mains_hz is None


def test_a_1_khz_tone_keeps_its_level_while_60_hz_hum_is_removed():
    tone = synthetic.sine(1000.0, DURATION_S, RATE)
    out = DehumStage(1, {}).process((tone + synthetic.hum(60, DURATION_S, RATE)).astype(np.float32))
    assert component_db(out, 1000.0) == pytest.approx(component_db(tone, 1000.0), abs=0.1)


def test_switching_mains_crossfades_to_the_new_frequency_without_a_click():
    fade = np.clip((np.arange(2 * DURATION_S * RATE) - DURATION_S * RATE) / (0.5 * RATE), 0.0, 1.0)
    hum_50, hum_60 = synthetic.hum(50, 2 * DURATION_S, RATE)[0], synthetic.hum(60, 2 * DURATION_S, RATE)[0]
    audio = ((1 - fade) * hum_50 + fade * hum_60).astype(np.float32)[None]
    stage = DehumStage(1, {})
    out = stage.process(audio)
    assert stage.mains_hz == 60
    assert component_db(out, 60.0) <= component_db(audio, 60.0) - 20.0
    above_1_khz = butter(8, 1000.0, "highpass", fs=RATE, output="sos")
    click = np.abs(sosfiltfilt(above_1_khz, out[0, RATE:].astype(np.float64))).max()
    assert click <= np.abs(sosfiltfilt(above_1_khz, audio[0, RATE:].astype(np.float64))).max()


def test_amount_sets_the_notch_depth():
    hum = synthetic.hum(50, DURATION_S, RATE)
    half = DehumStage(1, {"dehum_amount": 0.5}).process(hum)
    off = DehumStage(1, {"dehum_amount": 0.0}).process(hum)
    assert component_db(half, 50.0) == pytest.approx(component_db(hum, 50.0) - 6.02, abs=0.2)
    np.testing.assert_array_equal(off, hum)
