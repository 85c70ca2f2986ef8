"""Degradation pipeline: measured quantities match drawn ones; draws are reproducible."""

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import synthetic

from speakup_fx.data.corpus import ManifestRow
from speakup_fx.data.dataset import DegradedSpeech
from speakup_fx.data.degrade import (
    DIRECT_WINDOW_S,
    DegradeConfig,
    DegradeParams,
    Degrader,
    EqBand,
    band_limit,
    codec_roundtrip,
    direct_path_index,
    drr_db,
    mix_at_snr,
    reshape_drr,
    reshape_rt60,
    rms_db,
    schroeder_rt60_s,
)

SAMPLE_RATE = 16_000


def exponential_rir(rt60_s: float, delay_samples: int = 40, seed: int = 0) -> np.ndarray:
    """Direct impulse then Gaussian noise decaying 60 dB in ``rt60_s``."""
    rng = np.random.default_rng(seed)
    n = int(1.5 * rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-3 * np.log(10) * t / rt60_s) * 0.3
    rir = np.zeros(delay_samples + n, np.float32)
    rir[delay_samples + 80 :] = tail[: n - 80]
    rir[delay_samples] = 1.0
    return rir


def make_degrader(**overrides) -> Degrader:
    noises = [synthetic.noise(1.0, SAMPLE_RATE, seed=s)[0] for s in range(3)]
    rirs = [exponential_rir(0.4, seed=1), exponential_rir(0.8, seed=2)]
    return Degrader(noises, rirs, real_rir_count=1, config=replace(DegradeConfig(), **overrides))


def test_mixed_noise_has_the_asked_snr():
    speech = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    noise = synthetic.noise(1.0, SAMPLE_RATE, seed=3)[0]
    for snr in (-5.0, 7.5, 35.0):
        mixed = mix_at_snr(speech, noise, snr)
        measured = rms_db(speech) - rms_db(mixed - speech)
        assert measured == pytest.approx(snr, abs=0.01)


def test_degrader_noise_snr_equals_drawn_snr():
    degrader = make_degrader()
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    params = DegradeParams(level_db=-25.0, noise_index=1, noise_offset=1234, snr_db=3.0)
    target = degrader.target(clean, params)
    noisy = degrader.apply(clean, params)
    assert rms_db(target) == pytest.approx(-25.0, abs=0.01)
    assert rms_db(target) - rms_db(noisy - target) == pytest.approx(3.0, abs=0.01)


def test_schroeder_measures_a_known_decay():
    for rt60 in (0.3, 0.9):
        assert schroeder_rt60_s(exponential_rir(rt60), SAMPLE_RATE) == pytest.approx(rt60, rel=0.05)


@pytest.mark.parametrize("target_s", [0.2, 0.5, 1.0])
def test_rt60_is_reshaped_as_asked(target_s):
    reshaped = reshape_rt60(exponential_rir(0.6), SAMPLE_RATE, target_s)
    assert schroeder_rt60_s(reshaped, SAMPLE_RATE) == pytest.approx(target_s, rel=0.08)


@pytest.mark.parametrize("target_db", [0.0, 6.0, 15.0])
def test_drr_is_reshaped_as_asked(target_db):
    rir = exponential_rir(0.5)
    rir[41] = 0.5  # a direct sound a few samples wide
    assert drr_db(reshape_drr(rir, SAMPLE_RATE, target_db), SAMPLE_RATE) == pytest.approx(target_db, abs=0.05)


def test_reverberant_output_is_aligned_with_the_dry_target():
    degrader = make_degrader()
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    params = DegradeParams(level_db=-20.0, rir_index=1, drr_db=10.0)
    noisy, target = degrader.apply(clean, params), degrader.target(clean, params)
    corr = np.correlate(noisy, target[2000:-2000], mode="valid")
    assert int(np.argmax(corr)) == 2000
    assert direct_path_index(degrader.room(params)) == 40


def test_same_seed_gives_the_same_example():
    degrader = make_degrader(codec_prob=0.5)
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    draws = [degrader.draw(np.random.default_rng([7, 1, 3])) for _ in range(2)]
    assert draws[0] == draws[1]
    np.testing.assert_array_equal(degrader.apply(clean, draws[0]), degrader.apply(clean, draws[1]))


def test_different_seeds_give_different_examples():
    degrader = make_degrader()
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    draws = [degrader.draw(np.random.default_rng([7, 1, i])) for i in range(8)]
    assert len(set(draws)) == 8
    outputs = [degrader.apply(clean, d) for d in draws[:2]]
    assert not np.allclose(outputs[0], outputs[1])


def test_apply_never_mutates_clean_and_keeps_length():
    degrader = make_degrader(codec_prob=1.0, clip_prob=1.0, eq_prob=1.0, bandlimit_prob=1.0, clean_only_prob=0.0)
    clean = np.array(synthetic.speech_like(1.0, SAMPLE_RATE)[0])
    before = clean.copy()
    params = degrader.draw(np.random.default_rng(0))
    noisy = degrader.apply(clean, params)
    np.testing.assert_array_equal(clean, before)
    assert noisy.shape == clean.shape and noisy.dtype == np.float32 and np.all(np.isfinite(noisy))


@pytest.mark.parametrize("codec", ["libopus", "libmp3lame", "aac"])
def test_codec_roundtrip_is_realigned(codec):
    x = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    y = codec_roundtrip(x, SAMPLE_RATE, codec, 32_000)
    assert y.shape == x.shape
    corr = np.correlate(y, x[1000:-1000], mode="valid")
    assert abs(int(np.argmax(corr)) - 1000) <= 1


def test_apply_rejects_stereo():
    with pytest.raises(ValueError, match="clean"):
        make_degrader().apply(np.zeros((2, 100), np.float32), DegradeParams(level_db=-20.0))


def test_snr_tail_draws_share_and_range():
    degrader = make_degrader(noise_prob=1.0, clean_only_prob=0.0, snr_db_range=(-5.0, 20.0), snr_tail_prob=0.25, snr_tail_db_range=(20.0, 40.0))
    snrs = np.array([degrader.draw(np.random.default_rng([3, i])).snr_db for i in range(2000)])
    assert np.all((snrs >= -5.0) & (snrs <= 40.0))
    assert np.mean(snrs > 20.0) == pytest.approx(0.25, abs=0.04)


def test_snr_tail_off_leaves_the_draws_as_they_were():
    plain, tail_range_only = make_degrader(), make_degrader(snr_tail_db_range=(30.0, 31.0))
    for i in range(50):
        assert plain.draw(np.random.default_rng([4, i])) == tail_range_only.draw(np.random.default_rng([4, i]))


def test_noise_eq_colours_the_noise_only_and_keeps_the_snr():
    degrader = make_degrader()
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    plain = DegradeParams(level_db=-25.0, noise_index=0, noise_offset=100, snr_db=0.0)
    boost = replace(plain, noise_eq_bands=(EqBand("low_shelf", 200.0, 15.0, 0.7),))
    target = degrader.target(clean, plain)
    noise_plain, noise_boost = (degrader.apply(clean, p) - target for p in (plain, boost))
    np.testing.assert_array_equal(degrader.target(clean, boost), target)
    assert rms_db(target) - rms_db(noise_boost) == pytest.approx(0.0, abs=0.01)

    def low_share_db(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        return 10 * np.log10(power[np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE) < 150].sum() / power.sum())

    # white noise has ~2 % of its power below 150 Hz; the +15 dB shelf at 200 Hz makes that band dominate
    assert low_share_db(noise_boost) > low_share_db(noise_plain) + 10


def test_noise_eq_draws_share_and_off_leaves_the_draws_as_they_were():
    coloured = make_degrader(noise_prob=1.0, clean_only_prob=0.0, noise_eq_prob=0.5, noise_eq_gain_db=15.0)
    draws = [coloured.draw(np.random.default_rng([5, i])) for i in range(1000)]
    assert np.mean([bool(d.noise_eq_bands) for d in draws]) == pytest.approx(0.5, abs=0.05)
    assert max(abs(b.gain_db) for d in draws for b in d.noise_eq_bands) <= 15.0
    plain, gain_only = make_degrader(), make_degrader(noise_eq_gain_db=3.0)
    for i in range(50):
        assert plain.draw(np.random.default_rng([4, i])) == gain_only.draw(np.random.default_rng([4, i]))


def test_a_second_noise_plays_with_the_first_at_its_relative_level_and_the_snr_holds():
    degrader = make_degrader()
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    one = DegradeParams(level_db=-25.0, noise_index=0, noise_offset=100, snr_db=5.0)
    two = replace(one, second_noise_index=1, second_noise_offset=7, second_noise_db=0.0)
    target = degrader.target(clean, one)
    alone, mixed = (degrader.apply(clean, p) - target for p in (one, two))
    assert rms_db(target) - rms_db(mixed) == pytest.approx(5.0, abs=0.01)
    # two independent white noises at equal level: the first is half the mixture's power
    assert np.corrcoef(alone, mixed)[0, 1] == pytest.approx(np.sqrt(0.5), abs=0.03)
    quiet = replace(two, second_noise_db=-20.0)
    assert np.corrcoef(alone, degrader.apply(clean, quiet) - target)[0, 1] == pytest.approx(1 / np.sqrt(1.01), abs=0.01)


def test_a_faster_noise_moves_up_in_frequency():
    tone = (0.1 * np.sin(2 * np.pi * 1000.0 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    degrader = Degrader([tone], [], 0, DegradeConfig())
    params = DegradeParams(level_db=-25.0, noise_index=0, snr_db=0.0)
    speech = synthetic.speech_like(0.5, SAMPLE_RATE)[0]
    for speed in (0.8, 1.0, 1.2):
        noise = degrader.apply(speech, replace(params, noise_speed=speed)) - degrader.target(speech, params)
        assert len(noise) == len(speech)
        spectrum = np.abs(np.fft.rfft(noise * np.hanning(len(noise))))
        assert np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(1000.0 * speed, abs=4.0)


def test_second_noise_and_speed_draws_share_grid_and_off_leaves_the_draws_as_they_were():
    varied = make_degrader(noise_prob=1.0, clean_only_prob=0.0, second_noise_prob=0.5, noise_speed_prob=0.5)
    draws = [varied.draw(np.random.default_rng([6, i])) for i in range(1000)]
    assert np.mean([d.second_noise_index is not None for d in draws]) == pytest.approx(0.5, abs=0.05)
    assert all(-10.0 <= d.second_noise_db <= 0.0 for d in draws)
    speeds = {d.noise_speed for d in draws}
    assert speeds == {k / 20 for k in range(16, 25)}
    assert np.mean([d.noise_speed != 1.0 for d in draws]) == pytest.approx(0.5 * 8 / 9, abs=0.05)
    plain, ranges_only = make_degrader(), make_degrader(second_noise_db_range=(-3.0, -2.0), noise_speed_range=(0.9, 1.1))
    for i in range(50):
        assert plain.draw(np.random.default_rng([4, i])) == ranges_only.draw(np.random.default_rng([4, i]))
    with pytest.raises(ValueError, match="noise_speed_range"):
        DegradeConfig(noise_speed_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="second_noise_db_range"):
        DegradeConfig(second_noise_db_range=(0.0, -10.0))


def test_targets_keep_the_room_whole_early_or_not_at_all():
    degrader = make_degrader(early_reflections_s=0.05, late_decay_s=0.1)
    clean = np.zeros(2 * SAMPLE_RATE, np.float32)
    clean[1000] = 1.0  # an impulse: each target is the response it went through
    params = DegradeParams(level_db=-20.0, rir_index=1)
    dry, reverberant, early = degrader.degrade(clean, params, ("dry", "reverberant", "early"))[1]
    np.testing.assert_array_equal(dry, degrader.target(clean, params))
    gain = dry[1000]
    room = degrader.room(params)
    np.testing.assert_allclose(reverberant[1000 : 1000 + len(room) - 40], gain * room[40:], atol=1e-5)
    early_end = 1000 + int(0.05 * SAMPLE_RATE)
    np.testing.assert_allclose(early[:early_end], reverberant[:early_end], atol=1e-5)  # direct path + 50 ms kept
    late = slice(early_end + int(0.1 * SAMPLE_RATE), None)  # a further 100 ms on: 60 dB below the room's own tail
    assert rms_db(early[late]) < rms_db(reverberant[late]) - 55
    # the noisy speech is the reverberant target, the same convolution (no noise or other damage drawn here)
    np.testing.assert_array_equal(degrader.apply(clean, params), reverberant)


def test_direct_target_is_the_direct_sound_a_spread_one_included():
    rir = exponential_rir(0.4, seed=3)
    rir[41:46] = [0.8, 0.6, 0.4, 0.2, 0.1]  # a measured direct sound spreads past its peak (loudspeaker, microphone)
    degrader = Degrader([synthetic.noise(1.0, SAMPLE_RATE)[0]], [rir], real_rir_count=1, config=DegradeConfig())
    clean = np.zeros(SAMPLE_RATE, np.float32)
    clean[1000] = 1.0
    params = DegradeParams(level_db=-20.0, rir_index=0)
    dry, direct, reverberant = degrader.degrade(clean, params, ("dry", "direct", "reverberant"))[1]
    half = int(round(DIRECT_WINDOW_S * SAMPLE_RATE))
    assert direct[1000] == pytest.approx(dry[1000]) and np.abs(direct[1001:1006]).min() > 0.05 * dry[1000]  # the spread kept
    outside = np.concatenate([direct[: 1000 - half], direct[1000 + half + 1 :]])
    assert np.abs(outside).max() < 1e-5 * dry[1000]  # the room's reflections gone (FFT convolution's rounding aside)
    inside = slice(1000 - half, 1000 + half + 1)  # and within the window, the room as it is, tapered
    assert np.abs(direct[inside]).max() <= np.abs(reverberant[inside]).max() + 1e-6


def test_early_target_at_direct_level_is_the_early_target_at_the_direct_sounds_energy():
    degrader = make_degrader(early_reflections_s=0.02, late_decay_s=0.05)
    clean = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    params = DegradeParams(level_db=-20.0, rir_index=1)
    early, direct, levelled = degrader.degrade(clean, params, ("early", "direct", "early_direct_level"))[1]
    ratio = levelled @ early / (early @ early)  # the same signal, scaled
    np.testing.assert_allclose(levelled, ratio * early, atol=1e-6)
    room = degrader.room(params)
    expected = np.sqrt(np.sum(degrader.direct_room(room) ** 2.0) / np.sum(degrader.early_room(room) ** 2.0))
    assert ratio == pytest.approx(expected, rel=1e-5) and ratio < 0.5  # this room's early reflections add 14 dB
    # on speech the levels match within what the room's colour does to a signal that is not white (1 dB here)
    assert rms_db(early) > rms_db(direct) + 10
    assert rms_db(levelled) == pytest.approx(rms_db(direct), abs=2.0)


def test_targets_without_a_room_are_all_dry_and_unknown_kinds_raise():
    degrader = make_degrader()
    clean = synthetic.speech_like(0.5, SAMPLE_RATE)[0]
    params = DegradeParams(level_db=-25.0, noise_index=0, snr_db=5.0)
    targets = degrader.degrade(clean, params, ("reverberant", "early", "dry"))[1]
    assert targets.shape == (3, len(clean))
    for target in targets:
        np.testing.assert_array_equal(target, degrader.target(clean, params))
    with pytest.raises(ValueError, match="targets: unknown"):
        degrader.degrade(clean, params, ("wet",))[1]


def speech_set(tmp_path, band_hz=None, targets=("dry",), speech=None, **options) -> DegradedSpeech:
    path = tmp_path / "speech.flac"
    sf.write(path, synthetic.speech_like(3.0, SAMPLE_RATE)[0] if speech is None else speech, SAMPLE_RATE)
    row = ManifestRow("train", "speech", "synthetic", path, 3.0, SAMPLE_RATE, "CC0", band_hz)
    return DegradedSpeech([row], make_degrader(), SAMPLE_RATE, seed=5, targets=targets, **options)


def energy_above_db(x: np.ndarray, cutoff_hz: float) -> float:
    power = np.abs(np.fft.rfft(np.hanning(len(x)) * x)) ** 2  # windowed: no leakage from the band below
    return 10 * np.log10(power[np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE) > cutoff_hz].sum() + 1e-30)


def test_a_band_limited_file_band_limits_its_input_and_targets_alike(tmp_path):
    targets, band_hz = ("reverberant", "dry"), 3000.0
    full_band = synthetic.noise(3.0, SAMPLE_RATE, level_db=-20.0, seed=7)[0]  # "speech" that fills the band
    full = speech_set(tmp_path, targets=targets, speech=full_band)
    limited = speech_set(tmp_path, band_hz=band_hz, targets=targets, speech=full_band)
    for index in range(4):
        (noisy, target), (noisy_limited, target_limited) = full[(0, index)], limited[(0, index)]
        np.testing.assert_array_equal(noisy_limited[0].numpy(), band_limit(noisy[0].numpy(), band_hz, SAMPLE_RATE))  # the same draws
        for kind in range(len(targets)):
            np.testing.assert_array_equal(target_limited[kind].numpy(), band_limit(target[kind].numpy(), band_hz, SAMPLE_RATE))
            assert energy_above_db(target_limited[kind].numpy(), 4500.0) < energy_above_db(target[kind].numpy(), 4500.0) - 40
        assert energy_above_db(noisy_limited[0].numpy(), 4500.0) < energy_above_db(noisy[0].numpy(), 4500.0) - 40


def test_band_limit_keeps_the_band_in_place_and_rejects_cutoffs_outside_it():
    x = synthetic.speech_like(1.0, SAMPLE_RATE)[0]
    low = band_limit(x, 7000.0, SAMPLE_RATE)
    assert low.dtype == np.float32 and low.shape == x.shape
    spectrum, spectrum_low = np.fft.rfft(x), np.fft.rfft(low)
    below = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE) < 4000
    np.testing.assert_allclose(spectrum_low[below], spectrum[below], atol=1e-3 * np.abs(spectrum).max())  # zero phase, unit gain
    for cutoff_hz in (0.0, 8000.0):
        with pytest.raises(ValueError, match="cutoff_hz"):
            band_limit(x, cutoff_hz, SAMPLE_RATE)


def test_lead_silence_puts_the_noise_alone_before_the_speech(tmp_path):
    lead = speech_set(tmp_path, lead_silence_prob=1.0, lead_silence_s_range=(0.25, 0.5))
    quarter = SAMPLE_RATE // 4
    for index in range(6):
        noisy, target = (x[0].numpy() for x in lead[(0, index)])
        assert not target[:quarter].any() and rms_db(target) > rms_db(noisy) - 40  # silent first, then speech
        assert target[SAMPLE_RATE // 2 :].any()  # at most 0.5 s of silence
        if rms_db(noisy - target) > -100:  # a noisy example (some draws are clean only): the noise plays alone
            assert rms_db(noisy[:quarter]) > -100


def test_lead_silence_off_leaves_the_examples_as_they_were(tmp_path):
    plain, off = speech_set(tmp_path), speech_set(tmp_path, lead_silence_prob=0.0)
    for index in range(3):
        for a, b in zip(plain[(1, index)], off[(1, index)]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="shorter than the 16000 samples segment"):
        speech_set(tmp_path, lead_silence_prob=0.5, lead_silence_s_range=(0.5, 1.0))
    with pytest.raises(ValueError, match="lead_silence_prob"):
        speech_set(tmp_path, lead_silence_prob=1.5)


def test_a_noise_bank_is_needed_only_when_noise_is_drawn():
    with pytest.raises(ValueError, match="noises: need at least one noise recording"):
        Degrader([], [], 0, DegradeConfig())
    rir = np.zeros(800, np.float32)
    rir[[0, 400]] = (1.0, 0.5)
    rooms_only = Degrader([], [rir], 1, replace(DegradeConfig(), noise_prob=0.0, clean_only_prob=0.0, reverb_prob=1.0))
    params = rooms_only.draw(np.random.default_rng(0))
    assert params.noise_index is None and params.rir_index == 0
    speech = synthetic.speech_like(0.5, SAMPLE_RATE)[0]
    assert not np.allclose(rooms_only.apply(speech, params), rooms_only.target(speech, params))
