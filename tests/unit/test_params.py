"""Parameter specs: one plain <-> normalised mapping, one validation rule, attributes visible to type checkers."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import speakup_fx.effect
from speakup_fx.effect import Param, SpeakUp
from speakup_fx.params import PARAM_SPECS, PARAMS


@pytest.mark.parametrize("spec", PARAMS, ids=lambda spec: spec.name)
def test_normalised_values_map_the_range_onto_zero_to_one_and_back(spec):
    assert spec.to_normalised(spec.minimum) == 0.0 and spec.to_normalised(spec.maximum) == 1.0
    for x in (0.0, 0.25, 0.5, 1.0):
        assert spec.to_normalised(spec.from_normalised(x)) == pytest.approx(x, abs=1e-12)
    for bad in (-0.01, 1.01, float("nan"), True):
        with pytest.raises(ValueError, match=spec.name):
            spec.from_normalised(bad)


def test_one_validation_rule_numbers_and_their_text_pass_booleans_do_not():
    spec = PARAM_SPECS["mix"]
    assert spec.validate(1) == 1.0 and spec.validate("0.5") == 0.5 and spec.validate(np.float32(0.25)) == 0.25
    for bad in (True, False, np.bool_(True), None, "half", [0.5]):
        with pytest.raises(ValueError, match="mix: expected a number"):
            spec.validate(bad)


def test_every_parameter_is_declared_on_the_class_for_type_checkers():
    declared = {name for name, value in vars(SpeakUp).items() if isinstance(value, Param)}
    assert declared == set(PARAM_SPECS)
    tree = ast.parse(inspect.getsource(speakup_fx.effect))
    speakup = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SpeakUp")
    in_source = {target.id for node in speakup.body if isinstance(node, ast.Assign) for target in node.targets
                 if isinstance(target, ast.Name)}
    assert set(PARAM_SPECS) <= in_source  # written out, not set by a loop a type checker cannot follow
    assert (Path(speakup_fx.effect.__file__).parent / "py.typed").is_file()
