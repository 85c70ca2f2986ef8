"""The chain built from data: which stages run, that building loads nothing, and that every offered knob acts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from stage_doubles import save_tiny_enhancer

import synthetic
from speakup_fx import SpeakUp
from speakup_fx.params import PARAM_SPECS, ChainOptions, default_params
from speakup_fx.runtime import weights as weights_module
from speakup_fx.runtime.host import ModelHost, loaded_model_count
from speakup_fx.stages.chain import build_chain

RATE = 48000
POST = ["HighpassStage", "DehumStage", "EqStage", "LevelerStage", "CompressorStage", "GainStage", "TruePeakLimiterStage"]
NEURAL = ["BlendStage", "ResampleStage", "SpectralDenoiseStage"]


def names(stages):
    return [type(stage).__name__ for stage in stages]


def test_the_classic_chain_runs_its_stages_in_order_and_options_drop_them():
    assert names(build_chain(1, ChainOptions(), {})) == POST[:2] + ["SpectralDenoiseStage"] + POST[2:]
    options = ChainOptions(highpass=False, dehum=False, eq=False, leveler=False, compressor=False, limiter=False)
    assert names(build_chain(2, options, {})) == ["SpectralDenoiseStage", "GainStage"]


def test_the_neural_chain_takes_its_model_from_a_host_and_building_it_loads_nothing(tmp_path, monkeypatch):
    save_tiny_enhancer(tmp_path / "enhancer.safetensors", seed=11)
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="ModelHost"):
        build_chain(1, ChainOptions(engine="neural"), {})
    count = loaded_model_count()
    stages = build_chain(1, ChainOptions(engine="neural"), {}, ModelHost("cpu"))
    assert names(stages) == NEURAL + POST
    assert [stage.input_sample_rate for stage in stages[:3]] == [16000, 16000, 48000]
    effect = SpeakUp(engine="neural", device="cpu")
    assert effect.latency_samples > 0 and loaded_model_count() == count  # latency known, no model loaded
    assert effect.prepare(44100, 2) == effect.latency_samples and loaded_model_count() == count + 1


def test_latency_is_known_before_audio_never_changes_and_is_the_measured_delay():
    effect = SpeakUp(preset="restore", device="cpu", denoise_amount=0.0, dereverb_amount=0.0)
    before = effect.prepare(44100, 2)
    sweep = synthetic.chirp(100.0, 6000.0, 0.5, 44100, channels=2)
    out = effect(sweep, 44100, reset=False)
    assert effect.latency_samples == before
    correlation = np.correlate(out[0], sweep[0], mode="full")
    assert int(np.argmax(correlation)) - (sweep.shape[1] - 1) == before


def test_two_effects_share_one_loaded_model():
    a, b = SpeakUp(preset="restore", device="cpu"), SpeakUp(preset="restore", device="cpu")
    a.prepare(48000, 1)
    count = loaded_model_count()
    b.prepare(44100, 2)
    assert loaded_model_count() == count
    stream_of = lambda effect: next(s for s in effect._engine.stages if hasattr(s, "inner")).inner._stream
    assert stream_of(a).model is stream_of(b).model and stream_of(a) is not stream_of(b)


def test_device_works_end_to_end_and_a_bogus_device_is_refused_by_every_engine():
    audio = synthetic.noisy_speech(0.3, 44100, channels=2)
    for device in ("cpu", "auto"):
        out = SpeakUp(preset="restore", device=device)(audio, 44100)
        assert out.shape == audio.shape and np.isfinite(out).all()
    for preset in ("restore", "podcast"):
        with pytest.raises(ValueError, match="device"):
            SpeakUp(preset=preset, device="bogus")


def test_a_parameter_the_chain_does_not_use_is_refused():
    effect = SpeakUp(preset="restore")
    with pytest.raises(ValueError, match="highpass_hz: not used by this chain"):
        effect.highpass_hz = 100.0
    with pytest.raises(ValueError, match="presence_db"):
        SpeakUp(preset="restore", presence_db=3.0)
    with pytest.raises(ValueError, match="expected a number"):
        SpeakUp(preset="podcast").denoise_amount = True


def test_stage_uses_name_real_parameters():
    for options in (ChainOptions(expander=True), ChainOptions(engine="neural", expander=True)):
        for stage in build_chain(1, options, default_params(), ModelHost("cpu")):
            assert set(stage.uses) <= set(PARAM_SPECS), type(stage).__name__


def reverberant_noisy_hum(seconds: float) -> np.ndarray:
    """Speech in a 0.6 s room, with noise, 50 Hz hum, quiet pauses and peaks near full scale (every stage has work)."""
    speech = synthetic.speech_like(seconds, RATE)[0].astype(np.float64)
    wet = scipy.signal.fftconvolve(speech, synthetic.room_impulse_response(0.6, RATE))[: speech.size]
    wet *= 0.9 / np.abs(wet).max()
    noise = synthetic.noise(seconds, RATE, level_db=-45, seed=3)[0]
    hum = synthetic.hum(50.0, seconds, RATE, amplitude=0.01)[0]
    return (wet + noise + hum).astype(np.float32)[None]


BASE = {"expander_threshold_db": -30.0}
"""A threshold the test signal's pauses cross, so the expander's ratio and range have something to act on."""


def farthest_value(name: str) -> float:
    spec, base = PARAM_SPECS[name], BASE.get(name, PARAM_SPECS[name].default)
    return spec.minimum if base - spec.minimum >= spec.maximum - base else spec.maximum


@pytest.mark.parametrize("engine", ["classic", "neural"])
def test_every_parameter_an_engine_offers_changes_its_output(engine):
    audio = reverberant_noisy_hum(0.8)
    effect = SpeakUp(engine=engine, expander=True, device="cpu", **BASE)
    reference = effect(audio, RATE)
    assert effect.offered_params >= {"denoise_amount", "dereverb_amount", "mix", "output_gain_db"}
    dead = []
    for name in sorted(effect.offered_params):
        changed = SpeakUp(engine=engine, expander=True, device="cpu", **{**BASE, name: farthest_value(name)})(audio, RATE)
        difference_db = 10 * np.log10(np.mean((changed - reference) ** 2) / np.mean(reference**2) + 1e-30)
        if difference_db < -40:  # less than 1 % of the output's amplitude: inaudible
            dead.append(f"{name} ({difference_db:.0f} dB)")
    assert not dead, f"{engine} engine: parameters without audible effect: {dead}"


def late_energy_db(audio: np.ndarray, speech: np.ndarray) -> float:
    """Energy of ``audio`` where the dry speech is silent (pauses filled by the room's tail), dB."""
    quiet = np.abs(speech) < 1e-4
    return 10 * np.log10(np.mean(audio[..., quiet] ** 2) + 1e-20)


def test_dereverb_amount_removes_room_in_the_neural_engine():
    speech = synthetic.speech_like(3.0, 16000)[0].astype(np.float64)
    wet = scipy.signal.fftconvolve(speech, synthetic.room_impulse_response(0.8, 16000))[: speech.size]
    audio = (0.5 * wet / np.abs(wet).max()).astype(np.float32)[None]
    tails = {amount: late_energy_db(SpeakUp(preset="restore", dereverb_amount=amount)(audio, 16000), speech)
             for amount in (0.0, 1.0)}
    assert tails[0.0] - tails[1.0] > 1.0, tails  # more than a level difference a listener notices (~1 dB)


def test_a_two_output_model_puts_noise_and_room_under_separate_control(tmp_path, monkeypatch):
    from stage_doubles import save_tiny_two_output_enhancer

    from speakup_fx.stages.base import hop_frames

    save_tiny_two_output_enhancer(tmp_path / "enhancer.safetensors")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    host = ModelHost("cpu")
    assert names(build_chain(1, ChainOptions(engine="neural"), {}, host))[:2] == ["NoiseAndRoomStage", "ResampleStage"]
    x = synthetic.noisy_speech(0.5, 16000)
    stream = host.stream("enhancer", 1)
    denoised, dereverberated = stream.process(x)
    latency = stream.latency_samples

    def run(denoise_amount, dereverb_amount):
        stage = build_chain(1, ChainOptions(engine="neural"), {"denoise_amount": denoise_amount,
                                                                "dereverb_amount": dereverb_amount}, host)[0]
        return np.concatenate([stage.process(x[:, a : a + 4 * hop_frames(16000)])
                               for a in range(0, x.shape[1], 4 * hop_frames(16000))], axis=1)

    np.testing.assert_allclose(run(0.0, 0.0)[:, latency:], x[:, :-latency], atol=1e-7)
    np.testing.assert_allclose(run(1.0, 0.0), denoised, atol=1e-6)
    np.testing.assert_allclose(run(1.0, 1.0), dereverberated, atol=1e-6)
    assert np.abs(run(1.0, 1.0) - run(1.0, 0.0)).max() > 1e-4 and np.abs(run(0.5, 0.0) - run(1.0, 0.0)).max() > 1e-4
