"""Bandwidth extension in the chain: where it sits, that a full-band input keeps its own high band, block-size invariance."""

from __future__ import annotations

import numpy as np
import pytest
from stage_doubles import save_tiny_bandwidth_extender, save_tiny_enhancer

import synthetic
from speakup_fx.dsp.resample import resample
from speakup_fx.params import ChainOptions, default_params
from speakup_fx.presets import load_preset
from speakup_fx.runtime import weights as weights_module
from speakup_fx.runtime.host import ModelHost
from speakup_fx.stages.bandwidth import BandwidthExtensionStage
from speakup_fx.stages.chain import build_chain

RATE = 48_000
HOP = 480


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    save_tiny_enhancer(tmp_path / "enhancer.safetensors", seed=11)
    save_tiny_bandwidth_extender(tmp_path / "bandwidth_extension.safetensors", seed=5)
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    return tmp_path


def run(stage, audio, hops_per_block):
    stage.reset()
    size = hops_per_block * HOP
    return np.concatenate([stage.process(audio[:, i : i + size]) for i in range(0, audio.shape[1], size)], axis=1)


def band_energy(x: np.ndarray, low_hz: float, high_hz: float = RATE / 2) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1)) ** 2
    hz = np.fft.rfftfreq(x.shape[-1], 1 / RATE)
    return float(spectrum[..., (hz >= low_hz) & (hz <= high_hz)].sum())


def high_band_energy(x: np.ndarray) -> float:
    return band_energy(x, 9_000.0)


def band_limited_speech(channels: int = 1, duration_s: float = 1.0) -> np.ndarray:
    """Speech-like audio that went through 16 kHz (the engine's resampler), back at 48 kHz."""
    full = synthetic.noisy_speech(duration_s, RATE, channels, snr_db=30.0)
    return resample(resample(full, RATE, 16_000), 16_000, RATE)


def test_the_neural_chain_extends_after_the_enhancer_and_the_classic_one_after_its_denoiser(tiny_weights):
    host = ModelHost("cpu")
    neural = build_chain(1, ChainOptions(engine="neural", bandwidth_extension=True), default_params(), host)
    assert [type(s).__name__ for s in neural[:3]] == ["BlendStage", "ModelStage", "SpectralDenoiseStage"]
    assert (neural[1].input_sample_rate, neural[1].output_sample_rate) == (16_000, 48_000)
    classic = build_chain(1, load_preset("bandwidth-extension").options, default_params(), host)
    assert [type(s).__name__ for s in classic] == ["SpectralDenoiseStage", "BandwidthExtensionStage", "GainStage"]
    with pytest.raises(ValueError, match="ModelHost"):  # SpeakUp hands its host to any chain with a model
        build_chain(1, ChainOptions(bandwidth_extension=True), default_params())


def test_a_band_limited_input_gains_a_high_band_and_keeps_its_own_band(tiny_weights):
    stage = BandwidthExtensionStage(1, ModelHost("cpu"))
    audio = band_limited_speech()
    out = run(stage, audio, 10)
    delay = stage.latency_samples
    aligned = out[:, delay:]
    assert stage.gate == 1.0
    assert high_band_energy(aligned) > 1e3 * high_band_energy(audio[:, :-delay])
    change = band_energy(aligned - audio[:, :-delay], 0.0, 7_000.0)
    assert change <= 1e-6 * band_energy(audio[:, :-delay], 0.0, 7_000.0)  # below the model's crossover: the input's own


def test_a_full_band_input_passes_through_unchanged(tiny_weights):
    stage = BandwidthExtensionStage(2, ModelHost("cpu"))
    audio = np.asarray(synthetic.noisy_speech(1.0, RATE, 2, snr_db=30.0))
    out = run(stage, audio, 10)
    delay = stage.latency_samples
    assert stage.gate == 0.0
    np.testing.assert_allclose(out[:, delay:], audio[:, :-delay], atol=1e-6)


def test_the_stage_output_does_not_depend_on_the_block_size(tiny_weights):
    stage = BandwidthExtensionStage(2, ModelHost("cpu"))
    # band-limited, then full-band: the gate closes midway
    audio = np.concatenate([band_limited_speech(2, 0.5), np.asarray(synthetic.noisy_speech(0.5, RATE, 2, seed=3))], axis=1)
    reference = run(stage, audio, 1)
    for hops in (3, 7, 100):
        assert np.abs(run(stage, audio, hops) - reference).max() <= 1e-5


EXTENDING_PRESETS = ["video-call-rescue", "lecture-room"]
"""The presets with the bandwidth extension on (their comments say why)."""


def high_band_share_db(x: np.ndarray) -> float:
    """Energy above 9 kHz relative to the whole band, dB."""
    return 10 * np.log10(high_band_energy(x) / band_energy(x, 0.0) + 1e-30)


@pytest.mark.parametrize("preset", [*EXTENDING_PRESETS, "podcast"])
def test_a_16k_input_comes_out_full_band_from_the_presets_that_extend(tiny_weights, preset):
    from speakup_fx import SpeakUp

    assert load_preset(preset).options.bandwidth_extension == (preset in EXTENDING_PRESETS)  # podcast: asked for
    narrow = np.asarray(synthetic.noisy_speech(1.0, 16_000, 1, snr_db=30.0))
    extended = SpeakUp(preset=preset, bandwidth_extension=True)(narrow, 16_000, output_sample_rate=RATE)
    plain = SpeakUp(preset=preset, bandwidth_extension=False)(narrow, 16_000, output_sample_rate=RATE)
    assert high_band_share_db(plain) < -70.0  # what the preset gave before: nothing above 8 kHz
    assert high_band_share_db(extended) > -40.0


def test_podcast_with_the_extension_leaves_a_full_band_input_as_it_was_without_it(tiny_weights):
    from speakup_fx import SpeakUp

    audio = np.asarray(synthetic.noisy_speech(1.0, RATE, 2, snr_db=30.0))
    # leveler off: it starts from its reset state on the stage's leading delay, which moves its ride by ~0.3 %
    extending = SpeakUp(preset="podcast", leveler_amount=0.0, bandwidth_extension=True)
    plain = SpeakUp(preset="podcast", leveler_amount=0.0, bandwidth_extension=False)
    out, reference = extending(audio, RATE), plain(audio, RATE)
    assert extending.latency_samples > plain.latency_samples  # the stage's delay is reported and compensated
    assert high_band_share_db(reference) > -60.0  # a high band the stage could have changed
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset", ["video-call-rescue", "lecture-room"])
def test_a_full_band_input_stays_full_band_through_the_enhancer_presets_and_keeps_its_alignment(tiny_weights, preset):
    """The enhancer works at 16 kHz: a full-band input's own high band never survives it; the extension
    puts a predicted one in its place. The reported latency includes the model's (the sweep is not moved)."""
    from speakup_fx import SpeakUp

    audio = np.asarray(synthetic.noisy_speech(1.0, RATE, 1, snr_db=30.0))
    assert high_band_share_db(SpeakUp(preset=preset, bandwidth_extension=False)(audio, RATE)) < -70.0
    assert high_band_share_db(SpeakUp(preset=preset)(audio, RATE)) > -40.0
    sweep = synthetic.chirp(100.0, 6000.0, 0.5, RATE)
    out = SpeakUp(preset=preset, denoise_amount=0.0, dereverb_amount=0.0)(sweep, RATE)
    correlation = np.correlate(out[0], sweep[0], mode="full")
    assert int(np.argmax(correlation)) - (sweep.shape[1] - 1) == 0
