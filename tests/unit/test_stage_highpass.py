"""HighpassStage: a 4th-order Butterworth high-pass."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.stages.highpass import HighpassStage

RATE = 48_000


def level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


def butterworth_response_db(frequency_hz: float, cutoff_hz: float) -> float:
    return -10 * np.log10(1 + (cutoff_hz / frequency_hz) ** 8)


@pytest.mark.parametrize(("frequency_hz", "cutoff_hz"), [(30.0, 80.0), (80.0, 80.0), (100.0, 300.0), (1000.0, 80.0)])
def test_attenuation_matches_a_fourth_order_butterworth(frequency_hz, cutoff_hz):
    tone = synthetic.sine(frequency_hz, 2.0, RATE)
    out = HighpassStage(1, {"highpass_hz": cutoff_hz}).process(tone[:, :96_000])
    steady = slice(RATE // 2, 3 * RATE // 2)  # clear of the fade-in and fade-out
    measured = level_db(out[:, steady]) - level_db(tone[:, steady])
    assert measured == pytest.approx(butterworth_response_db(frequency_hz, cutoff_hz), abs=0.1)


def test_30_hz_rumble_is_attenuated_by_about_34_db_at_the_default_cutoff():
    tone = synthetic.sine(30.0, 2.0, RATE)
    out = HighpassStage(1, {}).process(tone[:, :96_000])
    steady = slice(RATE // 2, 3 * RATE // 2)
    assert level_db(out[:, steady]) - level_db(tone[:, steady]) < -33.5


def test_a_new_cutoff_takes_effect_after_the_glide():
    tone = synthetic.sine(100.0, 2.0, RATE)[:, :96_000]
    stage = HighpassStage(1, {"highpass_hz": 40.0})
    stage.process(tone[:, :48_000])
    stage.set_params({"highpass_hz": 300.0})
    out = stage.process(tone[:, 48_000:])
    measured = level_db(out[:, 12_000:36_000]) - level_db(tone[:, 60_000:84_000])
    assert measured == pytest.approx(butterworth_response_db(100.0, 300.0), abs=0.2)
