"""SmoothedParam and hop_ramp: parameter glides are per hop, validated, and reset to the target."""

from __future__ import annotations

import numpy as np
import pytest

from speakup_fx.dsp.smoothing import SmoothedParam, hop_ramp
from speakup_fx.params import PARAM_SPECS


def test_starts_at_the_given_value_or_the_default():
    assert SmoothedParam("output_gain_db", {"output_gain_db": 3.0}, 0.02, 0.01).value == 3.0
    assert SmoothedParam("output_gain_db", {}, 0.02, 0.01).value == PARAM_SPECS["output_gain_db"].default


def test_out_of_range_values_are_refused_by_name():
    with pytest.raises(ValueError, match="output_gain_db"):
        SmoothedParam("output_gain_db", {"output_gain_db": 99.0}, 0.02, 0.01)
    param = SmoothedParam("output_gain_db", {}, 0.02, 0.01)
    with pytest.raises(ValueError, match="output_gain_db"):
        param.update({"output_gain_db": float("nan")})


def test_glide_follows_a_one_pole_per_hop_and_settles_exactly():
    param = SmoothedParam("output_gain_db", {"output_gain_db": 0.0}, 0.02, 0.01)
    param.update({"output_gain_db": 10.0, "unrelated": 1.0})
    values = param.hop_values(3)
    coefficient = np.exp(-0.5)
    np.testing.assert_allclose(values, [0.0, 10 * (1 - coefficient), 10 * (1 - coefficient**2), 10 * (1 - coefficient**3)])
    assert not param.settled
    param.hop_values(100)
    assert param.settled and param.value == 10.0


def test_reset_jumps_to_the_target():
    param = SmoothedParam("presence_db", {"presence_db": 0.0}, 0.05, 0.01)
    param.update({"presence_db": 6.0})
    param.advance()
    param.reset()
    assert param.value == 6.0 and param.settled


def test_hop_ramp_ends_each_hop_on_its_boundary_value():
    ramp = hop_ramp(np.array([0.0, 1.0, 1.0, 3.0]), 4)
    np.testing.assert_allclose(ramp, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0])
