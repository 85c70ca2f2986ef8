"""plugin/generated/SpeakUpInfo.hpp matches params.py, the presets and the engine's latency."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "plugin"))
import generate_header  # noqa: E402

sys.path.pop(0)


def test_the_checked_in_plugin_header_is_up_to_date():
    presets = generate_header.all_presets()
    expected = generate_header.render(presets, generate_header.engine_latency_bound_ms(presets))
    assert generate_header.HEADER_PATH.read_text() == expected, "run: python plugin/generate_header.py"


@pytest.mark.parametrize("sample_rate", [12000, 37800, 50000, 64000, 128000])
def test_the_latency_bound_covers_every_program_at_unlisted_rates(sample_rate):
    presets = generate_header.all_presets()
    header = generate_header.HEADER_PATH.read_text()
    bound_ms = int(header.split("kEngineLatencyBoundMs = ")[1].split(";")[0])
    bound_samples = generate_header.plugin_latency_samples(bound_ms, sample_rate) - generate_header.BRIDGE_BLOCK_FRAMES
    for options in {preset.options for preset in presets}:
        assert generate_header.engine_latency_samples(options, sample_rate, 2) <= bound_samples
