"""Training: every stage steps on a tiny config, checkpoints round-trip, runs resume, configs are strict."""

from dataclasses import replace
from pathlib import Path

import pytest
import synthetic
import torch

from speakup_fx.cli import main
from speakup_fx.data.quality import clean_speech_scores
from speakup_fx.runtime.host import ModelHost
from speakup_fx.runtime.weights import load_model, read_info
from speakup_fx.train.checkpoint import load_checkpoint, save_checkpoint
from speakup_fx.train.config import Config, from_dict, load_config
from speakup_fx.train.distributed import World
from speakup_fx.train.export import export_checkpoint
from speakup_fx.data.import_speech import import_speech
from speakup_fx.train.loop import build_datasets, build_state, checkpoint_payload, lr_factor, restore, split_speech, stage_of, train, train_step

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
CPU = World(0, 1, torch.device("cpu"))


@pytest.fixture
def config(corpus, tmp_path):
    base = load_config(TINY)
    return replace(base, data=replace(base.data, data_dir=str(corpus), cache_dir=str(tmp_path / "cache")))


def batch(seed=0, size=2, frames=1600):
    gen = torch.Generator().manual_seed(seed)
    target = 0.3 * torch.randn(size, 1, frames, generator=gen)
    return target + 0.1 * torch.randn(size, 1, frames, generator=gen), target


def test_schedule_runs_generator_then_postnet_then_adversarial(config):
    assert [stage_of(config, s) for s in range(7)] == ["generator"] * 2 + ["postnet"] * 2 + ["adversarial"] * 2 + [None]


def test_each_stage_steps_and_returns_its_named_losses(config):
    state = build_state(config, CPU)
    postnet_before = [p.clone() for p in state.generator.postnet.parameters()]
    body_before = state.generator.input.weight.clone()
    seen = []
    for _ in range(6):
        seen.append(train_step(state, *batch(state.step)))
    assert set(seen[0]) == set(seen[2]) == {"gen/l1", "gen/stft", "gen/total", "gen/grad_norm"}
    assert {"adv/disc", "adv/gen", "adv/feat"} <= set(seen[5])
    assert all(torch.isfinite(torch.tensor(v)) for logs in seen for v in logs.values())
    assert not torch.equal(body_before, state.generator.input.weight)
    assert any(not torch.equal(a, b) for a, b in zip(postnet_before, state.generator.postnet.parameters()))


def test_postnet_is_frozen_during_the_generator_stage(config):
    state = build_state(config, CPU)
    before = [p.clone() for p in state.generator.postnet.parameters()]
    train_step(state, *batch())
    train_step(state, *batch(1))
    assert all(torch.equal(a, b) for a, b in zip(before, state.generator.postnet.parameters()))


def test_checkpoint_round_trips(config, tmp_path):
    state = build_state(config, CPU)
    for _ in range(5):
        train_step(state, *batch(state.step))
    save_checkpoint(tmp_path / "c.pt", checkpoint_payload(state))
    payload = load_checkpoint(tmp_path / "c.pt")
    assert from_dict(Config, payload["config"]) == config
    fresh = build_state(config, CPU)
    restore(fresh, payload)
    assert fresh.step == 5
    noisy, _ = batch(9)
    with torch.no_grad():
        torch.testing.assert_close(fresh.generator(noisy), state.generator(noisy), rtol=0, atol=0)
        torch.testing.assert_close(fresh.discriminators(noisy)[0][0], state.discriminators(noisy)[0][0], rtol=0, atol=0)
    logs_a, logs_b = train_step(state, *batch(7)), train_step(fresh, *batch(7))
    assert logs_a == pytest.approx(logs_b, rel=1e-5)


def test_corrupt_or_foreign_checkpoints_raise(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"format_version": 99}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="format_version"):
        load_checkpoint(tmp_path / "old.pt")


@pytest.mark.parametrize(("written", "share", "read"), [("/labels", 0.3, ("/labels",)), ("", 0.0, ())])
def test_a_checkpoint_that_named_one_teacher_folder_reads_as_a_list(config, tmp_path, written, share, read):
    payload = checkpoint_payload(build_state(config, CPU))
    payload["config"]["data"] |= {"teacher_shards": written, "teacher_share": share}
    save_checkpoint(tmp_path / "c.pt", payload)
    saved = from_dict(Config, load_checkpoint(tmp_path / "c.pt")["config"])
    assert saved.data.teacher_shards == read
    assert replace(saved, data=replace(saved.data, teacher_shards=(), teacher_share=0.0)) == config


def test_training_resumes_from_the_run_dir(config, tmp_path):
    run_dir = tmp_path / "run"
    assert train(config, run_dir, CPU, max_steps=2).step == 2
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    assert (run_dir / "best.pt").is_file() and any((run_dir / "tensorboard").iterdir())
    assert train(config, run_dir, CPU).step == 6


def test_resume_flag_fails_without_a_checkpoint(config, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(config, tmp_path / "empty", CPU, require_resume=True)


def test_unknown_and_mistyped_keys_name_the_dotted_key(tmp_path):
    (tmp_path / "a.toml").write_text("[streaming]\nchanels = 3\n")
    with pytest.raises(ValueError, match="streaming.chanels"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("[schedule]\ngenerator_steps = 'many'\n")
    with pytest.raises(ValueError, match="schedule.generator_steps"):
        load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text("[loss.weights]\n'gen/mel' = 1.0\n")
    with pytest.raises(ValueError, match="gen/mel"):
        load_config(tmp_path / "c.toml")


def test_cli_trains_then_exports_loadable_weights(config, corpus, tmp_path):
    toml = tmp_path / "t.toml"
    toml.write_text(TINY.read_text().replace("[data]", f"[data]\ndata_dir = '{corpus}'\ncache_dir = '{tmp_path / 'cache'}'"))
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(toml), "--run-dir", str(run_dir), "--max-steps", "1", "--device", "cpu"]) == 0
    weights = tmp_path / "w.safetensors"
    assert main(["train", "--config", str(toml), "--run-dir", str(run_dir), "--export", str(weights)]) == 0
    stream = ModelHost("cpu").stream("enhancer", 1, weights)
    assert stream.process(synthetic.speech_like(0.3, 16_000)).shape == (1, 1, 4800)
    averaged = tmp_path / "averaged.safetensors"
    assert main(["train", "--config", str(toml), "--run-dir", str(run_dir), "--export", str(averaged), "--average-with", str(weights)]) == 0
    assert ModelHost("cpu").stream("enhancer", 1, averaged).process(synthetic.speech_like(0.3, 16_000)).shape == (1, 1, 4800)
    assert main(["train", "--config", str(toml), "--run-dir", str(run_dir), "--average-with", str(weights)]) == 2  # needs --export
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2


def test_a_run_out_of_minutes_stops_at_a_log_step_with_its_checkpoints(config, tmp_path):
    state = train(config, tmp_path / "run", CPU, max_minutes=1e-9)  # past the deadline at the first log step (log_every 1)
    assert state.step == 1 < sum((config.schedule.generator_steps, config.schedule.postnet_steps, config.schedule.adversarial_steps))
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 1
    assert main(["train", "--config", str(TINY), "--max-minutes", "0"]) == 2


def test_paper_generator_trains_through_the_same_loop(config):
    state = build_state(replace(config, generator="hifigan_paper"), CPU)
    logs = train_step(state, *batch())
    assert set(logs) == {"gen/l1", "gen/stft", "gen/total", "gen/grad_norm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


def test_shipped_configs_load():
    for path in sorted(TINY.parent.glob("*.toml")):
        if not path.stem.startswith("bwe"):  # the bandwidth extender's configs: tests/integration/test_bwe_train.py
            assert isinstance(load_config(path), Config)


def test_learning_rate_decays_per_step(config):
    state = build_state(replace(config, optim=replace(config.optim, lr_decay=0.5)), CPU)
    train_step(state, *batch())
    train_step(state, *batch(1))
    assert state.opt_g.param_groups[0]["lr"] == pytest.approx(config.optim.generator_lr * 0.5)


def test_loss_weights_choose_the_reconstruction_terms(config):
    weights = {"gen/l1": 1.0, "gen/spec": 10.0, "adv/gen": 1.0, "adv/feat": 2.0}
    state = build_state(replace(config, loss=replace(config.loss, weights=weights)), CPU)
    logs = train_step(state, *batch())
    assert set(logs) == {"gen/l1", "gen/spec", "gen/total", "gen/grad_norm"}
    assert logs["gen/total"] == pytest.approx(logs["gen/l1"] + 10.0 * logs["gen/spec"], rel=1e-5)


def dfnet_config(config, **optim):
    return replace(
        config,
        generator="dfnet",
        schedule=replace(config.schedule, generator_steps=100, postnet_steps=0, adversarial_steps=0),
        dfnet=replace(config.dfnet, channels=8, gru_layers=1, df_bins=16),
        data=replace(config.data, targets=("reverberant", "early")),
        optim=replace(config.optim, **optim),
        loss=replace(config.loss, weights={"gen/mrspec": 1.0, "gen/oversup": 1.0, "gen/sisdr": 0.01}),
    )


def two_target_batch(seed=0):
    noisy, target = batch(seed)
    return noisy, torch.cat([target, 0.5 * target], dim=1)


def test_warmup_cosine_rises_then_falls_to_a_floor_never_zero(config):
    config = replace(config, schedule=replace(config.schedule, generator_steps=100, postnet_steps=0, adversarial_steps=0))
    config = replace(config, optim=replace(config.optim, lr_schedule="warmup_cosine", warmup_steps=10, lr_floor_ratio=0.1))
    factors = [lr_factor(config, step) for step in range(150)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[:10] == sorted(factors[:10]) and factors[9:] == sorted(factors[9:], reverse=True)
    assert factors[100] == pytest.approx(0.1) and factors[149] == pytest.approx(0.1)
    assert factors[55] == pytest.approx(0.55)  # half way down the cosine: the mean of peak and floor


def test_dfnet_trains_both_outputs_with_an_ema_copy_that_lags(config):
    state = build_state(dfnet_config(config, ema_decay=0.9), CPU)
    start = {n: p.clone() for n, p in state.generator.named_parameters()}
    logs = [train_step(state, *two_target_batch(i)) for i in range(30)]
    assert set(logs[0]) == {"gen/mrspec", "gen/oversup", "gen/sisdr", "gen/total", "gen/grad_norm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs[-1].values())
    for name, average in state.ema.named_parameters():
        trained, initial = dict(state.generator.named_parameters())[name], start[name]
        assert not torch.equal(average, trained)
        # an average of the path from the start: nearer the current weights than the start is
        assert (average - trained).norm() < (initial - trained).norm(), name


def test_checkpoints_hold_the_ema_weights_and_resume_them(config):
    state = build_state(dfnet_config(config, ema_decay=0.9), CPU)
    for i in range(3):
        train_step(state, *two_target_batch(i))
    payload = checkpoint_payload(state)
    assert payload["config"]["generator"] == "dfnet" and payload["config"]["data"]["targets"] == ["reverberant", "early"]
    resumed = build_state(dfnet_config(config, ema_decay=0.9), CPU)
    restore(resumed, payload)
    for name, value in state.ema.state_dict().items():
        assert torch.equal(resumed.ema.state_dict()[name], value), name
    assert not all(torch.equal(v, payload["generator"][k]) for k, v in payload["generator_ema"].items())


def test_dfnet_runs_a_short_training_run_on_the_corpus(config, tmp_path):
    state = train(dfnet_config(config, ema_decay=0.5), tmp_path / "run", CPU, max_steps=2)
    assert state.step == 2
    assert "generator_ema" in load_checkpoint(tmp_path / "run" / "checkpoint.pt")


def test_a_new_run_starts_from_a_narrower_runs_generator_widened(config, tmp_path):
    narrow = train(dfnet_config(config, ema_decay=0.5), tmp_path / "narrow", CPU, max_steps=2)
    wide_config = replace(dfnet_config(config, ema_decay=0.5), dfnet=replace(narrow.config.dfnet, channels=12))
    wide = train(wide_config, tmp_path / "wide", CPU, max_steps=0, init_from=tmp_path / "narrow" / "checkpoint.pt")
    assert wide.step == 0 and wide.generator.config.channels == 12
    x = torch.randn(1, 1, 3200)
    with torch.no_grad():
        expected, got = narrow.ema(x), wide.ema(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max().item())
    with pytest.raises(ValueError, match="same DFNet config"):
        train(replace(wide_config, dfnet=replace(wide_config.dfnet, df_bins=8)), tmp_path / "other", CPU, max_steps=0, init_from=tmp_path / "narrow" / "checkpoint.pt")


def test_a_new_run_starts_from_a_shipped_weights_file(config, tmp_path):
    first = train(dfnet_config(config, ema_decay=0.5), tmp_path / "first", CPU, max_steps=2)
    export_checkpoint(tmp_path / "first" / "best.pt", tmp_path / "enhancer.safetensors")
    second = train(dfnet_config(config, ema_decay=0.5), tmp_path / "second", CPU, max_steps=0, init_from=tmp_path / "enhancer.safetensors")
    assert second.step == 0
    for name, value in first.ema.state_dict().items():  # the file stores float16
        assert torch.equal(second.generator.state_dict()[name], value.half().float()), name
    wide_config = replace(dfnet_config(config, ema_decay=0.5), dfnet=replace(first.config.dfnet, channels=12))
    wide = train(wide_config, tmp_path / "wide", CPU, max_steps=0, init_from=tmp_path / "enhancer.safetensors")
    x = torch.randn(1, 1, 3200)
    with torch.no_grad():
        expected, got = second.ema(x), wide.ema(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max().item())


def test_export_averages_the_run_with_the_weights_it_started_from(config, tmp_path):
    first = train(dfnet_config(config, ema_decay=0.5), tmp_path / "first", CPU, max_steps=2)
    export_checkpoint(tmp_path / "first" / "best.pt", tmp_path / "start.safetensors")
    second = train(dfnet_config(config, ema_decay=0.5), tmp_path / "second", CPU, max_steps=2, init_from=tmp_path / "start.safetensors")
    export_checkpoint(tmp_path / "second" / "best.pt", tmp_path / "soup.safetensors", average_with=tmp_path / "start.safetensors")
    info, soup = load_model(tmp_path / "soup.safetensors")
    assert info.metadata["averaged_with_sha256"] == read_info(tmp_path / "start.safetensors").metadata["sha256"]
    start = first.ema.state_dict()
    for name, value in second.ema.state_dict().items():
        expected = (0.5 * start[name].half().float() + 0.5 * value).half().float()
        assert torch.equal(soup.state_dict()[name], expected), name
    assert not torch.equal(second.ema.state_dict()["input.weight"], start["input.weight"])  # the two differ
    wide = train(replace(dfnet_config(config, ema_decay=0.5), dfnet=replace(first.config.dfnet, channels=12)), tmp_path / "wide", CPU, max_steps=1)
    with pytest.raises(ValueError, match="differs from the run's"):
        export_checkpoint(tmp_path / "wide" / "best.pt", tmp_path / "bad.safetensors", average_with=tmp_path / "start.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_a_new_run_takes_the_weights_of_a_run_with_another_lookahead(config, tmp_path):
    first = train(dfnet_config(config, ema_decay=0.5), tmp_path / "first", CPU, max_steps=2)
    later = replace(dfnet_config(config, ema_decay=0.5), dfnet=replace(first.config.dfnet, lookahead_frames=first.config.dfnet.lookahead_frames + 1))
    second = train(later, tmp_path / "second", CPU, max_steps=0, init_from=tmp_path / "first" / "checkpoint.pt")
    assert second.generator.latency_samples == first.generator.latency_samples + later.dfnet.hop_samples
    for name, value in first.ema.state_dict().items():
        assert torch.equal(second.generator.state_dict()[name], value), name
    with pytest.raises(ValueError, match="do not fit"):
        train(replace(later, dfnet=replace(later.dfnet, df_bins=later.dfnet.df_bins // 2)), tmp_path / "third", CPU, max_steps=0, init_from=tmp_path / "first" / "checkpoint.pt")


def test_a_new_run_starts_from_a_run_with_shorter_deep_filters_lengthened(config, tmp_path):
    short = train(dfnet_config(config, ema_decay=0.5), tmp_path / "short", CPU, max_steps=2)
    longer_config = replace(dfnet_config(config, ema_decay=0.5), dfnet=replace(short.config.dfnet, df_order=short.config.dfnet.df_order + 2))
    longer = train(longer_config, tmp_path / "long", CPU, max_steps=0, init_from=tmp_path / "short" / "checkpoint.pt")
    assert longer.generator.config.df_order == short.config.dfnet.df_order + 2
    x = torch.randn(1, 1, 3200)
    with torch.no_grad():
        expected, got = short.ema(x), longer.ema(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5 * expected.abs().max().item())


def test_targets_must_match_the_generators_outputs(config):
    with pytest.raises(ValueError, match="data.targets: 1 targets"):
        build_state(replace(dfnet_config(config), data=replace(config.data, targets=("dry",))), CPU)
    with pytest.raises(ValueError, match="data.targets"):
        from_dict(Config, {"data": {"targets": ["wet"]}})
    with pytest.raises(ValueError, match="schedule.adversarial_steps"):
        build_state(replace(dfnet_config(config), schedule=config.schedule), CPU)


def test_the_clean_speech_filter_drops_training_files_only(config):
    training, held_out = split_speech(config)
    scores = sorted(s["bak"] for s in clean_speech_scores(training, config.data.cache_dir).values())
    threshold = (scores[0] + scores[-1]) / 2
    assert scores[0] < scores[-1]
    filtered = replace(config, data=replace(config.data, min_clean_dnsmos_bak=threshold))
    kept, kept_held_out = split_speech(filtered)
    assert 0 < len(kept) < len(training) and kept_held_out == held_out
    with pytest.raises(ValueError, match="min_clean_dnsmos_bak"):
        split_speech(replace(config, data=replace(config.data, min_clean_dnsmos_bak=5.0)))


def test_extra_speech_joins_training_only_and_a_folder_without_a_manifest_is_named(config, corpus, tmp_path):
    extra = tmp_path / "extra"
    import_speech(sorted((corpus / "speech").glob("*.flac"))[:2], extra, "more", "CC0", band_hz=5000.0, clip_s=1.0)
    training, validation = build_datasets(config)
    with_extra = replace(config, data=replace(config.data, extra_speech=(str(extra),)))
    training_extra, validation_extra = build_datasets(with_extra)
    added = training_extra.speech[len(training.speech) :]
    assert training_extra.speech[: len(training.speech)] == training.speech and validation_extra.speech == validation.speech
    assert [(r.source, r.band_hz) for r in added] == [("more", 5000.0)] * 2
    with pytest.raises(ValueError, match="data.extra_speech: .* has no manifest.csv"):
        build_datasets(replace(config, data=replace(config.data, extra_speech=(str(tmp_path / "nothing"),))))
