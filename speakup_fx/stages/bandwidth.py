"""Bandwidth extension inside the 48 kHz section: adds a predicted high band only where the input has none.

The input goes to 16 kHz (the engine's resampler), through the hosted ``bandwidth_extension`` model,
whose ``high_band`` output (nothing below the model's crossover) is added to the input itself,
delayed to match. So the band the input had passes through exactly, and the added band is scaled by
a gate that follows the input's own energy above ``DETECT_HZ`` (Hann-windowed FFT of each hop, whose
leakage from the band below stays under -90 dB): on loud hops whose high band is more
than ``FULL_BAND_RATIO_DB`` below their total, the input is band-limited and the gate opens; one loud
hop with a high band closes it, and it reopens only after ``REOPEN_HOPS`` band-limited loud hops in a
row. Quiet hops hold the decision. The gate is decided on the undelayed input, so it has the stage's
whole latency as look-ahead, and glides linearly over one hop.
"""

from __future__ import annotations

import numpy as np

from speakup_fx.runtime.host import ModelHost
from speakup_fx.runtime.batching import Steps
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HostedStage, hop_frames
from speakup_fx.stages.neural import ModelStage
from speakup_fx.stages.resample import ResampleStage

BANDWIDTH_EXTENSION_KIND = "bandwidth_extension"

DETECT_HZ = 9_000.0
"""The input's energy above this frequency tells full-band content from band-limited content."""

FULL_BAND_RATIO_DB = -60.0
"""A loud hop whose energy above ``DETECT_HZ`` is above this, relative to its total, is full-band."""

LOUD_HOP_DBFS = -70.0
"""Hops quieter than this (mean square, dBFS) do not change the decision."""

REOPEN_HOPS = 50
"""Band-limited loud hops in a row (0.5 s) after full-band content before the gate opens again."""


class BandwidthExtensionStage(HostedStage):
    """48 kHz in and out: the input plus the model's high band wherever the input lacks one."""

    def __init__(self, channels: int, host: ModelHost, weights: str | None = None) -> None:
        super().__init__(channels)
        self.input_sample_rate = self.output_sample_rate = ENGINE_SAMPLE_RATE
        self._to_model = ResampleStage(channels, ENGINE_SAMPLE_RATE, 16_000)
        self._model = ModelStage(channels, host, BANDWIDTH_EXTENSION_KIND, "high_band", weights)
        if self._model.input_sample_rate != 16_000 or self._model.output_sample_rate != ENGINE_SAMPLE_RATE:
            raise ValueError(f"{BANDWIDTH_EXTENSION_KIND} model must take 16000 Hz and give {ENGINE_SAMPLE_RATE} Hz")
        factor = ENGINE_SAMPLE_RATE // 16_000
        self._latency_samples = factor * self._to_model.latency_samples + self._model.latency_samples
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._window = np.hanning(self._hop).astype(np.float32)
        self._above = np.fft.rfftfreq(self._hop, 1 / ENGINE_SAMPLE_RATE) >= DETECT_HZ
        self.reset()

    @property
    def latency_samples(self) -> int:
        return self._latency_samples

    @property
    def gate(self) -> float:
        """The gain of the added band now (1 = band-limited input, 0 = full-band input)."""
        return self._gate

    def prepare(self) -> None:
        self._model.prepare()

    def reset(self) -> None:
        self._to_model.reset()
        self._model.reset()
        self._dry = np.zeros((self.channels, self._latency_samples), np.float32)
        self._gate = 1.0
        self._limited_run = REOPEN_HOPS

    def steps(self, block: np.ndarray) -> Steps[np.ndarray]:
        hops, rest = divmod(block.shape[1], self._hop)
        if rest or block.shape[0] != self.channels:
            raise ValueError(f"block must be ({self.channels}, k * {self._hop}) frames, got {block.shape}")
        high_band = yield from self._model.steps(self._to_model.process(block))
        gains = self._gains(block, hops)
        joined = np.concatenate([self._dry, block], axis=1)
        self._dry = joined[:, block.shape[1] :]
        return joined[:, : block.shape[1]] + gains * high_band

    def _gains(self, block: np.ndarray, hops: int) -> np.ndarray:
        """Per-frame gate ``(frames,)``: decided per hop from the undelayed input, gliding over each hop."""
        power = np.abs(np.fft.rfft(block.reshape(self.channels, hops, self._hop) * self._window, axis=-1)) ** 2
        total = power.sum(axis=(0, 2)) / (self.channels * self._hop * np.square(self._window).mean())
        above = power[..., self._above].sum(axis=(0, 2)) / (self.channels * self._hop * np.square(self._window).mean())
        ramp = np.arange(1, self._hop + 1, dtype=np.float32) / self._hop
        gains = np.empty((hops, self._hop), np.float32)
        for h in range(hops):
            if total[h] > 10 ** (LOUD_HOP_DBFS / 10):
                full_band = above[h] > total[h] * 10 ** (FULL_BAND_RATIO_DB / 10)
                self._limited_run = 0 if full_band else self._limited_run + 1
            target = 1.0 if self._limited_run >= REOPEN_HOPS else 0.0
            gains[h] = self._gate + (target - self._gate) * ramp
            self._gate = target
        return gains.reshape(-1)
