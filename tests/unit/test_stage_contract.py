"""Properties every DSP stage of the classic chain keeps (the ``Stage`` contract)."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from speakup_fx.stages.compressor import CompressorStage
from speakup_fx.stages.dehum import DehumStage
from speakup_fx.stages.denoise import SpectralDenoiseStage
from speakup_fx.stages.eq import EqStage
from speakup_fx.stages.expander import ExpanderStage
from speakup_fx.stages.gain import GainStage
from speakup_fx.stages.highpass import HighpassStage
from speakup_fx.stages.leveler import LevelerStage
from speakup_fx.stages.limiter import TruePeakLimiterStage

RATE = 48_000
HOP = 480

# stage, parameters making it work hard, one parameter jump (name, before, after)
STAGES = {
    "highpass": (HighpassStage, {"highpass_hz": 150.0}, ("highpass_hz", 40.0, 300.0)),
    "dehum": (DehumStage, {"dehum_amount": 1.0}, ("dehum_amount", 0.0, 1.0)),
    "denoise": (SpectralDenoiseStage, {"denoise_amount": 1.0, "dereverb_amount": 1.0}, ("denoise_amount", 0.0, 1.0)),
    "eq": (EqStage, {"low_mid_cut_db": -12.0, "presence_db": 12.0, "air_db": 12.0}, ("presence_db", -6.0, 12.0)),
    "leveler": (LevelerStage, {"leveler_amount": 1.0, "target_lufs": -10.0}, ("target_lufs", -40.0, -5.0)),
    "compressor": (
        CompressorStage, {"compressor_threshold_db": -40.0, "compressor_ratio": 8.0}, ("compressor_ratio", 1.0, 20.0)
    ),
    "expander": (
        ExpanderStage,
        {"expander_threshold_db": -20.0, "expander_ratio": 4.0, "expander_range_db": 40.0},
        ("expander_threshold_db", -90.0, -10.0),
    ),
    "gain": (GainStage, {"output_gain_db": 6.0}, ("output_gain_db", -24.0, 24.0)),
    "limiter": (TruePeakLimiterStage, {"limiter_ceiling_dbtp": -12.0}, ("limiter_ceiling_dbtp", 0.0, -20.0)),
}
NAMES = sorted(STAGES)


def make(name: str, channels: int, **overrides: float):
    cls, params, _ = STAGES[name]
    return cls(channels, {**params, **overrides})


def stereo_material(duration_s: float = 3.0) -> np.ndarray:
    """Two different loud noisy-speech channels (with 50 Hz hum), a whole number of hops long."""
    frames = int(duration_s * RATE) // HOP * HOP
    left = synthetic.noisy_speech(duration_s, RATE, 1, snr_db=15.0, seed=0)[:, :frames]
    right = synthetic.noisy_speech(duration_s, RATE, 1, snr_db=5.0, seed=3)[:, :frames]
    out = 3.0 * np.concatenate([left, right])
    out.setflags(write=False)
    return out


def run_in_blocks(stage, audio: np.ndarray, hops_per_block: int) -> np.ndarray:
    size = hops_per_block * HOP
    return np.concatenate([stage.process(audio[:, i : i + size]) for i in range(0, audio.shape[-1], size)], axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_output_does_not_depend_on_block_size(name):
    audio = stereo_material()
    whole = make(name, 2).process(audio)
    for hops in (1, 7):
        np.testing.assert_allclose(run_in_blocks(make(name, 2), audio, hops), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_output_is_float32_with_the_input_shape_and_the_input_is_untouched(name):
    audio = np.array(stereo_material(1.0))
    before = audio.copy()
    out = make(name, 2).process(audio)
    assert out.dtype == np.float32 and out.shape == audio.shape
    np.testing.assert_array_equal(audio, before)


@pytest.mark.parametrize("name", NAMES)
def test_reset_reproduces_the_first_run(name):
    audio = stereo_material(2.0)
    stage = make(name, 2)
    first = run_in_blocks(stage, audio, 5)
    stage.reset()
    np.testing.assert_array_equal(run_in_blocks(stage, audio, 5), first)


@pytest.mark.parametrize("name", NAMES)
def test_silence_gives_finite_quiet_output(name):
    out = make(name, 2).process(synthetic.silence(1.0, RATE, 2))
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_stereo_channels_get_the_same_gain(name):
    mono = stereo_material()[:1]
    out = make(name, 2).process(np.concatenate([mono, 0.5 * mono]))
    np.testing.assert_allclose(out[1], 0.5 * out[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", [name for name in NAMES if name != "leveler"])  # BS.1770: two channels are louder than one
def test_mono_output_equals_the_first_channel_of_identical_stereo(name):
    mono = stereo_material()[:1]
    np.testing.assert_allclose(make(name, 1).process(mono)[0], make(name, 2).process(np.repeat(mono, 2, axis=0))[0], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_latency_samples_is_where_an_impulse_comes_out(name):
    overrides = {"denoise_amount": 0.0, "dereverb_amount": 0.0} if name == "denoise" else {}
    stage = make(name, 1, **overrides)
    at = 4800
    audio = 0.1 * synthetic.impulse(0.5, RATE, 1, at_s=at / RATE)
    out = stage.process(audio)[0]
    assert int(np.argmax(np.abs(out))) == at + stage.latency_samples


@pytest.mark.parametrize("name", NAMES)
def test_parameter_change_is_smooth(name):
    """No output step larger than the signal's own sample-to-sample change, before or after the change."""
    _, _, (param, before, after) = STAGES[name]
    frames = 2 * RATE
    t = np.arange(frames) / RATE
    tones = 0.2 * np.sin(2 * np.pi * 440 * t + 1.0) + 0.1 * np.sin(2 * np.pi * 4000 * t + 0.5)
    hum, noise = synthetic.hum(50, 2.0, RATE)[0], synthetic.noise(2.0, RATE, 1, level_db=-80.0)[0]
    audio = (tones + hum + noise).astype(np.float32)[None]
    stage = make(name, 1, **{param: before})
    change = RATE  # at 1 s, on a hop boundary
    head = stage.process(audio[:, :change])
    stage.set_params({param: after})
    out = np.concatenate([head, stage.process(audio[:, change:])], axis=1)[0]
    step = np.abs(np.diff(out))
    steady = max(step[change - RATE // 4 : change - 1].max(), step[-RATE // 4 :].max())
    assert step[change - 1 : change + RATE // 2].max() <= 1.2 * steady + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_parameter_is_refused_by_name(name):
    _, _, (param, _, _) = STAGES[name]
    with pytest.raises(ValueError, match=param):
        make(name, 1, **{param: 1e6})
    stage = make(name, 1)
    with pytest.raises(ValueError, match=param):
        stage.set_params({param: -1e6})


@pytest.mark.parametrize("name", NAMES)
def test_three_channels_are_refused(name):
    with pytest.raises(ValueError, match="channels"):
        make(name, 3)
