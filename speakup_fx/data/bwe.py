"""Bandwidth-extension pairs: 48 kHz studio speech (target) and its band-limited 16 kHz version (input).

Inputs are made the way the product meets them: the project's resampler to 16 kHz (its band edge
near 7.4 kHz), then, for some examples, a further low-pass of drawn cut-off (3.4-8 kHz) and
steepness and a lossy codec round trip, so the model never sees only one band edge. Each example
is reproducible from (seed, epoch, index): ``BandLimiter.draw(rng)`` draws, ``apply`` applies.
The RAVDESS actors are split by speaker: ``VALIDATION_ACTORS`` are never trained on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from speakup_fx.data.corpus import load_mono
from speakup_fx.data.degrade import CODECS, band_limit, codec_roundtrip, rms_db
from speakup_fx.dsp.resample import resample

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE = 48_000
INPUT_SAMPLE_RATE = 16_000
VALIDATION_ACTORS = (21, 22)
"""RAVDESS actors held out for validation and evaluation (one female, one male)."""

_ACTOR_DIR = re.compile(r"actor(\d+)$")
_MIN_SPEECH_DB = -45.0


@dataclass(frozen=True)
class BandLimitConfig:
    """How inputs are band-limited beyond the resampler's own band edge."""

    lowpass_prob: float = field(default=0.4, metadata={"help": "chance of an extra low-pass at 16 kHz"})
    lowpass_hz_range: tuple[float, float] = field(default=(3400.0, 7900.0), metadata={"help": "its cut-off, Hz"})
    lowpass_order_range: tuple[int, int] = field(default=(2, 16), metadata={"help": "its Butterworth order (steepness), applied forward and backward"})
    codec_prob: float = field(default=0.15, metadata={"help": "chance of a lossy codec round trip at 16 kHz"})
    bitrate_bps_range: tuple[int, int] = field(default=(16_000, 48_000), metadata={"help": "codec bitrate, bit/s"})
    gain_db_range: tuple[float, float] = field(default=(-30.0, 0.0), metadata={"help": "level of the pair relative to a 0 dBFS peak"})

    def __post_init__(self) -> None:
        for name in ("lowpass_prob", "codec_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability, got {getattr(self, name)}")
        low, high = self.lowpass_hz_range
        if not 0 < low <= high < INPUT_SAMPLE_RATE / 2:
            raise ValueError(f"lowpass_hz_range: expected 0 < low <= high < 8000 Hz, got {self.lowpass_hz_range}")
        if not 1 <= self.lowpass_order_range[0] <= self.lowpass_order_range[1]:
            raise ValueError(f"lowpass_order_range: expected 1 <= low <= high, got {self.lowpass_order_range}")


@dataclass(frozen=True)
class BandLimitParams:
    """One example's draw."""

    gain_db: float
    lowpass_hz: float | None = None
    lowpass_order: int = 0
    codec: str | None = None
    bitrate_bps: int = 0


class BandLimiter:
    """Turns 48 kHz speech into the 16 kHz band-limited input the product would be given."""

    def __init__(self, config: BandLimitConfig = BandLimitConfig()):
        self.config = config

    def draw(self, rng: np.random.Generator) -> BandLimitParams:
        """One example's params; all randomness comes from ``rng``."""
        c = self.config
        kw: dict = {"gain_db": float(rng.uniform(*c.gain_db_range))}
        if rng.random() < c.lowpass_prob:
            kw["lowpass_hz"] = float(rng.uniform(*c.lowpass_hz_range))
            kw["lowpass_order"] = int(rng.integers(c.lowpass_order_range[0], c.lowpass_order_range[1] + 1))
        if rng.random() < c.codec_prob:
            kw["codec"] = CODECS[int(rng.integers(len(CODECS)))]
            kw["bitrate_bps"] = int(rng.integers(c.bitrate_bps_range[0], c.bitrate_bps_range[1] + 1))
        return BandLimitParams(**kw)

    def target(self, speech: np.ndarray, params: BandLimitParams) -> np.ndarray:
        """The 48 kHz target: ``speech`` at the drawn level (peak-normalised first)."""
        peak = float(np.max(np.abs(speech))) or 1.0
        return (speech * (10 ** (params.gain_db / 20) / peak)).astype(np.float32)

    def apply(self, speech: np.ndarray, params: BandLimitParams) -> np.ndarray:
        """The 16 kHz input for 48 kHz ``speech`` (1-D), time-aligned with ``target``."""
        x = resample(self.target(speech, params), TARGET_SAMPLE_RATE, INPUT_SAMPLE_RATE)
        if params.lowpass_hz is not None:
            x = band_limit(x, params.lowpass_hz, INPUT_SAMPLE_RATE, params.lowpass_order)
        if params.codec is not None:
            x = codec_roundtrip(x, INPUT_SAMPLE_RATE, params.codec, params.bitrate_bps)
        return np.ascontiguousarray(x, dtype=np.float32)


def actor_of(path: Path) -> int:
    """The RAVDESS actor number of a file (from its ``actorNN`` folder)."""
    match = _ACTOR_DIR.search(path.parent.name)
    if match is None:
        raise ValueError(f"{path}: not inside an actorNN folder")
    return int(match.group(1))


def split_by_actor(speech_dir: str | Path, validation_actors: tuple[int, ...] = VALIDATION_ACTORS) -> tuple[list[Path], list[Path]]:
    """Training and validation files of ``speech_dir/actorNN/*`` (validation: ``validation_actors``)."""
    speech_dir = Path(speech_dir)
    files = sorted(p for p in speech_dir.glob("actor*/*") if p.suffix.lower() in (".flac", ".wav"))
    if not files:
        raise FileNotFoundError(f"speech: no actorNN/*.flac or *.wav files under {speech_dir}")
    training = [p for p in files if actor_of(p) not in validation_actors]
    validation = [p for p in files if actor_of(p) in validation_actors]
    return training, validation


class BandwidthPairs(Dataset):
    """Item ``(epoch, index)`` -> ``(input (1, n) at 16 kHz, target (1, 3 n) at 48 kHz)`` float32 tensors.

    The files are read once, at 48 kHz, into memory (RAVDESS is well under an hour).
    """

    def __init__(self, files: list[Path], segment_s: float, seed: int, limiter: BandLimiter, hop_samples: int = 160):
        if not files:
            raise ValueError("speech: no files")
        self.speech = [load_mono(path, TARGET_SAMPLE_RATE) for path in files]
        self.input_samples = max(hop_samples, int(segment_s * INPUT_SAMPLE_RATE) // hop_samples * hop_samples)
        self.seed = seed
        self.limiter = limiter
        lengths = np.array([len(s) for s in self.speech], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def __len__(self) -> int:
        return len(self.speech)

    def segment(self, rng: np.random.Generator) -> np.ndarray:
        """A random 48 kHz segment (zero-padded when the file is short), re-drawn while near silent."""
        frames = 3 * self.input_samples
        for _ in range(10):
            audio = self.speech[int(rng.choice(len(self.speech), p=self.weights))]
            start = int(rng.integers(max(len(audio) - frames, 0) + 1))
            piece = np.pad(audio[start : start + frames], (0, max(0, frames - len(audio))))
            if rms_db(piece) > _MIN_SPEECH_DB + 20 * np.log10(float(np.max(np.abs(audio))) + 1e-12):
                return piece
        return piece

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        rng = np.random.default_rng([self.seed, epoch + 1, index])
        speech = self.segment(rng)
        params = self.limiter.draw(rng)
        return torch.from_numpy(self.limiter.apply(speech, params))[None], torch.from_numpy(self.limiter.target(speech, params))[None]
