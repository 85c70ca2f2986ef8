"""The clean-speech filter: DNSMOS BAK drops noisy "clean" files, scores are cached by content and refreshed on change."""

import numpy as np
import pytest
import soundfile as sf
import synthetic

from speakup_fx.data import quality
from speakup_fx.data.corpus import ManifestRow
from speakup_fx.eval import metrics

RATE = 16_000


def row(path):
    return ManifestRow("train", "speech", "synthetic", path, sf.info(path).duration, RATE, "CC0")


@pytest.fixture
def rows(tmp_path):
    speech = synthetic.speech_like(3.0, RATE, seed=1)[0]
    noisy = speech + synthetic.noise(3.0, RATE, level_db=-12.0, seed=2)[0]
    paths = []
    for name, audio in (("clean", speech), ("noisy", noisy)):
        paths.append(tmp_path / f"{name}.flac")
        sf.write(paths[-1], audio, RATE, subtype="PCM_16")
    return [row(p) for p in paths]


@pytest.fixture
def counted(monkeypatch):
    calls = []
    score = metrics.dnsmos

    def dnsmos(audio, sample_rate):
        calls.append(audio.size)
        return score(audio, sample_rate)

    monkeypatch.setattr(metrics, "dnsmos", dnsmos)
    return calls


def test_the_filter_keeps_the_file_without_background_noise(rows, tmp_path):
    scores = quality.clean_speech_scores(rows, tmp_path / "cache")
    clean, noisy = (scores[r.path]["bak"] for r in rows)
    assert clean > noisy + 0.5
    threshold = (clean + noisy) / 2
    assert quality.keep_clean(rows, tmp_path / "cache", threshold) == rows[:1]
    assert quality.keep_clean(rows, tmp_path / "cache", 0.0) == rows


def test_scores_are_cached_and_a_changed_file_is_scored_again(rows, tmp_path, counted):
    first = quality.clean_speech_scores(rows, tmp_path / "cache")
    assert len(counted) == 2
    assert quality.clean_speech_scores(rows, tmp_path / "cache") == first
    assert len(counted) == 2
    sf.write(rows[1].path, np.zeros(RATE, np.float32), RATE, subtype="PCM_16")
    quality.clean_speech_scores(rows, tmp_path / "cache")
    assert len(counted) == 3


def test_a_copy_of_the_data_elsewhere_is_not_scored_again(rows, tmp_path, counted):
    first = quality.clean_speech_scores(rows, tmp_path / "cache")
    copies = []
    for r in rows:  # a fresh machine: the same bytes under another path, with a new modification time
        copy = tmp_path / "copy" / r.path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(r.path.read_bytes())
        copies.append(row(copy))
    assert list(quality.clean_speech_scores(copies, tmp_path / "cache").values()) == list(first.values())
    assert len(counted) == 2


def test_a_zero_threshold_scores_nothing(rows, tmp_path, counted):
    assert quality.keep_clean(rows, tmp_path / "cache", 0.0) == rows
    assert counted == [] and not (tmp_path / "cache").exists()


def test_shipped_scores_are_read_first_and_only_the_rest_is_scored(rows, tmp_path, counted):
    shipped = tmp_path / "shipped.csv"
    key = quality.content_key(rows[0].path)
    shipped.write_text(f"sha256,path,sig,bak,ovrl\n{key},speech/clean.flac,3.5,4.25,3.25\n")
    scores = quality.clean_speech_scores(rows, tmp_path / "cache", shipped)
    assert scores[rows[0].path] == {"sig": 3.5, "bak": 4.25, "ovrl": 3.25} and len(counted) == 1
    # the cache keeps what this machine scored, not the shipped rows
    cached, _ = quality.read_scores(tmp_path / "cache" / "clean_speech_dnsmos.csv")
    assert list(cached) == [quality.content_key(rows[1].path)]


def test_the_shipped_table_holds_scores_of_every_training_speech_file():
    known, paths = quality.read_scores(quality.SHIPPED_SCORES)
    assert len(known) == len(paths) >= 800  # the shared data's 16 kHz training speech
    assert all(not path.startswith("/") and path.startswith("speech_16k/") for path in paths.values())
    assert all(1.0 <= s["bak"] <= 5.0 for s in known.values())
