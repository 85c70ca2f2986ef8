"""``speakup eval``: score systems on the evaluation sets and write the tables.

Exit codes: 0 every system scored every file; 1 a system was unavailable or some
files failed (the rest were scored and written); 2 bad usage or missing data.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from speakup_fx.eval import benchmark
from speakup_fx.runtime.device import check_device

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "SPEAKUP_DATA"
DEFAULT_SYSTEMS = ("noisy", "classic", "model")


def default_data_dir() -> Path:
    """``$SPEAKUP_DATA`` when set, else ``../shared/data`` relative to the current directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / ".." / "shared" / "data")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    systems = ", ".join(f"{name} ({help_text})" for name, (_, help_text) in benchmark.SYSTEMS.items())
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"folder holding eval/NAME/ data sets (default: ${DATA_DIR_ENV}, else ../shared/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("eval_results"), help="folder for per_file.csv, summary.csv and summary.md"
    )
    parser.add_argument(
        "--systems", default=",".join(DEFAULT_SYSTEMS), help=f"comma-separated systems to score: {systems}"
    )
    parser.add_argument("--datasets", default=None, help="comma-separated data set names (default: every set found)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N files of each data set")
    parser.add_argument("--device", default="auto", help="where the model runs: auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--wer", action="store_true",
        help="also transcribe (pocketsphinx, offline) each clean reference and output: WER against the clean's transcript (slow)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None,
        help="also score each output of this training checkpoint's generator (EMA weights) as system checkpoint_OUTPUT",
    )
    parser.add_argument(
        "--weights", type=Path, nargs="+", default=[], metavar="WEIGHTS",
        help="also score the restore preset running each of these enhancer weights files as system model_STEM (the shipped file is not touched)",
    )


def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    system_names = _names(args.systems)
    unknown = [name for name in system_names if name not in benchmark.SYSTEMS]
    if unknown or not system_names:
        logger.error("--systems: unknown or empty %s; choose from %s", unknown or "list", ", ".join(benchmark.SYSTEMS))
        return 2
    if args.limit is not None and args.limit < 1:
        logger.error("--limit: must be at least 1, got %d", args.limit)
        return 2
    try:
        check_device(args.device)
    except ValueError as error:
        logger.error("--%s", error)
        return 2
    if not data_dir.is_dir():
        logger.error("--data-dir: %s does not exist (pass --data-dir or set $%s)", data_dir, DATA_DIR_ENV)
        return 2
    try:
        eval_sets = benchmark.find_eval_sets(data_dir)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    if args.datasets is not None:
        wanted = _names(args.datasets)
        known = {s.name for s in eval_sets}
        missing = [name for name in wanted if name not in known]
        if missing or not wanted:
            logger.error(
                "--datasets: %s not found in %s; found %s", missing or "empty list", data_dir / "eval", sorted(known)
            )
            return 2
        eval_sets = [s for s in eval_sets if s.name in wanted]
    if args.limit is not None:
        eval_sets = [benchmark.EvalSet(s.name, s.items[: args.limit]) for s in eval_sets]

    extra = {}
    if args.checkpoint is not None:
        try:
            extra = benchmark.checkpoint_systems(args.checkpoint)
        except (ValueError, FileNotFoundError) as error:
            logger.error("--checkpoint: %s", error)
            return 2
        system_names = [*system_names, *extra]
    try:
        weights = benchmark.weights_systems(args.weights)
    except ValueError as error:
        logger.error("--weights: %s", error)
        return 2
    extra |= weights
    system_names = [*system_names, *weights]
    results = benchmark.run_benchmark(eval_sets, system_names, extra, args.wer, args.device)
    summaries = benchmark.summarize(results)
    paths = benchmark.write_results(args.out, results, summaries)
    print(benchmark.markdown_table(summaries), end="")
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 1 if any(s.error for s in summaries) else 0
