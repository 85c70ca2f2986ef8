"""Discriminators: multi-scale waveform (16/8/4 kHz) and log-mel spectrogram; each returns (score, features)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the discriminators."""

    scales: int = field(default=3, metadata={"help": "waveform discriminators at rate / 2**i"})
    waveform_channels: int = field(default=16, metadata={"help": "channels of the first waveform conv (x4 per strided layer)"})
    waveform_max_channels: int = field(default=256, metadata={"help": "channel cap of the waveform discriminators"})
    mel_bins: int = field(default=80, metadata={"help": "mel bands of the spectrogram discriminator"})
    mel_fft: int = field(default=1024, metadata={"help": "FFT size of the mel discriminator"})
    mel_hop: int = field(default=256, metadata={"help": "hop of the mel discriminator"})
    mel_channels: int = field(default=32, metadata={"help": "channels of the mel discriminator's 2-D convs"})
    sample_rate: int = field(default=16_000, metadata={"help": "input rate, Hz"})


def mel_filterbank(sample_rate: int, n_fft: int, bins: int) -> np.ndarray:
    """Triangular HTK-mel filters ``(bins, n_fft // 2 + 1)``, float32."""
    top_mel = 2595 * np.log10(1 + sample_rate / 2 / 700)
    edges_hz = 700 * (10 ** (np.linspace(0.0, top_mel, bins + 2) / 2595) - 1)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges_hz[:-2, None]) / (edges_hz[1:-1, None] - edges_hz[:-2, None])
    upper = (edges_hz[2:, None] - freqs[None]) / (edges_hz[2:, None] - edges_hz[1:-1, None])
    return np.maximum(0, np.minimum(lower, upper)).astype(np.float32)


class WaveformDiscriminator(nn.Module):
    """MelGAN-style strided grouped conv stack on a waveform ``(batch, 1, time)``."""

    def __init__(self, channels: int, max_channels: int):
        super().__init__()
        layers = [weight_norm(nn.Conv1d(1, channels, 15, padding=7))]
        width = channels
        for _ in range(3):
            out = min(width * 4, max_channels)
            layers.append(weight_norm(nn.Conv1d(width, out, 41, stride=4, padding=20, groups=width // 4 if width >= 4 else 1)))
            width = out
        layers.append(weight_norm(nn.Conv1d(width, width, 5, padding=2)))
        self.layers = nn.ModuleList(layers)
        self.score = weight_norm(nn.Conv1d(width, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.score(x), features


class MelDiscriminator(nn.Module):
    """2-D conv stack on the log-mel spectrogram of a waveform ``(batch, 1, time)``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.n_fft, self.hop = config.mel_fft, config.mel_hop
        self.register_buffer("filters", torch.from_numpy(mel_filterbank(config.sample_rate, config.mel_fft, config.mel_bins)), persistent=False)
        self.register_buffer("window", torch.hann_window(config.mel_fft), persistent=False)
        c = config.mel_channels
        self.layers = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
            ]
        )
        self.score = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(x[:, 0], self.n_fft, self.hop, window=self.window, return_complex=True).abs()
        h = torch.log(torch.matmul(self.filters, spec).clamp_min(1e-5))[:, None]  # (batch, 1, mel, frames)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.score(h), features


class Discriminators(nn.Module):
    """All discriminators; ``forward(x)`` -> (list of scores, list of feature lists), waveforms then mel."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        self.waveform = nn.ModuleList(WaveformDiscriminator(config.waveform_channels, config.waveform_max_channels) for _ in range(config.scales))
        self.mel = MelDiscriminator(config)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"x: expected (batch, 1, time), got {tuple(x.shape)}")
        scores, features = [], []
        for i, disc in enumerate(self.waveform):
            s, f = disc(F.avg_pool1d(x, 2**i) if i else x)
            scores.append(s)
            features.append(f)
        s, f = self.mel(x)
        return [*scores, s], [*features, f]
