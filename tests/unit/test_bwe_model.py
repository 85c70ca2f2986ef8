"""The bandwidth extenders: the streamable default keeps the input's band and streams exactly; the U-Net's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import synthetic
from speakup_fx.dsp.resample import resample
from speakup_fx.models.bwe import (
    BandwidthExtender,
    BandwidthExtenderConfig,
    KuleshovUNet,
    KuleshovUNetConfig,
    PolyphaseUpsampler,
)
from speakup_fx.runtime.weights import load_model, save_weights

TINY = BandwidthExtenderConfig(channels=8, dilations=(1, 2))
TINY_SOURCE_7K = BandwidthExtenderConfig(channels=8, dilations=(1, 2), source_high_hz=7_000.0)
TINY_CROSSOVER_7K = BandwidthExtenderConfig(channels=8, dilations=(1, 2), crossover_hz=7_000.0, source_high_hz=7_000.0, first_copy_hz=7_600.0, features_high_hz=7_600.0)


def tiny_model(seed: int = 0, config: BandwidthExtenderConfig = TINY) -> BandwidthExtender:
    torch.manual_seed(seed)
    model = BandwidthExtender(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # random weights large enough that every path carries signal
            parameter.normal_(0.0, 0.2)
    return model


def speech_16k(duration_s: float = 0.5, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(synthetic.noisy_speech(duration_s, 16_000, 1, seed=seed).copy())[None]


def test_the_upsampler_is_the_project_resampler():
    x = synthetic.noisy_speech(0.3, 16_000, 1)[0]
    ours = PolyphaseUpsampler()(torch.from_numpy(x.copy())[None, None])[0, 0].numpy()
    np.testing.assert_allclose(ours, resample(x, 16_000, 48_000), atol=1e-6)


@pytest.mark.parametrize("config", [TINY, TINY_SOURCE_7K, TINY_CROSSOVER_7K], ids=["source_to_crossover", "source_to_7k", "crossover_7k"])
def test_streaming_equals_offline_for_any_split(config):
    model, x = tiny_model(config=config), speech_16k()
    hop = model.config.hop_samples
    with torch.no_grad():
        offline = model(x)
        padded = torch.nn.functional.pad(x, (0, 8 * hop))
        rng = np.random.default_rng(0)
        state, outputs, start = model.initial_state(1), [], 0
        while start < padded.shape[-1]:
            hops = min(int(rng.integers(1, 40)), (padded.shape[-1] - start) // hop)
            y, state = model.forward_stream(padded[..., start : start + hops * hop], state)
            outputs.append(y)
            start += hops * hop
    streamed = torch.cat(outputs, -1)[:, :1, model.latency_samples : model.latency_samples + offline.shape[-1]]
    assert offline.shape == (1, 1, 3 * x.shape[-1])
    assert (streamed - offline).abs().max().item() <= 1e-5


def test_the_output_is_the_upsampled_input_plus_a_band_above_the_crossover():
    model, x = tiny_model(), speech_16k()
    with torch.no_grad():
        extended = model(x)[0, 0].numpy()
    upsampled = resample(x[0, 0].numpy(), 16_000, 48_000)
    added = extended - upsampled
    spectrum = np.abs(np.fft.rfft(added)) ** 2
    hz = np.fft.rfftfreq(added.size, 1 / 48_000)
    below = spectrum[hz < 7_000].sum()
    above = spectrum[hz >= model.config.crossover_hz].sum()
    assert above > 0
    assert below < 1e-4 * above  # only the synthesis window's leakage reaches below the crossover


def test_the_source_band_ends_where_configured_and_every_copy_shifts_by_an_even_number_of_bins():
    bin_hz = 48_000 / BandwidthExtender(TINY).n_fft
    for config, top_hz in ((TINY, TINY.crossover_hz), (TINY_SOURCE_7K, 7_000.0)):
        model = BandwidthExtender(config)
        source_hz = model.source_index.numpy() * bin_hz
        shifts = np.arange(model.crossover_bin, model.bins) - model.source_index.numpy()
        assert source_hz.min() >= config.source_low_hz and source_hz.max() < top_hz
        assert source_hz.max() >= top_hz - 3 * bin_hz  # the source reaches up to its top
        assert np.all(shifts % 2 == 0) and np.all(shifts > 0)
    with pytest.raises(ValueError, match="source_high_hz"):
        BandwidthExtenderConfig(source_high_hz=8_000.0)


def test_bins_below_the_first_copy_take_the_top_of_the_source_and_those_above_it_keep_their_source():
    lowered, before = BandwidthExtender(TINY_CROSSOVER_7K), BandwidthExtender(TINY_SOURCE_7K)
    assert lowered.crossover_bin == 140 and before.crossover_bin == 152  # 50 Hz bins
    assert lowered.feature_bins == before.feature_bins == 152
    new = lowered.source_index[: before.crossover_bin - lowered.crossover_bin].numpy()
    np.testing.assert_array_equal(new, np.arange(128, 140))  # 6.4-7.0 kHz copied to 7.0-7.6 kHz
    np.testing.assert_array_equal(lowered.source_index[before.crossover_bin - lowered.crossover_bin :], before.source_index)
    assert np.all((np.arange(lowered.crossover_bin, lowered.bins) - lowered.source_index.numpy()) % 2 == 0)
    with pytest.raises(ValueError, match="first_copy_hz"):
        BandwidthExtenderConfig(crossover_hz=7_000.0, first_copy_hz=6_000.0)
    with pytest.raises(ValueError, match="features_high_hz"):
        BandwidthExtenderConfig(features_high_hz=9_000.0)


def test_batch_rows_do_not_affect_each_other():
    model = tiny_model()
    a, b = speech_16k(seed=1), speech_16k(seed=2)
    with torch.no_grad():
        together = model(torch.cat([a, b]))
        alone = model(b)
    assert (together[1:] - alone).abs().max().item() <= 1e-5


def test_silence_gives_silence_and_latency_is_whole_hops_plus_the_upsampler():
    model = tiny_model()
    with torch.no_grad():
        y = model(torch.zeros(1, 1, 1600))
    assert torch.isfinite(y).all() and y.abs().max().item() == 0.0
    assert model.latency_samples == model.upsampler.delay_samples + 480 * (1 + model.config.lookahead_frames)


def test_wrong_shapes_and_configs_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match="k \\* 160"):
        model.forward_stream(torch.zeros(1, 1, 100), model.initial_state(1))
    with pytest.raises(ValueError, match="batch"):
        model.forward_stream(torch.zeros(2, 1, 160), model.initial_state(1))
    with pytest.raises(ValueError, match="crossover_hz"):
        BandwidthExtenderConfig(crossover_hz=30_000.0)
    with pytest.raises(ValueError, match="levels"):
        KuleshovUNetConfig(levels=9)


def test_weights_round_trip_through_the_registry(tmp_path):
    model = tiny_model(seed=3)
    save_weights(model, tmp_path / "bwe.safetensors", {"step": "7"}, dtype=torch.float32)
    info, loaded = load_model(tmp_path / "bwe.safetensors")
    assert info.kind == "bandwidth_extension" and info.config == model.config and info.metadata["step"] == "7"
    x = speech_16k(0.2)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_the_kuleshov_unet_maps_16k_to_aligned_48k_of_any_length():
    torch.manual_seed(0)
    unet = KuleshovUNet(KuleshovUNetConfig(filters=(4, 6, 8, 8), kernel_sizes=(9, 7, 5, 3), levels=3)).eval()
    for frames in (160, 1001):
        x = torch.randn(2, 1, frames)
        with torch.no_grad():
            y = unet(x)
        assert y.shape == (2, 1, 3 * frames) and torch.isfinite(y).all()
    full = KuleshovUNet()  # the paper's sizes construct
    assert [conv.out_channels for conv in full.down] == [128, 384, 512, 512]
