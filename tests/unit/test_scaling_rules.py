"""The scaling comparison's rules (speakup_fx.train.scaling) on made-up curves; the runs themselves: tests/integration/test_ddp_scaling.py."""

import pytest

from speakup_fx.data.dataset import EpochSampler
from speakup_fx.train.scaling import (
    AGREEMENT_FACTOR,
    Arm,
    ReversedBatches,
    arms_for,
    reached,
    rms_relative_difference,
    seed_summary,
    summarize,
    threshold_of,
)


def curve(values, every=10, batch=8):
    return [{"step": i * every, "samples": i * every * batch, "train_s": i * every * 0.5, "val_total": v, "load_1min": 1.0} for i, v in enumerate(values)]


REFERENCE = [10.0 / (1 + i) for i in range(11)]  # steps 0..100


def test_reversed_batches_hold_the_same_examples_in_reverse_order_per_batch():
    sampler = EpochSampler(12, rank=0, world_size=1)
    sampler.set_epoch(3)
    reordered = ReversedBatches(sampler, 4)
    assert list(reordered) == [(3, i) for i in (3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8)]
    reordered.set_epoch(4)
    assert next(iter(reordered)) == (4, 3) and len(reordered) == 12


def test_the_threshold_is_the_references_loss_at_the_fraction_of_its_steps():
    assert threshold_of(curve(REFERENCE), 0.6) == REFERENCE[6]
    # between validation steps: the last one before the fraction
    assert threshold_of(curve(REFERENCE), 0.65) == REFERENCE[6]


def test_an_arm_reaches_the_threshold_at_its_first_validation_at_or_below_it():
    bumpy = curve([9.0, 5.0, 2.0, 3.0, 1.9, 1.0])
    assert reached(bumpy, 2.0)["step"] == 20
    assert reached(bumpy, 0.5) is None


def test_relative_difference_skips_step_zero_and_needs_common_steps():
    reference = curve(REFERENCE)
    shifted = curve([REFERENCE[0] * 5] + [v * 1.01 for v in REFERENCE[1:]])
    assert rms_relative_difference(shifted, reference) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="no validation steps in common"):
        rms_relative_difference(curve(REFERENCE[:2], every=7)[1:], reference)


def test_summary_judges_each_arm_against_the_larger_float_order_control():
    arms = arms_for(2, 8)
    assert [a.name for a in arms] == ["1proc", "1proc_reordered", "2proc", "2proc_reordered", "2proc_batchx2"]
    sign = [(-1) ** i for i in range(11)]
    control = [v * (1 + 1e-3 * s) for v, s in zip(REFERENCE, sign)]
    within = [v * (1 + 0.9 * AGREEMENT_FACTOR * 2e-3 * s) for v, s in zip(REFERENCE, sign)]
    # the 2-process control differs from its own arm by 2e-3: the tolerance is 2 x 2e-3
    within_control = [v * (1 + 2e-3 * s) for v, s in zip(within, sign)]
    faster = [10.0 / (1 + 2 * i) for i in range(11)]
    threshold, tolerance, rows = summarize({"1proc": curve(REFERENCE), "1proc_reordered": curve(control), "2proc": curve(within),
                                            "2proc_reordered": curve(within_control), "2proc_batchx2": curve(faster, batch=16)}, arms, 0.6)
    assert threshold == REFERENCE[6]
    assert tolerance == pytest.approx(AGREEMENT_FACTOR * 2e-3)
    by_arm = {row["arm"]: row for row in rows}
    assert by_arm["1proc"]["steps_to_threshold"] == 60 and by_arm["1proc"]["samples_to_threshold"] == 480
    assert by_arm["2proc"]["agrees"] == "yes" and by_arm["2proc_reordered"]["float_order_rms"] == "2.00e-03"
    # 10/(1+2s) <= 10/7 from s = 3: step 30, 30 x 16 samples; far from the reference's curve
    assert by_arm["2proc_batchx2"]["steps_to_threshold"] == 30 and by_arm["2proc_batchx2"]["samples_to_threshold"] == 480
    assert by_arm["2proc_batchx2"]["agrees"] == "no"
    assert by_arm["2proc"]["samples_per_s"] == pytest.approx(16.0)


def test_an_arm_that_never_gets_there_says_so():
    arms = [Arm("1proc", 1, 8), Arm("1proc_reordered", 1, 8, reorder=True), Arm("2proc", 2, 8)]
    flat = [REFERENCE[0]] * 11
    noisy = [v * 1.001 for v in REFERENCE]
    _, _, rows = summarize({"1proc": curve(REFERENCE), "1proc_reordered": curve(noisy), "2proc": curve(flat)}, arms, 0.6)
    assert rows[2]["steps_to_threshold"] == "not reached" and rows[2]["agrees"] == "no"


def test_the_summary_needs_a_float_order_control():
    with pytest.raises(ValueError, match="no reordered arm"):
        summarize({"1proc": curve(REFERENCE), "2proc": curve(REFERENCE)}, [Arm("1proc", 1, 8), Arm("2proc", 2, 8)], 0.6)


def seed_curves(rule, control_one, control_n):
    """Curves whose RMS relative differences are exactly the given ones (alternating signs around REFERENCE)."""
    def shifted(values, by):
        return [v * (1 + by * (-1) ** i) for i, v in enumerate(values)]

    ranks = shifted(REFERENCE, rule)
    return {"1proc": curve(REFERENCE), "1proc_reordered": curve(shifted(REFERENCE, control_one)), "2proc": curve(ranks),
            "2proc_reordered": curve(shifted(ranks, control_n))}


def test_over_seeds_the_rule_is_judged_by_its_mean_against_the_mean_larger_control():
    # one seed draws a rule difference 5x its controls, the others do not: the means decide
    rows, agrees = seed_summary({0: seed_curves(5e-3, 1e-3, 5e-4), 1: seed_curves(1e-3, 2e-3, 1e-3), 2: seed_curves(1e-3, 1e-3, 3e-3)}, 2)
    assert [row["seed"] for row in rows] == [0, 1, 2, "mean"]
    assert rows[0]["rule_over_control"] == "5.00" and rows[0]["larger_control"] == "1.00e-03"
    assert rows[-1]["rule_rms_vs_1proc"] == "2.33e-03" and rows[-1]["larger_control"] == "2.00e-03"
    assert agrees  # 2.33e-3 <= 2 x 2e-3
    _, agrees = seed_summary({0: seed_curves(5e-3, 1e-3, 5e-4), 1: seed_curves(6e-3, 1e-3, 1e-3)}, 2)
    assert not agrees  # 5.5e-3 > 2 x 1e-3
