"""``SpeakUp(enhancer_weights=...)``: the product path running another enhancer weights file, checked when made."""

import shutil

import numpy as np
import pytest
import synthetic
import torch

from speakup_fx import SpeakUp
from speakup_fx.runtime.weights import WeightsError, default_weights, load_model, save_weights

RATE = 48_000


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A byte copy of the shipped enhancer, and the shipped enhancer with one tensor halved."""
    folder = tmp_path_factory.mktemp("weights")
    shutil.copyfile(default_weights("enhancer"), folder / "copy.safetensors")
    _, model = load_model(default_weights("enhancer"))
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    save_weights(model, folder / "other.safetensors")
    return folder / "copy.safetensors", folder / "other.safetensors"


def test_a_copy_of_the_shipped_weights_sounds_the_same_and_other_weights_do_not(weights):
    copy, other = weights
    audio = synthetic.noisy_speech(1.0, RATE, snr_db=5.0, seed=3)
    shipped = SpeakUp("restore")(audio, RATE)
    assert np.array_equal(SpeakUp("restore", enhancer_weights=copy)(audio, RATE), shipped)  # one process, one code path
    changed = SpeakUp("restore", enhancer_weights=other)(audio, RATE)
    assert np.sqrt(np.mean((changed - shipped) ** 2)) > 0.01 * np.sqrt(np.mean(shipped**2))
    assert f"enhancer_weights={str(other)!r}" in repr(SpeakUp("restore", enhancer_weights=other))


def test_weights_that_cannot_serve_are_refused_when_the_effect_is_made(tmp_path):
    with pytest.raises(WeightsError, match="holds a 'bandwidth_extension' model, not 'enhancer'"):
        SpeakUp("restore", enhancer_weights=default_weights("bandwidth_extension"))
    with pytest.raises(WeightsError, match="no file"):
        SpeakUp("restore", enhancer_weights=tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="enhancer_weights: the 'classic' engine runs no model"):
        SpeakUp("podcast", engine="classic", enhancer_weights=default_weights("enhancer"))
