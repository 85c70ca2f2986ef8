"""Load the shipped enhancement model and run it whole-file or block by block.

Weights are a float16 safetensors file (computed in float32) whose metadata holds ``format_version``, the
generator name and its config as JSON (no pickle). ``load_enhancer()`` with no
path loads ``speakup_fx/weights/enhancer.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from speakup_fx.models.streaming import StreamingGenerator, StreamingGeneratorConfig

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT_VERSION = "1"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "enhancer.safetensors"
_ENHANCE_CHUNK_HOPS = 1000
"""Hops per forward pass in ``enhance`` (bounds memory on long files; the result does not depend on it)."""


def save_weights(generator: StreamingGenerator, path: str | Path, extra_metadata: dict[str, str] | None = None) -> None:
    """Write ``generator`` as float16 safetensors with its config in the metadata (temp file + rename)."""
    path = Path(path)
    metadata = {
        "format_version": WEIGHTS_FORMAT_VERSION,
        "generator": "streaming",
        "config": json.dumps(dataclasses.asdict(generator.config)),
        **(extra_metadata or {}),
    }
    tensors = {k: v.detach().cpu().to(torch.float16).contiguous() for k, v in generator.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(path)


def _read_config(path: Path) -> StreamingGeneratorConfig:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format_version") != WEIGHTS_FORMAT_VERSION or metadata.get("generator") != "streaming":
        raise ValueError(
            f"weights {path}: format_version {metadata.get('format_version')!r} / generator {metadata.get('generator')!r}, "
            f"expected {WEIGHTS_FORMAT_VERSION!r} / 'streaming'"
        )
    values = json.loads(metadata["config"])
    names = {f.name for f in dataclasses.fields(StreamingGeneratorConfig)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"weights {path}: unknown config keys {sorted(unknown)}")
    return StreamingGeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class EnhancerStream:
    """Streaming state: ``process(block)`` takes ``(channels, k * 160)`` and returns the same shape, delayed by ``latency_samples``."""

    def __init__(self, enhancer: Enhancer):
        self._enhancer = enhancer
        self._state: dict[str, torch.Tensor] | None = None

    @property
    def latency_samples(self) -> int:
        return self._enhancer.latency_samples

    def reset(self) -> None:
        """Forget the past, as if newly created."""
        self._state = None

    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        """Enhance the next block; never mutates ``block``."""
        x = self._enhancer._check(block, "block")
        hop = self._enhancer.hop_samples
        if x.shape[1] % hop or x.shape[1] == 0:
            raise ValueError(f"block: frames must be a positive multiple of {hop}, got {x.shape[1]}")
        generator = self._enhancer.generator
        if self._state is None:
            self._state = generator.initial_state(x.shape[0])
        elif self._state["analysis"].shape[0] != x.shape[0]:
            raise ValueError(f"block: {x.shape[0]} channels, the stream started with {self._state['analysis'].shape[0]}")
        y, self._state = generator.forward_stream(torch.from_numpy(x)[:, None].to(self._enhancer.device), self._state)
        return y[:, 0].cpu().numpy().astype(np.float32)


class Enhancer:
    """The 16 kHz denoising/dereverberation model; arrays are float32 ``(channels, frames)``, channels run as a batch."""

    sample_rate = 16_000

    def __init__(self, generator: StreamingGenerator, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()

    @property
    def latency_samples(self) -> int:
        """Delay of ``stream()`` output, in frames at 16 kHz."""
        return self.generator.latency_samples

    @property
    def hop_samples(self) -> int:
        return self.generator.config.hop_samples

    def _check(self, audio: np.ndarray, name: str) -> np.ndarray:
        if not isinstance(audio, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array, got {type(audio).__name__}")
        if audio.ndim != 2 or audio.shape[0] < 1:
            raise ValueError(f"{name}: expected shape (channels, frames), got {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating):
            raise TypeError(f"{name}: expected float samples, got {audio.dtype}")
        if not np.all(np.isfinite(audio)):
            raise ValueError(f"{name}: contains NaN or infinity")
        return np.ascontiguousarray(audio, dtype=np.float32)

    def stream(self) -> EnhancerStream:
        """A new streaming state (channels fixed by the first block)."""
        return EnhancerStream(self)

    def enhance(self, audio: np.ndarray) -> np.ndarray:
        """Whole signal ``(channels, frames)`` -> enhanced, same shape, aligned (latency removed)."""
        x = self._check(audio, "audio")
        frames, hop, latency = x.shape[1], self.hop_samples, self.latency_samples
        if frames == 0:
            return x.copy()
        padded = np.pad(x, ((0, 0), (0, latency + (-(frames + latency)) % hop)))
        stream = self.stream()
        chunk = _ENHANCE_CHUNK_HOPS * hop
        out = np.concatenate([stream.process(padded[:, i : i + chunk]) for i in range(0, padded.shape[1], chunk)], axis=1)
        return out[:, latency : latency + frames]


def load_enhancer(weights_path: str | Path | None = None, device: str | None = None) -> Enhancer:
    """The model from ``weights_path`` (default: the shipped weights); FileNotFoundError / ValueError when missing or corrupt."""
    path = Path(weights_path) if weights_path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"weights: no file {path}")
    try:
        config = _read_config(path)
        tensors = load_file(str(path))
    except (SafetensorError, json.JSONDecodeError, KeyError, TypeError, OSError) as error:
        raise ValueError(f"weights {path}: corrupt or not an enhancer file ({error})") from error
    generator = StreamingGenerator(config)
    try:
        generator.load_state_dict(tensors)
    except RuntimeError as error:
        raise ValueError(f"weights {path}: tensors do not match the stored config ({error})") from error
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("loaded enhancer %s (%d parameters) on %s", path, sum(p.numel() for p in generator.parameters()), device)
    return Enhancer(generator, device)
