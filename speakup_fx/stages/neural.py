"""The ``neural`` engine's enhancer as a streaming stage (16 kHz in and out)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from speakup_fx.params import PARAM_SPECS
from speakup_fx.runtime.enhancer import Enhancer, load_enhancer
from speakup_fx.stages.base import Stage

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _shared_enhancer(weights_path: Path | None) -> Enhancer:
    """One loaded model per weights file per process; each stage keeps its own streaming state."""
    return load_enhancer(weights_path, device="cpu")


class NeuralEnhanceStage(Stage):
    """Denoise and dereverberate with the shipped model.

    The model removes noise and reverberation together, so ``denoise_amount`` is
    the wet/dry mix of its output against the input delayed to match (ramped over
    one 10 ms hop when it changes); ``dereverb_amount`` is not used by this engine.
    Stereo channels run as a batch of two.
    """

    input_sample_rate = 16_000
    output_sample_rate = 16_000

    def __init__(self, channels: int, params: Mapping[str, float], weights_path: str | Path | None = None):
        super().__init__(channels)
        self._enhancer = _shared_enhancer(Path(weights_path) if weights_path is not None else None)
        self._stream = self._enhancer.stream()
        self._amount = PARAM_SPECS["denoise_amount"].validate(params.get("denoise_amount", PARAM_SPECS["denoise_amount"].default))
        self._next_amount = self._amount
        self._dry = np.zeros((channels, self.latency_samples), np.float32)

    @property
    def latency_samples(self) -> int:
        return self._enhancer.latency_samples

    def set_params(self, params: dict) -> None:
        if "denoise_amount" in params:
            self._next_amount = PARAM_SPECS["denoise_amount"].validate(params["denoise_amount"])

    def reset(self) -> None:
        self._stream.reset()
        self._dry[:] = 0.0
        self._amount = self._next_amount

    def process(self, block: np.ndarray) -> np.ndarray:
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"block: expected ({self.channels}, frames), got {block.shape}")
        wet = self._stream.process(block)
        delayed = np.concatenate([self._dry, block.astype(np.float32)], axis=1)
        dry, self._dry = delayed[:, : block.shape[1]], delayed[:, block.shape[1] :]
        amount = np.full(block.shape[1], self._next_amount, np.float32)
        hop = self._enhancer.hop_samples
        amount[:hop] = np.linspace(self._amount, self._next_amount, hop, endpoint=False)  # one-hop ramp on a change
        self._amount = self._next_amount
        return (amount * wet + (1 - amount) * dry).astype(np.float32)
