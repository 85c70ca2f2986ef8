"""Generators and discriminators: streaming equals offline, shapes are checked."""

import pytest
import torch

from speakup_fx.models.discriminators import DiscriminatorConfig, Discriminators
from speakup_fx.models.paper import PaperGenerator, PaperGeneratorConfig
from speakup_fx.models.streaming import CachedConv1d, StreamingGenerator, StreamingGeneratorConfig

HOP = 160


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    g = StreamingGenerator(StreamingGeneratorConfig(channels=32, dilations=(1, 2, 4))).eval()
    torch.nn.init.normal_(g.postnet[-1].weight, std=0.1)  # a live postnet, so its cache is exercised too
    return g


def stream(generator, x, block_hops):
    state, outputs, position = generator.initial_state(x.shape[0]), [], 0
    for hops in block_hops:
        y, state = generator.forward_stream(x[..., position : position + hops * HOP], state)
        outputs.append(y)
        position += hops * HOP
    return torch.cat(outputs, dim=-1)


@torch.no_grad()
@pytest.mark.parametrize("block_hops", [[1] * 30, [10, 10, 10], [3, 1, 7, 2, 11, 6]])
def test_streaming_output_equals_offline_output_delayed(generator, block_hops):
    x = torch.randn(2, 1, 30 * HOP, generator=torch.Generator().manual_seed(1)) * 0.3
    offline = generator(x)
    latency = generator.latency_samples
    streamed = stream(generator, x, block_hops)
    torch.testing.assert_close(streamed[..., latency:], offline[..., : x.shape[-1] - latency], atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("dilation", [1, 4])
def test_cached_conv_steps_frame_by_frame_as_the_conv_kernel_does_in_one_call(dilation):
    """Short calls gather the dilated taps for one GEMM, long calls use the conv kernel: the same sums."""
    torch.manual_seed(0)
    conv = CachedConv1d(5, 3, kernel_size=3, dilation=dilation)
    x = torch.randn(2, 40, 5)  # channels-last, long enough for the conv kernel
    whole, whole_cache = conv.step(x, conv.zero_cache(2, x))
    cache, frames = conv.zero_cache(2, x), []
    for t in range(x.shape[1]):
        y, cache = conv.step(x[:, t : t + 1], cache)
        frames.append(y)
    torch.testing.assert_close(torch.cat(frames, dim=1), whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(cache, whole_cache, atol=0, rtol=0)


def test_default_latency_is_one_hop_plus_lookahead():
    assert StreamingGenerator().latency_samples == 3 * HOP


@torch.no_grad()
def test_batch_equals_single_items(generator):
    x = torch.randn(3, 1, 4000, generator=torch.Generator().manual_seed(2))
    batched = generator(x)
    for i in range(3):
        torch.testing.assert_close(generator(x[i : i + 1]), batched[i : i + 1], atol=1e-5, rtol=0)


@torch.no_grad()
def test_offline_output_has_input_length_and_silence_stays_finite(generator):
    for frames in (1, 159, 161, 3333):
        y = generator(torch.zeros(1, 1, frames))
        assert y.shape == (1, 1, frames) and torch.all(torch.isfinite(y))


def test_streaming_generator_rejects_wrong_shapes(generator):
    with pytest.raises(ValueError, match="x"):
        generator(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="k \\* 160"):
        generator.forward_stream(torch.zeros(1, 1, 100), generator.initial_state(1))
    with pytest.raises(ValueError, match="batch"):
        generator.forward_stream(torch.zeros(2, 1, HOP), generator.initial_state(1))


def test_paper_generator_keeps_length_and_rejects_wrong_shapes():
    g = PaperGenerator(PaperGeneratorConfig(channels=8, dilations=(1, 2), postnet_layers=2, postnet_channels=4, postnet_kernel=5))
    assert g(torch.randn(2, 1, 1000)).shape == (2, 1, 1000)
    with pytest.raises(ValueError, match="x"):
        g(torch.randn(2, 1000))
    with pytest.raises(ValueError, match="postnet_kernel"):
        PaperGenerator(PaperGeneratorConfig(postnet_kernel=4))


def test_postnets_start_as_identity():
    x = torch.randn(1, 1, 1600)
    g = PaperGenerator(PaperGeneratorConfig(channels=8, dilations=(1,), postnet_layers=2, postnet_channels=4, postnet_kernel=5))
    with torch.no_grad():
        assert torch.equal(g.postnet(x), torch.zeros_like(x))


def test_discriminators_score_three_waveform_scales_and_the_mel_spectrogram():
    d = Discriminators(DiscriminatorConfig(waveform_channels=4, waveform_max_channels=16, mel_bins=20, mel_fft=256, mel_hop=64, mel_channels=4))
    scores, features = d(torch.randn(2, 1, 8000))
    assert len(scores) == len(features) == 4
    assert [s.shape[-1] for s in scores[:3]] == [125, 63, 32]
    assert scores[3].ndim == 4 and all(f.shape[0] == 2 for fs in features for f in fs)
    with pytest.raises(ValueError, match="x"):
        d(torch.randn(2, 8000))
