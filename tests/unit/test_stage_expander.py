"""ExpanderStage: static curve and range, words pass while pauses close, instant open with hold, leveler after it."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.dsp.loudness import integrated_loudness_lufs
from speakup_fx.stages.expander import HOLD_S, KNEE_DB, ExpanderStage, attenuation_db
from speakup_fx.stages.leveler import LevelerStage

RATE = 48_000
HOP = 480


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


def narration(duration_s: float = 10.0, noise_db: float = -70.0) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like at -20 LUFS plus white noise, and a mask of the frames in the middle of long pauses."""
    speech = synthetic.speech_like(duration_s, RATE, 1)
    frames = speech.shape[-1] // HOP * HOP
    speech = speech[:, :frames] * 10 ** ((-20.0 - integrated_loudness_lufs(speech, RATE)) / 20)
    audio = (speech + synthetic.noise(duration_s, RATE, 1, level_db=noise_db)[:, :frames]).astype(np.float32)
    t = np.arange(frames) / RATE
    pause_middle = np.sin(2 * np.pi * 0.4 * t) < -0.999  # speech_like pauses (0.74 s) where this is below -0.6
    pause_middle[: RATE] = False
    return audio, pause_middle


@pytest.mark.parametrize("input_db", [-70.0, -56.0, -50.0, -44.0, -30.0])
def test_static_curve_matches_threshold_ratio_and_range(input_db):
    params = {"expander_threshold_db": -50.0, "expander_ratio": 3.0, "expander_range_db": 20.0}
    tone = synthetic.sine(1000.0, 1.0, RATE, amplitude=float(np.sqrt(2) * 10 ** (input_db / 20)))
    out = ExpanderStage(1, params).process(tone[:, :RATE])
    under = -50.0 - input_db
    expected = min(2.0 * under, 20.0) if under >= KNEE_DB / 2 else (0.0 if under <= -KNEE_DB / 2 else None)
    if expected is None:
        expected = float(attenuation_db(np.array(input_db), -50.0, 3.0, 20.0))
    assert rms_db(out[:, 24_000:40_000]) == pytest.approx(input_db - expected, abs=0.2)


def test_attenuation_curve_is_continuous_and_capped_by_the_range():
    levels = np.linspace(-100.0, 0.0, 10_001)
    curve = attenuation_db(levels, -40.0, 4.0, 25.0)
    assert np.abs(np.diff(curve)).max() < 0.05
    assert curve.max() == pytest.approx(25.0) and curve[-1] == 0.0


def test_words_pass_and_pauses_are_attenuated_by_the_range():
    audio, pause_middle = narration()
    out = ExpanderStage(1, {"expander_threshold_db": -50.0, "expander_ratio": 3.0, "expander_range_db": 30.0}).process(audio)
    loud = np.abs(audio[0]) > 10 ** (-30 / 20)  # inside words
    changed = np.abs(out[0, loud] / audio[0, loud] - 1) > 0.02
    assert changed.mean() < 0.01  # only the first 2 ms of words that start abruptly after a pause
    assert rms_db(out[:, pause_middle]) == pytest.approx(rms_db(audio[:, pause_middle]) - 30.0, abs=1.0)


def test_ratio_one_or_range_zero_is_transparent():
    audio, _ = narration(3.0)
    for params in ({"expander_ratio": 1.0}, {"expander_range_db": 0.0}):
        np.testing.assert_allclose(ExpanderStage(1, params).process(audio), audio, rtol=1e-6, atol=1e-9)


def test_gain_opens_at_once_holds_then_closes():
    frames = 2 * RATE
    t = np.arange(frames) / RATE
    envelope = np.where((t >= 0.5) & (t < 1.0), 0.1, 1e-4)  # a -23 dB burst over -83 dB
    tone = (envelope * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[None]
    out = ExpanderStage(1, {"expander_threshold_db": -50.0, "expander_ratio": 4.0, "expander_range_db": 40.0}).process(tone)
    gain = np.abs(out[0]) / np.maximum(np.abs(tone[0]), 1e-12)
    peaks = np.abs(tone[0]) > 0.5 * envelope  # near the sine's crests

    def gain_db_at(start_s: float, length_s: float = 0.002) -> float:
        window = slice(int(start_s * RATE), int((start_s + length_s) * RATE))
        return 20 * np.log10(np.median(gain[window][peaks[window]]))

    assert gain_db_at(0.4) == pytest.approx(-40.0, abs=0.5)  # closed before the burst
    assert gain_db_at(0.505) > -1.0  # open 5 ms into the burst (no look-ahead needed)
    assert gain_db_at(1.0 + HOLD_S - 0.01) > -1.0  # held open after the burst
    assert gain_db_at(1.0 + HOLD_S + 0.1) < -6.0  # then closing
    assert gain_db_at(1.9) == pytest.approx(-40.0, abs=0.5)  # closed again


def test_leveler_after_the_expander_holds_its_gain_through_the_closed_pauses():
    audio, pause_middle = narration(12.0)
    expander = ExpanderStage(1, {"expander_threshold_db": -50.0, "expander_range_db": 30.0})
    leveler = LevelerStage(1, {"leveler_amount": 1.0, "target_lufs": -16.0})
    gains, outs = [], []
    for start in range(0, audio.shape[-1], HOP):
        outs.append(leveler.process(expander.process(audio[:, start : start + HOP])))
        gains.append(leveler.gain_db)
    out, gains = np.concatenate(outs, axis=1), np.repeat(gains, HOP)
    settled = np.arange(audio.shape[-1]) > 6 * RATE
    speaking_gain = np.median(gains[settled & ~pause_middle])
    assert speaking_gain > 2.0  # the leveler is raising this speech
    assert gains[settled & pause_middle].max() < speaking_gain + 1.0  # and not the pauses any further
    pause = settled & pause_middle
    assert rms_db(out[:, pause]) < rms_db(audio[:, pause]) - 30.0 + speaking_gain + 1.5
