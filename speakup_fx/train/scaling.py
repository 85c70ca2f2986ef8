"""DDP scaling: steps, samples and wall time to a fixed validation loss with 1 and N processes (gloo or NCCL).

``python -m speakup_fx.train.scaling --config configs/ddp_scaling.toml --steps 600 --out runs/ddp_scaling``
trains one arm after another with torchrun, each from the same seed on the same examples, validating
every ``--validate-every`` steps on one fixed validation set, and writes each arm's curve
(``ARM/curve.csv``) and the table (``scaling.csv``, ``scaling.md``). The arms:

- ``1proc``: one process on the config's global batch (the reference);
- ``1proc_reordered``: the same, with the examples of each batch in reverse order: the same sums in
  another float order, so it measures how far rounding alone moves a trajectory;
- ``Nproc``: N processes by the batch rule (``per_rank_batch``): each rank takes ``batch_size / N``,
  so every step is a step on the same global batch as ``1proc``;
- ``Nproc_reordered``: the same, each rank's examples in reverse order: rounding alone at N processes
  (another batch shape per rank rounds differently from reversing one batch, so both controls count);
- ``Nproc_batchxN``: N processes that keep the one-process batch per rank (the global batch N times
  larger) at the config's learning rate, which the rule defines for the global batch and does not
  rescale: what training does without the rule.

Fixed before any run: the threshold is the reference's validation loss at ``--threshold-fraction`` of
its steps; an arm reaches it at its first validation step with a loss at or below it. Training wall
time excludes validation (only rank 0 validates, the other ranks wait). Curves are compared by the RMS
over validation steps of their relative difference. The float-order tolerance is ``AGREEMENT_FACTOR``
times the larger of the two controls' differences from their own arm (rounding differences start tiny
and grow by the same training dynamics, so the controls show how far float order alone carries a run);
an arm agrees with the reference when its difference from ``1proc`` is within it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from speakup_fx.atomic import atomic_write
from speakup_fx.data.dataset import VALIDATION_EPOCH, EpochSampler
from speakup_fx.train.config import load_config
from speakup_fx.train.distributed import World, barrier, exit_rank, init_from_env, per_rank_batch, shutdown
from speakup_fx.train.loop import build_datasets, build_state, run_steps, train_step, validate

logger = logging.getLogger(__name__)

AGREEMENT_FACTOR = 2.0
"""An arm agrees with the reference when its RMS relative difference is at most this times the larger control's
(each control run is one draw of the rounding-only difference; the factor leaves room for that draw being small)."""

CURVE_FIELDS = ("step", "samples", "train_s", "val_total", "load_1min")


@dataclass(frozen=True)
class Arm:
    """One training run of the comparison."""

    name: str
    processes: int
    batch_size: int
    reorder: bool = False


def arms_for(processes: int, batch_size: int) -> list[Arm]:
    """The reference, ``processes`` ranks by the rule, each with its float-order control, and ``processes`` ranks keeping the per-rank batch."""
    return [
        Arm("1proc", 1, batch_size),
        Arm("1proc_reordered", 1, batch_size, reorder=True),
        Arm(f"{processes}proc", processes, batch_size),
        Arm(f"{processes}proc_reordered", processes, batch_size, reorder=True),
        Arm(f"{processes}proc_batchx{processes}", processes, batch_size * processes),
    ]


class ReversedBatches(Sampler):
    """``sampler``'s items with each run of ``batch_size`` reversed: the same batches, summed in another order."""

    def __init__(self, sampler: EpochSampler, batch_size: int):
        self.sampler = sampler
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        items = list(self.sampler)
        return iter([item for start in range(0, len(items), self.batch_size) for item in reversed(items[start:start + self.batch_size])])


def train_arm(config_path: Path, batch_size: int, steps: int, validate_every: int, reorder: bool, out_dir: Path, world: World,
              dtype: torch.dtype = torch.float32, seed: int | None = None) -> None:
    """This rank's part of one arm: ``steps`` steps of ``train_step`` on the global ``batch_size``; rank 0
    validates at step 0 and every ``validate_every`` steps and writes ``out_dir/curve.csv``. ``seed`` (default:
    the config's) seeds the initial weights and every data draw.

    ``dtype`` float64 makes rounding about 1e9 times smaller than float32, so in the first steps what
    differs between arms is what they compute, not how they round (later, any rounding grows: see README).
    """
    config = load_config(config_path)
    # save() below decides when to validate, so the loop must offer it every step
    config = replace(config, batch_size=batch_size, checkpoint_every_s=0.0, seed=config.seed if seed is None else seed)
    threads, default_dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(config.threads)
    torch.set_default_dtype(dtype)
    try:
        state = build_state(config, world)
        training, held_out = build_datasets(config)
        share = per_rank_batch(config.batch_size, world)
        sampler = EpochSampler(config.data.examples_per_epoch, world.rank, world.world_size)
        order = ReversedBatches(sampler, share) if reorder else sampler
        loader = DataLoader(training, batch_size=share, sampler=order, num_workers=config.data.workers, drop_last=True)
        rows: list[dict] = []
        if world.is_main:
            pairs = [held_out[(VALIDATION_EPOCH, i)] for i in range(config.data.validation_examples)]
            validation = torch.stack([p[0] for p in pairs]).to(dtype), torch.stack([p[1] for p in pairs]).to(dtype)
        started = time.monotonic()
        validating_s = 0.0

        def save(snapshot: bool) -> None:
            nonlocal validating_s
            if state.step % validate_every and state.step < steps:
                return
            before = time.monotonic()
            terms, _ = validate(state, *validation)
            rows.append({"step": state.step, "samples": state.step * config.batch_size, "train_s": round(before - started - validating_s, 3),
                         "val_total": terms["val/total"], "load_1min": os.getloadavg()[0]})
            logger.info("step %d val/total %.5f train %.1f s load %.2f", state.step, terms["val/total"], rows[-1]["train_s"], rows[-1]["load_1min"])
            validating_s += time.monotonic() - before

        if world.is_main:
            save(False)

        def step(state, noisy: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
            return train_step(state, noisy.to(dtype), target.to(dtype))

        run_steps(state, loader, order, steps, world, None, config, step=step, save=save)
        if world.is_main:
            write_csv(out_dir / "curve.csv", rows, CURVE_FIELDS)
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(default_dtype)


def write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_curve(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def threshold_of(reference: list[dict], fraction: float) -> float:
    """The reference's validation loss at the last validation step at or before ``fraction`` of its steps."""
    at = fraction * reference[-1]["step"]
    return [row for row in reference if row["step"] <= at][-1]["val_total"]


def reached(curve: list[dict], threshold: float) -> dict | None:
    """The first validation row at or below ``threshold`` (None when the curve never gets there)."""
    return next((row for row in curve if row["val_total"] <= threshold), None)


def rms_relative_difference(curve: list[dict], reference: list[dict]) -> float:
    """RMS over the shared validation steps after step 0 of ``(curve - reference) / reference``."""
    by_step = {row["step"]: row["val_total"] for row in reference}
    ratios = [(row["val_total"] - by_step[row["step"]]) / by_step[row["step"]] for row in curve if row["step"] in by_step and row["step"] > 0]
    if not ratios:
        raise ValueError("no validation steps in common with the reference")
    return math.sqrt(sum(r * r for r in ratios) / len(ratios))


TABLE_FIELDS = ("arm", "processes", "global_batch", "steps_to_threshold", "samples_to_threshold", "train_s_to_threshold",
                "samples_per_s", "rms_rel_diff_vs_1proc", "float_order_rms", "agrees", "final_val_total", "load_1min_mean")


def summarize(curves: dict[str, list[dict]], arms: list[Arm], fraction: float) -> tuple[float, float, list[dict]]:
    """The threshold, the float-order tolerance and one table row per arm (see the module docstring for the rules).

    ``arms[0]`` is the reference; a reordered arm is the control of the arm of the same processes and batch.
    """
    reference = curves[arms[0].name]
    threshold = threshold_of(reference, fraction)
    unordered = {(arm.processes, arm.batch_size): arm for arm in arms if not arm.reorder}
    float_order = {arm.name: rms_relative_difference(curves[arm.name], curves[unordered[arm.processes, arm.batch_size].name]) for arm in arms if arm.reorder}
    if not float_order:
        raise ValueError("no reordered arm: the float-order tolerance needs one")
    tolerance = AGREEMENT_FACTOR * max(float_order.values())
    rows = []
    for arm in arms:
        curve = curves[arm.name]
        hit = reached(curve, threshold)
        difference = rms_relative_difference(curve, reference) if arm is not arms[0] else 0.0
        rows.append({
            "arm": arm.name, "processes": arm.processes, "global_batch": arm.batch_size,
            "steps_to_threshold": int(hit["step"]) if hit else "not reached",
            "samples_to_threshold": int(hit["samples"]) if hit else "not reached",
            "train_s_to_threshold": round(hit["train_s"], 1) if hit else "not reached",
            "samples_per_s": round(curve[-1]["samples"] / curve[-1]["train_s"], 2),
            "rms_rel_diff_vs_1proc": f"{difference:.2e}",
            "float_order_rms": f"{float_order[arm.name]:.2e}" if arm.reorder else "",
            "agrees": "reference" if arm is arms[0] else "yes" if difference <= tolerance else "no",
            "final_val_total": round(curve[-1]["val_total"], 5),
            "load_1min_mean": round(sum(r["load_1min"] for r in curve) / len(curve), 2),
        })
    return threshold, tolerance, rows


def markdown_table(rows: list[dict], fields: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(str(row[f]) for f in fields) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_arm(arm: Arm, args: argparse.Namespace, seed: int, out_dir: Path) -> None:
    """One arm of ``seed`` through torchrun into ``out_dir/ARM`` (each rank on ``OMP_NUM_THREADS=1``; the config's ``threads`` sets torch's)."""
    out = out_dir / arm.name
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={arm.processes}", "--master_port", str(free_port()),
               "-m", "speakup_fx.train.scaling", "--rank-of", arm.name, "--config", str(args.config), "--batch-size", str(arm.batch_size),
               "--steps", str(args.steps), "--validate-every", str(args.validate_every), "--device", args.device, "--out", str(out), "--seed", str(seed)]
    if arm.reorder:
        command.append("--reorder")
    if args.float64:
        command.append("--float64")
    logger.info("%s: %s", arm.name, " ".join(command))
    with (out / "log.txt").open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (its batch_size is the global batch of the rule's arms)")
    parser.add_argument("--out", required=True, type=Path, help="folder for each arm's curve and log and the table")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps of every arm")
    parser.add_argument("--validate-every", type=int, default=25, help="steps between validations")
    parser.add_argument("--processes", type=int, default=2, help="N of the multi-process arms")
    parser.add_argument("--threshold-fraction", type=float, default=0.6, help="threshold: the reference's validation loss at this fraction of its steps")
    parser.add_argument("--arms", help="comma-separated arm names to run (default: all; the table needs 1proc and a reordered arm)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--float64", action="store_true", help="train and validate in float64 (rounding 1e9 times smaller): tells rounding from computation")
    parser.add_argument("--seeds", help="comma-separated seeds: every arm runs once per seed (OUT/seed_S/ARM) and seeds.md sums them up (default: the config's seed, in OUT)")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rank-of", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reorder", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.steps < 1 or args.validate_every < 1 or not 0 < args.threshold_fraction <= 1:
        parser.error("--steps and --validate-every must be >= 1 and --threshold-fraction in (0, 1]")
    if args.rank_of:
        world = init_from_env(args.device)
        try:
            train_arm(args.config, args.batch_size, args.steps, args.validate_every, args.reorder, args.out, world,
                      torch.float64 if args.float64 else torch.float32, args.seed)
            barrier(world)  # ranks leave together: a rank that leaves while rank 0 validates aborts in gloo
        finally:
            shutdown(world)
        return exit_rank(world, 0)
    config = load_config(args.config)
    arms = arms_for(args.processes, config.batch_size)
    chosen = set(args.arms.split(",")) if args.arms else {arm.name for arm in arms}
    unknown = chosen - {arm.name for arm in arms}
    if unknown:
        parser.error(f"--arms: unknown {sorted(unknown)}; expected some of {[arm.name for arm in arms]}")
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else [config.seed]
    curves_by_seed = {}
    for seed in seeds:
        out_dir = args.out / f"seed_{seed}" if args.seeds else args.out
        for arm in arms:
            if arm.name in chosen:
                run_arm(arm, args, seed, out_dir)
        curves_by_seed[seed] = write_table(arms, out_dir, args.threshold_fraction, f"the 1proc run at {args.threshold_fraction:.0%} of {args.steps} steps")
    needed = {"1proc", "1proc_reordered", f"{args.processes}proc", f"{args.processes}proc_reordered"}
    if args.seeds and all(curves is not None and needed <= set(curves) for curves in curves_by_seed.values()):
        rows, agrees = seed_summary(curves_by_seed, args.processes)
        text = (f"Over {len(seeds)} seeds the {args.processes}-process arm {'agrees' if agrees else 'does not agree'} with 1proc: "
                f"its mean RMS relative difference is {'within' if agrees else 'above'} {AGREEMENT_FACTOR} x the mean of the larger "
                "float-order control.\n\n" + markdown_table(rows, SEED_FIELDS))
        with atomic_write(args.out / "seeds.md") as temporary:
            temporary.write_text(text)
        logger.info("\n%s", text)
    return 0


def write_table(arms: list[Arm], out_dir: Path, fraction: float, reference_text: str) -> dict[str, list[dict]] | None:
    """``scaling.csv`` and ``scaling.md`` of the arms with a curve in ``out_dir``, and those curves by arm (None,
    and no table, without the reference or a float-order control)."""
    curves = {arm.name: read_curve(out_dir / arm.name / "curve.csv") for arm in arms if (out_dir / arm.name / "curve.csv").is_file()}
    present = [arm for arm in arms if arm.name in curves]
    if arms[0] not in present or not any(arm.reorder for arm in present[1:]):
        logger.info("table skipped: it needs the %s curve and a reordered arm's; found %s", arms[0].name, sorted(curves))
        return None
    threshold, tolerance, rows = summarize(curves, present, fraction)
    write_csv(out_dir / "scaling.csv", rows, TABLE_FIELDS)
    text = (f"Threshold: validation loss {threshold:.5f} ({reference_text}); "
            f"agreement: RMS relative difference from 1proc <= {tolerance:.2e} ({AGREEMENT_FACTOR} x the larger float_order_rms).\n\n" + markdown_table(rows, TABLE_FIELDS))
    with atomic_write(out_dir / "scaling.md") as temporary:
        temporary.write_text(text)
    logger.info("\n%s", text)
    return curves


SEED_FIELDS = ("seed", "rule_rms_vs_1proc", "control_1proc", "control_nproc", "larger_control", "rule_over_control")


def seed_summary(curves_by_seed: dict[int, dict[str, list[dict]]], processes: int) -> tuple[list[dict], bool]:
    """One row per seed (the rule's arm against 1proc, and each float-order control against its own arm), a mean
    row, and whether the rule agrees over the seeds: its mean difference within ``AGREEMENT_FACTOR`` times the
    mean larger control.

    One run per arm is one draw of a chaotic trajectory; over several seeds the rule and the controls are compared
    as distributions, which tells a computation that differs in kind from rounding that drew a large difference."""
    rule_arm = f"{processes}proc"
    rows = []
    for seed, curves in curves_by_seed.items():
        controls = (rms_relative_difference(curves["1proc_reordered"], curves["1proc"]),
                    rms_relative_difference(curves[f"{rule_arm}_reordered"], curves[rule_arm]))
        rows.append({"seed": seed, "rule_rms_vs_1proc": rms_relative_difference(curves[rule_arm], curves["1proc"]),
                     "control_1proc": controls[0], "control_nproc": controls[1], "larger_control": max(controls)})
    mean = {field: sum(row[field] for row in rows) / len(rows) for field in SEED_FIELDS[1:5]}
    rows.append({"seed": "mean", **mean})
    for row in rows:
        row["rule_over_control"] = f"{row['rule_rms_vs_1proc'] / row['larger_control']:.2f}"
        for field in SEED_FIELDS[1:5]:
            row[field] = f"{row[field]:.2e}"
    return rows, mean["rule_rms_vs_1proc"] <= AGREEMENT_FACTOR * mean["larger_control"]


if __name__ == "__main__":
    sys.exit(main())
