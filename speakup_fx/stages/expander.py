"""Downward expander (noise gate): pauses are attenuated, words pass; linked stereo, no look-ahead.

The detector is the compressor's: mean power over channels, a 10 ms one-pole, in dB. Below
``expander_threshold_db`` the output level falls ``expander_ratio`` dB per dB of input (soft knee
``KNEE_DB`` wide), attenuating at most ``expander_range_db``. The attenuation falls at once when the
level rises (the gain's 2 ms attack smoothing is the only fade-in, so word onsets are kept), holds
for ``HOLD_S`` after the level falls (the lowest attenuation of the last ``HOLD_S``), then rises at
``RELEASE_DB_PER_S`` (30 dB in 150 ms), so a word's tail fades out rather than being cut. A new
stream starts open.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import minimum_filter1d

from speakup_fx.dsp.envelope import linked_power_db, one_pole, one_pole_coefficient, rise_limited, sliding
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

KNEE_DB = 6.0
DETECTOR_S = 0.01
ATTACK_S = 0.002
HOLD_S = 0.1
RELEASE_DB_PER_S = 200.0


def attenuation_db(
    level_db: np.ndarray, threshold_db: np.ndarray | float, ratio: np.ndarray | float, range_db: np.ndarray | float
) -> np.ndarray:
    """Static curve: attenuation (dB, in ``[0, range_db]``) for a detector level, soft knee around the threshold."""
    under = np.asarray(threshold_db) - level_db
    slope = np.asarray(ratio, dtype=np.float64) - 1
    knee = slope * (under + KNEE_DB / 2) ** 2 / (2 * KNEE_DB)
    curve = np.where(under <= -KNEE_DB / 2, 0.0, np.where(under >= KNEE_DB / 2, slope * under, knee))
    return np.minimum(curve, range_db)


class ExpanderStage(Stage):
    """Downward expander (``expander_threshold_db``, ``expander_ratio``, ``expander_range_db``); zero latency."""

    uses = ("expander_threshold_db", "expander_ratio", "expander_range_db")

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        hop_s = HOP_MS / 1000
        self._threshold = SmoothedParam("expander_threshold_db", params, 0.05, hop_s)
        self._ratio = SmoothedParam("expander_ratio", params, 0.05, hop_s)
        self._range = SmoothedParam("expander_range_db", params, 0.05, hop_s)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._detector = one_pole_coefficient(DETECTOR_S, ENGINE_SAMPLE_RATE)
        self._attack = one_pole_coefficient(ATTACK_S, ENGINE_SAMPLE_RATE)
        self._release_db = RELEASE_DB_PER_S / ENGINE_SAMPLE_RATE
        self._hold_frames = round(HOLD_S * ENGINE_SAMPLE_RATE)
        self.reset()

    def set_params(self, params: Mapping[str, float]) -> None:
        for param in (self._threshold, self._ratio, self._range):
            param.update(params)

    def reset(self) -> None:
        for param in (self._threshold, self._ratio, self._range):
            param.reset()
        self._power = 0.0
        self._hold_history = np.zeros(self._hold_frames)  # attenuations (dB) of the last HOLD_S; open
        self._attenuation_db = 0.0
        self._gain = 1.0  # the attack smoother starts at unity gain

    def process(self, block: np.ndarray) -> np.ndarray:
        hops = block.shape[-1] // self._hop
        level_db, self._power = linked_power_db(block, self._detector, self._power)
        threshold = hop_ramp(self._threshold.hop_values(hops), self._hop)
        ratio = hop_ramp(self._ratio.hop_values(hops), self._hop)
        range_db = hop_ramp(self._range.hop_values(hops), self._hop)
        wanted = attenuation_db(level_db, threshold, ratio, range_db)
        held, self._hold_history = sliding(minimum_filter1d, wanted, self._hold_history)
        attenuation = rise_limited(held, self._release_db, self._attenuation_db)
        self._attenuation_db = float(attenuation[-1])
        gain = one_pole(10 ** (-attenuation / 20), self._attack, self._gain)
        self._gain = float(gain[-1])
        return (block * gain).astype(np.float32)
