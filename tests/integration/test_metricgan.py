"""MetricGAN+ fine-tune: PESQ labels, the metric discriminator learns them, the step's two updates, the CLI run."""

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import synthetic
import torch

from speakup_fx.train.checkpoint import load_checkpoint
from speakup_fx.train.config import load_config
from speakup_fx.train.distributed import World
from speakup_fx.train.loop import build_state
from speakup_fx.train.metricgan import MetricDiscriminator, MetricStep, main, pesq_labels, product_mix

RATE = 16_000
TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def pool():
    with multiprocessing.get_context("fork").Pool(1) as workers:
        yield workers


def speech_rows(count=2, duration_s=2.0):
    clean = np.stack([synthetic.speech_like(duration_s, RATE, seed=i)[0] for i in range(count)]).astype(np.float32)
    noisy = clean + np.stack([synthetic.noise(duration_s, RATE, level_db=-20.0, seed=10 + i)[0] for i in range(count)]).astype(np.float32)
    return clean, noisy


def test_pesq_labels_are_one_for_the_reference_lower_for_noise_and_nan_for_silence():
    clean, noisy = speech_rows()
    assert pesq_labels(clean, clean, RATE) == pytest.approx(1.0, abs=0.01)
    assert np.all(pesq_labels(clean, noisy, RATE) < 0.9)
    silent = np.zeros_like(clean)
    assert np.isnan(pesq_labels(silent, silent, RATE)).all()


def test_the_mix_is_the_restore_presets():
    outputs = torch.stack([torch.ones(2, 8), torch.zeros(2, 8)], dim=1)
    assert torch.allclose(product_mix(outputs, 0.8), torch.full((2, 8), 0.2))


def test_the_discriminator_learns_measured_labels():
    torch.manual_seed(0)
    clean, noisy = (torch.from_numpy(x) for x in speech_rows())
    estimates, references, labels = torch.cat([clean, noisy]), torch.cat([clean, clean]), torch.tensor([1.0, 1.0, 0.2, 0.2])
    model = MetricDiscriminator()
    predicted = model(estimates, references)
    assert predicted.shape == (4,) and bool(((predicted >= 0) & (predicted <= 1.2)).all())
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    before = torch.nn.functional.mse_loss(predicted, labels).item()
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(estimates, references), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * before


def tiny_dfnet(config):
    return replace(
        config,
        generator="dfnet",
        batch_size=2,
        schedule=replace(config.schedule, generator_steps=4, postnet_steps=0, adversarial_steps=0),
        dfnet=replace(config.dfnet, channels=8, gru_layers=1, df_bins=16),
        data=replace(config.data, targets=("reverberant", "early"), segment_s=1.0),
        loss=replace(config.loss, weights={"gen/mrspec": 1.0, "gen/oversup": 1.0, "gen/sisdr": 0.01}),
        optim=replace(config.optim, ema_decay=0.9),
    )


def test_the_generator_waits_for_the_discriminator_then_both_learn(pool):
    state = build_state(tiny_dfnet(load_config(TINY)), World(0, 1, torch.device("cpu")))
    clean, noisy = (torch.from_numpy(x) for x in speech_rows())
    batch = noisy[:, None], torch.stack([clean, clean], dim=1)
    step = MetricStep(MetricDiscriminator(), pool, metric_weight=1.0, d_lr=1e-3, d_warmup_steps=1, dereverb_amount=0.8)
    generator = {n: p.clone() for n, p in state.generator.named_parameters()}
    discriminator = {n: p.clone() for n, p in step.discriminator.named_parameters()}
    warmup = step(state, *batch)
    assert "adv/metric" not in warmup and state.step == 1
    assert all(torch.equal(p, generator[n]) for n, p in state.generator.named_parameters())
    assert any(not torch.equal(p, discriminator[n]) for n, p in step.discriminator.named_parameters())
    logs = step(state, *batch)
    assert {"adv/metric", "adv/disc", "gen/mrspec", "gen/total"} <= set(logs) and np.isfinite(list(logs.values())).all()
    assert any(not torch.equal(p, generator[n]) for n, p in state.generator.named_parameters())
    assert len(step.replay) == 2


def test_cli_runs_checkpoints_the_best_validation_pesq_and_resumes(corpus, tmp_path):
    config = tmp_path / "metric.toml"
    config.write_text(f"""generator = "dfnet"
batch_size = 2
log_every = 1
checkpoint_every_s = 0.0

[dfnet]
channels = 8
gru_layers = 1
df_bins = 16

[data]
data_dir = "{corpus}"
cache_dir = "{tmp_path / 'cache'}"
segment_s = 1.0
examples_per_epoch = 4
simulated_rooms = 2
workers = 0
validation_examples = 2
targets = ["reverberant", "early"]

[schedule]
generator_steps = 2
postnet_steps = 0
adversarial_steps = 0

[optim]
ema_decay = 0.9

[loss]
weights = {{ "gen/mrspec" = 1.0, "gen/sisdr" = 0.01 }}
""")
    run = tmp_path / "run"
    main(["--config", str(config), "--run-dir", str(run), "--d-warmup-steps", "1"])
    scores = json.loads((run / "validation_pesq.json").read_text())
    assert set(scores) == {"0", "1", "2"} and all(np.isfinite(list(scores.values())))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    best = max(scores, key=scores.get)
    assert (run / "best.pt").is_file() == (best != "0")
    main(["--config", str(config), "--run-dir", str(run)])  # the schedule is done: nothing more runs
    assert json.loads((run / "validation_pesq.json").read_text()) == scores


def test_cli_refuses_torchrun_and_a_config_without_an_ema_copy(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="ema_decay"):  # tiny.toml keeps none
        main(["--config", str(TINY), "--run-dir", str(tmp_path / "run")])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        main(["--config", str(TINY), "--run-dir", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
