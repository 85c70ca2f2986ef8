"""Bandwidth-extension pairs: speaker split, reproducible draws, inputs band-limited as the product meets them."""

from __future__ import annotations

import numpy as np
import pytest

import synthetic
from speakup_fx.data.bwe import BandLimitConfig, BandLimiter, BandLimitParams, BandwidthPairs, split_by_actor


def band_fraction(x: np.ndarray, sample_rate: int, above_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    return float(spectrum[np.fft.rfftfreq(x.size, 1 / sample_rate) >= above_hz].sum() / spectrum.sum())


def test_validation_actors_are_never_in_training(tmp_path):
    training, validation = split_by_actor(synthetic.write_tiny_actors(tmp_path))
    assert {p.parent.name for p in training} == {"actor01", "actor02"}
    assert {p.parent.name for p in validation} == {"actor21", "actor22"}
    with pytest.raises(FileNotFoundError, match="actorNN"):
        split_by_actor(tmp_path / "actor01" / "nothing")


def test_same_seed_same_pair_and_shapes(tmp_path):
    training, _ = split_by_actor(synthetic.write_tiny_actors(tmp_path))
    pairs = BandwidthPairs(training, 0.25, seed=5, limiter=BandLimiter())
    (x1, y1), (x2, y2), (x3, _) = pairs[(0, 3)], pairs[(0, 3)], pairs[(0, 4)]
    assert x1.shape == (1, 4000) and y1.shape == (1, 12000)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_the_input_is_the_resampled_target_with_the_drawn_band_edge():
    limiter = BandLimiter()
    speech = synthetic.noise(0.5, 48_000, 1, level_db=-20.0)[0]
    plain = limiter.apply(speech, BandLimitParams(gain_db=-6.0))
    target = limiter.target(speech, BandLimitParams(gain_db=-6.0))
    assert plain.shape == (8000,) and np.max(np.abs(target)) == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    assert band_fraction(plain, 16_000, 7_900) < 1e-6  # the resampler's own band edge (-6 dB near 7.4 kHz)
    phone = limiter.apply(speech, BandLimitParams(gain_db=-6.0, lowpass_hz=3400.0, lowpass_order=8))
    assert band_fraction(phone, 16_000, 4_500) < 1e-4 < band_fraction(plain, 16_000, 4_500)


def test_draws_cover_the_configured_band_edges_and_codecs():
    limiter = BandLimiter(BandLimitConfig(lowpass_prob=0.5, codec_prob=0.5))
    draws = [limiter.draw(np.random.default_rng([1, i])) for i in range(200)]
    edges = [d.lowpass_hz for d in draws if d.lowpass_hz is not None]
    assert 60 < len(edges) < 140 and 3400 <= min(edges) and max(edges) <= 7900
    assert {d.codec for d in draws} >= {None, "libopus", "libmp3lame", "aac"}
    with pytest.raises(ValueError, match="lowpass_hz_range"):
        BandLimitConfig(lowpass_hz_range=(3000.0, 9000.0))
