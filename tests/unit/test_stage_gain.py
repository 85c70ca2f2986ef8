"""GainStage: output gain with a per-sample ramp."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.stages.gain import GainStage

RATE = 48_000


@pytest.mark.parametrize("gain_db", [-24.0, -6.0, 0.0, 6.0, 24.0])
def test_gain_multiplies_by_the_decibel_value(gain_db):
    audio = synthetic.speech_like(1.0, RATE, 2)
    out = GainStage(2, {"output_gain_db": gain_db}).process(audio)
    np.testing.assert_allclose(out, audio * 10 ** (gain_db / 20), rtol=1e-6, atol=1e-7)


def test_a_gain_change_ramps_to_the_new_value_within_a_third_of_a_second():
    audio = synthetic.sine(440.0, 1.0, RATE)
    stage = GainStage(1, {"output_gain_db": 0.0})
    stage.set_params({"output_gain_db": 6.0})
    out = stage.process(audio)
    ratio = out[0, 1:] / np.where(audio[0, 1:] == 0, 1, audio[0, 1:])
    assert ratio[100] < 1.2  # still ramping after 2 ms
    np.testing.assert_allclose(out[:, 16_000:], audio[:, 16_000:] * 10 ** (6 / 20), rtol=1e-5)
