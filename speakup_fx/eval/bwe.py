"""Score bandwidth extension on held-out speakers: ``python -m speakup_fx.eval.bwe --data-dir DIR``.

For each 48 kHz file of the validation actors (never trained on): the input is the file through
the project resampler to 16 kHz; the baseline is that input resampled back to 48 kHz; the output is
the ``bandwidth-extension`` preset's chain run on the input at 16 kHz with 48 kHz out (the path
``speakup bounce in_16k.wav -o out.wav --preset bandwidth-extension --sample-rate 48000`` takes),
or, with ``--weights``, the model file alone. Reported: log-spectral distance (``ssr_eval``'s) of
baseline and output against the original, their ratio, and the mean per-frame change of the
0-7.5 kHz band from baseline to output in dB. Exit codes: 0 done; 2 bad arguments or data.
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
from speakup_fx.eval.metrics import band_energy_change_db, log_spectral_distance

logger = logging.getLogger(__name__)

KEPT_BAND_HZ = (0.0, 7_500.0)
"""The band the extension must leave as it found it."""

Extender = Callable[[np.ndarray], np.ndarray]
"""1-D float32 at 16 kHz -> 1-D float32 at 48 kHz, aligned, three times as long."""


@dataclass(frozen=True)
class FileScore:
    path: str
    lsd_input: float
    lsd_output: float
    kept_band_change_db: float


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


def score_file(speech: np.ndarray, extend: Extender) -> tuple[float, float, float]:
    """``(LSD of the baseline, LSD of the output, kept-band change dB)`` for 48 kHz ``speech`` (1-D)."""
    frames = len(speech) // 3 * 3
    target = speech[:frames]
    narrow = resample(target, TARGET_SAMPLE_RATE, INPUT_SAMPLE_RATE)
    baseline = resample(narrow, INPUT_SAMPLE_RATE, TARGET_SAMPLE_RATE)
    output = np.asarray(extend(narrow), dtype=np.float32).reshape(-1)
    if output.shape != target.shape:
        raise ValueError(f"the extender returned {output.shape[0]} frames for {target.shape[0]}")
    return (
        log_spectral_distance(target, baseline, TARGET_SAMPLE_RATE),
        log_spectral_distance(target, output, TARGET_SAMPLE_RATE),
        band_energy_change_db(baseline, output, TARGET_SAMPLE_RATE, *KEPT_BAND_HZ),
    )


def evaluate(files: list[Path], extend: Extender) -> list[FileScore]:
    scores = []
    for path in files:
        lsd_input, lsd_output, change_db = score_file(load_mono(path, TARGET_SAMPLE_RATE), extend)
        scores.append(FileScore(str(path), lsd_input, lsd_output, change_db))
        logger.debug("%s: LSD %.3f -> %.3f, 0-7.5 kHz %.3f dB", path, lsd_input, lsd_output, change_db)
    return scores


def summary(scores: list[FileScore]) -> dict[str, float]:
    lsd_input = float(np.mean([s.lsd_input for s in scores]))
    lsd_output = float(np.mean([s.lsd_output for s in scores]))
    return {
        "files": len(scores),
        "lsd_input": lsd_input,
        "lsd_output": lsd_output,
        "lsd_ratio": lsd_output / lsd_input,
        "kept_band_change_db": float(np.mean([s.kept_band_change_db for s in scores])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakup_fx.eval.bwe", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/data/speech_48k/ravdess"), help="folder of actorNN/ folders")
    parser.add_argument("--weights", type=Path, help="score this model file alone instead of the preset's chain")
    parser.add_argument("--preset", default="bandwidth-extension", help="preset whose chain extends (default: bandwidth-extension)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--limit", type=int, help="score only the first N validation files")
    parser.add_argument("--json", type=Path, help="also write per-file scores and the summary here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _, files = split_by_actor(args.data_dir)
        files = files[: args.limit] if args.limit else files
        extend = model_extender(args.weights) if args.weights else preset_extender(args.preset, args.device)
        scores = evaluate(files, extend)
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    result = summary(scores)
    logger.info("actors %s: %s", VALIDATION_ACTORS, " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if args.json:
        from speakup_fx.atomic import atomic_write

        with atomic_write(args.json) as temporary:
            Path(temporary).write_text(json.dumps({"summary": result, "files": [asdict(s) for s in scores]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
