"""MIDI automation in ``bounce``: control changes land at their times on the input's timeline, smoothed.

The classic engine on a few seconds of synthetic speech. The references are bounces without
MIDI: ``mix`` only mixes (the wet path does not depend on it), so around a ``mix`` change the
output is known exactly from the dry input and the wet bounce. Float WAVs keep the comparisons
free of quantisation; what two bounces may differ by besides the automation is the effect's
block-split tolerance (``BLOCK_SPLIT_TOLERANCE``), as the automation splits the blocks.
"""

from __future__ import annotations

import hashlib
import logging
import shutil

import mido
import numpy as np
import pytest
import soundfile
from synthetic import noisy_speech, write_midi

from speakup_fx.atomic import TEMP_PREFIX
from speakup_fx.bounce import BounceError, bounce, bounce_file
from speakup_fx.bounce.automation import AutomationError
from speakup_fx.cli import main
from speakup_fx.effect import SpeakUp
from speakup_fx.engine import MIX_RAMP_MS
from speakup_fx.params import PARAM_SPECS
from speakup_fx.presets import load_preset
from speakup_fx.stages.base import HOP_MS

RATE = 48_000
BLOCK_SPLIT_TOLERANCE = 1e-5
"""The design's bound on how much the output may depend on how the stream is split into calls."""
PODCAST_QUIET = load_preset("podcast").with_overrides({"loudness": False})  # maps CC 11 -> mix


def cc(control: int, value: int, ticks: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, time=ticks)


def tempo(bpm: float, ticks: int = 0) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=ticks)


def write_input(path, seconds: float, sample_rate: int = RATE):
    audio = noisy_speech(seconds, sample_rate)
    soundfile.write(path, audio.T, sample_rate, subtype="FLOAT")
    return path, audio[0]


def read(path) -> np.ndarray:
    return soundfile.read(path, dtype="float32")[0]


def leftovers(folder) -> list:
    return [path.name for path in folder.iterdir() if path.name.startswith(TEMP_PREFIX)]


def test_a_cc11_ramp_goes_from_the_dry_input_to_the_fully_processed_output(tmp_path) -> None:
    # Tempo map: 240 bpm for 4 beats (1 s; 2 s if the tempo were ignored), then 60 bpm: the ramp 0 -> 127
    # climbs one step every 2 ticks (1/240 s) from 1 s to 1.529 s.
    source, dry = write_input(tmp_path / "in.wav", 2.6)
    ramp = [cc(11, value, ticks=2) for value in range(1, 128)]
    midi = write_midi(tmp_path / "ramp.mid", [[tempo(240), tempo(60, ticks=1920)], [cc(11, 0), cc(11, 0, 1920), *ramp]])
    automated, wet = tmp_path / "automated.wav", tmp_path / "wet.wav"
    bounce_file(source, automated, PODCAST_QUIET, bit_depth="32f", midi=midi)
    bounce_file(source, wet, PODCAST_QUIET, bit_depth="32f")
    out, processed = read(automated), read(wet)
    ramp_start, ramp_end = RATE, round((1 + 127 * 2 / 480) * RATE)
    settled = ramp_end + RATE * MIX_RAMP_MS // 1000  # the mix glides this long after its last change
    assert np.abs(processed - dry).max() > 0.05  # the two ends differ audibly
    np.testing.assert_allclose(out[:ramp_start], dry[:ramp_start], rtol=0, atol=1e-6)  # mix 0: the dry path exactly
    np.testing.assert_allclose(out[settled:], processed[settled:], rtol=0, atol=BLOCK_SPLIT_TOLERANCE)
    assert len(out) - settled > RATE  # ... over the whole last second
    # In between, the wet share (least squares over 10 ms) climbs with the ramp.
    windows = range(ramp_start, ramp_end, RATE // 100)
    shares = [
        np.dot(out[i : i + 480] - dry[i : i + 480], processed[i : i + 480] - dry[i : i + 480])
        / np.dot(processed[i : i + 480] - dry[i : i + 480], processed[i : i + 480] - dry[i : i + 480])
        for i in windows
    ]
    assert np.all(np.diff(shares) > 0)
    expected = [(i - ramp_start) / (ramp_end - ramp_start) for i in windows]
    np.testing.assert_allclose(shares, expected, atol=0.05)  # steps of 1/127, each gliding 20 ms behind


@pytest.mark.parametrize("sample_rate", [48_000, 44_100])
def test_a_step_lands_on_its_sample_and_glides_over_the_mix_ramp(tmp_path, sample_rate) -> None:
    source, dry = write_input(tmp_path / "in.wav", 1.2, sample_rate)
    midi = write_midi(tmp_path / "step.mid", [[cc(11, 0), cc(11, 127, ticks=720)]])  # 120 bpm: 0.75 s
    automated, wet = tmp_path / "automated.wav", tmp_path / "wet.wav"
    bounce_file(source, automated, PODCAST_QUIET, bit_depth="32f", midi=midi)
    bounce_file(source, wet, PODCAST_QUIET, bit_depth="32f")
    out, processed = read(automated), read(wet)
    step, ramp_frames = round(0.75 * sample_rate), sample_rate * MIX_RAMP_MS // 1000
    gain = np.minimum(np.arange(1, len(dry) - step + 1) / ramp_frames, 1.0).astype(np.float32)
    expected = np.concatenate([dry[:step], dry[step:] + gain * (processed[step:] - dry[step:])])
    np.testing.assert_allclose(out, expected, rtol=0, atol=BLOCK_SPLIT_TOLERANCE)


def test_a_stage_parameter_lands_within_one_hop_of_its_time(tmp_path) -> None:
    # output_gain_db acts after the spectral denoiser (30 ms of latency): handed over on the input's time it
    # would be heard 3 hops early.
    preset_path = tmp_path / "gain.toml"
    preset_path.write_text(
        'name = "gain"\n[options]\nengine = "classic"\nloudness = false\nlimiter = false\nleveler = false\n'
        'compressor = false\n[midi]\n7 = "output_gain_db"\n'
    )
    spec = PARAM_SPECS["output_gain_db"]
    before_db, after_db = spec.from_normalised(64 / 127), spec.from_normalised(80 / 127)
    source, _ = write_input(tmp_path / "in.wav", 1.5)
    midi = write_midi(tmp_path / "gain.mid", [[cc(7, 64), cc(7, 80, ticks=720)]])  # 0.75 s
    automated, reference = tmp_path / "automated.wav", tmp_path / "reference.wav"
    bounce_file(source, automated, preset_path, bit_depth="32f", midi=midi)
    unautomated = load_preset(preset_path).with_overrides({"output_gain_db": before_db})
    bounce_file(source, reference, unautomated, bit_depth="32f")
    out, ref = read(automated), read(reference)
    step, hop = round(0.75 * RATE), RATE * HOP_MS // 1000
    first_change = int(np.argmax(np.abs(out - ref) > BLOCK_SPLIT_TOLERANCE))
    assert step - hop <= first_change <= step + hop
    later = step + RATE // 4  # the gain's smoothing (20 ms time constant) has settled
    np.testing.assert_allclose(out[later:], ref[later:] * 10 ** ((after_db - before_db) / 20), rtol=1e-4, atol=1e-6)


def test_the_loudness_pass_normalises_the_automated_audio_the_same_on_every_run(tmp_path) -> None:
    source, _ = write_input(tmp_path / "in.wav", 2.0)
    midi = write_midi(tmp_path / "ramp.mid", [[cc(11, 0), *(cc(11, value, ticks=4) for value in range(1, 128))]])
    loud = load_preset("podcast").with_overrides({"limiter": False})  # the loudness pass is then a pure gain
    # 24-bit: float WAVs carry a time stamp (libsndfile's PEAK chunk), so only integer ones can match byte for byte.
    results = [bounce_file(source, tmp_path / f"loud{run}.wav", loud, midi=midi) for run in (1, 2)]
    bounce_file(source, tmp_path / "quiet.wav", loud.with_overrides({"loudness": False}), bit_depth="32f", midi=midi)
    first, second = (tmp_path / "loud1.wav").read_bytes(), (tmp_path / "loud2.wav").read_bytes()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    gain = 10 ** (results[0].gain_db / 20)
    assert abs(results[0].gain_db) > 1  # a gain that shows
    one_step = 2.0**-23  # of a 24-bit sample
    np.testing.assert_allclose(read(tmp_path / "loud1.wav"), read(tmp_path / "quiet.wav") * gain, rtol=0, atol=one_step)


def _refusing_preset(tmp_path):
    path = tmp_path / "ceiling.toml"
    path.write_text('name = "ceiling"\n[options]\nengine = "classic"\n[midi]\n11 = "limiter_ceiling_dbtp"\n')
    return path  # loudness on: the chain's limiter is off, so its ceiling is not a parameter of the chain


@pytest.mark.parametrize(
    "midi_bytes, preset, problem",
    [
        (b"MThd garbage", lambda tmp_path: PODCAST_QUIET, "not a valid standard MIDI file"),
        (None, lambda tmp_path: PODCAST_QUIET, "none of its control changes"),  # CC 7 only: unmapped in podcast
        (None, _refusing_preset, "limiter_ceiling_dbtp.*does not use"),
    ],
    ids=["malformed", "no mapped controller", "parameter not in the chain"],
)
def test_a_midi_file_that_cannot_automate_the_bounce_fails_before_anything_is_written(
    tmp_path, midi_bytes, preset, problem
) -> None:
    source, _ = write_input(tmp_path / "in.wav", 0.5)
    midi = tmp_path / "bad.mid"
    if midi_bytes is not None:
        midi.write_bytes(midi_bytes)
    else:
        write_midi(midi, [[cc(7 if "none" in problem else 11, 10)]])
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    existing = out_folder / "out.wav"
    existing.write_bytes(b"an earlier bounce")
    with pytest.raises(AutomationError, match=problem) as caught:
        bounce_file(source, existing, preset(tmp_path), overwrite=True, midi=midi)
    assert str(midi) in str(caught.value)
    assert existing.read_bytes() == b"an earlier bounce" and leftovers(out_folder) == []
    with pytest.raises(BounceError, match=problem) as batch_error:  # a batch refuses it before any file
        bounce([source], out_folder / "folder", preset=preset(tmp_path), midi=midi)
    assert batch_error.value.results is None and not (out_folder / "folder").exists()


def test_unmapped_controllers_and_late_changes_are_warnings_naming_them(tmp_path, caplog) -> None:
    source, _ = write_input(tmp_path / "in.wav", 0.5)
    midi = write_midi(tmp_path / "mixed.mid", [[cc(11, 64), cc(74, 3), cc(11, 0, ticks=960)]])  # last at 1 s
    with caplog.at_level(logging.WARNING):
        result = bounce_file(source, tmp_path / "out.wav", PODCAST_QUIET, midi=midi)
    assert any("CC 74 on channel 1" in warning and "podcast" in warning for warning in result.warnings)
    assert any("1 control change(s) from 1.000 s" in warning and "end of the audio" in warning
               for warning in result.warnings)
    assert all(warning in caplog.text for warning in result.warnings)


def test_the_cli_automates_every_input_and_leaves_a_shared_effect_as_it_found_it(tmp_path, caplog) -> None:
    source, _ = write_input(tmp_path / "in.wav", 1.0)
    shutil.copy(source, tmp_path / "copy.wav")
    midi = write_midi(tmp_path / "step.mid", [[cc(11, 0), cc(11, 127, ticks=480)]])
    single = tmp_path / "single.wav"
    assert main(["bounce", str(source), "-o", str(single), "--set", "loudness=false", "--midi", str(midi)]) == 0
    folder = tmp_path / "batch"
    args = ["bounce", str(source), str(tmp_path / "copy.wav"), "-o", str(folder), "--set", "loudness=false"]
    assert main([*args, "--midi", str(midi)]) == 0
    assert (folder / "in.wav").read_bytes() == (folder / "copy.wav").read_bytes() == single.read_bytes()
    # The automated parameter returns to the preset's value: a later bounce with the same effect is unautomated.
    effect = SpeakUp(preset=PODCAST_QUIET)
    bounce_file(source, tmp_path / "a.wav", PODCAST_QUIET, effect=effect, midi=midi)
    assert effect.mix == 1.0
    bounce_file(source, tmp_path / "b.wav", PODCAST_QUIET, effect=effect)
    bounce_file(source, tmp_path / "c.wav", PODCAST_QUIET)
    assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "c.wav").read_bytes()
    with caplog.at_level(logging.ERROR):
        assert main(["bounce", str(source), "-o", str(tmp_path / "no.wav"), "--midi", str(tmp_path / "nope.mid")]) == 2
    assert "nope.mid: no such MIDI file" in caplog.text and not (tmp_path / "no.wav").exists()
