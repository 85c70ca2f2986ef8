"""``speakup train --config configs/NAME.toml``: run or resume a training run (launch with torchrun for DDP).

Exit codes: 0 done; 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="TOML file with what differs from the defaults")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and logs (default: runs/CONFIG_NAME); resumes from it automatically")
    parser.add_argument("--resume", action="store_true", help="fail unless the run dir holds a checkpoint to resume")
    parser.add_argument("--init-from", type=Path, metavar="CHECKPOINT", help="a new run starts from this checkpoint's generator (EMA) weights or a shipped weights file (.safetensors), widened when the config's DFNet has more channels, its deep filters lengthened when it has a higher df_order (other fields may differ where the weights still fit, e.g. the look-ahead)")
    parser.add_argument("--data-dir", type=Path, help="use this data folder (with manifest.csv) instead of the config's data.data_dir: the same recipe on a copy of the data, e.g. one packed by speakup_fx.train.travel")
    parser.add_argument("--cache-dir", type=Path, help="use this cache folder instead of the config's data.cache_dir")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps")
    parser.add_argument("--max-minutes", type=float, help="stop, checkpoints written, this many minutes after the start (a lent machine's lease)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--export", type=Path, metavar="WEIGHTS", help="write the run's best checkpoint as safetensors to WEIGHTS and exit")
    parser.add_argument("--average-with", type=Path, metavar="WEIGHTS", help="with --export: write the half-and-half average of the run's best generator and this weights file's model (same architecture and config)")


def run(args: argparse.Namespace) -> int:
    from speakup_fx.train.config import load_config
    from speakup_fx.train.distributed import barrier, exit_rank, init_from_env, shutdown
    from speakup_fx.train.loop import train

    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    if args.max_minutes is not None and not args.max_minutes > 0:
        logger.error("--max-minutes must be > 0, got %s", args.max_minutes)
        return 2
    relocated = {name: str(path) for name, path in (("data_dir", args.data_dir), ("cache_dir", args.cache_dir)) if path is not None}
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, **relocated))
    run_dir = args.run_dir or Path("runs") / args.config.stem
    if args.average_with and not args.export:
        logger.error("--average-with needs --export")
        return 2
    if args.export:
        from speakup_fx.train.export import export_checkpoint

        try:
            step = export_checkpoint(run_dir / "best.pt", args.export, args.average_with)
        except (ValueError, FileNotFoundError) as error:
            logger.error("%s", error)
            return 2
        logger.info("exported step %d of %s to %s", step, run_dir, args.export)
        return 0
    world = init_from_env(args.device)
    if not world.is_main:
        logging.getLogger("speakup_fx").setLevel(logging.WARNING)
    try:
        train(config, run_dir, world, args.max_steps, args.resume, args.init_from, args.max_minutes)
        barrier(world)  # ranks leave together
    except (FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        code = 2
    else:
        code = 0
    finally:
        shutdown(world)
    return exit_rank(world, code)
