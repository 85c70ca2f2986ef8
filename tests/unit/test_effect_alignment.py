"""With ``reset=True`` the real classic chain's output is aligned with its input (latency fully compensated)."""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx import SpeakUp
from synthetic import chirp, impulse

NEUTRAL = {
    "denoise_amount": 0.0,
    "dereverb_amount": 0.0,
    "highpass_hz": 20.0,
    "dehum_amount": 0.0,
    "low_mid_cut_db": 0.0,
    "presence_db": 0.0,
    "air_db": 0.0,
    "leveler_amount": 0.0,
    "compressor_ratio": 1.0,
    "limiter_ceiling_dbtp": 0.0,
    "output_gain_db": 0.0,
}
"""Every processing parameter at its most transparent setting: the chain only delays."""


def lag_of(reference: np.ndarray, delayed: np.ndarray) -> int:
    correlation = np.correlate(delayed, reference, mode="full")
    return int(np.argmax(correlation)) - (reference.size - 1)


@pytest.mark.parametrize("sample_rate", [48000, 44100, 16000])
def test_a_chirp_comes_out_of_the_neutral_classic_chain_with_no_lag(sample_rate: int) -> None:
    effect = SpeakUp(**NEUTRAL)
    sweep = chirp(200.0, 0.4 * sample_rate, 0.5, sample_rate, channels=2)
    out = effect(sweep, sample_rate)
    assert out.shape == sweep.shape
    assert effect.latency_samples > 0
    for channel in range(2):
        assert lag_of(sweep[channel], out[channel]) == 0
    assert np.corrcoef(sweep[0], out[0])[0, 1] > 0.9


@pytest.mark.parametrize("sample_rate", [48000, 44100, 16000])
def test_an_impulse_comes_out_of_the_neutral_classic_chain_where_it_went_in(sample_rate: int) -> None:
    spike = 0.5 * impulse(0.4, sample_rate, at_s=0.2)
    out = SpeakUp(**NEUTRAL)(spike, sample_rate)
    assert int(np.argmax(np.abs(out[0]))) == int(0.2 * sample_rate)


def test_the_latency_is_what_a_stream_shows() -> None:
    sample_rate = 44100
    spike = 0.5 * impulse(0.4, sample_rate, at_s=0.1)
    effect = SpeakUp(**NEUTRAL)
    out = effect(spike, sample_rate, reset=False)
    assert int(np.argmax(np.abs(out[0]))) == int(0.1 * sample_rate) + effect.latency_samples
