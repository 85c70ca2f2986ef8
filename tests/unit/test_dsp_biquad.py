"""RBJ biquad designs and the streaming SosFilter."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from scipy.signal import sosfilt, sosfreqz

from speakup_fx.dsp.biquad import SosFilter, high_shelf_sos, peaking_sos


@pytest.mark.parametrize("gain_db", [-12.0, -3.0, 0.0, 6.0, 12.0])
def test_peaking_filter_has_its_gain_at_the_centre_and_none_far_away(gain_db):
    _, response = sosfreqz(peaking_sos(1000.0, gain_db, 1.0, 48_000), worN=[1000.0, 20.0, 20_000.0], fs=48_000)
    levels = 20 * np.log10(np.abs(response))
    assert levels[0] == pytest.approx(gain_db, abs=1e-6)
    assert np.all(np.abs(levels[1:]) < 0.1 * max(abs(gain_db), 1))


@pytest.mark.parametrize("gain_db", [-6.0, 6.0, 12.0])
def test_high_shelf_reaches_its_gain_and_is_half_way_at_its_frequency(gain_db):
    _, response = sosfreqz(high_shelf_sos(5000.0, gain_db, 48_000), worN=[5000.0, 23_900.0, 50.0], fs=48_000)
    levels = 20 * np.log10(np.abs(response))
    assert levels[0] == pytest.approx(gain_db / 2, abs=1e-6)
    assert levels[1] == pytest.approx(gain_db, abs=0.1)
    assert abs(levels[2]) < 0.01


def test_streaming_filter_equals_filtering_the_whole_signal():
    sos = np.concatenate([peaking_sos(300.0, -6.0, 1.0, 48_000), high_shelf_sos(8000.0, 4.0, 48_000)])
    audio = synthetic.noisy_speech(1.0, 48_000, 2).astype(np.float64)
    streaming = SosFilter(sos, 2)
    out = np.concatenate([streaming.process(audio[:, i : i + 1000]) for i in range(0, audio.shape[-1], 1000)], axis=1)
    np.testing.assert_allclose(out, sosfilt(sos, audio, axis=-1), atol=1e-12)
    streaming.reset()
    np.testing.assert_allclose(streaming.process(audio), sosfilt(sos, audio, axis=-1), atol=1e-12)
