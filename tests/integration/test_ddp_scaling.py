"""``python -m speakup_fx.train.scaling`` end to end on the tiny config (torchrun, gloo); its rules: tests/unit/test_scaling_rules.py."""

import csv
from pathlib import Path

import pytest
import synthetic
import torch

from speakup_fx.train.distributed import World
from speakup_fx.train.scaling import main, read_curve, train_arm

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture
def tiny_config(tmp_path):
    synthetic.write_tiny_corpus(tmp_path / "corpus")
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.read_text().replace("[data]", f"[data]\ndata_dir = '{tmp_path / 'corpus'}'\ncache_dir = '{tmp_path / 'cache'}'"))
    return config


def scaling(config, out, *options):
    return main(["--config", str(config), "--out", str(out), "--steps", "2", "--validate-every", "1", "--threshold-fraction", "0.5", *options])


def test_two_ranks_by_the_rule_follow_the_one_process_curve_in_float64(tiny_config, tmp_path):
    assert scaling(tiny_config, tmp_path / "out", "--arms", "2proc", "--float64") == 0
    rows = read_curve(tmp_path / "out" / "2proc" / "curve.csv")
    # tiny.toml's global batch is 2 (one example per rank): samples count the global batch
    assert [(row["step"], row["samples"]) for row in rows] == [(0, 0), (1, 2), (2, 4)]
    assert rows[-1]["train_s"] > 0
    assert not (tmp_path / "out" / "scaling.csv").exists()  # the table needs every arm
    # the same run in this process: the ranks saw the global batch, so in float64 (rounding ~1e-16)
    # the validation losses agree far below the ~1e-3 that float32 rounding grows to over a run
    train_arm(tiny_config, 2, 2, 1, False, tmp_path / "single", World(0, 1, torch.device("cpu")), torch.float64)
    single = read_curve(tmp_path / "single" / "curve.csv")
    for ranks, one in zip(rows, single, strict=True):
        assert ranks["val_total"] == pytest.approx(one["val_total"], rel=1e-9, abs=0)
    assert torch.get_default_dtype() == torch.float32


@pytest.mark.slow
def test_the_scaling_run_writes_every_arms_curve_and_the_table(tiny_config, tmp_path):
    assert scaling(tiny_config, tmp_path / "out") == 0
    curves = {arm: read_curve(tmp_path / "out" / arm / "curve.csv") for arm in ("1proc", "1proc_reordered", "2proc", "2proc_reordered", "2proc_batchx2")}
    for arm, rows in curves.items():
        assert [row["step"] for row in rows] == [0, 1, 2], arm
        # every arm starts from the same seeded weights on the same validation set
        assert rows[0]["val_total"] == curves["1proc"][0]["val_total"], arm
    assert curves["2proc_batchx2"][-1]["samples"] == 8
    with (tmp_path / "out" / "scaling.csv").open(newline="") as f:
        rows = {row["arm"]: row for row in csv.DictReader(f)}
    assert rows["1proc"]["steps_to_threshold"] == "1" and rows["2proc"]["global_batch"] == "2"
    assert "| 2proc_batchx2 | 2 | 4 |" in (tmp_path / "out" / "scaling.md").read_text()


def test_an_arms_seed_sets_its_initial_weights_and_data(tiny_config, tmp_path):
    world = World(0, 1, torch.device("cpu"))
    for name, seed in (("default", None), ("zero", 0), ("one", 1)):
        train_arm(tiny_config, 2, 1, 1, False, tmp_path / name, world, seed=seed)
    first = {name: read_curve(tmp_path / name / "curve.csv")[0]["val_total"] for name in ("default", "zero", "one")}
    assert first["default"] == first["zero"]  # tiny.toml's seed is 0; one process, one code path
    assert first["one"] != first["zero"]


@pytest.mark.slow
def test_the_seeded_runs_write_each_seeds_table_and_the_summary(tiny_config, tmp_path):
    assert scaling(tiny_config, tmp_path / "out", "--seeds", "0,1", "--arms", "1proc,1proc_reordered,2proc,2proc_reordered") == 0
    for seed in (0, 1):
        assert (tmp_path / "out" / f"seed_{seed}" / "scaling.md").is_file()
    summary = (tmp_path / "out" / "seeds.md").read_text()
    assert "Over 2 seeds the 2-process arm" in summary and "| mean |" in summary
