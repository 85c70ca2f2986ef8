"""MIDI automation: reading a file's control changes in seconds, checking them against a MIDI map, splitting blocks."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from synthetic import write_midi

from speakup_fx import SpeakUp
from speakup_fx.bounce.automation import (
    Automation,
    AutomationError,
    AutomationPlayer,
    ControlChange,
    read_automation,
    schedule,
)


def cc(control: int, value: int, ticks: int = 0, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value, time=ticks)


def tempo(bpm: float, ticks: int = 0) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=ticks)


def test_times_follow_the_tempo_map_of_a_separate_tempo_track(tmp_path) -> None:
    # 480 ticks a beat: 120 bpm for two beats (1 s), then 60 bpm. A CC one beat after the change is at 2 s,
    # not at 1.5 s as it would be if the tempo change were ignored.
    path = write_midi(
        tmp_path / "tempo.mid",
        [[tempo(120), tempo(60, ticks=960)], [cc(11, 0, ticks=480), cc(11, 127, ticks=960), cc(1, 5, ticks=0)]],
    )
    automation = read_automation(path)
    assert [change.time_s for change in automation.changes] == pytest.approx([0.5, 2.0, 2.0], abs=1e-9)
    assert [(c.control, c.value) for c in automation.changes] == [(11, 0), (11, 127), (1, 5)]


def test_without_a_tempo_the_default_120_bpm_and_the_files_resolution_apply(tmp_path) -> None:
    path = write_midi(tmp_path / "plain.mid", [[cc(11, 64, ticks=96)]], ticks_per_beat=96)
    assert read_automation(path).changes == (ControlChange(0.5, 0, 11, 64),)


def _truncated(tmp_path):
    data = write_midi(tmp_path / "whole.mid", [[cc(11, 0), cc(11, 127, ticks=960)]]).read_bytes()
    (tmp_path / "bad.mid").write_bytes(data[:-6])


def _bad_data_byte(tmp_path):
    data = bytearray(write_midi(tmp_path / "whole.mid", [[cc(11, 0), cc(11, 99, ticks=960)]]).read_bytes())
    data[data.index(bytes([11, 99])) + 1] = 200
    (tmp_path / "bad.mid").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda tmp_path: (tmp_path / "bad.mid").write_bytes(b"RIFF....WAVEfmt not a MIDI file"), "not a valid"),
        (_truncated, "ends in the middle"),
        (_bad_data_byte, "not a valid"),
        (lambda tmp_path: write_midi(tmp_path / "bad.mid", [[cc(11, 0)]], midi_type=2), "type-2"),
        (lambda tmp_path: write_midi(tmp_path / "bad.mid", [[mido.Message("note_on", note=60)]]), "no control changes"),
        (lambda tmp_path: None, "no such MIDI file"),
        (lambda tmp_path: (tmp_path / "bad.mid").mkdir(), "cannot read"),
    ],
    ids=["not midi", "truncated", "bad data byte", "type 2", "no control changes", "missing", "a folder"],
)
def test_an_unusable_midi_file_is_an_error_naming_it_and_the_problem(tmp_path, make, problem) -> None:
    make(tmp_path)
    with pytest.raises(AutomationError, match=problem) as caught:
        read_automation(tmp_path / "bad.mid")
    assert str(tmp_path / "bad.mid") in str(caught.value)


AUTOMATION = Automation(
    "a.mid", (ControlChange(0.0, 0, 11, 0), ControlChange(0.5, 3, 7, 10), ControlChange(1.0, 0, 11, 127))
)


def test_mapped_changes_carry_their_parameter_and_unmapped_controllers_warn_with_their_channel() -> None:
    mapped = AUTOMATION.mapped({11: "mix", 1: "denoise_amount"}, {"mix", "denoise_amount"}, "podcast")
    assert [(change.time_s, name) for change, name in mapped.changes] == [(0.0, "mix"), (1.0, "mix")]
    assert len(mapped.warnings) == 1
    warning = mapped.warnings[0]
    assert "CC 7 on channel 4" in warning and "podcast" in warning and "a.mid" in warning


def test_a_file_without_any_mapped_controller_is_an_error() -> None:
    with pytest.raises(AutomationError, match="none of its control changes.*CC 1 -> denoise_amount"):
        AUTOMATION.mapped({1: "denoise_amount"}, {"denoise_amount"}, "podcast")


def test_a_controller_driving_a_parameter_the_chain_does_not_use_is_an_error() -> None:
    with pytest.raises(AutomationError, match="CC 7 .*limiter_ceiling_dbtp.*does not use"):
        AUTOMATION.mapped({11: "mix", 7: "limiter_ceiling_dbtp"}, {"mix"}, "restore")


def test_changes_are_handed_over_their_parameters_delay_late_in_file_order_at_equal_frames() -> None:
    mapped = [(ControlChange(0.5, 0, 11, 1), "mix"), (ControlChange(0.5, 0, 1, 2), "denoise_amount"),
              (ControlChange(0.51, 0, 1, 3), "denoise_amount"), (ControlChange(0.52, 0, 1, 4), "denoise_amount")]
    delays = {"mix": 0.02, "denoise_amount": 0.0}
    scheduled = schedule(mapped, delays.__getitem__, 1000)
    assert [(item.change.value, item.time_frame, item.handover_frame) for item in scheduled] == [
        (2, 500, 500), (3, 510, 510), (1, 500, 520), (4, 520, 520)
    ]


def test_the_player_splits_blocks_at_handovers_and_applies_each_change_before_its_block() -> None:
    changes = [ControlChange(t, 0, 11, v) for t, v in [(0.0, 0), (0.0025, 1), (0.0025, 2), (0.007, 3), (0.0095, 4)]]
    scheduled = schedule([(change, "mix") for change in changes], lambda name: 0.001, 1000)
    applied: list[int] = []
    player = AutomationPlayer(scheduled, lambda change: applied.append(change.value))
    player.start()
    assert applied == [0]  # time 0: before the stream
    seen = []
    for block in player.blocks(np.arange(9, dtype=np.float32).reshape(1, 9)[:, i : i + 5] for i in (0, 5)):
        seen.append((block[0].tolist(), list(applied)))
    # handovers (time + 1 ms) at frames 4, 4, 8 and 10; the last one's time (frame 10) is past the 9 frames:
    # never applied, reported late.
    assert seen == [([0, 1, 2, 3], [0]), ([4], [0, 1, 2]), ([5, 6, 7], [0, 1, 2]), ([8], [0, 1, 2, 3])]
    assert [change.value for change in player.late] == [4]


def test_a_change_inside_the_audio_but_due_after_its_end_is_made_at_the_end() -> None:
    scheduled = schedule([(ControlChange(0.008, 0, 11, 5), "mix")], lambda name: 0.005, 1000)
    applied: list[int] = []
    player = AutomationPlayer(scheduled, lambda change: applied.append(change.value))
    blocks = list(player.blocks([np.zeros((1, 10), np.float32)]))
    assert [block.shape[1] for block in blocks] == [10] and applied == [5] and player.late == []


def test_the_effect_reports_where_each_parameter_acts_in_its_chain() -> None:
    effect = SpeakUp(preset="podcast")
    effect.prepare(48_000, 1)
    assert effect.parameter_delay_s("mix") == effect.latency_samples / 48_000
    assert effect.parameter_delay_s("highpass_hz") == 0.0  # the first stage
    denoise = next(stage for stage in effect._engine.stages if "denoise_amount" in stage.uses)
    after_denoise_s = denoise.latency_samples / denoise.output_sample_rate
    assert after_denoise_s > 0
    assert effect.parameter_delay_s("denoise_amount") == 0.0
    assert effect.parameter_delay_s("output_gain_db") == pytest.approx(after_denoise_s)
    with pytest.raises(ValueError, match="mixx"):
        effect.parameter_delay_s("mixx")
