"""SpectralDenoiseStage (the ``classic`` engine): noise and late-reverb suppression, measured."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
from scipy.signal import fftconvolve

from speakup_fx.dsp.stft import StreamingStft
from speakup_fx.stages.denoise import SpectralDenoiseStage

RATE = 48_000
HOP = 480


def denoise(audio: np.ndarray, **params: float) -> np.ndarray:
    """Output aligned with the input (latency removed), same length (a whole number of hops)."""
    stage = SpectralDenoiseStage(audio.shape[0], params)
    frames = audio.shape[-1] // HOP * HOP
    tail = -(-stage.latency_samples // HOP) * HOP
    padded = np.concatenate([audio[:, :frames], np.zeros((audio.shape[0], tail), np.float32)], axis=1)
    return stage.process(padded)[:, stage.latency_samples : stage.latency_samples + frames]


def power_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio.astype(np.float64) ** 2))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference[:, : estimate.shape[-1]].astype(np.float64)
    return 10 * np.log10(np.sum(reference**2) / np.sum((estimate - reference) ** 2))


@pytest.mark.parametrize(("input_snr_db", "min_gain_db"), [(0.0, 8.0), (10.0, 8.0), (20.0, 6.0)])
def test_snr_of_noisy_speech_improves(input_snr_db, min_gain_db):
    clean = synthetic.speech_like(8.0, RATE, 1)
    noisy = synthetic.noisy_speech(8.0, RATE, 1, snr_db=input_snr_db)
    out = denoise(noisy, denoise_amount=0.8, dereverb_amount=0.0)
    assert snr_db(clean, out) >= snr_db(clean, noisy) + min_gain_db


def test_noise_is_tracked_from_the_first_second_without_a_noise_only_lead_in():
    clean = synthetic.speech_like(8.0, RATE, 1)
    noisy = synthetic.noisy_speech(8.0, RATE, 1, snr_db=10.0)
    out = denoise(noisy, denoise_amount=0.8, dereverb_amount=0.0)
    first = slice(0, RATE)
    assert snr_db(clean[:, first], out[:, first]) >= snr_db(clean[:, first], noisy[:, first]) + 8.0


def test_clean_speech_is_nearly_untouched_without_dereverb():
    clean = synthetic.speech_like(8.0, RATE, 1)
    assert snr_db(clean, denoise(clean, denoise_amount=1.0, dereverb_amount=0.0)) >= 30.0


def test_clean_speech_keeps_its_level_with_default_settings():
    clean = synthetic.speech_like(8.0, RATE, 1)
    out = denoise(clean)
    level_change_db = power_db(out) - power_db(clean[:, : out.shape[-1]])
    assert abs(level_change_db) < 1.0
    assert snr_db(clean, out) >= 15.0


def spectral_kurtosis(audio: np.ndarray) -> float:
    power = np.abs(StreamingStft(1).analyse(audio[:, : audio.shape[-1] // HOP * HOP].astype(np.float64))[0]) ** 2
    power = power[200:, 20:900].ravel()  # after 2 s, 500 Hz to 22.5 kHz
    return float(np.mean(power**2) / np.mean(power) ** 2)


def test_stationary_noise_is_reduced_toward_the_floor_without_musical_tones():
    noise = synthetic.noise(6.0, RATE, 1, level_db=-30.0)
    reductions = []
    for amount in (0.4, 0.8):
        out = denoise(noise, denoise_amount=amount, dereverb_amount=0.0)
        reductions.append(power_db(out[:, 2 * RATE :]) - power_db(noise[:, 2 * RATE : out.shape[-1]]))
    assert reductions[1] <= -15.0 and reductions[0] > reductions[1] + 4.0
    # isolated spectral peaks (musical noise) raise the kurtosis of the power spectrum; white noise has 2
    assert spectral_kurtosis(out) <= 4.0 * spectral_kurtosis(noise)


def test_dereverb_brings_reverberant_speech_closer_to_its_direct_sound():
    dry = synthetic.speech_like(8.0, RATE, 1)[0].astype(np.float64)
    response = synthetic.room_impulse_response(0.6, RATE)
    early = response.copy()
    early[int(0.05 * RATE) :] = 0.0
    reverberant = fftconvolve(dry, response)[: dry.size].astype(np.float32)[None]
    target = fftconvolve(dry, early)[: dry.size][None]
    without = snr_db(target, denoise(reverberant, denoise_amount=0.8, dereverb_amount=0.0))
    with_dereverb = snr_db(target, denoise(reverberant, denoise_amount=0.8, dereverb_amount=1.0))
    assert with_dereverb >= without + 3.0


def test_both_amounts_at_zero_return_the_input_delayed():
    noisy = synthetic.noisy_speech(3.0, RATE, 2)
    np.testing.assert_allclose(denoise(noisy, denoise_amount=0.0, dereverb_amount=0.0), noisy[:, : 3 * RATE], atol=1e-5)


def test_latency_aligns_the_processed_speech_with_the_input():
    clean = synthetic.speech_like(4.0, RATE, 1)
    noisy = synthetic.noisy_speech(4.0, RATE, 1, snr_db=10.0)
    stage = SpectralDenoiseStage(1, {})
    out = stage.process(noisy)[0].astype(np.float64)
    lags = np.arange(stage.latency_samples - 50, stage.latency_samples + 51)
    correlation = [np.dot(out[lag:], clean[0, : out.size - lag]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == stage.latency_samples
