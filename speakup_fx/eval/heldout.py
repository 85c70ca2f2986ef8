"""Paired test sets from held-out speech: the validation files degraded with fixed draws.

``python -m speakup_fx.eval.heldout --config configs/cpu_2h.toml --out DIR`` writes
``DIR/eval/NAME/{noisy,clean}/*.flac`` for every condition of ``CONDITIONS`` and the 48 kHz room set
``ROOM_48K``; score them with ``speakup eval --data-dir DIR``. The speech was never trained on
(``is_validation_file``; RAVDESS's validation actors); noises and rooms come from the training banks,
so this measures matched conditions.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from speakup_fx.atomic import atomic_write
from speakup_fx.data.bwe import split_by_actor
from speakup_fx.data.corpus import load_mono, load_real_rirs
from speakup_fx.data.degrade import Degrader
from speakup_fx.eval.metrics import si_sdr_db
from speakup_fx.train.config import Config, load_config
from speakup_fx.train.loop import build_degrader, split_speech

logger = logging.getLogger(__name__)

_ROOM = {
    "clean_only_prob": 0.0, "noise_prob": 1.0, "snr_db_range": (0.0, 20.0), "reverb_prob": 1.0,
    "eq_prob": 0.0, "bandlimit_prob": 0.0, "clip_prob": 0.0, "codec_prob": 0.0,
}
CONDITIONS: dict[str, dict[str, object]] = {
    # a room (measured or simulated, RT60/DRR reshaped as in training) and noise at 0-20 dB SNR, nothing else
    "heldout_room": _ROOM,
    # the same pairs scored against the room's direct sound instead of the dry source (``Degrader.direct_room``)
    "heldout_room_direct": _ROOM,
    # noise always (SI-SDR needs a degraded input), then the training mix of rooms, EQ, band limits, clipping, codecs
    "heldout_phone": {"clean_only_prob": 0.0, "noise_prob": 1.0},
}

REFERENCES: dict[str, str] = {"heldout_room_direct": "direct"}
"""The target kind each condition writes as its clean reference; 'dry' unless named here."""

ROOM_48K = "heldout_room_48k"
"""Reverberant full-band speech, no noise: RAVDESS's validation actors (``data.bwe.VALIDATION_ACTORS``; the enhancer
trains on 16 kHz speech, none of it RAVDESS) at 48 kHz through the measured rooms (the simulated bank is 16 kHz
only), each reshaped to a training RT60 and DRR so that they span ordinary rooms, not only halls. The reference is
the room's direct sound (as ``heldout_room_direct``'s): at 48 kHz a measured direct sound carries its loudspeaker
and microphone over about a millisecond (10-19 dB more energy than the unit impulse of the dry speech), which
against the dry speech would dominate SI-SDR and level whatever a model did to the room."""

ROOM_48K_SAMPLE_RATE = 48_000
ROOM_48K_FILES = 32
"""Files of ``ROOM_48K``, drawn from the validation actors' with the set's seed."""

PEAK_LIMIT = 0.99
"""Pairs whose noisy or clean peak exceeds this are scaled down together (FLAC is fixed point)."""


def _write_pairs(degrader: Degrader, speech: list[Path], folder: Path, seed: int, reference: str) -> None:
    """``folder/{noisy,clean}/NAME.flac`` for each speech file, degraded with the draw ``(seed, index)``."""
    rate = degrader.config.sample_rate
    for kind in ("noisy", "clean"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(speech):
        rng = np.random.default_rng([seed, index])
        clean = load_mono(path, rate)
        params = degrader.draw(rng)
        noisy, (target,) = degrader.degrade(clean, params, (reference,))
        scale = min(1.0, PEAK_LIMIT / max(float(np.abs(noisy).max()), float(np.abs(target).max()), 1e-9))
        for kind, audio in (("noisy", noisy), ("clean", target)):
            with atomic_write(folder / kind / f"{path.stem}.flac") as temporary:
                sf.write(temporary, audio * scale, rate, subtype="PCM_24")


def write_heldout_sets(config: Config, out_dir: str | Path, seed: int = 1234) -> dict[str, int]:
    """Write every condition's pairs under ``out_dir/eval``; returns pairs written per condition."""
    _, held_out = split_speech(config)
    if not held_out:
        raise ValueError(f"data_dir {config.data.data_dir}: no held-out speech files")
    written = {}
    for name, overrides in CONDITIONS.items():
        degrader = build_degrader(config, replace(config.degrade, **overrides))
        folder = Path(out_dir) / "eval" / name
        _write_pairs(degrader, [row.path for row in held_out], folder, seed, REFERENCES.get(name, "dry"))
        written[name] = len(held_out)
        logger.info("%s: %d pairs in %s", name, len(held_out), folder)
    return written


def write_room_48k_set(config: Config, out_dir: str | Path, seed: int = 1234, files: int = ROOM_48K_FILES) -> int:
    """Write ``ROOM_48K`` under ``out_dir/eval`` from ``data_dir/speech_48k/ravdess``; returns the pairs written."""
    rate, data_dir = ROOM_48K_SAMPLE_RATE, config.data.data_dir
    _, validation = split_by_actor(Path(data_dir) / "speech_48k" / "ravdess")
    chosen = np.random.default_rng(seed).choice(len(validation), min(files, len(validation)), replace=False)
    rirs = load_real_rirs(data_dir, rate)
    if not rirs:
        raise ValueError(f"data_dir {data_dir}: no measured room responses for {ROOM_48K}")
    overrides = dict(_ROOM, noise_prob=0.0, rt60_reshape_prob=1.0, drr_reshape_prob=1.0, sample_rate=rate)
    degrader = Degrader([], rirs, len(rirs), replace(config.degrade, **overrides))
    folder = Path(out_dir) / "eval" / ROOM_48K
    _write_pairs(degrader, [validation[i] for i in sorted(chosen)], folder, seed, "direct")
    logger.info("%s: %d pairs in %s", ROOM_48K, len(chosen), folder)
    return len(chosen)


def room_target_bounds(config: Config, early_reflections_s: float, late_decay_s: float, seed: int = 1234) -> dict[str, float]:
    """Mean SI-SDR (dB) against the room set's reference (the dry speech) of its noisy input, of the same speech
    through the whole room without noise, and through the early part of the room only (the 'early' training
    target with these settings): what a perfect model trained toward each target would score."""
    _, held_out = split_speech(config)
    overrides = dict(CONDITIONS["heldout_room"], early_reflections_s=early_reflections_s, late_decay_s=late_decay_s)
    degrader = build_degrader(config, replace(config.degrade, **overrides))
    scores: dict[str, list[float]] = {"noisy": [], "reverberant": [], "early": []}
    for index, row in enumerate(held_out):  # the draws of write_heldout_sets
        clean = load_mono(row.path, config.degrade.sample_rate)
        params = degrader.draw(np.random.default_rng([seed, index]))
        noisy, (dry, reverberant, early) = degrader.degrade(clean, params, ("dry", "reverberant", "early"))
        for name, audio in (("noisy", noisy), ("reverberant", reverberant), ("early", early)):
            scores[name].append(si_sdr_db(dry, audio))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m speakup_fx.eval.heldout", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config (data, banks, degradations)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write eval/NAME/{noisy,clean} into")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the fixed draws")
    parser.add_argument(
        "--target-bounds", nargs=2, type=float, metavar=("EARLY_S", "LATE_DECAY_S"),
        help="instead of writing, log the room set's SI-SDR bounds for an 'early' target with these settings (room_target_bounds)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.target_bounds:
        bounds = room_target_bounds(load_config(args.config), *args.target_bounds, seed=args.seed)
        logger.info("heldout_room mean SI-SDR vs the dry reference: %s", ", ".join(f"{k} {v:.2f} dB" for k, v in bounds.items()))
        return 0
    config = load_config(args.config)
    write_heldout_sets(config, args.out, args.seed)
    write_room_48k_set(config, args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
