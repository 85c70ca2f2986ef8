"""A small streamable DeepFilterNet-style enhancer with two outputs: noise removed, and noise + late room removed.

Signal path (16 kHz, tensors ``(batch, channels, time)``):
sqrt-Hann STFT (30 ms window, 10 ms hop, 33 Hz bins) -> ERB-band levels (dB) and the complex
spectrum of the low bins, each normalised by its exponential running mean (level-independent)
-> a causal conv over frames -> GRU trunk -> per output: sigmoid ERB-band gains above ``df_bins``
(the envelope) and, below it, a complex multi-frame deep filter (Schröter et al.,
"DeepFilterNet", 2022) that can rebuild harmonics between the bands' resolution
-> inverse STFT (overlap-add).

Output 0 (``denoised``) is trained toward the reverberant clean speech (the room kept), output 1
(``dereverberated``) toward the direct path plus early reflections (late tail decayed), so noise
and room can be controlled separately by mixing them with the input.

The spectrum the filters act on is ``lookahead_frames`` behind the newest frame; everything else
is causal, so one code path (``forward_stream``) serves training, whole files and streaming.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.special
import torch
from torch import nn
from torch.nn import functional as F

from speakup_fx.models.streaming import CachedConv1d, stream_whole

_EMA_CHUNK_FRAMES = 64
"""Frames per matrix product of the running means (a whole file is processed in chunks of this many)."""

_LEVEL_FLOOR = 1e-10
"""Power floor of the ERB levels (-100 dB)."""

_STEP_BUFFERS = ("window", "synthesis_window", "band_mean", "band_spread")
"""The buffers ``DFNet._cpu_step`` reads."""


@dataclass(frozen=True)
class DFNetConfig:
    """Shape of the two-output deep-filtering enhancer."""

    hop_samples: int = field(default=160, metadata={"help": "STFT hop, samples (10 ms at 16 kHz)"})
    fft_size: int = field(default=480, metadata={"help": "STFT window, samples; a multiple of the hop"})
    erb_bands: int = field(default=32, metadata={"help": "ERB bands of the envelope gains"})
    min_bins_per_band: int = field(default=2, metadata={"help": "narrowest ERB band, bins"})
    df_bins: int = field(default=128, metadata={"help": "lowest bins that are deep-filtered (128 x 33 Hz = 4.3 kHz)"})
    df_order: int = field(default=3, metadata={"help": "frames per deep filter"})
    df_lookahead_frames: int = field(default=1, metadata={"help": "future frames a deep filter reaches (<= lookahead_frames)"})
    lookahead_frames: int = field(default=1, metadata={"help": "frames the filters' input lags the newest frame"})
    channels: int = field(default=128, metadata={"help": "width of the conv and GRU trunk"})
    conv_frames: int = field(default=3, metadata={"help": "kernel of the input conv, frames"})
    gru_layers: int = field(default=2, metadata={"help": "stacked GRU layers"})
    norm_tau_s: float = field(default=1.0, metadata={"help": "time constant of the feature running means, s"})

    def __post_init__(self) -> None:
        if self.fft_size % self.hop_samples or self.fft_size // self.hop_samples < 2:
            raise ValueError(f"fft_size {self.fft_size} must be a multiple (>= 2) of hop_samples {self.hop_samples}")
        if not 0 < self.df_bins <= self.fft_size // 2 + 1:
            raise ValueError(f"df_bins {self.df_bins} outside [1, {self.fft_size // 2 + 1}]")
        if not 0 <= self.df_lookahead_frames <= self.lookahead_frames or self.df_lookahead_frames >= self.df_order:
            raise ValueError(f"df_lookahead_frames {self.df_lookahead_frames} must be <= lookahead_frames and < df_order")


def erb_band_widths(sample_rate: int, fft_size: int, bands: int, min_bins: int) -> list[int]:
    """Bins per band: equal steps on the ERB scale (Glasberg & Moore), each at least ``min_bins``; they sum to all bins."""
    bins = fft_size // 2 + 1
    bin_hz = sample_rate / fft_size
    erb_max = 9.265 * math.log1p(sample_rate / 2 / (24.7 * 9.265))
    widths, position = [], 0
    for i in range(1, bands + 1):
        edge_hz = 24.7 * 9.265 * math.expm1(erb_max * i / bands / 9.265)
        width = max(int(round(edge_hz / bin_hz)) - position, min_bins)
        if i == bands or position + width > bins:
            width = bins - position
        widths.append(width)
        position += width
    if min(widths) < 1:
        raise ValueError(f"{bands} ERB bands of >= {min_bins} bins do not fit in {bins} bins")
    return widths


def _linear(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight_t + bias``: NumPy's product for one row, torch's for more, where OpenBLAS would take every core
    (it threads products above 262,144 multiply-adds; one row of the shipped model's largest is 196,608) and
    torch's thread setting holds."""
    if x.shape[0] == 1:
        return x @ weight_t + bias
    return torch.addmm(torch.from_numpy(bias), torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(weight_t)).numpy()


class DFNet(nn.Module):
    """Denoise (room kept) and dereverberate 16 kHz speech; ``forward`` is offline and aligned, ``forward_stream`` blockwise."""

    input_sample_rate = 16_000
    output_sample_rate = 16_000
    output_names = ("denoised", "dereverberated")

    def __init__(self, config: DFNetConfig = DFNetConfig()):
        super().__init__()
        self.config = config
        c = config
        self.bins = c.fft_size // 2 + 1
        outputs = len(self.output_names)
        widths = erb_band_widths(self.input_sample_rate, c.fft_size, c.erb_bands, c.min_bins_per_band)
        dtype = torch.get_default_dtype()  # buffers computed in float64, kept in the parameters' dtype
        band_of_bin = [band for band, width in enumerate(widths) for _ in range(width)]
        # (bins, bands): a band's gain on its bins; built from Python lists so the model also builds on the meta device
        spread = torch.tensor([[float(b == band) for band in range(c.erb_bands)] for b in band_of_bin], dtype=dtype)
        # the bands' gains act above df_bins only (the deep filters replace the spectrum below)
        self.register_buffer("band_spread", spread.T[:, c.df_bins :].contiguous(), persistent=False)
        self.register_buffer("band_mean", spread / spread.sum(0), persistent=False)  # bin powers -> band mean power
        window = torch.hann_window(c.fft_size, periodic=True, dtype=torch.float64).sqrt()
        self.register_buffer("window", window.to(dtype), persistent=False)
        self.register_buffer("synthesis_window", (window * 2 * c.hop_samples / c.fft_size).to(dtype), persistent=False)
        decay = math.exp(-c.hop_samples / (c.norm_tau_s * self.input_sample_rate))
        self._ema_weight = 1 - decay
        steps = torch.arange(_EMA_CHUNK_FRAMES, dtype=torch.float64)
        lag = steps[:, None] - steps[None, :]
        self.register_buffer("ema_kernel", torch.where(lag >= 0, (1 - decay) * decay ** lag.clamp_min(0), 0.0).to(dtype), persistent=False)
        self.register_buffer("ema_carry", (decay ** (steps[:, None] + 1)).to(dtype), persistent=False)
        features = c.erb_bands + 2 * c.df_bins
        self.input = CachedConv1d(features, c.channels, c.conv_frames)
        self.gru = nn.GRU(c.channels, c.channels, c.gru_layers, batch_first=True)
        self.gains = nn.Linear(c.channels, outputs * c.erb_bands)
        self.filters = nn.Linear(c.channels, outputs * c.df_order * c.df_bins * 2)
        nn.init.normal_(self.filters.weight, std=0.01)
        nn.init.zeros_(self.filters.bias)

    @property
    def latency_samples(self) -> int:
        """Output delay of ``forward_stream``: the window's overlap-add plus the look-ahead."""
        c = self.config
        return c.fft_size - c.hop_samples + c.lookahead_frames * c.hop_samples

    @property
    def _spectrum_frames(self) -> int:
        return self.config.lookahead_frames + self.config.df_order - 1

    def initial_state(self, batch: int) -> dict[str, torch.Tensor]:
        """Zero streaming state for ``batch`` signals: fixed shapes, batch first."""
        c, ref = self.config, self.window
        overlap = c.fft_size - c.hop_samples
        return {
            "analysis": ref.new_zeros(batch, overlap),
            "spectrum": ref.new_zeros(batch, self._spectrum_frames, self.bins, 2),
            "norm": ref.new_zeros(batch, c.erb_bands + c.df_bins + 1),
            "input": self.input.zero_cache(batch, ref),
            "gru": ref.new_zeros(batch, c.gru_layers, c.channels),
            "synthesis": ref.new_zeros(batch, len(self.output_names), overlap),
        }

    def _running_mean(self, x: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exponential running mean over frames of ``x`` ``(batch, frames, features)`` from ``previous`` ``(batch, features)``."""
        if x.shape[1] == 1:  # one hop on a GPU or with gradients: one interpolation (the chunked product's values within rounding)
            mean = torch.lerp(previous, x.squeeze(1), self._ema_weight)
            return mean.unsqueeze(1), mean
        means = []
        for start in range(0, x.shape[1], _EMA_CHUNK_FRAMES):
            n = min(_EMA_CHUNK_FRAMES, x.shape[1] - start)
            chunk = x if n == x.shape[1] else x.narrow(1, start, n)
            kernel = self.ema_kernel if n == _EMA_CHUNK_FRAMES else self.ema_kernel[:n, :n]
            mean = torch.addcmul(kernel @ chunk, self.ema_carry[:n], previous.unsqueeze(1))
            means.append(mean)
            previous = mean.select(1, -1)
        return (means[0] if len(means) == 1 else torch.cat(means, dim=1)), previous

    def _features(self, spec: torch.Tensor, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level-normalised ERB levels and low-bin spectrum ``(batch, frames, features)``, and the new running means."""
        c = self.config
        magnitude = spec.abs()
        level_db = 10 * torch.log10(magnitude.square() @ self.band_mean + _LEVEL_FLOOR)
        low = spec.narrow(-1, 0, c.df_bins)
        values = F.pad(torch.cat([level_db, magnitude.narrow(-1, 0, c.df_bins)], dim=-1), (0, 1), value=1.0)
        means, norm = self._running_mean(values, norm)
        features = c.erb_bands + c.df_bins
        unbiased = means.narrow(-1, 0, features) / means.narrow(-1, features, 1)  # over the running mean of ones: no zero-start bias
        level_mean, magnitude_mean = unbiased.split([c.erb_bands, c.df_bins], dim=-1)
        unit = low / (magnitude_mean + 1e-6)
        return torch.cat([(level_db - level_mean) / 40.0, unit.real, unit.imag], dim=-1), norm

    def forward_stream(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x`` ``(batch, 1, k * hop)`` -> ``(batch, 2, k * hop)`` delayed by ``latency_samples``, and the new state."""
        c = self.config
        hop, outputs, overlap = c.hop_samples, len(self.output_names), c.fft_size - c.hop_samples
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] % hop or x.shape[-1] == 0:
            raise ValueError(f"x: expected (batch, 1, k * {hop}) with k >= 1, got {tuple(x.shape)}")
        if state["analysis"].shape[0] != x.shape[0]:
            raise ValueError(f"state is for batch {state['analysis'].shape[0]}, x has batch {x.shape[0]}")
        frames = x.shape[-1] // hop
        if frames == 1 and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled():
            return self._cpu_step(x, state)
        new: dict[str, torch.Tensor] = {}
        buffer = torch.cat([state["analysis"], x.select(1, 0)], dim=-1)
        new["analysis"] = buffer.narrow(-1, frames * hop, overlap)
        spec = torch.fft.rfft(buffer.unfold(-1, c.fft_size, hop) * self.window)  # (batch, frames, bins)

        features, new["norm"] = self._features(spec, state["norm"])
        h, new["input"] = self.input.step(features, state["input"])
        h, new["gru"] = self._recur(torch.relu(h), state["gru"])
        gains = torch.sigmoid(F.linear(h, self.gains.weight, self.gains.bias))
        gains = gains.unflatten(-1, (outputs, c.erb_bands)) @ self.band_spread  # (batch, frames, outputs, bins - df_bins)
        coefficients = torch.tanh(F.linear(h, self.filters.weight, self.filters.bias))
        coefficients = torch.view_as_complex(coefficients.unflatten(-1, (outputs, c.df_order, c.df_bins, 2)))

        cached = self._spectrum_frames
        full = torch.cat([torch.view_as_complex(state["spectrum"].contiguous()), spec], dim=1)
        new["spectrum"] = torch.view_as_real(full.narrow(1, frames, cached))
        delayed = full.narrow(1, cached - c.lookahead_frames, frames).unsqueeze(2)  # (batch, frames, 1, bins)
        enhanced = gains * delayed.narrow(-1, c.df_bins, self.bins - c.df_bins)
        first_tap = cached - c.lookahead_frames - (c.df_order - 1) + c.df_lookahead_frames
        # taps[:, t, i] = full[:, first_tap + t + i, :df_bins], laid out contiguously so the sum over taps runs fast
        taps = full.narrow(1, first_tap, frames + c.df_order - 1).narrow(-1, 0, c.df_bins).unfold(1, c.df_order, 1)
        filtered = (coefficients * taps.transpose(-1, -2).contiguous().unsqueeze(2)).sum(dim=3)
        enhanced = torch.cat([filtered, enhanced], dim=-1)  # (batch, frames, outputs, bins)

        frames_out = torch.fft.irfft(enhanced, n=c.fft_size) * self.synthesis_window  # (batch, frames, outputs, fft)
        total = self._overlap_add(frames_out, state["synthesis"])  # (batch, outputs, frames * hop + overlap)
        new["synthesis"] = total.narrow(-1, frames * hop, overlap)
        return total.narrow(-1, 0, frames * hop), new

    def _cpu_step(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One hop on the CPU without gradients, the real-time host's call: ``forward_stream``'s values within
        float32 rounding, computed in NumPy, whose calls on one 10 ms frame cost a fraction of torch's dispatch
        (about twice as fast per hop; the products as ``_linear`` chooses)."""
        c, w = self.config, self._numpy_weights()
        s = {name: tensor.detach().numpy() for name, tensor in state.items()}
        batch, hop, df, bands, channels = x.shape[0], c.hop_samples, c.df_bins, c.erb_bands, c.channels
        frame = np.concatenate([s["analysis"], x.detach().numpy().reshape(batch, hop)], axis=1)
        spec = np.fft.rfft(frame * w["window"])  # (batch, bins), complex64
        magnitude = np.abs(spec)
        level_db = 10 * np.log10(np.square(magnitude) @ w["band_mean"] + np.float32(_LEVEL_FLOOR))
        values = np.concatenate([level_db, magnitude[:, :df], np.ones((batch, 1), np.float32)], axis=1)
        norm = s["norm"] + np.float32(self._ema_weight) * (values - s["norm"])
        unbiased = norm[:, :-1] / norm[:, -1:]
        unit = spec[:, :df] / (unbiased[:, bands:] + np.float32(1e-6))
        features = np.concatenate([(level_db - unbiased[:, :bands]) / np.float32(40.0), unit.real, unit.imag], axis=1)

        context = np.concatenate([s["input"], features[:, None]], axis=1)  # (batch, conv_frames, features)
        taps = context.transpose(0, 2, 1).reshape(batch, -1)  # frames fastest, as the conv's weight lies
        h = np.maximum(_linear(taps, w["input.weight"], w["input.bias"]), 0)
        layers = []
        for layer in range(c.gru_layers):
            previous = s["gru"][:, layer]
            gi = _linear(h, w[f"gru.weight_ih_l{layer}"], w[f"gru.bias_ih_l{layer}"])
            gh = _linear(previous, w[f"gru.weight_hh_l{layer}"], w[f"gru.bias_hh_l{layer}"])
            gates = scipy.special.expit(gi[:, : 2 * channels] + gh[:, : 2 * channels])  # reset, update
            candidate = np.tanh(gi[:, 2 * channels :] + gates[:, :channels] * gh[:, 2 * channels :])
            h = candidate + gates[:, channels:] * (previous - candidate)
            layers.append(h)
        gains = scipy.special.expit(_linear(h, w["gains.weight"], w["gains.bias"])).reshape(batch, -1, bands) @ w["band_spread"]
        coefficients = np.tanh(_linear(h, w["filters.weight"], w["filters.bias"])).reshape(batch, -1, c.df_order, df * 2)
        coefficients = coefficients.view(np.complex64)  # (batch, outputs, df_order, df_bins)

        cached = self._spectrum_frames
        full = np.concatenate([np.ascontiguousarray(s["spectrum"]).view(np.complex64)[..., 0], spec[:, None]], axis=1)
        delayed = full[:, cached - c.lookahead_frames, None]  # (batch, 1, bins)
        first_tap = cached - c.lookahead_frames - (c.df_order - 1) + c.df_lookahead_frames
        filtered = (coefficients * full[:, None, first_tap : first_tap + c.df_order, :df]).sum(axis=2)
        enhanced = np.concatenate([filtered, gains * delayed[..., df:]], axis=-1)  # (batch, outputs, bins)
        total = np.fft.irfft(enhanced, n=c.fft_size) * w["synthesis_window"]
        total[..., : c.fft_size - hop] += s["synthesis"]
        new = {
            "analysis": frame[:, hop:], "spectrum": full[:, 1:].view(np.float32).reshape(batch, cached, self.bins, 2), "norm": norm,
            "input": context[:, 1:], "gru": np.stack(layers, axis=1), "synthesis": total[..., hop:],
        }
        return torch.from_numpy(total[..., :hop]), {name: torch.from_numpy(array) for name, array in new.items()}

    def _numpy_weights(self) -> dict[str, np.ndarray]:
        """NumPy views for ``_cpu_step``: the parameters (matrices as (in, out), the conv's as (in * frames, out))
        and the buffers, sharing the tensors' memory (so in-place updates show) and rebuilt when a storage moves."""
        modules = tuple(self._modules[name] for name in ("input", "gru", "gains", "filters"))
        key = tuple(tensor.data_ptr() for module in modules for tensor in module._parameters.values())
        key += tuple(self._buffers[name].data_ptr() for name in _STEP_BUFFERS)
        if getattr(self, "_numpy_key", None) != key:
            views = {f"{prefix}.{name}": tensor.detach().numpy() for prefix, module in zip(("input", "gru", "gains", "filters"), modules)
                     for name, tensor in module._parameters.items()}
            views["input.weight"] = views["input.weight"].reshape(self.config.channels, -1)
            views = {name: view.T if view.ndim == 2 else view for name, view in views.items()}
            self._numpy_views = views | {name: self._buffers[name].numpy() for name in _STEP_BUFFERS}
            self._numpy_key = key
        return self._numpy_views

    def _recur(self, h: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The GRU trunk over ``h`` ``(batch, frames, channels)`` from ``state`` ``(batch, layers, channels)``."""
        if h.shape[1] == 1:  # one hop on a GPU or with gradients: one cell per layer (the same values as the GRU, less overhead)
            out, layers = h.squeeze(1), []
            for layer in range(self.config.gru_layers):
                weights = [getattr(self.gru, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                out = torch.gru_cell(out, state.select(1, layer), *weights)
                layers.append(out)
            return out.unsqueeze(1), torch.stack(layers, dim=1)
        h, last = self.gru(h, state.transpose(0, 1).contiguous())
        return h, last.transpose(0, 1)

    def _overlap_add(self, frames_out: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
        """``frames_out`` ``(batch, frames, outputs, fft)`` summed at their hops onto the previous call's ``tail``
        ``(batch, outputs, overlap)``: ``(batch, outputs, frames * hop + overlap)``."""
        batch, frames, outputs, fft = frames_out.shape
        hop = self.config.hop_samples
        if frames == 1:  # one hop on a GPU or with gradients: one shifted sum (the same values as the fold)
            return F.pad(tail, (0, hop)) + frames_out.squeeze(1)
        total = F.fold(frames_out.permute(0, 2, 3, 1).reshape(batch * outputs, fft, frames),
                       (1, (frames - 1) * hop + fft), (1, fft), stride=(1, hop)).view(batch, outputs, -1)
        total.narrow(-1, 0, fft - hop).add_(tail)
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Offline: ``x`` ``(batch, 1, time)`` -> ``(batch, 2, time)`` (denoised, dereverberated), aligned with ``x``."""
        return stream_whole(self, x)


def widen_state(narrow: Mapping[str, torch.Tensor], narrow_config: DFNetConfig, wide: DFNet) -> dict[str, torch.Tensor]:
    """``wide``'s state with ``narrow``'s weights in it, computing the same function (Net2Net-style widening).

    Only ``channels`` may differ. The narrow trunk's rows and columns are copied into the wide one; the
    new units keep ``wide``'s own initial weights on their inputs, and every weight that reads a new unit
    (the GRU's inputs and recurrences of the old units, the gain and filter heads) starts at zero, so
    the outputs are unchanged until training moves those weights off zero.
    """
    old, new = narrow_config.channels, wide.config.channels
    if replace(narrow_config, channels=new) != wide.config or new < old:
        raise ValueError(f"widening needs the same DFNet config with channels >= {old}; got {wide.config}")
    state = {name: tensor.clone() for name, tensor in wide.state_dict().items()}

    def put(name: str, rows: list[tuple[int, int]], columns: int | None) -> None:
        """Copy ``narrow[name]`` into ``state[name]``: row block i of the narrow goes to ``rows[i]`` (start,
        size); with ``columns``, the old columns are copied and the new ones zeroed for the old rows."""
        source, target = narrow[name], state[name]
        start_narrow = 0
        for start, size in rows:
            block = source[start_narrow : start_narrow + size]
            if columns is None:
                target[start : start + size] = block
            else:
                target[start : start + size, :columns] = block
                target[start : start + size, columns:] = 0
            start_narrow += size

    put("input.weight", [(0, old)], None)
    put("input.bias", [(0, old)], None)
    gates = [(gate * new, old) for gate in range(3)]  # the GRU stacks its reset, update and new gates
    for layer in range(narrow_config.gru_layers):
        put(f"gru.weight_ih_l{layer}", gates, old)  # layer 0 reads the (widened) input conv
        put(f"gru.weight_hh_l{layer}", gates, old)
        put(f"gru.bias_ih_l{layer}", gates, None)
        put(f"gru.bias_hh_l{layer}", gates, None)
    for head in ("gains", "filters"):
        state[f"{head}.weight"][:, :old] = narrow[f"{head}.weight"]
        state[f"{head}.weight"][:, old:] = 0
        state[f"{head}.bias"] = narrow[f"{head}.bias"].clone()
    return state


def lengthen_filters(short: Mapping[str, torch.Tensor], short_config: DFNetConfig, long: DFNet) -> dict[str, torch.Tensor]:
    """``long``'s state with ``short``'s weights in it, computing the same function: only ``df_order`` may grow.

    Each old tap keeps its place relative to the newest frame it reaches; the new taps reach further into the
    past and start with zero weights and bias (``tanh(0) = 0``: they add nothing until training moves them).
    """
    old, new = short_config.df_order, long.config.df_order
    if replace(short_config, df_order=new) != long.config or new < old:
        raise ValueError(f"lengthening needs the same DFNet config with df_order >= {old}; got {long.config}")
    state = {name: tensor.clone() for name, tensor in short.items()}
    outputs, bins = len(long.output_names), short_config.df_bins
    for name in ("filters.weight", "filters.bias"):
        taps = short[name].unflatten(0, (outputs, old, bins * 2))
        grown = taps.new_zeros((outputs, new, bins * 2) + taps.shape[3:])
        grown[:, new - old :] = taps
        state[name] = grown.flatten(0, 2)
    return state
