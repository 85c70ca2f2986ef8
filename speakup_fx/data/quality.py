"""Clean-speech filtering by a no-reference score, so "clean" targets that carry noise or room do not teach them.

Each speech file is scored once with DNSMOS P.835 (``eval.metrics.dnsmos``) at 16 kHz; the scores are
kept in a CSV in the training cache, keyed by the file's path, size and modification time, so a changed
file is scored again. Ranks of a DDP run that score at once each write the same table atomically.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from speakup_fx.atomic import atomic_write
from speakup_fx.data.corpus import ManifestRow, load_mono
from speakup_fx.eval import metrics

logger = logging.getLogger(__name__)

SCORE_NAMES = ("sig", "bak", "ovrl")
"""The DNSMOS figures kept per file; ``bak`` is the one that sees background noise."""

_CACHE_NAME = "clean_speech_dnsmos.csv"
_KEY_FIELDS = ("path", "size_bytes", "mtime_ns")


def _file_key(path: Path) -> tuple[str, str, str]:
    stat = path.stat()
    return str(path), str(stat.st_size), str(stat.st_mtime_ns)


def clean_speech_scores(rows: Sequence[ManifestRow], cache_dir: str | Path) -> dict[Path, dict[str, float]]:
    """DNSMOS ``{sig, bak, ovrl}`` of each row's file, computed for the files the cache lacks."""
    cache = Path(cache_dir) / _CACHE_NAME
    known: dict[tuple[str, str, str], dict[str, float]] = {}
    if cache.is_file():
        with cache.open(newline="") as f:
            known = {tuple(r[k] for k in _KEY_FIELDS): {n: float(r[n]) for n in SCORE_NAMES} for r in csv.DictReader(f)}
    keys = {row.path: _file_key(row.path) for row in rows}
    missing = [row for row in rows if keys[row.path] not in known]
    if missing:
        logger.info("scoring %d clean speech files with DNSMOS (cached in %s)", len(missing), cache)
        for row in missing:
            scores = metrics.dnsmos(load_mono(row.path, metrics.METRIC_SAMPLE_RATE), metrics.METRIC_SAMPLE_RATE)
            known[keys[row.path]] = {n: round(getattr(scores, n), 4) for n in SCORE_NAMES}  # as the cache keeps them
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache) as temporary, temporary.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(_KEY_FIELDS + SCORE_NAMES)
            writer.writerows(key + tuple(scores[n] for n in SCORE_NAMES) for key, scores in sorted(known.items()))
    return {row.path: known[keys[row.path]] for row in rows}


def keep_clean(rows: Sequence[ManifestRow], cache_dir: str | Path, min_bak: float) -> list[ManifestRow]:
    """The rows whose DNSMOS BAK (background-noise score, 1–5) is at least ``min_bak``; 0 keeps all unscored."""
    if min_bak <= 0:
        return list(rows)
    scores = clean_speech_scores(rows, cache_dir)
    kept = [row for row in rows if scores[row.path]["bak"] >= min_bak]
    logger.info("clean-speech filter DNSMOS BAK >= %.2f keeps %d of %d files", min_bak, len(kept), len(rows))
    return kept
