"""Loudness and true peak after ITU-R BS.1770-4: K-weighting, gated integrated loudness, 4x true peak.

``LoudnessMeter`` measures a stream in bounded memory (one float per 100 ms step);
``integrated_loudness_lufs`` is the same meter run over a whole array. Channels are
weighted 1.0 (mono and stereo; surround weighting is not implemented). Non-finite samples
are an error, never read as silence: ``-inf`` means that nothing passed the gates.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import fft
from scipy.signal import firwin

from speakup_fx.dsp.biquad import SosFilter

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_STEPS = 4
"""A gating block is 400 ms: four 100 ms steps (75 % overlap)."""
STEP_S = 0.1
TRUE_PEAK_OVERSAMPLING = 4
TRUE_PEAK_HALF_TAPS = 16
"""Taps either side of the interpolated point, per phase, of the true-peak interpolator."""
TRUE_PEAK_MAX_FFT = 8192
"""The true-peak interpolator convolves by FFT in pieces of at most this many points."""
TRUE_PEAK_FFTS_PER_CALL = 8
"""Pieces transformed together, which bounds the working memory for long blocks."""


def _as_channels(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2 or not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{name}: expected float (channels, frames) or (frames,), got {audio.dtype} {audio.shape}")
    return audio


def _check_rate(sample_rate: int) -> int:
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise ValueError(f"sample_rate: expected an integer >= 8000 Hz, got {sample_rate!r}")
    return int(sample_rate)


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """The BS.1770 K-weighting (high shelf + RLB high-pass) at ``sample_rate`` as ``(2, 6)`` sos.

    Designed from the analogue prototype (the libebur128 parameters), so at 48 kHz it
    reproduces the coefficients tabulated in BS.1770-4.
    """
    k = math.tan(math.pi * 1681.974450955533 / sample_rate)
    gain = 10 ** (3.999843853973347 / 20)
    gain_mid = gain**0.4996667741545416
    q = 0.7071752369554196
    a0 = 1 + k / q + k * k
    shelf = [(gain + gain_mid * k / q + k * k) / a0, 2 * (k * k - gain) / a0, (gain - gain_mid * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    k = math.tan(math.pi * 38.13547087602444 / sample_rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


class LoudnessMeter:
    """Streaming integrated loudness (BS.1770-4 gating) of any-length blocks ``(channels, frames)``.

    Memory holds one mean-square value per 100 ms step (``round(0.1 * sample_rate)`` frames),
    from which the overlapping 400 ms gating blocks are formed.
    """

    def __init__(self, channels: int, sample_rate: int) -> None:
        self.sample_rate = _check_rate(sample_rate)
        if channels < 1:
            raise ValueError(f"channels: expected >= 1, got {channels}")
        self.channels = channels
        self._filter = SosFilter(k_weighting_sos(self.sample_rate), channels)
        self._step_frames = round(STEP_S * self.sample_rate)
        self._steps: list[float] = []
        self._partial_sum = 0.0
        self._partial_frames = 0

    def add(self, block: np.ndarray) -> None:
        """Measure the next ``block`` (``(channels, frames)``; 1-D is mono); ``ValueError`` if it is not finite."""
        block = _as_channels(block, "block")
        if block.shape[0] != self.channels:
            raise ValueError(f"block: expected {self.channels} channels, got {block.shape[0]}")
        weighted = self._filter.process(block.astype(np.float64))
        energy = np.sum(weighted * weighted, axis=0)
        if not math.isfinite(float(energy.sum())):  # float64 energy of float samples overflows only if not finite
            raise ValueError("block: NaN or infinite samples have no loudness")
        need = self._step_frames - self._partial_frames
        if energy.size < need:
            self._partial_sum += float(energy.sum())
            self._partial_frames += energy.size
            return
        self._steps.append((self._partial_sum + float(energy[:need].sum())) / self._step_frames)
        rest = energy[need:]
        full = rest.size // self._step_frames
        sums = rest[: full * self._step_frames].reshape(full, self._step_frames).sum(axis=1)
        self._steps.extend((sums / self._step_frames).tolist())
        tail = rest[full * self._step_frames :]
        self._partial_sum = float(tail.sum())
        self._partial_frames = tail.size

    @property
    def measurable(self) -> bool:
        """Whether one 400 ms gating block has been added (shorter signals have no integrated loudness)."""
        return len(self._steps) >= BLOCK_STEPS

    def integrated_lufs(self, absolute_gate_lufs: float = ABSOLUTE_GATE_LUFS) -> float:
        """Gated integrated loudness of everything added so far; ``-inf`` when no block passes the gates.

        ``absolute_gate_lufs=-math.inf`` keeps every block that is not digitally silent (after
        K-weighting) for the relative gate: the loudness of audio quieter than the standard's gate.
        """
        steps = np.asarray(self._steps)
        if steps.size < BLOCK_STEPS:
            return -math.inf
        blocks = np.lib.stride_tricks.sliding_window_view(steps, BLOCK_STEPS).mean(axis=1)
        gated = blocks[blocks > 10 ** ((absolute_gate_lufs + 0.691) / 10)]
        if gated.size == 0:
            return -math.inf
        relative_gate = gated.mean() * 10 ** (RELATIVE_GATE_LU / 10)
        gated = gated[gated > relative_gate]
        return -0.691 + 10 * math.log10(gated.mean())

    def reset(self) -> None:
        """Forget everything measured."""
        self._filter.reset()
        self._steps.clear()
        self._partial_sum = 0.0
        self._partial_frames = 0


def integrated_loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, BS.1770-4) of ``audio`` ``(channels, frames)``; ``-inf`` if all gated."""
    audio = _as_channels(audio)
    meter = LoudnessMeter(audio.shape[0], sample_rate)
    meter.add(audio)
    return meter.integrated_lufs()


def _true_peak_phases() -> np.ndarray:
    """Polyphase interpolator ``(4, 2 * half_taps + 1)``: phase ``p`` estimates ``x(n - half_taps + p / 4)``.

    A Kaiser-windowed sinc with its cutoff at the input Nyquist, so phase 0 returns the samples exactly.
    """
    factor, half = TRUE_PEAK_OVERSAMPLING, TRUE_PEAK_HALF_TAPS
    prototype = factor * firwin(2 * half * factor + 1, 1.0 / factor, window=("kaiser", 8.0), scale=False)
    phases = np.zeros((factor, 2 * half + 1))
    for p in range(factor):
        taps = prototype[p::factor]
        phases[p, : taps.size] = taps
    return phases


_PHASES = _true_peak_phases()


@lru_cache(maxsize=32)
def _phase_spectra(n_fft: int) -> np.ndarray:
    """Spectra ``(3, 1, 1, n_fft // 2 + 1)`` of the interpolator's fractional phases 1-3."""
    spectra = fft.rfft(_PHASES[1:], n_fft, axis=-1)[:, None, None, :]
    spectra.setflags(write=False)
    return spectra


def _fractional_peaks(windows: np.ndarray, n_fft: int, history: int) -> np.ndarray:
    """Largest absolute value of phases 1-3 over channels, for ``windows`` ``(channels, pieces, history + length)``.

    Each window starts with ``history`` frames of context; returns ``(pieces * length,)``.
    """
    spectra = fft.rfft(windows, n_fft, axis=-1)[None] * _phase_spectra(n_fft)
    interpolated = fft.irfft(spectra, n_fft, axis=-1)[..., history : windows.shape[-1]]
    return np.abs(interpolated).max(axis=(0, 1)).reshape(-1)


class TruePeakDetector:
    """Streaming 4x-oversampled peak envelope of ``(channels, frames)`` blocks, linked over channels.

    ``process`` returns, for each input frame ``n``, the largest absolute interpolated value
    in ``[n - delay_samples, n - delay_samples + 1)`` over all channels. Phase 0 is the sample
    itself (delayed); phases 1-3 are convolved by FFT, overlap-save, in float64, which matches a
    direct convolution to rounding (~1e-16) and is several times faster for any block size.
    """

    delay_samples = TRUE_PEAK_HALF_TAPS

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._history = np.zeros((channels, _PHASES.shape[1] - 1))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Peak envelope ``(frames,)`` float64 of ``block`` ``(channels, frames)``."""
        history = self._history.shape[1]
        frames = block.shape[-1]
        x = np.concatenate([self._history, block], axis=1)
        self._history = x[:, frames:].copy()
        peak = np.abs(x[:, TRUE_PEAK_HALF_TAPS : TRUE_PEAK_HALF_TAPS + frames]).max(axis=0, initial=0.0)
        if frames + history <= TRUE_PEAK_MAX_FFT:  # one piece
            n_fft = fft.next_fast_len(frames + history, real=True)
            np.maximum(peak, _fractional_peaks(x[:, None, :], n_fft, history), out=peak)
            return peak
        length = TRUE_PEAK_MAX_FFT - history
        step = TRUE_PEAK_FFTS_PER_CALL * length
        for start in range(0, frames, step):
            piece = x[:, start : start + step + history]
            valid = piece.shape[1] - history
            pieces = -(-valid // length)
            piece = np.pad(piece, ((0, 0), (0, pieces * length - valid)))
            windows = np.lib.stride_tricks.sliding_window_view(piece, length + history, axis=-1)[:, ::length]
            fractional = _fractional_peaks(windows, TRUE_PEAK_MAX_FFT, history)[:valid]
            np.maximum(peak[start : start + valid], fractional, out=peak[start : start + valid])
        return peak

    def reset(self) -> None:
        """Clear the interpolator's state."""
        self._history[:] = 0.0


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """True peak (dBTP) of ``audio`` ``(channels, frames)``: the largest 4x-oversampled absolute value.

    Returns ``-inf`` for digital silence; ``ValueError`` for non-finite samples.
    """
    audio = _as_channels(audio)
    _check_rate(sample_rate)
    if not np.isfinite(audio).all():
        raise ValueError("audio: NaN or infinite samples have no true peak")
    detector = TruePeakDetector(audio.shape[0])
    tail = np.zeros((audio.shape[0], TRUE_PEAK_HALF_TAPS + 1))
    peak = float(detector.process(np.concatenate([audio.astype(np.float64), tail], axis=1)).max(initial=0.0))
    return 20 * math.log10(peak) if peak > 0 else -math.inf
