"""``speakup spark degrade``: degraded training pairs made on Spark, written as shards the training reads.

Pair ``i`` is the training set's own item ``DegradedSpeech[(SHARD_EPOCH, i)]`` for the config with
the given seed: clean speech, noise and room drawn from ``(seed, epoch, i)`` by ``Degrader.draw``
and applied by ``Degrader.apply``, exactly as training degrades on the fly. Shard ``s`` holds pairs
``s * shard_size`` up to the next boundary, so its bytes depend on (config, seed, count,
shard_size) alone, never on how Spark splits the work; one task writes whole shards.

With a ``teacher`` (a reference system of ``speakup eval``, e.g. ``deepfilternet3``), every target
channel of a pair is instead the teacher's output for its noisy input: labels for distillation, which the
training mixes in with ``data.teacher_shards``. The teacher's label stands for every output, so the
config may not put a room on the speech (the targets with and without the room would differ). A label
that loses the speech (``judged_label``: less intelligible than the noisy input, or the speech more than
2 dB under the clean speech's) is listed in the index's ``teacher_rejected`` and not trained on, and a
kept one is scaled to the clean speech's level: a small model copies a teacher's suppression along with
its noise removal.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from speakup_fx.data.dataset import DegradedSpeech
from speakup_fx.data.shards import DEFAULT_SHARD_SIZE, SHARD_EPOCH, ShardSummary, shard_count, shard_indices, write_index, write_shard
from speakup_fx.eval.metrics import speech_level_difference_db, stoi
from speakup_fx.spark.session import collect_with_progress
from speakup_fx.train.config import Config, segment_samples, to_dict

logger = logging.getLogger(__name__)

TEACHER_MIN_LEVEL_DB = -2.0
"""Speech level of a kept label against the clean speech's, dB: the window the restore preset keeps."""


def spark_degrade(
    spark: SparkSession,
    config: Config,
    output_dir: str | os.PathLike[str],
    count: int,
    seed: int,
    shard_size: int = DEFAULT_SHARD_SIZE,
    partitions: int | None = None,
    teacher: str | None = None,
) -> dict:
    """Write ``count`` pairs of ``config``'s training data drawn with ``seed`` as shards in ``output_dir``.

    ``partitions``: Spark tasks (default: one per shard, at most the default parallelism times 4);
    it changes nothing in the shards. ``teacher``: label the pairs with this system's output (see the
    module docstring). Returns what ``index.json`` records.
    """
    from speakup_fx.eval.benchmark import TEACHERS
    from speakup_fx.train.loop import split_speech

    if teacher is not None:
        if teacher not in TEACHERS:
            raise ValueError(f"teacher: expected one of {TEACHERS}, got {teacher!r}")
        if config.degrade.reverb_prob > 0:
            raise ValueError(f"teacher: its label stands for every target {list(config.data.targets)}, so degrade.reverb_prob must be 0, got {config.degrade.reverb_prob}")
        _teacher(teacher)  # a missing or broken install fails here, before any task

    started = time.perf_counter()
    shards = shard_count(count, shard_size)
    config = replace(config, seed=seed)
    if not split_speech(config)[0]:
        raise ValueError(f"{config.data.data_dir}: no training speech at {config.degrade.sample_rate} Hz")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    slices = partitions or min(shards, 4 * spark.sparkContext.defaultParallelism)
    tasks = spark.sparkContext.parallelize(range(shards), numSlices=min(slices, shards))
    summaries: list[ShardSummary] = collect_with_progress(
        tasks.map(lambda shard: degrade_task(config, str(output), shard, count, shard_size, teacher)), "spark degrade: shards"
    )
    info = {
        "count": count,
        "seed": seed,
        "shard_size": shard_size,
        "sample_rate": config.degrade.sample_rate,
        "segment_samples": segment_samples(config),
        "targets": list(config.data.targets),
        "teacher": teacher,
        "teacher_rejected": sorted(index for summary in summaries for index in summary.rejected),
        "clipped_samples": sum(summary.clipped_samples for summary in summaries),
        "config": to_dict(config),
    }
    write_index(output, info)
    logger.info(
        "spark degrade: %d pairs in %d shard(s) in %s in %.1f s (%d samples clipped, %d labels rejected)",
        count, shards, output, time.perf_counter() - started, info["clipped_samples"], len(info["teacher_rejected"]),
    )
    return info


def degrade_task(config: Config, output_dir: str, shard: int, count: int, shard_size: int, teacher: str | None = None) -> ShardSummary:
    """One shard on an executor: its pairs drawn by the training set of this process (targets labelled by
    ``teacher`` when given, and the labels that lose the speech listed), written atomically."""
    dataset = _dataset(config)
    rate = config.degrade.sample_rate
    rejected: list[int] = []

    def pair(index: int) -> tuple[int, np.ndarray, np.ndarray]:
        noisy, target = (t.numpy() for t in dataset[(SHARD_EPOCH, index)])
        if teacher is not None:
            label = _teacher(teacher)(noisy, rate)
            judged = judged_label(target[0], noisy[0], label[0], rate)
            if judged is None:
                rejected.append(index)
            target = np.repeat(label if judged is None else judged[None], len(target), axis=0)
        return index, noisy, target

    summary = write_shard(output_dir, shard, (pair(index) for index in shard_indices(shard, count, shard_size)), rate)
    return replace(summary, rejected=tuple(rejected))


def judged_label(clean: np.ndarray, noisy: np.ndarray, label: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """A teacher's ``label`` for ``noisy`` scaled to the ``clean`` speech's level, or None where it loses the
    speech: STOI below the noisy input's, or the speech more than ``-TEACHER_MIN_LEVEL_DB`` under the clean
    speech's (silent speech gives nothing to judge). A kept label carries the teacher's noise removal and the
    clean speech's level."""
    if not np.any(clean):
        return None
    level_db = speech_level_difference_db(clean, label, sample_rate)
    if level_db < TEACHER_MIN_LEVEL_DB or stoi(clean, label, sample_rate) < stoi(clean, noisy, sample_rate):
        return None
    return (label * 10 ** (-level_db / 20)).astype(label.dtype)


_DATASETS: dict[str, DegradedSpeech] = {}
_TEACHERS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {}


def _teacher(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """This process's teacher system (its model loaded once per executor process)."""
    from speakup_fx.eval.benchmark import SYSTEMS

    if name not in _TEACHERS:
        _TEACHERS[name] = SYSTEMS[name][0]("cpu")
    return _TEACHERS[name]


def _dataset(config: Config) -> DegradedSpeech:
    """This process's training set for ``config`` (noise and room banks loaded once per executor process)."""
    from speakup_fx.train.loop import build_degrader, degraded_speech, extra_speech, split_speech

    key = repr(config)
    if key not in _DATASETS:
        training = split_speech(config)[0] + extra_speech(config)
        _DATASETS[key] = degraded_speech(config, training, build_degrader(config))
    return _DATASETS[key]
