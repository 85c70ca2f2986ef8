"""``bounce``: lengths, alignment, formats, video remux, safety and failure handling.

Most tests inject a tiny delay-line effect, so the expected output is known
exactly (the input times a gain); the loudness tests run the real ``SpeakUp``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from synthetic import noise, noisy_speech, speech_like

from speakup_fx.atomic import TEMP_PREFIX
from speakup_fx.bounce import BounceError, FileBounceError, bounce, bounce_file
from speakup_fx.bounce.progress import ProgressReporter
from speakup_fx.dsp.loudness import integrated_loudness_lufs, true_peak_dbtp
from speakup_fx.media import AudioReader
from speakup_fx.presets import load_preset

RATE = 44_100
NO_LOUDNESS = {"loudness": False}


class DelayEffect:
    """A streaming effect with known latency: output = ``gain`` * input delayed by ``latency_samples``."""

    def __init__(self, latency_samples: int = 701, gain: float = 0.5, fail_after_calls: int | None = None) -> None:
        self.latency_samples = latency_samples
        self.gain = gain
        self.fail_after_calls = fail_after_calls
        self.calls = 0
        self._history: np.ndarray | None = None

    def reset(self) -> None:
        self._history = None

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192, reset: bool = True):
        assert not reset, "bounce must stream with reset=False"
        self.calls += 1
        if self.fail_after_calls is not None and self.calls > self.fail_after_calls:
            raise RuntimeError("effect exploded")
        if self._history is None:
            self._history = np.zeros((input_array.shape[0], self.latency_samples), np.float32)
        joined = np.concatenate([self._history, input_array], axis=1)
        self._history = joined[:, joined.shape[1] - self.latency_samples :]
        return joined[:, : input_array.shape[1]] * np.float32(self.gain)


def encode(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write ``audio`` (channels, frames) to ``path``: WAV/FLAC/Ogg with soundfile, MP3/M4A with PyAV."""
    suffix = path.suffix.lower()
    if suffix in (".wav", ".flac", ".ogg"):
        soundfile.write(path, audio.T, sample_rate)
        return path
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    container_format, codec = {".mp3": ("mp3", "libmp3lame"), ".m4a": ("ipod", "aac")}[suffix]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        for start in range(0, audio.shape[1], 10_000):
            part = np.ascontiguousarray(audio[:, start : start + 10_000])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_video(path: Path, audio: np.ndarray | None, sample_rate: int = 48_000, seconds: float = 2.0, fps: int = 25):
    """A tiny MPEG-4 Part 2 video (64x48, changing grey levels) with ``audio`` as AAC, interleaved."""
    container_format = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}[path.suffix]
    with av.open(str(path), "w", format=container_format) as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="stereo") if audio is not None else None
        frames = int(seconds * fps)
        written = 0
        for index in range(frames):
            picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 9 % 256, np.uint8), format="rgb24")
            picture.pts = index
            container.mux(video.encode(picture))
            if sound is not None:
                end = min(audio.shape[1], round((index + 1) * sample_rate / fps))
                if index == frames - 1:
                    end = audio.shape[1]
                if end > written:
                    part = np.ascontiguousarray(audio[:, written:end])
                    frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
                    frame.sample_rate, frame.pts = sample_rate, written
                    written = end
                    container.mux(sound.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return path


def decode(path: Path) -> tuple[np.ndarray, int]:
    with AudioReader(path) as reader:
        return np.concatenate(list(reader.blocks(65_536)), axis=1), reader.sample_rate


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.startswith(TEMP_PREFIX) or ".tmp" in path.name]


def speech(seconds: float = 1.5, sample_rate: int = RATE, channels: int = 1) -> np.ndarray:
    audio = speech_like(seconds, sample_rate, channels) + noise(seconds, sample_rate, channels, level_db=-40.0)
    return audio[:, : int(seconds * sample_rate) - 37]  # not a round number of blocks or hops


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
@pytest.mark.parametrize("channels", [1, 2])
def test_output_is_sample_exact_and_aligned_for_lossless_formats(tmp_path, suffix, channels):
    audio = speech(channels=channels)
    source = encode(tmp_path / f"in{suffix}", audio, RATE)
    output = tmp_path / f"out{suffix}"
    bounce(source, output, overrides=NO_LOUDNESS, effect=DelayEffect(gain=0.5))
    result, sample_rate = decode(output)
    assert sample_rate == RATE
    assert result.shape == audio.shape
    np.testing.assert_allclose(result, 0.5 * decode(source)[0], atol=2.0**-23)  # aligned to the sample, 24-bit output
    assert soundfile.info(output).subtype == "PCM_24"


@pytest.mark.parametrize("suffix", [".mp3", ".m4a", ".ogg"])
def test_decoded_output_length_matches_decoded_input_length_for_lossy_inputs(tmp_path, suffix):
    audio = speech(channels=2)
    source = encode(tmp_path / f"in{suffix}", audio, RATE)
    decoded_input, _ = decode(source)
    assert decoded_input.shape[1] == audio.shape[1], "priming and padding are removed when decoding"
    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=DelayEffect())
    bounce(source, tmp_path / "out.mp3", overrides=NO_LOUDNESS, effect=DelayEffect())
    assert decode(tmp_path / "out.wav")[0].shape == decoded_input.shape
    assert decode(tmp_path / "out.mp3")[0].shape == decoded_input.shape


@pytest.mark.parametrize("bit_depth, subtype", [("16", "PCM_16"), ("24", "PCM_24"), ("32f", "FLOAT")])
def test_bit_depth_sets_the_wav_sample_format(tmp_path, bit_depth, subtype):
    source = encode(tmp_path / "in.wav", speech(0.5), RATE)
    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, bit_depth=bit_depth, effect=DelayEffect())
    assert soundfile.info(tmp_path / "out.wav").subtype == subtype


def test_float_wav_has_no_time_stamped_peak_chunk(tmp_path):
    # libsndfile's PEAK chunk carries the wall clock; without it the same bounce gives the same bytes
    source = encode(tmp_path / "in.wav", speech(0.5), RATE)
    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, bit_depth="32f", effect=DelayEffect())
    assert b"PEAK" not in (tmp_path / "out.wav").read_bytes()
    assert soundfile.read(tmp_path / "out.wav")[0].size > 0


def test_flac_refuses_float_samples_before_writing(tmp_path):
    source = encode(tmp_path / "in.wav", speech(0.5), RATE)
    with pytest.raises(BounceError, match="FLAC has no 32-bit float"):
        bounce(source, tmp_path / "out.flac", overrides=NO_LOUDNESS, bit_depth="32f", effect=DelayEffect())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_sample_rate_option_resamples_to_the_matching_length(tmp_path):
    audio = speech(1.0)
    source = encode(tmp_path / "in.wav", audio, RATE)
    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, sample_rate=48_000, effect=DelayEffect(gain=1.0))
    result, sample_rate = decode(tmp_path / "out.wav")
    assert sample_rate == 48_000
    assert result.shape[1] == -(-audio.shape[1] * 48_000 // RATE)
    # A resampled speech signal keeps its level (the resampler is time-aligned and unity-gain in band).
    assert integrated_loudness_lufs(result, 48_000) == pytest.approx(integrated_loudness_lufs(audio, RATE), abs=0.2)


def test_mp3_output_needs_a_rate_mp3_can_hold(tmp_path):
    source = encode(tmp_path / "in.wav", speech(0.3, sample_rate=96_000), 96_000)
    with pytest.raises(BounceError, match="MP3 cannot store 96000 Hz"):
        bounce(source, tmp_path / "out.mp3", overrides=NO_LOUDNESS, effect=DelayEffect())
    bounce(source, tmp_path / "out.mp3", overrides=NO_LOUDNESS, sample_rate=48_000, effect=DelayEffect())
    assert decode(tmp_path / "out.mp3")[0].shape[1] == -(-speech(0.3, sample_rate=96_000).shape[1] // 2)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_video_is_copied_and_audio_replaced_with_the_same_length(tmp_path, suffix):
    audio = speech(2.0, 48_000, channels=2)
    source = make_video(tmp_path / f"in{suffix}", audio)
    output = tmp_path / f"out{suffix}"
    bounce(source, output, overrides=NO_LOUDNESS, effect=DelayEffect(gain=0.5))

    def video_packets(path: Path) -> tuple[str, list[bytes], list[tuple[int, int]], float]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
            ends = [(p.pts + p.duration) * p.time_base for p in packets]
            return (
                stream.codec_context.name,
                [bytes(p) for p in packets],
                [(Fraction(p.pts * p.time_base), p.is_keyframe) for p in packets],
                float(max(ends)),
            )

    codec_in, data_in, times_in, end_in = video_packets(source)
    codec_out, data_out, times_out, end_out = video_packets(output)
    assert codec_out == codec_in
    assert data_out == data_in, "video packets are copied byte for byte, not re-encoded"
    assert times_out == times_in
    assert end_out == pytest.approx(end_in, abs=1e-3)
    with av.open(str(output)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    decoded_in, _ = decode(source)
    decoded_out, _ = decode(output)
    assert decoded_out.shape == decoded_in.shape
    if suffix != ".mkv":  # MP4/MOV record the exact sample count; Matroska's millisecond clock cannot
        assert decoded_in.shape[1] == audio.shape[1]
    # The new audio is the enhanced one (half the level), in sync: its cross-correlation peaks at lag 0.
    level_db = 20 * np.log10(np.std(decoded_out) / np.std(decoded_in))
    assert level_db == pytest.approx(-6.02, abs=0.3)
    mono_in, mono_out = decoded_in.mean(axis=0), decoded_out.mean(axis=0)
    lags = range(-200, 201)
    correlation = [np.dot(mono_in[1000:-1000], np.roll(mono_out, -lag)[1000:-1000]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0


def test_video_output_can_be_audio_only(tmp_path):
    audio = speech(1.0, 48_000, channels=2)
    source = make_video(tmp_path / "in.mp4", audio, seconds=1.0)
    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=DelayEffect())
    assert decode(tmp_path / "out.wav")[0].shape == audio.shape


def test_inputs_are_left_byte_identical(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    inputs = [
        encode(folder / "a.wav", speech(), RATE),
        encode(folder / "sub" / "b.mp3", speech(channels=2), RATE),
        make_video(folder / "c.mp4", speech(1.0, 48_000, channels=2), seconds=1.0),
    ]
    before = {path: (digest(path), path.stat().st_mtime_ns) for path in inputs}
    bounce(folder, tmp_path / "out", overrides=NO_LOUDNESS, effect=DelayEffect())
    assert {path: (digest(path), path.stat().st_mtime_ns) for path in inputs} == before
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "a.wav",
        "c.mp4",
        "sub/b.mp3",
    ]


def test_format_option_converts_a_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    encode(folder / "a.wav", speech(), RATE)
    encode(folder / "b.m4a", speech(), RATE)
    bounce(folder, tmp_path / "out", output_format="flac", overrides=NO_LOUDNESS, effect=DelayEffect())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.flac", "b.flac"]


@pytest.mark.parametrize(
    "preset, suffix", [("podcast", ".wav"), ("broadcast-r128", ".wav"), ("podcast", ".mp3"), ("broadcast-r128", ".mp4")]
)
def test_bounce_meets_the_preset_loudness_and_true_peak(tmp_path, preset, suffix):
    audio = noisy_speech(8.0, 48_000, channels=2, snr_db=20.0) * np.float32(0.3)  # quiet: needs gain
    if suffix == ".mp4":
        source = make_video(tmp_path / "in.mp4", audio, seconds=8.0)
    else:
        source = encode(tmp_path / "in.wav", audio, 48_000)
    output = tmp_path / f"out{suffix}"
    (result,) = bounce(source, output, preset=preset)
    params = load_preset(preset).parameter_values()
    enhanced, sample_rate = decode(output)
    assert enhanced.shape == audio.shape
    assert integrated_loudness_lufs(enhanced, sample_rate) == pytest.approx(params["target_lufs"], abs=0.5)
    assert true_peak_dbtp(enhanced, sample_rate) <= params["limiter_ceiling_dbtp"] + 0.01  # 24-bit rounding
    if suffix == ".wav":
        assert result.output_lufs == pytest.approx(integrated_loudness_lufs(enhanced, sample_rate), abs=0.01)


BAD_INPUTS = {
    "missing": (lambda folder: folder / "missing.wav", "no such file"),
    "empty": (lambda folder: _write_bytes(folder / "empty.wav", b""), "empty file"),
    "corrupt wav": (lambda folder: _write_bytes(folder / "bad.wav", b"RIFF\0\0\0\0WAVEjunk" * 40), "cannot decode"),
    "corrupt mp3": (lambda folder: _write_bytes(folder / "bad.mp3", bytes(range(256)) * 20), "cannot decode"),
    "no audio stream": (lambda folder: make_video(folder / "silent.mp4", None, seconds=0.5), "no audio stream"),
    "nan samples": (lambda folder: _write_nan_wav(folder / "nan.wav"), "NaN or infinite sample at 0.250 s"),
    "three channels": (lambda folder: encode(folder / "surround.wav", speech(0.3, channels=3), RATE), "3 channels"),
    "absurd rate": (lambda folder: encode(folder / "slow.wav", speech(0.3, 4_000), 4_000), "4000 Hz is outside"),
}


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_nan_wav(path: Path) -> Path:
    audio = speech(0.5, 8_000)
    audio[0, 2_000] = np.nan
    soundfile.write(path, audio.T, 8_000, subtype="FLOAT")
    return path


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_input_fails_with_its_name_and_problem_and_writes_nothing(tmp_path, case):
    make, problem = BAD_INPUTS[case]
    (tmp_path / "in").mkdir()
    source = make(tmp_path / "in")
    with pytest.raises(BounceError) as caught:
        bounce(source, tmp_path / "out" / "result.wav", overrides=NO_LOUDNESS, effect=DelayEffect())
    message = str(caught.value)
    assert str(source) in message and problem in message and "\n" not in message
    if caught.value.results is not None:  # decoded and failed, rather than refused up front
        assert caught.value.results[0].bad_input
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_folder_with_a_corrupt_file_processes_the_rest(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    encode(folder / "a.wav", speech(), RATE)
    _write_bytes(folder / "b.wav", b"not audio at all" * 100)
    encode(folder / "c.flac", speech(), RATE)
    with pytest.raises(BounceError) as caught:
        bounce(folder, tmp_path / "out", overrides=NO_LOUDNESS, effect=DelayEffect())
    results = {r.input.name: r for r in caught.value.results}
    assert results["a.wav"].ok and results["c.flac"].ok
    assert results["b.wav"].bad_input and "b.wav" in results["b.wav"].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.flac"]


def test_an_existing_output_is_kept_unless_overwrite(tmp_path):
    source = encode(tmp_path / "in.wav", speech(), RATE)
    output = _write_bytes(tmp_path / "out.wav", b"precious")
    with pytest.raises(BounceError, match="exists; pass --overwrite"):
        bounce(source, output, overrides=NO_LOUDNESS, effect=DelayEffect())
    assert output.read_bytes() == b"precious"
    bounce(source, output, overrides=NO_LOUDNESS, effect=DelayEffect(), overwrite=True)
    assert decode(output)[0].shape[1] == speech().shape[1]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("alias", ["same path", "symlink", "hard link"])
def test_the_input_is_never_the_output_even_with_overwrite(tmp_path, alias):
    source = encode(tmp_path / "in.wav", speech(), RATE)
    before = digest(source)
    output = {"same path": source, "symlink": tmp_path / "link.wav", "hard link": tmp_path / "hard.wav"}[alias]
    if alias == "symlink":
        output.symlink_to(source)
    elif alias == "hard link":
        os.link(source, output)
    with pytest.raises(BounceError, match="is an input; refusing"):
        bounce(source, output, overrides=NO_LOUDNESS, effect=DelayEffect(), overwrite=True)
    assert digest(source) == before
    assert leftovers(tmp_path) == []


def test_a_failure_midway_leaves_no_partial_or_temporary_files(tmp_path):
    source = encode(tmp_path / "in.wav", speech(5.0), RATE)
    (tmp_path / "out").mkdir()
    for overrides in (NO_LOUDNESS, {}):  # with and without the temporary float file of the loudness pass
        with pytest.raises(BounceError, match="effect exploded") as caught:
            bounce(source, tmp_path / "out" / "x.wav", overrides=overrides, effect=DelayEffect(fail_after_calls=2))
        assert not caught.value.results[0].bad_input
        assert list((tmp_path / "out").iterdir()) == []


def test_outputs_are_written_through_a_temporary_file(tmp_path):
    source = encode(tmp_path / "in.wav", speech(), RATE)
    seen: list[list[str]] = []

    def progress(path, phase, done_s, total_s):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    bounce(source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=DelayEffect(), progress=progress)
    during = {name for names in seen for name in names}
    assert any(name.startswith(TEMP_PREFIX) for name in during), "a temporary file exists while bouncing"
    assert "out.wav" not in seen[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_progress_reports_each_phase_with_the_duration(tmp_path):
    audio = speech(2.0)
    source = encode(tmp_path / "in.wav", audio, RATE)
    calls = []
    bounce(source, tmp_path / "o.wav", overrides=NO_LOUDNESS, effect=DelayEffect(), progress=lambda *c: calls.append(c))
    assert {call[1] for call in calls} == {"enhance", "done"}
    enhance = [call for call in calls if call[1] == "enhance"]
    assert enhance[-1][2] == pytest.approx(audio.shape[1] / RATE)
    assert enhance[-1][3] == pytest.approx(audio.shape[1] / RATE)


def test_report_draws_a_png_with_before_and_after(tmp_path):
    source = encode(tmp_path / "in.wav", speech(3.0), RATE)
    (result,) = bounce(
        source, tmp_path / "out.wav", overrides=NO_LOUDNESS, effect=DelayEffect(gain=0.5), report=tmp_path / "r.png"
    )
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.output_lufs == pytest.approx(result.input_lufs - 6.02, abs=0.05)
    assert result.output_true_peak_dbtp == pytest.approx(result.input_true_peak_dbtp - 6.02, abs=0.05)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"preset": "no-such-preset"}, "unknown preset 'no-such-preset'"),
        ({"overrides": {"denoise_amoun": 0.5}}, "override denoise_amoun: unknown parameter or option"),
        ({"overrides": {"denoise_amount": 2}}, "override denoise_amount: 2.0 is outside"),
        ({"bit_depth": "8"}, "bit depth '8'"),
        ({"sample_rate": 1_000_000}, "sample_rate: 1000000 Hz is outside"),
    ],
)
def test_bad_settings_are_refused_before_any_file_is_touched(tmp_path, kwargs, problem):
    source = encode(tmp_path / "in.wav", speech(0.3), RATE)
    with pytest.raises(BounceError, match=problem) as caught:
        bounce(source, tmp_path / "out.wav", effect=DelayEffect(), **kwargs)
    assert caught.value.results is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_reports_for_a_folder_mirror_its_files(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    encode(folder / "a.wav", speech(), RATE)
    encode(folder / "sub" / "b.flac", speech(), RATE)
    bounce(folder, tmp_path / "out", overrides=NO_LOUDNESS, effect=DelayEffect(), report=tmp_path / "reports")
    assert sorted(p.relative_to(tmp_path / "reports").as_posix() for p in (tmp_path / "reports").rglob("*.png")) == [
        "a.wav.png",
        "sub/b.flac.png",
    ]
    with pytest.raises(BounceError, match="must be a folder"):
        bounce(folder, tmp_path / "out2", overrides=NO_LOUDNESS, effect=DelayEffect(), report=tmp_path / "r.png")


def test_bounce_file_runs_one_file_without_the_cli_and_returns_its_figures(tmp_path):
    audio = speech(3.0) * np.float32(0.3)
    source = encode(tmp_path / "in.wav", audio, RATE)
    result = bounce_file(source, tmp_path / "sub" / "out.flac", "podcast", effect=DelayEffect(gain=1.0), bit_depth="16")
    enhanced = decode(tmp_path / "sub" / "out.flac")[0]
    assert result.ok and result.duration_s == pytest.approx(audio.shape[1] / RATE)
    assert enhanced.shape == audio.shape
    assert result.output_lufs == pytest.approx(integrated_loudness_lufs(enhanced, RATE), abs=0.05)
    assert result.output_lufs == pytest.approx(-16.0, abs=0.3)
    assert result.gain_db >= -16.0 - integrated_loudness_lufs(audio, RATE)  # the limiter costs loudness, never adds
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(60))
    with pytest.raises(FileBounceError, match="bad.wav: cannot decode"):
        bounce_file(tmp_path / "bad.wav", tmp_path / "bad-out.wav", "podcast", effect=DelayEffect())
    assert not (tmp_path / "bad-out.wav").exists()


def test_the_progress_reporter_draws_a_bar_on_a_terminal_and_logs_lines_otherwise(caplog):
    stream = io.StringIO()
    bar = ProgressReporter(stream, bar=True)
    bar(Path("a.wav"), "enhance", 30.0, 60.0)
    bar(Path("a.wav"), "done", 60.0, 60.0)
    assert stream.getvalue() == "\ra.wav enhance [" + "#" * 15 + " " * 15 + "]  50% 0:30/1:00\n"
    lines = ProgressReporter(io.StringIO(), bar=False, interval_s=0.0)
    with caplog.at_level(logging.INFO):
        lines(Path("a.wav"), "normalise", 75.0, 3700.0)
    assert "a.wav: normalise 1:15 of 1:01:40" in caplog.text
