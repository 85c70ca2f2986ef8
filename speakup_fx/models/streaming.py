"""The default generator: a streamable complex-mask model at a 10 ms hop, with a waveform postnet.

Signal path (tensors ``(batch, 1, time)`` at 16 kHz):
sqrt-Hann STFT (20 ms window, 10 ms hop) -> compressed complex + magnitude features
-> one input conv that looks ``lookahead_frames`` ahead -> gated dilated residual
conv blocks (WaveNet-style, causal) -> bounded complex ratio mask on the noisy
spectrum -> inverse STFT (overlap-add) -> causal residual conv postnet.

Every layer is causal once the look-ahead is counted as delay, so one code path
(``forward_stream``) serves training and streaming: offline = streaming from a
zero state, shifted by ``latency_samples``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class StreamingGeneratorConfig:
    """Shape of the default streamable generator."""

    hop_samples: int = field(default=160, metadata={"help": "STFT hop (window is two hops)"})
    channels: int = field(default=128, metadata={"help": "width of the residual conv stack"})
    kernel_size: int = field(default=3, metadata={"help": "kernel of the dilated convs, frames"})
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 8, 16, 1, 2, 4, 8, 16), metadata={"help": "one residual block per dilation"})
    lookahead_frames: int = field(default=2, metadata={"help": "future frames the input conv sees (latency)"})
    max_mask_gain: float = field(default=4.0, metadata={"help": "largest magnitude of the complex mask"})
    postnet_channels: int = field(default=16, metadata={"help": "width of the waveform postnet"})
    postnet_kernel: int = field(default=9, metadata={"help": "kernel of the postnet convs, samples"})
    postnet_layers: int = field(default=3, metadata={"help": "conv layers of the postnet"})


_CONV_PATH_FRAMES = 32
"""From this many time steps per call, ``CachedConv1d`` uses the conv kernel instead of tap-stacking + GEMM."""


def pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv``'s weight ``(out, in, k)`` as one GEMM on channels-last ``x`` ``(batch, time, in * k)`` (fast on CPU for short blocks)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class CachedConv1d(nn.Conv1d):
    """Causal conv whose left context comes from a cache: ``(x, cache) -> (y, new_cache)``.

    ``step`` works channels-last: ``x`` ``(batch, time, in_channels)``, cache ``(batch, context, in_channels)``;
    the weights keep the ``nn.Conv1d`` layout.
    """

    @property
    def context(self) -> int:
        return (self.kernel_size[0] - 1) * self.dilation[0]

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.context
        if context == 0:
            return pointwise(self, x), cache
        full = torch.cat([cache, x], dim=1)
        new_cache = full.narrow(1, x.shape[1], context)
        if x.shape[1] >= _CONV_PATH_FRAMES:  # long inputs (training, whole files): the conv kernels are faster
            return F.conv1d(full.transpose(1, 2), self.weight, self.bias, dilation=self.dilation).transpose(1, 2), new_cache
        # short blocks: the k dilated taps of each output frame, interleaved per channel (the order of the
        # weight's (in, k) axes, so the weight is used as it lies, never copied), then one GEMM: the same sum, less overhead
        taps = full.unfold(1, context + 1, 1)  # (batch, frames, in_channels, context + 1)
        if self.dilation[0] > 1:
            taps = taps[..., :: self.dilation[0]]
        return pointwise(self, taps.flatten(-2)), new_cache

    def zero_cache(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.context, self.in_channels)


class GatedBlock(nn.Module):
    """WaveNet residual block: dilated causal conv, tanh*sigmoid gate, 1x1 to residual and skip."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CachedConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, cache = self.conv.step(x, cache)
        a, b = h.chunk(2, dim=-1)
        res, skip = pointwise(self.out, torch.tanh(a) * torch.sigmoid(b)).chunk(2, dim=-1)
        return (x + res) * math.sqrt(0.5), skip, cache


def stream_whole(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model.forward_stream`` over all of ``x`` ``(batch, 1, time)`` at once (padded to whole hops and
    flushed by its latency), cut to be aligned with ``x``: the offline ``forward`` of a same-rate streaming model."""
    if x.ndim != 3 or x.shape[1] != 1:
        raise ValueError(f"x: expected (batch, 1, time), got {tuple(x.shape)}")
    hop, frames = model.config.hop_samples, x.shape[-1]
    padded = F.pad(x, (0, model.latency_samples + (-frames) % hop))
    y, _ = model.forward_stream(padded, model.initial_state(x.shape[0]))
    return y[..., model.latency_samples : model.latency_samples + frames]


class StreamingGenerator(nn.Module):
    """Denoise and dereverberate 16 kHz speech; ``forward`` is offline and aligned, ``forward_stream`` is blockwise."""

    input_sample_rate = 16_000
    output_sample_rate = 16_000
    output_names = ("enhanced",)

    def __init__(self, config: StreamingGeneratorConfig = StreamingGeneratorConfig()):
        super().__init__()
        self.config = config
        hop = config.hop_samples
        self.bins = hop + 1
        c = config.channels
        self.register_buffer("window", torch.hann_window(2 * hop, periodic=True).sqrt(), persistent=False)
        self.input = CachedConv1d(3 * self.bins, c, config.lookahead_frames + 1)
        self.blocks = nn.ModuleList(GatedBlock(c, config.kernel_size, d) for d in config.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, 2 * self.bins, 1))
        layers, width = [], 1
        for i in range(config.postnet_layers):
            out = 1 if i == config.postnet_layers - 1 else config.postnet_channels
            layers.append(CachedConv1d(width, out, config.postnet_kernel))
            width = out
        self.postnet = nn.ModuleList(layers)
        nn.init.zeros_(self.postnet[-1].weight)
        nn.init.zeros_(self.postnet[-1].bias)

    @property
    def latency_samples(self) -> int:
        """Output delay of ``forward_stream``: one hop of overlap-add plus the look-ahead."""
        return self.config.hop_samples * (1 + self.config.lookahead_frames)

    def initial_state(self, batch: int) -> dict[str, torch.Tensor]:
        """Zero streaming state for ``batch`` signals."""
        hop, ref = self.config.hop_samples, self.window
        state = {
            "analysis": ref.new_zeros(batch, hop),
            "synthesis": ref.new_zeros(batch, hop),
            "spectrum": ref.new_zeros(batch, self.config.lookahead_frames, self.bins, 2),
            "input": self.input.zero_cache(batch, ref),
        }
        for i, block in enumerate(self.blocks):
            state[f"block{i}"] = block.conv.zero_cache(batch, ref)
        for i, conv in enumerate(self.postnet):
            state[f"postnet{i}"] = conv.zero_cache(batch, ref)
        return state

    def forward_stream(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x`` ``(batch, 1, k * hop)`` -> output delayed by ``latency_samples``, same shape, and the new state."""
        hop = self.config.hop_samples
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] % hop or x.shape[-1] == 0:
            raise ValueError(f"x: expected (batch, 1, k * {hop}) with k >= 1, got {tuple(x.shape)}")
        if state["analysis"].shape[0] != x.shape[0]:
            raise ValueError(f"state is for batch {state['analysis'].shape[0]}, x has batch {x.shape[0]}")
        new: dict[str, torch.Tensor] = {}
        buffer = torch.cat([state["analysis"], x[:, 0]], dim=-1)
        new["analysis"] = buffer[:, -hop:]
        spec = torch.fft.rfft(buffer.unfold(-1, 2 * hop, hop) * self.window)  # (batch, frames, bins)
        magnitude = spec.abs()
        compressed = spec * (magnitude + 1e-8).pow(-0.7)  # |X|^0.3 with the phase of X
        features = torch.cat([compressed.real, compressed.imag, magnitude.add(1e-8).pow(0.3)], dim=-1)

        h, new["input"] = self.input.step(features, state["input"])
        skip = 0.0
        for i, block in enumerate(self.blocks):
            h, s, new[f"block{i}"] = block.step(h, state[f"block{i}"])
            skip = skip + s
        mask = pointwise(self.head[3], torch.relu(pointwise(self.head[1], torch.relu(skip))))  # (batch, frames, 2 * bins)
        mask = torch.complex(mask[..., : self.bins], mask[..., self.bins :])
        limit = self.config.max_mask_gain
        mask_abs = mask.abs()
        mask = mask * (limit * torch.tanh(mask_abs / limit) / (mask_abs + 1e-8))

        delayed = torch.cat([torch.view_as_complex(state["spectrum"].contiguous()), spec], dim=1)
        frames = spec.shape[1]
        new["spectrum"] = torch.view_as_real(delayed[:, frames:])
        enhanced = torch.fft.irfft(delayed[:, :frames] * mask, n=2 * hop) * self.window  # (batch, frames, 2 hop)
        tails = torch.cat([state["synthesis"][:, None], enhanced[:, :-1, hop:]], dim=1)
        y = (enhanced[:, :, :hop] + tails).reshape(x.shape[0], -1, 1)  # channels-last samples
        new["synthesis"] = enhanced[:, -1, hop:]

        p = y
        for i, conv in enumerate(self.postnet):
            p, new[f"postnet{i}"] = conv.step(p, state[f"postnet{i}"])
            if i < len(self.postnet) - 1:
                p = torch.tanh(p)
        return (y + p).transpose(1, 2), new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offline: ``x`` ``(batch, 1, time)`` -> enhanced ``(batch, 1, time)``, aligned with ``x``."""
        return stream_whole(self, x)
