"""Loss functions: zero at the optimum, positive elsewhere, shapes checked."""

import pytest
import torch

from speakup_fx.train import losses


def test_reconstruction_losses_vanish_only_for_equal_signals():
    target = torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(0))
    assert losses.l1_loss(target, target).item() == 0.0
    assert losses.multi_resolution_stft_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    noisy = target + 0.1 * torch.randn_like(target)
    assert losses.l1_loss(noisy, target).item() > 0.01
    assert losses.multi_resolution_stft_loss(noisy, target).item() > 0.05


def test_stft_loss_is_a_mean_over_examples():
    gen = torch.Generator().manual_seed(1)
    out, tgt = torch.randn(4, 1, 4000, generator=gen), torch.randn(4, 1, 4000, generator=gen)
    halves = (losses.multi_resolution_stft_loss(out[:2], tgt[:2]) + losses.multi_resolution_stft_loss(out[2:], tgt[2:])) / 2
    torch.testing.assert_close(losses.multi_resolution_stft_loss(out, tgt), halves)


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
