"""The shared data folder (``manifest.csv``): speech files, noise and impulse-response banks, simulated rooms.

Only ``split == "train"`` rows are ever used for training; ``eval/`` never is.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from speakup_fx.atomic import atomic_write
from speakup_fx.dsp.resample import resample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestRow:
    split: str
    kind: str
    source: str
    path: Path
    duration_s: float
    sample_rate: int
    licence: str
    band_hz: float | None = None
    """Where the recording's band ends when it ends below the Nyquist frequency (a codec's band), else None."""


def read_manifest(data_dir: str | Path) -> list[ManifestRow]:
    """Rows of ``data_dir/manifest.csv`` with absolute paths (an optional ``band_hz`` column: empty is full band)."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"data_dir: no manifest.csv in {data_dir}")
    with manifest.open(newline="") as f:
        rows = [
            ManifestRow(
                r["split"], r["kind"], r["source"], data_dir / r["path"], float(r["duration_s"]), int(r["sample_rate"]), r["licence"],
                float(r["band_hz"]) if r.get("band_hz") else None,
            )
            for r in csv.DictReader(f)
        ]
    for row in rows:
        if row.band_hz is not None and not 0 < row.band_hz < row.sample_rate / 2:
            raise ValueError(f"{manifest}: {row.path.name}: band_hz {row.band_hz} outside (0, {row.sample_rate / 2:g}) Hz")
    return rows


MANIFEST_FIELDS = ("split", "kind", "source", "path", "duration_s", "sample_rate", "licence", "band_hz")


def write_manifest(data_dir: str | Path, rows: Sequence[ManifestRow]) -> None:
    """Write ``data_dir/manifest.csv`` atomically in ``read_manifest``'s format; each row's file lies in ``data_dir``."""
    data_dir = Path(data_dir)
    with atomic_write(data_dir / "manifest.csv") as temporary, temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_FIELDS)
        writer.writerows(
            (r.split, r.kind, r.source, r.path.relative_to(data_dir).as_posix(), f"{r.duration_s:.3f}", r.sample_rate, r.licence, r.band_hz or "")
            for r in rows
        )


def train_rows(data_dir: str | Path, kind: str, sample_rate: int | None = None) -> list[ManifestRow]:
    """Training rows of one ``kind`` ('speech', 'noise', 'rir'), optionally at one native rate."""
    return [
        r for r in read_manifest(data_dir) if r.split == "train" and r.kind == kind and (sample_rate is None or r.sample_rate == sample_rate)
    ]


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A file as 1-D float32 at ``sample_rate`` (first channel; resampled with ``dsp.resample`` when needed)."""
    audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio[:, 0]
    if file_rate != sample_rate:
        audio = resample(audio, file_rate, sample_rate)
    return np.ascontiguousarray(audio)


def load_noises(data_dir: str | Path, sample_rate: int) -> list[np.ndarray]:
    """All training noise recordings, each longer than 0.5 s, in memory."""
    noises = [load_mono(r.path, sample_rate) for r in train_rows(data_dir, "noise")]
    return [n for n in noises if len(n) > sample_rate // 2 and np.any(n)]


BABBLE_S = 6.0
"""Length of each babble recording, s."""


def make_babble(
    speech: list[ManifestRow], count: int, talkers: tuple[int, int], sample_rate: int, seed: int,
    rirs: Sequence[np.ndarray] = (), room_prob: float = 0.0,
) -> list[np.ndarray]:
    """``count`` babble recordings of ``BABBLE_S``: each the sum of ``talkers[0]``..``talkers[1]`` random speech files
    (looped, from a random offset, each at the same RMS within +-3 dB): the café and crowd noise that the recorded
    noise banks hardly hold (DNS-challenge practice). With ``room_prob``, each talker is heard through a room
    drawn from ``rirs`` with that probability: a crowd across a room rather than close-miked voices (the draws
    of the talkers themselves do not change). Seeded; pass training speech only."""
    if not speech:
        raise ValueError("babble: no speech files")
    if room_prob and not len(rirs):
        raise ValueError("babble: room_prob needs rooms")
    rng = np.random.default_rng([seed, 0xBABB1E])
    rooms = np.random.default_rng([seed, 0xBABB1E, 1])
    frames = int(BABBLE_S * sample_rate)
    loaded: dict[Path, np.ndarray] = {}
    babble = []
    for _ in range(count):
        mix = np.zeros(frames, np.float64)
        for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
            row = speech[int(rng.integers(len(speech)))]
            if row.path not in loaded:
                loaded[row.path] = load_mono(row.path, sample_rate)
            audio = loaded[row.path]
            start = int(rng.integers(len(audio)))
            rir = rirs[int(rooms.integers(len(rirs)))] if room_prob and rooms.random() < room_prob else None
            lead = 0 if rir is None else len(rir) - 1  # the room's tail from the speech before the window
            talker = np.tile(audio, -(-(start + frames + lead) // len(audio)))[start : start + frames + lead].astype(np.float64)
            if rir is not None:
                talker = scipy.signal.fftconvolve(talker, rir, mode="valid")
            rms = np.sqrt(np.mean(np.square(talker)))
            if rms > 0:
                mix += talker / rms * 10 ** (rng.uniform(-3.0, 3.0) / 20)
        babble.append(mix.astype(np.float32))  # its level is immaterial: the degrader mixes noise at a drawn SNR
    return babble


def load_real_rirs(data_dir: str | Path, sample_rate: int, max_s: float = 2.0) -> list[np.ndarray]:
    """Measured impulse responses resampled to ``sample_rate``, from 5 ms before the direct path, at most ``max_s`` long."""
    rirs = []
    for row in train_rows(data_dir, "rir"):
        rir = load_mono(row.path, sample_rate)
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[max(peak - sample_rate // 200, 0) :][: int(max_s * sample_rate)]
        rirs.append((rir / np.max(np.abs(rir))).astype(np.float32))
    return rirs


def simulate_small_rooms(count: int, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """Small shoebox rooms (pyroomacoustics image source), RT60 0.15-0.7 s; seeded."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    while len(rirs) < count:
        dims = rng.uniform([2.5, 2.5, 2.2], [7.0, 6.0, 3.5])
        rt60_s = rng.uniform(0.15, 0.7)
        try:
            absorption, max_order = pra.inverse_sabine(rt60_s, dims)
        except ValueError:
            continue
        room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 40))
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        peak = int(np.argmax(np.abs(rir)))
        rir = rir[max(peak - sample_rate // 200, 0) :]
        rirs.append((rir / np.max(np.abs(rir))).astype(np.float32))
    return rirs


def simulated_rooms_path(cache_dir: str | Path, count: int, sample_rate: int, seed: int = 0) -> Path:
    """Where ``simulated_rooms_cached`` keeps a room bank."""
    return Path(cache_dir) / f"small_rooms_{count}_{sample_rate}_{seed}.npz"


def simulated_rooms_cached(cache_dir: str | Path, count: int, sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """``simulate_small_rooms`` computed once and kept in ``cache_dir`` (it is slow)."""
    path = simulated_rooms_path(cache_dir, count, sample_rate, seed)
    if path.is_file():
        with np.load(path) as data:
            return [data[f"rir{i}"] for i in range(count)]
    logger.info("simulating %d small rooms (cached in %s)", count, path)
    rirs = simulate_small_rooms(count, sample_rate, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:  # ranks may build it at once; each renames atomically
        np.savez(temporary, **{f"rir{i}": r for i, r in enumerate(rirs)})
    return rirs
