"""The generator of Su, Jin, Finkelstein 2020 (HiFi-GAN denoising): feed-forward non-causal WaveNet + conv postnet.

Operates on raw 16 kHz waveforms ``(batch, 1, time)``; every conv is "same"-padded
(non-causal), so it runs offline only. The postnet is residual with a zero-initialised
last layer, so stage 1 of the schedule trains the WaveNet alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class PaperGeneratorConfig:
    """Shape of the paper's generator."""

    channels: int = field(default=128, metadata={"help": "residual and skip channels of the WaveNet"})
    kernel_size: int = field(default=3, metadata={"help": "kernel of the dilated convs"})
    dilations: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512) * 2, metadata={"help": "one non-causal residual layer per dilation"}
    )
    postnet_layers: int = field(default=12, metadata={"help": "conv layers of the postnet"})
    postnet_channels: int = field(default=128, metadata={"help": "channels of the postnet"})
    postnet_kernel: int = field(default=31, metadata={"help": "kernel of the postnet convs (odd)"})


class _Layer(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.conv(x).chunk(2, dim=1)
        res, skip = self.out(torch.tanh(a) * torch.sigmoid(b)).chunk(2, dim=1)
        return (x + res) * math.sqrt(0.5), skip


class PaperGenerator(nn.Module):
    """Offline waveform-to-waveform denoiser/dereverberator; output aligned with the input."""

    latency_samples = 0

    def __init__(self, config: PaperGeneratorConfig = PaperGeneratorConfig()):
        super().__init__()
        if config.postnet_kernel % 2 == 0:
            raise ValueError(f"postnet_kernel: must be odd, got {config.postnet_kernel}")
        self.config = config
        c = config.channels
        self.input = nn.Conv1d(1, c, 3, padding=1)
        self.layers = nn.ModuleList(_Layer(c, config.kernel_size, d) for d in config.dilations)
        self.output = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 3, padding=1), nn.ReLU(), nn.Conv1d(c, 1, 1))
        pad = config.postnet_kernel // 2
        layers: list[nn.Module] = []
        width = 1
        for i in range(config.postnet_layers):
            out = 1 if i == config.postnet_layers - 1 else config.postnet_channels
            layers.append(nn.Conv1d(width, out, config.postnet_kernel, padding=pad))
            if i < config.postnet_layers - 1:
                layers.append(nn.Tanh())
            width = out
        self.postnet = nn.Sequential(*layers)
        nn.init.zeros_(self.postnet[-1].weight)
        nn.init.zeros_(self.postnet[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, 1, time)`` -> ``(batch, 1, time)``."""
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"x: expected (batch, 1, time), got {tuple(x.shape)}")
        h = self.input(x)
        skip = 0.0
        for layer in self.layers:
            h, s = layer(h)
            skip = skip + s
        y = self.output(skip)
        return y + self.postnet(y)
