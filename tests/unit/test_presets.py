"""Preset files and their schema: every shipped preset validates; bad keys and values are named."""

from __future__ import annotations

import dataclasses

import pytest

from speakup_fx.params import PARAM_SPECS, ChainOptions
from speakup_fx.presets import PRESETS_DIR, Preset, list_presets, load_preset, parse_assignment, save_preset

SHIPPED = ["audiobook-acx", "bandwidth-extension", "broadcast-r128", "lecture-room", "podcast", "restore", "video-call-rescue", "voice-over"]


def test_every_preset_file_validates_and_is_named_after_its_file():
    files = sorted(PRESETS_DIR.glob("*.toml"))
    assert [path.stem for path in files] == SHIPPED == list_presets()
    for path in files:
        by_path, by_name = load_preset(path), load_preset(path.stem)
        assert by_path == by_name
        assert by_name.name == path.stem
        assert by_name.description.strip()
        assert all(target in PARAM_SPECS for target in by_name.midi_map.values())


@pytest.mark.parametrize("name, target_lufs, ceiling_dbtp", [("podcast", -16.0, -1.0), ("broadcast-r128", -23.0, -1.0)])
def test_delivery_presets_pin_their_loudness_standard(name, target_lufs, ceiling_dbtp):
    preset = load_preset(name)
    assert preset.params["target_lufs"] == target_lufs
    assert preset.params["limiter_ceiling_dbtp"] == ceiling_dbtp
    assert preset.options.loudness and preset.options.limiter


def test_audiobook_preset_fits_acx():
    values = load_preset("audiobook-acx").parameter_values()
    assert -23.0 <= values["target_lufs"] <= -18.0  # ACX RMS window
    assert values["limiter_ceiling_dbtp"] <= -3.0  # ACX peak rule
    assert values["denoise_amount"] >= 0.9  # ACX noise floor <= -60 dB


def test_lecture_room_dereverberates_strongly():
    assert load_preset("lecture-room").parameter_values()["dereverb_amount"] >= 0.9


def test_restore_is_enhancement_only():
    preset = load_preset("restore")
    off = dict.fromkeys(("highpass", "dehum", "eq", "leveler", "compressor", "limiter", "loudness"), False)
    assert preset.options == ChainOptions(engine="neural", **off)
    assert preset.parameter_values()["mix"] == 1.0


def test_bandwidth_extension_preset_runs_the_model_alone():
    preset = load_preset("bandwidth-extension")
    off = dict.fromkeys(("highpass", "dehum", "expander", "eq", "leveler", "compressor", "limiter", "loudness"), False)
    assert preset.options == ChainOptions(engine="classic", bandwidth_extension=True, **off)
    values = preset.parameter_values()
    assert values["denoise_amount"] == values["dereverb_amount"] == 0.0 and values["mix"] == 1.0
    assert values["output_gain_db"] == 0.0


def test_parameter_values_fill_in_the_defaults():
    values = load_preset("podcast").parameter_values()
    assert set(values) == set(PARAM_SPECS)
    assert values["highpass_hz"] == PARAM_SPECS["highpass_hz"].default


def write(tmp_path, text: str, name: str = "mine"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ('[params]\ndenoise_amoun = 0.5', "mine.params.denoise_amoun: unknown parameter"),
        ("[params]\ndenoise_amount = 1.5", "mine.params.denoise_amount: 1.5 is outside [0.0, 1.0]"),
        ('[params]\ndenoise_amount = "lots"', "mine.params.denoise_amount: expected a number, got 'lots'"),
        ("[params]\ndenoise_amount = true", "mine.params.denoise_amount: expected a number, got True"),
        ("[params]\ndenoise_amount = nan", "mine.params.denoise_amount: nan is outside"),
        ("[options]\nturbo = true", "mine.options.turbo: unknown option"),
        ('[options]\nengine = "quantum"', "mine.options.engine: expected one of ('classic', 'neural'), got 'quantum'"),
        ('[options]\nlimiter = "yes"', "mine.options.limiter: expected true or false, got 'yes'"),
        ('[midi]\n128 = "mix"', "mine.midi.128: MIDI CC 128 is outside 0..127"),
        ('[midi]\nmodwheel = "mix"', "mine.midi.modwheel: expected a MIDI CC number 0..127"),
        ('[midi]\n1 = "volume"', "mine.midi.1: 'volume' is not a parameter"),
        ("colour = 3", "mine.colour: unknown key"),
        ("params = 3", "mine.params: expected a table"),
        ("name = 3", "mine.name: expected a string"),
        ("[params\n", "not valid TOML"),
    ],
)
def test_bad_preset_files_raise_an_error_naming_the_dotted_key(tmp_path, text, message):
    with pytest.raises(ValueError) as caught:
        load_preset(write(tmp_path, text))
    assert message in str(caught.value)


def test_a_minimal_preset_file_is_all_defaults(tmp_path):
    preset = load_preset(write(tmp_path, 'description = "nothing changed"'))
    assert preset == Preset(name="mine", description="nothing changed")


def test_unknown_preset_names_list_the_shipped_ones():
    with pytest.raises(ValueError, match="unknown preset 'podcats'; available: audiobook-acx, bandwidth-extension, broadcast-r128"):
        load_preset("podcats")


def test_a_preset_round_trips_through_save(tmp_path):
    original = dataclasses.replace(
        load_preset("restore"), name="mine", midi_map={7: "output_gain_db", 1: "denoise_amount"}
    ).with_overrides({"highpass": True, "air_db": 4.5})
    save_preset(original, tmp_path / "mine.toml")
    assert load_preset(tmp_path / "mine.toml") == original
    assert [p.name for p in tmp_path.iterdir()] == ["mine.toml"]


def test_overrides_parse_command_line_strings():
    preset = load_preset("podcast").with_overrides({"denoise_amount": "0.25", "dehum": "off", "engine": "neural"})
    assert preset.params["denoise_amount"] == 0.25
    assert preset.options.dehum is False and preset.options.engine == "neural"
    assert load_preset("podcast").params.get("denoise_amount") is None, "the loaded preset is not changed"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"denoise_amoun": 0.5}, "override denoise_amoun: unknown parameter or option"),
        ({"target_lufs": "-100"}, "override target_lufs: -100.0 is outside [-40.0, -5.0]"),
        ({"eq": "maybe"}, "override eq: expected true or false, got 'maybe'"),
        ({"engine": "quantum"}, "override engine: expected one of"),
    ],
)
def test_bad_overrides_raise_an_error_naming_the_key(overrides, message):
    with pytest.raises(ValueError) as caught:
        load_preset("podcast").with_overrides(overrides)
    assert message in str(caught.value)


def test_assignments_split_on_the_first_equals_sign():
    assert parse_assignment(" engine = neural ") == ("engine", "neural")
    for bad in ("engine", "=neural", "engine="):
        with pytest.raises(ValueError, match="expected KEY=VALUE"):
            parse_assignment(bad)
