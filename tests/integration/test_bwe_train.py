"""Bandwidth-extension training: steps, checkpoints that resume, export to a loadable weights file, strict configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import synthetic

from speakup_fx.runtime.weights import load_model
from speakup_fx.train.bwe import BweConfig, build_state, g_step, high_band_losses, initialise_from, load_bwe_config, lower_crossover, main, train, with_high_band_of
from speakup_fx.train.checkpoint import load_checkpoint
from speakup_fx.train.distributed import World

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CPU = World(0, 1, torch.device("cpu"))


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    
    return synthetic.write_tiny_actors(tmp_path_factory.mktemp("speech"), files=1)


@pytest.fixture
def config(speech_dir):
    base = load_bwe_config(CONFIGS / "bwe_tiny.toml")
    return replace(base, data=replace(base.data, speech_dir=str(speech_dir)))


def test_shipped_bwe_configs_load_and_unknown_keys_are_named(tmp_path):
    for path in sorted(CONFIGS.glob("bwe*.toml")):
        assert isinstance(load_bwe_config(path), BweConfig)
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nwidth = 3\n")
    with pytest.raises(ValueError, match="model.width"):
        load_bwe_config(bad)


def test_the_high_band_loss_ignores_the_band_below_the_crossover():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 1, 4800, generator=gen)
    low = torch.nn.functional.avg_pool1d(torch.randn(2, 1, 4800 + 15, generator=gen), 16, 1)  # energy mostly below 3 kHz
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in high_band_losses(target, target, 8000.0).values())
    shifted = high_band_losses(target + 1e-3 * low, target, 8000.0)
    assert all(v.item() < 1e-2 for v in shifted.values())
    assert high_band_losses(0.5 * target, target, 8000.0)["bwe/high_log"].item() == pytest.approx(0.693, abs=0.01)


def test_a_step_lowers_nothing_to_nan_and_logs_the_named_terms(config):
    state = build_state(config, CPU)
    gen = torch.Generator().manual_seed(1)
    logs = g_step(state, 0.1 * torch.randn(2, 1, 1600, generator=gen), 0.1 * torch.randn(2, 1, 4800, generator=gen))
    assert set(logs) == {"bwe/high_log", "bwe/high_sc", "bwe/high_compressed", "bwe/total", "bwe/grad_norm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert state.step == 1


def test_a_run_resumes_from_its_checkpoint_and_exports_weights(config, tmp_path):
    run_dir = tmp_path / "run"
    state = train(config, run_dir, CPU)
    assert state.step == config.steps
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    assert payload["step"] == 2 and (run_dir / "best.pt").is_file()
    state = train(replace(config, steps=3), run_dir, CPU)
    assert state.step == 3
    toml = tmp_path / "c.toml"
    toml.write_text((CONFIGS / "bwe_tiny.toml").read_text())
    assert main(["--config", str(toml), "--run-dir", str(run_dir), "--export", str(tmp_path / "bwe.safetensors")]) == 0
    info, model = load_model(tmp_path / "bwe.safetensors")
    assert info.kind == "bandwidth_extension" and model.config == config.model
    assert int(info.metadata["step"]) >= 2


def test_the_discriminators_see_the_target_below_the_crossover_and_the_output_above_it():
    gen = torch.Generator().manual_seed(2)
    target, output = torch.randn(2, 1, 4800, generator=gen), torch.randn(2, 1, 4800, generator=gen)
    mixed = with_high_band_of(target, output, 8000.0)
    spectra = [torch.fft.rfft(s) for s in (mixed, target, output)]
    split = 800  # 8 kHz of 4800 frames at 48 kHz
    torch.testing.assert_close(spectra[0][..., :split], spectra[1][..., :split], atol=1e-3, rtol=0)
    torch.testing.assert_close(spectra[0][..., split + 1 :], spectra[2][..., split + 1 :], atol=1e-3, rtol=0)


def test_the_adversarial_stage_updates_the_discriminators_and_resumes_from_a_reconstruction_run(config, tmp_path):
    run_dir = tmp_path / "run"
    train(config, run_dir, CPU)  # reconstruction only: no discriminators in the checkpoint
    assert "discriminators" not in load_checkpoint(run_dir / "checkpoint.pt")
    adversarial = replace(config, steps=4, adversarial_from_step=3)
    state = train(adversarial, run_dir, CPU)  # step 2 reconstruction, step 3 adversarial
    assert state.step == 4
    payload = load_checkpoint(run_dir / "checkpoint.pt")
    assert payload["step"] == 4 and "opt_d" in payload
    trained = load_checkpoint(run_dir / "checkpoint.pt")["discriminators"]
    fresh = build_state(adversarial, CPU).discriminators.state_dict()
    assert any(not torch.equal(trained[k], fresh[k]) for k in fresh), "the discriminators were never updated"
    state = train(replace(adversarial, steps=5), run_dir, CPU)  # resumes the adversarial stage with its discriminators
    assert state.step == 5
    resumed = load_checkpoint(run_dir / "checkpoint.pt")["discriminators"]
    assert any(not torch.equal(resumed[k], trained[k]) for k in trained)


def test_an_adversarial_step_logs_the_discriminator_and_generator_terms(config):
    state = build_state(replace(config, adversarial_from_step=0), CPU)
    gen = torch.Generator().manual_seed(3)
    logs = g_step(state, 0.1 * torch.randn(2, 1, 1600, generator=gen), 0.1 * torch.randn(2, 1, 4800, generator=gen))
    assert {"adv/disc", "adv/gen", "adv/feat", "bwe/total"} <= set(logs)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


def test_an_adversarial_stage_outside_the_run_or_a_16k_mel_discriminator_is_refused(config):
    with pytest.raises(ValueError, match="adversarial_from_step"):
        replace(config, adversarial_from_step=config.steps)
    with pytest.raises(ValueError, match="discriminators.sample_rate"):
        replace(config, discriminators=replace(config.discriminators, sample_rate=16_000))


def test_a_new_run_can_start_from_another_runs_weights_with_a_changed_source_band(config, tmp_path):
    train(config, tmp_path / "first", CPU)
    trained = load_checkpoint(tmp_path / "first" / "checkpoint.pt")["model"]
    moved = replace(config, model=replace(config.model, source_high_hz=7_000.0), steps=1)
    state = build_state(moved, CPU)
    initialise_from(state, tmp_path / "first" / "checkpoint.pt")
    assert all(torch.equal(v, trained[k]) for k, v in state.model.state_dict().items())
    state = train(moved, tmp_path / "second", CPU, init_from=tmp_path / "first" / "checkpoint.pt")
    assert state.step == 1 and load_checkpoint(tmp_path / "second" / "checkpoint.pt")["config"]["model"]["source_high_hz"] == 7_000.0


def test_a_new_run_can_start_from_weights_trained_with_a_higher_crossover(config, tmp_path):
    train(config, tmp_path / "first", CPU)
    trained = load_checkpoint(tmp_path / "first" / "checkpoint.pt")["model"]
    lowered_model = replace(config.model, crossover_hz=7_000.0, source_high_hz=7_000.0, first_copy_hz=7_600.0)
    extra = 12  # 7.0-7.6 kHz in 50 Hz bins
    for features_high_hz, features in ((None, 140), (7_600.0, 152)):
        state = build_state(replace(config, model=replace(lowered_model, features_high_hz=features_high_hz), steps=1), CPU)
        initialise_from(state, tmp_path / "first" / "checkpoint.pt")
        loaded = state.model.state_dict()
        assert torch.equal(loaded["input.weight"], trained["input.weight"][:, :features])
        assert torch.equal(loaded["head.3.bias"][extra:], trained["head.3.bias"])
        assert torch.equal(loaded["head.3.weight"][:extra], trained["head.3.weight"][:1].expand(extra, -1, -1))
        assert all(torch.equal(v, trained[k]) for k, v in loaded.items() if k not in ("input.weight", "head.3.weight", "head.3.bias"))
    with pytest.raises(ValueError, match="only move down"):
        lower_crossover(trained, -extra, 152)
    with pytest.raises(ValueError, match="reads 160 bins"):
        lower_crossover(trained, extra, 160)


def test_training_only_the_new_bins_leaves_every_other_weight_as_it_was(config, tmp_path):
    lowered = replace(config.model, crossover_hz=7_000.0, source_high_hz=7_000.0, first_copy_hz=7_600.0, features_high_hz=7_600.0)
    tuned = replace(config, model=lowered, trained_bins_below_hz=7_600.0, steps=2)
    state = build_state(tuned, CPU)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        g_step(state, 0.1 * torch.randn(2, 1, 1600, generator=gen), 0.1 * torch.randn(2, 1, 4800, generator=gen))
    after = state.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("head.3."))
    for name in ("head.3.weight", "head.3.bias"):
        assert torch.equal(after[name][12:], before[name][12:])  # the bins from 7.6 kHz up
        assert not torch.equal(after[name][:12], before[name][:12])
    with pytest.raises(ValueError, match="trained_bins_below_hz"):
        replace(tuned, trained_bins_below_hz=6_000.0)
