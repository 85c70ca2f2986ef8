"""LevelerStage: rides quiet and loud speech toward the target, holds through pauses and noise."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.dsp.loudness import integrated_loudness_lufs
from speakup_fx.stages.leveler import MAX_GAIN_DB, LevelerStage

RATE = 48_000


def speech_at(lufs: float, duration_s: float = 20.0) -> np.ndarray:
    speech = synthetic.speech_like(duration_s, RATE, 1)
    frames = speech.shape[-1] // 480 * 480
    speech = speech[:, :frames]
    return (speech * 10 ** ((lufs - integrated_loudness_lufs(speech, RATE)) / 20)).astype(np.float32)


@pytest.mark.parametrize("input_lufs", [-26.0, -22.0, -10.0])
def test_speech_moves_to_the_target(input_lufs):
    target = -16.0
    audio = speech_at(input_lufs)
    out = LevelerStage(1, {"leveler_amount": 1.0, "target_lufs": target}).process(audio)
    settled = integrated_loudness_lufs(out[:, 10 * RATE :], RATE)
    assert abs(settled - target) < 1.0


def test_amount_scales_the_correction():
    audio = speech_at(-26.0)
    out = LevelerStage(1, {"leveler_amount": 0.5, "target_lufs": -16.0}).process(audio)
    assert integrated_loudness_lufs(out[:, 10 * RATE :], RATE) == pytest.approx(-21.0, abs=1.0)


def test_gain_is_bounded():
    audio = speech_at(-45.0)
    stage = LevelerStage(1, {"leveler_amount": 1.0, "target_lufs": -10.0})
    out = stage.process(audio)
    assert stage.gain_db == pytest.approx(MAX_GAIN_DB, abs=0.1)
    assert integrated_loudness_lufs(out[:, 10 * RATE :], RATE) == pytest.approx(-45.0 + MAX_GAIN_DB, abs=1.0)


def test_pauses_and_background_noise_are_not_boosted():
    speech = speech_at(-24.0, 10.0)
    background = synthetic.noise(10.0, RATE, 1, level_db=-60.0)[:, : speech.shape[-1]]
    stage = LevelerStage(1, {"leveler_amount": 1.0, "target_lufs": -16.0})
    stage.process(speech)
    gain_after_speech = stage.gain_db
    stage.process(background)
    assert stage.gain_db == pytest.approx(gain_after_speech, abs=0.5)


def test_amount_zero_leaves_the_signal_alone():
    audio = speech_at(-30.0, 5.0)
    np.testing.assert_allclose(LevelerStage(1, {"leveler_amount": 0.0}).process(audio), audio, atol=1e-7)


@pytest.mark.parametrize("input_lufs", [-30.0, -24.0, -16.0])
def test_podcast_chain_brings_speech_near_the_target_before_any_loudness_pass(input_lufs):
    """Leveler then compressor with make-up: the bounce's loudness pass is left a small correction."""
    from speakup_fx import SpeakUp

    audio = speech_at(input_lufs, 16.0)
    target = SpeakUp("podcast").target_lufs
    unlimited = SpeakUp("podcast", limiter=False)(audio, RATE)
    assert integrated_loudness_lufs(unlimited[:, 6 * RATE :], RATE) == pytest.approx(target, abs=2.5)  # -30 LUFS is near the leveler's 12 dB limit
    # this synthetic voice peaks ~20 dB above its loudness, so the -1 dBTP limiter costs it some loudness
    limited = SpeakUp("podcast")(audio, RATE)
    assert integrated_loudness_lufs(limited[:, 6 * RATE :], RATE) == pytest.approx(target, abs=5.0)
