"""``speakup bounce``: enhance audio and video files or whole folders, streaming in bounded memory.

Each file is decoded in blocks and run through a ``SpeakUp`` effect with
``reset=False``; the effect's latency is dropped and its tail flushed with
zeros, so the output has exactly the input's length. When the preset's
``loudness`` option is on, a second pass normalises integrated loudness to
``target_lufs`` and a true-peak limiter holds ``limiter_ceiling_dbtp``: pass 1
writes the enhanced audio to a temporary float file while a streaming meter
measures it, pass 2 applies the gain and the limiter and writes the output
(if limiting leaves it off target, measure-only passes search the gain and
the output is written again).
Outputs are written to a temporary file beside the destination and renamed;
inputs are never opened for writing.

Exit codes of the command: 0 success; 1 some inputs failed (the rest were
processed); 2 bad usage, or the single input was bad (nothing was written).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from speakup_fx.dsp.resample import StreamingResampler, check_sample_rate
from speakup_fx.media import (
    BIT_DEPTHS,
    OUTPUT_FORMATS,
    AudioReader,
    AudioWriter,
    MediaError,
    VideoRemuxWriter,
    check_output_format,
    is_media_file,
    is_video_file,
)
from speakup_fx.presets import Preset, load_preset, parse_assignment
from speakup_fx.report import SignalSummary, write_report

logger = logging.getLogger(__name__)

DEFAULT_PRESET = "podcast"
BLOCK_FRAMES = 32_768
"""Frames decoded, processed and written at a time: bounds memory whatever the file length."""
LOUDNESS_TOLERANCE_LU = 0.2
"""When the limited output misses the target by more than this, the gain is searched."""
LOUDNESS_SEARCH_PASSES = 4
"""At most this many measure-only passes search the gain."""
MIN_LOUDNESS_SLOPE = 0.05
"""LU per dB of gain assumed at least when searching (a limiter flattens the curve, never reverses it)."""
MAX_GAIN_STEP_DB = 20.0
LOSSY_HEADROOM_DB = 0.5
"""The limiter ceiling is lowered by this for MP3 and AAC outputs, whose decoding overshoots the limited peaks."""
HEAVY_LIMITING_DB = 6.0
"""A warning is logged when the target needs more gain than this beyond the linear estimate (peaks squashed)."""
TEMP_MARK = ".speakup-tmp"
"""Part of every temporary file's name (hidden, beside the output)."""

ProgressCallback = Callable[[Path, str, float, "float | None"], None]
"""``progress(input_path, phase, done_s, total_s)``: phase 'enhance', 'normalise', then 'done'.

``total_s`` is None when the duration is unknown.
"""


class Effect(Protocol):
    """What ``bounce`` needs of an effect: pedalboard-style streaming ``process`` and its latency."""

    latency_samples: int

    def process(
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = ..., reset: bool = ...
    ) -> np.ndarray: ...

    def reset(self) -> None: ...


class BounceError(ValueError):
    """A bounce could not run, or some inputs failed.

    ``results`` is None when nothing was touched (bad settings), else every file's outcome.
    """

    def __init__(self, message: str, results: list[BounceResult] | None = None) -> None:
        super().__init__(message)
        self.results = results


@dataclass
class BounceResult:
    """The outcome of one input file; loudness figures are None where not measured (or silent: -inf)."""

    input: Path
    output: Path
    error: str | None = None
    bad_input: bool = False
    duration_s: float = 0.0
    realtime_factor: float | None = None
    input_lufs: float | None = None
    input_true_peak_dbtp: float | None = None
    output_lufs: float | None = None
    output_true_peak_dbtp: float | None = None
    gain_db: float = 0.0
    clipped_samples: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Job:
    input: Path
    output: Path
    output_format: str | None
    """'wav', 'flac' or 'mp3'; None: remux the input's video with the enhanced audio."""
    report: Path | None


@dataclass
class _Settings:
    preset: Preset
    bit_depth: str
    sample_rate: int | None
    overwrite: bool
    protected: set[tuple[int, int]]
    """(device, inode) of every input: no output may be one of them."""
    progress: ProgressCallback | None
    effect: Effect
    """One effect for every file, reset before each."""


class _BadInput(Exception):
    """A problem with one file (message names it); the file is skipped and nothing is written for it."""


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
    report: str | os.PathLike[str] | None = None,
    device: str | None = None,
    effect: Effect | None = None,
    progress: ProgressCallback | None = None,
) -> list[BounceResult]:
    """Enhance audio/video files and folders with a preset; returns one ``BounceResult`` per file.

    ``inputs``: files and folders (folders are searched recursively for audio
    and video files and mirrored into ``output``, which is then a folder, as it
    is for several inputs). One input file: ``output`` is the output file,
    or an existing folder to write into. The output format follows the output
    suffix (wav, flac, mp3), else ``output_format``, else the input's (other
    audio becomes wav); a video input keeps its container, video copied.
    ``bit_depth``: '16', '24' or '32f' (WAV/FLAC). ``sample_rate``: output rate
    (default: the input's). ``overrides``: parameter or option values on top of
    the preset. ``report``: a PNG path (one input) or a folder (several) for
    before/after reports. ``effect``: use this effect instead of building a
    ``SpeakUp`` from the preset (the preset still decides the loudness pass).

    Raises ``BounceError``: before touching any file for bad arguments
    (``results`` None), or after processing everything when some inputs
    failed (``results`` lists every file; failures were also logged).
    """
    input_paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    try:
        resolved = load_preset(preset) if not isinstance(preset, Preset) else preset
        resolved = resolved.with_overrides(overrides or {})
    except ValueError as error:
        raise BounceError(str(error)) from None
    if bit_depth not in BIT_DEPTHS:
        raise BounceError(f"bit depth {bit_depth!r}: expected one of {', '.join(BIT_DEPTHS)}")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise BounceError(f"format {output_format!r}: expected one of {', '.join(OUTPUT_FORMATS)}")
    if sample_rate is not None:
        try:
            check_sample_rate(sample_rate)
        except ValueError as error:
            raise BounceError(str(error)) from None
    if effect is None:
        effect = _speakup(resolved, device)
    jobs, failures = _plan(input_paths, Path(output), output_format, Path(report) if report is not None else None)
    settings = _Settings(
        preset=resolved,
        bit_depth=bit_depth,
        sample_rate=sample_rate,
        overwrite=overwrite,
        protected={_file_id(path) for path in input_paths + [job.input for job in jobs] if path.exists()},
        progress=progress,
        effect=effect,
    )
    results = failures + [_run_job(job, settings) for job in jobs]
    failed = [result for result in results if not result.ok]
    if failed:
        summary = "; ".join(result.error or "" for result in failed)
        raise BounceError(f"{len(failed)} of {len(results)} file(s) failed: {summary}", results)
    return results


def _speakup(preset: Preset, device: str | None) -> Effect:
    """The ``SpeakUp`` for ``preset`` (its engine is built on first use), on ``device`` if given."""
    from speakup_fx.effect import SpeakUp

    try:
        return SpeakUp(preset=preset, **({"device": device} if device else {}))
    except (TypeError, ValueError) as error:
        raise BounceError(f"cannot set up the effect: {error}") from None


def _plan(
    inputs: list[Path], output: Path, output_format: str | None, report: Path | None
) -> tuple[list[_Job], list[BounceResult]]:
    """Map inputs to outputs; missing inputs become failed results (or a BounceError when alone)."""
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
        file_format = _file_output_format(inputs[0], output, output_format)
        return [_Job(inputs[0], output, file_format, report)], []
    if output.exists() and not output.is_dir():
        raise BounceError(f"output {output}: must be a folder when bouncing folders or several files")
    jobs: list[_Job] = []
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
            jobs.append(_Job(file, target, job_format, job_report))
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


def _file_output_format(source: Path, output: Path, output_format: str | None) -> str | None:
    suffix_format = _format_of(output)
    if suffix_format is not None:
        if output_format is not None and output_format != suffix_format:
            raise BounceError(f"output {output}: suffix says {suffix_format} but --format says {output_format}")
        return suffix_format
    if is_video_file(source) and output.suffix.lower() == source.suffix.lower():
        if output_format is not None:
            raise BounceError(f"output {output}: a video keeps its container; --format {output_format} does not apply")
        return None
    if is_video_file(source) and is_video_file(output):
        raise BounceError(f"output {output}: a video output must keep the input's container ({source.suffix})")
    raise BounceError(f"output {output}: unsupported type; use .wav, .flac or .mp3 (or the input's video container)")


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


def _run_job(job: _Job, settings: _Settings) -> BounceResult:
    result = BounceResult(job.input, job.output)
    started = time.perf_counter()
    try:
        _FileBounce(job, settings, result).run()
    except (_BadInput, MediaError) as error:
        result.error, result.bad_input = str(error), True
    except Exception as error:  # one file's failure must not stop the others
        logger.debug("%s failed", job.input, exc_info=True)
        result.error = f"{job.input}: {type(error).__name__}: {error}"
    if settings.progress is not None:
        settings.progress(job.input, "done", result.duration_s, result.duration_s)
    if result.error:
        logger.error("%s", result.error)
        return result
    elapsed_s = time.perf_counter() - started
    result.realtime_factor = elapsed_s / result.duration_s if result.duration_s else None
    logger.info(
        "%s -> %s: %.1f s of audio in %.1f s (RTF %.3f); %s LUFS / %s dBTP -> %s LUFS / %s dBTP",
        job.input,
        job.output,
        result.duration_s,
        elapsed_s,
        result.realtime_factor or 0.0,
        _figure(result.input_lufs),
        _figure(result.input_true_peak_dbtp),
        _figure(result.output_lufs),
        _figure(result.output_true_peak_dbtp),
    )
    return result


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _file_id(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


def _check_paths(job: _Job, settings: _Settings) -> None:
    if job.output.exists() and _file_id(job.output) in settings.protected:
        raise _BadInput(f"{job.input}: output {job.output} is an input; refusing to overwrite it")
    if job.output.is_dir():
        raise _BadInput(f"{job.input}: output {job.output} is a folder")
    if job.output.exists() and not settings.overwrite:
        raise _BadInput(f"{job.input}: output {job.output} exists; pass --overwrite to replace it")


class _FileBounce:
    """One file: decode -> effect (latency removed) -> resample -> [loudness passes] -> temporary file -> rename."""

    def __init__(self, job: _Job, settings: _Settings, result: BounceResult) -> None:
        self.job, self.settings, self.result = job, settings, result
        self.params = settings.preset.parameter_values()

    def run(self) -> None:
        job, settings = self.job, self.settings
        _check_paths(job, settings)
        with AudioReader(job.input) as reader:
            self.reader = reader
            self.input_rate, self.channels = reader.sample_rate, reader.channels
            self.output_rate = settings.sample_rate or self.input_rate
            if job.output_format is not None:
                check_output_format(job.output, job.output_format, self.output_rate, settings.bit_depth)
            self.total_s = reader.frames_estimate / self.input_rate if reader.frames_estimate else None
            before = SignalSummary(self.input_rate, self.channels, spectrogram=job.report is not None)
            enhanced = self._enhanced(before)
            job.output.parent.mkdir(parents=True, exist_ok=True)
            with _temporary_path(job.output) as temporary:
                if settings.preset.options.loudness:
                    after = self._normalise(enhanced, temporary)
                else:
                    after = self._write(enhanced, temporary)
                _commit(temporary, job.output, settings.overwrite)
        result = self.result
        result.duration_s = before.frames / self.input_rate
        result.input_lufs, result.input_true_peak_dbtp = before.integrated_lufs(), before.true_peak_dbtp()
        result.output_lufs, result.output_true_peak_dbtp = after.integrated_lufs(), after.true_peak_dbtp()
        if result.clipped_samples:
            logger.warning("%s: %d samples clipped at full scale", job.output, result.clipped_samples)
        if job.report is not None:
            title = f"{job.input.name} -> {job.output.name} ({settings.preset.name})"
            write_report(job.report, before, after, title=title)

    def _enhanced(self, before: SignalSummary) -> Iterator[np.ndarray]:
        """The effect's output at the output rate, aligned with the input and as long; ``before`` sees the input."""
        rate, channels = self.input_rate, self.channels
        decoded = _observed(self.reader.blocks(BLOCK_FRAMES), before.add, self._progress("enhance", rate))
        effect = self.settings.effect
        effect.reset()
        enhanced = _latency_compensated(
            lambda block: effect.process(block, rate, buffer_size=BLOCK_FRAMES, reset=False),
            lambda: effect.latency_samples,
            decoded,
            channels,
        )
        return _resampled(enhanced, rate, self.output_rate, channels) if self.output_rate != rate else enhanced

    def _write(self, blocks: Iterable[np.ndarray], path: Path) -> SignalSummary:
        """Encode ``blocks`` to ``path`` in the job's format; returns the summary of what was written."""
        job, reader = self.job, self.reader
        after = SignalSummary(self.output_rate, self.channels, spectrogram=job.report is not None)
        writer: AudioWriter | VideoRemuxWriter
        if job.output_format is None:
            writer = VideoRemuxWriter(job.input, path, self.output_rate, self.channels, audio_start_s=reader.start_s)
        else:
            frames = None
            if reader.frames_estimate:
                frames = round(reader.frames_estimate * self.output_rate / self.input_rate)
            writer = AudioWriter(
                path, job.output_format, self.output_rate, self.channels, self.settings.bit_depth, frames
            )
        with writer:
            for block in blocks:
                after.add(block)
                writer.write(block)
        self.result.clipped_samples = writer.clipped_samples
        return after

    def _normalise(self, enhanced: Iterable[np.ndarray], path: Path) -> SignalSummary:
        """Reach ``target_lufs`` under ``limiter_ceiling_dbtp``; returns the summary of what was written.

        Pass 1 writes ``enhanced`` to a float file while metering it. Pass 2
        applies the gain that meets the target and the limiter (ceiling
        lowered by ``LOSSY_HEADROOM_DB`` for lossy outputs), writing ``path``. Limiting lowers loudness, so if pass 2 misses the target,
        measure-only passes search the gain (secant steps on the measured
        loudness-versus-gain curve) and a last pass writes the best one.
        """
        from speakup_fx.dsp.loudness import LoudnessMeter

        job, rate, channels = self.job, self.output_rate, self.channels
        target_lufs, ceiling_dbtp = self.params["target_lufs"], self.params["limiter_ceiling_dbtp"]
        if job.output_format in (None, "mp3"):  # lossy: AAC in the video, or MP3
            ceiling_dbtp -= LOSSY_HEADROOM_DB

        def limited(gain_db: float) -> Iterator[np.ndarray]:
            stored = _observed(_float_file_blocks(float_path, channels), None, self._progress("normalise", rate))
            return _limited(stored, channels, gain_db, ceiling_dbtp)

        def on_target(lufs: float) -> bool:
            return not math.isfinite(lufs) or abs(lufs - target_lufs) <= LOUDNESS_TOLERANCE_LU

        with _temporary_path(job.output, suffix=".f32") as float_path:
            meter = LoudnessMeter(channels, rate)
            with float_path.open("wb") as file:
                for block in enhanced:
                    meter.add(block)
                    file.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
            measured_lufs = meter.integrated_lufs()
            if not math.isfinite(measured_lufs):
                logger.warning("%s: silent after enhancement; no loudness gain applied", job.input)
            gain_db = target_lufs - measured_lufs if math.isfinite(measured_lufs) else 0.0
            after = self._write(limited(gain_db), path)
            tried = [(gain_db, after.integrated_lufs())]
            while not on_target(tried[-1][1]) and len(tried) <= LOUDNESS_SEARCH_PASSES:
                off_lu = tried[-1][1] - target_lufs
                logger.info("%s: %.2f LU off target after limiting; searching the gain", job.input, off_lu)
                gain_db = _next_gain_db(tried, target_lufs)
                meter = LoudnessMeter(channels, rate)
                for block in limited(gain_db):
                    meter.add(block)
                tried.append((gain_db, meter.integrated_lufs()))
            best_gain_db, best_lufs = min(tried, key=lambda pair: abs(pair[1] - target_lufs))
            if best_gain_db != tried[0][0]:
                after = self._write(limited(best_gain_db), path)
            if not on_target(best_lufs):
                off_lu = best_lufs - target_lufs
                logger.warning("%s: loudness %.2f LU off target at best (limiter ceiling reached)", job.input, off_lu)
            if best_gain_db - tried[0][0] > HEAVY_LIMITING_DB:
                logger.warning(
                    "%s: reaching %.1f LUFS under %.1f dBTP took %.1f dB of gain beyond the linear estimate; "
                    "peaks are limited hard (more compression or a lower target would sound better)",
                    job.input, target_lufs, ceiling_dbtp, best_gain_db - tried[0][0],
                )
        self.result.gain_db = best_gain_db
        return after

    def _progress(self, phase: str, sample_rate: int) -> Callable[[int], None] | None:
        callback, path, total_s = self.settings.progress, self.job.input, self.total_s
        if callback is None:
            return None
        return lambda frames: callback(path, phase, frames / sample_rate, total_s)


def _next_gain_db(tried: list[tuple[float, float]], target_lufs: float) -> float:
    """The next gain to try from the ``(gain_db, lufs)`` pairs so far.

    A secant step on the last two (slope clamped to [MIN_LOUDNESS_SLOPE, 1]); a full step after the first.
    """
    gain_db, lufs = tried[-1]
    slope = 1.0
    if len(tried) >= 2 and tried[-1][0] != tried[-2][0]:
        slope = min(max((lufs - tried[-2][1]) / (gain_db - tried[-2][0]), MIN_LOUDNESS_SLOPE), 1.0)
    return gain_db + min((target_lufs - lufs) / slope, MAX_GAIN_STEP_DB)


def _float_file_blocks(path: Path, channels: int) -> Iterator[np.ndarray]:
    with path.open("rb") as file:
        while chunk := file.read(BLOCK_FRAMES * channels * 4):
            yield np.frombuffer(chunk, dtype=np.float32).reshape(-1, channels).T


def _limited(blocks: Iterable[np.ndarray], channels: int, gain_db: float, ceiling_dbtp: float) -> Iterator[np.ndarray]:
    """``blocks`` times ``gain_db`` through the true-peak limiter at ``ceiling_dbtp``, latency removed.

    The limiter is specified at 48 kHz; at another rate its look-ahead and
    release scale with the rate, while its 4x-oversampled peak detection, and
    so the ceiling, hold at any rate.
    """
    from speakup_fx.stages.base import hop_frames
    from speakup_fx.stages.limiter import TruePeakLimiterStage

    limiter = TruePeakLimiterStage(channels, {"limiter_ceiling_dbtp": ceiling_dbtp})
    gain = np.float32(10 ** (gain_db / 20))
    return _latency_compensated(
        limiter.process,
        lambda: limiter.latency_samples,
        (block * gain for block in blocks),
        channels,
        hop=hop_frames(limiter.input_sample_rate),
    )


def _latency_compensated(
    process: Callable[[np.ndarray], np.ndarray],
    latency_samples: Callable[[], int],
    blocks: Iterable[np.ndarray],
    channels: int,
    hop: int = 1,
) -> Iterator[np.ndarray]:
    """Stream ``blocks`` through a stateful ``process`` and yield its output aligned with the input, same total length.

    ``process`` gets whole multiples of ``hop`` frames; its first
    ``latency_samples()`` output frames (read after the first call) are
    dropped, and zeros are fed at the end to flush its tail.
    """
    pending = np.zeros((channels, 0), np.float32)
    total_in = emitted = 0
    to_drop: int | None = None

    def run(chunk: np.ndarray) -> np.ndarray:
        nonlocal to_drop, emitted
        out = process(chunk)
        if to_drop is None:
            to_drop = int(latency_samples())
        skipped = min(to_drop, out.shape[1])
        to_drop -= skipped
        out = out[:, skipped : skipped + total_in - emitted]
        emitted += out.shape[1]
        return out

    for block in blocks:
        total_in += block.shape[1]
        pending = np.concatenate([pending, block], axis=1) if pending.shape[1] else block
        usable = pending.shape[1] // hop * hop
        if usable:
            out = run(pending[:, :usable])
            pending = pending[:, usable:]
            if out.shape[1]:
                yield out
    flushed = 0
    while emitted < total_in:
        missing = total_in - emitted + (to_drop or 0)
        frames = min(-(-missing // hop) * hop, -(-BLOCK_FRAMES // hop) * hop)
        chunk = np.zeros((channels, frames), np.float32)
        chunk[:, : pending.shape[1]] = pending[:, :frames]
        pending = pending[:, frames:]
        flushed += frames
        if flushed > total_in + 10 * BLOCK_FRAMES:
            raise RuntimeError("the effect did not return its latency tail when fed zeros")
        out = run(chunk)
        if out.shape[1]:
            yield out


def _resampled(blocks: Iterable[np.ndarray], input_rate: int, output_rate: int, channels: int) -> Iterator[np.ndarray]:
    """Resample a block stream, time-aligned, yielding exactly ``ceil(frames * output_rate / input_rate)`` frames."""
    resampler = StreamingResampler(channels, input_rate, output_rate)
    total_in = emitted = 0
    for block in blocks:
        total_in += block.shape[1]
        out = resampler.process(block)
        emitted += out.shape[1]
        yield out
    wanted = -(-total_in * output_rate // input_rate) - emitted
    tail = resampler.process(np.zeros((channels, resampler.lookahead_frames + 1), np.float32))[:, :wanted]
    yield np.concatenate([tail, np.zeros((channels, wanted - tail.shape[1]), np.float32)], axis=1)


def _observed(
    blocks: Iterable[np.ndarray], observer: Callable[[np.ndarray], None] | None, report: Callable[[int], None] | None
) -> Iterator[np.ndarray]:
    """Pass ``blocks`` through, showing each to ``observer`` and counting frames for ``report``."""
    done = 0
    for block in blocks:
        if observer is not None:
            observer(block)
        done += block.shape[1]
        if report is not None:
            report(done)
        yield block


class _temporary_path:
    """A fresh hidden file name beside ``target`` (created empty, exclusively); removed on exit unless renamed."""

    def __init__(self, target: Path, suffix: str = "") -> None:
        self.path = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_MARK}{suffix or target.suffix}")

    def __enter__(self) -> Path:
        self.path.open("xb").close()
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        self.path.unlink(missing_ok=True)


def _commit(temporary: Path, target: Path, overwrite: bool) -> None:
    """Rename ``temporary`` to ``target`` atomically; without ``overwrite``, never replace a file that exists."""
    if overwrite:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if target exists: no race with another writer
    except FileExistsError:
        raise _BadInput(f"output {target} appeared while bouncing; pass --overwrite to replace it") from None
    except OSError:  # a filesystem without hard links
        if target.exists():
            raise _BadInput(f"output {target} appeared while bouncing; pass --overwrite to replace it") from None
        os.replace(temporary, target)
        return
    temporary.unlink()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``speakup bounce`` options."""
    parser.description = "Enhance audio/video files or folders. " + __doc__.split("\n\n")[-1].replace("\n", " ")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio/video files or folders (recursive)")
    parser.add_argument("-o", "--output", required=True, help="output file, or folder for folders and several inputs")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"name or .toml file (default: {DEFAULT_PRESET})")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter or option; repeatable"
    )
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, help="format of audio outputs (default: output suffix, else the input's)"
    )
    parser.add_argument("--bit-depth", choices=BIT_DEPTHS, default="24", help="WAV/FLAC sample format (default: 24)")
    parser.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the input's)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--report", help="before/after spectrograms and loudness: a .png (one input) or a folder")
    parser.add_argument("--device", help="torch device for the neural engine, e.g. cpu or cuda:0 (default: automatic)")


def run(args: argparse.Namespace) -> int:
    """Run ``speakup bounce``; returns the exit code (see the module docstring)."""
    try:
        overrides = dict(parse_assignment(text) for text in args.set)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    progress = _TerminalProgress() if sys.stderr.isatty() else _LogProgress()
    handlers = logging.getLogger().handlers
    for handler in handlers:  # a log line first ends the progress line
        handler.addFilter(progress.end_line)
    try:
        return _run_bounce(args, overrides, progress)
    finally:
        progress.end_line()
        for handler in handlers:
            handler.removeFilter(progress.end_line)


def _run_bounce(args: argparse.Namespace, overrides: dict[str, str], progress: _TerminalProgress | _LogProgress) -> int:
    try:
        bounce(
            args.inputs,
            args.output,
            preset=args.preset,
            overrides=overrides,
            output_format=args.format,
            bit_depth=args.bit_depth,
            sample_rate=args.sample_rate,
            overwrite=args.overwrite,
            report=args.report,
            device=args.device,
            progress=progress,
        )
    except BounceError as error:
        if error.results is None:
            logger.error("%s", error)
            return 2
        if len(error.results) == 1:
            return 2 if error.results[0].bad_input else 1
        failed = sum(not result.ok for result in error.results)
        logger.error("%d of %d files failed", failed, len(error.results))
        return 1
    return 0


class _TerminalProgress:
    """A one-line progress bar on stderr (a TTY)."""

    WIDTH = 30

    def __init__(self) -> None:
        self._shown = ""

    def __call__(self, path: Path, phase: str, done_s: float, total_s: float | None) -> None:
        if phase == "done":
            self.end_line()
            return
        if total_s:
            fraction = min(done_s / total_s, 1.0)
            bar = "#" * round(fraction * self.WIDTH)
            line = f"{path.name} {phase} [{bar:<{self.WIDTH}}] {fraction:4.0%} {_clock(done_s)}/{_clock(total_s)}"
        else:
            line = f"{path.name} {phase} {_clock(done_s)}"
        if line != self._shown:
            sys.stderr.write("\r" + line.ljust(len(self._shown)))
            sys.stderr.flush()
            self._shown = line

    def end_line(self, record: object = None) -> bool:
        """End the progress line (also a logging filter: lets every record through)."""
        if self._shown:
            sys.stderr.write("\n")
            self._shown = ""
        return True


class _LogProgress:
    """Progress as a log line every ``INTERVAL_S`` seconds (no TTY)."""

    INTERVAL_S = 10.0

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, path: Path, phase: str, done_s: float, total_s: float | None) -> None:
        now = time.monotonic()
        if phase != "done" and now - self._last >= self.INTERVAL_S:
            self._last = now
            of_total = f" of {_clock(total_s)}" if total_s else ""
            logger.info("%s: %s %s%s", path, phase, _clock(done_s), of_total)

    def end_line(self, record: object = None) -> bool:
        return True


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"
