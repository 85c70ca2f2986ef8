"""BS.1770-4 loudness and true peak: against the standard's reference values and pyloudnorm."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import synthetic
from scipy.signal import resample_poly

from speakup_fx.dsp.loudness import LoudnessMeter, integrated_loudness_lufs, k_weighting_sos, true_peak_dbtp


def test_k_weighting_at_48_khz_matches_the_coefficients_tabulated_in_bs_1770():
    sos = k_weighting_sos(48_000)
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize("sample_rate", [44_100, 48_000])
def test_full_scale_997_hz_sine_reads_minus_3_01_lufs(sample_rate):
    tone = synthetic.sine(997.0, 5.0, sample_rate, amplitude=1.0)
    assert integrated_loudness_lufs(tone, sample_rate) == pytest.approx(-3.01, abs=0.02)


@pytest.mark.parametrize("sample_rate", [44_100, 48_000])
@pytest.mark.parametrize("signal", ["speech", "noise", "chirp"])
def test_integrated_loudness_agrees_with_pyloudnorm(signal, sample_rate):
    audio = {
        "speech": synthetic.speech_like(6.0, sample_rate, 2),
        "noise": synthetic.noise(4.0, sample_rate, 1, level_db=-20.0),
        "chirp": synthetic.chirp(50.0, 15_000.0, 4.0, sample_rate, 2),
    }[signal]
    reference = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
    assert integrated_loudness_lufs(audio, sample_rate) == pytest.approx(reference, abs=0.1)


def test_streaming_meter_agrees_with_the_whole_file_measurement():
    sample_rate = 48_000
    speech, noisy = synthetic.speech_like(6.0, sample_rate, 2), synthetic.noisy_speech(6.0, sample_rate, 2)
    audio = np.concatenate([speech, 0.1 * noisy], axis=1)
    meter = LoudnessMeter(2, sample_rate)
    rng = np.random.default_rng(0)
    start = 0
    while start < audio.shape[-1]:
        size = int(rng.integers(1, 20_000))
        meter.add(audio[:, start : start + size])
        start += size
    whole = integrated_loudness_lufs(audio, sample_rate)
    assert meter.integrated_lufs() == pytest.approx(whole, abs=1e-6)
    assert whole == pytest.approx(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64)), abs=0.1)


def test_gating_ignores_silence_and_quiet_noise():
    sample_rate = 48_000
    speech = synthetic.speech_like(6.0, sample_rate, 1)
    quiet_noise = synthetic.noise(10.0, sample_rate, level_db=-90.0)
    padded = np.concatenate([synthetic.silence(10.0, sample_rate), speech, quiet_noise], axis=1)
    # only the 400 ms blocks straddling the speech's edges differ
    expected = integrated_loudness_lufs(speech, sample_rate)
    assert integrated_loudness_lufs(padded, sample_rate) == pytest.approx(expected, abs=0.2)


def test_silence_and_too_short_audio_are_minus_infinity():
    assert integrated_loudness_lufs(synthetic.silence(2.0, 48_000), 48_000) == -math.inf
    assert integrated_loudness_lufs(synthetic.noise(0.2, 48_000), 48_000) == -math.inf
    assert true_peak_dbtp(synthetic.silence(0.1, 48_000), 48_000) == -math.inf


def test_meter_reset_forgets_everything():
    meter = LoudnessMeter(1, 48_000)
    meter.add(synthetic.noise(2.0, 48_000, level_db=-10.0))
    meter.reset()
    meter.add(synthetic.speech_like(3.0, 48_000))
    expected = integrated_loudness_lufs(synthetic.speech_like(3.0, 48_000), 48_000)
    assert meter.integrated_lufs() == pytest.approx(expected, abs=1e-9)


def test_true_peak_finds_the_peak_between_samples():
    sample_rate = 48_000
    n = np.arange(sample_rate)
    quarter_rate = np.sin(2 * np.pi * n / 4 + np.pi / 4)[None] * _fade(n.size)  # samples at +-0.707, peaks at 1.0
    assert 20 * np.log10(np.abs(quarter_rate).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(quarter_rate, sample_rate) == pytest.approx(0.0, abs=0.05)


def _fade(frames: int) -> np.ndarray:
    ramp = np.minimum(1.0, np.minimum(np.arange(frames), np.arange(frames)[::-1]) / 4800)
    return np.sin(np.pi / 2 * ramp) ** 2


@pytest.mark.parametrize(("audio", "tolerance_db"), [
    (synthetic.speech_like(1.0, 48_000), 0.05),
    (synthetic.chirp(50.0, 18_000.0, 1.0, 48_000), 0.05),
    (synthetic.sine(11_000.0, 0.5, 48_000), 0.05),
    (synthetic.clipped_sine(997.0, 0.5, 48_000, 2), 0.15),
    # full-band content: the answer depends on each interpolator's response near Nyquist
    (synthetic.clipped_sine(15_000.0, 0.5, 48_000), 0.5),
    (synthetic.noise_bursts(1.0, 48_000, 2), 0.5),
], ids=["speech", "chirp", "sine 11 kHz", "clipped 997 Hz", "clipped 15 kHz", "noise bursts"])
def test_true_peak_agrees_with_16x_oversampling(audio, tolerance_db):
    reference = 20 * np.log10(np.abs(resample_poly(audio.astype(np.float64), 16, 1, axis=1)).max())
    assert true_peak_dbtp(audio, 48_000) == pytest.approx(reference, abs=tolerance_db)


def test_wrong_input_is_refused_clearly():
    with pytest.raises(ValueError, match="audio"):
        integrated_loudness_lufs(np.zeros((2, 3, 4)), 48_000)
    with pytest.raises(ValueError, match="sample_rate"):
        true_peak_dbtp(np.zeros((1, 100)), 0)
    with pytest.raises(ValueError, match="channels"):
        LoudnessMeter(2, 48_000).add(np.zeros((1, 100)))


def test_true_peak_detector_equals_direct_polyphase_filtering_in_any_blocks():
    from scipy.signal import lfilter

    from speakup_fx.dsp.loudness import _PHASES, TruePeakDetector

    audio = np.concatenate([synthetic.noise_bursts(1.0, 48_000, 2), synthetic.speech_like(1.0, 48_000, 2)], axis=1)
    audio = audio.astype(np.float64)
    direct = np.max([np.abs(lfilter(taps, [1.0], audio, axis=-1)).max(axis=0) for taps in _PHASES], axis=0)
    for block in (480, 4_800, 12_345, audio.shape[-1]):
        detector = TruePeakDetector(2)
        streamed = np.concatenate([detector.process(audio[:, i : i + block]) for i in range(0, audio.shape[-1], block)])
        np.testing.assert_allclose(streamed, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_audio_has_no_loudness_nor_true_peak_rather_than_reading_as_silence(bad):
    audio = np.array(synthetic.speech_like(1.0, 48_000))
    audio[0, 1000] = bad
    meter = LoudnessMeter(1, 48_000)
    with pytest.raises(ValueError, match="NaN or infinite"):
        meter.add(audio)
    with pytest.raises(ValueError, match="NaN or infinite"):
        true_peak_dbtp(audio, 48_000)


def test_without_the_absolute_gate_very_quiet_speech_has_its_loudness():
    speech = np.array(synthetic.speech_like(3.0, 48_000))
    quiet = speech * np.float32(10 ** (-80 / 20))
    meter = LoudnessMeter(1, 48_000)
    meter.add(quiet)
    assert meter.integrated_lufs() == -math.inf  # below BS.1770's -70 LUFS gate
    assert meter.integrated_lufs(absolute_gate_lufs=-math.inf) == pytest.approx(
        integrated_loudness_lufs(speech, 48_000) - 80, abs=0.1
    )
    silent = LoudnessMeter(1, 48_000)
    silent.add(np.zeros((1, 48_000), np.float32))
    assert silent.integrated_lufs(absolute_gate_lufs=-math.inf) == -math.inf
