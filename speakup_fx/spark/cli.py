"""The ``speakup spark`` command: ``bounce`` and ``degrade`` on a Spark master (local mode by default).

Exit codes (as ``speakup bounce``): 0 success; 1 some of several inputs failed (each is a report
row with its error; the rest were processed); 2 bad usage, or the one input file could not be
bounced; 130 interrupted (the Spark job is cancelled; finished outputs are kept, none is half written).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from speakup_fx.bounce.batch import BounceError
from speakup_fx.bounce.cli import EXIT_BAD, EXIT_SOME_FAILED
from speakup_fx.bounce.pipeline import DEFAULT_PRESET
from speakup_fx.data.shards import DEFAULT_SHARD_SIZE
from speakup_fx.media import BIT_DEPTHS, OUTPUT_FORMATS
from speakup_fx.presets import parse_assignment
from speakup_fx.runtime.device import thread_count

logger = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``speakup spark`` subcommands and their options."""
    parser.description = __doc__.split("\n\n")[0]
    jobs = parser.add_subparsers(dest="job", required=True)
    bounce = jobs.add_parser("bounce", help="enhance files, folders and glob patterns, one Spark task per file")
    bounce.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video files, folders (recursive) or quoted globs")
    bounce.add_argument("-o", "--output", required=True, help="output folder (also gets speakup-report.parquet/.csv)")
    bounce.add_argument("--preset", default=DEFAULT_PRESET, help=f"name or .toml file (default: {DEFAULT_PRESET})")
    bounce.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter or option; repeatable"
    )
    bounce.add_argument("--format", choices=OUTPUT_FORMATS, help="format of audio outputs (default: the input's)")
    bounce.add_argument("--bit-depth", choices=BIT_DEPTHS, default="24", help="WAV/FLAC sample format (default: 24)")
    bounce.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the input's)")
    bounce.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    bounce.add_argument("--strict", action="store_true", help="fail on a truncated input instead of bouncing it")
    bounce.add_argument("--score", action="store_true", help="add DNSMOS OVRL of input and output to the report")
    bounce.add_argument("--device", help="torch device on the executors, e.g. cpu or cuda (default: automatic)")
    bounce.add_argument(
        "--midi", metavar="FILE.mid", help="standard MIDI file whose control changes drive the preset's [midi] map (every input)"
    )
    degrade = jobs.add_parser("degrade", help="write degraded training pairs as shards the training can read")
    degrade.add_argument("--config", required=True, help="training config (.toml): data, degradation, segment length")
    degrade.add_argument("--out", required=True, help="output folder of the shards and index.json")
    degrade.add_argument("--count", type=int, required=True, help="number of pairs")
    degrade.add_argument("--seed", type=int, required=True, help="seed of every draw (pair i is drawn from (seed, i))")
    degrade.add_argument(
        "--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help=f"pairs per shard (default: {DEFAULT_SHARD_SIZE})"
    )
    degrade.add_argument("--partitions", type=int, help="Spark tasks (default: one per shard); the shards do not change")
    degrade.add_argument("--teacher", help="label every target with this reference system's output (distillation), e.g. deepfilternet3")
    for job in (bounce, degrade):
        job.add_argument("--master", default=None, help="Spark master URL: local[N], spark://HOST:PORT, yarn, k8s://... "
                         "(default: local[*])")
        job.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting; repeatable")
        job.add_argument("--threads", type=thread_count, default=1, help="torch/BLAS threads per Spark task (default: 1)")


def run(args: argparse.Namespace) -> int:
    """Run ``speakup spark bounce|degrade``; returns the exit code (see the module docstring)."""
    try:
        conf = dict(parse_assignment(text) for text in args.conf)
        overrides = dict(parse_assignment(text) for text in getattr(args, "set", []))
    except ValueError as error:
        logger.error("%s", error)
        return EXIT_BAD
    from speakup_fx.spark.session import DEFAULT_MASTER, session_conf, spark_session

    settings = session_conf(args.master or DEFAULT_MASTER, args.threads, conf)
    try:
        with spark_session(f"speakup spark {args.job}", settings) as spark:
            return _bounce(spark, args, overrides) if args.job == "bounce" else _degrade(spark, args)
    except KeyboardInterrupt:
        logger.error("interrupted: the Spark job was cancelled (finished outputs are kept)")
        return EXIT_INTERRUPTED


def _bounce(spark, args: argparse.Namespace, overrides: dict[str, str]) -> int:
    from speakup_fx.spark.bounce import FAILED, spark_bounce

    try:
        rows = spark_bounce(
            spark,
            args.inputs,
            args.output,
            preset=args.preset,
            overrides=overrides,
            output_format=args.format,
            bit_depth=args.bit_depth,
            sample_rate=args.sample_rate,
            overwrite=args.overwrite,
            score=args.score,
            device=args.device,
            threads=args.threads,
            strict=args.strict,
            midi=args.midi,
        )
    except BounceError as error:
        logger.error("%s", error)
        return EXIT_BAD
    failed = sum(row["status"] == FAILED for row in rows)
    if not failed:
        return 0
    one_file = len(args.inputs) == 1 and len(rows) == 1 and not Path(args.inputs[0]).is_dir()
    logger.error("%d of %d files failed (see the report)", failed, len(rows))
    return EXIT_BAD if one_file else EXIT_SOME_FAILED


def _degrade(spark, args: argparse.Namespace) -> int:
    from speakup_fx.spark.degrade import spark_degrade
    from speakup_fx.train.config import load_config

    try:
        config = load_config(args.config)
        spark_degrade(spark, config, args.out, args.count, args.seed, args.shard_size, args.partitions, args.teacher)
    except (ValueError, FileNotFoundError, ImportError) as error:
        logger.error("%s", error)
        return EXIT_BAD
    return 0
