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


def test_bounce_sample_rate_is_the_engines_own_conversion(tmp_path):
    audio = noisy_speech(0.5, 16000, channels=1)
    source, out = tmp_path / "in16k.wav", tmp_path / "out48k.wav"
    soundfile.write(source, audio.T, 16000, subtype="FLOAT")
    args = ["bounce", str(source), "-o", str(out), "--preset", "restore", "--sample-rate", "48000", "--bit-depth", "32f"]
    assert main(args) == 0
    bounced, rate = soundfile.read(out, always_2d=True, dtype="float32")
    from speakup_fx import SpeakUp

    expected = SpeakUp(preset="restore")(audio, 16000, output_sample_rate=48000)
    assert rate == 48000 and bounced.shape == (3 * audio.shape[1], 1)
    np.testing.assert_allclose(bounced.T, expected, atol=1e-5)
