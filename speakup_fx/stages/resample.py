"""Rate change inside the engine (48 kHz <-> 16 kHz around the neural enhancer) with a fixed latency."""

from __future__ import annotations

import numpy as np

from speakup_fx.dsp.resample import StreamingResampler
from speakup_fx.stages.base import Stage, hop_frames


class ResampleStage(Stage):
    """Band-limited resampling that returns exactly one output hop per input hop.

    The output is delayed by the fewest whole output frames that make every
    hop's output ready when the hop arrives, so ``latency_samples`` is fixed.
    """

    def __init__(self, channels: int, input_sample_rate: int, output_sample_rate: int) -> None:
        super().__init__(channels)
        self.input_sample_rate = int(input_sample_rate)
        self.output_sample_rate = int(output_sample_rate)
        self._hop_in = hop_frames(self.input_sample_rate)
        self._hop_out = hop_frames(self.output_sample_rate)
        probe = StreamingResampler(channels, self.input_sample_rate, self.output_sample_rate)
        ticks_per_input, ticks_per_output = probe.ticks_per_input, probe.ticks_per_output
        # Output hop h is ready after input hop h once delay_ticks >= L * lookahead + 1 - M (see outputs_after).
        needed_ticks = ticks_per_input * probe.lookahead_frames + 1 - ticks_per_output
        self._latency_samples = max(0, -(-needed_ticks // ticks_per_output))
        self._resampler = StreamingResampler(
            channels, self.input_sample_rate, self.output_sample_rate, self._latency_samples * ticks_per_output
        )

    @property
    def latency_samples(self) -> int:
        return self._latency_samples

    def process(self, block: np.ndarray) -> np.ndarray:
        hops, rest = divmod(block.shape[1], self._hop_in)
        if rest or block.shape[0] != self.channels:
            raise ValueError(f"block must be ({self.channels}, k * {self._hop_in}) frames, got {block.shape}")
        out = self._resampler.process(block)
        if out.shape[1] != hops * self._hop_out:
            raise RuntimeError(f"resampler returned {out.shape[1]} frames for {hops} hops (internal error)")
        return out

    def reset(self) -> None:
        self._resampler.reset()
