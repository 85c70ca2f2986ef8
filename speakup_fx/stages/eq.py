"""Voice EQ: low-mid cut at 300 Hz, presence peak at 4 kHz, air shelf at 10 kHz (RBJ biquads)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.biquad import SosFilter, high_shelf_sos, peaking_sos
from speakup_fx.dsp.smoothing import SmoothedParam
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

LOW_MID_HZ = 300.0
LOW_MID_Q = 1.0
PRESENCE_HZ = 4000.0
PRESENCE_Q = 1.0
AIR_HZ = 10000.0


def eq_sos(low_mid_cut_db: float, presence_db: float, air_db: float, sample_rate: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """The three EQ sections ``(3, 6)`` for the given gains."""
    return np.concatenate([
        peaking_sos(LOW_MID_HZ, low_mid_cut_db, LOW_MID_Q, sample_rate),
        peaking_sos(PRESENCE_HZ, presence_db, PRESENCE_Q, sample_rate),
        high_shelf_sos(AIR_HZ, air_db, sample_rate),
    ])


class EqStage(Stage):
    """``low_mid_cut_db`` at 300 Hz, ``presence_db`` at 4 kHz, ``air_db`` shelf at 10 kHz; zero latency."""

    uses = ("low_mid_cut_db", "presence_db", "air_db")

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        hop_s = HOP_MS / 1000
        self._gains = [SmoothedParam(name, params, 0.03, hop_s) for name in ("low_mid_cut_db", "presence_db", "air_db")]
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._filter = SosFilter(self._design(), channels)

    def _design(self) -> np.ndarray:
        return eq_sos(*(gain.value for gain in self._gains))

    def _settled(self) -> bool:
        return all(gain.settled for gain in self._gains)

    def set_params(self, params: Mapping[str, float]) -> None:
        for gain in self._gains:
            gain.update(params)

    def reset(self) -> None:
        for gain in self._gains:
            gain.reset()
        self._filter.sos = self._design()
        self._filter.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        if self._settled():
            return self._filter.process(x).astype(np.float32)
        out = np.empty_like(x)
        for start in range(0, x.shape[-1], self._hop):
            if not self._settled():
                for gain in self._gains:
                    gain.advance()
                self._filter.sos = self._design()
            out[:, start : start + self._hop] = self._filter.process(x[:, start : start + self._hop])
        return out.astype(np.float32)
