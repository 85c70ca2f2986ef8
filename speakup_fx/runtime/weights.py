"""The weights format of every model SpeakUp FX ships, and the one loader that rebuilds any registered kind.

A weights file is safetensors (no pickle). Its metadata holds ``format_version``, ``kind`` (what the
model does: ``enhancer``, ``bandwidth_extension``, ...), ``architecture`` (which registered class),
``config`` (that class's config as JSON) and ``sha256``, a hash of every tensor's name, dtype,
shape and bytes that the loader verifies, so a flipped byte is caught before it reaches audio;
every tensor must also be finite. Any other metadata (training step, data) is carried along.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from speakup_fx.atomic import atomic_write
from speakup_fx.runtime.registry import REGISTRY, Architecture, architecture_of

logger = logging.getLogger(__name__)

FORMAT_VERSION = "2"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
RESERVED_KEYS = ("format_version", "kind", "architecture", "config", "sha256")


class WeightsError(ValueError):
    """A weights file that is missing, foreign, corrupt or does not match its own description."""


def default_weights(kind: str) -> Path:
    """The shipped weights file of ``kind``."""
    return WEIGHTS_DIR / f"{kind}.safetensors"


def content_hash(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_weights(
    model: nn.Module, path: str | Path, extra_metadata: dict[str, str] | None = None, dtype: torch.dtype = torch.float16
) -> None:
    """Write ``model`` (a registered class) to ``path`` with its kind, config and content hash (atomically)."""
    architecture = architecture_of(model)
    extra = dict(extra_metadata or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra_metadata may not set {clash}")
    tensors = {name: value.detach().cpu().to(dtype).contiguous() for name, value in model.state_dict().items()}
    bad = [name for name, value in tensors.items() if not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"model has non-finite values in {bad[:5]} (after conversion to {dtype})")
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": architecture.kind,
        "architecture": architecture.name,
        "config": json.dumps(dataclasses.asdict(model.config)),
        "sha256": content_hash(tensors),
        **extra,
    }
    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file describes, read from its header alone (no tensors loaded)."""

    path: Path
    architecture: Architecture
    config: Any
    metadata: dict[str, str]

    @property
    def kind(self) -> str:
        return self.architecture.kind


def _config_from_json(path: Path, config_class: type, text: str) -> Any:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise WeightsError(f"weights {path}: config is not JSON ({error})") from None
    if not isinstance(values, dict):
        raise WeightsError(f"weights {path}: config is not a JSON object")
    hints = typing.get_type_hints(config_class)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise WeightsError(f"weights {path}: config has keys {unknown} that {config_class.__name__} does not know")
    converted = {
        key: tuple(value) if isinstance(value, list) and typing.get_origin(hints[key]) is tuple else value
        for key, value in values.items()
    }
    try:
        return config_class(**converted)
    except (TypeError, ValueError) as error:
        raise WeightsError(f"weights {path}: config does not fit {config_class.__name__} ({error})") from None


def read_info(path: str | Path) -> WeightsInfo:
    """The kind, architecture and config of ``path`` from its header; ``WeightsError`` when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights: no file {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = dict(file.metadata() or {})
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"weights {path}: not a readable safetensors file ({error})") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"weights {path}: format_version {metadata.get('format_version')!r}, expected {FORMAT_VERSION!r} "
            "(not a SpeakUp FX weights file, or from another version)"
        )
    missing = [key for key in RESERVED_KEYS if key not in metadata]
    if missing:
        raise WeightsError(f"weights {path}: metadata lacks {missing}")
    key = (metadata["kind"], metadata["architecture"])
    if key not in REGISTRY:
        raise WeightsError(f"weights {path}: unknown model {key[0]!r}/{key[1]!r} (known: {sorted(REGISTRY)})")
    architecture = REGISTRY[key]
    return WeightsInfo(path, architecture, _config_from_json(path, architecture.config_class, metadata["config"]), metadata)


def build_model(info: WeightsInfo, device: torch.device | str = "cpu") -> nn.Module:
    """A model of ``info``'s architecture and config with fresh parameters on ``device``."""
    return info.architecture.model_class(info.config).to(device)


def describe_model(info: WeightsInfo) -> nn.Module:
    """``info``'s model built on the ``meta`` device: its shape and latency, without allocating or loading weights."""
    with torch.device("meta"):
        return info.architecture.model_class(info.config)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[WeightsInfo, nn.Module]:
    """Rebuild the model stored in ``path`` on ``device`` (float32, eval mode), after checking its integrity."""
    info = read_info(path)
    try:
        tensors = load_file(str(info.path))
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"weights {info.path}: tensors cannot be read ({error})") from None
    if content_hash(tensors) != info.metadata["sha256"]:
        raise WeightsError(f"weights {info.path}: content hash mismatch (the file is corrupt or was altered)")
    bad = [name for name, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise WeightsError(f"weights {info.path}: non-finite values in {bad[:5]}")
    model = build_model(info)
    try:
        model.load_state_dict({name: value.float() for name, value in tensors.items()})
    except RuntimeError as error:
        raise WeightsError(f"weights {info.path}: tensors do not match the stored config ({error})") from None
    logger.info("loaded %s/%s from %s (%d parameters) on %s", info.kind, info.architecture.name, info.path,
                sum(p.numel() for p in model.parameters()), device)
    return info, model.to(device).eval()
