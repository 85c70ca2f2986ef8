"""Held-out paired test sets: written as ``speakup eval`` reads them, aligned, reproducible."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import synthetic

from speakup_fx.eval import heldout
from speakup_fx.eval.benchmark import find_eval_sets
from speakup_fx.eval.metrics import si_sdr_db
from speakup_fx.train.config import load_config

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The tiny config on a synthetic corpus, all of it held out (too small for the 2 % hash split)."""
    synthetic.write_tiny_corpus(tmp_path / "corpus")
    base = load_config(TINY)
    split = heldout.split_speech
    monkeypatch.setattr(heldout, "split_speech", lambda c: (split(c)[0], split(c)[0]))
    return replace(base, data=replace(base.data, data_dir=str(tmp_path / "corpus"), cache_dir=str(tmp_path / "cache")))


def test_heldout_sets_are_paired_aligned_and_reproducible(config, tmp_path):
    assert heldout.write_heldout_sets(config, tmp_path / "a") == {name: 4 for name in heldout.CONDITIONS}
    heldout.write_heldout_sets(config, tmp_path / "b")

    sets = {s.name: s for s in find_eval_sets(tmp_path / "a")}
    assert set(sets) == set(heldout.CONDITIONS)
    for eval_set in sets.values():
        for item in eval_set.items:
            noisy, rate = sf.read(item.input_path)
            clean, _ = sf.read(item.reference_path)
            assert rate == 16_000 and noisy.shape == clean.shape
            assert np.abs(noisy).max() <= heldout.PEAK_LIMIT + 1e-4
            assert np.corrcoef(noisy, clean)[0, 1] < 0.999  # degraded
            again, _ = sf.read(tmp_path / "b" / item.input_path.relative_to(tmp_path / "a"))
            np.testing.assert_array_equal(noisy, again)
    # the direct-sound set scores the room set's own inputs against another reference
    for room, direct in zip(sets["heldout_room"].items, sets["heldout_room_direct"].items):
        np.testing.assert_array_equal(sf.read(room.input_path)[0], sf.read(direct.input_path)[0])
        assert not np.array_equal(sf.read(room.reference_path)[0], sf.read(direct.reference_path)[0])


def test_room_target_bounds_order_the_targets_and_match_the_written_set(config, tmp_path):
    bounds = heldout.room_target_bounds(config, early_reflections_s=0.0, late_decay_s=0.01)
    # less of the room in a target -> nearer the dry reference; noise makes the input worse still
    assert bounds["noisy"] < bounds["reverberant"] < bounds["early"]
    heldout.write_heldout_sets(config, tmp_path / "set")
    room = next(s for s in find_eval_sets(tmp_path / "set") if s.name == "heldout_room")
    written = [si_sdr_db(sf.read(i.reference_path)[0], sf.read(i.input_path)[0]) for i in room.items]
    assert abs(np.mean(written) - bounds["noisy"]) < 0.05  # the same draws (FLAC rounding aside)


def test_the_48k_room_set_is_reverberant_speech_of_the_validation_actors_against_its_direct_sound(config, tmp_path):
    speech_dir, rate = Path(config.data.data_dir) / "speech_48k" / "ravdess", heldout.ROOM_48K_SAMPLE_RATE
    sources = {}
    for actor, take in ((21, 1), (21, 2), (22, 1), (1, 1)):  # actor 1 trains the bandwidth extension
        path = speech_dir / f"actor{actor:02d}" / f"03-01-01-01-01-0{take}-{actor:02d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, synthetic.speech_like(1.0, rate, seed=actor + take)[0], rate, subtype="PCM_24")
        sources[path.stem] = sf.read(path)[0]
    assert heldout.write_room_48k_set(config, tmp_path / "a", files=2) == 2
    assert heldout.write_room_48k_set(config, tmp_path / "b", files=2) == 2
    assert heldout.write_room_48k_set(config, tmp_path / "all", files=10) == 3  # every validation file, no more

    (room,) = find_eval_sets(tmp_path / "a")
    assert room.name == heldout.ROOM_48K and len(room.items) == 2
    for item in room.items:
        assert item.input_path.stem.endswith(("-21", "-22"))
        noisy, file_rate = sf.read(item.input_path)
        clean, _ = sf.read(item.reference_path)
        assert file_rate == rate and noisy.shape == clean.shape == sources[item.input_path.stem].shape
        assert np.abs(noisy).max() <= heldout.PEAK_LIMIT + 1e-4
        source = sources[item.input_path.stem]
        # the reference is the direct sound: nearer the dry speech than the input through the whole room
        assert np.corrcoef(noisy, source)[0, 1] < np.corrcoef(clean, source)[0, 1] - 0.01
        again, _ = sf.read(tmp_path / "b" / item.input_path.relative_to(tmp_path / "a"))
        np.testing.assert_array_equal(noisy, again)
