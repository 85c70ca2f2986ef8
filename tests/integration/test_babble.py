"""Babble noise made from training speech: sums of several talkers, seeded, added to the noise bank on request."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import synthetic

from speakup_fx.data.corpus import BABBLE_S, make_babble, train_rows
from speakup_fx.train.config import Config, from_dict, load_config
from speakup_fx.train.loop import build_degrader

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"
RATE = 16_000


def envelope_spread_db(x: np.ndarray) -> float:
    """Standard deviation of 20 ms frame levels, dB: large for one talker's syllables and pauses, small for a crowd."""
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    return float(np.std(10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)))


def test_babble_is_a_seeded_crowd_of_training_talkers(tmp_path):
    synthetic.write_tiny_corpus(tmp_path)
    speech = train_rows(tmp_path, "speech")
    babble = make_babble(speech, 3, (4, 4), RATE, seed=1)
    assert len(babble) == 3 and all(b.shape == (int(BABBLE_S * RATE),) and b.dtype == np.float32 for b in babble)
    assert all(np.isfinite(b).all() and np.sqrt(np.mean(np.square(b))) > 0.01 for b in babble)
    again, other = make_babble(speech, 3, (4, 4), RATE, seed=1), make_babble(speech, 3, (4, 4), RATE, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(babble, again))
    assert not np.array_equal(babble[0], other[0])
    one_talker = make_babble(speech, 3, (1, 1), RATE, seed=1)
    assert np.mean([envelope_spread_db(b) for b in babble]) < np.mean([envelope_spread_db(b) for b in one_talker]) - 1.0


def test_babble_noises_join_the_degraders_noise_bank(tmp_path):
    synthetic.write_tiny_corpus(tmp_path / "corpus")
    base = load_config(TINY)
    config = replace(base, data=replace(base.data, data_dir=str(tmp_path / "corpus"), cache_dir=str(tmp_path / "cache")))
    plain = build_degrader(config)
    with_babble = build_degrader(replace(config, data=replace(config.data, babble_noises=5)))
    assert len(with_babble.noises) == len(plain.noises) + 5
    assert all(np.array_equal(a, b) for a, b in zip(plain.noises, with_babble.noises))
    in_rooms = build_degrader(replace(config, data=replace(config.data, babble_noises=5, babble_room_prob=1.0)))
    assert not any(np.array_equal(a, b) for a, b in zip(with_babble.noises[-5:], in_rooms.noises[-5:]))


def test_babble_talkers_heard_through_rooms_gain_the_rooms_tail(tmp_path):
    synthetic.write_tiny_corpus(tmp_path)
    speech = train_rows(tmp_path, "speech")
    decay = np.exp(-np.arange(RATE // 2) / (0.1 * RATE))  # a 0.7 s RT60 tail behind the direct path
    rir = (np.random.default_rng(0).standard_normal(RATE // 2) * decay).astype(np.float32)
    rir[0] = 1.0
    dry = make_babble(speech, 3, (1, 1), RATE, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(dry, make_babble(speech, 3, (1, 1), RATE, seed=1, rirs=[rir], room_prob=0.0)))
    wet = make_babble(speech, 3, (1, 1), RATE, seed=1, rirs=[rir], room_prob=1.0)
    assert all(w.shape == d.shape for w, d in zip(wet, dry))
    # the room fills the talker's pauses: the frame levels spread less
    assert np.mean([envelope_spread_db(w) for w in wet]) < np.mean([envelope_spread_db(d) for d in dry]) - 3.0
    with pytest.raises(ValueError, match="needs rooms"):
        make_babble(speech, 1, (1, 1), RATE, seed=1, room_prob=0.5)
    with pytest.raises(ValueError, match="data.babble_room_prob"):
        from_dict(Config, {"data": {"babble_room_prob": 1.5}})
