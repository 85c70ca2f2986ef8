"""Feed-forward compressor: RMS detector, soft knee, attack/release on the gain reduction, linked stereo.

The gain reduction (dB) is released exponentially after an instant attack, then smoothed by a
one-pole for the attack (Giannoulis et al. 2012, the "decoupled" detector); both vectorised.

Automatic make-up gain: the static reduction at ``target_lufs + SPEECH_ABOVE_LOUDNESS_DB`` is added
back. The leveler (before the compressor) brings speech to ``target_lufs``, and speech at integrated
loudness L reads about L + 4 dB on the 10 ms RMS detector during words (the loudness lost by
compression matched the static reduction at L + 2..6 dB on LibriSpeech, home-microphone and
synthetic speech, for thresholds -30..-22 dB and ratios 2..4), so speech at the target keeps its
loudness to about 1 LU. Ratio 1 gives no make-up (transparent); quieter material is raised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from speakup_fx.dsp.envelope import linked_power_db, one_pole, one_pole_coefficient, release_envelope
from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.stages.base import ENGINE_SAMPLE_RATE, HOP_MS, Stage, hop_frames

KNEE_DB = 6.0
DETECTOR_S = 0.01
ATTACK_S = 0.005
RELEASE_S = 0.15
SPEECH_ABOVE_LOUDNESS_DB = 4.0
"""Typical 10 ms RMS level of speech during words, above its integrated loudness (LUFS)."""


def gain_reduction_db(level_db: np.ndarray, threshold_db: np.ndarray | float, ratio: np.ndarray | float) -> np.ndarray:
    """Static curve: reduction (dB, >= 0) for a detector level, soft knee ``KNEE_DB`` wide around the threshold."""
    over = level_db - threshold_db
    slope = 1 - 1 / np.asarray(ratio, dtype=np.float64)
    knee = slope * (over + KNEE_DB / 2) ** 2 / (2 * KNEE_DB)
    return np.where(over <= -KNEE_DB / 2, 0.0, np.where(over >= KNEE_DB / 2, slope * over, knee))


def makeup_gain_db(
    threshold_db: np.ndarray | float, ratio: np.ndarray | float, target_lufs: np.ndarray | float
) -> np.ndarray:
    """Automatic make-up (dB, >= 0): the static reduction of speech whose integrated loudness is ``target_lufs``."""
    return gain_reduction_db(np.asarray(target_lufs) + SPEECH_ABOVE_LOUDNESS_DB, threshold_db, ratio)


class CompressorStage(Stage):
    """Compressor (``compressor_threshold_db`` on RMS level, ``compressor_ratio``; 1 = transparent); zero latency.

    Make-up gain follows ``target_lufs`` (see the module docstring).
    """

    uses = ("compressor_threshold_db", "compressor_ratio", "target_lufs")

    def __init__(self, channels: int, params: Mapping[str, float]) -> None:
        super().__init__(channels)
        hop_s = HOP_MS / 1000
        self._threshold = SmoothedParam("compressor_threshold_db", params, 0.05, hop_s)
        self._ratio = SmoothedParam("compressor_ratio", params, 0.05, hop_s)
        self._target = SmoothedParam("target_lufs", params, 0.05, hop_s)
        self._hop = hop_frames(ENGINE_SAMPLE_RATE)
        self._detector = one_pole_coefficient(DETECTOR_S, ENGINE_SAMPLE_RATE)
        self._attack = one_pole_coefficient(ATTACK_S, ENGINE_SAMPLE_RATE)
        self._release = one_pole_coefficient(RELEASE_S, ENGINE_SAMPLE_RATE)
        self.reset()

    def set_params(self, params: Mapping[str, float]) -> None:
        self._threshold.update(params)
        self._ratio.update(params)
        self._target.update(params)

    def reset(self) -> None:
        self._threshold.reset()
        self._ratio.reset()
        self._target.reset()
        self._power = 0.0
        makeup_db = makeup_gain_db(self._threshold.value, self._ratio.value, self._target.value)
        self._net_db = -float(makeup_db)  # the attack smoother starts at the make-up gain
        self._held = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        frames = block.shape[-1]
        hops = frames // self._hop
        level_db, self._power = linked_power_db(block, self._detector, self._power)
        threshold_hops, ratio_hops = self._threshold.hop_values(hops), self._ratio.hop_values(hops)
        makeup_db = hop_ramp(makeup_gain_db(threshold_hops, ratio_hops, self._target.hop_values(hops)), self._hop)
        threshold, ratio = hop_ramp(threshold_hops, self._hop), hop_ramp(ratio_hops, self._hop)
        reduction = gain_reduction_db(level_db, threshold, ratio)
        held = release_envelope(reduction, self._release, self._held)
        self._held = float(held[-1])
        # the make-up goes through the attack smoother too, so a parameter change moves both together
        net_db = one_pole(held - makeup_db, self._attack, self._net_db)
        self._net_db = float(net_db[-1])
        return (block * 10 ** (-net_db / 20)).astype(np.float32)
