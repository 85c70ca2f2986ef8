"""The ``speakup import-speech`` command: clean speech from elsewhere as a training folder (``data.extra_speech``).

Every file under the given files and folders (any format ``media.AudioReader`` decodes, e.g. the G.722 prompts
of Debian's ``asterisk-core-sounds-*-g722``) is decoded, its first channel resampled to the training rate, and
consecutive files (in path order) are joined with a short silence into clips of at most ``--clip-s``, as the
shared data's ``vctk_ptdb`` clips are. The clips are written as FLAC with a ``manifest.csv`` in the shared data's
format, plus ``band_hz`` when the source's band ends early (a codec's): training then band-limits those
examples' input and targets alike (``data.dataset.DegradedSpeech``). Inputs are only read; the manifest is
written last, so a folder without one is an unfinished import. Exit 1 when some inputs could not be decoded
(the others are imported), 2 when none could or the output folder already holds an import.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from speakup_fx.atomic import atomic_write
from speakup_fx.data.corpus import ManifestRow, write_manifest
from speakup_fx.dsp.resample import resample
from speakup_fx.media import AudioReader, MediaError

logger = logging.getLogger(__name__)

_BLOCK_FRAMES = 65_536


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="speech files and folders (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the clips and manifest.csv")
    parser.add_argument("--source", required=True, help="name of the source in the manifest (and the clips' names)")
    parser.add_argument("--licence", required=True, help="the source's licence, kept with every row (model cards list it)")
    parser.add_argument("--band-hz", type=float, help="where the source's band ends, when below the Nyquist frequency (a codec's)")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="rate of the clips, Hz (the training rate)")
    parser.add_argument("--clip-s", type=float, default=10.0, help="longest joined clip, s (a longer file is a clip alone)")
    parser.add_argument("--gap-s", type=float, default=0.2, help="silence between joined files, s")


def run(args: argparse.Namespace) -> int:
    try:
        written, failed = import_speech(
            args.inputs, args.out, args.source, args.licence, args.band_hz, args.sample_rate, args.clip_s, args.gap_s
        )
    except (ValueError, FileExistsError, MediaError) as error:
        logger.error("%s", error)
        return 2
    logger.info("%d clips in %s; %d inputs could not be decoded", written, args.out, failed)
    return 1 if failed else 0


def input_files(inputs: list[Path]) -> list[Path]:
    """The files named and those under the folders named, each folder's in path order."""
    files = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    return files


def decode_mono(path: Path, sample_rate: int) -> np.ndarray:
    """``path``'s first channel at ``sample_rate``, float32; ``MediaError`` when it cannot be decoded or is truncated."""
    with AudioReader(path) as reader:
        blocks = [block[0] for block in reader.blocks(_BLOCK_FRAMES)]
        if reader.truncation() is not None:
            raise MediaError(f"{path}: {reader.truncation()}")
        file_rate = reader.sample_rate
    if not blocks:
        raise MediaError(f"{path}: no audio")
    audio = np.concatenate(blocks)
    return resample(audio, file_rate, sample_rate) if file_rate != sample_rate else audio


def import_speech(
    inputs: list[Path], out: Path, source: str, licence: str, band_hz: float | None = None,
    sample_rate: int = 16_000, clip_s: float = 10.0, gap_s: float = 0.2,
) -> tuple[int, int]:
    """Write the clips and ``out/manifest.csv``; returns (clips written, inputs that could not be decoded)."""
    if band_hz is not None and not 0 < band_hz < sample_rate / 2:
        raise ValueError(f"--band-hz: expected 0 < band < {sample_rate / 2:g} Hz, got {band_hz}")
    if clip_s <= 0 or gap_s < 0:
        raise ValueError(f"--clip-s must be positive and --gap-s not negative, got {clip_s} and {gap_s}")
    if (out / "manifest.csv").exists():
        raise FileExistsError(f"{out}: already holds an import (manifest.csv); choose a new folder")
    files = input_files(inputs)
    out.mkdir(parents=True, exist_ok=True)
    gap = np.zeros(round(gap_s * sample_rate), np.float32)
    rows, clip, failed = [], [], 0

    def write_clip() -> None:
        audio = np.concatenate(clip[:-1])  # the last part is a gap
        path = out / f"{source}_{len(rows):05d}.flac"
        with atomic_write(path) as temporary:
            sf.write(temporary, audio, sample_rate, format="FLAC", subtype="PCM_16")
        rows.append(ManifestRow("train", "speech", source, path, len(audio) / sample_rate, sample_rate, licence, band_hz))
        clip.clear()

    for path in files:
        try:
            speech = decode_mono(path, sample_rate)
        except MediaError as error:
            logger.warning("skipped: %s", error)
            failed += 1
            continue
        if clip and sum(map(len, clip)) + len(speech) > clip_s * sample_rate:
            write_clip()
        clip += [speech, gap]
    if clip:
        write_clip()
    if not rows:
        raise ValueError(f"no input could be decoded ({failed} tried)")
    write_manifest(out, rows)
    return len(rows), failed
