"""Loss functions: zero at the optimum, positive elsewhere, shapes checked."""

import numpy as np
import pytest
import torch

from speakup_fx.train import losses
from speakup_fx.train.config import Config, from_dict
from speakup_fx.train.loop import reconstruction_losses


def test_reconstruction_losses_vanish_only_for_equal_signals():
    target = torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(0))
    assert losses.l1_loss(target, target).item() == 0.0
    assert losses.multi_resolution_stft_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    noisy = target + 0.1 * torch.randn_like(target)
    assert losses.l1_loss(noisy, target).item() > 0.01
    assert losses.multi_resolution_stft_loss(noisy, target).item() > 0.05
    assert losses.compressed_spectrum_loss(target, target).item() == pytest.approx(0.0, abs=1e-9)
    assert losses.compressed_spectrum_loss(noisy, target).item() > 0.01


@pytest.mark.parametrize("loss", list(losses.RECONSTRUCTION_LOSSES.values()), ids=list(losses.RECONSTRUCTION_LOSSES))
def test_reconstruction_losses_are_means_over_examples(loss):
    """So a DDP gradient average over equal shards equals the full-batch gradient."""
    gen = torch.Generator().manual_seed(1)
    out, tgt = torch.randn(4, 1, 8000, generator=gen), torch.randn(4, 1, 8000, generator=gen)
    torch.testing.assert_close(loss(out, tgt), (loss(out[:2], tgt[:2]) + loss(out[2:], tgt[2:])) / 2)


def test_compressed_spectrum_loss_grows_with_noise_and_sees_phase():
    target = torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(3))
    scores = [losses.compressed_spectrum_loss(target + g * noise, target).item() for g in (0.01, 0.1, 1.0)]
    assert scores == sorted(scores) and scores[0] > 0
    # a sign flip keeps every magnitude: only the complex term sees it
    flipped = losses.compressed_spectrum_loss(-target, target).item()
    magnitudes = torch.stft(target[0], 512, 128, window=torch.hann_window(512), return_complex=True).abs().clamp_min(losses.LOG_FLOOR)
    expected = losses.COMPLEX_SHARE * (2 * magnitudes**losses.COMPRESSION).square().mean().item()
    assert flipped == pytest.approx(expected, rel=1e-4)


def test_lsgan_losses_have_their_known_values():
    ones, zeros = [torch.ones(2, 1, 5)], [torch.zeros(2, 1, 5)]
    assert losses.lsgan_discriminator_loss(ones, zeros).item() == 0.0
    assert losses.lsgan_discriminator_loss(zeros, ones).item() == 2.0
    assert losses.lsgan_generator_loss(ones).item() == 0.0
    assert losses.lsgan_generator_loss(zeros + zeros).item() == 2.0


def test_feature_matching_is_l1_between_features():
    real = [[torch.zeros(1, 2, 3), torch.ones(1, 2)]]
    assert losses.feature_matching_loss(real, real).item() == 0.0
    fake = [[torch.ones(1, 2, 3), torch.ones(1, 2)]]
    assert losses.feature_matching_loss(real, fake).item() == pytest.approx(0.5)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="output"):
        losses.l1_loss(torch.zeros(1, 1, 100), torch.zeros(1, 1, 99))
    with pytest.raises(ValueError, match="output"):
        losses.multi_resolution_stft_loss(torch.zeros(1, 100), torch.zeros(1, 100))


def test_multi_resolution_compressed_loss_vanishes_only_for_equal_signals():
    target = torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(4))
    assert losses.multi_resolution_compressed_loss(target, target).item() == pytest.approx(0.0, abs=1e-9)
    scores = [losses.multi_resolution_compressed_loss(target + g * torch.randn_like(target), target).item() for g in (0.01, 0.1, 1.0)]
    assert scores == sorted(scores) and scores[0] > 0


def test_compressed_spectra_are_the_power_law_of_the_stft():
    x = torch.randn(2, 1, 8000, generator=torch.Generator().manual_seed(7))
    magnitude, complex_pairs = losses._compressed_spectra(x, 512, 256)
    spectrum = torch.stft(x.reshape(2, -1), 512, 256, window=torch.hann_window(512), return_complex=True)
    floored = spectrum.abs().clamp_min(losses.LOG_FLOOR)
    torch.testing.assert_close(magnitude, floored**losses.COMPRESSION, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.view_as_complex(complex_pairs), spectrum * floored ** (losses.COMPRESSION - 1), rtol=1e-5, atol=1e-7)


def test_compressed_terms_share_one_set_of_spectra(monkeypatch):
    gen = torch.Generator().manual_seed(8)
    target = torch.randn(2, 2, 8000, generator=gen)
    output = target + 0.3 * torch.randn(2, 2, 8000, generator=gen)
    alone = losses.multi_resolution_compressed_loss(output, target), losses.over_suppression_loss(output, target, 0.01)
    computed = []
    spectra_of = losses._compressed_spectra
    monkeypatch.setattr(losses, "_compressed_spectra", lambda x, n_fft, hop: computed.append(n_fft) or spectra_of(x, n_fft, hop))
    config = from_dict(Config, {"loss": {"weights": {"gen/mrspec": 1.0, "gen/oversup": 1.0}, "over_suppression_low_hz": 80.0}})
    terms = reconstruction_losses(config, output, target)
    assert sorted(computed) == sorted(2 * [n_fft for n_fft, _ in losses.COMPRESSED_RESOLUTIONS])  # output and target once each
    torch.testing.assert_close(terms["gen/mrspec"], alone[0])
    torch.testing.assert_close(terms["gen/oversup"], alone[1])
    with pytest.raises(ValueError, match="another"):
        losses.over_suppression_loss(target, output, spectra=losses.CompressedSpectra(output, target))


def test_over_suppression_counts_only_output_below_target():
    target = torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(5))
    assert losses.over_suppression_loss(2.0 * target, target).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.over_suppression_loss(0.5 * target, target).item() > 0.01
    # the symmetric term charges a 6 dB cut and a 6 dB boost alike (in compressed magnitude, about);
    # with the penalty the cut costs more
    # in compressed magnitude a 6 dB cut errs by 1 - 0.5^0.3 = 0.19 and a 6 dB boost by 2^0.3 - 1 = 0.23, so the
    # symmetric term charges the boost more; with the penalty added at equal weight the cut costs more
    def total(output):
        return (losses.multi_resolution_compressed_loss(output, target) + losses.over_suppression_loss(output, target)).item()

    assert losses.multi_resolution_compressed_loss(0.5 * target, target) < losses.multi_resolution_compressed_loss(2.0 * target, target)
    assert total(0.5 * target) > total(2.0 * target)


def test_over_suppression_can_leave_the_lowest_bins_to_the_symmetric_terms():
    t = torch.arange(16_000) / 16_000
    rumble, voice = torch.sin(2 * torch.pi * 30 * t), 0.3 * torch.sin(2 * torch.pi * 1000 * t)
    target = (rumble + voice)[None, None]
    share = 80.0 / 8000.0  # 80 Hz at 16 kHz
    rumble_removed, voice_removed = voice[None, None], rumble[None, None]
    # what remains is the 30 Hz tone's leakage through the 256-point window's main lobe into the 125 Hz bin
    assert losses.over_suppression_loss(rumble_removed, target, share) < 0.2 * losses.over_suppression_loss(rumble_removed, target)
    assert losses.over_suppression_loss(voice_removed, target, share).item() == pytest.approx(
        losses.over_suppression_loss(voice_removed, target).item(), rel=0.05
    )
    config = from_dict(Config, {"loss": {"weights": {"gen/oversup": 1.0}, "over_suppression_low_hz": 80.0}})
    terms = reconstruction_losses(config, rumble_removed, target)
    assert terms["gen/oversup"].item() == pytest.approx(losses.over_suppression_loss(rumble_removed, target, share).item())


def test_si_sdr_loss_is_minus_the_known_ratio_and_scale_invariant():
    gen = torch.Generator().manual_seed(6)
    target = torch.randn(3, 1, 4000, generator=gen)
    noise = torch.randn(3, 1, 4000, generator=gen)
    noise = noise - (noise * target).sum(-1, keepdim=True) / target.square().sum(-1, keepdim=True) * target  # orthogonal
    noise = noise * (target.square().sum(-1, keepdim=True) / noise.square().sum(-1, keepdim=True)).sqrt() * 10 ** (-10 / 20)
    assert losses.si_sdr_loss(target + noise, target).item() == pytest.approx(-10.0, abs=1e-3)
    assert losses.si_sdr_loss(0.1 * (target + noise), target).item() == pytest.approx(-10.0, abs=1e-3)


def test_stoi_loss_is_one_minus_stoi_within_its_approximation():
    """Frames at 16 kHz instead of STOI's 10 kHz, and silent frames dropped from the spectrum rather than from the
    waveform: it ranks noise levels as STOI does and stays near it on speech in white noise."""
    import synthetic

    from speakup_fx.eval.metrics import stoi

    rate = 16_000
    clean = synthetic.speech_like(3.0, rate)[0].copy()  # a writable copy of the cached signal, for torch.from_numpy
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))
    scores, references = [], []
    for snr_db in (20, 5, -5):
        noisy = clean + noise * np.float32(10 ** (-snr_db / 20))
        scores.append(1 - losses.stoi_loss(torch.from_numpy(noisy)[None, None], torch.from_numpy(clean)[None, None], rate).item())
        references.append(stoi(clean, noisy, rate))
    assert scores == sorted(scores, reverse=True) and scores[0] - scores[-1] > 0.2
    assert np.max(np.abs(np.array(scores) - references)) < 0.05
    target = torch.from_numpy(clean)[None, None]
    assert losses.stoi_loss(target, target, rate).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.stoi_loss(0.1 * target, target, rate).item() == pytest.approx(0.0, abs=1e-5)  # scale-invariant


def test_stoi_loss_has_finite_gradients_on_silence_and_refuses_a_too_short_signal():
    target = torch.randn(1, 1, 16_000, generator=torch.Generator().manual_seed(7))
    target[..., :8000] = 0
    for output in (target.clone(), torch.zeros_like(target)):
        output.requires_grad_(True)
        losses.stoi_loss(output, target).backward()
        assert torch.isfinite(output.grad).all()
    with pytest.raises(ValueError, match="STOI segment"):
        losses.stoi_loss(target[..., :6000], target[..., :6000])
