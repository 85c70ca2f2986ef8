"""A damaged weights file stops a bounce with a clear message (exit 2) before anything is written."""

from __future__ import annotations

import pytest
import soundfile
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from stage_doubles import save_tiny_enhancer
from synthetic import noisy_speech

from speakup_fx.cli import main
from speakup_fx.runtime import weights as weights_module
from speakup_fx.runtime.weights import content_hash


def poisoned(source, target):
    """``source`` with one weight set to NaN and a hash that matches (only the finiteness check can catch it)."""
    with safe_open(str(source), framework="pt") as file:
        metadata = dict(file.metadata())
    tensors = load_file(str(source))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(target), metadata={**metadata, "sha256": content_hash(tensors)})


def flipped(source, target):
    data = bytearray(source.read_bytes())
    data[-5] ^= 0x10
    target.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "message"), [(poisoned, "non-finite"), (flipped, "hash mismatch")])
def test_bounce_refuses_damaged_weights(tmp_path, monkeypatch, caplog, damage, message):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    damage(save_tiny_enhancer(tmp_path / "good.safetensors"), weights_dir / "enhancer.safetensors")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", weights_dir)
    source, out = tmp_path / "in.wav", tmp_path / "out" / "clean.wav"
    soundfile.write(source, noisy_speech(0.3, 16000).T, 16000)
    assert main(["bounce", str(source), "-o", str(out), "--preset", "restore"]) == 2
    assert message in caplog.text and "enhancer.safetensors" in caplog.text
    assert not out.parent.exists() or not any(out.parent.iterdir())
