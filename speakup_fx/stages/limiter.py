"""True-peak limiter: 4x-oversampled peak detection, look-ahead gain with a smooth attack and release.

The gain for each output sample is at most ``ceiling / peak`` of every interpolated value within two
samples of it: a sliding minimum over the look-ahead, an exponential release of the gain reduction
(in dB) and a moving average over the look-ahead (which keeps the bound, since each average includes
the constraining sample). Linked over channels.

It runs at any rate: the engine's at 48 kHz, a bounce's loudness pass at the file's rate. The
look-ahead and release are set in seconds; the 4x-oversampled detection holds the ceiling at any rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from speakup_fx.dsp.envelope import one_pole_coefficient, release_envelope, sliding
from speakup_fx.dsp.loudness import TruePeakDetector
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage

LOOKAHEAD_S = 80 / 48_000
"""The gain starts falling this long before a peak (80 frames at 48 kHz)."""
NEIGHBOURHOOD_FRAMES = 4
"""Interpolated peaks within two samples either side of a sample bound its gain."""
RELEASE_S = 0.08
CEILING_TIME_CONSTANT_S = 0.02
"""A change of ``limiter_ceiling_dbtp`` glides with this time constant."""


def control_hop_frames(sample_rate: int) -> int:
    """Frames in the shortest whole-frame multiple of the engine's 10 ms hop at ``sample_rate``.

    480 at 48 kHz, 441 at 44.1 kHz (10 ms) and at 22.05 kHz (20 ms).
    """
    hops_per_second = 1000 // HOP_MS
    return sample_rate // math.gcd(sample_rate, hops_per_second)


class TruePeakLimiterStage(Stage):
    """Limits the true peak to ``limiter_ceiling_dbtp`` at ``sample_rate``; latency about 2 ms (96 frames at 48 kHz).

    ``process`` takes whole multiples of ``hop_frames`` (10 ms, or the shortest whole-frame multiple of it).
    """

    uses = ("limiter_ceiling_dbtp",)

    def __init__(self, channels: int, params: Mapping[str, float], sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        super().__init__(channels)
        self.input_sample_rate = self.output_sample_rate = sample_rate
        self.hop_frames = control_hop_frames(sample_rate)
        self._ceiling_db = SmoothedParam(
            "limiter_ceiling_dbtp", params, CEILING_TIME_CONSTANT_S, self.hop_frames / sample_rate
        )
        self._lookahead = max(NEIGHBOURHOOD_FRAMES, round(LOOKAHEAD_S * sample_rate))
        self._release = one_pole_coefficient(RELEASE_S, sample_rate)
        self._detector = TruePeakDetector(channels)
        self._latency = self._lookahead - 1 + self._detector.delay_samples + NEIGHBOURHOOD_FRAMES // 2 - 1
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
        self._required = np.ones(self._lookahead - 1)
        self._reduction = 0.0
        self._gain_history = np.ones(self._lookahead - 1)
        self._delay = np.zeros((self.channels, self._latency))

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        frames = x.shape[-1]
        if frames % self.hop_frames:
            raise ValueError(f"block: expected a multiple of {self.hop_frames} frames, got {frames}")
        ceiling = 10 ** (hop_ramp(self._ceiling_db.hop_values(frames // self.hop_frames), self.hop_frames) / 20)
        peaks, self._peaks = sliding(maximum_filter1d, self._detector.process(x), self._peaks)
        required = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-20))
        required, self._required = sliding(minimum_filter1d, required, self._required)
        reduction = release_envelope(-np.log(required), self._release, self._reduction)  # in nepers
        self._reduction = float(reduction[-1])
        held = np.exp(-reduction)
        full = np.concatenate([self._gain_history, held])
        self._gain_history = full[-self._gain_history.size :]
        sums = np.cumsum(np.concatenate([[0.0], full]))
        gain = (sums[self._lookahead :] - sums[: -self._lookahead]) / self._lookahead
        delayed = np.concatenate([self._delay, x], axis=1)
        self._delay = delayed[:, frames:]
        return (delayed[:, :frames] * gain).astype(np.float32)
