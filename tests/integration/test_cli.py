"""The ``speakup presets`` and ``speakup bounce`` commands: output, errors and exit codes."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from synthetic import noisy_speech, speech_like

import speakup_fx.effect
from speakup_fx.cli import main
from speakup_fx.dsp.loudness import integrated_loudness_lufs, true_peak_dbtp
from speakup_fx.presets import list_presets

RATE = 48_000


class HalfGain:
    """Stands in for ``SpeakUp`` (same constructor): halves the level, 64 samples of latency."""

    latency_samples = 64

    def __init__(self, preset=None, **overrides):
        self.preset = preset
        self.reset()

    def reset(self):
        self._history = None

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True):
        if self._history is None:
            self._history = np.zeros((input_array.shape[0], self.latency_samples), np.float32)
        joined = np.concatenate([self._history, input_array], axis=1)
        self._history = joined[:, -self.latency_samples :]
        return joined[:, : input_array.shape[1]] * np.float32(0.5)


@pytest.fixture
def stand_in_effect(monkeypatch):
    monkeypatch.setattr(speakup_fx.effect, "SpeakUp", HalfGain)


def speakup(*args: str) -> subprocess.CompletedProcess:
    """Run the real command in a child process."""
    return subprocess.run([sys.executable, "-m", "speakup_fx.cli", *args], capture_output=True, text=True, timeout=300)


def wav(path, seconds=1.0, channels=1):
    soundfile.write(path, speech_like(seconds, RATE, channels).T, RATE)
    return path


def test_presets_list_names_every_preset_with_its_engine(capsys):
    assert main(["presets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_presets()
    assert any(line.split()[:2] == ["restore", "neural"] for line in lines)


def test_presets_show_prints_every_value_and_marks_the_preset_ones(capsys):
    assert main(["presets", "show", "broadcast-r128"]) == 0
    out = capsys.readouterr().out
    assert "target_lufs = -23  # *" in out
    assert "highpass_hz = 80  #  " in out
    assert "engine = 'classic'" in out and "[midi]" in out


def test_presets_show_refuses_an_unknown_preset(capsys):
    assert main(["presets", "show", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_a_bad_input_file_gives_a_one_line_error_and_exit_2(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(100))
    run = speakup("bounce", str(bad), "-o", str(tmp_path / "out.wav"))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert str(bad) in lines[0] and "cannot decode" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav"]


@pytest.mark.parametrize(
    "extra, problem",
    [
        (["--set", "denoise_amoun=0.5"], "override denoise_amoun: unknown parameter or option"),
        (["--set", "denoise_amount"], "expected KEY=VALUE"),
        (["--preset", "podcats"], "unknown preset 'podcats'"),
    ],
)
def test_bad_settings_exit_2_naming_the_problem(tmp_path, caplog, extra, problem):
    source = wav(tmp_path / "in.wav", 0.2)
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav"), *extra]) == 2
    assert problem in caplog.text
    assert not (tmp_path / "out.wav").exists()


def test_a_folder_with_a_corrupt_file_exits_1_after_processing_the_rest(tmp_path, caplog, stand_in_effect):
    folder = tmp_path / "in"
    (folder / "deep").mkdir(parents=True)
    wav(folder / "a.wav")
    (folder / "deep" / "b.flac").write_bytes(b"fLaC" + bytes(50))
    wav(folder / "deep" / "c.wav", channels=2)
    with caplog.at_level(logging.ERROR):
        code = main(["bounce", str(folder), "-o", str(tmp_path / "out"), "--set", "loudness=false"])
    assert code == 1
    assert "b.flac" in caplog.text and "1 of 3 files failed" in caplog.text
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.wav")) == [
        "a.wav",
        "deep/c.wav",
    ]
    assert soundfile.info(tmp_path / "out" / "deep" / "c.wav").channels == 2


def test_an_existing_output_needs_overwrite(tmp_path, caplog, stand_in_effect):
    source = wav(tmp_path / "in.wav", 0.5)
    args = ["bounce", str(source), "-o", str(tmp_path / "out.flac"), "--set", "loudness=false", "--bit-depth", "16"]
    assert main(args) == 0
    first = (tmp_path / "out.flac").read_bytes()
    with caplog.at_level(logging.ERROR):
        assert main(args) == 2
    assert "exists; pass --overwrite" in caplog.text
    assert (tmp_path / "out.flac").read_bytes() == first
    assert main([*args, "--overwrite"]) == 0
    assert soundfile.info(tmp_path / "out.flac").subtype == "PCM_16"


def test_bounce_with_the_podcast_preset_end_to_end(tmp_path):
    audio = noisy_speech(6.0, RATE, channels=1, snr_db=15.0) * np.float32(0.2)
    source = tmp_path / "take.wav"
    soundfile.write(source, audio.T, RATE, subtype="PCM_24")
    output = tmp_path / "take-enhanced.wav"
    run = speakup("bounce", str(source), "-o", str(output), "--report", str(tmp_path / "report.png"))
    assert run.returncode == 0, run.stderr
    enhanced, sample_rate = soundfile.read(output, dtype="float32", always_2d=True)
    assert sample_rate == RATE and enhanced.shape[0] == audio.shape[1]
    assert integrated_loudness_lufs(enhanced.T, RATE) == pytest.approx(-16.0, abs=0.5)
    assert true_peak_dbtp(enhanced.T, RATE) <= -1.0 + 0.01
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert "take.wav -> " in run.stderr and "LUFS" in run.stderr
