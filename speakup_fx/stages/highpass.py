"""High-pass filter against rumble and plosives: 4th-order Butterworth, cutoff glides when changed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.signal import butter

from speakup_fx.dsp.biquad import SosFilter
from speakup_fx.dsp.smoothing import SmoothedParam
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

ORDER = 4


def highpass_sos(cutoff_hz: float, sample_rate: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """Butterworth high-pass of order ``ORDER`` (-3 dB at ``cutoff_hz``) as second-order sections."""
    return butter(ORDER, cutoff_hz, btype="highpass", fs=sample_rate, output="sos")


class HighpassStage(Stage):
    """Butterworth high-pass at ``highpass_hz``; zero latency."""

    uses = ("highpass_hz",)

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        self._cutoff = SmoothedParam("highpass_hz", params, 0.03, HOP_MS / 1000)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._filter = SosFilter(highpass_sos(self._cutoff.value), channels)

    def set_params(self, params: Mapping[str, float]) -> None:
        self._cutoff.update(params)

    def reset(self) -> None:
        self._cutoff.reset()
        self._filter.sos = highpass_sos(self._cutoff.value)
        self._filter.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        if self._cutoff.settled:
            return self._filter.process(x).astype(np.float32)
        out = np.empty_like(x)
        for start in range(0, x.shape[-1], self._hop):
            if not self._cutoff.settled:
                self._filter.sos = highpass_sos(self._cutoff.advance())
            out[:, start : start + self._hop] = self._filter.process(x[:, start : start + self._hop])
        return out.astype(np.float32)
