"""MetricGAN+ fine-tune of a two-output enhancer (Fu et al. 2021): a learned PESQ-WB predictor judges the product mix.

The restore preset plays ``(1 - d) * denoised + d * dereverberated`` (``d = dereverb_amount``); that mix is judged
against the same mix of the two targets. Each step the metric discriminator ``D(estimate, reference) -> [0, 1]``
learns the measured, normalised PESQ-WB of the mix and of the noisy input (and 1 for the reference itself, plus a
replayed earlier batch), while the generator keeps the run's reconstruction losses and adds
``adv/metric = (D(mix, reference) - 1)^2``. PESQ runs in a worker process beside the generator's update.
The best checkpoint (``best.pt``) is the EMA generator with the highest mean PESQ-WB of the product mix on the
fixed validation examples, so ``speakup train --export`` ships it.

``python -m speakup_fx.train.metricgan --config C --run-dir R --init-from WEIGHTS`` (steps: the config's
``schedule.generator_steps``)
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import random
from collections import deque
from pathlib import Path

import numpy as np
import torch
from pesq import PesqError
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm
from torch.utils.data import DataLoader

from speakup_fx.atomic import atomic_write
from speakup_fx.data.dataset import VALIDATION_EPOCH, EpochSampler
from speakup_fx.eval.metrics import pesq_wb
from speakup_fx.train.checkpoint import load_checkpoint, save_checkpoint
from speakup_fx.train.config import Config, load_config
from speakup_fx.train.distributed import init_from_env
from speakup_fx.train.loop import (
    build_datasets,
    build_state,
    checkpoint_payload,
    initialise_from,
    reconstruction_losses,
    restore,
    run_steps,
    set_stage,
    update_ema,
)

logger = logging.getLogger(__name__)

PESQ_FLOOR, PESQ_CEILING = 1.0, 4.64  # PESQ-WB's range; labels are (p - floor) / (ceiling - floor)


class MetricDiscriminator(nn.Module):
    """MetricGAN+'s predictor: compressed magnitudes of (estimate, reference) -> 4 spectrally normalised 5x5
    convs (15 channels; stride 2, a CPU's budget) -> mean over time and frequency -> 50 -> 10 -> 1, a learnable sigmoid to [0, 1.2]."""

    def __init__(self, n_fft: int = 512, hop: int = 256, channels: int = 15) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        layers, width = [], 2
        for _ in range(4):
            layers += [spectral_norm(nn.Conv2d(width, channels, 5, stride=2, padding=2)), nn.LeakyReLU(0.3)]
            width = channels
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(spectral_norm(nn.Linear(channels, 50)), nn.LeakyReLU(0.3),
                                  spectral_norm(nn.Linear(50, 10)), nn.LeakyReLU(0.3), spectral_norm(nn.Linear(10, 1)))
        self.slope = nn.Parameter(torch.ones(1))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def magnitudes(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(audio, self.n_fft, self.hop, window=self.window, return_complex=True)
        return spectrum.abs().clamp_min(1e-8) ** 0.3

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` each -> predicted normalised PESQ ``(B,)``."""
        x = torch.stack([self.magnitudes(estimate), self.magnitudes(reference)], dim=1)
        return 1.2 * torch.sigmoid(self.slope * self.head(self.convs(x).mean(dim=(2, 3))).squeeze(1))


def product_mix(outputs: torch.Tensor, dereverb_amount: float) -> torch.Tensor:
    """``(B, 2, T)`` (denoised, dereverberated) -> the restore preset's ``(B, T)`` mix."""
    return torch.lerp(outputs[:, 0], outputs[:, 1], dereverb_amount)


def pesq_labels(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> np.ndarray:
    """Normalised PESQ-WB of each ``(reference, estimate)`` row; NaN where PESQ finds no speech."""
    labels = np.full(len(references), np.nan, np.float32)
    for i, (reference, estimate) in enumerate(zip(references, estimates)):
        try:
            labels[i] = (pesq_wb(reference, estimate, sample_rate) - PESQ_FLOOR) / (PESQ_CEILING - PESQ_FLOOR)
        except PesqError:  # no utterance found
            continue
    return labels


class MetricStep:
    """One training step: the generator's update (after ``d_warmup_steps``), then the discriminator's on PESQ
    measured meanwhile in ``pool``."""

    def __init__(self, discriminator: MetricDiscriminator, pool, metric_weight: float, d_lr: float,
                 d_warmup_steps: int, dereverb_amount: float, replay_batches: int = 32) -> None:
        self.discriminator, self.pool = discriminator, pool
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=d_lr, betas=(0.9, 0.999))
        self.metric_weight, self.d_warmup_steps, self.dereverb_amount = metric_weight, d_warmup_steps, dereverb_amount
        self.replay: deque = deque(maxlen=replay_batches)
        self.rng = random.Random(0)

    def __call__(self, state, noisy: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        config = state.config
        set_stage(state, "generator")
        fake = state.generator(noisy)
        mix, reference = product_mix(fake, self.dereverb_amount), product_mix(target, self.dereverb_amount)
        source = noisy[:, 0]
        rows = torch.cat([reference, reference]).numpy(), torch.cat([mix.detach(), source]).numpy()
        measured = self.pool.apply_async(pesq_labels, (*rows, config.degrade.sample_rate))
        logs = {}
        if state.step >= self.d_warmup_steps:
            terms = reconstruction_losses(config, fake, target)
            self.discriminator.requires_grad_(False)
            terms["adv/metric"] = ((self.discriminator(mix, reference) - 1) ** 2).mean()
            self.discriminator.requires_grad_(True)
            weights = {**config.loss.weights, "adv/metric": self.metric_weight}
            total = sum(weights[name] * value for name, value in terms.items())
            state.opt_g.zero_grad(set_to_none=True)
            total.backward()
            norm = nn.utils.clip_grad_norm_(state.generator.parameters(), config.optim.grad_clip)
            state.opt_g.step()
            update_ema(state)
            logs = {**{k: v.item() for k, v in terms.items()}, "gen/total": total.item(), "gen/grad_norm": norm.item()}
        labels = torch.from_numpy(measured.get())
        half = len(reference)
        logs.update(self.d_step(reference, mix.detach(), source, labels[:half], labels[half:]))
        state.step += 1
        return logs

    def d_step(self, reference, mix, source, mix_labels, source_labels) -> dict[str, float]:
        batches = [(reference, reference, torch.ones(len(reference))), (mix, reference, mix_labels), (source, reference, source_labels)]
        if self.replay:
            batches.append(self.rng.choice(self.replay))
        self.replay.append((mix, reference, mix_labels))
        estimates, references, labels = (torch.cat(parts) for parts in zip(*batches))
        known = ~torch.isnan(labels)
        predicted = self.discriminator(estimates[known], references[known])
        loss = F.mse_loss(predicted, labels[known])
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        error = (predicted.detach() - labels[known]).abs()[len(reference):]  # the measured rows only
        return {"adv/disc": loss.item(), "adv/disc_abs_error": error.mean().item(), "adv/pesq_mix": float(np.nanmean(mix_labels.numpy())) * (PESQ_CEILING - PESQ_FLOOR) + PESQ_FLOOR}


@torch.no_grad()
def validation_pesq(state, noisy: torch.Tensor, target: torch.Tensor, dereverb_amount: float, pool) -> float:
    """Mean PESQ-WB of the EMA generator's product mix on the fixed validation examples."""
    generator = state.ema.eval()
    fake = torch.cat([generator(n[None]) for n in noisy])
    generator.train()
    labels = pool.apply(pesq_labels, (product_mix(target, dereverb_amount).numpy(), product_mix(fake, dereverb_amount).numpy(), state.config.degrade.sample_rate))
    return float(np.nanmean(labels)) * (PESQ_CEILING - PESQ_FLOOR) + PESQ_FLOOR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--init-from", type=Path, help="weights to fine-tune (a new run only)")
    parser.add_argument("--metric-weight", type=float, default=2.0, help="weight of adv/metric beside the config's losses")
    parser.add_argument("--d-lr", type=float, default=5e-4, help="discriminator learning rate (constant)")
    parser.add_argument("--d-warmup-steps", type=int, default=200, help="steps that train only the discriminator")
    parser.add_argument("--dereverb-amount", type=float, default=0.8, help="the judged mix's dereverb amount (restore preset)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config: Config = load_config(args.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            fine_tune(config, args, pool)
    finally:
        torch.set_num_threads(threads)


def fine_tune(config: Config, args: argparse.Namespace, pool) -> None:
    """Run (or resume) the fine-tune in ``args.run_dir``, PESQ measured in ``pool``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("the MetricGAN+ fine-tune runs in one process (its discriminator and PESQ worker are not shared across ranks); launch it without torchrun")
    if config.optim.ema_decay <= 0:
        raise ValueError(f"optim.ema_decay = {config.optim.ema_decay}: the fine-tune validates and keeps an EMA copy; set it in (0, 1)")
    world = init_from_env("cpu")
    state = build_state(config, world)
    discriminator = MetricDiscriminator()
    step_fn = MetricStep(discriminator, pool, args.metric_weight, args.d_lr, args.d_warmup_steps, args.dereverb_amount)
    run_dir = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    scores_path = run_dir / "validation_pesq.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    if (run_dir / "checkpoint.pt").is_file():
        payload = load_checkpoint(run_dir / "checkpoint.pt")
        restore(state, payload)
        discriminator.load_state_dict(payload["metric_discriminator"])
        step_fn.opt_d.load_state_dict(payload["opt_metric_discriminator"])
        state.epoch += 1
    elif args.init_from:
        initialise_from(state, args.init_from)
    training, held_out = build_datasets(config)
    pairs = [held_out[(VALIDATION_EPOCH, i)] for i in range(config.data.validation_examples)]
    validation = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    if not scores:
        scores[str(state.step)] = validation_pesq(state, *validation, args.dereverb_amount, pool)
        logger.info("step %d validation PESQ-WB %.4f (start)", state.step, scores[str(state.step)])

    def save(snapshot: bool) -> None:
        value = validation_pesq(state, *validation, args.dereverb_amount, pool)
        logger.info("step %d validation PESQ-WB %.4f", state.step, value)
        payload = checkpoint_payload(state) | {"metric_discriminator": discriminator.state_dict(), "opt_metric_discriminator": step_fn.opt_d.state_dict()}
        if value > max(scores.values()):
            save_checkpoint(run_dir / "best.pt", payload)
        scores[str(state.step)] = value
        with atomic_write(scores_path) as temporary:
            temporary.write_text(json.dumps(scores, indent=1))
        save_checkpoint(run_dir / "checkpoint.pt", payload)

    sampler = EpochSampler(config.data.examples_per_epoch, 0, 1)
    loader = DataLoader(training, batch_size=config.batch_size, sampler=sampler, num_workers=config.data.workers, drop_last=True)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    run_steps(state, loader, sampler, config.schedule.generator_steps, world, writer, config, step=step_fn, save=save)
    writer.close()


if __name__ == "__main__":
    main()
