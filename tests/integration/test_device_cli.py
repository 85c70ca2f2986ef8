"""``--device`` end to end: the neural engine runs where it is told, and a bogus device is refused by every engine."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from synthetic import noisy_speech

from speakup_fx.cli import main


@pytest.fixture
def speech_file(tmp_path):
    path = tmp_path / "take.wav"
    soundfile.write(path, noisy_speech(0.5, 44100, channels=2).T, 44100, subtype="FLOAT")
    return path


def test_bounce_with_the_restore_preset_on_the_cpu_writes_enhanced_audio(speech_file, tmp_path):
    out = tmp_path / "clean.wav"
    assert main(["bounce", str(speech_file), "-o", str(out), "--preset", "restore", "--device", "cpu"]) == 0
    audio, rate = soundfile.read(out, always_2d=True)
    assert rate == 44100 and audio.shape == (22050, 2) and np.isfinite(audio).all() and np.abs(audio).max() > 0.01


@pytest.mark.parametrize("preset", ["restore", "podcast"])
def test_a_bogus_device_is_a_usage_error_whatever_the_engine(speech_file, tmp_path, preset, caplog):
    out = tmp_path / "clean.wav"
    assert main(["bounce", str(speech_file), "-o", str(out), "--preset", preset, "--device", "bogus"]) == 2
    assert "device" in caplog.text and not out.exists()


def test_eval_refuses_a_bogus_device(tmp_path, caplog):
    assert main(["eval", "--data-dir", str(tmp_path), "--device", "bogus"]) == 2
    assert "device" in caplog.text
