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


def save_tiny_enhancer(path, seed: int = 0):
    """Write a tiny random streaming enhancer to ``path`` (tests the plumbing around a model, not a model)."""
    import torch

    from speakup_fx.models.streaming import StreamingGenerator, StreamingGeneratorConfig
    from speakup_fx.runtime.weights import save_weights

    torch.manual_seed(seed)
    generator = StreamingGenerator(StreamingGeneratorConfig(channels=16, dilations=(1, 2), postnet_channels=4))
    torch.nn.init.normal_(generator.postnet[-1].weight, std=0.1)
    save_weights(generator, path)
    return path


def save_tiny_two_output_enhancer(path, seed: int = 0):
    """Write a tiny random DFNet (outputs ``denoised`` and ``dereverberated``) to ``path``."""
    import torch

    from speakup_fx.models.dfnet import DFNet, DFNetConfig
    from speakup_fx.runtime.weights import save_weights

    torch.manual_seed(seed)
    save_weights(DFNet(DFNetConfig(channels=16, gru_layers=1)), path)
    return path


def save_tiny_bandwidth_extender(path, seed: int = 0):
    """Write a tiny random bandwidth extender to ``path`` (tests the plumbing around a model, not a model)."""
    import torch

    from speakup_fx.models.bwe import BandwidthExtender, BandwidthExtenderConfig
    from speakup_fx.runtime.weights import save_weights

    torch.manual_seed(seed)
    save_weights(BandwidthExtender(BandwidthExtenderConfig(channels=8, dilations=(1, 2))), path)
    return path
