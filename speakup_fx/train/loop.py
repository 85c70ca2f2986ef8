"""The training loop: builds a ``State``, orders ``d_step``/``g_step``, validation and checkpoints."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from speakup_fx.data.corpus import load_noises, load_real_rirs, make_babble, simulated_rooms_cached, train_rows
from speakup_fx.data.dataset import VALIDATION_EPOCH, BlendedPairs, DegradedSpeech, EpochSampler, is_validation_file
from speakup_fx.data.degrade import DegradeConfig, Degrader
from speakup_fx.data.quality import keep_clean
from speakup_fx.data.shards import JoinedPairs, ShardedPairs
from speakup_fx.models.dfnet import DFNet, lengthen_filters, widen_state
from speakup_fx.models.discriminators import Discriminators
from speakup_fx.models.paper import PaperGenerator
from speakup_fx.models.streaming import StreamingGenerator
from speakup_fx.runtime.weights import load_model
from speakup_fx.train import losses
from speakup_fx.train.checkpoint import load_checkpoint, save_checkpoint
from speakup_fx.train.config import Config, from_dict, segment_samples, to_dict
from speakup_fx.train.distributed import World, mean_across_ranks, per_rank_batch, unwrap, wrap

logger = logging.getLogger(__name__)

STAGES = ("generator", "postnet", "adversarial")


def build_generator(config: Config) -> nn.Module:
    """The generator ``config.generator`` names, from its own config section."""
    if config.generator == "streaming":
        return StreamingGenerator(config.streaming)
    if config.generator == "dfnet":
        return DFNet(config.dfnet)
    return PaperGenerator(config.hifigan_paper)


def load_trained_generator(checkpoint_path: str | Path) -> tuple[nn.Module, dict]:
    """The generator of a training checkpoint, in eval mode, with its EMA weights when the run kept them;
    and the checkpoint's payload (``config`` dict, ``step``, ...)."""
    payload = load_checkpoint(checkpoint_path)
    config = from_dict(Config, payload["config"])
    generator = build_generator(config)
    generator.load_state_dict(payload.get("generator_ema", payload["generator"]))
    return generator.eval(), payload


def output_count(generator: nn.Module) -> int:
    """Output channels of a generator (one unless it names several)."""
    return len(getattr(generator, "output_names", ("enhanced",)))


def stage_of(config: Config, step: int) -> str | None:
    """Stage of the schedule at optimizer step ``step`` (None once the schedule is done)."""
    s = config.schedule
    for stage, end in zip(STAGES, np.cumsum([s.generator_steps, s.postnet_steps, s.adversarial_steps])):
        if step < end:
            return stage
    return None


@dataclass
class State:
    """Every object of a training run."""

    config: Config
    world: World
    generator: nn.Module
    opt_g: torch.optim.Optimizer
    discriminators: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    ema: nn.Module | None = None
    step: int = 0
    epoch: int = 0
    best_validation: float = float("inf")


def build_state(config: Config, world: World) -> State:
    """Models (DDP-wrapped when the world has several ranks) and optimizers, seeded."""
    torch.manual_seed(config.seed)
    generator = build_generator(config).to(world.device)
    if output_count(generator) != len(config.data.targets):
        raise ValueError(f"data.targets: {len(config.data.targets)} targets {list(config.data.targets)} for a generator with {output_count(generator)} outputs")
    if config.schedule.adversarial_steps > 0 and output_count(generator) > 1:
        raise ValueError(f"schedule.adversarial_steps: the discriminators judge one output; {config.generator} has {output_count(generator)}")
    postnet = [p for n, p in generator.named_parameters() if n.startswith("postnet.")]
    body = [p for n, p in generator.named_parameters() if not n.startswith("postnet.")]
    o = config.optim
    opt_g = torch.optim.Adam([{"params": body}, {"params": postnet}], lr=o.generator_lr, betas=o.betas)
    state = State(config, world, wrap(generator, world), opt_g)
    if o.ema_decay > 0:
        state.ema = copy.deepcopy(generator).requires_grad_(False)
    if config.schedule.adversarial_steps > 0:
        discriminators = Discriminators(config.discriminators).to(world.device)
        state.discriminators = wrap(discriminators, world)
        state.opt_d = torch.optim.Adam(discriminators.parameters(), lr=o.discriminator_lr, betas=o.betas)
    return state


def lr_factor(config: Config, step: int) -> float:
    """Learning rate of optimizer step ``step`` / the configured rate.

    'exponential': ``lr_decay ** step``. 'warmup_cosine': linear from 0 over ``warmup_steps``, then a cosine
    from 1 down to ``lr_floor_ratio`` (never 0) at the schedule's last step, and that floor after it.
    """
    o, s = config.optim, config.schedule
    if o.lr_schedule == "exponential":
        return o.lr_decay**step
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    end = s.generator_steps + s.postnet_steps + s.adversarial_steps
    progress = min((step - o.warmup_steps) / max(end - o.warmup_steps, 1), 1.0)
    return o.lr_floor_ratio + (1 - o.lr_floor_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def update_ema(state: State) -> None:
    """Move the EMA copy toward the trained weights (decay ramps up over the first steps); buffers are copied."""
    decay = min(state.config.optim.ema_decay, (1 + state.step) / (10 + state.step))
    trained = unwrap(state.generator)
    for average, current in zip(state.ema.parameters(), trained.parameters(), strict=True):
        average.lerp_(current, 1 - decay)
    for average, current in zip(state.ema.buffers(), trained.buffers(), strict=True):
        average.copy_(current)


def set_stage(state: State, stage: str) -> None:
    """Learning rates of this step: ``lr_factor`` of the configured ones; the postnet frozen (rate 0) in the generator-only stage."""
    o = state.config.optim
    decay = lr_factor(state.config, state.step)
    state.opt_g.param_groups[0]["lr"] = o.generator_lr * decay
    state.opt_g.param_groups[1]["lr"] = 0.0 if stage == "generator" else o.generator_lr * decay
    if state.opt_d is not None:
        state.opt_d.param_groups[0]["lr"] = o.discriminator_lr * decay


def generate(state: State, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` with ``fake``: the generator's output for ``noisy``."""
    return {**batch, "fake": state.generator(batch["noisy"])}


def d_step(state: State, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """One discriminator update on real ``target`` vs ``fake.detach()``."""
    scores, _ = state.discriminators(torch.cat([batch["target"], batch["fake"].detach()]))
    half = batch["target"].shape[0]
    loss = losses.lsgan_discriminator_loss([s[:half] for s in scores], [s[half:] for s in scores])
    state.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_d.step()
    return {"adv/disc": loss.item()}


def reconstruction_losses(config: Config, fake: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reconstruction terms that ``config.loss.weights`` names."""
    spectra = losses.CompressedSpectra(fake, target)  # shared by the compressed terms
    options = {"gen/mrspec": {"spectra": spectra},
               "gen/oversup": {"low_bin_share": config.loss.over_suppression_low_hz / (config.degrade.sample_rate / 2), "spectra": spectra},
               "gen/stoi": {"sample_rate": config.degrade.sample_rate}}
    return {name: loss(fake, target, **options.get(name, {})) for name, loss in losses.RECONSTRUCTION_LOSSES.items() if name in config.loss.weights}


def generator_losses(state: State, batch: dict[str, torch.Tensor], adversarial: bool) -> dict[str, torch.Tensor]:
    """Named generator loss terms (unweighted)."""
    fake, target = batch["fake"], batch["target"]
    terms = reconstruction_losses(state.config, fake, target)
    if adversarial:
        terms.update(adversarial_losses(state.discriminators, target, fake))
    return terms


def adversarial_losses(discriminators: nn.Module, target: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The generator's LSGAN and feature-matching terms (``adv/gen``, ``adv/feat``) for ``fake`` against real ``target``."""
    scores, features = discriminators(torch.cat([target, fake]))
    half = target.shape[0]
    return {
        "adv/gen": losses.lsgan_generator_loss([s[half:] for s in scores]),
        "adv/feat": losses.feature_matching_loss([[f[:half] for f in fs] for fs in features], [[f[half:] for f in fs] for fs in features]),
    }


def g_step(state: State, batch: dict[str, torch.Tensor], adversarial: bool = False) -> dict[str, float]:
    """One generator update with the weighted named losses."""
    terms = generator_losses(state, batch, adversarial)
    weights = state.config.loss.weights
    total = sum(weights.get(name, 0.0) * value for name, value in terms.items())
    state.opt_g.zero_grad(set_to_none=True)
    total.backward()
    norm = nn.utils.clip_grad_norm_(state.generator.parameters(), state.config.optim.grad_clip)
    state.opt_g.step()
    if state.ema is not None:
        update_ema(state)
    return {**{k: v.item() for k, v in terms.items()}, "gen/total": total.item(), "gen/grad_norm": norm.item()}


def train_step(state: State, noisy: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """One step of the stage the schedule is in."""
    stage = stage_of(state.config, state.step)
    set_stage(state, stage)
    batch = generate(state, {"noisy": noisy.to(state.world.device), "target": target.to(state.world.device)})
    logs = d_step(state, batch) if stage == "adversarial" else {}
    logs.update(g_step(state, batch, adversarial=stage == "adversarial"))
    state.step += 1
    return logs


def checkpoint_payload(state: State) -> dict:
    payload = {
        "config": to_dict(state.config),
        "step": state.step,
        "epoch": state.epoch,
        "best_validation": state.best_validation,
        "generator": unwrap(state.generator).state_dict(),
        "opt_g": state.opt_g.state_dict(),
    }
    if state.ema is not None:
        payload["generator_ema"] = state.ema.state_dict()
    if state.discriminators is not None:
        payload["discriminators"] = unwrap(state.discriminators).state_dict()
        payload["opt_d"] = state.opt_d.state_dict()
    return payload


def restore(state: State, payload: dict) -> None:
    """Load a checkpoint's weights, optimizers and counters into ``state``."""
    saved = payload["config"]
    current = to_dict(state.config)
    for key in ("generator", "streaming", "hifigan_paper", "dfnet", "discriminators"):
        if saved.get(key, current[key]) != current[key]:
            raise ValueError(f"{key}: the checkpoint was trained with {saved[key]}, the config says {current[key]}")
    unwrap(state.generator).load_state_dict(payload["generator"])
    if state.ema is not None:
        state.ema.load_state_dict(payload.get("generator_ema", payload["generator"]))
    state.opt_g.load_state_dict(payload["opt_g"])
    if state.discriminators is not None and "discriminators" in payload:
        unwrap(state.discriminators).load_state_dict(payload["discriminators"])
        state.opt_d.load_state_dict(payload["opt_d"])
    state.step, state.epoch, state.best_validation = payload["step"], payload["epoch"], payload["best_validation"]
    if any(saved[key] != current[key] for key in ("degrade", "data", "loss")):
        logger.warning("data or loss settings changed since the checkpoint: validation scores restart")
        state.best_validation = float("inf")


def starting_weights(path: str | Path) -> tuple[str, object, dict[str, torch.Tensor], int]:
    """Generator name, its config section, weights and step of a training checkpoint (EMA weights when kept)
    or of a shipped weights file (``.safetensors``, e.g. ``speakup_fx/weights/enhancer.safetensors``)."""
    if Path(path).suffix == ".safetensors":
        info, model = load_model(path)
        return info.architecture.name, info.config, model.state_dict(), int(info.metadata.get("step", 0))
    payload = load_checkpoint(path)
    saved = from_dict(Config, payload["config"])
    name = saved.generator  # also the name of its config section
    return name, getattr(saved, name), payload.get("generator_ema", payload["generator"]), payload["step"]


def initialise_from(state: State, checkpoint_path: str | Path) -> None:
    """Start the generator (and its EMA copy) from another run's generator weights (``starting_weights``); a
    DFNet is widened when this config has more channels (``widen_state``), its deep filters lengthened when it
    has a higher ``df_order`` (``lengthen_filters``), and takes the weights as they are when
    only shapeless fields differ (e.g. ``lookahead_frames``). Step, optimizer and scores start fresh."""
    name, saved, weights, step = starting_weights(checkpoint_path)
    generator = unwrap(state.generator)
    if name != state.config.generator:
        raise ValueError(f"--init-from: {checkpoint_path} holds a {name!r} generator, the config trains {state.config.generator!r}")
    if saved != getattr(state.config, name):
        if name != "dfnet":
            raise ValueError(f"--init-from: {checkpoint_path} was trained with {name} {saved}, the config says {getattr(state.config, name)}")
        if saved.channels != state.config.dfnet.channels:
            weights = widen_state(weights, saved, generator)
        elif saved.df_order != state.config.dfnet.df_order:
            weights = lengthen_filters(weights, saved, generator)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"--init-from: the weights of {checkpoint_path} do not fit this config's generator: {error}") from error
    if state.ema is not None:
        state.ema.load_state_dict(generator.state_dict())
    logger.info("new run starting from the generator of %s (step %d)", checkpoint_path, step)


def build_degrader(config: Config, degrade: DegradeConfig | None = None) -> Degrader:
    """The training noise (plus ``data.babble_noises`` babble recordings made from training speech) and room
    banks with ``degrade`` (default: the config's) drawing from them."""
    c, rate = config.data, config.degrade.sample_rate
    real = load_real_rirs(c.data_dir, rate)
    rirs = real + simulated_rooms_cached(c.cache_dir, c.simulated_rooms, rate, config.seed)
    noises = load_noises(c.data_dir, rate)
    if c.babble_noises:
        noises += make_babble(split_speech(config)[0], c.babble_noises, c.babble_talkers, rate, config.seed, rirs, c.babble_room_prob)
    return Degrader(noises, rirs, len(real), degrade or config.degrade)


def split_speech(config: Config) -> tuple[list, list]:
    """Training speech files that pass the clean-speech filter, and held-out (validation) files, at the training rate.

    Validation files are not filtered, so validation scores stay comparable across filter settings.
    """
    speech = [r for r in train_rows(config.data.data_dir, "speech") if r.sample_rate == config.degrade.sample_rate]
    training = keep_clean([r for r in speech if not is_validation_file(r.path)], config.data.cache_dir, config.data.min_clean_dnsmos_bak)
    if not training:
        raise ValueError(f"data.min_clean_dnsmos_bak = {config.data.min_clean_dnsmos_bak}: no training speech file scores that high")
    return training, [r for r in speech if is_validation_file(r.path)]


def extra_speech(config: Config) -> list:
    """The training speech of ``data.extra_speech``'s folders at the training rate, through the clean-speech filter."""
    rows = []
    for folder in config.data.extra_speech:
        if not (Path(folder) / "manifest.csv").is_file():
            raise ValueError(f"data.extra_speech: {folder} has no manifest.csv (write it with `speakup import-speech`)")
        rows += [r for r in train_rows(folder, "speech") if r.sample_rate == config.degrade.sample_rate]
    return keep_clean(rows, config.data.cache_dir, config.data.min_clean_dnsmos_bak)


def build_datasets(config: Config) -> tuple[Dataset, DegradedSpeech]:
    """Training and validation sets (validation: held-out speech files, fixed draws; training adds
    ``data.extra_speech``); training reads
    ``data.shards`` when set (pairs from ``speakup spark degrade``) instead of degrading on the fly, and
    draws a ``data.teacher_share`` of its examples from ``data.teacher_shards`` (a teacher's labels)."""
    c = config.data
    degrader = build_degrader(config)
    training, held_out = split_speech(config)
    validation = degraded_speech(config, held_out or training, degrader)
    training = training + extra_speech(config)  # a new list: validation may hold the old one
    logger.info("%d training / %d validation speech files, %d noises, %d rooms", len(training), len(held_out), len(degrader.noises), len(degrader.rirs))
    rate, samples = config.degrade.sample_rate, segment_samples(config)
    pairs = ShardedPairs(c.shards, rate, samples, c.targets, config.seed) if c.shards else degraded_speech(config, training, degrader)
    if not c.teacher_shards:
        return pairs, validation
    labelled = JoinedPairs([ShardedPairs(folder, rate, samples, c.targets, config.seed) for folder in c.teacher_shards], config.seed)
    if labelled.teacher is None:
        raise ValueError(f"data.teacher_shards: {', '.join(c.teacher_shards)} hold clean targets, not a teacher's labels (made without --teacher)")
    logger.info("%.0f %% of the examples from %d pairs labelled by %s", 100 * c.teacher_share, len(labelled), labelled.teacher)
    return BlendedPairs(pairs, labelled, c.teacher_share, config.seed), validation


def degraded_speech(config: Config, speech: list, degrader: Degrader) -> DegradedSpeech:
    """The config's degraded examples of ``speech`` (training, validation and Spark shards draw them alike)."""
    c = config.data
    return DegradedSpeech(speech, degrader, segment_samples(config), config.seed, c.targets, c.lead_silence_prob, c.lead_silence_s_range)


@torch.no_grad()
def validate(state: State, noisy: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
    """Weighted reconstruction loss on the fixed validation set (rank 0, no DDP), of the EMA copy when there is one."""
    generator = (unwrap(state.generator) if state.ema is None else state.ema).eval()
    fake = torch.cat([generator(n[None].to(state.world.device)) for n in noisy]).cpu()
    generator.train()
    weights = state.config.loss.weights
    values = reconstruction_losses(state.config, fake, target)
    terms = {name.replace("gen/", "val/"): value.item() for name, value in values.items()}
    terms["val/total"] = sum(weights[name] * value.item() for name, value in values.items())
    return terms, fake


def write_checkpoints(state: State, run_dir: Path, writer, validation: tuple[torch.Tensor, torch.Tensor], snapshot: bool) -> None:
    """Rank 0: validate, log scores and audio, write ``checkpoint.pt`` (+ ``best.pt`` when validation improves)."""
    noisy, target = validation
    terms, fake = validate(state, noisy, target)
    for k, v in terms.items():
        writer.add_scalar(k, v, state.step)
    names = getattr(unwrap(state.generator), "output_names", ("enhanced",))
    clips = {"noisy": noisy[0, 0]} | {f"target_{n}": t for n, t in zip(names, target[0])} | {n: f for n, f in zip(names, fake[0])}
    for name, audio in clips.items():
        writer.add_audio(f"sample/{name}", audio.clamp(-1, 1)[None], state.step, sample_rate=state.config.degrade.sample_rate)
    writer.flush()
    logger.info("step %d validation %s", state.step, " ".join(f"{k}={v:.4f}" for k, v in terms.items()))
    payload = None
    if terms["val/total"] < state.best_validation:
        state.best_validation = terms["val/total"]
        payload = checkpoint_payload(state)
        save_checkpoint(run_dir / "best.pt", payload)
    payload = payload or checkpoint_payload(state)
    save_checkpoint(run_dir / "checkpoint.pt", payload)
    if snapshot:
        save_checkpoint(run_dir / f"checkpoint_{state.step:08d}.pt", payload)


def train(
    config: Config, run_dir: Path, world: World, max_steps: int | None = None, require_resume: bool = False, init_from: Path | None = None,
    max_minutes: float | None = None,
) -> State:
    """Run (or resume) the schedule, writing checkpoints and TensorBoard logs to ``run_dir``; a new run
    starts from the generator of the checkpoint ``init_from`` when given (``initialise_from``). With
    ``max_minutes`` it stops, checkpoints written, at the first log step that many minutes after the start.

    Torch runs on ``config.threads`` threads meanwhile; the caller's thread count is restored on exit.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
        return _train(config, run_dir, world, max_steps, require_resume, init_from, deadline)
    finally:
        torch.set_num_threads(threads)


def _train(
    config: Config, run_dir: Path, world: World, max_steps: int | None, require_resume: bool, init_from: Path | None, deadline: float | None
) -> State:
    state = build_state(config, world)
    if (run_dir / "checkpoint.pt").is_file():
        restore(state, load_checkpoint(run_dir / "checkpoint.pt"))
        state.epoch += 1
        logger.info("resumed from %s at step %d", run_dir / "checkpoint.pt", state.step)
    elif require_resume:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir}")
    elif init_from is not None:
        initialise_from(state, init_from)
    training, held_out = build_datasets(config)
    writer = validation = None
    if world.is_main:
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
        writer = SummaryWriter(str(run_dir / "tensorboard"))
        pairs = [held_out[(VALIDATION_EPOCH, i)] for i in range(config.data.validation_examples)]
        validation = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    sampler = EpochSampler(config.data.examples_per_epoch, world.rank, world.world_size)
    loader = DataLoader(training, batch_size=per_rank_batch(config.batch_size, world), sampler=sampler, num_workers=config.data.workers, drop_last=True)
    end = sum((config.schedule.generator_steps, config.schedule.postnet_steps, config.schedule.adversarial_steps))
    if max_steps is not None:
        end = min(end, state.step + max_steps)
    run_steps(
        state, loader, sampler, end, world, writer, config,
        step=train_step,
        save=lambda snapshot: write_checkpoints(state, run_dir, writer, validation, snapshot),
        describe=lambda step: f"({stage_of(config, step - 1)}) ",
        deadline=deadline,
    )
    if writer is not None:
        writer.close()
    return state


def run_steps(state, loader, sampler, end: int, world: World, writer, config, step, save, describe=lambda step: "", deadline: float | None = None) -> None:
    """The training loop's body, shared by every model's trainer: step until ``end``, log, checkpoint.

    ``step(state, noisy, target) -> {name: value}`` runs one optimiser step and advances ``state.step``;
    metrics are averaged over ``config.log_every`` steps and across ranks; ``save(snapshot)`` writes the
    checkpoints on the main rank every ``config.checkpoint_every_s`` (and a numbered snapshot every
    ``config.snapshot_every_s``) and at the end; ``describe(step)`` prefixes each log line's metrics. Past
    ``deadline`` (``time.monotonic()``) it ends at the next log step, on every rank at the same step.
    """
    last_checkpoint = last_snapshot = time.monotonic()
    sums: dict[str, float] = {}
    counted = 0
    out_of_time = False
    while state.step < end and not out_of_time:
        sampler.set_epoch(state.epoch)
        for noisy, target in loader:
            started = time.monotonic()
            for k, v in step(state, noisy, target).items():
                sums[k] = sums.get(k, 0.0) + v
            sums["speed/step_s"] = sums.get("speed/step_s", 0.0) + time.monotonic() - started
            counted += 1
            if state.step % config.log_every == 0:
                means = {k: mean_across_ranks(torch.tensor(v / counted), world).item() for k, v in sums.items()}
                sums, counted = {}, 0
                if writer is not None:
                    for k, v in means.items():
                        writer.add_scalar(k, v, state.step)
                    logger.info("step %d %s%s", state.step, describe(state.step),
                                " ".join(f"{k}={v:.4f}" for k, v in sorted(means.items())))
                if deadline is not None:  # one rank's clock decides for all, so none waits in a collective alone
                    out_of_time = mean_across_ranks(torch.tensor(float(time.monotonic() >= deadline)), world).item() > 0
                    if out_of_time:
                        logger.info("step %d: out of time, stopping", state.step)
            now = time.monotonic()
            done = state.step >= end or out_of_time
            if world.is_main and (done or now - last_checkpoint >= config.checkpoint_every_s):
                snapshot = now - last_snapshot >= config.snapshot_every_s
                save(snapshot)
                last_checkpoint, last_snapshot = now, now if snapshot else last_snapshot
            if done:
                break
        state.epoch += 1
