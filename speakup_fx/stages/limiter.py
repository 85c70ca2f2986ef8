"""True-peak limiter: 4x-oversampled peak detection, look-ahead gain with a smooth attack and release.

The gain for each output sample is at most ``ceiling / peak`` of every interpolated value within two
samples of it: a sliding minimum over the look-ahead, an exponential release of the gain reduction
(in dB) and a moving average over the look-ahead (which keeps the bound, since each average includes
the constraining sample). Linked over channels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from speakup_fx.dsp.envelope import one_pole_coefficient, release_envelope, sliding
from speakup_fx.dsp.loudness import TruePeakDetector
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

LOOKAHEAD_FRAMES = 80
NEIGHBOURHOOD_FRAMES = 4
"""Interpolated peaks within two samples either side of a sample bound its gain."""
RELEASE_S = 0.08


class TruePeakLimiterStage(Stage):
    """Limits the true peak to ``limiter_ceiling_dbtp``; latency 96 frames (2 ms)."""

    uses = ("limiter_ceiling_dbtp",)

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        self._ceiling_db = SmoothedParam("limiter_ceiling_dbtp", params, 0.02, HOP_MS / 1000)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._release = one_pole_coefficient(RELEASE_S, ENGINE_SAMPLE_RATE)
        self._detector = TruePeakDetector(channels)
        self._latency = LOOKAHEAD_FRAMES - 1 + self._detector.delay_samples + NEIGHBOURHOOD_FRAMES // 2 - 1
        self.reset()

    @property
    def latency_samples(self) -> int:
        return self._latency

    def set_params(self, params: Mapping[str, float]) -> None:
        self._ceiling_db.update(params)

    def reset(self) -> None:
        self._ceiling_db.reset()
        self._detector.reset()
        self._peaks = np.zeros(NEIGHBOURHOOD_FRAMES - 1)
        self._required = np.ones(LOOKAHEAD_FRAMES - 1)
        self._reduction = 0.0
        self._gain_history = np.ones(LOOKAHEAD_FRAMES - 1)
        self._delay = np.zeros((self.channels, self._latency))

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        frames = x.shape[-1]
        ceiling = 10 ** (hop_ramp(self._ceiling_db.hop_values(frames // self._hop), self._hop) / 20)
        peaks, self._peaks = sliding(maximum_filter1d, self._detector.process(x), self._peaks)
        required = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-20))
        required, self._required = sliding(minimum_filter1d, required, self._required)
        reduction = release_envelope(-np.log(required), self._release, self._reduction)  # in nepers
        self._reduction = float(reduction[-1])
        held = np.exp(-reduction)
        full = np.concatenate([self._gain_history, held])
        self._gain_history = full[-self._gain_history.size :]
        sums = np.cumsum(np.concatenate([[0.0], full]))
        gain = (sums[LOOKAHEAD_FRAMES:] - sums[:-LOOKAHEAD_FRAMES]) / LOOKAHEAD_FRAMES
        delayed = np.concatenate([self._delay, x], axis=1)
        self._delay = delayed[:, frames:]
        return (delayed[:, :frames] * gain).astype(np.float32)
