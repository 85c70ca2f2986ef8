"""release_envelope: the vectorised peak-hold with exponential release equals its recursive definition."""

from __future__ import annotations

import numpy as np

from speakup_fx.dsp.envelope import release_envelope


def recursive_reference(values: np.ndarray, decay: float, previous: float) -> np.ndarray:
    held = np.empty_like(values)
    for n, value in enumerate(values):
        previous = max(value, decay * previous)
        held[n] = previous
    return held


def test_matches_the_recursion_including_zeros_and_carried_state():
    rng = np.random.default_rng(0)
    values = np.where(rng.random(5000) < 0.3, 0.0, rng.exponential(size=5000) ** 3)
    decay = np.exp(-1 / 2400)
    np.testing.assert_allclose(release_envelope(values, decay, 7.0), recursive_reference(values, decay, 7.0), rtol=1e-9)


def test_splitting_the_block_changes_nothing():
    rng = np.random.default_rng(1)
    values = rng.random(10_000) * (rng.random(10_000) < 0.01)
    decay = np.exp(-1 / 480)
    whole = release_envelope(values, decay, 0.0)
    first = release_envelope(values[:3333], decay, 0.0)
    second = release_envelope(values[3333:], decay, float(first[-1]))
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-12)


def test_all_zero_input_stays_zero():
    assert np.all(release_envelope(np.zeros(100), 0.99, 0.0) == 0.0)
