"""Training configuration: frozen dataclasses, one default each; TOML files hold only what differs.

Unknown keys and wrongly typed values raise ``ValueError`` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from speakup_fx.data.degrade import TARGETS, DegradeConfig
from speakup_fx.models.dfnet import DFNetConfig
from speakup_fx.models.discriminators import DiscriminatorConfig
from speakup_fx.models.paper import PaperGeneratorConfig
from speakup_fx.models.streaming import StreamingGeneratorConfig
from speakup_fx.train.losses import ADVERSARIAL_LOSS_NAMES, RECONSTRUCTION_LOSSES

GENERATORS = ("streaming", "hifigan_paper", "dfnet")
LR_SCHEDULES = ("exponential", "warmup_cosine")


@dataclass(frozen=True)
class DataConfig:
    """Where training audio comes from and how it is cut."""

    data_dir: str = field(default="/work/shared/data", metadata={"help": "folder with manifest.csv (train rows only are used)"})
    cache_dir: str = field(default="/work/train_cache", metadata={"help": "cache of resampled/simulated impulse responses"})
    segment_s: float = field(default=2.0, metadata={"help": "length of a training example, s"})
    examples_per_epoch: int = field(default=8192, metadata={"help": "examples per epoch (each drawn from (seed, epoch, index))"})
    simulated_rooms: int = field(default=200, metadata={"help": "size of the simulated small-room bank"})
    workers: int = field(default=1, metadata={"help": "DataLoader worker processes per rank"})
    validation_examples: int = field(default=32, metadata={"help": "fixed degraded examples scored at each checkpoint"})
    targets: tuple[str, ...] = field(default=("dry",), metadata={"help": "target of each generator output: 'dry', 'reverberant' or 'early'"})
    extra_speech: tuple[str, ...] = field(default=(), metadata={"help": "folders written by `speakup import-speech` (each with its manifest.csv): more training speech, filtered like data_dir's, never used for validation"})
    min_clean_dnsmos_bak: float = field(default=0.0, metadata={"help": "train only on speech files whose DNSMOS BAK (1-5, no reference) is at least this (validation files are kept); 0: keep all"})
    babble_noises: int = field(default=0, metadata={"help": "babble recordings (sums of training talkers, data.corpus.make_babble) added to the noise bank"})
    babble_talkers: tuple[int, int] = field(default=(3, 8), metadata={"help": "fewest and most talkers in one babble recording"})
    babble_room_prob: float = field(default=0.0, metadata={"help": "share of babble talkers heard through a room from the room bank"})
    lead_silence_prob: float = field(default=0.0, metadata={"help": "chance an example's speech starts after a silence (noise alone first, as recordings start)"})
    lead_silence_s_range: tuple[float, float] = field(default=(0.2, 1.0), metadata={"help": "shortest and longest lead-in silence, s"})
    shards: str = field(default="", metadata={"help": "folder of pairs written by `speakup spark degrade` to train from instead of degrading on the fly ('': on the fly)"})
    teacher_shards: tuple[str, ...] = field(default=(), metadata={"help": "folders of pairs labelled by one teacher (`speakup spark degrade --teacher`), read as one set and mixed into training ([]: none)"})
    teacher_share: float = field(default=0.0, metadata={"help": "share of training examples drawn from teacher_shards, in (0, 1) when they are set"})

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(TARGETS)
        if unknown or not self.targets:
            raise ValueError(f"data.targets: expected some of {TARGETS}, got {list(self.targets)}")
        if not 0.0 <= self.babble_room_prob <= 1.0:
            raise ValueError(f"data.babble_room_prob: expected a probability in [0, 1], got {self.babble_room_prob}")
        if bool(self.teacher_shards) != (self.teacher_share > 0) or not 0.0 <= self.teacher_share < 1.0:
            raise ValueError(f"data.teacher_share: expected a share in (0, 1) with data.teacher_shards and 0 without, got {self.teacher_share} with {self.teacher_shards!r}")


@dataclass(frozen=True)
class ScheduleConfig:
    """The staged schedule of Su et al. 2020, in optimizer steps per stage."""

    generator_steps: int = field(default=40_000, metadata={"help": "stage 1: generator alone (postnet frozen)"})
    postnet_steps: int = field(default=10_000, metadata={"help": "stage 2: generator with postnet"})
    adversarial_steps: int = field(default=20_000, metadata={"help": "stage 3: adversarial training with discriminators"})


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings, the learning-rate schedule and the EMA copy of the generator."""

    generator_lr: float = field(default=5e-4, metadata={"help": "generator learning rate, for the global batch whatever the world size"})
    discriminator_lr: float = field(default=2e-4, metadata={"help": "discriminator learning rate"})
    betas: tuple[float, float] = field(default=(0.8, 0.99), metadata={"help": "Adam betas"})
    grad_clip: float = field(default=5.0, metadata={"help": "gradient-norm clip of the generator"})
    lr_schedule: str = field(default="exponential", metadata={"help": "'exponential' (lr_decay per step) or 'warmup_cosine'"})
    lr_decay: float = field(default=0.99995, metadata={"help": "exponential: learning-rate factor per step"})
    warmup_steps: int = field(default=1000, metadata={"help": "warmup_cosine: steps of linear warm-up from 0"})
    lr_floor_ratio: float = field(default=0.1, metadata={"help": "warmup_cosine: final rate / peak rate (the cosine ends at the schedule's last step)"})
    ema_decay: float = field(default=0.0, metadata={"help": "decay per step of the generator's EMA copy used for validation and export (0: no copy)"})

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"optim.lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay: must be in [0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights keyed by the names that are logged."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"gen/l1": 5.0, "gen/stft": 1.0, "adv/gen": 1.0, "adv/feat": 2.0},
        metadata={"help": "weight of each named loss term"},
    )
    over_suppression_low_hz: float = field(default=0.0, metadata={"help": "gen/oversup ignores bins below this frequency, Hz"})


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    seed: int = field(default=0, metadata={"help": "seed of model init and of every data draw"})
    batch_size: int = field(default=16, metadata={"help": "global batch size: each of N ranks takes batch_size / N (see per_rank_batch)"})
    threads: int = field(default=1, metadata={"help": "torch threads per rank"})
    generator: str = field(default="streaming", metadata={"help": "'streaming' (default), 'hifigan_paper' or 'dfnet'"})
    log_every: int = field(default=25, metadata={"help": "steps between scalar logs"})
    checkpoint_every_s: float = field(default=300.0, metadata={"help": "seconds between checkpoints"})
    snapshot_every_s: float = field(default=1800.0, metadata={"help": "seconds between kept numbered snapshots"})
    streaming: StreamingGeneratorConfig = field(default_factory=StreamingGeneratorConfig, metadata={"help": "default generator"})
    hifigan_paper: PaperGeneratorConfig = field(default_factory=PaperGeneratorConfig, metadata={"help": "the paper's generator"})
    dfnet: DFNetConfig = field(default_factory=DFNetConfig, metadata={"help": "two-output deep-filtering generator"})
    discriminators: DiscriminatorConfig = field(default_factory=DiscriminatorConfig, metadata={"help": "adversarial stage"})
    degrade: DegradeConfig = field(default_factory=DegradeConfig, metadata={"help": "degradation pipeline"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata={"help": "staged schedule"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimizers"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "loss weights"})

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"generator: expected one of {GENERATORS}, got {self.generator!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        unknown = set(self.loss.weights) - {*RECONSTRUCTION_LOSSES, *ADVERSARIAL_LOSS_NAMES}
        if unknown:
            raise ValueError(f"loss.weights: unknown loss names {sorted(unknown)}")


def _coerce(value: object, annotation: object, key: str) -> object:
    """``value`` as ``annotation`` (dataclass, tuple, dict, scalar), or ValueError naming ``key``."""
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a table, got {value!r}")
        return from_dict(annotation, value, key + ".")
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key}: expected an array, got {value!r}")
        args = typing.get_args(annotation)
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            raise ValueError(f"{key}: expected {len(item_types)} items, got {len(value)}")
        return tuple(_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a table, got {value!r}")
        _, value_type = typing.get_args(annotation)
        return {k: _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    raise ValueError(f"{key}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def from_dict(cls: type, values: dict, prefix: str = ""):
    """Build dataclass ``cls`` from a (TOML) dict holding only what differs from the defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ValueError(f"{prefix}{key}: unknown key")
    try:
        return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in values.items()})
    except TypeError as error:
        raise ValueError(f"{prefix.rstrip('.') or 'config'}: {error}") from None


def to_dict(config) -> dict:
    """A dataclass tree as plain dicts/lists (JSON/TOML-ready, safe for ``weights_only`` checkpoints)."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: to_dict(getattr(config, f.name)) if dataclasses.is_dataclass(getattr(config, f.name)) else plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def load_config(path: str | Path) -> Config:
    """Read a TOML config (only what differs from the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no file {path}")
    with path.open("rb") as f:
        return from_dict(Config, tomllib.load(f))


def segment_samples(config: Config) -> int:
    """Samples in one training example."""
    return int(config.data.segment_s * config.degrade.sample_rate)
