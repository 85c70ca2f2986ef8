"""De-hum: detects 50 or 60 Hz mains hum in the signal and notches its fundamental and harmonics.

Detection: each hop, the mono signal, low-passed at 280 Hz, is demodulated at the first four
harmonics of 50 and of 60 Hz and 4 Hz either side; a 1 s Hann-weighted sliding sum of those
per-hop sums is a 1 Hz resolution DFT. A family is hum when its harmonics stand 10 dB above their neighbours (it stops
being hum below 5 dB, and the other family takes over only when 6 dB stronger). Removal: a
cascade of 2 Hz wide notches on every harmonic up to 8 kHz, crossfaded in and out over 0.2 s,
mixed in by ``dehum_amount`` (1 = full notch depth). Without hum the signal passes untouched.
The nominal mains frequency is assumed (harmonics of a drifting grid beyond a few kHz may slip
past the notches).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.signal import butter, iirnotch

from speakup_fx.dsp.biquad import SosFilter
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

MAINS_HZ = (50, 60)
MAX_HARMONIC_HZ = 8000
NOTCH_BANDWIDTH_HZ = 2.0
DETECT_HARMONICS = 4
DETECT_WINDOW_S = 1.0
NEIGHBOUR_OFFSET_HZ = 4
DETECT_LOWPASS_HZ = 280
DETECT_LOWPASS_ORDER = 8
PRESENT_RATIO = 10.0
ABSENT_RATIO = 10**0.5
SWITCH_RATIO = 4.0
CROSSFADE_S = 0.2
_ENERGY_FLOOR = 1e-10  # a sine of amplitude 1e-5 (-100 dBFS)


def notch_sos(mains_hz: float, sample_rate: int = ENGINE_SAMPLE_RATE) -> np.ndarray:
    """Notches ``(harmonics, 6)`` at every multiple of ``mains_hz`` up to ``MAX_HARMONIC_HZ``."""
    rows = []
    for frequency_hz in np.arange(mains_hz, MAX_HARMONIC_HZ + 1, mains_hz):
        b, a = iirnotch(frequency_hz, frequency_hz / NOTCH_BANDWIDTH_HZ, fs=sample_rate)
        rows.append(np.concatenate([b, a]))
    return np.array(rows)


class _HumDetector:
    """Per-hop hum evidence for each mains family: harmonic energy over neighbouring energy."""

    def __init__(self, hop: int) -> None:
        centre = np.array([[m * h for h in range(1, DETECT_HARMONICS + 1)] for m in MAINS_HZ])
        self._frequencies = np.stack([centre, centre - NEIGHBOUR_OFFSET_HZ, centre + NEIGHBOUR_OFFSET_HZ], axis=-1).ravel()
        self._hops_per_second = ENGINE_SAMPLE_RATE // hop
        self._lowpass = SosFilter(butter(DETECT_LOWPASS_ORDER, DETECT_LOWPASS_HZ, fs=ENGINE_SAMPLE_RATE, output="sos"), 1)
        self._table = np.exp(-2j * np.pi * np.outer(self._frequencies, np.arange(hop)) / ENGINE_SAMPLE_RATE)
        window_hops = round(DETECT_WINDOW_S * self._hops_per_second)
        self._window = np.hanning(window_hops + 2)[1:-1]
        self._norm = (hop / 2 * self._window.sum()) ** 2
        self.reset()

    def reset(self) -> None:
        self._sums = np.zeros((self._window.size, self._frequencies.size), dtype=np.complex128)
        self._lowpass.reset()
        self._hop_index = 0

    def update(self, mono: np.ndarray) -> np.ndarray:
        """Take one hop of mono signal; returns the evidence ratio per family ``(len(MAINS_HZ),)``."""
        cycles = (self._frequencies.astype(np.int64) * self._hop_index) % self._hops_per_second
        phase = np.exp(-2j * np.pi * cycles / self._hops_per_second)
        slot = self._hop_index % self._window.size
        mono = self._lowpass.process(mono[None])[0]
        self._sums[slot] = np.sum(self._table * mono, axis=1) * phase  # elementwise: no BLAS threads for tiny products
        self._hop_index = (self._hop_index + 1) % (self._hops_per_second * self._window.size)
        weights = np.roll(self._window, slot + 1)  # oldest slot gets the first weight
        energy = np.abs(np.sum(weights[:, None] * self._sums, axis=0)) ** 2 / self._norm
        energy = energy.reshape(len(MAINS_HZ), DETECT_HARMONICS, 3).sum(axis=1)
        return energy[:, 0] / (0.5 * (energy[:, 1] + energy[:, 2]) + _ENERGY_FLOOR)


class DehumStage(Stage):
    """Mains-hum removal, depth ``dehum_amount``; zero latency."""

    uses = ("dehum_amount",)

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        self._amount = SmoothedParam("dehum_amount", params, 0.05, HOP_MS / 1000)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._detector = _HumDetector(self._hop)
        self._notches = [SosFilter(notch_sos(mains_hz), channels) for mains_hz in MAINS_HZ]
        self._fade_step = HOP_MS / 1000 / CROSSFADE_S
        self.reset()

    @property
    def mains_hz(self) -> int | None:
        """The mains frequency currently detected, or None."""
        return None if self._active is None else MAINS_HZ[self._active]

    def set_params(self, params: Mapping[str, float]) -> None:
        self._amount.update(params)

    def reset(self) -> None:
        self._amount.reset()
        self._detector.reset()
        for notch in self._notches:
            notch.reset()
        self._active: int | None = None
        self._weights = np.zeros(len(MAINS_HZ))

    def process(self, block: np.ndarray) -> np.ndarray:
        x = block.astype(np.float64)
        mono = x.mean(axis=0)
        out = x.copy()
        for start in range(0, x.shape[-1], self._hop):
            hop = slice(start, start + self._hop)
            self._decide(self._detector.update(mono[hop]))
            out[:, hop] = self._remove(x[:, hop])
        return out.astype(np.float32)

    def _decide(self, evidence: np.ndarray) -> None:
        if self._active is None:
            if evidence.max() >= PRESENT_RATIO:
                self._active = int(evidence.argmax())
        else:
            other = 1 - self._active
            if evidence[other] >= PRESENT_RATIO and evidence[other] >= SWITCH_RATIO * evidence[self._active]:
                self._active = other
            elif evidence[self._active] < ABSENT_RATIO:
                self._active = None

    def _remove(self, x: np.ndarray) -> np.ndarray:
        start_weights = self._weights.copy()
        targets = np.zeros(len(MAINS_HZ))
        if self._active is not None:
            targets[self._active] = 1.0
        self._weights = np.clip(targets, self._weights - self._fade_step, self._weights + self._fade_step)
        amount = self._amount.hop_values(1)
        if not (start_weights.any() or self._weights.any()):
            return x
        removed = np.zeros_like(x)
        for f, notch in enumerate(self._notches):
            if start_weights[f] == 0.0 and self._weights[f] == 0.0:
                notch.reset()
                continue
            weight = hop_ramp(np.array([start_weights[f], self._weights[f]]), x.shape[-1])
            removed += weight * (x - notch.process(x))
        return x - hop_ramp(amount, x.shape[-1]) * removed
