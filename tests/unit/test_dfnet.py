"""DFNet: the runtime's model protocol, streaming equals offline, batch rows independent, latency, deep-filter alignment."""

import copy
import dataclasses
import json

import pytest
import torch

from speakup_fx.models.dfnet import DFNet, DFNetConfig, erb_band_widths, lengthen_filters, widen_state

HOP = 160


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DFNet(DFNetConfig(channels=32, df_bins=64)).eval()
    torch.nn.init.normal_(m.filters.weight, std=0.2)  # filters far from zero, so every tap and cache is exercised
    return m


def stream(model, x, block_hops):
    state, outputs, position = model.initial_state(x.shape[0]), [], 0
    for hops in block_hops:
        y, state = model.forward_stream(x[..., position : position + hops * HOP], state)
        outputs.append(y)
        position += hops * HOP
    return torch.cat(outputs, dim=-1)


def test_the_runtime_protocol():
    model = DFNet()
    assert (model.input_sample_rate, model.output_sample_rate) == (16_000, 16_000)
    assert model.output_names == ("denoised", "dereverberated")
    assert model.config.hop_samples == HOP
    json.dumps(dataclasses.asdict(model.config))  # the config travels as JSON in weight files
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.channels = 3


@torch.no_grad()
@pytest.mark.parametrize("block_hops", [[1] * 150, [75, 75], [3, 1, 7, 2, 11, 6, 64, 56]])
def test_streaming_output_equals_offline_output_delayed(model, block_hops):
    x = torch.randn(2, 1, 150 * HOP, generator=torch.Generator().manual_seed(1)) * 0.3
    offline = model(x)
    latency = model.latency_samples
    streamed = stream(model, x, block_hops)
    assert streamed.shape == (2, 2, x.shape[-1])
    torch.testing.assert_close(streamed[..., latency:], offline[..., : x.shape[-1] - latency], atol=1e-5, rtol=0)


def stepped(model, x, grad):
    """``x`` stepped one hop at a time: with ``grad``, through torch (as training would); without, on the CPU
    through NumPy (``DFNet._cpu_step``, the real-time host's path)."""
    with torch.set_grad_enabled(grad):
        return stream(model, x, [1] * (x.shape[-1] // HOP)).detach()


@pytest.mark.parametrize("config", [DFNetConfig(channels=32, df_bins=64),
                                    DFNetConfig(channels=16, df_order=5, lookahead_frames=2, df_lookahead_frames=2, conv_frames=2),
                                    DFNetConfig(channels=16, df_order=1, lookahead_frames=0, df_lookahead_frames=0)],
                         ids=["default", "long-filters-lookahead-2", "one-tap-no-lookahead"])
def test_the_numpy_hop_equals_the_torch_hop(config):
    torch.manual_seed(0)
    model = DFNet(config).eval()
    torch.nn.init.normal_(model.filters.weight, std=0.2)
    x = torch.randn(3, 1, 60 * HOP, generator=torch.Generator().manual_seed(6)) * 0.3
    torch.testing.assert_close(stepped(model, x, grad=False), stepped(model, x, grad=True), atol=1e-5, rtol=0)


def test_the_numpy_hop_follows_the_weights(model):
    """The NumPy hop reads the weights as they are: after in-place updates (an optimizer's), which its views share,
    and after a loaded state, whose new storage it picks up."""
    model = copy.deepcopy(model)
    x = torch.randn(1, 1, 20 * HOP, generator=torch.Generator().manual_seed(7)) * 0.3
    before = stepped(model, x, grad=False)
    with torch.no_grad():
        model.gains.bias.add_(1.0)
    updated = stepped(model, x, grad=False)
    assert not torch.allclose(updated, before, atol=1e-3)
    torch.testing.assert_close(updated, stepped(model, x, grad=True), atol=1e-5, rtol=0)
    noise = torch.Generator().manual_seed(8)
    state = {name: tensor + 0.01 * torch.randn(tensor.shape, generator=noise) for name, tensor in model.state_dict().items()}
    model.load_state_dict(state, assign=True)
    torch.testing.assert_close(stepped(model, x, grad=False), stepped(model, x, grad=True), atol=1e-5, rtol=0)


@torch.no_grad()
def test_the_one_frame_overlap_add_equals_the_general_one(model):
    """A real-time host steps one frame at a time: that shortcut of the overlap-add sums what the fold sums."""
    frames_out = torch.randn(2, 6, 2, 480, generator=torch.Generator().manual_seed(4))
    tail = torch.randn(2, 2, 320, generator=torch.Generator().manual_seed(5))
    whole = model._overlap_add(frames_out, tail)
    pieces = []
    for t in range(frames_out.shape[1]):
        total = model._overlap_add(frames_out[:, t : t + 1], tail)
        pieces.append(total[..., :HOP])
        tail = total[..., HOP:]
    torch.testing.assert_close(torch.cat([*pieces, tail], dim=-1), whole, atol=1e-6, rtol=0)


@torch.no_grad()
def test_state_has_fixed_batch_first_shapes(model):
    state = model.initial_state(3)
    assert all(isinstance(v, torch.Tensor) and v.shape[0] == 3 for v in state.values())
    _, new = model.forward_stream(torch.randn(3, 1, 5 * HOP), state)
    assert {k: v.shape for k, v in new.items()} == {k: v.shape for k, v in state.items()}
    assert all(torch.equal(v, torch.zeros_like(v)) for v in model.initial_state(3).values())  # stepping left the old state alone


@torch.no_grad()
def test_batch_rows_are_independent(model):
    x = torch.randn(3, 1, 40 * HOP, generator=torch.Generator().manual_seed(2))
    x[1] *= 0.01  # a quiet row next to loud ones
    batched = model(x)
    for i in range(3):
        torch.testing.assert_close(model(x[i : i + 1]), batched[i : i + 1], atol=1e-5, rtol=0)


def test_the_model_builds_on_the_meta_device():
    """A host learns the latency and outputs of a weights file without loading it."""
    with torch.device("meta"):
        model = DFNet()
    assert model.latency_samples == 480 and model.window.is_meta


def test_latency_is_window_overlap_plus_lookahead_and_at_most_40_ms():
    assert DFNet().latency_samples == 480  # 30 ms
    assert DFNet(DFNetConfig(lookahead_frames=2)).latency_samples == 640
    assert DFNet().latency_samples <= 0.040 * DFNet.input_sample_rate


@torch.no_grad()
def test_unit_gains_and_a_unit_centre_tap_reconstruct_the_input():
    """Gains of one and a deep filter that passes the delayed frame give back the input: the STFT, the
    overlap-add and the filter taps line up with the frame the gains act on."""
    config = DFNetConfig(channels=16)
    model = DFNet(config).eval()
    for layer in (model.gains, model.filters):
        torch.nn.init.zeros_(layer.weight)
    model.gains.bias.fill_(40.0)  # sigmoid -> 1
    coefficients = torch.zeros(2, config.df_order, config.df_bins, 2)
    coefficients[:, config.df_order - 1 - config.df_lookahead_frames, :, 0] = 10.0  # tanh -> 1, real
    model.filters.bias.copy_(coefficients.flatten())
    x = torch.randn(1, 1, 50 * HOP, generator=torch.Generator().manual_seed(3)) * 0.3
    y = model(x)
    edge = config.fft_size  # the first window sees the zero start
    for output in range(2):
        torch.testing.assert_close(y[:, output, edge:], x[:, 0, edge:], atol=1e-4, rtol=0)


@torch.no_grad()
def test_output_has_input_length_and_silence_stays_finite(model):
    for frames in (1, 159, 161, 3333):
        y = model(torch.zeros(1, 1, frames))
        assert y.shape == (1, 2, frames) and torch.all(torch.isfinite(y))


def test_wrong_shapes_and_configs_raise(model):
    with pytest.raises(ValueError, match="x"):
        model.forward_stream(torch.zeros(1, 1, 100), model.initial_state(1))
    with pytest.raises(ValueError, match="state is for batch 2"):
        model.forward_stream(torch.zeros(1, 1, HOP), model.initial_state(2))
    with pytest.raises(ValueError, match="fft_size"):
        DFNetConfig(fft_size=500)
    with pytest.raises(ValueError, match="df_lookahead_frames"):
        DFNetConfig(lookahead_frames=0, df_lookahead_frames=1)


def test_erb_bands_cover_every_bin_and_widen_with_frequency():
    widths = erb_band_widths(16_000, 480, 32, 2)
    assert len(widths) == 32 and sum(widths) == 241 and min(widths) >= 2
    assert widths == sorted(widths)
    with pytest.raises(ValueError, match="do not fit"):
        erb_band_widths(16_000, 64, 32, 2)


GROWTHS = {
    # how a trained model grows: its new config, and the gradient that shows the new (zeroed) weights can learn
    "widened": (widen_state, {"channels": 48}, lambda m: m.gains.weight.grad[:, 32:]),  # the fixture has 32 channels
    "lengthened": (lengthen_filters, {"df_order": 6}, lambda m: m.filters.bias.grad.unflatten(0, (2, 6, -1))[:, :3]),
}


@pytest.mark.parametrize("growth", sorted(GROWTHS))
def test_a_grown_model_keeps_the_function_and_its_new_weights_can_learn(model, growth):
    grow, changes, new_weights_grad = GROWTHS[growth]
    torch.manual_seed(1)
    grown = DFNet(dataclasses.replace(model.config, **changes)).eval()
    grown.load_state_dict(grow(model.state_dict(), model.config, grown))
    x = 0.1 * torch.randn(2, 1, 40 * HOP)
    with torch.no_grad():
        before, after = model(x), grown(x)
    # the same sums plus exact zeros; only the kernels' summation order may differ
    assert torch.allclose(after, before, rtol=0, atol=1e-5 * before.abs().max().item())
    grown.train()
    grown(x).square().mean().backward()
    assert new_weights_grad(grown).abs().max() > 0  # the zeroed weights get gradients: they start learning


def test_widening_refuses_other_config_changes(model):
    with pytest.raises(ValueError, match="channels >= 32"):
        widen_state(model.state_dict(), model.config, DFNet(dataclasses.replace(model.config, channels=16)))
    with pytest.raises(ValueError, match="same DFNet config"):
        widen_state(model.state_dict(), model.config, DFNet(dataclasses.replace(model.config, channels=48, df_bins=32)))


def test_lengthening_refuses_other_config_changes(model):
    with pytest.raises(ValueError, match="df_order >= 3"):
        lengthen_filters(model.state_dict(), model.config, DFNet(dataclasses.replace(model.config, df_order=2)))
    with pytest.raises(ValueError, match="same DFNet config"):
        lengthen_filters(model.state_dict(), model.config, DFNet(dataclasses.replace(model.config, df_order=6, channels=48)))

