"""Score bandwidth extension on held-out speakers: ``python -m speakup_fx.eval.bwe --data-dir DIR``.

For each 48 kHz file of the validation actors (never trained on): the input is the file through
the project resampler to 16 kHz; the baseline (``input``) is that input resampled back to 48 kHz; the
``output`` is the ``bandwidth-extension`` preset's chain run on the input at 16 kHz with 48 kHz out
(the path ``speakup bounce in_16k.wav -o out.wav --preset bandwidth-extension --sample-rate 48000``
takes), or, with ``--weights``, the model file alone; ``original`` is the 48 kHz file itself.
Reported for each of the three: log-spectral distance (``ssr_eval``'s) against the original, over all
bins and over those at or above 8 kHz (the band a 16 kHz signal cannot carry); the mean per-frame
change from the baseline in dB of the 0-7.5 kHz band (the issue's check) and of the 0-7.0 kHz band
(below the resampler's transition band, which the model fills); DNSMOS SIG/BAK/OVRL and the word error rate of
pocketsphinx's transcript against its transcript of the original. DNSMOS and the recogniser run at
16 kHz (each signal through the project resampler): they cannot see the extended band, they check
that the band below 8 kHz and the words survive and that no artefact reaches them. ``--no-quality``
skips them. The output's artefact figures (``artefacts``: the dip below the crossover, notches,
sibilant and high-band level, harmonic-comb regularity, level jumps, hiss in pauses) are measured
against the original on every file. Exit codes: 0 done; 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speakup_fx.data.bwe import INPUT_SAMPLE_RATE, TARGET_SAMPLE_RATE, VALIDATION_ACTORS, split_by_actor
from speakup_fx.data.corpus import load_mono
from speakup_fx.dsp.resample import resample
from speakup_fx.eval import metrics

logger = logging.getLogger(__name__)

KEPT_BAND_HZ = (0.0, 7_500.0)
"""The band the extension must leave as it found it (the issue's check)."""

INTACT_BAND_HZ = (0.0, 7_000.0)
"""The band a 16 kHz input carries intact: the project resampler's round trip rolls off from 7.0 kHz, and
the model fills that transition band, so ``KEPT_BAND_HZ`` includes 0.5 kHz it writes."""

HIGH_BAND_LOW_HZ = 8_000.0
"""Lowest frequency of the high-band LSD: the band a 16 kHz signal cannot carry."""

NOTCH_BINS_HZ = tuple(float(hz) for hz in np.fft.rfftfreq(metrics.LSD_FFT, 1 / TARGET_SAMPLE_RATE) if 8_000 <= hz < 22_000)
"""The STFT bins (23.4 Hz apart) searched for notches."""

NOTCH_NEIGHBOURHOOD_HZ = 1_000.0
"""A notch is measured against the median of the bins within this distance."""

SIGNALS = ("input", "output", "original")
"""What each file scores: the upsampled 16 kHz input, the extension's output, the 48 kHz original."""

Extender = Callable[[np.ndarray], np.ndarray]
"""1-D float32 at 16 kHz -> 1-D float32 at 48 kHz, aligned, three times as long."""


@dataclass(frozen=True)
class SignalScore:
    """One signal of one file against the 48 kHz original (NaN where ``--no-quality`` skipped a figure)."""

    lsd: float
    lsd_high: float
    kept_band_change_db: float
    intact_band_change_db: float
    dnsmos_sig: float = float("nan")
    dnsmos_bak: float = float("nan")
    dnsmos_ovrl: float = float("nan")
    word_errors: float = float("nan")


@dataclass(frozen=True)
class Artefacts:
    """What a listener would check in an extended output, measured against the original (dB unless stated).

    Frames are those of ``metrics.log_spectral_distance`` (2048 points, hop 512 at 48 kHz): speech frames
    are within 40 dB of the loudest, pauses more than 50 dB below it, fricatives speech frames with more
    energy above 4 kHz than below, voiced ones with 10 dB less above 4 kHz than below.
    """

    dip_db: float
    """output - original in 7.2-7.6 kHz on speech frames (the band between the resampler's edge and the crossover)"""
    shortfall_db: tuple[float, ...]
    """original - output mean speech spectrum in the bins of ``NOTCH_BINS_HZ`` (``deepest_notch``
    reads notches from its mean over files: one file's own spectral peaks would pass for notches)"""
    high_band_db: float
    """output - original in 8-24 kHz on speech frames"""
    sibilant_db: float
    """output - original above 12 kHz on fricative frames (NaN without any)"""
    comb_ratio: float
    """harmonic-comb regularity 8-16 kHz on voiced frames, output / original (> 1: more regular, metallic)"""
    jump_p95_db: float
    """95th percentile of the frame-to-frame 8-24 kHz level change on speech, output - original (> 0: pumping)"""
    pause_hiss_db: float
    """output - original in 8-24 kHz in pauses (NaN without any)"""


@dataclass(frozen=True)
class FileScore:
    path: str
    reference_words: int
    signals: dict[str, SignalScore]
    artefacts: Artefacts


def preset_extender(preset: str = "bandwidth-extension", device: str | None = "cpu") -> Extender:
    """The product path: a ``SpeakUp`` effect with ``preset``, 16 kHz in, 48 kHz out (as ``speakup bounce`` runs it)."""
    from speakup_fx.effect import SpeakUp

    effect = SpeakUp(preset=preset, device=device)
    return lambda audio: effect(audio, INPUT_SAMPLE_RATE, output_sample_rate=TARGET_SAMPLE_RATE)


def model_extender(weights: str | Path) -> Extender:
    """The model of ``weights`` alone, offline (``forward``)."""
    import torch

    from speakup_fx.runtime.weights import load_model

    _, model = load_model(weights)

    def extend(audio: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(audio))[None, None])[0, 0].numpy()

    return extend


def _level_db(power: np.ndarray, hz: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    return 10 * np.log10(power[..., (hz >= low_hz) & (hz < high_hz)].sum(-1) + 1e-12)


def _comb_prominence(power: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """Per frame: the cepstral peak of the 8-16 kHz log spectrum at pitch quefrencies (2.5-12.5 ms) over its median there."""
    band = (hz >= 8_000) & (hz < 16_000)
    log_power = np.log(power[:, band] + 1e-12)
    cepstrum = np.abs(np.fft.rfft(log_power - log_power.mean(1, keepdims=True), axis=1))
    quefrency_s = np.fft.rfftfreq(int(band.sum()), d=hz[1] - hz[0])
    pitch = (quefrency_s >= 0.0025) & (quefrency_s <= 0.0125)
    return cepstrum[:, pitch].max(1) / (np.median(cepstrum[:, pitch], 1) + 1e-12)


def artefacts(original: np.ndarray, output: np.ndarray) -> Artefacts:
    """The ``Artefacts`` of 48 kHz ``output`` against ``original`` (1-D, aligned, equal lengths)."""
    hz = np.fft.rfftfreq(metrics.LSD_FFT, 1 / TARGET_SAMPLE_RATE)
    original_power, output_power = (metrics.magnitude_spectrogram(np.asarray(s, np.float64), metrics.LSD_FFT, metrics.LSD_HOP) ** 2 for s in (original, output))
    total = _level_db(original_power, hz, 0, 24_000)
    speech, pause = total > total.max() - 40, total < total.max() - 50
    below, above = _level_db(original_power, hz, 0, 4_000), _level_db(original_power, hz, 4_000, 24_000)
    fricative, voiced = speech & (above > below), speech & (below - above > 10)

    def difference(low_hz: float, high_hz: float, frames: np.ndarray) -> float:
        if not frames.any():
            return float("nan")
        return float(np.mean(_level_db(output_power[frames], hz, low_hz, high_hz) - _level_db(original_power[frames], hz, low_hz, high_hz)))

    mean_output, mean_original = output_power[speech].mean(0), original_power[speech].mean(0)
    bins = (hz >= NOTCH_BINS_HZ[0]) & (hz <= NOTCH_BINS_HZ[-1])
    shortfall = tuple(float(v) for v in 10 * np.log10((mean_original[bins] + 1e-12) / (mean_output[bins] + 1e-12)))
    both = speech[1:] & speech[:-1]
    jumps = [np.percentile(np.abs(np.diff(_level_db(p, hz, 8_000, 24_000)))[both], 95) if both.any() else np.nan for p in (output_power, original_power)]
    comb = _comb_prominence(output_power[voiced], hz).mean() / _comb_prominence(original_power[voiced], hz).mean() if voiced.any() else np.nan
    return Artefacts(
        dip_db=difference(7_200, 7_600, speech),
        shortfall_db=shortfall,
        high_band_db=difference(8_000, 24_000, speech),
        sibilant_db=difference(12_000, 24_000, fricative),
        comb_ratio=float(comb),
        jump_p95_db=float(jumps[0] - jumps[1]),
        pause_hiss_db=difference(8_000, 24_000, pause),
    )


def deepest_notch(shortfall_db: np.ndarray) -> tuple[float, float]:
    """The deepest narrow notch in a shortfall spectrum over ``NOTCH_BINS_HZ``: (dB beyond the median
    shortfall within ``NOTCH_NEIGHBOURHOOD_HZ`` of the bin, the bin's frequency in Hz)."""
    reach = int(NOTCH_NEIGHBOURHOOD_HZ / (NOTCH_BINS_HZ[1] - NOTCH_BINS_HZ[0]))
    local = np.array([np.median(shortfall_db[max(0, i - reach) : i + reach + 1]) for i in range(len(shortfall_db))])
    i = int(np.argmax(shortfall_db - local))
    return float(shortfall_db[i] - local[i]), NOTCH_BINS_HZ[i]


def score_signal(original: np.ndarray, baseline: np.ndarray, signal: np.ndarray, reference_words: list[str] | None) -> SignalScore:
    """``signal`` (48 kHz) against ``original``; its kept band against ``baseline``; with ``reference_words`` the 16 kHz figures too."""
    rate = TARGET_SAMPLE_RATE
    spectral = {
        "lsd": metrics.log_spectral_distance(original, signal, rate),
        "lsd_high": metrics.log_spectral_distance(original, signal, rate, low_hz=HIGH_BAND_LOW_HZ),
        "kept_band_change_db": metrics.band_energy_change_db(baseline, signal, rate, *KEPT_BAND_HZ),
        "intact_band_change_db": metrics.band_energy_change_db(baseline, signal, rate, *INTACT_BAND_HZ),
    }
    if reference_words is None:
        return SignalScore(**spectral)
    narrow = resample(signal, rate, metrics.METRIC_SAMPLE_RATE)
    mos = metrics.dnsmos(narrow, metrics.METRIC_SAMPLE_RATE)
    errors = metrics.word_errors(reference_words, metrics.transcribe(narrow, metrics.METRIC_SAMPLE_RATE))
    return SignalScore(**spectral, dnsmos_sig=mos.sig, dnsmos_bak=mos.bak, dnsmos_ovrl=mos.ovrl, word_errors=float(errors))


def score_file(speech: np.ndarray, extend: Extender, quality: bool = True) -> tuple[int, dict[str, SignalScore], Artefacts]:
    """Words of the original's transcript (0 without ``quality``), the score of each of ``SIGNALS`` and the
    output's artefacts for 48 kHz ``speech`` (1-D)."""
    frames = len(speech) // 3 * 3
    original = speech[:frames]
    narrow = resample(original, TARGET_SAMPLE_RATE, INPUT_SAMPLE_RATE)
    baseline = resample(narrow, INPUT_SAMPLE_RATE, TARGET_SAMPLE_RATE)
    output = np.asarray(extend(narrow), dtype=np.float32).reshape(-1)
    if output.shape != original.shape:
        raise ValueError(f"the extender returned {output.shape[0]} frames for {original.shape[0]}")
    words = metrics.transcribe(resample(original, TARGET_SAMPLE_RATE, metrics.METRIC_SAMPLE_RATE), metrics.METRIC_SAMPLE_RATE) if quality else None
    signals = dict(zip(SIGNALS, (baseline, output, original)))
    return len(words or []), {name: score_signal(original, baseline, signal, words) for name, signal in signals.items()}, artefacts(original, output)


def evaluate(files: list[Path], extend: Extender, quality: bool = True) -> list[FileScore]:
    scores = []
    for path in files:
        scores.append(FileScore(str(path), *score_file(load_mono(path, TARGET_SAMPLE_RATE), extend, quality)))
        logger.debug("%s: LSD %.3f -> %.3f", path, scores[-1].signals["input"].lsd, scores[-1].signals["output"].lsd)
    return scores


def summary(scores: list[FileScore]) -> dict:
    """Means over files per signal (WER pooled over words), the LSD ratio output / input and the kept-band change."""
    words = sum(s.reference_words for s in scores)
    result: dict = {"files": len(scores), "reference_words": words}
    for name in SIGNALS:
        rows = [s.signals[name] for s in scores]
        means = {field: float(np.mean([getattr(r, field) for r in rows])) for field in ("lsd", "lsd_high", "kept_band_change_db", "intact_band_change_db", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")}
        means["wer"] = float(sum(r.word_errors for r in rows) / words) if words else float("nan")
        result[name] = means
    result["lsd_input"], result["lsd_output"] = result["input"]["lsd"], result["output"]["lsd"]
    result["lsd_ratio"] = result["lsd_output"] / result["lsd_input"]
    result["kept_band_change_db"] = result["output"]["kept_band_change_db"]
    result["artefacts"] = {name: metrics.mean_where_defined([getattr(s.artefacts, name) for s in scores]) for name in Artefacts.__dataclass_fields__ if name != "shortfall_db"}
    result["artefacts"]["deepest_notch_db"], result["artefacts"]["deepest_notch_hz"] = deepest_notch(np.mean([s.artefacts.shortfall_db for s in scores], axis=0))
    return result


def format_summary(result: dict) -> str:
    """The summary as a small table: one row per signal."""
    columns = ("lsd", "lsd_high", "kept_band_change_db", "intact_band_change_db", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "wer")
    lines = [f"{result['files']} files, {result['reference_words']} words; LSD ratio output/input {result['lsd_ratio']:.4f}",
             f"{'':9}" + " ".join(f"{c:>20}" for c in columns)]
    lines += [f"{name:9}" + " ".join(f"{result[name][c]:20.4f}" for c in columns) for name in SIGNALS]
    lines.append("output artefacts: " + " ".join(f"{k}={v:.3f}" for k, v in result["artefacts"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakup_fx.eval.bwe", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/data/speech_48k/ravdess"), help="folder of actorNN/ folders")
    parser.add_argument("--weights", type=Path, help="score this model file alone instead of the preset's chain")
    parser.add_argument("--preset", default="bandwidth-extension", help="preset whose chain extends (default: bandwidth-extension)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--limit", type=int, help="score only the first N validation files")
    parser.add_argument("--json", type=Path, help="also write per-file scores and the summary here")
    parser.add_argument("--no-quality", action="store_true", help="skip DNSMOS and the word check (spectral figures only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _, files = split_by_actor(args.data_dir)
        files = files[: args.limit] if args.limit else files
        extend = model_extender(args.weights) if args.weights else preset_extender(args.preset, args.device)
        scores = evaluate(files, extend, quality=not args.no_quality)
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    result = summary(scores)
    logger.info("actors %s:\n%s", VALIDATION_ACTORS, format_summary(result))
    if args.json:
        from speakup_fx.atomic import atomic_write

        with atomic_write(args.json) as temporary:
            Path(temporary).write_text(json.dumps({"summary": result, "files": [asdict(s) for s in scores]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
