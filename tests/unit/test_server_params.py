"""The server reads a plugin's parameter block defensively: a peer may write anything there."""

from __future__ import annotations

import math
import uuid

import pytest

from speakup_fx._native import BridgeSegment, bridge_segment_prefix
from speakup_fx.params import PARAM_SPECS, PARAMS
from speakup_fx.server.serve import params_of


@pytest.fixture
def segment():
    name = f"{bridge_segment_prefix()}unit-{uuid.uuid4().hex[:8]}"
    created = BridgeSegment.create(name, 2, 48000, 512, len(PARAMS) + 1, 0, 4096)
    yield created
    created.unlink()


def test_values_are_clamped_into_range_and_non_finite_ones_become_defaults(segment):
    index = {spec.name: i for i, spec in enumerate(PARAMS)}
    segment.set_param(index["highpass_hz"], 1e9)
    segment.set_param(index["presence_db"], -1e9)
    segment.set_param(index["mix"], math.nan)
    segment.set_param(len(PARAMS), 3.0)
    params, program = params_of(segment)
    assert params["highpass_hz"] == PARAM_SPECS["highpass_hz"].maximum
    assert params["presence_db"] == PARAM_SPECS["presence_db"].minimum
    assert params["mix"] == PARAM_SPECS["mix"].default
    assert program == 3


def test_a_non_finite_program_index_means_the_default_chain(segment):
    segment.set_param(len(PARAMS), math.inf)
    assert params_of(segment)[1] == -1
