"""Output gain: ``output_gain_db``, ramped per sample when it changes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames


class GainStage(Stage):
    """Multiplies by ``output_gain_db``; zero latency."""

    uses = ("output_gain_db",)

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        self._gain_db = SmoothedParam("output_gain_db", params, 0.02, HOP_MS / 1000)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)

    def set_params(self, params: Mapping[str, float]) -> None:
        self._gain_db.update(params)

    def reset(self) -> None:
        self._gain_db.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        if self._gain_db.settled:
            return (block * np.float32(10 ** (self._gain_db.value / 20))).astype(np.float32)
        hops = block.shape[-1] // self._hop
        gain = hop_ramp(10 ** (self._gain_db.hop_values(hops) / 20), self._hop)
        return (block * gain).astype(np.float32)
