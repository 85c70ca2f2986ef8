"""Export a training checkpoint's generator to the shipped safetensors format."""

from __future__ import annotations

from pathlib import Path

from speakup_fx.runtime.weights import save_weights
from speakup_fx.train.loop import load_trained_generator


def export_checkpoint(checkpoint_path: str | Path, weights_path: str | Path) -> int:
    """Write the generator of ``checkpoint_path`` (its EMA weights when kept) to ``weights_path``; returns the step.

    Only streamable generators (registered with the runtime) can ship; others are a ``ValueError``.
    """
    generator, payload = load_trained_generator(checkpoint_path)
    save_weights(generator, weights_path, {"step": str(payload["step"])})
    return payload["step"]
