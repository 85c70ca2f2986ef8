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


@pytest.mark.parametrize("sample_rate", [44_100, 22_050])
@pytest.mark.parametrize("material", ["clipped sine 997 Hz", "impulses", "loud speech"])
def test_at_another_rate_the_ceiling_holds_and_the_timing_is_the_same_in_seconds(sample_rate, material):
    audio = resample_poly(hard_material()[material], sample_rate // 50, RATE // 50, axis=1).astype(np.float32)
    stage = TruePeakLimiterStage(audio.shape[0], {"limiter_ceiling_dbtp": -1.0}, sample_rate=sample_rate)
    assert stage.input_sample_rate == stage.output_sample_rate == sample_rate
    frames = audio.shape[1] // stage.hop_frames * stage.hop_frames
    padded = np.concatenate([audio[:, :frames], np.zeros((audio.shape[0], stage.hop_frames), np.float32)], axis=1)
    out = stage.process(padded)[:, stage.latency_samples : stage.latency_samples + frames]
    assert true_peak_dbtp(out, sample_rate) <= -1.0 + 0.05
    at_48k = TruePeakLimiterStage(1, {}).latency_samples
    lookahead_s = (at_48k - 16 - 1) / RATE  # the 4x interpolator's 16-sample delay and the neighbourhood aside
    assert (stage.latency_samples - 16 - 1) / sample_rate == pytest.approx(lookahead_s, abs=1 / sample_rate)


def recovery_s(sample_rate: int) -> float:
    """Seconds from a full-scale click on a -6 dBFS tone until the limiter's gain is back within 1 %."""
    tone = np.array(synthetic.sine(1000.0, 1.0, sample_rate, 1, amplitude=0.5))
    tone[:, sample_rate // 2] = 1.0
    stage = TruePeakLimiterStage(1, {"limiter_ceiling_dbtp": -1.0}, sample_rate=sample_rate)
    frames = tone.shape[1] // stage.hop_frames * stage.hop_frames
    out = stage.process(tone[:, :frames])[0, stage.latency_samples :]
    dry = tone[0, : out.size]
    gain = np.abs(out) / np.maximum(np.abs(dry), 1e-9)
    after_click = np.arange(out.size) > sample_rate // 2
    recovered = np.flatnonzero((np.abs(dry) > 0.45) & after_click & (gain > 0.99))
    return (recovered[0] - sample_rate // 2) / sample_rate


@pytest.mark.parametrize("sample_rate", [44_100, 22_050])
def test_the_release_takes_the_same_time_at_any_rate(sample_rate):
    assert recovery_s(sample_rate) == pytest.approx(recovery_s(RATE), abs=0.002)  # a 1 kHz peak every 1 ms


def test_blocks_that_are_not_whole_hops_are_refused():
    stage = TruePeakLimiterStage(1, {}, sample_rate=44_100)
    with pytest.raises(ValueError, match="multiple of 441"):
        stage.process(np.zeros((1, 480), np.float32))
