"""The evaluation metrics on synthetic signals: known answers, invariances and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import synthetic

from speakup_fx.eval import metrics

RATE = 16_000


def clean_speech(duration_s: float = 3.0) -> np.ndarray:
    return synthetic.speech_like(duration_s, RATE)[0]


def with_white_noise(signal: np.ndarray, snr_db: float, seed: int = 3) -> np.ndarray:
    """``signal`` plus zero-mean white noise, orthogonal to it, at exactly ``snr_db`` relative to the zero-mean signal."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(signal.size)
    noise -= noise.mean()
    centred = signal - signal.mean()
    noise -= centred * (noise @ centred) / (centred @ centred)  # SI-SDR projects onto the signal
    noise *= np.sqrt(np.sum(centred**2) / np.sum(noise**2) / 10 ** (snr_db / 10))
    return (signal + noise).astype(np.float32)


def test_si_sdr_of_a_signal_against_itself_is_huge():
    x = clean_speech()
    assert metrics.si_sdr_db(x, x) > 100.0


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_si_sdr_of_signal_plus_noise_matches_the_snr(snr_db):
    x = clean_speech()
    assert metrics.si_sdr_db(x, with_white_noise(x, snr_db)) == pytest.approx(snr_db, abs=0.1)


@pytest.mark.parametrize("scale", [0.1, 7.0, -3.0])
def test_si_sdr_does_not_depend_on_the_estimate_scale_or_offset(scale):
    x = clean_speech()
    y = with_white_noise(x, 5.0)
    assert metrics.si_sdr_db(x, scale * y + 0.01) == pytest.approx(metrics.si_sdr_db(x, y), abs=1e-6)


def test_si_sdr_rejects_a_silent_reference_and_unequal_lengths():
    x = clean_speech()
    with pytest.raises(ValueError, match="reference"):
        metrics.si_sdr_db(np.zeros_like(x), x)
    with pytest.raises(ValueError, match="frames"):
        metrics.si_sdr_db(x, x[:-1])


def test_metrics_accept_one_channel_arrays_and_reject_stereo():
    x = synthetic.speech_like(3.0, RATE)
    assert metrics.si_sdr_db(x, x) > 100.0
    stereo = synthetic.speech_like(3.0, RATE, channels=2)
    with pytest.raises(ValueError, match="mono"):
        metrics.si_sdr_db(stereo, stereo)
    with pytest.raises(ValueError, match="NaN"):
        metrics.stoi(x, np.full_like(x, np.nan), RATE)


def test_metrics_do_not_modify_their_inputs():
    x = np.array(clean_speech())
    y = np.array(with_white_noise(x, 0.0))
    x_before, y_before = x.copy(), y.copy()
    metrics.si_sdr_db(x, y)
    metrics.pesq_wb(x, y, RATE)
    metrics.stoi(x, y, RATE)
    metrics.dnsmos(y, RATE)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_pesq_is_high_for_a_clean_copy_and_lower_for_a_noised_one():
    x = clean_speech()
    assert metrics.pesq_wb(x, x, RATE) > 4.0
    assert metrics.pesq_wb(x, with_white_noise(x, 0.0), RATE) < 2.0


def test_pesq_needs_16_khz():
    x = synthetic.speech_like(1.0, 8000)[0]
    with pytest.raises(ValueError, match="sample_rate"):
        metrics.pesq_wb(x, x, 8000)


def test_stoi_is_near_one_for_a_clean_copy_and_falls_with_noise():
    x = clean_speech()
    assert metrics.stoi(x, x, RATE) > 0.99
    mild, heavy = (metrics.stoi(x, with_white_noise(x, snr), RATE) for snr in (10.0, -5.0))
    assert heavy < mild < 0.99


def test_dnsmos_returns_finite_scores_on_the_mos_scale():
    clips = (synthetic.speech_like(1.2, RATE), synthetic.noisy_speech(1.2, RATE, snr_db=0.0), synthetic.silence(1.2, RATE))
    for audio in clips:
        scores = metrics.dnsmos(audio, RATE)
        for value in (scores.sig, scores.bak, scores.ovrl):
            assert np.isfinite(value) and 1.0 <= value <= 5.0


def test_dnsmos_rates_background_noise_below_a_clean_signal():
    clean = metrics.dnsmos(synthetic.speech_like(1.2, RATE), RATE)
    noisy = metrics.dnsmos(synthetic.noisy_speech(1.2, RATE, snr_db=0.0), RATE)
    assert noisy.bak < clean.bak - 1.0


def test_dnsmos_needs_16_khz():
    with pytest.raises(ValueError, match="sample_rate"):
        metrics.dnsmos(synthetic.speech_like(1.2, 48_000), 48_000)


@pytest.mark.parametrize("delay_samples", [0, 37, -12, 800])
def test_alignment_lag_finds_a_known_delay(delay_samples):
    clean = clean_speech()
    noisy = synthetic.noisy_speech(3.0, RATE, snr_db=5.0)[0]
    shifted = np.roll(noisy, delay_samples)
    assert metrics.alignment_lag_samples(clean, shifted, max_lag_samples=1000) == delay_samples


def test_alignment_lag_of_silence_is_none():
    x = clean_speech()
    assert metrics.alignment_lag_samples(x, np.zeros_like(x), max_lag_samples=100) is None


def test_word_errors_count_substitutions_deletions_and_insertions():
    assert metrics.word_errors("the cat sat".split(), "the cat sat".split()) == 0
    assert metrics.word_errors("the cat sat".split(), "a cat sat down".split()) == 2  # one substitution, one insertion
    assert metrics.word_errors("the cat sat".split(), []) == 3
    assert metrics.word_errors([], "hello".split()) == 1


def test_the_recogniser_needs_16_khz():
    with pytest.raises(ValueError, match="16"):
        metrics.transcribe(np.zeros(8000, np.float32), 8000)


VOICEBANK_CLEAN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "eval" / "voicebank_demand" / "clean" / "p232_002.flac"


@pytest.mark.skipif(not VOICEBANK_CLEAN.is_file(), reason="shared data set not present")
def test_the_recogniser_transcribes_a_clean_voicebank_sentence_offline():
    import soundfile

    audio, rate = soundfile.read(VOICEBANK_CLEAN, dtype="float32")
    assert " ".join(metrics.transcribe(audio, rate)) == "ask her to bring these things with her from the store"


def test_the_recogniser_does_not_carry_one_utterance_into_the_next():
    decoder = metrics._decoder()
    first, second = clean_speech(1.0), 0.3 * np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    metrics.transcribe(first, RATE)
    state_after_first = decoder.get_cmn()
    metrics.transcribe(second, RATE)
    assert decoder.get_cmn() != state_after_first  # the cepstral mean moves with each utterance ...
    metrics.transcribe(first, RATE)
    assert decoder.get_cmn() == state_after_first  # ... but every utterance starts from the same one


def test_speech_level_difference_measures_a_known_gain_on_the_speech_frames():
    speech = np.concatenate([np.zeros(RATE // 2, np.float32), clean_speech(1.0)])
    assert metrics.speech_level_difference_db(speech, 0.5 * speech, RATE) == pytest.approx(-6.02, abs=0.01)
    # noise in the pauses is not speech: it does not lift the level
    pauses = speech.copy()
    pauses[: RATE // 2] = 0.05 * np.random.default_rng(0).standard_normal(RATE // 2)
    assert metrics.speech_level_difference_db(speech, pauses, RATE) == pytest.approx(0.0, abs=0.01)
    with pytest.raises(ValueError, match="silent"):
        metrics.speech_level_difference_db(np.zeros(RATE, np.float32), speech[:RATE], RATE)


def test_log_spectral_distance_is_zero_for_the_same_signal_and_grows_with_a_missing_band():
    from speakup_fx.dsp.resample import resample
    from speakup_fx.eval.metrics import log_spectral_distance

    reference = synthetic.noise(1.0, 48_000, 1, level_db=-20.0)[0]
    assert log_spectral_distance(reference, reference, 48_000) < 1e-9
    # a uniform 6 dB loss: every bin's log10 power ratio is log10(4)
    assert log_spectral_distance(reference, 0.5 * reference, 48_000) == pytest.approx(np.log10(4.0), rel=1e-6)
    narrow = resample(resample(reference, 48_000, 16_000), 16_000, 48_000)
    half = resample(resample(reference, 48_000, 24_000), 24_000, 48_000)
    assert log_spectral_distance(reference, narrow, 48_000) > log_spectral_distance(reference, half, 48_000) > 0.1
    with pytest.raises(ValueError, match="frames"):
        log_spectral_distance(reference, reference[:-1], 48_000)


def test_the_high_band_log_spectral_distance_sees_only_the_bins_above_its_edge():
    from speakup_fx.dsp.resample import resample
    from speakup_fx.eval.metrics import log_spectral_distance

    reference = synthetic.noise(1.0, 48_000, 1, level_db=-20.0)[0]
    narrow = resample(resample(reference, 48_000, 16_000), 16_000, 48_000)
    # every bin above 8 kHz is (nearly) empty in ``narrow``: the full-band distance also averages in the bins
    # below 8 kHz, where both agree, so it is about sqrt(2/3) of the high-band one
    high, full = log_spectral_distance(reference, narrow, 48_000, low_hz=8_000.0), log_spectral_distance(reference, narrow, 48_000)
    assert high == pytest.approx(full * np.sqrt(3 / 2), rel=0.05)
    low_only = reference + 0.5 * (narrow - resample(resample(narrow, 48_000, 8_000), 8_000, 48_000))  # changes 4-8 kHz only
    assert log_spectral_distance(reference, low_only, 48_000, low_hz=9_000.0) < 0.05
    with pytest.raises(ValueError, match="low_hz"):
        log_spectral_distance(reference, reference, 48_000, low_hz=24_000.0)


def test_band_energy_change_reads_a_gain_in_db():
    from speakup_fx.eval.metrics import band_energy_change_db

    reference = synthetic.noise(0.5, 48_000, 1, level_db=-20.0)[0]
    assert band_energy_change_db(reference, 0.5 * reference, 48_000, 0.0, 7_500.0) == pytest.approx(6.0206, abs=1e-3)
    with pytest.raises(ValueError, match="band"):
        band_energy_change_db(reference, reference, 48_000, 8_000.0, 7_000.0)


def test_mean_and_median_where_defined_skip_missing_scores_and_are_nan_when_none_exist():
    assert metrics.mean_where_defined([1.0, float("nan"), 3.0]) == 2.0
    assert np.isnan(metrics.mean_where_defined([float("nan")])) and np.isnan(metrics.mean_where_defined([]))
    assert metrics.median_where_defined([1.0, float("nan"), 3.0, 10.0]) == 3.0
    assert np.isnan(metrics.median_where_defined([float("nan")])) and np.isnan(metrics.median_where_defined([]))
