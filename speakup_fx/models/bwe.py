"""Bandwidth extension 16 -> 48 kHz: a streamable band-replication model (default) and the Kuleshov U-Net (reference).

Default (``BandwidthExtender``), tensors ``(batch, 1, time)``:
x (16 kHz) -> the project resampler's own polyphase kernel to 48 kHz (``u``, exact: the same weights
as ``dsp.resample``) -> sqrt-Hann STFT at 48 kHz (20 ms window, 10 ms hop). The log-magnitudes of the
bins below ``features_high_hz`` (default ``crossover_hz``) feed a causal gated dilated conv stack (WaveNet-style, as the enhancer)
that predicts one real gain per bin above ``crossover_hz``. The source those gains shape is the band
``[source_low_hz, source_high_hz)`` copied upwards from ``crossover_hz`` again and again (spectral band
replication, shifted by an even number of bins so that every copied bin keeps a consistent phase
advance from hop to hop). Ending the source below the resampler's transition band (about 7.0-7.6 kHz
after a 48 -> 16 -> 48 kHz round trip) keeps its roll-off out of the copies, where it would cut a
notch at the top of each one.
Inverse STFT of the shaped high bins alone gives ``high_band``; the output ``extended`` is ``u``
delayed to match plus ``high_band``. Bins below ``crossover_hz`` are never written, so the band the
input had is left as it was found (only the window's leakage of the new bins reaches below it).

Reference (``KuleshovUNet``): Kuleshov, Enam & Ermon 2017, "Audio Super-Resolution using Neural
Networks": stride-2 conv down blocks (LeakyReLU), a bottleneck with dropout, up blocks of conv +
dropout + ReLU + 1-D sub-pixel shuffle stacked with the matching down block's output, a final conv
+ sub-pixel, and the (upsampled) input added back. Offline only; the paper interpolates the input
with cubic splines, here it is our resampler's kernel so both models see the same band edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from speakup_fx.dsp.resample import StreamingResampler
from speakup_fx.models.streaming import CachedConv1d, GatedBlock, pointwise

INPUT_SAMPLE_RATE = 16_000
OUTPUT_SAMPLE_RATE = 48_000
UPSAMPLING = OUTPUT_SAMPLE_RATE // INPUT_SAMPLE_RATE

INITIAL_GAIN = 0.1
"""Gain of the source bins at initialisation (-20 dB: the replicated band is louder than the one it stands in for)."""


def resampler_kernel() -> tuple[np.ndarray, int]:
    """The project resampler's 16 -> 48 kHz weights ``(3 phases, taps)`` float32 and its first tap offset.

    Read from the resampler itself by feeding it unit impulses, so the model upsamples exactly as
    ``dsp.resample.resample`` does: output frame ``3 n + p`` is ``sum_j x[n + first_tap + j] * w[p, j]``.
    """
    probe = StreamingResampler(1, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE)
    lookahead = probe.lookahead_frames
    taps = 2 * lookahead  # symmetric kernel: first_tap = 1 - half_width, lookahead = half_width
    first_tap = lookahead - taps + 1
    weights = np.zeros((UPSAMPLING, taps), np.float32)
    for j in range(taps):
        impulse = np.zeros((1, taps + lookahead + 1), np.float32)
        impulse[0, j] = 1.0
        # output frame 3 n + p with n = -first_tap sees input frames 0 .. taps - 1 with weights w[p, :]
        out = StreamingResampler(1, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE).process(impulse)
        weights[:, j] = out[0, UPSAMPLING * -first_tap : UPSAMPLING * -first_tap + UPSAMPLING]
    return weights, first_tap


class PolyphaseUpsampler(nn.Module):
    """16 -> 48 kHz with the project resampler's kernel; ``step`` is causal with a cache of ``taps - 1`` frames.

    ``step`` output is the aligned upsampled signal delayed by ``delay_samples`` (48 kHz frames).
    """

    def __init__(self) -> None:
        super().__init__()
        weights, first_tap = resampler_kernel()
        self.taps = weights.shape[1]
        self.lookahead_frames = self.taps - 1 + first_tap
        self.delay_samples = UPSAMPLING * self.lookahead_frames
        self.register_buffer("weight", torch.from_numpy(weights).T.contiguous(), persistent=False)  # (taps, 3)

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, 1, n)``, cache ``(batch, 1, taps - 1)`` -> ``(batch, 1, 3 n)`` delayed, new cache."""
        full = torch.cat([cache, x], dim=-1)
        return self._filter(full), full[..., full.shape[-1] - (self.taps - 1) :]

    def _filter(self, padded: torch.Tensor) -> torch.Tensor:
        """Every ``taps``-frame window of ``padded`` ``(batch, 1, n + taps - 1)`` -> its 3 outputs, ``(batch, 1, 3 n)``."""
        windows = padded[:, 0].unfold(-1, self.taps, 1)  # (batch, n, taps)
        return (windows @ self.weight).reshape(padded.shape[0], 1, -1)  # one GEMM: faster than conv1d on CPU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offline, aligned: ``(batch, 1, n)`` -> ``(batch, 1, 3 n)`` (zeros beyond both ends)."""
        return self._filter(F.pad(x, (self.taps - 1 - self.lookahead_frames, self.lookahead_frames)))

    def zero_cache(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, 1, self.taps - 1)


@dataclass(frozen=True)
class BandwidthExtenderConfig:
    """Shape of the default streamable bandwidth extender."""

    hop_samples: int = field(default=160, metadata={"help": "input frames per hop (10 ms at 16 kHz)"})
    crossover_hz: float = field(default=7600.0, metadata={"help": "lowest frequency the model writes; below it the input is untouched"})
    source_low_hz: float = field(default=2800.0, metadata={"help": "the band [source_low_hz, source_high_hz) is replicated upwards as the source"})
    source_high_hz: float | None = field(default=None, metadata={"help": "top of the replicated source band (None: crossover_hz)"})
    features_high_hz: float | None = field(default=None, metadata={"help": "top of the input band whose log-magnitudes the conv stack reads (None: crossover_hz)"})
    first_copy_hz: float | None = field(default=None, metadata={"help": "where the first whole copy of the source band starts; the bins from crossover_hz up to it take the top of the source band (None: crossover_hz)"})
    channels: int = field(default=64, metadata={"help": "width of the residual conv stack"})
    kernel_size: int = field(default=3, metadata={"help": "kernel of the dilated convs, frames"})
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 8, 1, 2, 4, 8), metadata={"help": "one residual block per dilation"})
    lookahead_frames: int = field(default=0, metadata={"help": "future hops the input conv sees (latency)"})
    max_gain: float = field(default=4.0, metadata={"help": "largest gain applied to a source bin"})

    def __post_init__(self) -> None:
        if self.hop_samples < 1 or self.channels < 1 or self.kernel_size < 1 or self.lookahead_frames < 0:
            raise ValueError(f"BandwidthExtenderConfig: sizes must be positive, got {self}")
        nyquist = OUTPUT_SAMPLE_RATE / 2
        if not 0 < self.source_low_hz < self.crossover_hz < nyquist:
            raise ValueError(f"need 0 < source_low_hz < crossover_hz < {nyquist:g} Hz, got {self.source_low_hz}, {self.crossover_hz}")
        if self.source_high_hz is not None and not self.source_low_hz < self.source_high_hz <= self.crossover_hz:
            raise ValueError(f"need source_low_hz < source_high_hz <= crossover_hz, got {self.source_low_hz}, {self.source_high_hz}, {self.crossover_hz}")
        if self.features_high_hz is not None and not self.source_low_hz < self.features_high_hz <= INPUT_SAMPLE_RATE / 2:
            raise ValueError(f"need source_low_hz < features_high_hz <= {INPUT_SAMPLE_RATE / 2:g} Hz, got {self.source_low_hz}, {self.features_high_hz}")
        if self.first_copy_hz is not None and not self.crossover_hz <= self.first_copy_hz < nyquist:
            raise ValueError(f"need crossover_hz <= first_copy_hz < {nyquist:g} Hz, got {self.crossover_hz}, {self.first_copy_hz}")
        if self.max_gain <= INITIAL_GAIN:
            raise ValueError(f"max_gain must be > {INITIAL_GAIN} (the initial gain), got {self.max_gain}")


class BandwidthExtender(nn.Module):
    """16 kHz speech -> 48 kHz with the 8-24 kHz band added; ``forward`` is offline and aligned."""

    input_sample_rate = INPUT_SAMPLE_RATE
    output_sample_rate = OUTPUT_SAMPLE_RATE
    output_names = ("extended", "high_band")

    def __init__(self, config: BandwidthExtenderConfig = BandwidthExtenderConfig()):
        super().__init__()
        self.config = config
        self.hop = config.hop_samples * UPSAMPLING  # output frames per hop
        self.n_fft = 2 * self.hop
        self.bins = self.hop + 1
        bin_hz = OUTPUT_SAMPLE_RATE / self.n_fft
        self.crossover_bin = math.ceil(config.crossover_hz / bin_hz)
        self.feature_bins = self.crossover_bin if config.features_high_hz is None else math.ceil(config.features_high_hz / bin_hz)
        source_high_bin = self.crossover_bin if config.source_high_hz is None else math.ceil(config.source_high_hz / bin_hz)
        source_high_bin -= (self.crossover_bin - source_high_bin) % 2
        width = source_high_bin - math.ceil(config.source_low_hz / bin_hz)
        width -= width % 2  # even shifts keep each copied bin's phase advance per hop (pi * shift) whole turns
        if width < 2:
            raise ValueError(f"source band [{config.source_low_hz}, {config.source_high_hz or config.crossover_hz}) Hz is narrower than two bins")
        first_copy_bin = self.crossover_bin if config.first_copy_hz is None else math.ceil(config.first_copy_hz / bin_hz)
        first_copy_bin -= (first_copy_bin - self.crossover_bin) % 2  # an even shift, as above
        high = torch.arange(self.crossover_bin, self.bins)
        self.register_buffer("source_index", source_high_bin - width + (high - first_copy_bin) % width, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True).sqrt(), persistent=False)
        self.upsampler = PolyphaseUpsampler()
        c = config.channels
        self.input = CachedConv1d(self.feature_bins, c, config.lookahead_frames + 1)
        self.blocks = nn.ModuleList(GatedBlock(c, config.kernel_size, d) for d in config.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, self.bins - self.crossover_bin, 1))
        nn.init.constant_(self.head[3].bias, math.log(INITIAL_GAIN / (config.max_gain - INITIAL_GAIN)))

    @property
    def latency_samples(self) -> int:
        """Output delay of ``forward_stream`` (48 kHz frames): the upsampler's look-ahead, one hop of overlap-add, the look-ahead hops."""
        return self.upsampler.delay_samples + self.hop * (1 + self.config.lookahead_frames)

    @property
    def _dry_delay(self) -> int:
        return self.hop * (1 + self.config.lookahead_frames)

    def initial_state(self, batch: int) -> dict[str, torch.Tensor]:
        """Zero streaming state for ``batch`` signals."""
        ref = self.window
        state = {
            "upsampler": self.upsampler.zero_cache(batch, ref),
            "analysis": ref.new_zeros(batch, self.hop),
            "dry": ref.new_zeros(batch, self._dry_delay),
            "synthesis": ref.new_zeros(batch, self.hop),
            "source": ref.new_zeros(batch, self.config.lookahead_frames, self.bins - self.crossover_bin, 2),
            "input": self.input.zero_cache(batch, ref),
        }
        for i, block in enumerate(self.blocks):
            state[f"block{i}"] = block.conv.zero_cache(batch, ref)
        return state

    def forward_stream(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x`` ``(batch, 1, k * hop)`` -> ``(batch, 2, 3 k hop)`` (extended, high band) delayed by ``latency_samples``."""
        hop_in = self.config.hop_samples
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] % hop_in or x.shape[-1] == 0:
            raise ValueError(f"x: expected (batch, 1, k * {hop_in}) with k >= 1, got {tuple(x.shape)}")
        if state["analysis"].shape[0] != x.shape[0]:
            raise ValueError(f"state is for batch {state['analysis'].shape[0]}, x has batch {x.shape[0]}")
        batch, hop = x.shape[0], self.hop
        new: dict[str, torch.Tensor] = {}
        u, new["upsampler"] = self.upsampler.step(x, state["upsampler"])
        u = u[:, 0]  # (batch, 3 k hop_in)
        buffer = torch.cat([state["analysis"], u], dim=-1)
        new["analysis"] = buffer[:, -hop:]
        spec = torch.fft.rfft(buffer.unfold(-1, self.n_fft, hop) * self.window)  # (batch, frames, bins)
        features = spec[..., : self.feature_bins].abs().add(1e-5).log()

        h, new["input"] = self.input.step(features, state["input"])
        skip = 0.0
        for i, block in enumerate(self.blocks):
            h, s, new[f"block{i}"] = block.step(h, state[f"block{i}"])
            skip = skip + s
        logits = pointwise(self.head[3], torch.relu(pointwise(self.head[1], torch.relu(skip))))
        gain = self.config.max_gain * torch.sigmoid(logits)  # (batch, frames, high bins)

        source = spec[..., self.source_index]
        delayed = torch.cat([torch.view_as_complex(state["source"].contiguous()), source], dim=1)
        frames = spec.shape[1]
        new["source"] = torch.view_as_real(delayed[:, frames:]).contiguous()
        high = F.pad(delayed[:, :frames] * gain, (self.crossover_bin, 0))
        frames_out = torch.fft.irfft(high, n=self.n_fft) * self.window  # (batch, frames, n_fft)
        tails = torch.cat([state["synthesis"][:, None], frames_out[:, :-1, hop:]], dim=1)
        high_band = (frames_out[:, :, :hop] + tails).reshape(batch, -1)
        new["synthesis"] = frames_out[:, -1, hop:]

        dry = torch.cat([state["dry"], u], dim=-1)
        new["dry"] = dry[:, dry.shape[-1] - self._dry_delay :]
        low = dry[:, : u.shape[-1]]
        return torch.stack([low + high_band, high_band], dim=1), new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offline: ``x`` ``(batch, 1, n)`` at 16 kHz -> extended ``(batch, 1, 3 n)`` at 48 kHz, aligned with ``x``."""
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"x: expected (batch, 1, time), got {tuple(x.shape)}")
        hop_in, frames = self.config.hop_samples, x.shape[-1]
        pad = -(-self.latency_samples // UPSAMPLING) + (-frames) % hop_in
        pad += (-(frames + pad)) % hop_in
        y, _ = self.forward_stream(F.pad(x, (0, pad)), self.initial_state(x.shape[0]))
        return y[:, :1, self.latency_samples : self.latency_samples + UPSAMPLING * frames]


@dataclass(frozen=True)
class KuleshovUNetConfig:
    """The audio super-resolution U-Net of Kuleshov et al. 2017 (their released defaults: 4 levels)."""

    hop_samples: int = field(default=160, metadata={"help": "input frames per hop (offline model: only the input length's multiple)"})
    filters: tuple[int, ...] = field(default=(128, 384, 512, 512, 512, 512, 512, 512), metadata={"help": "filters per down block"})
    kernel_sizes: tuple[int, ...] = field(default=(65, 33, 17, 9, 9, 9, 9, 9), metadata={"help": "kernel per down block"})
    levels: int = field(default=4, metadata={"help": "down/up blocks (the paper's L)"})
    dropout: float = field(default=0.5, metadata={"help": "dropout in the bottleneck and up blocks"})

    def __post_init__(self) -> None:
        if not 1 <= self.levels < min(len(self.filters), len(self.kernel_sizes)):
            raise ValueError(f"levels must be in [1, {min(len(self.filters), len(self.kernel_sizes)) - 1}], got {self.levels}")


def subpixel_1d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """1-D sub-pixel shuffle: ``(batch, channels * factor, time)`` -> ``(batch, channels, time * factor)``."""
    batch, channels, time = x.shape
    return x.reshape(batch, channels // factor, factor, time).permute(0, 1, 3, 2).reshape(batch, channels // factor, time * factor)


class KuleshovUNet(nn.Module):
    """The reference U-Net on the 16 kHz input upsampled to 48 kHz; offline only (``forward``)."""

    input_sample_rate = INPUT_SAMPLE_RATE
    output_sample_rate = OUTPUT_SAMPLE_RATE
    output_names = ("extended",)

    def __init__(self, config: KuleshovUNetConfig = KuleshovUNetConfig()):
        super().__init__()
        self.config = config
        self.upsampler = PolyphaseUpsampler()
        levels, filters, kernels = config.levels, config.filters, config.kernel_sizes
        self.down = nn.ModuleList()
        width = 1
        for n, k in zip(filters[:levels], kernels[:levels]):
            self.down.append(nn.Conv1d(width, n, k, stride=2, padding=k // 2))
            width = n
        self.bottleneck = nn.Conv1d(width, filters[levels], kernels[levels], stride=2, padding=kernels[levels] // 2)
        self.up = nn.ModuleList()
        width = filters[levels]
        for n, k in reversed(list(zip(filters[:levels], kernels[:levels]))):
            self.up.append(nn.Conv1d(width, 2 * n, k, padding=k // 2))
            width = n + n  # sub-pixel halves 2n to n, then stacked with the down block's n
        self.final = nn.Conv1d(width, 2, 9, padding=4)
        self.dropout = nn.Dropout(config.dropout)

    @property
    def multiple(self) -> int:
        """Input lengths at 48 kHz are padded to a multiple of this."""
        return 2 ** (self.config.levels + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(batch, 1, n)`` at 16 kHz -> ``(batch, 1, 3 n)`` at 48 kHz, aligned."""
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"x: expected (batch, 1, time), got {tuple(x.shape)}")
        u = self.upsampler(x)
        frames = u.shape[-1]
        h = F.pad(u, (0, (-frames) % self.multiple))
        skips = []
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        h = F.leaky_relu(self.dropout(self.bottleneck(h)), 0.2)
        for conv, skip in zip(self.up, reversed(skips)):
            h = subpixel_1d(F.relu(self.dropout(conv(h))), 2)
            h = torch.cat([h, skip], dim=1)
        h = subpixel_1d(self.final(h), 2)
        return h[..., :frames] + u
