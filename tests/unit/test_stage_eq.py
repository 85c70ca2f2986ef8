"""EqStage: RBJ peaking filters at 300 Hz and 4 kHz, high shelf at 10 kHz."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from scipy.signal import sosfreqz

from speakup_fx.stages.eq import EqStage, eq_sos

RATE = 48_000
FLAT = {"low_mid_cut_db": 0.0, "presence_db": 0.0, "air_db": 0.0}


def gain_db(stage: EqStage, frequency_hz: float) -> float:
    tone = synthetic.sine(frequency_hz, 1.0, RATE)
    out = stage.process(tone)
    steady = slice(24_000, 40_000)
    return 10 * np.log10(np.mean(out[:, steady].astype(np.float64) ** 2) / np.mean(tone[:, steady].astype(np.float64) ** 2))


@pytest.mark.parametrize(("param", "value_db", "frequency_hz"), [
    ("low_mid_cut_db", -12.0, 300.0), ("low_mid_cut_db", -4.0, 300.0),
    ("presence_db", 6.0, 4000.0), ("presence_db", -6.0, 4000.0), ("presence_db", 12.0, 4000.0),
])
def test_peak_gain_at_the_centre_frequency_matches_the_parameter(param, value_db, frequency_hz):
    assert gain_db(EqStage(1, {**FLAT, param: value_db}), frequency_hz) == pytest.approx(value_db, abs=0.05)


@pytest.mark.parametrize("air_db", [-6.0, 6.0, 12.0])
def test_air_shelf_reaches_its_gain_high_up_and_half_of_it_at_10_khz(air_db):
    assert gain_db(EqStage(1, {**FLAT, "air_db": air_db}), 22_000.0) == pytest.approx(air_db, abs=0.3)
    assert gain_db(EqStage(1, {**FLAT, "air_db": air_db}), 10_000.0) == pytest.approx(air_db / 2, abs=0.05)


@pytest.mark.parametrize("frequency_hz", [60.0, 300.0, 1000.0, 2500.0, 4000.0, 7000.0, 10_000.0, 16_000.0])
def test_response_matches_the_designed_filters(frequency_hz):
    params = {"low_mid_cut_db": -6.0, "presence_db": 4.0, "air_db": 3.0}
    _, response = sosfreqz(eq_sos(**params), worN=[frequency_hz], fs=RATE)
    assert gain_db(EqStage(1, params), frequency_hz) == pytest.approx(20 * np.log10(abs(response[0])), abs=0.02)


def test_bands_leave_distant_frequencies_nearly_alone():
    assert abs(gain_db(EqStage(1, {**FLAT, "low_mid_cut_db": -12.0}), 40.0)) < 0.5
    assert abs(gain_db(EqStage(1, {**FLAT, "low_mid_cut_db": -12.0}), 3000.0)) < 0.5
    assert abs(gain_db(EqStage(1, {**FLAT, "presence_db": 12.0}), 300.0)) < 0.3


def test_flat_eq_passes_the_signal_unchanged():
    audio = synthetic.speech_like(1.0, RATE, 2)
    np.testing.assert_allclose(EqStage(2, FLAT).process(audio), audio, atol=1e-6)
