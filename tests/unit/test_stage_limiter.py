"""TruePeakLimiterStage: the true-peak ceiling holds on hard material; quiet signals pass untouched."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from scipy.signal import resample_poly

from speakup_fx.dsp.loudness import true_peak_dbtp
from speakup_fx.stages.limiter import TruePeakLimiterStage

RATE = 48_000


def limited(audio: np.ndarray, ceiling_dbtp: float) -> np.ndarray:
    stage = TruePeakLimiterStage(audio.shape[0], {"limiter_ceiling_dbtp": ceiling_dbtp})
    frames = audio.shape[-1] // 480 * 480
    padded = np.concatenate([audio[:, :frames], np.zeros((audio.shape[0], 480), np.float32)], axis=1)
    return stage.process(padded)[:, stage.latency_samples : stage.latency_samples + frames]


def hard_material() -> dict[str, np.ndarray]:
    impulses = np.array(synthetic.impulse(1.0, RATE, 2, at_s=0.5))
    impulses[:, 14_400:14_402] = [1.0, -1.0]  # a full-scale doublet overshoots between its samples
    return {
        "clipped sine 997 Hz": synthetic.clipped_sine(997.0, 1.0, RATE, 2),
        "clipped sine 11 kHz": synthetic.clipped_sine(11_000.0, 1.0, RATE, 2),
        "clipped sine 19 kHz": synthetic.clipped_sine(19_000.0, 1.0, RATE, 2),
        "impulses": impulses,
        "noise bursts": synthetic.noise_bursts(2.0, RATE, 2),
        "loud speech": 6 * synthetic.speech_like(2.0, RATE, 2),
    }


@pytest.mark.parametrize("ceiling_dbtp", [-0.1, -1.0, -6.0])
@pytest.mark.parametrize("material", sorted(hard_material()))
def test_true_peak_never_exceeds_the_ceiling(material, ceiling_dbtp):
    audio = hard_material()[material]
    assert true_peak_dbtp(audio, RATE) > ceiling_dbtp + 0.5  # the material does go over
    out = limited(audio, ceiling_dbtp)
    assert true_peak_dbtp(out, RATE) <= ceiling_dbtp + 0.05
    independent_peak = np.abs(resample_poly(out.astype(np.float64), 16, 1, axis=1)).max()
    assert 20 * np.log10(independent_peak) <= ceiling_dbtp + 0.1


def test_signal_below_the_ceiling_passes_unchanged_after_the_latency():
    audio = 0.5 * synthetic.speech_like(1.0, RATE, 2)
    assert true_peak_dbtp(audio, RATE) < -1.0
    np.testing.assert_allclose(limited(audio, -1.0), audio[:, : audio.shape[-1] // 480 * 480], atol=1e-7)


def test_gain_recovers_smoothly_after_a_peak():
    audio = np.array(synthetic.sine(1000.0, 1.0, RATE, 1, amplitude=0.5))
    audio[:, 24_000] = 1.0
    out = limited(audio, -1.0)
    gain = np.abs(out[0, 24_000:36_000]) / np.maximum(np.abs(audio[0, 24_000:36_000]), 1e-9)
    peaks = gain[np.abs(audio[0, 24_000:36_000]) > 0.45]
    assert peaks[0] < 0.95 and peaks[-1] > 0.99  # reduced at the peak, back after 250 ms
    assert np.all(np.diff(peaks) > -1e-3)  # and rising monotonically in between
