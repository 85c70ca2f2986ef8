"""One file in, one file out: ``bounce_file``, the per-file pipeline the CLI, the Spark job and the model server call.

The file is decoded in blocks and run through a ``SpeakUp`` effect with ``reset=False``; the
effect's latency is dropped and its tail flushed with zeros (``dsp.latency``), so the output has
exactly the input's length. When the preset's ``loudness`` option is on, the effect runs with
its chain's limiter off, and a second pass applies the gain that meets ``target_lufs`` and then
the one true-peak limiter (``limiter_ceiling_dbtp``, at the output's rate): pass 1 writes the
enhanced audio to a temporary float file while it is measured, pass 2 writes the output (if
limiting leaves it off target, measure-only passes search the gain and it is written again).
With ``midi``, the control changes of a MIDI file drive the preset's mapped parameters during the
enhancement pass only (``bounce.automation``); the loudness pass works on its result.

The output is written through ``atomic_write`` (nothing is left behind on failure or interrupt,
and temporary files of killed runs are removed by the next one); inputs are never opened for
writing. Every failure is a ``FileBounceError`` naming the input, the output and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
import soundfile

from speakup_fx.atomic import OutputExistsError, atomic_write, remove_stale_temporaries, temporary_name
from speakup_fx.bounce.automation import (
    Automation,
    AutomationError,
    AutomationPlayer,
    MappedAutomation,
    load_automation,
    schedule,
)
from speakup_fx.bounce.progress import ProgressCallback
from speakup_fx.dsp.latency import aligned_blocks
from speakup_fx.dsp.resample import StreamingResampler, check_sample_rate
from speakup_fx.media import (
    BIT_DEPTHS,
    OUTPUT_FORMATS,
    AudioReader,
    AudioWriter,
    MediaError,
    VideoRemuxWriter,
    check_output_format,
    is_video_file,
    sample_problem,
)
from speakup_fx.presets import Preset, load_preset
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
DISK_FULL_BYTES = 1 << 20
"""A write that fails with less free space than this in the output's folder is reported as a full disk."""


class Effect(Protocol):
    """What a bounce needs of an effect: pedalboard-style streaming ``process`` and its latency.

    An effect whose ``converts_sample_rate`` is true (``SpeakUp``) also takes ``output_sample_rate=``
    and resamples once, inside its engine; others are resampled after.
    """

    latency_samples: int

    def process(
        self, input_array: np.ndarray, sample_rate: float, buffer_size: int = ..., reset: bool = ...
    ) -> np.ndarray: ...

    def reset(self) -> None: ...


_AUTOMATABLE = ("handle_midi", "midi_map", "offered_params", "parameter_delay_s", "prepare")
"""What MIDI automation needs of an effect besides ``Effect`` (``SpeakUp`` has it)."""


class FileBounceError(ValueError):
    """One file could not be bounced and nothing was written for it; the message names the file and the cause.

    ``bad_input``: the input file (corrupt, not audio, truncated with ``strict``) or what was asked of it
    (a format that cannot hold its rate) is at fault, rather than the effect or the output's disk.
    """

    def __init__(self, message: str, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class BounceResult:
    """The outcome of one input file; loudness figures: None where not measured, -inf where nothing passed the gates."""

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
    """The loudness pass's gain (before its limiter)."""
    clipped_samples: int = 0
    warnings: list[str] = field(default_factory=list)
    """Everything logged as a warning for this file (truncation, quiet audio, clipping, dropped streams...)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def check_settings(bit_depth: str, sample_rate: int | None) -> None:
    """``ValueError`` for a bit depth or output rate no bounce can write."""
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit depth {bit_depth!r}: expected one of {', '.join(BIT_DEPTHS)}")
    if sample_rate is not None:
        check_sample_rate(sample_rate)


def effect_for(preset: Preset, device: str | None = None) -> Effect:
    """The ``SpeakUp`` a bounce with ``preset`` runs (on ``device`` if given).

    With ``loudness`` on, the chain's limiter is off: the loudness pass limits once, after its gain.
    """
    from speakup_fx.effect import SpeakUp

    chain_preset = preset.with_overrides({"limiter": False}) if preset.options.loudness else preset
    try:
        return SpeakUp(preset=chain_preset, **({"device": device} if device else {}))
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot set up the effect: {error}") from None


def output_format_for(source: Path, output: Path) -> str | None:
    """The format ``output``'s name asks for: 'wav', 'flac', 'mp3', or None (a video remux); else ``ValueError``."""
    suffix = output.suffix.lower().lstrip(".")
    if suffix in OUTPUT_FORMATS:
        return suffix
    if is_video_file(source) and output.suffix.lower() == source.suffix.lower():
        return None
    if is_video_file(source) and is_video_file(output):
        raise ValueError(f"output {output}: a video output must keep the input's container ({source.suffix})")
    raise ValueError(f"output {output}: unsupported type; use .wav, .flac or .mp3 (or the input's video container)")


def file_id(path: Path) -> tuple[int, int]:
    """(device, inode): the identity of a file whatever path reaches it."""
    status = path.stat()
    return status.st_dev, status.st_ino


def bounce_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    preset: str | os.PathLike[str] | Preset = DEFAULT_PRESET,
    *,
    bit_depth: str = "24",
    sample_rate: int | None = None,
    overwrite: bool = False,
    force: bool = False,
    strict: bool = False,
    report: str | os.PathLike[str] | None = None,
    effect: Effect | None = None,
    device: str | None = None,
    protected: Collection[tuple[int, int]] = (),
    progress: ProgressCallback | None = None,
    midi: str | os.PathLike[str] | Automation | None = None,
) -> BounceResult:
    """Enhance one audio or video file into ``output_path``; returns its ``BounceResult`` (figures measured on the way).

    The output's format follows its suffix (.wav, .flac, .mp3; a video input's own container
    remuxes the video with the enhanced audio). ``bit_depth``: '16', '24' or '32f' (WAV/FLAC).
    ``sample_rate``: output rate (default: the input's). ``overwrite`` replaces an existing
    output (keeping its permission bits) unless it is read-only; ``force`` replaces that too.
    ``strict``: a truncated input (shorter than its header declares) fails instead of being
    bounced with a warning. ``report``: a PNG of before/after. ``effect``: use this effect
    (reset before use) instead of ``effect_for(preset, device)``; the preset still decides the
    loudness pass and its limiter. ``protected``: ``file_id``s no output may replace (the input's
    own is always protected). ``progress``: see ``ProgressCallback``. ``midi``: a standard MIDI
    file (or an ``Automation`` from ``read_automation``) whose control changes set the parameters
    of the preset's MIDI map at their times on the input's timeline (``bounce.automation``).

    Raises ``FileBounceError`` (nothing written; its message names the input and the cause),
    ``ValueError`` for bad settings (``AutomationError`` for a MIDI file that cannot automate this
    preset's chain, checked before anything is written); an exception of the effect propagates
    (nothing written either).
    """
    source, output = Path(input_path), Path(output_path)
    resolved = preset if isinstance(preset, Preset) else load_preset(preset)
    check_settings(bit_depth, sample_rate)
    settings = _Settings(
        preset=resolved,
        bit_depth=bit_depth,
        sample_rate=sample_rate,
        overwrite=overwrite or force,
        force=force,
        strict=strict,
        report=Path(report) if report is not None else None,
        protected=set(protected),
        progress=progress,
    )
    result = BounceResult(source, output)
    started = time.perf_counter()
    try:
        effect = effect if effect is not None else effect_for(resolved, device)
        automation = automation_for(midi, effect, resolved) if midi is not None else None
        saved = {name: getattr(effect, name) for _, name in automation.changes} if automation else {}
        try:
            _FileBounce(source, output, settings, result, effect, automation).run()
        finally:
            for name, value in saved.items():  # the effect may serve the next file
                setattr(effect, name, value)
    except MediaError as error:
        raise FileBounceError(str(error), bad_input=True) from None
    finally:
        if progress is not None:
            progress(source, "done", result.duration_s, result.duration_s)
    elapsed_s = time.perf_counter() - started
    result.realtime_factor = elapsed_s / result.duration_s if result.duration_s else None
    return result


def automation_for(midi: str | os.PathLike[str] | Automation, effect: Effect, preset: Preset) -> MappedAutomation:
    """``midi`` read if need be and checked against the MIDI map and chain of ``effect`` (``Automation.mapped``)."""
    automation = load_automation(midi)
    if not all(hasattr(effect, name) for name in _AUTOMATABLE):
        raise AutomationError(f"{automation.source}: effect {type(effect).__name__} takes no MIDI automation")
    return automation.mapped(effect.midi_map, effect.offered_params, preset.name)  # type: ignore[attr-defined]


@dataclass
class _Settings:
    preset: Preset
    bit_depth: str
    sample_rate: int | None
    overwrite: bool
    force: bool
    strict: bool
    report: Path | None
    protected: set[tuple[int, int]]
    progress: ProgressCallback | None


class _FileBounce:
    """One file: decode -> effect (latency removed) -> resample -> [loudness gain, limiter] -> temporary -> rename."""

    def __init__(
        self,
        source: Path,
        output: Path,
        settings: _Settings,
        result: BounceResult,
        effect: Effect,
        automation: MappedAutomation | None = None,
    ) -> None:
        self.source, self.output, self.settings, self.result, self.effect = source, output, settings, result, effect
        self.params = settings.preset.parameter_values()
        self.automation = automation
        self.player: AutomationPlayer | None = None

    def run(self) -> None:
        source, output, settings = self.source, self.output, self.settings
        for warning in self.automation.warnings if self.automation else ():
            self._warn(f"{source}: {warning}")
        try:
            self.output_format = output_format_for(source, output)
        except ValueError as error:
            raise FileBounceError(f"{source}: {error}") from None
        self._check_output_path()
        with AudioReader(source) as reader:
            self.reader = reader
            self.input_rate, self.channels = reader.sample_rate, reader.channels
            self.output_rate = settings.sample_rate or self.input_rate
            if self.output_format is not None:
                check_output_format(output, self.output_format, self.output_rate, settings.bit_depth)
            self.total_s = reader.frames_estimate / self.input_rate if reader.frames_estimate else None
            before = SignalSummary(self.input_rate, self.channels, spectrogram=settings.report is not None)
            enhanced = self._enhanced(before)
            with self._writing():
                removed = remove_stale_temporaries(output.parent)
                if removed:
                    logger.info("%s: removed %d temporary file(s) of interrupted runs", output.parent, len(removed))
                with atomic_write(output, overwrite=settings.overwrite) as temporary:
                    if settings.preset.options.loudness:
                        after = self._normalise(enhanced, temporary)
                    else:
                        after = self._write(enhanced, temporary)
                        self._check_length()
        result = self.result
        result.duration_s = before.frames / self.input_rate
        if self.player is not None and self.player.late:
            first = self.player.late[0]
            self._warn(
                f"{source}: {len(self.player.late)} control change(s) from {first.time_s:.3f} s on come after the "
                f"end of the audio ({result.duration_s:.3f} s); ignored"
            )
        result.input_lufs, result.input_true_peak_dbtp = before.integrated_lufs(), before.true_peak_dbtp()
        result.output_lufs, result.output_true_peak_dbtp = after.integrated_lufs(), after.true_peak_dbtp()
        if result.clipped_samples:
            self._warn(f"{output}: {result.clipped_samples} samples clipped at full scale")
        if settings.report is not None:
            title = f"{source.name} -> {output.name} ({settings.preset.name})"
            try:
                write_report(settings.report, before, after, title=title)
            except OSError as error:
                raise FileBounceError(
                    f"{source}: bounced to {output}, but cannot write {settings.report}: {_cause(error)}"
                ) from None

    def _warn(self, message: str) -> None:
        self.result.warnings.append(message)
        logger.warning("%s", message)

    def _check_output_path(self) -> None:
        source, output, settings = self.source, self.output, self.settings
        if not output.exists():
            return
        if output.is_dir():
            raise FileBounceError(f"{source}: output {output} is a folder")
        if file_id(output) in settings.protected | ({file_id(source)} if source.exists() else set()):
            raise FileBounceError(f"{source}: output {output} is an input; refusing to overwrite it")
        if not settings.overwrite:
            raise FileBounceError(f"{source}: output {output} exists; pass --overwrite to replace it")
        if not settings.force and not output.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise FileBounceError(f"{source}: output {output} is read-only; pass --force to replace it")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failure to write the output (or its temporary files) into a ``FileBounceError`` naming the cause."""
        source, output, folder = self.source, self.output, self.output.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FileBounceError(f"{source}: cannot create the folder of {output}: {_cause(error)}") from None
        try:
            yield
        except OutputExistsError:
            raise FileBounceError(f"{source}: output {output} appeared while bouncing; pass --overwrite to replace it")
        except (OSError, soundfile.SoundFileError, av.FFmpegError) as error:
            filename = getattr(error, "filename", None)
            ours = Path(filename).absolute().parent == folder.absolute() if filename is not None else (
                isinstance(error, (soundfile.SoundFileError, av.FFmpegError))  # only the writers raise these raw
            )
            if not ours:
                raise  # not a write failure (an effect's missing weights, say)
            code = getattr(error, "errno", None)
            if code is None and _free_bytes(folder) < DISK_FULL_BYTES:
                code = errno.ENOSPC  # libsndfile says only "System error."
            cause = os.strerror(code) if code else str(error)
            if code in (errno.EACCES, errno.EPERM, errno.EROFS):
                cause += f" in folder {folder}"
            raise FileBounceError(f"{source}: cannot write {output}: {cause}") from None

    def _enhanced(self, before: SignalSummary) -> Iterator[np.ndarray]:
        """The effect's output at the output rate, aligned with the input and as long; ``before`` sees the input."""
        rate, channels, effect = self.input_rate, self.channels, self.effect
        decoded = _observed(self.reader.blocks(BLOCK_FRAMES), before.add, self._progress("enhance", rate))
        converts = getattr(effect, "converts_sample_rate", False)  # SpeakUp resamples once, inside its engine
        if self.automation is not None:
            decoded = self._automated(decoded, self.output_rate if converts else rate)
        effect.reset()
        if converts:
            output_rate = self.output_rate
            enhanced = aligned_blocks(
                lambda block: effect.process(
                    block, rate, buffer_size=BLOCK_FRAMES, reset=False, output_sample_rate=output_rate
                ),
                lambda: effect.latency_samples,
                decoded,
                channels,
                output_frames=lambda frames: -(-frames * output_rate // rate),
            )
            return self._checked(enhanced, output_rate)
        enhanced = aligned_blocks(
            lambda block: effect.process(block, rate, buffer_size=BLOCK_FRAMES, reset=False),
            lambda: effect.latency_samples,
            decoded,
            channels,
        )
        checked = self._checked(enhanced, rate)
        return _resampled(checked, rate, self.output_rate, channels) if self.output_rate != rate else checked

    def _automated(self, decoded: Iterable[np.ndarray], effect_output_rate: int) -> Iterator[np.ndarray]:
        """``decoded`` split where the MIDI changes are handed to the effect; the changes at time 0 are made now.

        Call before the effect's reset, which starts the stream at those values.
        """
        effect: Any = self.effect
        effect.prepare(self.input_rate, self.channels, effect_output_rate)  # this stream's engine gives the delays
        scheduled = schedule(self.automation.changes, effect.parameter_delay_s, self.input_rate)
        self.player = AutomationPlayer(scheduled, lambda change: effect.handle_midi(change.message()))
        self.player.start()
        return self.player.blocks(decoded)

    def _checked(self, blocks: Iterable[np.ndarray], sample_rate: int) -> Iterator[np.ndarray]:
        """``blocks`` of the effect's output, each checked to be audio (a broken model or effect fails here)."""
        position = 0
        for block in blocks:
            problem = sample_problem(block, position, sample_rate)
            if problem:
                raise FileBounceError(f"{self.source}: the enhanced audio has a {problem}; nothing written")
            position += block.shape[1]
            yield block

    def _check_length(self) -> None:
        """After decoding: a truncated input fails (``strict``) or is reported."""
        problem = self.reader.truncation()
        if problem is None:
            return
        if self.settings.strict:
            raise FileBounceError(f"{self.source}: {problem}; nothing written (--strict)", bad_input=True)
        self._warn(f"{self.source}: {problem}; bounced what it holds (--strict refuses truncated files)")

    def _write(self, blocks: Iterable[np.ndarray], path: Path) -> SignalSummary:
        """Encode ``blocks`` to ``path`` in the job's format; returns the summary of what was written."""
        reader, output = self.reader, self.output
        after = SignalSummary(self.output_rate, self.channels, spectrogram=self.settings.report is not None)
        writer: AudioWriter | VideoRemuxWriter
        if self.output_format is None:
            writer = VideoRemuxWriter(
                self.source, path, self.output_rate, self.channels, audio_start_s=reader.start_s, name=str(output)
            )
        else:
            frames = None
            if reader.frames_estimate:
                frames = round(reader.frames_estimate * self.output_rate / self.input_rate)
            writer = AudioWriter(
                path, self.output_format, self.output_rate, self.channels, self.settings.bit_depth, frames,
                name=str(output),
            )
        with writer:
            for block in blocks:
                writer.write(block)
                after.add(block)
        self.result.clipped_samples = writer.clipped_samples
        return after

    def _normalise(self, enhanced: Iterable[np.ndarray], path: Path) -> SignalSummary:
        """Reach ``target_lufs`` with the one limiter at ``limiter_ceiling_dbtp``; returns the summary of the output.

        Pass 1 writes ``enhanced`` to a float file while measuring it. Pass 2 applies the gain
        that meets the target and then the limiter (ceiling lowered by ``LOSSY_HEADROOM_DB`` for
        lossy outputs), writing ``path``. Limiting lowers loudness, so if pass 2 misses the target,
        measure-only passes search the gain (secant steps on the measured loudness-versus-gain
        curve) and a last pass writes the best one. With the preset's ``limiter`` off there is no
        limiter: the gain is held where the true peak meets the ceiling.
        """
        from speakup_fx.dsp.loudness import LoudnessMeter

        rate, channels = self.output_rate, self.channels
        target_lufs, ceiling_dbtp = self.params["target_lufs"], self.params["limiter_ceiling_dbtp"]
        if self.output_format in (None, "mp3"):  # lossy: AAC in the video, or MP3
            ceiling_dbtp -= LOSSY_HEADROOM_DB
        limiter = self.settings.preset.options.limiter

        def passed(gain_db: float) -> Iterator[np.ndarray]:
            stored = _observed(_float_file_blocks(float_path, channels), None, self._progress("normalise", rate))
            return _limited(stored, channels, rate, gain_db, ceiling_dbtp) if limiter else _gained(stored, gain_db)

        def on_target(lufs: float) -> bool:
            return not math.isfinite(lufs) or abs(lufs - target_lufs) <= LOUDNESS_TOLERANCE_LU

        with _scratch_file(self.output, ".f32") as float_path:
            measured = SignalSummary(rate, channels)
            with float_path.open("wb") as file:
                for block in enhanced:
                    measured.add(block)
                    file.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
            self._check_length()
            gain_db = self._loudness_gain_db(measured, target_lufs)
            if not limiter:
                gain_db = self._held_under_ceiling(gain_db, measured.true_peak_dbtp(), ceiling_dbtp, target_lufs)
                self.result.gain_db = gain_db
                return self._write(passed(gain_db), path)
            after = self._write(passed(gain_db), path)
            tried = [(gain_db, after.integrated_lufs())]
            while not on_target(tried[-1][1]) and len(tried) <= LOUDNESS_SEARCH_PASSES:
                off_lu = tried[-1][1] - target_lufs
                logger.info("%s: %.2f LU off target after limiting; searching the gain", self.source, off_lu)
                gain_db = _next_gain_db(tried, target_lufs)
                meter = LoudnessMeter(channels, rate)
                for block in passed(gain_db):
                    meter.add(block)
                tried.append((gain_db, meter.integrated_lufs()))
            best_gain_db, best_lufs = min(tried, key=lambda pair: abs(pair[1] - target_lufs))
            if best_gain_db != tried[0][0]:
                after = self._write(passed(best_gain_db), path)
            if not on_target(best_lufs):
                off_lu = best_lufs - target_lufs
                self._warn(f"{self.source}: loudness {off_lu:.2f} LU off target at best (limiter ceiling reached)")
            if best_gain_db - tried[0][0] > HEAVY_LIMITING_DB:
                self._warn(
                    f"{self.source}: reaching {target_lufs:.1f} LUFS under {ceiling_dbtp:.1f} dBTP took "
                    f"{best_gain_db - tried[0][0]:.1f} dB of gain beyond the linear estimate; peaks are limited hard "
                    "(more compression or a lower target would sound better)"
                )
        self.result.gain_db = best_gain_db
        return after

    def _loudness_gain_db(self, measured: SignalSummary, target_lufs: float) -> float:
        """The gain that brings ``measured`` to ``target_lufs`` before limiting; says what it does when it cannot."""
        lufs = measured.integrated_lufs()
        if math.isfinite(lufs):
            return target_lufs - lufs
        if measured.sample_peak == 0.0:
            self._warn(f"{self.source}: digital silence after enhancement (all samples zero); no loudness gain applied")
            return 0.0
        if not measured.measurable:
            self._warn(
                f"{self.source}: {measured.frames / measured.sample_rate:.3f} s is too short to measure loudness "
                "(BS.1770 needs 0.4 s); no loudness gain applied"
            )
            return 0.0
        quiet_lufs = measured.integrated_lufs(absolute_gate_lufs=-math.inf)
        if not math.isfinite(quiet_lufs):
            self._warn(f"{self.source}: no audible content after enhancement (DC only); no loudness gain applied")
            return 0.0
        gain_db = target_lufs - quiet_lufs
        self._warn(
            f"{self.source}: very quiet after enhancement ({quiet_lufs:.1f} LUFS, below BS.1770's -70 LUFS gate), "
            f"not silent; applying {gain_db:+.1f} dB toward {target_lufs:.1f} LUFS"
        )
        return gain_db

    def _held_under_ceiling(self, gain_db: float, peak_dbtp: float, ceiling_dbtp: float, target_lufs: float) -> float:
        """Without a limiter: ``gain_db``, or less where its true peak would pass the ceiling."""
        most_db = ceiling_dbtp - peak_dbtp
        if gain_db <= most_db:
            return gain_db
        self._warn(
            f"{self.source}: the limiter is off, so the loudness gain is held at {most_db:+.1f} dB "
            f"(true peak at {ceiling_dbtp:.1f} dBTP), {gain_db - most_db:.1f} LU under {target_lufs:.1f} LUFS"
        )
        return most_db

    def _progress(self, phase: str, sample_rate: int) -> Callable[[int], None] | None:
        callback, path, total_s = self.settings.progress, self.source, self.total_s
        if callback is None:
            return None
        return lambda frames: callback(path, phase, frames / sample_rate, total_s)


def _cause(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return DISK_FULL_BYTES


@contextlib.contextmanager
def _scratch_file(beside: Path, suffix: str) -> Iterator[Path]:
    """A new empty temporary file beside ``beside``, named as ``atomic_write`` names its (stale ones get removed)."""
    path = temporary_name(beside, suffix)
    try:
        path.open("xb").close()
        yield path
    finally:
        path.unlink(missing_ok=True)


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


def _gained(blocks: Iterable[np.ndarray], gain_db: float) -> Iterator[np.ndarray]:
    gain = np.float32(10 ** (gain_db / 20))
    return (block * gain for block in blocks)


def _limited(
    blocks: Iterable[np.ndarray], channels: int, sample_rate: int, gain_db: float, ceiling_dbtp: float
) -> Iterator[np.ndarray]:
    """``blocks`` times ``gain_db`` through the true-peak limiter at ``ceiling_dbtp`` and ``sample_rate``, aligned."""
    from speakup_fx.stages.limiter import TruePeakLimiterStage

    limiter = TruePeakLimiterStage(channels, {"limiter_ceiling_dbtp": ceiling_dbtp}, sample_rate)
    gained = _gained(blocks, gain_db)
    return aligned_blocks(limiter.process, limiter.latency_samples, gained, channels, limiter.hop_frames)


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

