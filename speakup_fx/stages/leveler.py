"""Leveler: slow gain riding toward ``target_lufs`` on the K-weighted speech level.

Each hop the momentary (400 ms) K-weighted loudness is measured; when it passes the gates (above
-50 LUFS and no more than 15 LU below the tracked level, so pauses and background noise are not
counted) it updates a 3 s average of the speech level. The gain toward the target is bounded to
+-12 dB, scaled by ``leveler_amount`` and followed with a 1 s time constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.biquad import SosFilter
from speakup_fx.dsp.envelope import one_pole_coefficient
from speakup_fx.dsp.loudness import k_weighting_sos
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

MAX_GAIN_DB = 12.0
ABSOLUTE_GATE_LUFS = -50.0
RELATIVE_GATE_LU = -15.0
MOMENTARY_S = 0.4
LEVEL_TIME_S = 3.0
GAIN_TIME_S = 1.0


def _lufs(mean_square: float) -> float:
    return -0.691 + 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


class LevelerStage(Stage):
    """Rides the gain toward ``target_lufs`` by ``leveler_amount`` (0 = off); zero latency, linked stereo."""

    uses = ("leveler_amount", "target_lufs")

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        hop_s = HOP_MS / 1000
        self._amount = SmoothedParam("leveler_amount", params, 0.05, hop_s)
        self._target = SmoothedParam("target_lufs", params, 0.05, hop_s)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._weighting = SosFilter(k_weighting_sos(ENGINE_SAMPLE_RATE), channels)
        self._momentary_hops = round(MOMENTARY_S / hop_s)
        self._level_coefficient = one_pole_coefficient(LEVEL_TIME_S, 1 / hop_s)  # one step per hop
        self._gain_coefficient = one_pole_coefficient(GAIN_TIME_S, 1 / hop_s)
        self.reset()

    def set_params(self, params: Mapping[str, float]) -> None:
        self._amount.update(params)
        self._target.update(params)

    def reset(self) -> None:
        self._amount.reset()
        self._target.reset()
        self._weighting.reset()
        self._energies = np.zeros(self._momentary_hops)
        self._hop_index = 0
        self._level = 0.0  # mean square of the gated speech level; 0 until speech is heard
        self._gain_db = 0.0

    @property
    def gain_db(self) -> float:
        """The gain applied at the end of the last block."""
        return self._gain_db

    def process(self, block: np.ndarray) -> np.ndarray:
        hops = block.shape[-1] // self._hop
        weighted = self._weighting.process(block.astype(np.float64))
        energies = np.sum(weighted**2, axis=0).reshape(hops, self._hop).mean(axis=1)
        gains_db = np.empty(hops + 1)
        gains_db[0] = self._gain_db
        for j in range(hops):
            gains_db[j + 1] = self._next_gain_db(energies[j])
        return (block * hop_ramp(10 ** (gains_db / 20), self._hop)).astype(np.float32)

    def _next_gain_db(self, energy: float) -> float:
        self._energies[self._hop_index % self._momentary_hops] = energy
        self._hop_index += 1
        mean_square = float(self._energies.mean())
        momentary = _lufs(mean_square)
        if momentary > ABSOLUTE_GATE_LUFS and momentary > _lufs(self._level) + RELATIVE_GATE_LU:
            if self._level == 0.0:
                self._level = mean_square
            else:
                self._level = self._level_coefficient * self._level + (1 - self._level_coefficient) * mean_square
        amount = self._amount.advance()
        target = self._target.advance()
        wanted = 0.0
        if self._level > 0.0:
            wanted = amount * float(np.clip(target - _lufs(self._level), -MAX_GAIN_DB, MAX_GAIN_DB))
        self._gain_db = wanted + (self._gain_db - wanted) * self._gain_coefficient
        return self._gain_db
