"""Envelope followers for dynamics processors, vectorised over whole blocks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter


def one_pole_coefficient(time_constant_s: float, sample_rate: float) -> float:
    """Feedback coefficient of a one-pole smoother with ``time_constant_s``, stepped ``sample_rate`` times a second."""
    return math.exp(-1 / (time_constant_s * sample_rate))


def one_pole(values: np.ndarray, coefficient: float, previous: float) -> np.ndarray:
    """``out[n] = (1 - coefficient) * values[n] + coefficient * out[n - 1]`` with ``out[-1] = previous``.

    ``values`` ``(frames,)`` float64; the last output is the next block's ``previous``.
    """
    return lfilter([1 - coefficient], [1, -coefficient], values, zi=[coefficient * previous])[0]


def linked_power_db(block: np.ndarray, coefficient: float, previous: float) -> tuple[np.ndarray, float]:
    """RMS detector: the mean power over the channels of ``block`` ``(channels, frames)`` through ``one_pole``, in dB.

    Returns the level ``(frames,)`` and the last smoothed power (the next block's ``previous``).
    """
    power = one_pole(np.mean(block.astype(np.float64) ** 2, axis=0), coefficient, previous)
    return 10 * np.log10(power + 1e-20), float(power[-1])


def release_envelope(values: np.ndarray, decay: float, previous: float) -> np.ndarray:
    """``held[n] = max(values[n], decay * held[n - 1])`` with ``held[-1] = previous``: instant attack, exponential release.

    ``values`` are non-negative (``(frames,)``), ``0 < decay < 1`` per sample. Computed as a running
    maximum of logarithms, so it needs no per-sample loop and works for any block length.
    """
    log_decay = -math.log(decay)
    ramp = log_decay * np.arange(values.size)
    with np.errstate(divide="ignore"):
        logs = np.log(values) + ramp
        start = math.log(previous) - log_decay if previous > 0 else -math.inf
    return np.exp(np.maximum.accumulate(np.concatenate([[start], logs]))[1:] - ramp)


def sliding(
    filter_1d: Callable[..., np.ndarray], values: np.ndarray, history: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``filter_1d`` (e.g. ``scipy.ndimage.maximum_filter1d``) over the windows ending at each of ``values``.

    ``history`` holds the ``size - 1`` values before ``values`` (``size`` is the window length).
    Returns the filtered values and the next history, so a stream can be filtered in any blocks.
    """
    size = history.size + 1
    full = np.concatenate([history, values])
    return filter_1d(full, size, mode="nearest")[size // 2 : size // 2 + values.size], full[values.size :]


def rise_limited(values: np.ndarray, step: float, previous: float) -> np.ndarray:
    """``out[n] = min(values[n], out[n - 1] + step)`` with ``out[-1] = previous``: instant fall, linear rise.

    ``values`` ``(frames,)``, ``step >= 0`` per sample; a running minimum, so no per-sample loop.
    """
    ramp = step * np.arange(1, values.size + 1)
    return np.minimum.accumulate(np.concatenate([[previous], values - ramp]))[1:] + ramp
