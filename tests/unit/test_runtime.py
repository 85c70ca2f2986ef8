"""Runtime: weights round-trip through safetensors, stream equals enhance delayed, bad files raise."""

import json

import numpy as np
import pytest
import synthetic
import torch
from safetensors.torch import save_file

from speakup_fx.models.streaming import StreamingGenerator, StreamingGeneratorConfig
from speakup_fx.params import default_params
from speakup_fx.runtime.enhancer import DEFAULT_WEIGHTS, load_enhancer, save_weights
from speakup_fx.stages.neural import NeuralEnhanceStage

HOP = 160


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    generator = StreamingGenerator(StreamingGeneratorConfig(channels=16, dilations=(1, 2), postnet_channels=4))
    torch.nn.init.normal_(generator.postnet[-1].weight, std=0.1)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(generator, path)
    return path


@pytest.fixture(scope="module")
def enhancer(weights):
    return load_enhancer(weights, device="cpu")


def test_loaded_model_computes_what_was_saved(weights, enhancer):
    x = np.array(synthetic.noisy_speech(0.5, 16_000))
    expected = StreamingGenerator(enhancer.generator.config)
    expected.load_state_dict(enhancer.generator.state_dict())
    with torch.no_grad():
        reference = expected(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(enhancer.enhance(x), reference, atol=1e-5)


def test_stream_equals_enhance_delayed_for_any_hop_split(enhancer):
    x = np.array(synthetic.noisy_speech(1.0, 16_000, channels=2))
    whole = enhancer.enhance(x)
    stream = enhancer.stream()
    splits = [1, 10, 3, 7, 2, 27, 50]
    assert sum(splits) == 100
    edges = np.cumsum([0, *splits]) * HOP
    streamed = np.concatenate([stream.process(x[:, a:b]) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    latency = stream.latency_samples
    assert np.max(np.abs(streamed[:, latency:] - whole[:, :-latency])) <= 1e-4


def test_stream_reset_forgets_the_past(enhancer):
    x = np.array(synthetic.noisy_speech(0.2, 16_000))
    stream = enhancer.stream()
    first = stream.process(x)
    stream.process(x)
    stream.reset()
    np.testing.assert_array_equal(stream.process(x), first)


def test_enhance_keeps_shape_and_never_mutates_input(enhancer):
    x = np.array(synthetic.noisy_speech(0.3, 16_000, channels=2))[:, :4321]
    before = x.copy()
    y = enhancer.enhance(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(x, before)
    assert np.all(np.isfinite(enhancer.enhance(np.zeros((1, 1000), np.float32))))


def test_bad_input_raises(enhancer):
    with pytest.raises(ValueError, match="audio"):
        enhancer.enhance(np.zeros(1600, np.float32))
    with pytest.raises(TypeError, match="audio"):
        enhancer.enhance(np.zeros((1, 1600), np.int16))
    with pytest.raises(ValueError, match="NaN"):
        enhancer.enhance(np.full((1, 1600), np.nan, np.float32))
    with pytest.raises(ValueError, match="multiple of 160"):
        enhancer.stream().process(np.zeros((1, 100), np.float32))
    stream = enhancer.stream()
    stream.process(np.zeros((1, HOP), np.float32))
    with pytest.raises(ValueError, match="channels"):
        stream.process(np.zeros((2, HOP), np.float32))


def test_missing_or_corrupt_weights_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_enhancer(tmp_path / "nothing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_enhancer(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"), metadata={"format_version": "1", "generator": "streaming", "config": json.dumps({})})
    with pytest.raises(ValueError, match="do not match"):
        load_enhancer(tmp_path / "foreign.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "old.safetensors"), metadata={"format_version": "0"})
    with pytest.raises(ValueError, match="format_version"):
        load_enhancer(tmp_path / "old.safetensors")


def test_shipped_weights_load_and_enhance():
    enhancer = load_enhancer(device="cpu")
    assert enhancer.sample_rate == 16_000 and DEFAULT_WEIGHTS.stat().st_size < 20_000_000
    y = enhancer.enhance(np.array(synthetic.noisy_speech(0.5, 16_000)))
    assert y.shape == (1, 8000) and np.all(np.isfinite(y))


def run_stage(stage, x, block_hops):
    out, position = [], 0
    for hops in block_hops:
        out.append(stage.process(x[:, position : position + hops * HOP]))
        position += hops * HOP
    return np.concatenate(out, axis=1)


def test_neural_stage_output_does_not_depend_on_block_size(weights):
    x = np.array(synthetic.noisy_speech(0.6, 16_000, channels=2))
    a = run_stage(NeuralEnhanceStage(2, default_params(), weights), x, [1] * 60)
    b = run_stage(NeuralEnhanceStage(2, default_params(), weights), x, [7, 13, 40])
    assert a.shape == x.shape and np.max(np.abs(a - b)) <= 1e-5


def test_neural_stage_at_zero_amount_is_the_delayed_input(weights):
    x = np.array(synthetic.noisy_speech(0.3, 16_000))
    stage = NeuralEnhanceStage(1, {**default_params(), "denoise_amount": 0.0}, weights)
    y = run_stage(stage, x, [10] * 3)
    latency = stage.latency_samples
    np.testing.assert_allclose(y[:, latency:], x[:, :-latency], atol=1e-7)


def test_neural_stage_full_amount_equals_the_stream_and_validates_params(weights, enhancer):
    x = np.array(synthetic.noisy_speech(0.3, 16_000))
    stage = NeuralEnhanceStage(1, {**default_params(), "denoise_amount": 1.0}, weights)
    assert stage.latency_samples == enhancer.latency_samples
    np.testing.assert_allclose(stage.process(x), enhancer.stream().process(x), atol=1e-6)
    with pytest.raises(ValueError, match="denoise_amount"):
        stage.set_params({"denoise_amount": 2.0})
