"""Biquad designs (RBJ Audio-EQ-Cookbook) and a streaming second-order-section filter."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import sosfilt


def peaking_sos(frequency_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """RBJ peaking EQ: ``gain_db`` at ``frequency_hz``, bandwidth set by ``q``. Returns ``(1, 6)`` sos."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * frequency_hz / sample_rate
    alpha = math.sin(w0) / (2 * q)
    cos_w0 = math.cos(w0)
    b = [1 + alpha * a, -2 * cos_w0, 1 - alpha * a]
    den = [1 + alpha / a, -2 * cos_w0, 1 - alpha / a]
    return np.array([b + den]) / den[0]


def high_shelf_sos(frequency_hz: float, gain_db: float, sample_rate: int, slope: float = 1.0) -> np.ndarray:
    """RBJ high shelf: ``gain_db`` well above ``frequency_hz`` (half of it, in dB, at the midpoint). ``(1, 6)`` sos."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * frequency_hz / sample_rate
    cos_w0 = math.cos(w0)
    alpha = math.sin(w0) / 2 * math.sqrt((a + 1 / a) * (1 / slope - 1) + 2)
    root = 2 * math.sqrt(a) * alpha
    b = [
        a * ((a + 1) + (a - 1) * cos_w0 + root),
        -2 * a * ((a - 1) + (a + 1) * cos_w0),
        a * ((a + 1) + (a - 1) * cos_w0 - root),
    ]
    den = [(a + 1) - (a - 1) * cos_w0 + root, 2 * ((a - 1) - (a + 1) * cos_w0), (a + 1) - (a - 1) * cos_w0 - root]
    return np.array([b + den]) / den[0]


class SosFilter:
    """A cascade of second-order sections run over ``(channels, frames)`` blocks with carried state.

    ``sos`` may be replaced between blocks (same number of sections); the state carries over,
    which is smooth for the small per-hop coefficient steps of a gliding parameter.
    """

    def __init__(self, sos: np.ndarray, channels: int) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.channels = channels
        self._state = np.zeros((self.sos.shape[0], channels, 2))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter ``block`` ``(channels, frames)``; returns float64, same shape."""
        out, self._state = sosfilt(self.sos, block, axis=-1, zi=self._state)
        return out

    def reset(self) -> None:
        """Clear the filter state."""
        self._state[:] = 0.0
