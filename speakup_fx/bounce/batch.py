"""``bounce``: files and folders in, one ``bounce_file`` per audio or video file, every outcome back.

Folders are searched recursively and mirrored into the output folder; one effect serves every
file (reset before each); a file that fails is logged and skipped, the rest are processed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from speakup_fx.bounce.automation import Automation, load_automation
from speakup_fx.bounce.pipeline import (
    DEFAULT_PRESET,
    BounceResult,
    Effect,
    FileBounceError,
    automation_for,
    bounce_file,
    check_settings,
    effect_for,
    file_id,
    output_format_for,
)
from speakup_fx.bounce.progress import ProgressCallback
from speakup_fx.media import OUTPUT_FORMATS, is_media_file, is_video_file
from speakup_fx.presets import Preset, load_preset

logger = logging.getLogger(__name__)


class BounceError(ValueError):
    """A bounce could not run, or some inputs failed.

    ``results`` is None when nothing was touched (bad settings), else every file's outcome.
    """

    def __init__(self, message: str, results: list[BounceResult] | None = None) -> None:
        super().__init__(message)
        self.results = results


@dataclass(frozen=True)
class Job:
    """One input file, the output it is bounced to and its optional PNG report."""

    input: Path
    output: Path
    report: Path | None


def bounce(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    preset: str | os.PathLike[str] | Preset = DEFAULT_PRESET,
    overrides: Mapping[str, object] | None = None,
    output_format: str | None = None,
    bit_depth: str = "24",
    sample_rate: int | None = None,
    overwrite: bool = False,
    force: bool = False,
    strict: bool = False,
    report: str | os.PathLike[str] | None = None,
    device: str | None = None,
    effect: Effect | None = None,
    progress: ProgressCallback | None = None,
    midi: str | os.PathLike[str] | Automation | None = None,
) -> list[BounceResult]:
    """Enhance audio/video files and folders with a preset; returns one ``BounceResult`` per file.

    ``inputs``: files and folders (folders are searched recursively for audio
    and video files and mirrored into ``output``, which is then a folder, as it
    is for several inputs). One input file: ``output`` is the output file,
    or an existing folder to write into. The output format follows the output
    suffix (wav, flac, mp3), else ``output_format``, else the input's (other
    audio becomes wav); a video input keeps its container, video copied.
    ``overrides``: parameter or option values on top of the preset. ``report``:
    a PNG path (one input) or a folder (several) for before/after reports.
    ``midi``: a MIDI file automating every file (read and checked once, before any file).
    The other options are ``bounce_file``'s.

    Raises ``BounceError``: before touching any file for bad arguments
    (``results`` None), or after processing everything when some inputs
    failed (``results`` lists every file; failures were also logged).
    """
    input_paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    try:
        resolved = load_preset(preset) if not isinstance(preset, Preset) else preset
        resolved = resolved.with_overrides(overrides or {})
        if output_format is not None and output_format not in OUTPUT_FORMATS:
            raise ValueError(f"format {output_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
        check_settings(bit_depth, sample_rate)
        if effect is None:
            effect = effect_for(resolved, device)
        if midi is not None:
            midi = load_automation(midi)
            automation_for(midi, effect, resolved)  # its errors before any file; its warnings come with each file
    except ValueError as error:
        raise BounceError(str(error)) from None
    jobs, failures = plan_jobs(input_paths, Path(output), output_format, Path(report) if report is not None else None)
    protected = {file_id(path) for path in input_paths + [job.input for job in jobs] if path.exists()}
    results = failures
    for job in jobs:
        results.append(
            run_job(
                job,
                preset=resolved,
                bit_depth=bit_depth,
                sample_rate=sample_rate,
                overwrite=overwrite,
                force=force,
                strict=strict,
                effect=effect,
                protected=protected,
                progress=progress,
                midi=midi,
            )
        )
    failed = [result for result in results if not result.ok]
    if failed:
        summary = "; ".join(result.error or "" for result in failed)
        raise BounceError(f"{len(failed)} of {len(results)} file(s) failed: {summary}", results)
    return results


def run_job(job: Job, **options: object) -> BounceResult:
    """``bounce_file`` for one job; a failure becomes the result's ``error`` (logged), never an exception."""
    try:
        result = bounce_file(job.input, job.output, report=job.report, **options)  # type: ignore[arg-type]
    except FileBounceError as error:
        result = BounceResult(job.input, job.output, error=str(error), bad_input=error.bad_input)
    except Exception as error:  # one file's failure must not stop the others
        logger.debug("%s failed", job.input, exc_info=True)
        result = BounceResult(job.input, job.output, error=f"{job.input}: {type(error).__name__}: {error}")
    if result.error:
        logger.error("%s", result.error)
        return result
    logger.info(
        "%s -> %s: %.1f s of audio in %.1f s (RTF %.3f); %s LUFS / %s dBTP -> %s LUFS / %s dBTP",
        job.input,
        job.output,
        result.duration_s,
        (result.realtime_factor or 0.0) * result.duration_s,
        result.realtime_factor or 0.0,
        _figure(result.input_lufs),
        _figure(result.input_true_peak_dbtp),
        _figure(result.output_lufs),
        _figure(result.output_true_peak_dbtp),
    )
    return result


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def plan_jobs(
    inputs: list[Path], output: Path, output_format: str | None, report: Path | None
) -> tuple[list[Job], list[BounceResult]]:
    """Map inputs to outputs; missing inputs become failed results (or a BounceError when alone).

    Folders are mirrored into ``output``; the other inputs are written into it under their own names.
    """
    if not inputs:
        raise BounceError("no input given")
    single_file = len(inputs) == 1 and not inputs[0].is_dir()
    if single_file and not inputs[0].exists():
        raise BounceError(f"{inputs[0]}: no such file")
    if report is not None and single_file and report.suffix.lower() != ".png":
        raise BounceError(f"report {report}: expected a .png path")
    if report is not None and not single_file and report.suffix.lower() == ".png":
        raise BounceError(f"report {report}: must be a folder when bouncing folders or several files")
    if single_file and not (output.is_dir() or str(output).endswith(os.sep)):
        _check_file_output(inputs[0], output, output_format)
        return [Job(inputs[0], output, report)], []
    if output.exists() and not output.is_dir():
        raise BounceError(f"output {output}: must be a folder when bouncing folders or several files")
    jobs: list[Job] = []
    failures: list[BounceResult] = []
    for path in inputs:
        if path.is_dir():
            if _same_path(path, output):
                raise BounceError(f"output {output}: is the input folder {path}; choose another folder")
            found = list(_media_files(path, skip=output))
            if not found:
                logger.warning("%s: no audio or video files found", path)
            pairs = [(file, file.relative_to(path)) for file in found]
        elif path.exists():
            pairs = [(path, Path(path.name))]
        else:
            failures.append(BounceResult(path, output, error=f"{path}: no such file", bad_input=True))
            logger.error("%s", failures[-1].error)
            continue
        for file, relative in pairs:
            job_format = None if is_video_file(file) else output_format or _format_of(file) or "wav"
            target = output / (relative if job_format is None else relative.with_suffix(f".{job_format}"))
            job_report = report
            if report is not None and not single_file:
                job_report = report / relative.with_name(relative.name + ".png")
            jobs.append(Job(file, target, job_report))
    if not jobs and not failures:
        raise BounceError("no audio or video files to bounce in " + ", ".join(map(str, inputs)))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise BounceError(
                f"{seen[job.output]} and {job.input} would both be written to {job.output}; "
                "use --format or separate runs"
            )
        seen[job.output] = job.input
    return jobs, failures


def _check_file_output(source: Path, output: Path, output_format: str | None) -> None:
    """``BounceError`` unless ``output``'s name gives a format that agrees with ``output_format``."""
    try:
        found = output_format_for(source, output)
    except ValueError as error:
        raise BounceError(str(error)) from None
    if output_format is not None and found is None:
        raise BounceError(f"output {output}: a video keeps its container; --format {output_format} does not apply")
    if output_format is not None and found != output_format:
        raise BounceError(f"output {output}: suffix says {found} but --format says {output_format}")


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in OUTPUT_FORMATS else None


def _media_files(folder: Path, skip: Path) -> Iterator[Path]:
    """Audio and video files under ``folder``, sorted, skipping hidden entries and the ``skip`` folder."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _same_path(Path(root, d), skip))
        for name in sorted(files):
            path = Path(root, name)
            if not name.startswith(".") and is_media_file(path):
                yield path


def _same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (through links or another path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
