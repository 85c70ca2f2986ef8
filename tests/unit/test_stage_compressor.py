"""CompressorStage: static curve plus make-up, speech keeps its loudness, ratio 1 transparency, attack and release."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.dsp.loudness import integrated_loudness_lufs
from speakup_fx.stages.compressor import KNEE_DB, CompressorStage, gain_reduction_db, makeup_gain_db

RATE = 48_000


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


@pytest.mark.parametrize("ratio", [2.0, 4.0, 20.0])
@pytest.mark.parametrize("input_db", [-40.0, -27.0, -24.0, -21.0, -12.0, -3.0])
def test_static_curve_matches_threshold_and_ratio(input_db, ratio):
    threshold_db = -24.0
    tone = synthetic.sine(1000.0, 1.0, RATE, amplitude=float(np.sqrt(2) * 10 ** (input_db / 20)))
    out = CompressorStage(1, {"compressor_threshold_db": threshold_db, "compressor_ratio": ratio}).process(tone)
    over = input_db - threshold_db
    if over >= KNEE_DB / 2:
        expected_db = threshold_db + over / ratio
    elif over <= -KNEE_DB / 2:
        expected_db = input_db
    else:
        expected_db = input_db - (1 - 1 / ratio) * (over + KNEE_DB / 2) ** 2 / (2 * KNEE_DB)
    expected_db += float(makeup_gain_db(threshold_db, ratio, -16.0))  # target_lufs at its default
    assert rms_db(out[:, 24_000:40_000]) == pytest.approx(expected_db, abs=0.1)


def test_makeup_is_the_reduction_of_speech_at_the_target_and_follows_it():
    assert makeup_gain_db(-24.0, 3.0, -16.0) == pytest.approx((1 - 1 / 3) * 12.0)  # detector 4 dB above -16 LUFS
    assert makeup_gain_db(-24.0, 3.0, -40.0) == 0.0
    assert makeup_gain_db(-24.0, 1.0, -5.0) == 0.0


@pytest.mark.parametrize(("threshold_db", "ratio", "target_lufs"), [
    (-24.0, 3.0, -16.0), (-22.0, 2.5, -20.0), (-30.0, 4.0, -16.0), (-24.0, 2.0, -23.0)
])
def test_speech_at_the_target_keeps_its_loudness(threshold_db, ratio, target_lufs):
    speech = synthetic.speech_like(10.0, RATE, 1)
    speech = (speech * 10 ** ((target_lufs - integrated_loudness_lufs(speech, RATE)) / 20)).astype(np.float32)
    params = {"compressor_threshold_db": threshold_db, "compressor_ratio": ratio, "target_lufs": target_lufs}
    out = CompressorStage(1, params).process(speech[:, : speech.shape[-1] // 480 * 480])
    assert gain_reduction_db(target_lufs + 4.0, threshold_db, ratio) > 2.0  # the speech is compressed
    assert integrated_loudness_lufs(out, RATE) == pytest.approx(target_lufs, abs=1.5)


def test_gain_reduction_curve_is_continuous_at_the_knee_edges():
    for edge in (-KNEE_DB / 2, KNEE_DB / 2):
        below, above = gain_reduction_db(np.array([edge - 1e-9, edge + 1e-9]) - 20.0, -20.0, 4.0)
        assert above == pytest.approx(below, abs=1e-6)


def test_ratio_one_is_transparent():
    audio = 3 * synthetic.speech_like(2.0, RATE, 2)
    out = CompressorStage(2, {"compressor_threshold_db": -60.0, "compressor_ratio": 1.0}).process(audio)
    np.testing.assert_array_equal(out, audio)


def test_attack_is_fast_and_release_slow():
    quiet, loud = 0.01, 0.7
    frames = RATE
    x = np.full(frames, quiet)
    x[RATE // 4 : RATE // 2] = loud
    tone = (x * np.sin(2 * np.pi * 1000 * np.arange(frames) / RATE)).astype(np.float32)[None]
    out = CompressorStage(1, {"compressor_threshold_db": -30.0, "compressor_ratio": 10.0}).process(tone)
    makeup = 10 ** (float(makeup_gain_db(-30.0, 10.0, -16.0)) / 20)
    envelope = np.abs(out[0]) / np.maximum(np.abs(tone[0]), 1e-9) / makeup
    final_gain = np.median(envelope[RATE // 2 - 2400 : RATE // 2][np.abs(tone[0, RATE // 2 - 2400 : RATE // 2]) > 0.3])

    def gain_at(start):
        window = slice(start, start + 48)
        mask = np.abs(tone[0, window]) > 0.3 * np.abs(tone[0, window]).max()
        return np.median(envelope[window][mask])

    assert gain_at(RATE // 4 + 2400) < 1.5 * final_gain  # mostly compressed 50 ms after the onset
    assert gain_at(RATE // 2 + 2400) < 0.5  # 50 ms after the loud part ends, still reducing
    assert 0.9 < gain_at(RATE - 480) < 1.1  # recovered half a second later (to the make-up gain)
