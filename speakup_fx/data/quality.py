"""Clean-speech filtering by a no-reference score, so "clean" targets that carry noise or room do not teach them.

Each speech file is scored once with DNSMOS P.835 (``eval.metrics.dnsmos``) at 16 kHz; the scores are
kept in a CSV in the training cache, keyed by a SHA-256 of the file's bytes, so a changed file is scored
again and a copy of the data (new paths or modification times, as on a fresh machine) is not. Ranks of a DDP run that score at once each write the same table atomically.
The scores of the shared training speech ship with the package (``SHIPPED_SCORES``, same format, paths relative
to the data folder): scoring its 2 h takes most of an hour on one CPU thread, and with the table every machine
filters on the same figures, whatever its ONNX runtime rounds.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from speakup_fx.atomic import atomic_write
from speakup_fx.data.corpus import ManifestRow, load_mono

logger = logging.getLogger(__name__)

SCORE_NAMES = ("sig", "bak", "ovrl")
"""The DNSMOS figures kept per file; ``bak`` is the one that sees background noise."""

CACHE_NAME = "clean_speech_dnsmos.csv"

SHIPPED_SCORES = Path(__file__).with_name(CACHE_NAME)
"""DNSMOS scores of the shared data's training speech, keyed by content (read before the cache)."""


def content_key(path: Path) -> str:
    """The SHA-256 of a file's bytes, which score tables are keyed by."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_scores(table: Path) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """A score table's ``{sha256: {sig, bak, ovrl}}`` and ``{sha256: path}`` (empty when there is no table)."""
    known: dict[str, dict[str, float]] = {}
    paths: dict[str, str] = {}  # for the reader of the table only
    if table.is_file():
        with table.open(newline="") as f:
            for r in csv.DictReader(f):
                known[r["sha256"]], paths[r["sha256"]] = {n: float(r[n]) for n in SCORE_NAMES}, r["path"]
    return known, paths


def clean_speech_scores(rows: Sequence[ManifestRow], cache_dir: str | Path, shipped: Path = SHIPPED_SCORES) -> dict[Path, dict[str, float]]:
    """DNSMOS ``{sig, bak, ovrl}`` of each row's file, computed for the files neither ``shipped`` nor the cache holds."""
    cache = Path(cache_dir) / CACHE_NAME
    known, _ = read_scores(shipped)
    cached, paths = read_scores(cache)
    known.update(cached)
    keys = {row.path: content_key(row.path) for row in rows}
    missing = [row for row in rows if keys[row.path] not in known]
    if missing:
        from speakup_fx.eval import metrics  # here: with every score known, training runs without the scorers installed (train/travel.py)

        logger.info("scoring %d clean speech files with DNSMOS (cached in %s)", len(missing), cache)
        for row in missing:
            scores = metrics.dnsmos(load_mono(row.path, metrics.METRIC_SAMPLE_RATE), metrics.METRIC_SAMPLE_RATE)
            known[keys[row.path]] = {n: round(getattr(scores, n), 4) for n in SCORE_NAMES}  # as the cache keeps them
            paths[keys[row.path]] = str(row.path)
        write_scores(cache, {key: scores for key, scores in known.items() if key in paths}, paths)
    return {row.path: known[keys[row.path]] for row in rows}


def write_scores(table: Path, scores: dict[str, dict[str, float]], paths: dict[str, str]) -> None:
    """Write a score table (``read_scores``'s format) atomically: ``{sha256: {sig, bak, ovrl}}``, ``{sha256: path}``."""
    table.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(table) as temporary, temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("sha256", "path") + SCORE_NAMES)
        writer.writerows((key, paths[key]) + tuple(figures[n] for n in SCORE_NAMES) for key, figures in sorted(scores.items()))


def keep_clean(rows: Sequence[ManifestRow], cache_dir: str | Path, min_bak: float) -> list[ManifestRow]:
    """The rows whose DNSMOS BAK (background-noise score, 1–5) is at least ``min_bak``; 0 keeps all unscored."""
    if min_bak <= 0:
        return list(rows)
    scores = clean_speech_scores(rows, cache_dir)
    kept = [row for row in rows if scores[row.path]["bak"] >= min_bak]
    logger.info("clean-speech filter DNSMOS BAK >= %.2f keeps %d of %d files", min_bak, len(kept), len(rows))
    return kept
