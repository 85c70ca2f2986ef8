"""Export a training checkpoint's generator to the shipped safetensors format."""

from __future__ import annotations

from pathlib import Path

from speakup_fx.models.streaming import StreamingGenerator
from speakup_fx.runtime.weights import save_weights
from speakup_fx.train.checkpoint import load_checkpoint
from speakup_fx.train.config import Config, from_dict


def export_checkpoint(checkpoint_path: str | Path, weights_path: str | Path) -> int:
    """Write the streaming generator of ``checkpoint_path`` to ``weights_path``; returns the checkpoint's step."""
    payload = load_checkpoint(checkpoint_path)
    config = from_dict(Config, payload["config"])
    if config.generator != "streaming":
        raise ValueError(f"checkpoint {checkpoint_path}: generator {config.generator!r} is not streamable; only 'streaming' ships")
    generator = StreamingGenerator(config.streaming)
    generator.load_state_dict(payload["generator"])
    save_weights(generator, weights_path, {"step": str(payload["step"])})
    return payload["step"]
