"""Export a training checkpoint's generator to the shipped safetensors format."""

from __future__ import annotations

from pathlib import Path

import torch

from speakup_fx.runtime.weights import load_model, save_weights
from speakup_fx.train.loop import load_trained_generator


def export_checkpoint(checkpoint_path: str | Path, weights_path: str | Path, average_with: str | Path | None = None) -> int:
    """Write the generator of ``checkpoint_path`` (its EMA weights when kept) to ``weights_path``; returns the step.

    ``average_with``: a weights file of the same architecture and config (e.g. the weights the run was
    fine-tuned from); the exported weights are then the half-and-half average of both (a uniform "model
    soup", Wortsman et al. 2022), computed in float32, and the metadata names the other file's hash.
    Only streamable generators (registered with the runtime) can ship; others are a ``ValueError``.
    """
    generator, payload = load_trained_generator(checkpoint_path)
    metadata = {"step": str(payload["step"])}
    if average_with is not None:
        info, other = load_model(average_with)
        if type(other) is not type(generator) or other.config != generator.config:
            raise ValueError(f"--average-with {average_with}: its model ({type(other).__name__}, {other.config}) differs from the run's ({type(generator).__name__}, {generator.config})")
        theirs = other.state_dict()
        with torch.no_grad():
            for name, value in generator.state_dict().items():
                if value.is_floating_point():
                    value.copy_(0.5 * theirs[name] + 0.5 * value)
        metadata["averaged_with_sha256"] = info.metadata["sha256"]
    save_weights(generator, weights_path, metadata)
    return payload["step"]
