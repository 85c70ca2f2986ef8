"""Degraded training pairs written once and read back: WebDataset-style tar shards of FLAC pairs.

A shard set is a folder of ``shard-000000.tar``, ``shard-000001.tar``, ... and ``index.json``.
Pair ``i`` is ``DegradedSpeech[(SHARD_EPOCH, i)]`` (the training code's own draw and apply); it
lives in shard ``i // shard_size`` as ``{i:09d}.noisy.flac`` (mono) and ``{i:09d}.target.flac``
(one channel per target kind), 24-bit at the degradation rate. A teacher's set (``speakup spark
degrade --teacher``) lists in ``teacher_rejected`` the pairs whose label lost the speech; they stay in
the shards, for audit, and are not read back. A shard's bytes depend only on
the config, the seed and the indices it holds (tar headers carry no times or owners), so they do
not depend on which process wrote it; shards and the index are written atomically.
``ShardedPairs`` reads a set back as a training ``Dataset``; ``JoinedPairs`` reads several as one.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from speakup_fx.atomic import atomic_write

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_SHARD_SIZE = 256
INDEX_NAME = "index.json"
SHARD_EPOCH = 0
"""The ``DegradedSpeech`` epoch whose draws a shard set holds."""
SUBTYPE = "PCM_24"
FULL_SCALE = 1.0 - 2.0**-23
"""Largest value a 24-bit sample holds; pairs are clipped to it (and the clipped samples counted)."""


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.tar"


def shard_indices(shard: int, count: int, shard_size: int) -> range:
    """The pair indices shard ``shard`` holds: boundaries depend only on ``count`` and ``shard_size``."""
    return range(shard * shard_size, min((shard + 1) * shard_size, count))


def shard_count(count: int, shard_size: int) -> int:
    if count < 1 or shard_size < 1:
        raise ValueError(f"count and shard size must be >= 1, got {count} and {shard_size}")
    return -(-count // shard_size)


@dataclass(frozen=True)
class ShardSummary:
    shard: int
    pairs: int
    clipped_samples: int
    rejected: tuple[int, ...] = ()
    """Pairs whose teacher's label lost the speech (``spark.degrade.judged_label``)."""


def _flac(audio: np.ndarray, sample_rate: int) -> tuple[bytes, int]:
    """``audio`` float32 ``(channels, frames)`` as 24-bit FLAC bytes, clipped to full scale; and the clipped count."""
    clipped = int(np.count_nonzero(np.abs(audio) > FULL_SCALE))
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, FULL_SCALE).T, sample_rate, format="FLAC", subtype=SUBTYPE)
    return buffer.getvalue(), clipped


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # mtime 0, owner root, mode 0644: nothing that differs between runs
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def write_shard(
    folder: str | Path, shard: int, pairs: Iterable[tuple[int, np.ndarray, np.ndarray]], sample_rate: int
) -> ShardSummary:
    """Write ``(index, noisy (1, frames), target (targets, frames))`` pairs as shard ``shard`` of ``folder``, atomically."""
    clipped = written = 0
    with atomic_write(Path(folder) / shard_name(shard)) as temporary:
        with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as archive:
            for index, noisy, target in pairs:
                for part, audio in (("noisy", noisy), ("target", target)):
                    data, part_clipped = _flac(audio, sample_rate)
                    _add(archive, f"{index:09d}.{part}.flac", data)
                    clipped += part_clipped
                written += 1
    if clipped:
        logger.warning("%s: %d samples clipped at full scale", shard_name(shard), clipped)
    return ShardSummary(shard, written, clipped)


def write_index(folder: str | Path, info: dict) -> None:
    """Write ``index.json`` (``info`` plus the format version) atomically; it marks the set complete."""
    text = json.dumps({"format_version": FORMAT_VERSION, **info}, indent=2, sort_keys=True) + "\n"
    with atomic_write(Path(folder) / INDEX_NAME) as temporary:
        temporary.write_text(text)


def read_index(folder: str | Path) -> dict:
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"shards: no {INDEX_NAME} in {folder} (not a complete shard set)")
    info = json.loads(path.read_text())
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {info.get('format_version')!r}, expected {FORMAT_VERSION}")
    return info


class _EpochOrder(Dataset):
    """Item ``(epoch, index)`` -> ``(noisy (1, segment_samples), target (len(targets), segment_samples))`` tensors
    read from stored slot ``0 .. count - 1``: each epoch visits the slots in its own order (a permutation drawn
    from ``(seed, epoch)``); an epoch longer than the set wraps around."""

    seed: int
    count: int
    _order_epoch: int | None = None
    _order = np.arange(0)

    def __len__(self) -> int:
        return self.count

    def _position(self, epoch: int, index: int) -> int:
        """Where ``(epoch, index)`` falls in the set: this epoch's permutation, wrapped around."""
        if epoch != self._order_epoch:
            self._order = np.random.default_rng([self.seed, epoch + 1]).permutation(self.count)
            self._order_epoch = epoch
        return int(self._order[index % self.count])

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        return self._read(self._position(epoch, index))

    def _read(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ShardedPairs(_EpochOrder):
    """One shard set in epoch order (``_EpochOrder``). ``ValueError`` when the set was made for another
    rate, segment length or targets than the training asks for, or when a teacher's labels were all rejected.
    """

    def __init__(self, folder: str | Path, sample_rate: int, segment_samples: int, targets: tuple[str, ...], seed: int):
        self.folder = Path(folder)
        info = read_index(self.folder)
        wanted = {"sample_rate": sample_rate, "segment_samples": segment_samples, "targets": list(targets)}
        for key, value in wanted.items():
            if info[key] != value:
                raise ValueError(f"shards {folder}: made with {key} {info[key]!r}, training needs {value!r}")
        self.seed = seed
        self.teacher: str | None = info.get("teacher")
        """The system that labelled the targets (``speakup spark degrade --teacher``); None: the clean targets."""
        rejected = set(info.get("teacher_rejected", ()))
        self._members: list[tuple[str, int, int, int, int]] = []  # (shard file, noisy offset, size, target offset, size)
        self.indices: list[int] = []
        """The pair index of each item (rejected labels skipped)."""
        for shard in range(shard_count(info["count"], info["shard_size"])):
            path = self.folder / shard_name(shard)
            with tarfile.open(path) as archive:
                members = {m.name: m for m in archive.getmembers()}
            for index in shard_indices(shard, info["count"], info["shard_size"]):
                if index in rejected:
                    continue
                self.indices.append(index)
                noisy, target = members[f"{index:09d}.noisy.flac"], members[f"{index:09d}.target.flac"]
                self._members.append((str(path), noisy.offset_data, noisy.size, target.offset_data, target.size))
        self.count = len(self._members)
        self._slots = {index: slot for slot, index in enumerate(self.indices)}
        if not self.count:
            raise ValueError(f"shards {folder}: every one of its {info['count']} teacher's labels was rejected")

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``index`` of the set (``KeyError`` when it is not read back)."""
        return self._read(self._slots[index])

    def _read(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, noisy_offset, noisy_size, target_offset, target_size = self._members[slot]
        with open(path, "rb") as file:
            file.seek(noisy_offset)
            noisy = file.read(noisy_size)
            file.seek(target_offset)
            target = file.read(target_size)
        return _decoded(noisy), _decoded(target)


class JoinedPairs(_EpochOrder):
    """Several shard sets read as one in epoch order (``_EpochOrder``): the slots of ``sets[0]``, then those of
    ``sets[1]``, ..., so it reads exactly what one set holding their pairs in that order would. ``ValueError``
    unless every set was labelled by the same system (or none by any)."""

    def __init__(self, sets: Sequence[ShardedPairs], seed: int):
        if not sets:
            raise ValueError("JoinedPairs: no shard set to join")
        labellers = {s.teacher for s in sets}
        if len(labellers) > 1:
            raise ValueError(f"shards {', '.join(str(s.folder) for s in sets)}: labelled by different systems {sorted(map(str, labellers))}")
        self.sets = tuple(sets)
        self.teacher = sets[0].teacher
        self.seed = seed
        self._starts = np.cumsum([0] + [len(s) for s in sets])
        self.count = int(self._starts[-1])

    def _read(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        part = int(np.searchsorted(self._starts, slot, side="right")) - 1
        return self.sets[part]._read(slot - int(self._starts[part]))


def _decoded(data: bytes) -> torch.Tensor:
    audio, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(audio.T))
