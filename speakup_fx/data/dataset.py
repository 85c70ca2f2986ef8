"""Degraded training pairs drawn on the fly, each reproducible from (seed, epoch, index)."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from speakup_fx.data.corpus import ManifestRow, load_mono
from speakup_fx.data.degrade import Degrader, band_limit, rms_db

logger = logging.getLogger(__name__)

VALIDATION_EPOCH = -1
"""Epoch number of the fixed validation draws (training epochs count from 0)."""

_MIN_SPEECH_DB = -55.0


PACKED_SUFFIX = ".opus"
"""What ``train/travel.py`` appends to a packed copy's name (``x.flac`` -> ``x.flac.opus``)."""


def is_validation_file(path: Path, share: float = 0.02) -> bool:
    """Whether a speech file is held out for validation (stable hash of its name; a packed copy's counts as its source's)."""
    return zlib.crc32(path.name.removesuffix(PACKED_SUFFIX).encode()) % 10_000 < share * 10_000


class DegradedSpeech(Dataset):
    """Item ``(epoch, index)`` -> ``(noisy, target)`` float32 tensors ``(1, segment_samples)`` and
    ``(len(targets), segment_samples)`` (the kinds of ``Degrader.degrade``).

    A speech file whose band ends early (``ManifestRow.band_hz``, a codec's) gives a noisy input and targets
    band-limited alike, so no target asks for speech, or for noise removal, where the file has none."""

    def __init__(
        self,
        speech: list[ManifestRow],
        degrader: Degrader,
        segment_samples: int,
        seed: int,
        targets: tuple[str, ...] = ("dry",),
        lead_silence_prob: float = 0.0,
        lead_silence_s_range: tuple[float, float] = (0.2, 1.0),
    ):
        if not speech:
            raise ValueError("speech: no speech files")
        if not 0 <= lead_silence_prob <= 1:
            raise ValueError(f"lead_silence_prob {lead_silence_prob} outside [0, 1]")
        low_s, high_s = lead_silence_s_range
        if lead_silence_prob and not 0 <= low_s <= high_s < segment_samples / degrader.config.sample_rate:
            raise ValueError(f"lead_silence_s_range {lead_silence_s_range} must be ordered and shorter than the {segment_samples} samples segment")
        self.speech = speech
        self.degrader = degrader
        self.segment_samples = segment_samples
        self.seed = seed
        self.targets = targets
        self.lead_silence_prob = lead_silence_prob
        self.lead_silence_s_range = lead_silence_s_range
        durations = np.array([row.duration_s for row in speech])
        self.weights = durations / durations.sum()

    def __len__(self) -> int:
        return len(self.speech)

    def clean_segment(self, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        """A random speech segment (zero-padded when the file is short) and its file's ``band_hz``, re-drawn while
        near silent; with chance ``lead_silence_prob`` it starts after a drawn silence: the noise alone first, as
        recordings start, where the model has no speech level to go by yet (training crops are cut from inside
        utterances)."""
        sample_rate = self.degrader.config.sample_rate
        silence = 0
        if self.lead_silence_prob > 0 and rng.random() < self.lead_silence_prob:  # no draw when off: old draws stay
            silence = int(rng.uniform(*self.lead_silence_s_range) * sample_rate)
        speech_samples = self.segment_samples - silence
        for _ in range(10):
            row = self.speech[int(rng.choice(len(self.speech), p=self.weights))]
            if row.sample_rate == sample_rate:
                frames = int(round(row.duration_s * sample_rate))
                start = int(rng.integers(max(frames - speech_samples, 0) + 1))
                audio, _ = sf.read(row.path, start=start, frames=speech_samples, dtype="float32", always_2d=True)
                audio = audio[:, 0]
            else:
                audio = load_mono(row.path, sample_rate)
                start = int(rng.integers(max(len(audio) - speech_samples, 0) + 1))
                audio = audio[start : start + speech_samples]
            audio = np.pad(audio, (silence, speech_samples - len(audio)))
            if rms_db(audio) > _MIN_SPEECH_DB:
                break
        return audio, row.band_hz

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        rng = np.random.default_rng([self.seed, epoch + 1, index])
        clean, band_hz = self.clean_segment(rng)
        params = self.degrader.draw(rng)
        noisy, target = self.degrader.degrade(clean, params, self.targets)
        if band_hz is not None:
            rate = self.degrader.config.sample_rate
            noisy, target = band_limit(noisy, band_hz, rate), np.stack([band_limit(t, band_hz, rate) for t in target])
        return torch.from_numpy(noisy)[None], torch.from_numpy(target)


class BlendedPairs(Dataset):
    """Item ``(epoch, index)`` from ``extra`` with chance ``extra_share`` (drawn from ``(seed, epoch, index)``,
    so every rank and worker agrees), else from ``main``; both take ``(epoch, index)`` items of one shape."""

    def __init__(self, main: Dataset, extra: Dataset, extra_share: float, seed: int):
        if not 0 < extra_share < 1:
            raise ValueError(f"extra_share {extra_share} outside (0, 1)")
        self.main = main
        self.extra = extra
        self.extra_share = extra_share
        self.seed = seed

    def __len__(self) -> int:
        return len(self.main)

    def is_extra(self, epoch: int, index: int) -> bool:
        return np.random.default_rng([self.seed, epoch + 1, index, 1]).random() < self.extra_share

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.extra if self.is_extra(*item) else self.main)[item]


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` for this rank's share of ``examples_per_epoch``; call ``set_epoch`` each epoch."""

    def __init__(self, examples_per_epoch: int, rank: int = 0, world_size: int = 1):
        if examples_per_epoch % world_size:
            raise ValueError(f"examples_per_epoch {examples_per_epoch} must divide by world size {world_size}")
        self.examples_per_epoch = examples_per_epoch
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.examples_per_epoch // self.world_size

    def __iter__(self):
        return iter([(self.epoch, i) for i in range(self.rank, self.examples_per_epoch, self.world_size)])
