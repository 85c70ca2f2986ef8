"""Bandwidth extension end to end: the preset bounces 16 kHz to 48 kHz, and the evaluation scores held-out actors."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import soundfile as sf
from stage_doubles import save_tiny_bandwidth_extender

import synthetic
from speakup_fx.cli import main as speakup
from speakup_fx.eval import bwe as bwe_eval
from speakup_fx.runtime import weights as weights_module


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    path = save_tiny_bandwidth_extender(tmp_path / "bandwidth_extension.safetensors", seed=5)
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    return path


def high_band_share(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size))) ** 2
    return float(spectrum[np.fft.rfftfreq(audio.size, 1 / rate) >= 9_000].sum() / spectrum.sum())


def test_the_preset_effect_turns_16k_speech_into_full_band_48k(tiny_weights):
    from speakup_fx import SpeakUp

    speech = synthetic.noisy_speech(1.0, 16_000, 1, snr_db=30.0)[0]
    out = SpeakUp(preset="bandwidth-extension", device="cpu")(speech, 16_000, output_sample_rate=48_000)
    assert out.shape == (48_000,)
    assert high_band_share(out, 48_000) > 1e-4  # the band a 16 kHz file cannot have


def test_the_preset_bounces_16k_speech_to_full_band_48k(tiny_weights, tmp_path):
    source = tmp_path / "in_16k.wav"
    sf.write(source, synthetic.noisy_speech(1.0, 16_000, 1, snr_db=30.0)[0], 16_000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    assert speakup(["bounce", str(source), "-o", str(out), "--preset", "bandwidth-extension", "--sample-rate", "48000"]) == 0
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 48_000 and audio.shape == (48_000,)
    assert high_band_share(audio, rate) > 1e-4


def test_the_evaluation_scores_only_the_held_out_actors(tiny_weights, tmp_path):
    data = synthetic.write_tiny_actors(tmp_path / "speech", files=1, duration_s=0.5)
    report = tmp_path / "scores.json"
    assert bwe_eval.main(["--data-dir", str(data), "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert {s["path"].split("/")[-2] for s in scores["files"]} == {"actor21", "actor22"}
    summary = scores["summary"]
    assert summary["files"] == 2 and summary["lsd_input"] > 0 and summary["lsd_output"] > 0
    assert summary["kept_band_change_db"] < 0.5
    assert summary["output"]["intact_band_change_db"] < 0.05  # the model writes nothing below its crossover
    assert summary["original"]["lsd"] < 1e-9 and summary["original"]["lsd_high"] < 1e-9  # log10(1 + eps)
    assert summary["input"]["lsd_high"] > summary["input"]["lsd"]  # the input's error is all in the empty high band
    for name in bwe_eval.SIGNALS:  # the 16 kHz figures exist for all three signals
        assert all(1.0 <= summary[name][k] <= 5.0 for k in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"))
    files = scores["files"]
    assert all(f["signals"][name]["word_errors"] >= 0 for f in files for name in bwe_eval.SIGNALS)
    model_only = tmp_path / "model.json"
    assert bwe_eval.main(["--data-dir", str(data), "--weights", str(tiny_weights), "--json", str(model_only), "--no-quality"]) == 0
    spectral_only = json.loads(model_only.read_text())["summary"]
    assert spectral_only["files"] == 2 and np.isnan(spectral_only["output"]["dnsmos_ovrl"])
    assert bwe_eval.main(["--data-dir", str(tmp_path / "nowhere")]) == 2


def test_the_summary_pools_word_errors_over_the_words_of_every_file():
    def signals(errors: float) -> dict:
        return {name: bwe_eval.SignalScore(1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 3.5, errors) for name in bwe_eval.SIGNALS}

    none = bwe_eval.Artefacts(0.0, (0.0,) * len(bwe_eval.NOTCH_BINS_HZ), *[0.0] * 5)
    summary = bwe_eval.summary([bwe_eval.FileScore("a", 10, signals(1.0), none), bwe_eval.FileScore("b", 30, signals(3.0), none)])
    assert summary["reference_words"] == 40 and summary["output"]["wer"] == pytest.approx(0.1)
    assert summary["output"]["dnsmos_bak"] == 4.0 and summary["lsd_ratio"] == 1.0
    assert "output" in bwe_eval.format_summary(summary)


def test_the_artefact_figures_read_a_notch_a_weak_band_and_hiss_in_pauses():
    rate = 48_000
    rng = np.random.default_rng(0)
    voice = np.repeat(rng.random(20) > 0.3, rate // 10)  # 2 s of 100 ms bursts and pauses
    original = (rng.standard_normal(voice.size) * np.where(voice, 0.1, 1e-5)).astype(np.float32)
    same = asdict(bwe_eval.artefacts(original, original))
    assert all(abs(v) < 1e-6 or np.isnan(v) for k, v in same.items() if k not in ("comb_ratio", "shortfall_db")) and not any(same["shortfall_db"])
    spectrum = np.fft.rfft(original)
    hz = np.fft.rfftfreq(original.size, 1 / rate)
    spectrum[(hz >= 12_000) & (hz < 12_300)] *= 0.01  # a 40 dB notch
    spectrum[hz >= 8_000] *= 0.5  # the whole band 6 dB weaker
    damaged = np.fft.irfft(spectrum, n=original.size).astype(np.float32)
    found = bwe_eval.artefacts(original, damaged)
    notch_db, notch_hz = bwe_eval.deepest_notch(np.array(found.shortfall_db))
    assert notch_db > 30 and 12_000 <= notch_hz <= 12_300 and found.high_band_db == pytest.approx(-6.0, abs=0.5)
    spectrum[(hz >= 12_000) & (hz < 12_300)] *= 100  # no notch left: a band uniformly 6 dB weak is not one
    assert bwe_eval.deepest_notch(np.array(bwe_eval.artefacts(original, np.fft.irfft(spectrum, n=original.size).astype(np.float32)).shortfall_db))[0] < 3
    hissy = original + np.where(voice, 0.0, 1e-3) * rng.standard_normal(voice.size).astype(np.float32)
    assert bwe_eval.artefacts(original, hissy).pause_hiss_db > 20
