"""Training the bandwidth extender: ``python -m speakup_fx.train.bwe --config configs/bwe.toml --run-dir DIR``.

Uses the project's training helpers (TOML config with dotted-key errors, atomic versioned
checkpoints, the DDP helpers that do nothing at world size 1, TensorBoard) around its own short
step: reconstruction losses (a multi-resolution log-magnitude + spectral-convergence loss on the
band the model writes, plus power-law compressed magnitudes there), then from
``adversarial_from_step`` on also the project's waveform and mel discriminators (LSGAN + feature
matching, the enhancer's ``d_step`` and terms) at 48 kHz. They judge the target against the target's
own band below the crossover plus the model's band above it, so the only difference they can find is
in the band the model writes. Resumes from ``DIR/checkpoint.pt`` (a reconstruction checkpoint resumes
into the adversarial stage with fresh discriminators); ``--export WEIGHTS`` writes the best checkpoint
as the shipped safetensors file. Exit codes: 0 done; 2 bad config, data or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from speakup_fx.data.bwe import BandLimitConfig, BandLimiter, BandwidthPairs, split_by_actor
from speakup_fx.data.dataset import VALIDATION_EPOCH, EpochSampler
from speakup_fx.eval.metrics import log_spectral_distance
from speakup_fx.models.bwe import OUTPUT_SAMPLE_RATE, BandwidthExtender, BandwidthExtenderConfig
from speakup_fx.models.discriminators import DiscriminatorConfig, Discriminators
from speakup_fx.runtime.weights import save_weights
from speakup_fx.train.checkpoint import load_checkpoint, save_checkpoint
from speakup_fx.train.config import from_dict, to_dict
from speakup_fx.train.distributed import World, barrier, exit_rank, init_from_env, shutdown, unwrap, wrap
from speakup_fx.train.loop import adversarial_losses, d_step, run_steps

logger = logging.getLogger(__name__)

HIGH_BAND_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
"""(n_fft, hop) pairs at 48 kHz of the high-band losses."""

LOG_FLOOR = 1e-5
COMPRESSION = 0.3


@dataclass(frozen=True)
class BweDataConfig:
    """Where the 48 kHz speech comes from and how it is cut."""

    speech_dir: str = field(default="/work/shared/data/speech_48k/ravdess", metadata={"help": "folder of actorNN/ speech folders"})
    segment_s: float = field(default=1.0, metadata={"help": "length of a training example, s"})
    examples_per_epoch: int = field(default=4096, metadata={"help": "examples per epoch (each drawn from (seed, epoch, index))"})
    workers: int = field(default=1, metadata={"help": "DataLoader worker processes per rank"})
    validation_examples: int = field(default=32, metadata={"help": "fixed examples of the held-out actors scored at each checkpoint"})


@dataclass(frozen=True)
class BweOptimConfig:
    """Adam settings."""

    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    discriminator_lr: float = field(default=2e-4, metadata={"help": "discriminator learning rate (same decay)"})
    betas: tuple[float, float] = field(default=(0.9, 0.99), metadata={"help": "Adam betas"})
    grad_clip: float = field(default=5.0, metadata={"help": "gradient-norm clip"})
    lr_decay: float = field(default=0.99999, metadata={"help": "learning-rate factor per step (exponential decay)"})


@dataclass(frozen=True)
class BweDiscriminatorConfig(DiscriminatorConfig):
    """The project's discriminators sized for 48 kHz: waveform ones at 48 and 24 kHz only (the written band
    starts at 7.6 kHz, above the Nyquist of a 12 kHz scale), a 2048-point mel spectrogram to 24 kHz."""

    scales: int = field(default=2, metadata={"help": "waveform discriminators at 48 kHz / 2**i"})
    mel_bins: int = field(default=128, metadata={"help": "mel bands of the spectrogram discriminator"})
    mel_fft: int = field(default=2048, metadata={"help": "FFT size of the mel discriminator"})
    mel_hop: int = field(default=512, metadata={"help": "hop of the mel discriminator"})
    sample_rate: int = field(default=OUTPUT_SAMPLE_RATE, metadata={"help": "input rate, Hz (48 kHz: the model's output)"})


@dataclass(frozen=True)
class BweConfig:
    """A whole bandwidth-extension training run."""

    seed: int = field(default=0, metadata={"help": "seed of model init and of every data draw"})
    batch_size: int = field(default=8, metadata={"help": "global batch size (split across ranks)"})
    threads: int = field(default=1, metadata={"help": "torch threads per rank"})
    steps: int = field(default=500_000, metadata={"help": "optimizer steps of the run"})
    log_every: int = field(default=25, metadata={"help": "steps between scalar logs"})
    checkpoint_every_s: float = field(default=300.0, metadata={"help": "seconds between checkpoints"})
    snapshot_every_s: float = field(default=3600.0, metadata={"help": "seconds between kept numbered snapshots"})
    model: BandwidthExtenderConfig = field(default_factory=BandwidthExtenderConfig, metadata={"help": "the streamable model"})
    band_limit: BandLimitConfig = field(default_factory=BandLimitConfig, metadata={"help": "how inputs are band-limited"})
    data: BweDataConfig = field(default_factory=BweDataConfig, metadata={"help": "training data"})
    optim: BweOptimConfig = field(default_factory=BweOptimConfig, metadata={"help": "optimizer"})
    trained_bins_below_hz: float | None = field(default=None, metadata={"help": "train only the gains of the output bins below this frequency, the rest frozen (a lowered crossover's new bins); None: the whole model"})
    adversarial_from_step: int | None = field(default=None, metadata={"help": "first step that also trains against the discriminators (None: never)"})
    discriminators: BweDiscriminatorConfig = field(default_factory=BweDiscriminatorConfig, metadata={"help": "the adversarial stage's discriminators"})
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"bwe/high_log": 1.0, "bwe/high_sc": 1.0, "bwe/high_compressed": 10.0, "adv/gen": 0.1, "adv/feat": 0.2},
        metadata={"help": "weight of each named loss term (adv/* only from adversarial_from_step)"},
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.steps < 0:
            raise ValueError(f"batch_size must be >= 1 and steps >= 0, got {self.batch_size}, {self.steps}")
        if self.adversarial_from_step is not None and not 0 <= self.adversarial_from_step < self.steps:
            raise ValueError(f"adversarial_from_step must be in [0, steps={self.steps}), got {self.adversarial_from_step}")
        if self.trained_bins_below_hz is not None and not self.model.crossover_hz < self.trained_bins_below_hz <= OUTPUT_SAMPLE_RATE / 2:
            raise ValueError(f"trained_bins_below_hz must be in (model.crossover_hz, {OUTPUT_SAMPLE_RATE / 2:g}], got {self.trained_bins_below_hz}")
        if self.trained_bins_below_hz is not None and self.adversarial_from_step is not None:
            raise ValueError("trained_bins_below_hz: the adversarial stage trains the whole model")
        if self.discriminators.sample_rate != OUTPUT_SAMPLE_RATE:
            raise ValueError(f"discriminators.sample_rate must be {OUTPUT_SAMPLE_RATE} (they judge the 48 kHz output), got {self.discriminators.sample_rate}")
        unknown = set(self.loss_weights) - set(LOSS_NAMES) - set(ADVERSARIAL_LOSS_NAMES)
        if unknown:
            raise ValueError(f"loss_weights: unknown loss names {sorted(unknown)}")


LOSS_NAMES = ("bwe/high_log", "bwe/high_sc", "bwe/high_compressed")
"""The reconstruction terms of ``high_band_losses``."""
ADVERSARIAL_LOSS_NAMES = ("adv/gen", "adv/feat")


def load_bwe_config(path: str | Path) -> BweConfig:
    """Read a TOML config (only what differs from the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no file {path}")
    with path.open("rb") as f:
        return from_dict(BweConfig, tomllib.load(f))


def magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    """``sqrt(|X|^2 + LOG_FLOOR^2)``: a magnitude floored smoothly, whose gradient is finite at X = 0 (``abs`` has none)."""
    return torch.view_as_real(spectrum).square().sum(-1).add(LOG_FLOOR**2).sqrt()


def high_band_losses(output: torch.Tensor, target: torch.Tensor, low_hz: float) -> dict[str, torch.Tensor]:
    """Named losses on the STFT bins at or above ``low_hz`` (48 kHz ``(batch, 1, time)`` signals), mean over resolutions."""
    if output.shape != target.shape or output.ndim != 3:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must both be (batch, channels, time)")
    terms = {name: output.new_zeros(()) for name in LOSS_NAMES}
    for n_fft, hop in HIGH_BAND_RESOLUTIONS:
        first = int(np.ceil(low_hz * n_fft / OUTPUT_SAMPLE_RATE))
        window = torch.hann_window(n_fft, device=output.device, dtype=output.dtype)
        out_mag, tgt_mag = (
            magnitude(torch.stft(s.reshape(-1, s.shape[-1]), n_fft, hop, window=window, return_complex=True)[:, first:])
            for s in (output, target)
        )
        terms["bwe/high_log"] = terms["bwe/high_log"] + F.l1_loss(out_mag.log(), tgt_mag.log())
        convergence = torch.linalg.norm(tgt_mag - out_mag, dim=(-2, -1)) / torch.linalg.norm(tgt_mag, dim=(-2, -1)).clamp_min(LOG_FLOOR)
        terms["bwe/high_sc"] = terms["bwe/high_sc"] + convergence.mean()
        terms["bwe/high_compressed"] = terms["bwe/high_compressed"] + F.mse_loss(out_mag**COMPRESSION, tgt_mag**COMPRESSION)
    return {name: value / len(HIGH_BAND_RESOLUTIONS) for name, value in terms.items()}


def with_high_band_of(target: torch.Tensor, output: torch.Tensor, low_hz: float) -> torch.Tensor:
    """``target``'s spectrum below ``low_hz`` and ``output``'s from it on (one FFT over each whole 48 kHz ``(batch, 1, time)`` signal)."""
    frames = target.shape[-1]
    low_bins = int(np.ceil(low_hz * frames / OUTPUT_SAMPLE_RATE))
    target_spectrum, output_spectrum = torch.fft.rfft(target), torch.fft.rfft(output)
    return torch.fft.irfft(torch.cat([target_spectrum[..., :low_bins], output_spectrum[..., low_bins:]], dim=-1), n=frames)


@dataclass
class BweState:
    """Every object of a training run."""

    config: BweConfig
    world: World
    model: nn.Module
    optimizer: torch.optim.Optimizer
    discriminators: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    step: int = 0
    epoch: int = 0
    best_validation: float = float("inf")


def freeze_all_but_low_gains(model: BandwidthExtender, below_hz: float) -> None:
    """Only the head's gain rows of the output bins below ``below_hz`` keep learning: every other parameter is
    frozen, and the other rows of the head's last layer get zero gradients (Adam then never moves them)."""
    rows = int(np.ceil(below_hz * model.n_fft / OUTPUT_SAMPLE_RATE)) - model.crossover_bin
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in (model.head[3].weight, model.head[3].bias):
        parameter.requires_grad_(True)
        mask = torch.zeros_like(parameter)
        mask[:rows] = 1.0
        parameter.register_hook(lambda grad, mask=mask: grad * mask)


def build_state(config: BweConfig, world: World) -> BweState:
    torch.manual_seed(config.seed)
    model = BandwidthExtender(config.model).to(world.device)
    if config.trained_bins_below_hz is not None:
        freeze_all_but_low_gains(model, config.trained_bins_below_hz)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=config.optim.lr, betas=config.optim.betas)
    state = BweState(config, world, wrap(model, world), optimizer)
    if config.adversarial_from_step is not None:
        discriminators = Discriminators(config.discriminators).to(world.device)
        state.discriminators = wrap(discriminators, world)
        state.opt_d = torch.optim.Adam(discriminators.parameters(), lr=config.optim.discriminator_lr, betas=config.optim.betas)
    return state


def is_adversarial(config: BweConfig, step: int) -> bool:
    """Whether optimizer step ``step`` trains against the discriminators."""
    return config.adversarial_from_step is not None and step >= config.adversarial_from_step


def g_step(state: BweState, noisy: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """One update with the weighted named losses; in the adversarial stage a discriminator update (``loop.d_step``) first."""
    config = state.config
    decay = config.optim.lr_decay**state.step
    for group in state.optimizer.param_groups:
        group["lr"] = config.optim.lr * decay
    target = target.to(state.world.device)
    output = state.model(noisy.to(state.world.device))
    terms = high_band_losses(output, target, config.model.crossover_hz)
    logs = {}
    if is_adversarial(config, state.step):
        state.opt_d.param_groups[0]["lr"] = config.optim.discriminator_lr * decay
        fake = with_high_band_of(target, output, config.model.crossover_hz)
        logs = d_step(state, {"target": target, "fake": fake})
        terms.update(adversarial_losses(state.discriminators, target, fake))
    total = sum(config.loss_weights.get(name, 0.0) * value for name, value in terms.items())
    state.optimizer.zero_grad(set_to_none=True)
    total.backward()
    norm = nn.utils.clip_grad_norm_(state.model.parameters(), config.optim.grad_clip)
    if torch.isfinite(norm):
        state.optimizer.step()
    else:  # one bad batch must not poison an unattended run
        logger.warning("step %d: non-finite gradient, update skipped", state.step)
    state.step += 1
    return {**logs, **{k: v.item() for k, v in terms.items()}, "bwe/total": total.item(), "bwe/grad_norm": norm.item()}


def upsampled_input(model: BandwidthExtender, noisy: torch.Tensor) -> torch.Tensor:
    """The baseline: the 16 kHz input on the project resampler's kernel at 48 kHz (no high band)."""
    return unwrap(model).upsampler(noisy)


@torch.no_grad()
def validate(state: BweState, noisy: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    """Mean LSD of the model and of the plain upsampled input on the fixed held-out examples."""
    model = unwrap(state.model).eval()
    output = torch.cat([model(n[None].to(state.world.device)) for n in noisy]).cpu()
    model.train()
    baseline = upsampled_input(model, noisy)
    lsd = [log_spectral_distance(t[0].numpy(), o[0].numpy(), OUTPUT_SAMPLE_RATE) for t, o in zip(target, output)]
    lsd_input = [log_spectral_distance(t[0].numpy(), b[0].numpy(), OUTPUT_SAMPLE_RATE) for t, b in zip(target, baseline)]
    terms = {f"val/{k.split('/')[1]}": v.item() for k, v in high_band_losses(output, target, state.config.model.crossover_hz).items()}
    terms.update({"val/lsd": float(np.mean(lsd)), "val/lsd_input": float(np.mean(lsd_input))})
    terms["val/lsd_ratio"] = terms["val/lsd"] / terms["val/lsd_input"]
    return terms, output


def checkpoint_payload(state: BweState) -> dict:
    payload = {
        "config": to_dict(state.config),
        "step": state.step,
        "epoch": state.epoch,
        "best_validation": state.best_validation,
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.optimizer.state_dict(),
    }
    if state.discriminators is not None:
        payload["discriminators"] = unwrap(state.discriminators).state_dict()
        payload["opt_d"] = state.opt_d.state_dict()
    return payload


def restore(state: BweState, payload: dict) -> None:
    saved = payload["config"]["model"]
    if saved != to_dict(state.config)["model"]:
        raise ValueError(f"model: the checkpoint was trained with {saved}, the config says {to_dict(state.config)['model']}")
    unwrap(state.model).load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.step, state.epoch, state.best_validation = payload["step"], payload["epoch"], payload["best_validation"]
    if state.discriminators is None:
        return
    if "discriminators" in payload:
        if payload["config"].get("discriminators") != to_dict(state.config)["discriminators"]:
            raise ValueError(f"discriminators: the checkpoint was trained with {payload['config'].get('discriminators')}, the config says {to_dict(state.config)['discriminators']}")
        unwrap(state.discriminators).load_state_dict(payload["discriminators"])
        state.opt_d.load_state_dict(payload["opt_d"])
    else:  # a reconstruction checkpoint: the adversarial stage starts with fresh discriminators and its own best
        logger.info("the checkpoint has no discriminators: they start fresh; best.pt now tracks the adversarial stage")
        state.best_validation = float("inf")


def write_checkpoints(state: BweState, run_dir: Path, writer, validation: tuple[torch.Tensor, torch.Tensor], snapshot: bool) -> None:
    """Rank 0: validate, log, write ``checkpoint.pt`` (+ ``best.pt`` when the validation LSD improves)."""
    noisy, target = validation
    terms, output = validate(state, noisy, target)
    for k, v in terms.items():
        writer.add_scalar(k, v, state.step)
    for name, audio, rate in (("input", noisy[0], 16_000), ("target", target[0], OUTPUT_SAMPLE_RATE), ("extended", output[0], OUTPUT_SAMPLE_RATE)):
        writer.add_audio(f"sample/{name}", audio.clamp(-1, 1), state.step, sample_rate=rate)
    writer.flush()
    logger.info("step %d validation %s", state.step, " ".join(f"{k}={v:.4f}" for k, v in terms.items()))
    payload = checkpoint_payload(state)
    if terms["val/lsd"] < state.best_validation:
        state.best_validation = terms["val/lsd"]
        payload["best_validation"] = state.best_validation
        save_checkpoint(run_dir / "best.pt", payload)
    save_checkpoint(run_dir / "checkpoint.pt", payload)
    if snapshot:
        save_checkpoint(run_dir / f"checkpoint_{state.step:08d}.pt", payload)


def lower_crossover(weights: dict[str, torch.Tensor], extra_bins: int, feature_bins: int) -> dict[str, torch.Tensor]:
    """A model's ``weights`` for a crossover ``extra_bins`` STFT bins lower that reads ``feature_bins`` bins:
    the input conv keeps its first ``feature_bins`` features, the head's first gain row (the old crossover
    bin) is repeated for the new bins below it."""
    if extra_bins < 0:
        raise ValueError(f"init-from: the crossover can only move down, got {-extra_bins} bins up")
    moved = dict(weights)
    if not 1 <= feature_bins <= moved["input.weight"].shape[1]:
        raise ValueError(f"init-from: the model reads {feature_bins} bins, the checkpoint's only {moved['input.weight'].shape[1]}")
    moved["input.weight"] = moved["input.weight"][:, :feature_bins]
    for name in ("head.3.weight", "head.3.bias"):
        moved[name] = torch.cat([moved[name][:1].expand(extra_bins, *moved[name].shape[1:]), moved[name]])
    return moved


def initialise_from(state: BweState, checkpoint_path: str | Path) -> None:
    """Start from the model weights of another run's checkpoint; step, optimizer and discriminators start fresh.
    The model config may differ where it leaves the shapes alone (e.g. ``source_high_hz``) or in a lower
    ``crossover_hz`` and fewer features (``lower_crossover``)."""
    payload = load_checkpoint(checkpoint_path)
    model = unwrap(state.model)
    previous = BandwidthExtender(from_dict(BandwidthExtenderConfig, payload["config"]["model"]))
    model.load_state_dict(lower_crossover(payload["model"], previous.crossover_bin - model.crossover_bin, model.feature_bins))


def train(config: BweConfig, run_dir: Path, world: World, max_steps: int | None = None, init_from: Path | None = None) -> BweState:
    """Run (or resume) training, writing checkpoints and TensorBoard logs to ``run_dir``; a new run starts
    from the weights of ``init_from`` when given (a run that has a checkpoint resumes it instead)."""
    torch.set_num_threads(config.threads)
    state = build_state(config, world)
    if (run_dir / "checkpoint.pt").is_file():
        restore(state, load_checkpoint(run_dir / "checkpoint.pt"))
        state.epoch += 1
        logger.info("resumed from %s at step %d", run_dir / "checkpoint.pt", state.step)
    elif init_from is not None:
        initialise_from(state, init_from)
        logger.info("new run starting from the model weights of %s", init_from)
    training_files, validation_files = split_by_actor(config.data.speech_dir)
    limiter = BandLimiter(config.band_limit)
    hop = config.model.hop_samples
    training = BandwidthPairs(training_files, config.data.segment_s, config.seed, limiter, hop)
    logger.info("%d training / %d validation files", len(training_files), len(validation_files))
    writer = validation = None
    if world.is_main:
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
        writer = SummaryWriter(str(run_dir / "tensorboard"))
        held_out = BandwidthPairs(validation_files, config.data.segment_s, config.seed, limiter, hop)
        pairs = [held_out[(VALIDATION_EPOCH, i)] for i in range(config.data.validation_examples)]
        validation = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    sampler = EpochSampler(config.data.examples_per_epoch, world.rank, world.world_size)
    loader = DataLoader(training, batch_size=config.batch_size // world.world_size, sampler=sampler,
                        num_workers=config.data.workers, drop_last=True, persistent_workers=config.data.workers > 0)
    end = config.steps if max_steps is None else min(config.steps, state.step + max_steps)
    run_steps(
        state, loader, sampler, end, world, writer, config,
        step=g_step, save=lambda snapshot: write_checkpoints(state, run_dir, writer, validation, snapshot),
    )
    if writer is not None:
        writer.close()
    return state


def export_checkpoint(checkpoint_path: str | Path, weights_path: str | Path) -> int:
    """Write the model of ``checkpoint_path`` to ``weights_path`` (safetensors, kind ``bandwidth_extension``); returns its step."""
    payload = load_checkpoint(checkpoint_path)
    config = from_dict(BweConfig, payload["config"])
    model = BandwidthExtender(config.model)
    model.load_state_dict(payload["model"])
    metadata = {
        "step": str(payload["step"]),
        "validation_lsd": f"{payload['best_validation']:.4f}",
        "data": f"RAVDESS 48 kHz speech ({config.data.speech_dir}), actors 1-20; 21-22 held out",
    }
    save_weights(model, weights_path, metadata)
    return payload["step"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakup_fx.train.bwe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="TOML file with what differs from the defaults")
    parser.add_argument("--run-dir", required=True, type=Path, help="checkpoints and logs; resumes from it automatically")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--init-from", type=Path, metavar="CHECKPOINT", help="a new run starts from this checkpoint's model weights (fine-tuning)")
    parser.add_argument("--export", type=Path, metavar="WEIGHTS", help="write the run's best checkpoint as safetensors to WEIGHTS and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_bwe_config(args.config)
        if args.export:
            step = export_checkpoint(args.run_dir / "best.pt", args.export)
            logger.info("exported step %d of %s to %s", step, args.run_dir, args.export)
            return 0
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    world = init_from_env(args.device)
    try:
        train(config, args.run_dir, world, args.max_steps, args.init_from)
        barrier(world)  # ranks leave together
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        code = 2
    else:
        code = 0
    finally:
        shutdown(world)
    return exit_rank(world, code)


if __name__ == "__main__":
    raise SystemExit(main())
