"""``speakup bounce`` never writes garbage as success and never leaves debris (issue 10), with one limiter.

Each test reproduces a way the bounce lost data, lied or left files behind; short synthetic files
and stand-in effects keep them fast.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from synthetic import speech_like

import speakup_fx.effect
from speakup_fx.atomic import HOST_TAG, TEMP_PREFIX
from speakup_fx.bounce import BounceError, bounce
from speakup_fx.cli import main
from speakup_fx.dsp.loudness import integrated_loudness_lufs, true_peak_dbtp
from speakup_fx.media import AudioReader, AudioWriter, MediaError
from speakup_fx.presets import load_preset

RATE = 44_100
NO_LOUDNESS = {"loudness": False}


class Gain:
    """A streaming stand-in effect: ``gain`` times the input, 64 samples late; ``poison`` puts NaN in its output."""

    def __init__(self, preset=None, gain: float = 1.0, poison: bool = False, fail: bool = False, **options) -> None:
        self.latency_samples = 64
        self.gain, self.poison, self.fail = gain, poison, fail
        self.reset()

    def reset(self) -> None:
        self._history = None

    def process(self, input_array, sample_rate, buffer_size=8192, reset=True):
        if self.fail:
            raise RuntimeError("effect exploded")
        if self._history is None:
            self._history = np.zeros((input_array.shape[0], self.latency_samples), np.float32)
        joined = np.concatenate([self._history, input_array], axis=1)
        self._history = joined[:, joined.shape[1] - self.latency_samples :]
        out = joined[:, : input_array.shape[1]] * np.float32(self.gain)
        if self.poison:
            out[:, out.shape[1] // 2 :] = np.nan
        return out


def speech(seconds: float = 1.5, sample_rate: int = RATE, channels: int = 1, level: float = 0.3) -> np.ndarray:
    audio = speech_like(seconds, sample_rate, channels)
    return (audio * np.float32(level / np.abs(audio).max())).astype(np.float32)


def wav(path: Path, audio: np.ndarray, sample_rate: int = RATE, subtype: str = "PCM_24") -> Path:
    soundfile.write(path, audio.T, sample_rate, subtype=subtype)
    return path


def everything_in(folder: Path) -> list[str]:
    """Every entry under ``folder``, hidden ones included."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def decode(path: Path) -> np.ndarray:
    with AudioReader(path) as reader:
        return np.concatenate(list(reader.blocks(65_536)), axis=1)


@pytest.fixture
def stand_in(monkeypatch):
    """``SpeakUp`` replaced by ``Gain`` for the CLI (same constructor), so these tests need no real chain."""
    monkeypatch.setattr(speakup_fx.effect, "SpeakUp", Gain)


# 1. Never write non-finite or garbage audio as success.


@pytest.mark.parametrize("overrides", [NO_LOUDNESS, {}], ids=["plain", "loudness pass"])
def test_an_effect_that_outputs_nan_fails_naming_the_file_and_writes_nothing(tmp_path, overrides):
    source = wav(tmp_path / "in.wav", speech())
    (tmp_path / "out").mkdir()
    with pytest.raises(BounceError) as caught:
        bounce(source, tmp_path / "out" / "x.wav", overrides=overrides, effect=Gain(poison=True))
    message = str(caught.value)
    assert str(source) in message and "NaN" in message and "\n" not in message
    assert everything_in(tmp_path / "out") == []


def test_an_effect_that_outputs_nan_exits_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(speakup_fx.effect, "SpeakUp", lambda preset=None, **kw: Gain(poison=True))
    source = wav(tmp_path / "in.wav", speech())
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav")]) == 2
    assert "NaN" in caplog.text and str(source) in caplog.text
    assert not (tmp_path / "out.wav").exists()


def test_a_float_wav_at_1e38_is_refused_with_exit_2_not_encoded_as_full_scale_garbage(tmp_path, stand_in, caplog):
    audio = speech(1.0)
    audio[:, 10_000:12_000] = np.sign(audio[:, 10_000:12_000]) * np.float32(1e38)
    source = wav(tmp_path / "huge.wav", audio, subtype="FLOAT")
    with caplog.at_level(logging.ERROR):
        code = main(["bounce", str(source), "-o", str(tmp_path / "out.wav"), "--set", "loudness=false"])
    assert code == 2
    assert str(source) in caplog.text and "not audio" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.wav"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e38], ids=["nan", "inf", "1e38"])
@pytest.mark.parametrize("bit_depth", ["16", "32f"])
def test_the_writer_refuses_to_encode_samples_that_are_not_audio(tmp_path, bad, bit_depth):
    block = speech(0.2)
    block[0, 100] = bad
    with pytest.raises(MediaError, match="out.wav") as caught:
        with AudioWriter(tmp_path / "out.wav", "wav", RATE, 1, bit_depth=bit_depth) as writer:
            writer.write(block)
    assert "at 0.002 s" in str(caught.value)


# 2. Interrupted bounces leave nothing behind.


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_bounce_exits_non_zero_without_a_traceback_and_leaves_nothing(tmp_path, signum):
    long_speech = np.tile(speech(2.0, 16_000), 60)  # 2 minutes: still running when the signal comes
    source = wav(tmp_path / "long.wav", long_speech, 16_000)
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "speakup_fx.cli", "bounce", str(source), "-o", str(out / "long.wav")],
        stderr=subprocess.PIPE,
        text=True,
    )
    while not os.listdir(out):  # a temporary file appears: the bounce is writing
        assert child.poll() is None, "the bounce ended before it could be interrupted"
        assert time.monotonic() - started < 120
        time.sleep(0.02)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert everything_in(out) == []
    assert "Traceback" not in stderr and "interrupted by" in stderr
    assert child.returncode == 128 + signum


@pytest.mark.parametrize("overrides", [NO_LOUDNESS, {}], ids=["output", "and float file"])
def test_an_interrupt_just_after_a_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch, overrides):
    """The race the signal test can hit: the signal arrives between creating a temporary file and guarding it."""
    source = wav(tmp_path / "in.wav", speech())
    out = tmp_path / "out"
    out.mkdir()
    real_open = Path.open
    created: list[str] = []

    def open_then_interrupt(self, mode="r", *args, **kwargs):
        file = real_open(self, mode, *args, **kwargs)
        if mode == "xb" and self.parent == out:
            created.append(self.name)
            if len(created) == (1 if overrides else 2):  # the output's temporary, or the float file after it
                file.close()
                raise KeyboardInterrupt
        return file

    monkeypatch.setattr(Path, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        bounce(source, out / "x.wav", overrides=overrides, effect=Gain())
    assert created and everything_in(out) == []


def test_the_next_run_removes_stale_temporaries_of_dead_runs_and_nothing_else(tmp_path):
    source = wav(tmp_path / "in.wav", speech())
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    here = f"{TEMP_PREFIX}{HOST_TAG}"
    stale = [out / f"{here}-{dead_pid}-0123abcd.tmp.wav", out / f"{here}-{dead_pid}-4567cdef.tmp.f32"]
    other_host = "0123abcd" if HOST_TAG != "0123abcd" else "4567cdef"  # a cluster node writing to a shared folder
    kept = [
        out / f"{here}-{os.getppid()}-89abcdef.tmp.wav",
        out / f"{TEMP_PREFIX}{other_host}-{dead_pid}-0123abcd.tmp.wav",
        out / ".mine.wav.tmp",
        out / "notes.txt",
    ]
    for path in stale + kept:
        path.write_bytes(b"x" * 100)
    bounce(source, out / "x.wav", overrides=NO_LOUDNESS, effect=Gain())
    assert everything_in(out) == sorted([path.name for path in kept] + ["x.wav"])


def test_every_temporary_file_of_a_bounce_is_named_so_a_later_run_can_remove_it(tmp_path):
    source = wav(tmp_path / "in.wav", speech(2.0))
    (tmp_path / "out").mkdir()
    seen: set[str] = set()

    def progress(path, phase, done_s, total_s):
        seen.update(os.listdir(tmp_path / "out"))

    bounce(source, tmp_path / "out" / "x.wav", effect=Gain(), progress=progress)  # with the loudness pass
    temporaries = seen - {"x.wav"}
    assert any(name.endswith(".f32") for name in temporaries), "the loudness pass keeps a float file"
    assert temporaries and all(name.startswith(f"{TEMP_PREFIX}{HOST_TAG}-{os.getpid()}-") for name in temporaries)


# 3. Truncated input is not silently half-processed.


def truncated_wav(path: Path) -> tuple[Path, int, int]:
    audio = speech(2.0)
    wav(path, audio, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + audio.shape[1]])  # half the 16-bit samples (the header is 44 bytes)
    return path, audio.shape[1], audio.shape[1] // 2


def test_a_truncated_wav_is_bounced_with_a_warning_naming_it_and_both_lengths(tmp_path, caplog):
    source, declared, held = truncated_wav(tmp_path / "cut.wav")
    with caplog.at_level(logging.WARNING):
        (result,) = bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=Gain())
    warning = next(message for message in result.warnings if "truncated" in message)
    assert str(source) in warning and f"{declared:,}" in warning and f"{held:,}" in warning
    assert warning in caplog.text
    assert decode(tmp_path / "out.wav").shape[1] == held


def test_strict_refuses_a_truncated_input_with_exit_2_and_writes_nothing(tmp_path, stand_in, caplog):
    source, declared, held = truncated_wav(tmp_path / "cut.wav")
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav"), "--strict"]) == 2
    assert "truncated" in caplog.text and f"{declared:,}" in caplog.text and f"{held:,}" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.wav"]


def test_a_truncated_mp3_is_reported(tmp_path):
    audio = speech(2.0, 48_000)
    path = tmp_path / "cut.mp3"
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48_000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (result,) = bounce(path, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=Gain())
    assert any("truncated" in message and f"{audio.shape[1]:,}" in message for message in result.warnings)


def video(path: Path, audio_streams: list[np.ndarray], seconds: float) -> Path:
    """A tiny video of ``seconds`` with one AAC stream per entry of ``audio_streams`` (stereo, 48 kHz)."""
    with av.open(str(path), "w") as container:
        picture_stream = container.add_stream("mpeg4", rate=25)
        picture_stream.width, picture_stream.height, picture_stream.pix_fmt = 64, 48, "yuv420p"
        sounds = [container.add_stream("aac", rate=48_000, layout="stereo") for _ in audio_streams]
        for index in range(round(seconds * 25)):
            picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 9 % 256, np.uint8), format="rgb24")
            picture.pts = index
            container.mux(picture_stream.encode(picture))
        for sound, audio in zip(sounds, audio_streams):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48_000, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        container.mux(picture_stream.encode(None))
    return path


@pytest.mark.parametrize("make", ["wav", "video with shorter audio"])
def test_a_complete_file_gives_no_truncation_warning(tmp_path, make):
    if make == "wav":
        source = wav(tmp_path / "whole.wav", speech())
    else:  # the container lasts as long as the video: the audio is complete all the same
        source = video(tmp_path / "clip.mkv", [speech(1.0, 48_000, channels=2)], seconds=3.0)
    (result,) = bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=Gain())
    assert result.warnings == []


# 4. Valid names work, and errors name what the user named.


def test_a_230_character_output_name_is_written(tmp_path):
    source = wav(tmp_path / "in.wav", speech())
    output = tmp_path / ("n" * 226 + ".wav")
    bounce(source, output, effect=Gain())  # with the loudness pass's float file
    assert decode(output).shape[1] == speech().shape[1]
    assert everything_in(tmp_path) == sorted(["in.wav", output.name])


@pytest.fixture
def unwritable_folder(tmp_path, monkeypatch):
    """A folder no file can be created in: read-only by mode, or (for root, whom modes do not stop) by patching."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_open = Path.open

        def refuse(self, mode="r", *args, **kwargs):
            if self.parent == folder and any(flag in mode for flag in "wxa"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_open(self, mode, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
    yield folder
    folder.chmod(0o755)


def test_a_read_only_output_folder_exits_2_naming_the_output_and_the_cause(
    tmp_path, unwritable_folder, caplog, stand_in
):
    source = wav(tmp_path / "in.wav", speech())
    output = unwritable_folder / "out.wav"
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(output)]) == 2
    assert f"cannot write {output}: Permission denied" in caplog.text
    assert TEMP_PREFIX not in caplog.text
    assert everything_in(unwritable_folder) == []


def test_a_full_disk_exits_2_naming_the_output_and_the_cause(tmp_path, monkeypatch, caplog, stand_in):
    source = wav(tmp_path / "in.wav", speech())
    output = tmp_path / "out" / "out.mp3"

    def full(self, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(AudioWriter, "write", full)
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(output), "--set", "loudness=false"]) == 2
    assert f"cannot write {output}: No space left on device" in caplog.text
    assert TEMP_PREFIX not in caplog.text
    assert everything_in(tmp_path / "out") == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount; skipped elsewhere: the patched test above covers the logic)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_really_full_disk_is_named_as_such_for_a_wav(tmp_path, tiny_disk):
    source = wav(tmp_path / "in.wav", speech(3.0))
    with pytest.raises(BounceError, match="No space left on device") as caught:
        bounce(source, tiny_disk / "out.wav", overrides=NO_LOUDNESS, effect=Gain())
    assert f"cannot write {tiny_disk / 'out.wav'}" in str(caught.value)
    assert everything_in(tiny_disk) == []


def test_a_single_file_whose_effect_fails_exits_2_not_1(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(speakup_fx.effect, "SpeakUp", lambda preset=None, **kw: Gain(fail=True))
    source = wav(tmp_path / "in.wav", speech())
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav")]) == 2
    assert "effect exploded" in caplog.text


def test_an_effects_own_os_error_is_not_reported_as_a_write_failure(tmp_path):
    class MissingWeights(Gain):
        def process(self, *args, **kwargs):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/models/enhancer.safetensors")

    source = wav(tmp_path / "in.wav", speech())
    with pytest.raises(BounceError) as caught:
        bounce(source, tmp_path / "out.wav", effect=MissingWeights())
    assert "enhancer.safetensors" in str(caught.value) and "cannot write" not in str(caught.value)


# 5. Presets.


def test_a_100000_deep_toml_preset_exits_2_with_one_line_and_no_traceback(tmp_path):
    preset = tmp_path / "deep.toml"
    preset.write_text("x = " + "[" * 100_000 + "\n")
    source = wav(tmp_path / "in.wav", speech(0.3))
    run = subprocess.run(
        [sys.executable, "-m", "speakup_fx.cli", "bounce", str(source), "-o", str(tmp_path / "o.wav"), "--preset"]
        + [str(preset)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(preset) in lines[0] and "nested too deeply" in lines[0], run.stderr


def test_a_non_utf8_preset_is_an_error_naming_the_file(tmp_path):
    preset = tmp_path / "latin1.toml"
    preset.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.toml: not UTF-8"):
        load_preset(preset)


# 6. Permissions and streams.


def test_overwrite_keeps_the_existing_outputs_permissions(tmp_path):
    source = wav(tmp_path / "in.wav", speech())
    output = tmp_path / "out.wav"
    output.write_bytes(b"old")
    output.chmod(0o600)
    bounce(source, output, overrides=NO_LOUDNESS, effect=Gain(), overwrite=True)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert decode(output).shape[1] == speech().shape[1]


def test_a_read_only_output_is_replaced_only_with_force(tmp_path, stand_in, caplog):
    source = wav(tmp_path / "in.wav", speech())
    output = tmp_path / "out.wav"
    output.write_bytes(b"precious")
    output.chmod(0o444)
    args = ["bounce", str(source), "-o", str(output), "--set", "loudness=false"]
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--overwrite"]) == 2
    assert "read-only; pass --force" in caplog.text
    assert output.read_bytes() == b"precious"
    assert main([*args, "--force"]) == 0
    assert decode(output).shape[1] == speech().shape[1]
    assert stat.S_IMODE(output.stat().st_mode) == 0o444


def test_dropping_a_videos_second_audio_stream_is_warned(tmp_path, caplog):
    path = video(tmp_path / "two.mkv", [speech(1.0, 48_000, channels=2)] * 2, seconds=1.0)
    with caplog.at_level(logging.WARNING):
        bounce(path, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=Gain())
    assert f"{path}: 2 audio streams; only the first is used" in caplog.text


# 8. "Silent" means silent.


def test_speech_at_minus_90_dbfs_is_normalised_and_called_very_quiet_not_silent(tmp_path, caplog):
    quiet = speech(3.0, level=10 ** (-90 / 20))
    source = wav(tmp_path / "quiet.wav", quiet, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        (result,) = bounce(source, tmp_path / "out.wav", effect=Gain(), bit_depth="32f")
    target = load_preset("podcast").parameter_values()["target_lufs"]
    out = decode(tmp_path / "out.wav")
    assert integrated_loudness_lufs(out, RATE) == pytest.approx(target, abs=0.5)
    assert "very quiet" in caplog.text and "silent after" not in caplog.text
    assert result.gain_db > 60


def test_digital_silence_is_named_as_such_and_left_silent(tmp_path, caplog):
    source = wav(tmp_path / "zeros.wav", np.zeros((1, RATE), np.float32))
    with caplog.at_level(logging.WARNING):
        bounce(source, tmp_path / "out.wav", effect=Gain())
    assert "digital silence" in caplog.text
    assert not decode(tmp_path / "out.wav").any()


# One limiter in a bounce.


@pytest.fixture
def limiters(monkeypatch):
    """The sample rate of every true-peak limiter built (by the effect's chain or the bounce)."""
    from speakup_fx.stages import limiter

    built: list[int] = []
    original = limiter.TruePeakLimiterStage.__init__

    def counted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self.input_sample_rate)

    monkeypatch.setattr(limiter.TruePeakLimiterStage, "__init__", counted)
    return built


def test_a_loudness_bounce_runs_one_limiter_at_the_files_rate_and_meets_target_and_ceiling(tmp_path, limiters):
    audio = speech(4.0, RATE, channels=2, level=0.1)
    source = wav(tmp_path / "in.wav", audio)
    (result,) = bounce(source, tmp_path / "out.wav", preset="podcast", bit_depth="32f")
    params = load_preset("podcast").parameter_values()
    out = decode(tmp_path / "out.wav")
    assert limiters == [RATE]
    assert out.shape == audio.shape
    assert true_peak_dbtp(out, RATE) <= params["limiter_ceiling_dbtp"] + 0.02
    assert integrated_loudness_lufs(out, RATE) == pytest.approx(params["target_lufs"], abs=0.3)
    assert result.output_lufs == pytest.approx(integrated_loudness_lufs(out, RATE), abs=0.01)


def test_with_the_limiter_off_the_loudness_gain_stops_at_the_ceiling(tmp_path, limiters, caplog):
    audio = speech(3.0, level=0.05)
    audio[:, RATE] = 0.9  # one peak: the target would need far more gain than the ceiling allows
    source = wav(tmp_path / "in.wav", audio, subtype="FLOAT")
    with caplog.at_level(logging.WARNING):
        (result,) = bounce(source, tmp_path / "out.wav", effect=Gain(), overrides={"limiter": False}, bit_depth="32f")
    out = decode(tmp_path / "out.wav")
    ceiling = load_preset("podcast").parameter_values()["limiter_ceiling_dbtp"]
    assert limiters == []
    assert true_peak_dbtp(out, RATE) == pytest.approx(ceiling, abs=0.01)
    np.testing.assert_allclose(out, audio * np.float32(10 ** (result.gain_db / 20)), rtol=1e-5, atol=1e-7)
    assert "limiter is off" in caplog.text
