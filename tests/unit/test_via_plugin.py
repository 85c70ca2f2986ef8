"""``bounce --via-plugin``: what it refuses before loading anything (the render itself:
tests/integration/test_plugin_server.py)."""

from __future__ import annotations

import pytest

from speakup_fx.bounce.via_plugin import PluginEffect, via_plugin_effect
from speakup_fx.cli import main
from speakup_fx.presets import Preset, load_preset


def test_no_installed_plugin_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no SpeakUp VST3 plugin is installed in .*speakup install-plugin"):
        PluginEffect(load_preset("podcast"), vst3_folder=tmp_path)


def test_the_cli_reports_a_missing_plugin_and_writes_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HOME", str(tmp_path))
    source = tmp_path / "in.wav"
    source.write_bytes(b"")
    assert main(["bounce", str(source), "-o", str(tmp_path / "out.wav"), "--via-plugin"]) == 2
    assert "no SpeakUp VST3 plugin is installed" in caplog.text
    assert not (tmp_path / "out.wav").exists()


def test_a_preset_that_is_not_a_program_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'mine' is not a program"):
        PluginEffect(Preset(name="mine"), vst3_folder=tmp_path)


def test_changing_a_chain_option_of_the_program_is_refused_but_loudness_is_the_bounce_s(tmp_path):
    (tmp_path / "SpeakUp.vst3").mkdir()
    with pytest.raises(ValueError, match="chain options cannot be changed \\(compressor=False\\)"):
        PluginEffect(load_preset("podcast").with_overrides({"compressor": "false"}), vst3_folder=tmp_path)
    PluginEffect(load_preset("podcast").with_overrides({"loudness": "false"}), vst3_folder=tmp_path)


def test_device_is_refused_with_via_plugin():
    with pytest.raises(ValueError, match="--device does not apply to --via-plugin"):
        via_plugin_effect("podcast", {}, device="cpu")
