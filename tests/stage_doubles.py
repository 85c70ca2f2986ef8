"""Test-only stages shared by the engine and effect tests."""

from __future__ import annotations

import numpy as np

from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, Stage


class DelayStage(Stage):
    """Test stage: a pure delay of ``frames`` that reports it as latency (a transparent chain)."""

    def __init__(self, channels: int, frames: int = 0, sample_rate: int = ENGINE_SAMPLE_RATE) -> None:
        super().__init__(channels)
        self.frames = frames
        self.input_sample_rate = self.output_sample_rate = sample_rate
        self.reset()

    @property
    def latency_samples(self) -> int:
        return self.frames

    def process(self, block: np.ndarray) -> np.ndarray:
        joined = np.concatenate([self._tail, block], axis=1)
        self._tail = joined[:, block.shape[1] :]
        return joined[:, : block.shape[1]]

    def reset(self) -> None:
        self._tail = np.zeros((self.channels, self.frames), np.float32)
