"""``speakup spark bounce``: files, folders and glob patterns bounced on Spark, one task per file.

The driver expands globs and plans outputs as ``speakup bounce`` does (``bounce.batch.plan_jobs``:
folders mirrored into the output folder, other files written under their own names). Each task
runs ``bounce.batch.run_job``, the same ``bounce_file`` call as a sequential bounce, with torch
pinned to the job's thread count; the effect (and so its model, through the process's
``ModelHost``) is made once per executor process and reused for every file it bounces. A file
that fails is a report row with its error; an output that exists is skipped unless ``overwrite``.
Outputs are renamed into place only when complete (``atomic_write``), so a retried or speculative
task never leaves a half file: the attempt that finishes second finds the output there.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from speakup_fx.atomic import atomic_write
from speakup_fx.bounce.batch import BounceError, Job, plan_jobs, run_job
from speakup_fx.bounce.automation import Automation, load_automation
from speakup_fx.bounce.pipeline import (
    BLOCK_FRAMES,
    DEFAULT_PRESET,
    BounceResult,
    Effect,
    automation_for,
    check_settings,
    effect_for,
    file_id,
)
from speakup_fx.media import OUTPUT_FORMATS
from speakup_fx.presets import Preset, load_preset
from speakup_fx.runtime.device import check_device
from speakup_fx.spark.session import collect_with_progress

logger = logging.getLogger(__name__)

REPORT_NAME = "speakup-report"
"""The report is ``REPORT_NAME.parquet`` and ``REPORT_NAME.csv`` in the output folder."""
SCORE_MAX_S = 300.0
"""DNSMOS scores at most this much of each file's start (in memory at 16 kHz)."""
BOUNCED, SKIPPED, FAILED = "bounced", "skipped", "failed"

REPORT_COLUMNS = {
    "input": "string",
    "output": "string",
    "status": "string",
    "duration_s": "float64",
    "input_lufs": "float64",
    "input_true_peak_dbtp": "float64",
    "output_lufs": "float64",
    "output_true_peak_dbtp": "float64",
    "input_dnsmos_ovrl": "float64",
    "output_dnsmos_ovrl": "float64",
    "processing_s": "float64",
    "worker": "string",
    "models_loaded": "int64",
    "error": "string",
    "warnings": "string",
}
"""One row per file: figures are null where not measured (a skipped or failed file; DNSMOS without ``score``)."""


@dataclass(frozen=True)
class TaskSettings:
    """What every task needs besides its job; ``bounce_options`` go to ``bounce_file`` unchanged."""

    preset: Preset
    device: str | None
    threads: int
    overwrite: bool
    score: bool
    protected: frozenset[tuple[int, int]]
    bounce_options: Mapping[str, object] = field(default_factory=dict)


def spark_bounce(
    spark: SparkSession,
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    preset: str | os.PathLike[str] | Preset = DEFAULT_PRESET,
    overrides: Mapping[str, object] | None = None,
    output_format: str | None = None,
    bit_depth: str = "24",
    sample_rate: int | None = None,
    overwrite: bool = False,
    score: bool = False,
    device: str | None = None,
    threads: int = 1,
    midi: str | os.PathLike[str] | Automation | None = None,
    **bounce_options: object,
) -> list[dict[str, object]]:
    """Bounce ``inputs`` (files, folders, glob patterns) into the folder ``output_dir`` on ``spark``; one row per file.

    Writes the report (``REPORT_NAME`` .parquet and .csv in ``output_dir``) and returns its rows.
    ``threads``: torch threads per task. ``score``: DNSMOS OVRL of input and output. ``midi``: a MIDI file
    automating every file, read and checked on the driver (executors get its parsed changes). The other
    options are ``bounce``'s; ``bounce_options`` pass through to ``bounce_file``. Raises
    ``BounceError`` before any task runs for bad settings; failed files are rows, never exceptions.
    """
    started = time.perf_counter()
    try:
        resolved = (preset if isinstance(preset, Preset) else load_preset(preset)).with_overrides(overrides or {})
        if output_format is not None and output_format not in OUTPUT_FORMATS:
            raise ValueError(f"format {output_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
        check_settings(bit_depth, sample_rate)
        check_device(device)
        if threads < 1:
            raise ValueError(f"threads: expected a whole number >= 1, got {threads}")
        if midi is not None:
            midi = load_automation(midi)
            automation_for(midi, effect_for(resolved, device), resolved)  # its errors before any task runs
    except ValueError as error:
        raise BounceError(str(error)) from None
    output = Path(output_dir)
    if output.exists() and not output.is_dir():
        raise BounceError(f"output {output}: must be a folder")
    paths, unmatched = expand_inputs(inputs)
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)  # a folder: plan_jobs then writes even a single file into it
    try:
        jobs, failures = plan_jobs(paths, output, output_format, None) if paths else ([], [])
    except BounceError:
        if created:
            output.rmdir()
        raise
    failures += unmatched
    settings = TaskSettings(
        preset=resolved,
        device=device,
        threads=threads,
        overwrite=overwrite,
        score=score,
        protected=frozenset(file_id(path) for path in paths + [job.input for job in jobs] if path.exists()),
        bounce_options={"bit_depth": bit_depth, "sample_rate": sample_rate, "midi": midi, **bounce_options},
    )
    rows = [result_row(result, FAILED, 0.0) for result in failures]
    if jobs:
        tasks = spark.sparkContext.parallelize(jobs, numSlices=len(jobs))  # one partition, so one task, per file
        rows += collect_with_progress(tasks.map(lambda job: bounce_task(job, settings)), "spark bounce: files")
    for row in rows:
        if row["status"] == FAILED:
            logger.error("%s", row["error"])
    write_report(rows, output)
    counts = {status: sum(row["status"] == status for row in rows) for status in (BOUNCED, SKIPPED, FAILED)}
    logger.info(
        "spark bounce: %d file(s): %d bounced, %d skipped (output exists), %d failed in %.1f s; report %s.{parquet,csv}",
        len(rows), counts[BOUNCED], counts[SKIPPED], counts[FAILED], time.perf_counter() - started, output / REPORT_NAME,
    )
    return rows


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[BounceResult]]:
    """Files and folders as given, glob patterns (``*``, ``?``, ``[...]``, ``**``) expanded and sorted;
    and a failed result for each pattern that matches nothing."""
    paths: list[Path] = []
    unmatched: list[BounceResult] = []
    for text in map(str, inputs):
        if not glob.has_magic(text):
            paths.append(Path(text))
            continue
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            unmatched.append(BounceResult(Path(text), Path(), error=f"{text}: the pattern matches no file", bad_input=True))
        paths += map(Path, matches)
    return paths, unmatched


def bounce_task(job: Job, settings: TaskSettings) -> dict[str, object]:
    """One file on an executor: skipped when its output exists (unless ``overwrite``), else ``run_job``'s row."""
    import torch

    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    if job.output.exists() and not settings.overwrite:
        return result_row(BounceResult(job.input, job.output), SKIPPED, time.perf_counter() - started)
    try:
        effect = _effect(settings.preset, settings.device)
    except ValueError as error:
        result = BounceResult(job.input, job.output, error=f"{job.input}: {error}")
        return result_row(result, FAILED, time.perf_counter() - started)
    result = run_job(
        job,
        preset=settings.preset,
        overwrite=settings.overwrite,
        effect=effect,
        protected=settings.protected,
        **settings.bounce_options,
    )
    if not result.ok and not settings.overwrite and job.output.exists():
        # another attempt of this task (retry or speculation) renamed its complete output into place first
        return result_row(BounceResult(job.input, job.output), SKIPPED, time.perf_counter() - started)
    scores: dict[str, float] = {}
    if result.ok and settings.score:
        try:
            scores = {"input_dnsmos_ovrl": dnsmos_ovrl(job.input), "output_dnsmos_ovrl": dnsmos_ovrl(job.output)}
        except Exception as error:  # the row says why; the other files go on
            result.error = f"{job.input}: bounced to {job.output}, but DNSMOS failed: {type(error).__name__}: {error}"
    status = BOUNCED if result.ok else FAILED
    return result_row(result, status, time.perf_counter() - started) | scores


_EFFECTS: dict[tuple[str, str | None], Effect] = {}


def _effect(preset: Preset, device: str | None) -> Effect:
    """This process's effect for ``preset`` on ``device``: made once, reset by ``bounce_file`` before each file."""
    key = (repr(preset), device)
    if key not in _EFFECTS:
        _EFFECTS[key] = effect_for(preset, device)
    return _EFFECTS[key]


def dnsmos_ovrl(path: Path) -> float:
    """DNSMOS P.835 OVRL of the first ``SCORE_MAX_S`` of a file (channels averaged, at 16 kHz)."""
    from speakup_fx.dsp.resample import resample
    from speakup_fx.eval.metrics import METRIC_SAMPLE_RATE, dnsmos
    from speakup_fx.media import AudioReader

    with AudioReader(path) as reader:
        rate, wanted, blocks = reader.sample_rate, int(SCORE_MAX_S * reader.sample_rate), []
        for block in reader.blocks(BLOCK_FRAMES):
            blocks.append(block.mean(axis=0))
            if sum(map(len, blocks)) >= wanted:
                break
    audio = np.concatenate(blocks)[:wanted] if blocks else np.zeros(0, np.float32)
    return dnsmos(resample(audio, rate, METRIC_SAMPLE_RATE), METRIC_SAMPLE_RATE).ovrl


def result_row(result: BounceResult, status: str, processing_s: float) -> dict[str, object]:
    """A report row (``REPORT_COLUMNS``) for one file's result."""
    from speakup_fx.runtime.host import loaded_model_count

    measured = status == BOUNCED
    return {
        "input": str(result.input),
        "output": str(result.output),
        "status": status,
        "duration_s": result.duration_s if measured else None,
        "input_lufs": result.input_lufs,
        "input_true_peak_dbtp": result.input_true_peak_dbtp,
        "output_lufs": result.output_lufs,
        "output_true_peak_dbtp": result.output_true_peak_dbtp,
        "input_dnsmos_ovrl": None,
        "output_dnsmos_ovrl": None,
        "processing_s": processing_s,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "models_loaded": loaded_model_count(),
        "error": result.error,
        "warnings": "; ".join(result.warnings) or None,
    }


def write_report(rows: Sequence[Mapping[str, object]], folder: Path) -> None:
    """The rows as one table, ``REPORT_NAME`` .parquet and .csv in ``folder``, each written atomically."""
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in REPORT_COLUMNS.items()])
    table = pa.Table.from_pylist(list(rows), schema=schema)
    with atomic_write(folder / f"{REPORT_NAME}.parquet") as temporary:
        pyarrow.parquet.write_table(table, temporary)
    with atomic_write(folder / f"{REPORT_NAME}.csv") as temporary:
        pyarrow.csv.write_csv(table, temporary)
