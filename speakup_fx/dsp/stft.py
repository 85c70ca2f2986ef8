"""Streaming STFT with perfect reconstruction: sqrt-Hann analysis and synthesis windows, hop = n_fft / 4.

Each hop of input yields one frame (the last ``n_fft`` samples); overlap-add of the
unmodified frames returns the input delayed by ``n_fft - hop`` samples.
"""

from __future__ import annotations

import numpy as np
from scipy import fft


def sqrt_hann_window(n_fft: int) -> np.ndarray:
    """Periodic sqrt-Hann window ``(n_fft,)`` float64: its square overlap-adds to a constant at hop n_fft / 4."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))


class StreamingStft:
    """Analysis and overlap-add synthesis of ``(channels, hops * hop)`` blocks, one frame per hop.

    ``analyse`` returns ``(channels, hops, n_fft // 2 + 1)`` complex spectra; ``synthesise`` of
    those same spectra returns the input delayed by ``latency_samples``.
    """

    def __init__(self, channels: int, n_fft: int = 1920, hop: int = 480) -> None:
        if n_fft % hop or n_fft // hop < 2:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple (>= 2) of hop ({hop})")
        self.channels = channels
        self.n_fft = n_fft
        self.hop = hop
        self.window = sqrt_hann_window(n_fft)
        self._synthesis_window = self.window * (2 * hop / n_fft)
        self._input = np.zeros((channels, n_fft - hop))
        self._overlap = np.zeros((channels, n_fft - hop))

    @property
    def latency_samples(self) -> int:
        """Delay from analysis input to synthesis output, in samples."""
        return self.n_fft - self.hop

    def analyse(self, block: np.ndarray) -> np.ndarray:
        """Spectra ``(channels, hops, bins)`` of the frames ending at each hop of ``block``."""
        hops = block.shape[-1] // self.hop
        if block.shape[-1] != hops * self.hop:
            raise ValueError(f"block: expected a multiple of {self.hop} frames, got {block.shape[-1]}")
        buffer = np.concatenate([self._input, block], axis=-1)
        self._input = buffer[:, buffer.shape[-1] - self._input.shape[-1] :]
        frames = np.lib.stride_tricks.sliding_window_view(buffer, self.n_fft, axis=-1)[:, :: self.hop]
        return fft.rfft(frames * self.window, axis=-1)

    def synthesise(self, spectra: np.ndarray) -> np.ndarray:
        """Overlap-add ``spectra`` ``(channels, hops, bins)``; returns ``(channels, hops * hop)`` float64."""
        channels, hops, _ = spectra.shape
        frames = fft.irfft(spectra, n=self.n_fft, axis=-1) * self._synthesis_window
        tail = self.n_fft - self.hop
        out = np.zeros((channels, hops * self.hop + tail))
        out[:, :tail] = self._overlap
        for segment in range(self.n_fft // self.hop):
            start = segment * self.hop
            out[:, start : start + hops * self.hop] += frames[:, :, start : start + self.hop].reshape(channels, -1)
        self._overlap = out[:, hops * self.hop :].copy()
        return out[:, : hops * self.hop]

    def reset(self) -> None:
        """Clear the analysis history and the overlap-add tail."""
        self._input[:] = 0.0
        self._overlap[:] = 0.0
