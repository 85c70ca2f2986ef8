"""The ``classic`` enhancer: STFT noise and late-reverberation suppression.

Per 10 ms frame of a 1920-point sqrt-Hann STFT (40 ms, 25 Hz bins, perfect reconstruction):

* noise power is tracked with IMCRA (Cohen 2003): two rounds of minimum statistics over about
  1.2 s of time/frequency-smoothed power, the second excluding bins the first found speech in, give
  the a-priori speech-absence probability; the speech-presence probability then controls a
  recursive average of the noisy power. No noise-only lead-in is needed;
* late reverberation power follows Lebart/Habets' exponential-decay model: the reverberant
  speech power 50 ms earlier, decayed for a fixed RT60 of 0.5 s;
* the gain is OM-LSA (Cohen & Berdugo 2001): the MMSE log-spectral-amplitude gain with a
  decision-directed a-priori SNR where speech is present, the floor where it is absent, so the
  residual noise is a quieter copy of the noise rather than musical tones;
* the floor mixes the noise floor (``denoise_amount``) and the reverb floor (``dereverb_amount``)
  in proportion to the two interferences; both amounts at 0 return the input, delayed.

Stereo is analysed as the mean power of its channels and gets one gain, so the image stays put.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.special import exp1

from speakup_fx.dsp.smoothing import SmoothedParam
from speakup_fx.dsp.stft import StreamingStft
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

N_FFT = 1920
MAX_NOISE_REDUCTION_DB = 30.0
MAX_REVERB_REDUCTION_DB = 20.0
RT60_S = 0.5
LATE_REVERB_S = 0.05

# IMCRA constants (Cohen 2003, for 75 %-overlapping frames like ours)
_POWER_SMOOTHING = 0.9  # alpha_s
_NOISE_SMOOTHING = 0.85  # alpha_d
_SUBWINDOW_FRAMES = 15  # V
_SUBWINDOWS = 8  # U
_MIN_BIAS = 1.66  # B_min: mean over minimum of the smoothed noise power
_NOISE_BIAS = 1.47  # beta: compensates the speech-absence-weighted average
_GAMMA_0 = 4.6
_GAMMA_1 = 3.0
_ZETA_0 = 1.67
# OM-LSA (Cohen & Berdugo 2001); alpha and q_max tuned on VoiceBank-DEMAND and synthetic noise
_DD_SMOOTHING = 0.96  # decision-directed alpha
_MIN_PRIOR_SNR = 10 ** (-25 / 10)
_MAX_ABSENCE = 0.98  # q_max: speech-absence probabilities are capped (for IMCRA's too)
_PRIOR_AVERAGING = 0.7
_PRIOR_PRESENCE_LOW = 10 ** (-10 / 10)
_PRIOR_PRESENCE_HIGH = 10 ** (-5 / 10)
_LOCAL_WINDOW = np.hanning(5)[1:-1] / np.hanning(5)[1:-1].sum()
_GLOBAL_WINDOW = np.hanning(33)[1:-1] / np.hanning(33)[1:-1].sum()
_FRAME_BINS = slice(4, 321)  # 100 Hz to 8 kHz
_REVERB_POWER_SMOOTHING = 0.5  # recursive smoothing of the reverberant speech power
_EPS = 1e-12


def _smooth_frequency(power: np.ndarray) -> np.ndarray:
    """Three-bin [1/4, 1/2, 1/4] smoothing along the last axis, edges reflected."""
    padded = np.concatenate([power[..., 1:2], power, power[..., -2:-1]], axis=-1)
    return 0.25 * padded[..., :-2] + 0.5 * padded[..., 1:-1] + 0.25 * padded[..., 2:]


def _presence_likelihood(prior_average: np.ndarray) -> np.ndarray:
    """0 below -10 dB of averaged a-priori SNR, 1 above -5 dB, log-linear between (OM-LSA's P_local)."""
    ratio = np.log(np.maximum(prior_average, _EPS) / _PRIOR_PRESENCE_LOW) / math.log(_PRIOR_PRESENCE_HIGH / _PRIOR_PRESENCE_LOW)
    return np.clip(ratio, 0.0, 1.0)


class _MinimumTracker:
    """Minimum of a smoothed spectrum over the last ``U - 1`` to ``U`` sub-windows of ``V`` frames."""

    def __init__(self, first: np.ndarray) -> None:
        self.current = first.copy()
        self._stored = np.tile(first, (_SUBWINDOWS - 1, 1))
        self._frames = 0

    def update(self, smoothed: np.ndarray) -> np.ndarray:
        """Take this frame's smoothed power; returns the running minimum."""
        np.minimum(self.current, smoothed, out=self.current)
        minimum = np.minimum(self._stored.min(axis=0), self.current)
        self._frames += 1
        if self._frames == _SUBWINDOW_FRAMES:
            self._stored = np.roll(self._stored, 1, axis=0)
            self._stored[0] = self.current
            self.current = smoothed.copy()
            self._frames = 0
        return minimum


class SpectralDenoiseStage(Stage):
    """Noise and late-reverb suppression (``denoise_amount``, ``dereverb_amount``); latency 1440 frames.

    With ``suppress_noise=False`` it removes late reverberation only (``dereverb_amount``), for a
    chain where another stage has removed the noise.
    """

    def __init__(self, channels: int, params: Mapping[str, float], suppress_noise: bool = True) -> None:
        super().__init__(channels)
        hop_s = HOP_MS / 1000
        self._suppress_noise = suppress_noise
        self._denoise = SmoothedParam("denoise_amount", params if suppress_noise else {"denoise_amount": 0.0}, 0.05, hop_s)
        self._dereverb = SmoothedParam("dereverb_amount", params, 0.05, hop_s)
        self._stft = StreamingStft(channels, N_FFT, hop_frames(ENGINE_SAMPLE_RATE))
        self._first_full_frame = N_FFT // self._stft.hop - 1
        self._late_frames = round(LATE_REVERB_S / hop_s)
        self._late_decay = math.exp(-2 * (3 * math.log(10) / RT60_S) * LATE_REVERB_S)
        self.reset()

    @property
    def uses(self) -> tuple[str, ...]:
        return ("denoise_amount", "dereverb_amount") if self._suppress_noise else ("dereverb_amount",)

    @property
    def latency_samples(self) -> int:
        return self._stft.latency_samples

    def reset(self) -> None:
        self._stft.reset()
        self._denoise.reset()
        self._dereverb.reset()
        self._frame = 0

    def set_params(self, params: Mapping[str, float]) -> None:
        if self._suppress_noise:
            self._denoise.update(params)
        self._dereverb.update(params)

    def process(self, block: np.ndarray) -> np.ndarray:
        spectra = self._stft.analyse(block.astype(np.float64))
        power = np.mean(spectra.real**2 + spectra.imag**2, axis=0)
        gains = np.empty_like(power)
        for j in range(power.shape[0]):
            gains[j] = self._frame_gain(power[j])
        return self._stft.synthesise(spectra * gains).astype(np.float32)

    def _start(self, power: np.ndarray) -> None:
        """(Re)initialise the trackers from ``power``; used until the analysis window is full of signal."""
        smoothed = _smooth_frequency(power)
        self._smoothed = smoothed
        self._smoothed_absent = smoothed.copy()
        self._minimum = _MinimumTracker(smoothed)
        self._minimum_absent = _MinimumTracker(smoothed)
        self._noise_average = power.copy()
        self._previous_speech = np.zeros_like(power)
        self._reverberant = np.zeros((self._late_frames, power.size))
        self._prior_average = np.zeros_like(power)

    def _frame_gain(self, power: np.ndarray) -> np.ndarray:
        """Suppression gain ``(bins,)`` for one frame's linked power spectrum."""
        if self._frame <= self._first_full_frame:
            self._start(power)
        noise = _NOISE_BIAS * self._noise_average
        slot = self._frame % self._late_frames
        reverb = self._late_decay * self._reverberant[slot]
        interference = noise + reverb + _EPS

        posterior = power / interference
        prior = _DD_SMOOTHING * self._previous_speech / interference + (1 - _DD_SMOOTHING) * np.maximum(posterior - 1, 0)
        np.maximum(prior, _MIN_PRIOR_SNR, out=prior)
        ratio = prior / (1 + prior)
        v = np.maximum(ratio * posterior, 1e-10)
        present_gain = np.minimum(ratio * np.exp(0.5 * exp1(v)), 1.0)
        self._previous_speech = present_gain * present_gain * power

        likelihood = (1 + prior) * np.exp(-np.minimum(v, 50.0))
        absence = self._track_noise(power)
        self._noise_update(power, 1 / (1 + absence / (1 - absence) * likelihood))
        absence = self._speech_absence(prior)
        presence = 1 / (1 + absence / (1 - absence) * likelihood)
        self._reverberant[slot] = (
            _REVERB_POWER_SMOOTHING * self._reverberant[(slot - 1) % self._late_frames]
            + (1 - _REVERB_POWER_SMOOTHING) * presence * np.maximum(power - noise, 0.0)
        )

        noise_floor = 10 ** (-MAX_NOISE_REDUCTION_DB * self._denoise.advance() / 10)
        reverb_floor = 10 ** (-MAX_REVERB_REDUCTION_DB * self._dereverb.advance() / 10)
        floor = np.sqrt((noise_floor * noise + reverb_floor * reverb + _EPS) / interference)
        self._frame += 1
        return np.maximum(present_gain, floor) ** presence * floor ** (1 - presence)

    def _track_noise(self, power: np.ndarray) -> np.ndarray:
        """IMCRA's two rounds of minimum statistics; returns the a-priori speech-absence probability."""
        self._smoothed = _POWER_SMOOTHING * self._smoothed + (1 - _POWER_SMOOTHING) * _smooth_frequency(power)
        minimum = _MIN_BIAS * self._minimum.update(self._smoothed) + _EPS
        absent = (power < _GAMMA_0 * minimum) & (self._smoothed < _ZETA_0 * minimum)
        weight = _smooth_frequency(absent.astype(np.float64))
        absent_power = _smooth_frequency(absent * power) / np.maximum(weight, _EPS)
        smoothed_absent = np.where(weight > 0, absent_power, self._smoothed_absent)
        self._smoothed_absent = _POWER_SMOOTHING * self._smoothed_absent + (1 - _POWER_SMOOTHING) * smoothed_absent
        minimum = _MIN_BIAS * self._minimum_absent.update(self._smoothed_absent) + _EPS
        posterior_min = power / minimum
        absence = np.clip((_GAMMA_1 - posterior_min) / (_GAMMA_1 - 1), 0.0, 1.0)
        absence[self._smoothed_absent >= _ZETA_0 * minimum] = 0.0
        return np.minimum(absence, _MAX_ABSENCE)

    def _speech_absence(self, prior: np.ndarray) -> np.ndarray:
        """OM-LSA's a-priori speech-absence probability from the a-priori SNR in local, global and frame context."""
        self._prior_average = _PRIOR_AVERAGING * self._prior_average + (1 - _PRIOR_AVERAGING) * prior
        local = np.convolve(self._prior_average, _LOCAL_WINDOW, mode="same")
        wide = np.convolve(self._prior_average, _GLOBAL_WINDOW, mode="same")
        frame = np.mean(self._prior_average[_FRAME_BINS])
        presence = _presence_likelihood(local) * _presence_likelihood(wide) * _presence_likelihood(frame)
        return np.minimum(1 - presence, _MAX_ABSENCE)

    def _noise_update(self, power: np.ndarray, presence: np.ndarray) -> None:
        """Speech-presence-controlled recursive average of the noisy power (for the next frame)."""
        smoothing = _NOISE_SMOOTHING + (1 - _NOISE_SMOOTHING) * presence
        self._noise_average = smoothing * self._noise_average + (1 - smoothing) * power
