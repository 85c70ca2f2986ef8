"""Envelope followers for dynamics processors, vectorised over whole blocks."""

from __future__ import annotations

import math

import numpy as np


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
