"""SpeakUp.vst3 built with CMake (DPF from dpf-source) and hosted by pedalboard, without a server.

The bundles here are not installed (no interpreter recorded), so the plugin never starts a
server and runs in its fallback: the dry input delayed by exactly the latency it reports.
These tests check that contract, the parameters and programs a host sees, and the build's
flags; tests/integration/test_plugin_server.py covers the plugin with its server.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pedalboard
import pytest

from plugin_build import BUILD_DIR, REPO_ROOT, plugin_bundles
from speakup_fx.params import PARAMS
from speakup_fx.presets import list_presets, load_preset

SAMPLE_RATE = 48000

sys.path.insert(0, str(REPO_ROOT / "plugin"))
from generate_header import BRIDGE_BLOCK_FRAMES, plugin_latency_samples  # noqa: E402

sys.path.pop(0)


def engine_latency_bound_ms() -> int:
    header = (REPO_ROOT / "plugin" / "generated" / "SpeakUpInfo.hpp").read_text()
    line = next(line for line in header.splitlines() if "kEngineLatencyBoundMs =" in line)
    return int(line.rsplit("=", 1)[1].strip(" ;"))


@pytest.fixture(scope="module")
def bundles() -> dict[str, Path]:
    return plugin_bundles()


@pytest.fixture(scope="module")
def stereo(bundles):
    return pedalboard.load_plugin(str(bundles["SpeakUp"]))


def test_the_build_never_uses_fast_math(bundles):
    commands = json.loads((BUILD_DIR / "compile_commands.json").read_text())
    plugin_commands = [c["command"] for c in commands if "SpeakUp" in c["command"]]
    assert plugin_commands
    assert not any("-ffast-math" in command or "-Ofast" in command for command in plugin_commands)


def test_mono_and_stereo_variants_load_under_distinct_names(bundles):
    mono = pedalboard.load_plugin(str(bundles["SpeakUpMono"]))
    stereo = pedalboard.load_plugin(str(bundles["SpeakUp"]))
    assert (mono.name, stereo.name) == ("SpeakUp Mono", "SpeakUp")
    assert mono(np.ones((1, 64), np.float32), SAMPLE_RATE).shape == (1, 64)


def test_every_parameter_of_params_py_is_visible_with_its_range(stereo):
    parameters = stereo.parameters
    assert [name for name in parameters if name not in ("current_program", "latency_frames")] == [
        spec.name for spec in PARAMS
    ]
    for spec in PARAMS:
        parameter = parameters[spec.name]
        low, high, _ = parameter.range
        assert (low, high) == pytest.approx((spec.minimum, spec.maximum), rel=1e-6)


def test_parameters_are_settable_from_the_host(stereo):
    stereo.highpass_hz = 150.0
    stereo.output_gain_db = -6.0
    assert stereo.highpass_hz == pytest.approx(150.0, abs=0.5)
    assert stereo.output_gain_db == pytest.approx(-6.0, abs=0.05)


def test_every_preset_is_a_program(stereo):
    programs = stereo.parameters["current_program"].valid_values
    assert list(programs) == [load_preset(name).name for name in list_presets()]
    stereo.current_program = "podcast"
    assert stereo.current_program == "podcast"


@pytest.mark.parametrize("buffer_size", [32, 512, 4096])
def test_without_a_server_the_output_is_the_dry_input_aligned_by_the_reported_latency(stereo, buffer_size):
    """pedalboard (reset=True) removes exactly the reported latency, so any other delay would show."""
    latency = plugin_latency_samples(engine_latency_bound_ms(), SAMPLE_RATE)
    assert latency == math.ceil(engine_latency_bound_ms() * SAMPLE_RATE / 1000) + BRIDGE_BLOCK_FRAMES
    audio = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 3 * latency)).astype(np.float32)
    chain = pedalboard.Pedalboard([stereo])
    np.testing.assert_array_equal(chain(audio, SAMPLE_RATE, buffer_size=buffer_size), audio)


def test_a_new_instance_starts_at_the_parameter_defaults(bundles):
    fresh = pedalboard.load_plugin(str(bundles["SpeakUp"]))
    for spec in PARAMS:
        assert getattr(fresh, spec.name) == pytest.approx(spec.default, abs=1e-3 * (spec.maximum - spec.minimum))
