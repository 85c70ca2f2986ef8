"""Small pure loss functions; tensors are ``(batch, 1, time)`` unless stated."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256))
"""(n_fft, hop) pairs of the multi-resolution STFT loss."""

LOG_FLOOR = 1e-5
"""Magnitude floor of the log term (about -100 dB): digital silence in the target must not dominate."""

_windows: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}


def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    key = (n_fft, like.device, like.dtype)
    if key not in _windows:
        _windows[key] = torch.hann_window(n_fft, device=like.device, dtype=like.dtype)
    return _windows[key]


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape or output.ndim != 3:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must both be (batch, channels, time)")


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute waveform error."""
    _check_pair(output, target)
    return F.l1_loss(output, target)


def multi_resolution_stft_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over ``STFT_RESOLUTIONS`` (Yamamoto et al. 2020)."""
    _check_pair(output, target)
    total = output.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        spectra = [
            torch.stft(s.reshape(-1, s.shape[-1]), n_fft, hop, window=_window(n_fft, s), return_complex=True).abs().clamp_min(LOG_FLOOR)
            for s in (output, target)
        ]
        out_mag, tgt_mag = spectra
        # per-example spectral convergence, so a batch mean equals the mean of its shards' means (DDP)
        convergence = (torch.linalg.norm(tgt_mag - out_mag, dim=(-2, -1)) / torch.linalg.norm(tgt_mag, dim=(-2, -1)).clamp_min(LOG_FLOOR)).mean()
        total = total + convergence + F.l1_loss(out_mag.log(), tgt_mag.log())
    return total / len(STFT_RESOLUTIONS)


COMPRESSION = 0.3
"""Power-law exponent of the compressed-spectrum loss (Braun & Tashev 2021)."""

COMPLEX_SHARE = 0.3
"""Share of the complex (phase-aware) term in the compressed-spectrum loss; the rest is magnitude."""


def compressed_spectrum_loss(output: torch.Tensor, target: torch.Tensor, n_fft: int = 512, hop: int = 128) -> torch.Tensor:
    """MSE of power-law compressed spectra ``|X|^0.3 e^{j phase}``: 0.3 x complex + 0.7 x magnitude (Braun & Tashev 2021).

    Unlike the log term of the multi-resolution loss it weighs bins by their (compressed) energy,
    so near-silent bins do not push the model to over-suppress.
    """
    _check_pair(output, target)
    (out_mag, out_complex), (tgt_mag, tgt_complex) = _compressed_spectra(output, n_fft, hop), _compressed_spectra(target, n_fft, hop)
    return COMPLEX_SHARE * 2 * F.mse_loss(out_complex, tgt_complex) + (1 - COMPLEX_SHARE) * F.mse_loss(out_mag, tgt_mag)


COMPRESSED_RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 128), (512, 256), (1024, 512))
"""(n_fft, hop) pairs of the multi-resolution compressed-spectrum terms (half overlap: half the cost of quarter)."""


def _compressed_spectra(x: torch.Tensor, n_fft: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``|X|^0.3`` and ``|X|^0.3 e^{j phase}`` (as real pairs) of every channel of ``x``; real arithmetic (faster autograd)."""
    spectrum = torch.view_as_real(torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, window=_window(n_fft, x), return_complex=True))
    real, imag = spectrum.unbind(-1)
    power = (real.square() + imag.square()).clamp_min(LOG_FLOOR**2)
    scale = power ** ((COMPRESSION - 1) / 2)  # |X|^(0.3 - 1): one power law serves both spectra
    return power.sqrt() * scale, spectrum * scale[..., None]


class CompressedSpectra:
    """The compressed spectra of an (output, target) pair at each of ``COMPRESSED_RESOLUTIONS``, computed on first
    use, so the terms that share them (``gen/mrspec`` and ``gen/oversup``) pay for one set of STFTs."""

    def __init__(self, output: torch.Tensor, target: torch.Tensor):
        _check_pair(output, target)
        self.output, self.target = output, target
        self._pairs: dict[tuple[int, int], tuple] = {}

    def at(self, n_fft: int, hop: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """((output magnitude, output complex), (target magnitude, target complex)) at this resolution."""
        if (n_fft, hop) not in self._pairs:
            self._pairs[n_fft, hop] = _compressed_spectra(self.output, n_fft, hop), _compressed_spectra(self.target, n_fft, hop)
        return self._pairs[n_fft, hop]


def _spectra_of(output: torch.Tensor, target: torch.Tensor, spectra: CompressedSpectra | None) -> CompressedSpectra:
    if spectra is None:
        return CompressedSpectra(output, target)
    if spectra.output is not output or spectra.target is not target:
        raise ValueError("spectra: computed for another (output, target) pair")
    return spectra


def multi_resolution_compressed_loss(output: torch.Tensor, target: torch.Tensor, spectra: CompressedSpectra | None = None) -> torch.Tensor:
    """``compressed_spectrum_loss`` (magnitude + complex MSE of ``|X|^0.3`` spectra) averaged over ``COMPRESSED_RESOLUTIONS``;
    ``spectra``: this pair's, when other terms share them."""
    spectra = _spectra_of(output, target, spectra)
    total = output.new_zeros(())
    for n_fft, hop in COMPRESSED_RESOLUTIONS:
        (out_mag, out_complex), (tgt_mag, tgt_complex) = spectra.at(n_fft, hop)
        complex_error = 2 * F.mse_loss(out_complex, tgt_complex)  # the mean over bins of the squared distance
        total = total + COMPLEX_SHARE * complex_error + (1 - COMPLEX_SHARE) * F.mse_loss(out_mag, tgt_mag)
    return total / len(COMPRESSED_RESOLUTIONS)


def over_suppression_loss(output: torch.Tensor, target: torch.Tensor, low_bin_share: float = 0.0, spectra: CompressedSpectra | None = None) -> torch.Tensor:
    """Squared shortfall of the output's compressed magnitude below the target's (only where it is below),
    averaged over ``COMPRESSED_RESOLUTIONS``: added to a symmetric term it makes removing speech cost more
    than leaving noise.

    Bins below ``low_bin_share`` of the Nyquist frequency are left to the symmetric terms: there the
    target holds only the window's leakage of the lowest harmonics, and penalising any shortfall teaches
    the model to keep all low-frequency rumble. ``spectra``: this pair's, when other terms share them.
    """
    spectra = _spectra_of(output, target, spectra)
    total = output.new_zeros(())
    for n_fft, hop in COMPRESSED_RESOLUTIONS:
        (out_mag, _), (tgt_mag, _) = spectra.at(n_fft, hop)
        first = math.ceil(low_bin_share * (n_fft // 2))
        total = total + torch.relu(tgt_mag - out_mag).narrow(-2, first, out_mag.shape[-2] - first).square().mean()
    return total / len(COMPRESSED_RESOLUTIONS)


ENERGY_FLOOR = 1e-8
"""Energy floor of the SI-SDR ratio and the STOI envelopes and norms (keeps them differentiable at zero)."""


def si_sdr_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative scale-invariant SDR in dB (Le Roux et al. 2019), mean over examples and channels."""
    _check_pair(output, target)
    est, ref = output.reshape(-1, output.shape[-1]), target.reshape(-1, target.shape[-1])
    scale = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + ENERGY_FLOOR)
    projection = scale * ref
    ratio = (projection.square().sum(-1) + ENERGY_FLOOR) / ((est - projection).square().sum(-1) + ENERGY_FLOOR)
    return -10 * torch.log10(ratio).mean()


STOI_FRAME_S = 0.0256
"""STOI's analysis frame (256 samples at its 10 kHz), half-overlapped (Taal et al. 2011)."""

STOI_SEGMENT_FRAMES = 30
"""Frames in one STOI segment (384 ms), the span its envelopes are correlated over."""

STOI_BANDS = 15
"""One-third-octave bands from 150 Hz (up to about 4.3 kHz), as STOI."""

STOI_CLIP_DB = -15.0
"""STOI's lower bound on the signal-to-distortion ratio of a band segment, dB."""

STOI_DYNAMIC_RANGE_DB = 40.0
"""Frames this far under the target's loudest frame are silence and do not count, as in STOI."""


def stoi_loss(output: torch.Tensor, target: torch.Tensor, sample_rate: int = 16_000) -> torch.Tensor:
    """One minus a differentiable STOI (Taal et al. 2011) computed at ``sample_rate``: envelopes of 15
    one-third-octave bands in 25.6 ms frames; frames 40 dB under the target's loudest dropped; each 384 ms segment
    of the output scaled to the target's energy, clipped at -15 dB SDR and correlated with the target's; the mean
    over signals (a signal with under one segment of speech counts zero). It rewards keeping the speech's
    temporal envelope, which over-suppression breaks."""
    _check_pair(output, target)
    frame = round(STOI_FRAME_S * sample_rate)
    n_fft = 1 << (frame - 1).bit_length()
    shortest = (STOI_SEGMENT_FRAMES - 1) * (frame // 2) + n_fft
    if output.shape[-1] < shortest:
        raise ValueError(f"stoi_loss: {output.shape[-1]} samples, a STOI segment needs at least {shortest} at {sample_rate} Hz")
    centres = 150.0 * 2.0 ** (torch.arange(STOI_BANDS, dtype=output.dtype, device=output.device) / 3)
    bins = torch.arange(n_fft // 2 + 1, dtype=output.dtype, device=output.device) * sample_rate / n_fft
    bands = ((bins >= centres[:, None] * 2 ** (-1 / 6)) & (bins < centres[:, None] * 2 ** (1 / 6))).to(output.dtype)
    window = _window(frame, output)

    power = lambda x: torch.stft(x.reshape(-1, x.shape[-1]), n_fft, frame // 2, frame, window=window, center=False, return_complex=True).abs().square()
    envelopes = lambda p: (bands @ p + ENERGY_FLOOR).sqrt()  # (signals, bands, frames)
    norm = lambda x: (x.square().sum(-1) + ENERGY_FLOOR).sqrt()  # differentiable at zero
    target_power = power(target)
    frame_energy = target_power.sum(1)
    active = frame_energy > frame_energy.amax(-1, keepdim=True) * 10 ** (-STOI_DYNAMIC_RANGE_DB / 10)
    scores = []
    for out_env, tgt_env, keep in zip(envelopes(power(output)), envelopes(target_power), active):
        if int(keep.sum()) < STOI_SEGMENT_FRAMES:
            scores.append(output.new_zeros(()))
            continue
        out_seg, tgt_seg = (e[:, keep].unfold(-1, STOI_SEGMENT_FRAMES, 1) for e in (out_env, tgt_env))  # (bands, segments, frames)
        clipped = torch.minimum(out_seg * (norm(tgt_seg) / norm(out_seg))[..., None], tgt_seg * (1 + 10 ** (-STOI_CLIP_DB / 20)))
        centred = [x - x.mean(-1, keepdim=True) for x in (clipped, tgt_seg)]
        scores.append(((centred[0] * centred[1]).sum(-1) / (norm(centred[0]) * norm(centred[1]))).mean())
    return 1 - torch.stack(scores).mean()


RECONSTRUCTION_LOSSES = {
    "gen/l1": l1_loss,
    "gen/stft": multi_resolution_stft_loss,
    "gen/spec": compressed_spectrum_loss,
    "gen/mrspec": multi_resolution_compressed_loss,
    "gen/oversup": over_suppression_loss,
    "gen/sisdr": si_sdr_loss,
    "gen/stoi": stoi_loss,
}
"""Reconstruction terms by logged name (training and validation use the weighted ones)."""

ADVERSARIAL_LOSS_NAMES = ("adv/gen", "adv/feat")


def lsgan_discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real -> 1, fake -> 0, summed over discriminators."""
    return sum(((1 - r) ** 2).mean() + (f**2).mean() for r, f in zip(real_scores, fake_scores, strict=True))


def lsgan_generator_loss(fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: the generator wants fake -> 1, summed over discriminators."""
    return sum(((1 - f) ** 2).mean() for f in fake_scores)


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]) -> torch.Tensor:
    """Deep feature matching: L1 between discriminator activations on real and fake, mean over layers, summed over discriminators."""
    total = 0.0
    for real_layers, fake_layers in zip(real_features, fake_features, strict=True):
        total = total + sum(F.l1_loss(f, r.detach()) for r, f in zip(real_layers, fake_layers, strict=True)) / len(real_layers)
    return total
