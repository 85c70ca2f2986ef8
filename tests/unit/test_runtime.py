"""Runtime: the weights format, ModelHost's devices, shared loads, streams and batching."""

import json

import numpy as np
import pytest
import synthetic
import torch
from safetensors.torch import load_file, save_file
from stage_doubles import save_tiny_enhancer

from speakup_fx.runtime import weights as weights_module
from speakup_fx.runtime.batching import run_batched
from speakup_fx.runtime.device import check_device, resolve_device
from speakup_fx.runtime.host import ModelHost, loaded_model_count, shared_host
from speakup_fx.runtime.weights import WeightsError, content_hash, load_model, read_info

HOP = 160
TOLERANCE = 1e-5  # the design tolerance: batch vs single and block vs whole differ by float32 rounding only


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny_enhancer(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def host():
    return ModelHost("cpu")


def noisy(seconds, channels=1, seed=0):
    return np.array(synthetic.noisy_speech(seconds, 16_000, channels=channels, seed=seed), dtype=np.float32)


def test_a_weights_file_rebuilds_its_model_from_the_file_alone(weights):
    info = read_info(weights)
    assert (info.kind, info.architecture.name) == ("enhancer", "streaming")
    assert info.config.channels == 16 and info.metadata["format_version"] == weights_module.FORMAT_VERSION
    _, model = load_model(weights)
    reference = info.architecture.model_class(info.config)
    reference.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    x = torch.from_numpy(noisy(0.3))[None]
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), reference(x).numpy(), atol=1e-6)


def rewrite(source, target, tensors=None, **metadata_changes):
    """Copy a weights file with some tensors or metadata changed (None removes a key)."""
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as file:
        metadata = dict(file.metadata())
    tensors = tensors if tensors is not None else load_file(str(source))
    for key, value in metadata_changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    save_file(tensors, str(target), metadata=metadata)
    return target


def test_foreign_corrupt_or_mismatched_files_are_clear_errors_naming_the_file(weights, tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nothing.safetensors", "no file")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    cases["junk"] = (tmp_path / "junk.safetensors", "not a readable safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    cases["foreign"] = (tmp_path / "foreign.safetensors", "format_version")
    cases["kind"] = (rewrite(weights, tmp_path / "kind.safetensors", kind="vocoder"), "unknown model")
    cases["config"] = (rewrite(weights, tmp_path / "config.safetensors", config=json.dumps({"bogus": 1})), "bogus")
    mismatched = json.dumps({**json.loads(read_info(weights).metadata["config"]), "channels": 32})
    cases["shape"] = (rewrite(weights, tmp_path / "shape.safetensors", config=mismatched), "do not match")
    cases["nohash"] = (rewrite(weights, tmp_path / "nohash.safetensors", sha256=None), "sha256")
    for name, (path, message) in cases.items():
        with pytest.raises(WeightsError, match=message) as error:
            load_model(path)
        assert path.name in str(error.value), name


def test_a_flipped_byte_or_a_nan_weight_is_caught_at_load(weights, tmp_path):
    flipped = tmp_path / "flipped.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40
    flipped.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="hash mismatch"):
        load_model(flipped)
    tensors = load_file(str(weights))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    poisoned = rewrite(weights, tmp_path / "nan.safetensors", tensors, sha256=content_hash(tensors))
    with pytest.raises(WeightsError, match="non-finite"):
        load_model(poisoned)


def test_devices_are_checked_and_resolved():
    assert check_device(None) == "auto"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for bogus in ("bogus", "gpu", "cuda:x", "", 3):
        with pytest.raises(ValueError, match="device"):
            check_device(bogus)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ModelHost("cuda")


def test_the_host_sets_the_thread_count_it_is_given_and_nothing_else_does():
    before = torch.get_num_threads()
    try:
        ModelHost("cpu", num_threads=before + 1)
        assert torch.get_num_threads() == before + 1
        ModelHost("cpu")
        assert torch.get_num_threads() == before + 1
        with pytest.raises(ValueError, match="num_threads"):
            ModelHost("cpu", num_threads=0)
    finally:
        torch.set_num_threads(before)


def test_describing_a_model_loads_nothing(tmp_path):
    path = save_tiny_enhancer(tmp_path / "fresh.safetensors", seed=3)
    count = loaded_model_count()
    spec = ModelHost("cpu").describe("enhancer", path)
    assert (spec.hop_samples, spec.input_sample_rate, spec.output_names) == (HOP, 16_000, ("enhanced",))
    assert spec.latency_samples == 3 * HOP
    assert loaded_model_count() == count


def test_models_load_once_per_process_whatever_the_number_of_hosts_and_streams(weights):
    a, b = ModelHost("cpu").stream("enhancer", 1, weights), ModelHost("cpu").stream("enhancer", 2, weights)
    assert a.model is b.model
    count = loaded_model_count()
    shared_host("cpu").stream("enhancer", 1, weights)
    assert loaded_model_count() == count


def test_a_stream_equals_the_offline_model_delayed_for_any_hop_split(host, weights):
    x = noisy(1.0, channels=2)
    _, model = host.model("enhancer", weights)
    with torch.no_grad():
        whole = model(torch.from_numpy(x)[:, None]).numpy()[:, 0]
    stream = host.stream("enhancer", 2, weights)
    edges = np.cumsum([0, 1, 10, 3, 7, 2, 27, 50]) * HOP
    streamed = np.concatenate([stream.process(x[:, a:b])[0] for a, b in zip(edges[:-1], edges[1:])], axis=1)
    latency = stream.latency_samples
    assert np.max(np.abs(streamed[:, latency:] - whole[:, :-latency])) <= TOLERANCE


def test_reset_starts_a_stream_anew(host, weights):
    x = noisy(0.2)
    stream = host.stream("enhancer", 1, weights)
    first = stream.process(x)
    stream.process(x)
    stream.reset()
    np.testing.assert_array_equal(stream.process(x), first)


def test_a_batch_of_streams_equals_each_stream_stepped_alone_also_when_they_join_late(host, weights):
    audio = [noisy(0.6, 1, seed=1), noisy(0.6, 2, seed=2), noisy(0.6, 1, seed=3)]
    alone = [host.stream("enhancer", x.shape[0], weights) for x in audio]
    batched = [host.stream("enhancer", x.shape[0], weights) for x in audio]
    block = 4 * HOP
    for start in range(0, audio[0].shape[1], block):
        joined = [i for i in range(3) if i < 2 or start >= 8 * HOP]  # the third stream joins later
        blocks = [audio[i][:, start - (8 * HOP if i == 2 else 0):][:, :block] for i in joined]
        outputs = host.process_batch([(batched[i], b) for i, b in zip(joined, blocks)])
        for i, b, out in zip(joined, blocks, outputs):
            expected = alone[i].process(b)
            assert out.shape == expected.shape == (1, audio[i].shape[0], block)
            assert np.max(np.abs(out - expected)) <= TOLERANCE


def test_a_batch_may_mix_block_lengths_and_rejects_misuse(host, weights):
    a, b = host.stream("enhancer", 1, weights), host.stream("enhancer", 1, weights)
    ref_a, ref_b = host.stream("enhancer", 1, weights), host.stream("enhancer", 1, weights)
    xa, xb = noisy(0.1, seed=4)[:, : 2 * HOP], noisy(0.1, seed=5)[:, : 5 * HOP]
    out_a, out_b = host.process_batch([(a, xa), (b, xb)])
    assert np.max(np.abs(out_a - ref_a.process(xa))) <= TOLERANCE
    assert np.max(np.abs(out_b - ref_b.process(xb))) <= TOLERANCE
    with pytest.raises(ValueError, match="more than once"):
        host.process_batch([(a, xa), (a, xa)])
    with pytest.raises(ValueError, match="another ModelHost"):
        ModelHost("cpu").process_batch([(a, xa)])
    with pytest.raises(ValueError, match="k \\* 160"):
        a.process(np.zeros((1, 100), np.float32))
    with pytest.raises(ValueError, match="float32"):
        a.process(np.zeros((1, HOP), np.float64))
    with pytest.raises(ValueError, match=r"\(1, k"):
        a.process(np.zeros((2, HOP), np.float32))


def test_run_batched_steps_the_waiting_calls_of_each_model_as_one_batch_per_round(host, weights, tmp_path):
    other = save_tiny_enhancer(tmp_path / "other.safetensors", seed=1)  # another model of the same kind

    def two_calls(stream, block):
        first = yield stream, block[:, : 2 * HOP]
        second = yield stream, block[:, 2 * HOP :]
        return np.concatenate([first, second], axis=2)

    def no_call():
        yield from ()
        return "done"

    audio = [noisy(0.04, 1, seed=6), noisy(0.04, 2, seed=7), noisy(0.04, 1, seed=8)]
    files = [weights, weights, other]
    streams = [host.stream("enhancer", x.shape[0], w) for x, w in zip(audio, files)]
    batches = []
    with pytest.MonkeyPatch.context() as patch:
        original = host.process_batch
        patch.setattr(host, "process_batch", lambda calls: batches.append(len(calls)) or original(calls))
        *outputs, done = run_batched([two_calls(s, x) for s, x in zip(streams, audio)] + [no_call()])
    assert done == "done"
    assert batches == [2, 1, 2, 1]  # each round: the two streams of one model together, the other model apart
    for x, w, out in zip(audio, files, outputs):
        expected = host.stream("enhancer", x.shape[0], w).process(x)
        assert out.shape == expected.shape and np.max(np.abs(out - expected)) <= TOLERANCE


def test_the_shipped_enhancer_loads_and_streams():
    host = ModelHost("cpu")
    info = host.info("enhancer")
    assert info.path.stat().st_size < 20_000_000 and int(info.metadata["step"]) > 0
    stream = host.stream("enhancer", 1)
    y = stream.process(noisy(0.5))
    assert y.shape == (len(stream.spec.output_names), 1, 8000) and np.all(np.isfinite(y))


def test_stream_state_stays_in_the_memory_allocated_for_it(host, weights):
    streams = [host.stream("enhancer", 1, weights), host.stream("enhancer", 2, weights)]
    pointers = [{name: t.data_ptr() for name, t in s.state.items()} for s in streams]
    for _ in range(3):
        host.process_batch([(streams[0], noisy(0.02)), (streams[1], noisy(0.02, 2))])
        streams[0].process(noisy(0.02))
    assert [{name: t.data_ptr() for name, t in s.state.items()} for s in streams] == pointers
