"""Before/after figures of a bounce: streaming loudness, true peak and a bounded-memory spectrogram, drawn to PNG."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np

from speakup_fx.atomic import atomic_write
from speakup_fx.dsp.loudness import ABSOLUTE_GATE_LUFS, TRUE_PEAK_HALF_TAPS, LoudnessMeter, TruePeakDetector

SPECTROGRAM_COLUMNS = 600
"""A sketch keeps between this many and twice this many time columns, whatever the length."""


class SignalSummary:
    """Integrated loudness, true peak and (optionally) a spectrogram sketch of a signal seen block by block."""

    def __init__(self, sample_rate: int, channels: int, spectrogram: bool = False) -> None:
        self.sample_rate = sample_rate
        self.frames = 0
        self._meter = LoudnessMeter(channels, sample_rate)
        self._peak_detector = TruePeakDetector(channels)
        self._peak = 0.0
        self.sample_peak = 0.0
        """Largest absolute sample so far: 0 for digital silence."""
        self.spectrogram = SpectrogramSketch(sample_rate) if spectrogram else None

    def add(self, block: np.ndarray) -> None:
        """Take the next float32 ``(channels, frames)`` block; ``ValueError`` if it is not finite."""
        self._meter.add(block)
        self.frames += block.shape[1]
        self.sample_peak = max(self.sample_peak, float(np.abs(block).max(initial=0.0)))
        self._peak = max(self._peak, float(self._peak_detector.process(block).max(initial=0.0)))
        if self.spectrogram is not None:
            self.spectrogram.add(block)

    def integrated_lufs(self, absolute_gate_lufs: float = ABSOLUTE_GATE_LUFS) -> float:
        """BS.1770 integrated loudness so far; -inf when no block passes the gates (silent, very quiet or < 400 ms).

        ``absolute_gate_lufs``: see ``LoudnessMeter.integrated_lufs``.
        """
        return self._meter.integrated_lufs(absolute_gate_lufs)

    @property
    def measurable(self) -> bool:
        """Whether the signal is long enough (400 ms) to have an integrated loudness."""
        return self._meter.measurable

    def true_peak_dbtp(self) -> float:
        """Highest true peak (4x oversampled) so far; -inf when silent."""
        tail = np.zeros((self._peak_detector.channels, TRUE_PEAK_HALF_TAPS + 1))
        flush = copy.deepcopy(self._peak_detector).process(tail)
        peak = max(self._peak, float(flush.max()))
        return 20 * math.log10(peak) if peak > 0 else -math.inf


class SpectrogramSketch:
    """Power spectrogram of the channel mean, averaged into at most ``2 * SPECTROGRAM_COLUMNS`` columns.

    Frames of ``n_fft`` samples (about 43 ms, Hann, no overlap) are averaged
    ``frames_per_column`` at a time; when the columns reach twice the limit,
    neighbours are merged and ``frames_per_column`` doubles, so memory stays
    bounded for any length.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = 1 << max(8, round(math.log2(sample_rate * 0.043)))
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._pending = np.zeros(0, np.float32)
        self._columns: list[np.ndarray] = []
        self._sum = np.zeros(self.n_fft // 2 + 1)
        self._count = 0
        self.frames_per_column = 1

    def add(self, block: np.ndarray) -> None:
        mono = np.concatenate([self._pending, block.mean(axis=0)])
        whole = mono.size // self.n_fft * self.n_fft
        self._pending = mono[whole:]
        if not whole:
            return
        frames = mono[:whole].reshape(-1, self.n_fft) * self._window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        for row in power:
            self._sum += row
            self._count += 1
            if self._count == self.frames_per_column:
                self._columns.append((self._sum / self._count).astype(np.float32))
                self._sum = np.zeros_like(self._sum)
                self._count = 0
                if len(self._columns) >= 2 * SPECTROGRAM_COLUMNS:
                    self._columns = [(a + b) / 2 for a, b in zip(self._columns[::2], self._columns[1::2])]
                    self.frames_per_column *= 2

    def image(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(times_s, frequencies_hz, power_db)`` with ``power_db`` shaped ``(frequencies, times)``."""
        columns = list(self._columns)
        if self._count:
            columns.append((self._sum / self._count).astype(np.float32))
        if not columns:
            columns = [np.zeros(self.n_fft // 2 + 1, np.float32)]
        power = np.stack(columns, axis=1)
        column_s = self.frames_per_column * self.n_fft / self.sample_rate
        times_s = (np.arange(power.shape[1]) + 0.5) * column_s
        frequencies_hz = np.fft.rfftfreq(self.n_fft, 1 / self.sample_rate)
        scale = (self._window.sum() ** 2) / 4  # a full-scale sine reads about 0 dB
        return times_s, frequencies_hz, 10 * np.log10(power / scale + 1e-12)


def write_report(path: str | os.PathLike[str], before: SignalSummary, after: SignalSummary, title: str) -> None:
    """Draw before/after spectrograms with loudness and true-peak figures to a PNG (written atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(11, 7), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    axes = figure.subplots(2, 1, sharex=True)
    for ax, summary, label in zip(axes, (before, after), ("before", "after")):
        ax.set_title(
            f"{label}: {_format(summary.integrated_lufs())} LUFS integrated, "
            f"{_format(summary.true_peak_dbtp())} dBTP true peak, {summary.sample_rate} Hz"
        )
        if summary.spectrogram is not None:
            times_s, frequencies_hz, power_db = summary.spectrogram.image()
            mesh = ax.pcolormesh(
                times_s, frequencies_hz / 1000, power_db, shading="nearest", cmap="magma", vmin=-100, vmax=0
            )
            figure.colorbar(mesh, ax=ax, label="power (dBFS)")
        ax.set_ylabel("frequency (kHz)")
    axes[-1].set_xlabel("time (s)")
    with atomic_write(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def _format(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "-inf"
