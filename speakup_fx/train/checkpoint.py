"""Checkpoints: written atomically (temp file + rename), loaded with ``weights_only=True``, versioned, config embedded."""

from __future__ import annotations

from pathlib import Path

import torch

from speakup_fx.atomic import atomic_write

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` (tensors, state dicts, plain config dict, counters) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        torch.save({"format_version": FORMAT_VERSION, **payload}, temporary)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely; ValueError on a wrong format version or a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ValueError(f"checkpoint {path}: cannot be read ({error})") from error
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path}: format_version {payload.get('format_version') if isinstance(payload, dict) else None}, expected {FORMAT_VERSION}")
    data = payload.get("config", {}).get("data", {})
    if isinstance(data.get("teacher_shards"), str):  # written when it named one folder
        data["teacher_shards"] = [data["teacher_shards"]] if data["teacher_shards"] else []
    return payload
