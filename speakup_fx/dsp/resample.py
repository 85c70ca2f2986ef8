"""Streaming band-limited resampling between integer sample rates: the project's one resampler.

A rational polyphase resampler with a Kaiser-windowed sinc kernel and carried
state. Every output frame is computed from a fixed window of input frames with
a weight row chosen by its exact rational phase, so the output stream does not
depend on how the input is split into calls, and how many frames are ready
after ``n`` input frames is a pure function of ``n`` (``outputs_after``), which
lets callers plan fixed latencies exactly.

Time is counted in integer *ticks* of ``1 / lcm(input_sample_rate,
output_sample_rate)`` seconds: input frame ``i`` sits at tick ``i * L`` and
output frame ``k`` at tick ``k * M - delay_ticks``, where ``L / M`` is the
reduced ratio ``output_sample_rate / input_sample_rate``. With
``delay_ticks == 0`` the output is time-aligned with the input (zero phase);
frames wait only for the kernel's look-ahead.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000

ZERO_CROSSINGS = 32
"""Sinc zero crossings on each side of the kernel centre."""

ROLLOFF = 0.92
"""Kernel cutoff as a fraction of the lower rate's Nyquist frequency (flat to ~0.86 of it)."""

KAISER_BETA = 8.0
"""Kaiser window shape: about 80 dB of stop-band rejection with ``ZERO_CROSSINGS``."""

MAX_TABLE_ENTRIES = 1 << 22
"""A ratio's weight rows are tabulated (and shared) when phases * taps fit this, else computed per block."""

OUTPUTS_PER_PRODUCT = 1024
"""Output frames weighed in one product: the (outputs, taps) temporaries stay in cache (2-4x faster on long blocks
than one product for the whole block), and each frame's sum is the same whatever the chunk."""


def check_sample_rate(sample_rate: object) -> int:
    """Return ``sample_rate`` as an int, or raise ``ValueError`` unless it is a whole number in [8000, 192000] Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise ValueError(f"sample_rate: expected a number of Hz, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate != int(sample_rate):
        raise ValueError(f"sample_rate: expected a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate: {sample_rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz")
    return int(sample_rate)


class StreamingResampler:
    """Resample float32 ``(channels, frames)`` blocks from ``input_sample_rate`` to ``output_sample_rate``.

    ``process`` returns every output frame whose kernel window is complete, so
    the number returned per call varies; the concatenated output does not
    depend on the call split. ``delay_ticks`` (>= 0) delays the output by
    ``delay_ticks / M`` output frames, possibly a fraction of one.
    """

    def __init__(self, channels: int, input_sample_rate: int, output_sample_rate: int, delay_ticks: int = 0) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if delay_ticks < 0:
            raise ValueError(f"delay_ticks must be >= 0, got {delay_ticks}")
        self.channels = channels
        self.input_sample_rate = check_sample_rate(input_sample_rate)
        self.output_sample_rate = check_sample_rate(output_sample_rate)
        common = math.gcd(self.input_sample_rate, self.output_sample_rate)
        self.ticks_per_input = self.output_sample_rate // common  # L
        self.ticks_per_output = self.input_sample_rate // common  # M
        self.delay_ticks = int(delay_ticks)
        self._kernel = _Kernel.for_rates(self.input_sample_rate, self.output_sample_rate)
        self._first_tap, self._taps = self._kernel.first_tap, self._kernel.taps
        self.reset()

    @property
    def lookahead_frames(self) -> int:
        """Input frames after an output frame's position that its kernel window needs."""
        return self._first_tap + self._taps - 1

    def outputs_after(self, input_frames: int | np.ndarray) -> int | np.ndarray:
        """How many output frames are ready once ``input_frames`` frames have been given (vectorised)."""
        n = np.asarray(input_frames, dtype=np.int64)
        ready = (self.ticks_per_input * (n - self.lookahead_frames) - 1 + self.delay_ticks) // self.ticks_per_output + 1
        ready = np.maximum(ready, 0)
        return int(ready) if ready.ndim == 0 else ready

    def reset(self) -> None:
        """Forget all input, as if newly constructed."""
        self._inputs = 0
        self._next_output = 0
        self._buffer_start = self._window_start(0)
        self._buffer = np.zeros((self.channels, -self._buffer_start), np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take ``(channels, frames)`` input; return the output frames that became ready, ``(channels, k)``."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"block must be shaped ({self.channels}, frames), got {block.shape}")
        self._buffer = np.concatenate([self._buffer, block.astype(np.float32, copy=False)], axis=1)
        self._inputs += block.shape[1]
        ready = self.outputs_after(self._inputs)
        if ready == self._next_output:
            return np.zeros((self.channels, 0), np.float32)
        outputs = np.arange(self._next_output, ready, dtype=np.int64)
        phases = (outputs * self.ticks_per_output - self.delay_ticks) % self.ticks_per_input
        starts = self._window_start(outputs) - self._buffer_start
        windows = sliding_window_view(self._buffer, self._taps, axis=1)
        out = np.empty((self.channels, len(outputs)), np.float32)
        for first in range(0, len(outputs), OUTPUTS_PER_PRODUCT):
            chunk = slice(first, first + OUTPUTS_PER_PRODUCT)
            out[:, chunk] = (windows[:, starts[chunk]] * self._kernel.weights(phases[chunk])).sum(axis=2)
        self._next_output = ready
        keep_from = self._window_start(ready) - self._buffer_start
        self._buffer = self._buffer[:, keep_from:]
        self._buffer_start += keep_from
        return out

    def _window_start(self, outputs: int | np.ndarray) -> int | np.ndarray:
        """Index of the first input frame in the kernel window of output frame(s) ``outputs``."""
        return (outputs * self.ticks_per_output - self.delay_ticks) // self.ticks_per_input + self._first_tap


class _Kernel:
    """The windowed-sinc weight rows of one rate ratio, one row per phase (ticks past an input frame)."""

    def __init__(self, input_sample_rate: int, output_sample_rate: int) -> None:
        common = math.gcd(input_sample_rate, output_sample_rate)
        self.phases = output_sample_rate // common
        if input_sample_rate == output_sample_rate:  # the kernel is a unit impulse
            self.cutoff, self.first_tap, self.taps = 1.0, 0, 1
        else:
            self.cutoff = ROLLOFF * min(1.0, output_sample_rate / input_sample_rate)
            half_width = math.ceil(ZERO_CROSSINGS / self.cutoff)
            self.first_tap, self.taps = 1 - half_width, 2 * half_width
        self._table = None
        if self.phases * self.taps <= MAX_TABLE_ENTRIES:
            self._table = self._compute(np.arange(self.phases))
            self._table.setflags(write=False)

    @staticmethod
    @lru_cache(maxsize=16)
    def for_rates(input_sample_rate: int, output_sample_rate: int) -> _Kernel:
        """The shared kernel of a rate pair."""
        return _Kernel(input_sample_rate, output_sample_rate)

    def weights(self, phases: np.ndarray) -> np.ndarray:
        """Weight rows ``(len(phases), taps)`` float32; each row sums to 1."""
        return self._table[phases] if self._table is not None else self._compute(phases)

    def _compute(self, phases: np.ndarray) -> np.ndarray:
        if self.taps == 1:
            return np.ones((len(phases), 1), np.float32)
        offsets = np.arange(self.first_tap, self.first_tap + self.taps)
        distance = phases[:, None] / self.phases - offsets[None, :]  # input frames from each tap to the position
        half_width = self.taps // 2
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (distance / half_width) ** 2, 0.0, 1.0)))
        kernel = np.sinc(self.cutoff * distance) * window
        return (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)


RESAMPLE_CHUNK_S = 1.0
"""``resample`` feeds the streaming resampler this much input at a time (bounds its working memory)."""


def resample(audio: np.ndarray, input_sample_rate: int, output_sample_rate: int) -> np.ndarray:
    """A whole signal, 1-D or ``(channels, frames)``, at ``output_sample_rate``: time-aligned, float32.

    The output has ``ceil(frames * output_sample_rate / input_sample_rate)`` frames (as the engine): the same
    resampler, and so the same band edge, as the engine's streaming path.
    """
    signal = np.asarray(audio, dtype=np.float32)
    planar = signal[None] if signal.ndim == 1 else signal
    if planar.ndim != 2:
        raise ValueError(f"audio must be 1-D or (channels, frames), got shape {signal.shape}")
    resampler = StreamingResampler(planar.shape[0], input_sample_rate, output_sample_rate)
    frames = -(-planar.shape[1] * resampler.output_sample_rate // resampler.input_sample_rate)
    chunk = max(1, int(RESAMPLE_CHUNK_S * resampler.input_sample_rate))
    pieces = [resampler.process(planar[:, start : start + chunk]) for start in range(0, planar.shape[1], chunk)]
    pieces.append(resampler.process(np.zeros((planar.shape[0], resampler.lookahead_frames + 1), np.float32)))
    out = np.concatenate(pieces, axis=1)[:, :frames]
    return out[0] if signal.ndim == 1 else out
